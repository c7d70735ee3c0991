//! Annotated `.cover` files and the coverage summary, exactly as Lib/trace.py's
//! `CoverageResults.write_results` writes them.

use crate::aggregate::filter::normpath;
use crate::aggregate::model::{module_name, CoverageResults};
use crate::source::{expand_tabs, SourceText, Sources};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// trace's marker that keeps a line out of the missed lines.
pub(crate) const PRAGMA_NOCOVER: &str = "#pragma NO COVER";

/// How to write the report.
#[derive(Debug, Clone, Default)]
pub struct CoverOptions {
    /// Write every `.cover` file here, named by dotted module path; `None` writes each beside
    /// its source, named by module, as trace does.
    pub coverdir: Option<PathBuf>,
    /// Mark executable lines never hit with `>>>>>> `.
    pub show_missing: bool,
}

/// One row of the summary: `lines   cov%   module   (path)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub lines: usize,
    pub percent: usize,
    pub module: String,
    pub path: String,
}

/// What a report wrote.
#[derive(Debug, Default)]
pub struct CoverReport {
    /// Summary rows by module name, in trace's order.
    pub summary: BTreeMap<String, SummaryRow>,
    /// `.cover` files written.
    pub written: Vec<PathBuf>,
    /// Files that could not be reported, with the reason: one line each.
    pub skipped: Vec<String>,
}

impl CoverReport {
    /// The summary as trace prints it (nothing when there are no rows).
    pub fn summary_text(&self) -> String {
        if self.summary.is_empty() {
            return String::new();
        }
        let mut out = String::from("lines   cov%   module   (path)\n");
        for row in self.summary.values() {
            out.push_str(&format!(
                "{:5}   {:3}%   {}   ({})\n",
                row.lines, row.percent, row.module, row.path
            ));
        }
        out
    }
}

/// Write the `.cover` files of `results`.
pub fn write(results: &CoverageResults, options: &CoverOptions, sources: &Sources) -> CoverReport {
    let mut report = CoverReport::default();
    if let Some(dir) = &options.coverdir {
        if let Err(e) = fs::create_dir_all(dir) {
            report
                .skipped
                .push(format!("cannot create {}: {e}", dir.display()));
            return report;
        }
    }
    for recorded in results.files() {
        if recorded.starts_with('<') && recorded.ends_with('>') {
            continue;
        }
        let hits: BTreeMap<u32, u64> = results
            .lines_of(recorded)
            .map(|(l, h)| (l, h.hits))
            .collect();
        // trace reports `x.pyc` as its source `x.py`.
        let filename = match recorded.strip_suffix(".pyc") {
            Some(stem) => format!("{stem}.py"),
            None => recorded.to_owned(),
        };
        let (dir, module) = match &options.coverdir {
            Some(dir) => (dir.clone(), full_module_name(&filename)),
            None => (source_dir(&filename), module_name(&filename)),
        };
        let bytes = match sources.read(&filename) {
            Ok(b) => b,
            Err(e) => {
                report.skipped.push(format!(
                    "not reporting {}: cannot read it: {e}",
                    printable_name(&filename)
                ));
                continue;
            }
        };
        let source = SourceText::decode(&bytes);
        let executable = if options.show_missing {
            sources.executable_lines(&source)
        } else {
            Default::default()
        };

        let mut text = String::new();
        let (mut n_hits, mut n_lines) = (0usize, 0usize);
        for (index, line) in source.lines().iter().enumerate() {
            let lineno = index as u32 + 1;
            if let Some(count) = hits.get(&lineno) {
                text.push_str(&format!("{count:5}: "));
                n_hits += 1;
                n_lines += 1;
            } else if executable.contains(&lineno) && !line.contains(PRAGMA_NOCOVER) {
                text.push_str(">>>>>> ");
                n_lines += 1;
            } else {
                text.push_str("       ");
            }
            text.push_str(&expand_tabs(line));
        }
        let mut out = Vec::with_capacity(text.len() + 3);
        if source.bom {
            out.extend_from_slice(b"\xef\xbb\xbf");
        }
        out.extend_from_slice(&source.encode(&text));

        let cover_path = dir.join(format!("{module}.cover"));
        match super::write_atomically(&cover_path, |w| Ok(std::io::Write::write_all(w, &out)?)) {
            Ok(()) => report.written.push(cover_path),
            Err(e) => {
                report.skipped.push(format!("{e:#}"));
                continue;
            }
        }
        if n_lines > 0 {
            report.summary.insert(
                module.clone(),
                SummaryRow {
                    lines: n_lines,
                    percent: 100 * n_hits / n_lines,
                    module,
                    path: filename.clone(),
                },
            );
        }
    }
    report
}

/// A file name the target chose, fit for a terminal: control characters escaped (no escape
/// sequences reach the user's terminal), at most 300 characters.
pub fn printable_name(filename: &str) -> String {
    const MAX_CHARS: usize = 300;
    let mut out = String::new();
    for (count, c) in filename.chars().enumerate() {
        if count == MAX_CHARS {
            out.push_str(&format!("… ({} characters)", filename.chars().count()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `os.path.dirname(os.path.abspath(filename))`.
fn source_dir(filename: &str) -> PathBuf {
    let absolute = if filename.starts_with('/') {
        filename.to_owned()
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        format!("{}/{filename}", cwd.display())
    };
    let normal = normpath(&absolute);
    Path::new(&normal)
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// trace's `_fullmodname`: the dotted module path of `filename` relative to the longest
/// `sys.path` entry containing it. We have no `sys.path` of the target's, so the entries are
/// the current directory and the import roots visible in the path itself (`site-packages`,
/// `dist-packages`, `lib/pythonX.Y`), which are where a stock `sys.path` points.
pub fn full_module_name(filename: &str) -> String {
    let mut roots: Vec<String> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd.to_string_lossy().into_owned());
    }
    let parts: Vec<&str> = filename.split('/').collect();
    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        let is_root = *part == "site-packages"
            || *part == "dist-packages"
            || *part == "lib-dynload"
            || (part.starts_with("python") && i > 0 && parts[i - 1] == "lib");
        if is_root {
            roots.push(parts[..=i].join("/"));
        }
    }
    let longest = roots
        .iter()
        .filter(|root| {
            filename.len() > root.len()
                && filename.starts_with(root.as_str())
                && filename.as_bytes()[root.len()] == b'/'
        })
        .max_by_key(|root| root.len());
    let base = match longest {
        Some(root) => &filename[root.len() + 1..],
        None => filename,
    };
    let dotted = base.replace('/', ".");
    let stem = match dotted.rfind('.') {
        Some(dot) if dotted[..dot].chars().any(|c| c != '.') => &dotted[..dot],
        _ => &dotted[..],
    };
    stem.trim_start_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_names_escape_controls_and_stay_short() {
        assert_eq!(printable_name("a\0b\x1b[2J.py"), "a\\u{0}b\\u{1b}[2J.py");
        let long = printable_name(&"x".repeat(10_000));
        assert!(long.ends_with("… (10000 characters)") && long.chars().count() < 330);
    }

    #[test]
    fn full_module_names() {
        assert_eq!(
            full_module_name("/usr/lib/python3.11/json/decoder.py"),
            "json.decoder"
        );
        assert_eq!(
            full_module_name("/v/lib/python3.12/site-packages/pkg/mod.py"),
            "pkg.mod"
        );
        assert_eq!(full_module_name("/nowhere/known/x.py"), "nowhere.known.x");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            full_module_name(&format!("{}/tests/w.py", cwd.display())),
            "tests.w"
        );
    }
}
