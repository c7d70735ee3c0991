//! Python source files, as the reports need them: read through the target's root while it is
//! attached (its files may live in another mount namespace), decoded as `tokenize` decodes
//! them, split into lines as `linecache` does, and analysed for executable lines.

pub mod executable_lines;
pub mod target_files;

use crate::reader::PyVersion;
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use target_files::TargetRoot;

/// Sources larger than this are not read: a report is no place for them, and a hostile target
/// could name any file.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// Where source files are read from, and which Python's rules apply to them.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The target's root, working directory and credentials, taken while it was alive: its
    /// files are read as it could read them (see [`target_files`]). `None` reads paths as
    /// they are, with tracer's own rights (`report`, on files the user names).
    target: Option<Arc<TargetRoot>>,
    /// Set when the target's root could not be taken (it had exited): nothing is read.
    target_lost: bool,
    /// The Python whose compiler decides which lines are executable; `None` when nothing
    /// says which (a results file naming no version): no line is then taken as executable.
    pub version: Option<PyVersion>,
}

impl Sources {
    /// Read paths as they are on this machine.
    pub fn local(version: Option<PyVersion>) -> Sources {
        Sources {
            target: None,
            target_lost: false,
            version,
        }
    }

    /// Read paths as live process `pid` sees them and with its rights only. Call it while the
    /// target is alive: its root is held open and outlives it. If `pid` is already gone, no
    /// source is read (the target's files cannot be told apart from ours any more).
    pub fn of_process(pid: i32, version: PyVersion) -> Sources {
        match TargetRoot::of_process(pid) {
            Ok(root) => Sources {
                target: Some(Arc::new(root)),
                target_lost: false,
                version: Some(version),
            },
            Err(_) => Sources {
                version: Some(version),
                ..Sources::lost()
            },
        }
    }

    /// The sources of a target that exited before anything of it was known: nothing is read.
    pub fn lost() -> Sources {
        Sources {
            target: None,
            target_lost: true,
            version: None,
        }
    }

    /// The raw bytes of `filename`, a regular file of at most [`MAX_SOURCE_BYTES`].
    pub fn read(&self, filename: &str) -> io::Result<Vec<u8>> {
        if self.target_lost {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the traced process had exited before its files could be opened",
            ));
        }
        match &self.target {
            Some(root) => root.read(filename, MAX_SOURCE_BYTES),
            None => read_regular_file(Path::new(filename)),
        }
    }

    /// The lines of `source` trace would mark executable (`_find_executable_linenos`); empty
    /// when the file does not parse. Versions outside the analysed 3.8–3.14 use the nearest
    /// one's rules (an approximation: 2.7–3.7 and 3.15+ are not measured).
    pub fn executable_lines(&self, source: &SourceText) -> BTreeSet<u32> {
        self.checked_executable_lines(source).unwrap_or_default()
    }

    /// Like [`Sources::executable_lines`], with why a file gave none.
    pub fn checked_executable_lines(
        &self,
        source: &SourceText,
    ) -> Result<BTreeSet<u32>, executable_lines::ExecutableLinesError> {
        let version = self
            .analysed_version()
            .ok_or(executable_lines::ExecutableLinesError::UnknownVersion)?;
        executable_lines::executable_lines(&source.text, version)
    }

    /// The version whose rules [`Sources::executable_lines`] applies: ours, or the nearest
    /// one analysed; `None` when the version is unknown.
    pub fn analysed_version(&self) -> Option<PyVersion> {
        self.version.map(analysed_version)
    }
}

/// The nearest version whose compiler the executable-line analysis models.
fn analysed_version(version: PyVersion) -> PyVersion {
    let minors = executable_lines::supported_minors();
    let (first, last) = (*minors.start(), *minors.end());
    match version.major {
        major if major < 3 => PyVersion::new(3, first),
        3 => PyVersion::new(3, version.minor.clamp(first, last)),
        _ => PyVersion::new(3, last),
    }
}

fn read_regular_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO must not wait for a writer (it is refused just below).
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "source file too large",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SOURCE_BYTES).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A decoded source file.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// The text, BOM removed.
    pub text: String,
    /// The file started with a UTF-8 BOM (`utf-8-sig`): trace then writes its `.cover` with one.
    pub bom: bool,
    /// Decoded as Latin-1 (declared so, or not valid UTF-8): encode back the same way.
    pub latin1: bool,
}

impl SourceText {
    /// Decode as `tokenize.open` does for the encodings that matter here: UTF-8 (the default,
    /// with or without BOM) and Latin-1; any other declared encoding is carried byte for byte
    /// as Latin-1, which keeps the bytes intact.
    pub fn decode(bytes: &[u8]) -> SourceText {
        let (bom, body) = match bytes.strip_prefix(b"\xef\xbb\xbf") {
            Some(rest) => (true, rest),
            None => (false, bytes),
        };
        let declared_utf8 = declared_encoding(body).is_none_or(|e| {
            let e = e.to_ascii_lowercase().replace('_', "-");
            e == "utf-8" || e.starts_with("utf-8-") || e == "utf8"
        });
        if declared_utf8 {
            if let Ok(text) = std::str::from_utf8(body) {
                return SourceText {
                    text: text.to_owned(),
                    bom,
                    latin1: false,
                };
            }
        }
        SourceText {
            text: body.iter().map(|&b| b as char).collect(),
            bom,
            latin1: true,
        }
    }

    /// Encode `text` back the way this source was decoded.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        if self.latin1 {
            text.chars().map(|c| c as u32 as u8).collect()
        } else {
            text.as_bytes().to_vec()
        }
    }

    /// The lines as `linecache.getlines` gives them: universal newlines (`\r\n`, `\r`, `\n`)
    /// turned into `\n`, each line keeping its terminator.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut current = String::new();
        let mut chars = self.text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    current.push('\n');
                    lines.push(std::mem::take(&mut current));
                }
                '\n' => {
                    current.push('\n');
                    lines.push(std::mem::take(&mut current));
                }
                _ => current.push(c),
            }
        }
        if !current.is_empty() {
            lines.push(current);
        }
        lines
    }
}

/// The encoding named by a PEP 263 cookie on line 1 or 2, if any.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    for line in bytes.split(|b| *b == b'\n').take(2) {
        let line = String::from_utf8_lossy(line);
        let trimmed = line.trim_start();
        if !trimmed.starts_with('#') {
            continue;
        }
        let pos = trimmed.find("coding")?;
        let rest = &trimmed[pos + "coding".len()..];
        let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))?;
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
            .collect();
        if !name.is_empty() {
            return Some(name);
        }
    }
    None
}

/// `str.expandtabs(8)`.
pub fn expand_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut column = 0usize;
    for c in line.chars() {
        match c {
            '\t' => {
                let pad = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', pad));
                column += pad;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_like_linecache() {
        let s = SourceText::decode(b"a\r\nb\rc\nd");
        assert_eq!(s.lines(), vec!["a\n", "b\n", "c\n", "d"]);
        assert!(SourceText::decode(b"").lines().is_empty());
    }

    #[test]
    fn decodes_bom_and_latin1() {
        let s = SourceText::decode(b"\xef\xbb\xbfx = 1\n");
        assert!(s.bom && !s.latin1);
        assert_eq!(s.text, "x = 1\n");
        let l = SourceText::decode(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n");
        assert!(l.latin1);
        assert_eq!(
            l.encode(&l.text),
            b"# -*- coding: latin-1 -*-\nx = '\xe9'\n"
        );
        let bad = SourceText::decode(b"x = '\xff'\n");
        assert!(bad.latin1);
    }

    #[test]
    fn expand_tabs_like_python() {
        assert_eq!(expand_tabs("\tx"), "        x");
        assert_eq!(expand_tabs("ab\tc\n"), "ab      c\n");
        assert_eq!(expand_tabs("ü\t|"), "ü       |");
    }
}
