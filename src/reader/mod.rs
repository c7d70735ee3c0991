//! Reading stacks out of the target: the [`StackReader`] trait and its implementations.
//!
//! A reader fills a [`Sample`] with every thread's frames as (code id, line) pairs and reports
//! the strings behind any code id it has not reported before. Readers never write to the target.

use crate::reader::sample::{CodeId, CodeInfo, Sample};
use std::collections::HashMap;

pub mod direct;
pub mod discover;
pub mod layout;
pub mod line_proof;
pub mod linetable;
pub mod memory;
pub mod objects;
pub mod printable;
mod pyspy;
pub mod sample;
pub mod values;
pub mod version;

pub use direct::DirectReader;
pub use version::PyVersion;

/// The py-spy release whose reader `--reader py-spy` uses (as Cargo.lock pins it).
pub const PY_SPY_VERSION: &str = "0.4.3";
pub use pyspy::PySpyReader;

/// Why a read produced no sample.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The target changed under us or could not be read this time; the sample is dropped and
    /// counted by kind, and sampling goes on.
    #[error("stack read failed: {1}")]
    Transient(ReadErrorKind, String),
}

/// What went wrong with a read: how a dropped sample or a thread left out of one is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// Memory that could not be read (unmapped, refused, the target pausing or exiting).
    Unreadable,
    /// Structures that changed while they were read (the two copies of a stack disagree beyond
    /// repair, a chunk frame neither copied nor below the live top).
    Torn,
    /// Read whole but not shaped as it must be: a chain into something that is not a frame.
    Implausible,
    /// The sample spent its budget of reads (ranges and bytes).
    OverBudget,
}

impl ReadErrorKind {
    /// The kind of a memory error.
    pub fn of(error: &memory::MemoryError) -> ReadErrorKind {
        use memory::MemoryError::*;
        match error {
            Unmapped(_) | Gone | Refused(_) => ReadErrorKind::Unreadable,
            Torn(_) => ReadErrorKind::Torn,
            Implausible(_) => ReadErrorKind::Implausible,
            OverBudget { .. } => ReadErrorKind::OverBudget,
        }
    }
}

/// Counts by [`ReadErrorKind`]: of the samples dropped (`stats.errors_by_kind`, adding up to
/// `stats.errors`), or of the threads left out of samples kept (`stats.threads_dropped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ErrorKinds {
    pub unreadable: u64,
    pub torn: u64,
    pub implausible: u64,
    pub over_budget: u64,
}

impl ErrorKinds {
    /// Count one of `kind`.
    pub fn add(&mut self, kind: ReadErrorKind) {
        *match kind {
            ReadErrorKind::Unreadable => &mut self.unreadable,
            ReadErrorKind::Torn => &mut self.torn,
            ReadErrorKind::Implausible => &mut self.implausible,
            ReadErrorKind::OverBudget => &mut self.over_budget,
        } += 1;
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &ErrorKinds) {
        self.unreadable += other.unreadable;
        self.torn += other.torn;
        self.implausible += other.implausible;
        self.over_budget += other.over_budget;
    }

    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.unreadable + self.torn + self.implausible + self.over_budget
    }
}

/// Reads all threads' stacks of one target process.
pub trait StackReader: Send {
    /// Replace `sample`'s contents with the current stacks. Code ids first used by this read are
    /// appended to `new_codes`, to be sent before the sample.
    fn read(
        &mut self,
        sample: &mut Sample,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), ReadError>;

    /// Follow one function for the function view (`--function`): from now on each sample
    /// also lists that function's frames in [`Sample::followed`]. Readers that cannot (py-spy's)
    /// say why.
    fn follow_function(&mut self, _function: FollowedFunction) -> Result<(), String> {
        Err("--function needs tracer's own reader (CPython 3.8 to 3.15)".to_owned())
    }
}

/// Which function the function view (`--function`) follows, and whether its locals are read;
/// its frames in a sample are [`sample::FollowedFrame`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedFunction {
    /// `co_qualname` on 3.11+; before 3.11 code objects have no qualified name, and the part
    /// after the last dot is compared with `co_name`.
    pub qualname: String,
    /// Read the frame's local variables too (`--locals`).
    pub locals: bool,
}

impl FollowedFunction {
    /// Whether a code object named `name` (its qualname where the version has one) is the one
    /// followed.
    pub fn matches(&self, name: &str, has_qualname: bool) -> bool {
        if has_qualname {
            name == self.qualname
        } else {
            name == self.qualname.rsplit('.').next().unwrap_or(&self.qualname)
        }
    }
}

/// Assigns dense ids to code identities (file name, function name), remembering which were
/// already reported. Two levels, so that a lookup by `&str` allocates nothing.
#[derive(Debug, Default)]
pub struct CodeInterner {
    by_file: HashMap<String, HashMap<String, CodeId>>,
    len: u32,
}

impl CodeInterner {
    /// The id of `(filename, funcname)`, pushing it to `new_codes` the first time it is seen
    /// (with `first_line`, the code's `co_firstlineno` or 0).
    pub fn intern(
        &mut self,
        filename: &str,
        funcname: &str,
        first_line: u32,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> CodeId {
        if let Some(id) = self.by_file.get(filename).and_then(|f| f.get(funcname)) {
            return *id;
        }
        let id = self.len;
        self.len += 1;
        self.by_file
            .entry(filename.to_owned())
            .or_default()
            .insert(funcname.to_owned(), id);
        new_codes.push((
            id,
            CodeInfo {
                filename: filename.to_owned(),
                funcname: funcname.to_owned(),
                first_line,
            },
        ));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_reports_each_code_once() {
        let mut interner = CodeInterner::default();
        let mut new = Vec::new();
        let a = interner.intern("/a.py", "f", 1, &mut new);
        let b = interner.intern("/a.py", "g", 1, &mut new);
        let a2 = interner.intern("/a.py", "f", 1, &mut new);
        let c = interner.intern("/b.py", "f", 1, &mut new);
        assert_eq!((a, b, a2, c), (0, 1, 0, 2));
        assert_eq!(new.len(), 3);
        assert_eq!(new[2].1.filename, "/b.py");
    }
}
