//! Executable line numbers of a Python source file, as CPython's `trace`
//! module reports them.
//!
//! `trace._find_executable_linenos(filename)` compiles the file and takes the
//! union, over every code object, of the line numbers that
//! `dis.findlinestarts` yields, minus the lines of "docstrings" found by
//! `trace._find_strings` (every line spanned by a STRING token whose previous
//! token is INDENT; the first token of the file counts as preceded by INDENT).
//!
//! This module reproduces that set without a Python interpreter: it parses the
//! source and models which lines the CPython compiler of a given version gives
//! a line-table entry.  The compiler differences between versions are kept as
//! a handful of flags in [`CompilerRules`].

use crate::reader::PyVersion;
use std::collections::BTreeSet;
use std::fmt;

use ruff_python_ast::token::{TokenKind, Tokens};
use ruff_python_ast::{
    BoolOp, CmpOp, Comprehension, Decorator, ExceptHandler, Expr, FStringPart,
    InterpolatedStringElement, InterpolatedStringElements, Number, Operator, Parameters, Pattern,
    PySourceType, Stmt, TypeParam, TypeParams, UnaryOp,
};
use ruff_text_size::{Ranged, TextRange, TextSize};

mod constants;
mod docstrings;
mod expressions;
mod line_model;
mod rules;

use constants::*;
use docstrings::*;
use line_model::*;
use rules::*;

/// The minor versions of CPython 3 whose compiler [`executable_lines`] models: those the reader
/// has a layout for (src/reader/layout/generate.py), so that a version the reader attaches to
/// always gets `.cover` marks. A version newer than the rules in `rules.rs` know gets the
/// newest version's rules; adding its layout means checking them against its own `trace`
/// (tests/it/executable_lines.rs, docs/new-python-version.md).
pub fn supported_minors() -> std::ops::RangeInclusive<u8> {
    use crate::reader::layout::{first_version, newest_version};
    first_version().minor..=newest_version().minor
}

/// Why [`executable_lines`] could not compute a line set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutableLinesError {
    /// The source is not valid Python; `line` is 1-based.
    Syntax { line: u32, message: String },
    /// The source nests deeper than this module is willing to follow
    /// (CPython itself refuses such input with a RecursionError or
    /// "too many nested parentheses").
    TooDeeplyNested { line: u32 },
    /// The Python version is outside [`supported_minors`].
    UnsupportedVersion { major: u8, minor: u8 },
    /// Nothing says which Python ran the code (a results file naming no version).
    UnknownVersion,
}

impl fmt::Display for ExecutableLinesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { line, message } => write!(f, "syntax error at line {line}: {message}"),
            Self::TooDeeplyNested { line } => write!(f, "source nested too deeply at line {line}"),
            Self::UnsupportedVersion { major, minor } => {
                write!(
                    f,
                    "unsupported Python version {major}.{minor} (supported: 3.{} to 3.{})",
                    supported_minors().start(),
                    supported_minors().end()
                )
            }
            Self::UnknownVersion => write!(
                f,
                "the Python version is unknown (the results name none): pass --python-version X.Y"
            ),
        }
    }
}

impl std::error::Error for ExecutableLinesError {}

/// Lines CPython's `trace` module would mark as executable, as Lib/trace.py's
/// `_find_executable_linenos` computes them for Python `version` (major, minor).
///
/// Supported versions are [`supported_minors`] of 3.  Line numbers are 1-based.  Code that
/// CPython 3.13 attributes to "no line" (`None`) is not reported.
pub fn executable_lines(
    source: &str,
    version: PyVersion,
) -> Result<BTreeSet<u32>, ExecutableLinesError> {
    let rules = CompilerRules::for_version(version)?;
    let lines = LineIndex::new(source);
    // The unchecked parse keeps the (partial) tree even on syntax errors, so
    // that a very deep tree is always dropped by `drop_deep_tree`.
    let parsed = ruff_python_parser::parse_unchecked_source(source, PySourceType::Python);
    let mut model = LineModel::new(rules, &lines, source);
    model.module(parsed.suite());
    let result = if let Some(error) = parsed.errors().first() {
        Err(ExecutableLinesError::Syntax {
            line: lines.line_of(error.location.start()),
            message: error.error.to_string(),
        })
    } else if let Some(line) = model.too_deep_at {
        Err(ExecutableLinesError::TooDeeplyNested { line })
    } else {
        let docstrings = docstring_lines(parsed.tokens(), &lines, rules);
        Ok(model.lines.difference(&docstrings).copied().collect())
    };
    if model.too_deep_at.is_some() {
        drop_deep_tree(parsed);
    }
    result
}

/// Runs one recursion level, growing the stack (on the heap) when little is
/// left, so that deep but valid input cannot overflow the caller's stack.
fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

/// Drops a syntax tree nested deeper than [`MAX_NESTING`].  Dropping is
/// recursive, so it runs on a stack sized for the worst case (one level per
/// token); absurdly large trees are leaked rather than risk an overflow.
fn drop_deep_tree(parsed: ruff_python_parser::Parsed<ruff_python_ast::ModModule>) {
    const BYTES_PER_LEVEL: usize = 512;
    const MAX_DROP_STACK: usize = 1 << 30;
    let stack = parsed
        .tokens()
        .len()
        .saturating_mul(BYTES_PER_LEVEL)
        .saturating_add(1 << 20);
    if stack <= MAX_DROP_STACK {
        stacker::grow(stack, move || drop(parsed));
    } else {
        std::mem::forget(parsed);
    }
}

/// How deep statements and expressions may nest before we give up.  CPython
/// compiles 1,000-deep expressions and, depending on the version, fails with
/// RecursionError somewhere between 5,000 and 50,000.
const MAX_NESTING: u32 = 3000;

/// Maps byte offsets to 1-based line numbers (`\n`, `\r\n` and `\r` end lines).
struct LineIndex {
    line_starts: Vec<u32>,
}

impl LineIndex {
    fn new(source: &str) -> Self {
        let bytes = source.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line_starts.push(offset_u32(i + 1)),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(offset_u32(i + 1)),
                _ => {}
            }
            i += 1;
        }
        Self { line_starts }
    }

    fn line_of(&self, offset: TextSize) -> u32 {
        let offset = u32::from(offset);
        let index = self.line_starts.partition_point(|&start| start <= offset);
        u32::try_from(index).unwrap_or(u32::MAX).max(1)
    }
}

fn offset_u32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// Anything whose start line can be asked for (statements and clauses).
trait RangedLine {
    fn start_line(&self, index: &LineIndex) -> u32;
}

impl<T: Ranged> RangedLine for T {
    fn start_line(&self, index: &LineIndex) -> u32 {
        index.line_of(self.start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: [PyVersion; 6] = [
        PyVersion::new(3, 8),
        PyVersion::new(3, 9),
        PyVersion::new(3, 10),
        PyVersion::new(3, 11),
        PyVersion::new(3, 12),
        PyVersion::new(3, 13),
    ];

    /// `expected[i]` is what `trace._find_executable_linenos` returned under
    /// CPython `VERSIONS[i]` (None: that version rejects the syntax).
    fn check(source: &str, expected: [Option<&[u32]>; 6]) {
        for (version, expected) in VERSIONS.iter().zip(expected) {
            let Some(expected) = expected else { continue };
            let got: Vec<u32> = match executable_lines(source, *version) {
                Ok(lines) => lines.into_iter().collect(),
                Err(error) => panic!("{version:?}: unexpected error {error}"),
            };
            assert_eq!(
                got, expected,
                "Python {}.{} for {source:?}",
                version.major, version.minor
            );
        }
    }

    #[test]
    fn docstrings_are_token_based() {
        check(
            "x = 1\nif x:\n    \"a\".join([])\n",
            [
                Some(&[1, 2]),
                Some(&[1, 2]),
                Some(&[1, 2]),
                Some(&[0, 1, 2]),
                Some(&[0, 1, 2]),
                Some(&[0, 1, 2]),
            ],
        );
    }

    #[test]
    fn module_docstring_after_comment_is_code() {
        check(
            "# comment\n\"\"\"Doc.\"\"\"\nx = 1\n",
            [
                Some(&[2, 3]),
                Some(&[2, 3]),
                Some(&[2, 3]),
                Some(&[0, 2, 3]),
                Some(&[0, 2, 3]),
                Some(&[0, 2, 3]),
            ],
        );
    }

    #[test]
    fn pass_line_pending_before_3_10() {
        check("def f(a):\n    if a:\n        pass\n    else:\n        pass\n    for i in a:\n        pass\n", [Some(&[1, 2, 3, 6, 7]), Some(&[1, 2, 3, 6, 7]), Some(&[1, 2, 3, 5, 6, 7]), Some(&[0, 1, 2, 3, 5, 6, 7]), Some(&[0, 1, 2, 3, 5, 6, 7]), Some(&[0, 1, 2, 3, 5, 6, 7])]);
    }

    #[test]
    fn constant_tests() {
        check("def f():\n    if __debug__:\n        x = 1\n    while False:\n        y = 2\n    while True:\n        if x:\n            break\n    return x\n", [Some(&[1, 3, 7, 8, 9]), Some(&[1, 3, 7, 8, 9]), Some(&[1, 2, 3, 4, 6, 7, 8, 9]), Some(&[0, 1, 2, 3, 4, 6, 7, 8, 9]), Some(&[0, 1, 2, 3, 4, 6, 7, 8, 9]), Some(&[0, 1, 2, 3, 4, 6, 7, 8, 9])]);
    }

    #[test]
    fn dead_code() {
        check(
            "def f():\n    raise ValueError\n    x = 1\ndef g():\n    return 1\n    y = 2\n",
            [
                Some(&[1, 2, 3, 4, 5]),
                Some(&[1, 2, 3, 4, 5]),
                Some(&[1, 2, 4, 5]),
                Some(&[0, 1, 2, 4, 5]),
                Some(&[0, 1, 2, 4, 5]),
                Some(&[0, 1, 2, 4, 5]),
            ],
        );
    }

    #[test]
    fn attribute_chain_lines() {
        check(
            "x = (a\n     .b\n     .c())\n",
            [
                Some(&[1]),
                Some(&[1]),
                Some(&[1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
            ],
        );
    }

    #[test]
    fn multi_line_if_test() {
        check(
            "if (\n    a):\n    x = 1\nif (\n    a == 0):\n    x = 2\n",
            [
                Some(&[1, 2, 3, 4, 5, 6]),
                Some(&[1, 2, 3, 4, 5, 6]),
                Some(&[1, 2, 3, 5, 6]),
                Some(&[0, 1, 2, 3, 5, 6]),
                Some(&[0, 2, 3, 5, 6]),
                Some(&[0, 2, 3, 5, 6]),
            ],
        );
    }

    #[test]
    fn constant_defaults_fold_before_3_10() {
        check(
            "def f(a=1,\n      b=2):\n    return a\n",
            [
                Some(&[1, 3]),
                Some(&[1, 3]),
                Some(&[1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
            ],
        );
    }

    #[test]
    fn constant_list_display() {
        check(
            "x = [\n    1,\n    2,\n    3,\n]\ny = [\n    1,\n    2,\n]\n",
            [
                Some(&[1, 2, 3, 4, 6, 7, 8]),
                Some(&[1, 6, 7, 8]),
                Some(&[1, 6, 7, 8]),
                Some(&[0, 1, 6, 7, 8]),
                Some(&[0, 1, 6, 7, 8]),
                Some(&[0, 1, 6, 7, 8]),
            ],
        );
    }

    #[test]
    fn dict_constant_keys() {
        check(
            "d = {\n    \"a\":\n        1,\n    \"b\":\n        x,\n}\n",
            [
                Some(&[1, 3, 5]),
                Some(&[1, 3, 5]),
                Some(&[1, 3, 5]),
                Some(&[0, 1, 3, 5]),
                Some(&[0, 1, 3, 5]),
                Some(&[0, 1, 3, 5]),
            ],
        );
    }

    #[test]
    fn empty_module() {
        check(
            "# only a comment\n",
            [
                Some(&[1]),
                Some(&[1]),
                Some(&[1]),
                Some(&[0]),
                Some(&[0]),
                Some(&[0]),
            ],
        );
    }

    #[test]
    fn decorated_function() {
        check(
            "@dec\ndef f():\n    return 1\n",
            [
                Some(&[1, 2, 3]),
                Some(&[1, 2, 3]),
                Some(&[1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
            ],
        );
    }

    #[test]
    fn fstring_concatenation() {
        check(
            "x = (f\"{a}\"\n     f\"{b}\"\n     \")\")\n",
            [
                Some(&[1]),
                Some(&[1, 2]),
                Some(&[1, 2]),
                Some(&[0, 1, 2]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
            ],
        );
    }

    #[test]
    fn percent_format() {
        check(
            "x = (\"%s %s\" % (\n    a, b))\n",
            [
                Some(&[1, 2]),
                Some(&[1, 2]),
                Some(&[1, 2]),
                Some(&[0, 1, 2]),
                Some(&[0, 1, 2]),
                Some(&[0, 1, 2]),
            ],
        );
    }

    #[test]
    fn parenthesized_with() {
        check(
            "with (\n    a as b):\n    pass\n",
            [
                None,
                Some(&[1, 2, 3]),
                Some(&[1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 1, 2, 3]),
                Some(&[0, 2, 3]),
            ],
        );
    }

    #[test]
    fn postponed_annotations() {
        check(
            "from __future__ import annotations\ndef f(\n    a: int,\n) -> None:\n    pass\n",
            [
                Some(&[1, 2, 5]),
                Some(&[1, 2, 5]),
                Some(&[1, 2, 5]),
                Some(&[0, 1, 2, 5]),
                Some(&[0, 1, 2, 3, 4, 5]),
                Some(&[0, 1, 2, 3, 4, 5]),
            ],
        );
    }

    #[test]
    fn annotation_only_in_function() {
        check(
            "def f():\n    x: int\n    return 1\n",
            [
                Some(&[1, 3]),
                Some(&[1, 3]),
                Some(&[1, 3]),
                Some(&[0, 1, 3]),
                Some(&[0, 1, 3]),
                Some(&[0, 1, 3]),
            ],
        );
    }

    #[test]
    fn try_else_unreachable() {
        check(
            "try:\n    raise E\nexcept E:\n    pass\nelse:\n    x = 1\n",
            [
                Some(&[1, 2, 3, 4, 6]),
                Some(&[1, 2, 3, 4, 6]),
                Some(&[1, 2, 3, 4]),
                Some(&[0, 1, 2, 3, 4]),
                Some(&[0, 1, 2, 3, 4]),
                Some(&[0, 1, 2, 3, 4]),
            ],
        );
    }

    #[test]
    fn function_docstring_is_not_code() {
        let source = "def f(x):\n    \"\"\"doc\"\"\"\n    return x\n";
        check(
            source,
            [
                Some(&[1, 3]),
                Some(&[1, 3]),
                Some(&[1, 3]),
                Some(&[0, 1, 3]),
                Some(&[0, 1, 3]),
                Some(&[0, 1, 3]),
            ],
        );
    }

    /// What CPython 3.13 and 3.14's compilers give (measured with `co_lines()`): 3.14 builds
    /// list and set displays of more than 30 constants item by item, loads each constant
    /// dict key on its own line (no BUILD_CONST_KEY_MAP), and folds constant defaults.
    #[test]
    fn compiler_changes_of_3_14() {
        let items: String = (0..31).map(|i| format!("    {i},\n")).collect();
        let list = format!("x = [\n{items}]\n");
        let lines_13 = executable_lines(&list, PyVersion::new(3, 13)).unwrap();
        let lines_14 = executable_lines(&list, PyVersion::new(3, 14)).unwrap();
        assert_eq!(lines_13.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(lines_14.len(), 2 + 31, "{lines_14:?}");

        let dict = "x = {\n    'a':\n        (1, 2),\n    'b':\n        (3, 4),\n}\n";
        let keys = |version| executable_lines(dict, version).unwrap();
        assert_eq!(
            keys(PyVersion::new(3, 13)).into_iter().collect::<Vec<_>>(),
            vec![0, 1, 3, 5]
        );
        assert_eq!(
            keys(PyVersion::new(3, 14)).into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );

        let defaults = "def f(a=1,\n      b=2):\n    pass\n";
        let lines = |version| executable_lines(defaults, version).unwrap();
        assert!(lines(PyVersion::new(3, 13)).contains(&2));
        assert!(!lines(PyVersion::new(3, 14)).contains(&2));
    }

    #[test]
    fn unsupported_versions_are_errors() {
        for (major, minor) in [(2, 7), (3, 7), (3, 16), (4, 0)] {
            assert!(matches!(
                executable_lines("x = 1\n", PyVersion::new(major, minor)),
                Err(ExecutableLinesError::UnsupportedVersion { .. })
            ));
        }
    }

    #[test]
    fn syntax_errors_are_errors() {
        let error = executable_lines("x = 1\ndef (:\n", PyVersion::new(3, 12));
        assert!(
            matches!(error, Err(ExecutableLinesError::Syntax { line: 2, .. })),
            "{error:?}"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for depth in [100usize, 1_000, 100_000] {
            let sources = [
                format!("x = {}1{}\n", "(".repeat(depth), ")".repeat(depth)),
                format!("x = {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
                format!("x = {}y\n", "not ".repeat(depth)),
                format!("x = {}y\n", "-".repeat(depth)),
                format!("x = y{}\n", "+y".repeat(depth)),
                format!("x = y{}\n", ".a".repeat(depth)),
                format!("x = {}\n", "lambda: ".repeat(depth)),
                format!(
                    "x = f\"{}{}\"\n",
                    "{f'".repeat(depth.min(1000)),
                    "'}".repeat(depth.min(1000))
                ),
            ];
            for source in &sources {
                // Either answer is fine; it must come back without a crash.
                let _ = executable_lines(source, PyVersion::new(3, 12));
                let _ = executable_lines(source, PyVersion::new(3, 8));
            }
        }
        let nested_blocks: String = (0..150)
            .map(|level| format!("{}if x:\n", "    ".repeat(level)))
            .collect::<String>()
            + &"    ".repeat(150)
            + "pass\n";
        let _ = executable_lines(&nested_blocks, PyVersion::new(3, 10));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // A small deterministic generator over Python-ish fragments and bytes.
        let fragments = [
            "def ", "class ", "if ", "else:", "elif ", "while ", "for ", " in ", "try:", "except",
            "finally:", "with ", "return", "yield", "lambda", "(", ")", "[", "]", "{", "}", ":",
            "\n", "    ", "\t", "'", "\"", "\"\"\"", "f'", "{x}", "#", "\\", "=", ".", ",", "x",
            "1", "pass", "@", "*", "**", "->", "async ", "await ", "match ", "case ", "\r",
            "\u{feff}", "é",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut source = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                source.push_str(fragments[(seed % fragments.len() as u64) as usize]);
            }
            for minor in supported_minors() {
                let _ = executable_lines(&source, PyVersion::new(3, minor));
            }
        }
    }
}
