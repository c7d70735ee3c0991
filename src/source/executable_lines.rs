//! Executable lines of a Python source, as Lib/trace.py's `_find_executable_linenos` finds
//! them. INTERIM: the parser-based analysis is being written (issue 2); until it lands this
//! reports no lines, so `.cover` files carry no `>>>>>>` markers.

use std::collections::BTreeSet;

/// Why a source could not be analysed.
#[derive(Debug, thiserror::Error)]
#[error("executable-line analysis is not available yet")]
pub struct ExecutableLinesError;

/// The lines trace would mark executable in `source` for Python `version`.
pub fn executable_lines(
    _source: &str,
    _version: (u8, u8),
) -> Result<BTreeSet<u32>, ExecutableLinesError> {
    Err(ExecutableLinesError)
}
