//! The compiler behaviours that differ between versions, and the predicates on statements
//! that the line model asks (does it always leave, does it hold a `break`, is it a docstring).

use super::*;
use crate::reader::PyVersion;

/// The compiler behaviours that differ between the supported versions.
#[derive(Debug, Clone, Copy)]
pub(super) struct CompilerRules {
    /// 3.10+: an attribute load is attributed to the line of the attribute name.
    pub(super) attribute_on_name_line: bool,
    /// 3.11+: each function-like code object starts with RESUME on its first
    /// line (the `def`, `lambda` or first-decorator line).
    pub(super) code_starts_at_definition_line: bool,
    /// 3.12+: the tokenizer splits f-strings into FSTRING_START/MIDDLE/END, so
    /// an f-string is never a STRING token for `_find_strings`.
    pub(super) fstrings_are_not_string_tokens: bool,
    /// 3.8-3.9: a statement that compiles to nothing (`pass`, `global`, a
    /// constant expression) only leaves its line pending: the line shows up
    /// if the compiler emits an instruction (a jump, an implicit return...)
    /// before the next statement sets a new line.  3.10+ (PEP 626) give
    /// `pass` and constant expressions a NOP that keeps the line.
    pub(super) empty_statements_leave_pending_line: bool,
    /// 3.10+: control-flow-graph dead code elimination (code after return,
    /// raise, break, continue, infinite loops; constant-false branches).
    /// Before 3.10 only code right after a `return` is dropped.
    pub(super) removes_unreachable_code: bool,
    /// 3.8-3.9: `if`/`while` with a constant test compile no test at all,
    /// so their line is missing; 3.10+ keep it as a NOP.
    pub(super) constant_test_keeps_line: bool,
    /// 3.8-3.9 and 3.14+: all-constant positional defaults are folded into
    /// one constant and lose their lines (by the peephole optimizer up to
    /// 3.9, the CFG optimizer in 3.14); 3.10-3.13 leave NOPs carrying them.
    pub(super) folded_defaults_lose_lines: bool,
    /// 3.9+: a list/set display of more than two constants is built from
    /// one constant tuple, so its elements have no lines.
    pub(super) constant_displays_folded: bool,
    /// 3.10+: dicts of more than 15 items are built item by item, so even
    /// constant keys get their lines.
    pub(super) big_dicts_built_item_by_item: bool,
    /// 3.11+: the module code object starts with RESUME at line 0.
    pub(super) module_starts_at_line_zero: bool,
    /// Before 3.12, how f-string interpolations were located.
    pub(super) fstring_expression_search: FStringSearch,
    /// Whether an `if`/`elif`/`while` line gets an instruction of its own
    /// when its test starts on a later line.
    pub(super) condition_statement_line: ConditionLine,
    /// 3.8-3.12: a `with` statement's own line carries its setup; 3.13 uses
    /// the context expressions' lines.
    pub(super) with_statement_has_own_line: bool,
    /// 3.12+: each run of literal text in an f-string (merged across an
    /// implicit concatenation) is loaded at the line where the run starts.
    pub(super) fstring_literals_keep_lines: bool,
    /// 3.12+: postponed (`from __future__ import annotations`) signature
    /// annotations are loaded as constants at their own lines.
    pub(super) postponed_annotations_keep_lines: bool,
    /// 3.11+: the AST optimizer turns `"...%s..." % (a, b)` into an
    /// f-string, so the tuple display has no instruction of its own.
    pub(super) percent_format_becomes_fstring: bool,
    /// 3.10+: a call with more than 30 argument slots builds its positional
    /// arguments like a tuple display (folded when all are constants).
    pub(super) big_calls_build_argument_tuple: bool,
    /// 3.8-3.10: a module whose code has no line at all gets line 1 (its
    /// `co_firstlineno`) for the implicit `return None`.
    pub(super) empty_module_returns_at_line_one: bool,
    /// 3.14+: list and set displays of more than 30 (STACK_USE_GUIDELINE)
    /// elements are built item by item, each constant at its own line.
    pub(super) big_displays_built_item_by_item: bool,
    /// 3.8-3.13: runs of constant dict keys are loaded as one tuple
    /// (BUILD_CONST_KEY_MAP); 3.14 removed that instruction and loads each key.
    pub(super) constant_key_maps: bool,
}

/// When the line of an `if`/`elif`/`while` keyword gets an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConditionLine {
    /// 3.8-3.9: always.
    Always,
    /// 3.10-3.11: unless the first tested operand is a comparison.
    UnlessFirstTestIsComparison,
    /// 3.12+: never; only the test's own lines appear.
    Never,
}

/// How CPython located the code of an f-string interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FStringSearch {
    /// 3.12+: real token positions.
    None,
    /// 3.8: by searching the expression text in the first string of an
    /// implicit concatenation.
    FirstPart,
}

impl CompilerRules {
    pub(super) fn for_version(version: PyVersion) -> Result<Self, ExecutableLinesError> {
        let PyVersion { major, minor } = version;
        if major != 3 || !super::supported_minors().contains(&minor) {
            return Err(ExecutableLinesError::UnsupportedVersion { major, minor });
        }
        Ok(Self {
            attribute_on_name_line: minor >= 10,
            code_starts_at_definition_line: minor >= 11,
            fstrings_are_not_string_tokens: minor >= 12,
            empty_statements_leave_pending_line: minor <= 9,
            removes_unreachable_code: minor >= 10,
            constant_test_keeps_line: minor >= 10,
            folded_defaults_lose_lines: minor <= 9 || minor >= 14,
            constant_displays_folded: minor >= 9,
            big_dicts_built_item_by_item: minor >= 10,
            module_starts_at_line_zero: minor >= 11,
            fstring_expression_search: match minor {
                8 => FStringSearch::FirstPart,
                _ => FStringSearch::None,
            },
            condition_statement_line: match minor {
                8 | 9 => ConditionLine::Always,
                10 | 11 => ConditionLine::UnlessFirstTestIsComparison,
                _ => ConditionLine::Never,
            },
            with_statement_has_own_line: minor <= 12,
            fstring_literals_keep_lines: minor >= 12,
            postponed_annotations_keep_lines: minor >= 12,
            percent_format_becomes_fstring: minor >= 11,
            big_calls_build_argument_tuple: minor >= 10,
            empty_module_returns_at_line_one: minor <= 10,
            big_displays_built_item_by_item: minor >= 14,
            constant_key_maps: minor <= 13,
        })
    }
}

/// Whether `format % (items...)` is a str format of only `%s`/`%r`/`%a`
/// units (and `%%`), one per item, which 3.11+ compile as an f-string.
pub(super) fn is_simple_percent_format(op: &ruff_python_ast::ExprBinOp, items: &[Expr]) -> bool {
    let Expr::StringLiteral(format) = &*op.left else {
        return false;
    };
    if op.op != Operator::Mod || items.iter().any(Expr::is_starred_expr) {
        return false;
    }
    let text = format.value.to_str();
    let mut chars = text.chars().peekable();
    let mut units = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            continue;
        }
        while chars.peek() == Some(&'-') {
            chars.next();
        }
        let mut digits = 0;
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            digits += 1;
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
                digits += 1;
            }
        }
        match chars.next() {
            Some('s' | 'r' | 'a') if digits <= 6 => units += 1,
            _ => return false,
        }
    }
    units == items.len()
}

/// The first operand a test evaluates, looking through `and`/`or`/`not`.
pub(super) fn first_tested_operand(test: &Expr, depth: u32) -> &Expr {
    match test {
        _ if depth > MAX_NESTING => test,
        Expr::BoolOp(op) => op
            .values
            .first()
            .map_or(test, |v| with_stack(|| first_tested_operand(v, depth + 1))),
        Expr::UnaryOp(op) if op.op == UnaryOp::Not => {
            with_stack(|| first_tested_operand(&op.operand, depth + 1))
        }
        _ => test,
    }
}

/// Whether the module starts with `from __future__ import annotations`.
pub(super) fn has_future_annotations(body: &[Stmt]) -> bool {
    let statements = match body.split_first() {
        Some((first, rest)) if is_docstring(first) => rest,
        _ => body,
    };
    statements
        .iter()
        .map_while(|statement| match statement {
            Stmt::ImportFrom(import)
                if import
                    .module
                    .as_ref()
                    .is_some_and(|m| m.as_str() == "__future__") =>
            {
                Some(
                    import
                        .names
                        .iter()
                        .any(|alias| alias.name.as_str() == "annotations"),
                )
            }
            _ => None,
        })
        .any(|found| found)
}

/// Statements that compile to no instruction of their own.
pub(super) fn is_empty_statement(statement: &Stmt) -> bool {
    match statement {
        Stmt::Pass(_) | Stmt::Global(_) | Stmt::Nonlocal(_) => true,
        Stmt::Expr(expression) => is_literal(&expression.value),
        _ => false,
    }
}

/// A first statement that CPython takes as the docstring.
pub(super) fn is_docstring(statement: &Stmt) -> bool {
    matches!(statement, Stmt::Expr(expression) if matches!(*expression.value, Expr::StringLiteral(_)))
}

/// Start line of the last statement (innermost) of a suite.
pub(super) fn last_statement_line(body: &[Stmt], index: &LineIndex) -> Option<u32> {
    let mut last = body.last()?;
    let mut depth = 0;
    loop {
        let inner: Option<&Stmt> = match last {
            Stmt::If(s) => s
                .elif_else_clauses
                .last()
                .map_or(s.body.last(), |c| c.body.last()),
            Stmt::For(s) => s.orelse.last().or(s.body.last()),
            Stmt::While(s) => s.orelse.last().or(s.body.last()),
            Stmt::With(s) => s.body.last(),
            Stmt::Try(s) => s.finalbody.last().or(s.orelse.last()).or_else(|| {
                s.handlers
                    .last()
                    .map_or(s.body.last(), |ExceptHandler::ExceptHandler(h)| {
                        h.body.last()
                    })
            }),
            _ => None,
        };
        depth += 1;
        match inner {
            Some(statement) if depth < MAX_NESTING => last = statement,
            _ => return Some(index.line_of(last.start())),
        }
    }
}

/// Whether control never continues after `statement` (3.10+ CFG view).
pub(super) fn always_leaves(statement: &Stmt, rules: CompilerRules) -> bool {
    always_leaves_at(statement, rules, 0)
}

pub(super) fn always_leaves_at(statement: &Stmt, rules: CompilerRules, depth: u32) -> bool {
    if depth > MAX_NESTING {
        return false;
    }
    let suite_leaves = |body: &[Stmt]| {
        body.iter()
            .any(|s| with_stack(|| always_leaves_at(s, rules, depth + 1)))
    };
    match statement {
        Stmt::Return(_) | Stmt::Raise(_) | Stmt::Break(_) | Stmt::Continue(_) => true,
        Stmt::Assert(s) => constant_truth(&s.test, rules) == Some(false),
        Stmt::If(s) => {
            let mut branches: Vec<(Option<&Expr>, &[Stmt])> = vec![(Some(&*s.test), &s.body[..])];
            branches.extend(
                s.elif_else_clauses
                    .iter()
                    .map(|c| (c.test.as_ref(), &c.body[..])),
            );
            for (test, body) in branches {
                match test.map(|t| constant_truth(t, rules)) {
                    Some(Some(false)) => continue,
                    Some(Some(true)) | None => return suite_leaves(body),
                    Some(None) => {
                        if !suite_leaves(body) {
                            return false;
                        }
                    }
                }
            }
            // Every test may be false and there is no `else`.
            false
        }
        Stmt::While(s) => {
            constant_truth(&s.test, rules) == Some(true) && !contains_break(&s.body, 0)
        }
        Stmt::Try(s) => {
            suite_leaves(&s.finalbody)
                || ((suite_leaves(&s.body) || suite_leaves(&s.orelse))
                    && s.handlers
                        .iter()
                        .all(|ExceptHandler::ExceptHandler(h)| suite_leaves(&h.body)))
        }
        _ => false,
    }
}

/// Whether a loop body has a `break` for this loop (not for nested loops).
pub(super) fn contains_break(body: &[Stmt], depth: u32) -> bool {
    if depth > MAX_NESTING {
        return false;
    }
    body.iter()
        .any(|statement| with_stack(|| contains_break_in(statement, depth)))
}

pub(super) fn contains_break_in(statement: &Stmt, depth: u32) -> bool {
    match statement {
        Stmt::Break(_) => true,
        Stmt::If(s) => {
            contains_break(&s.body, depth + 1)
                || s.elif_else_clauses
                    .iter()
                    .any(|c| contains_break(&c.body, depth + 1))
        }
        Stmt::With(s) => contains_break(&s.body, depth + 1),
        Stmt::Try(s) => {
            contains_break(&s.body, depth + 1)
                || contains_break(&s.orelse, depth + 1)
                || contains_break(&s.finalbody, depth + 1)
                || s.handlers
                    .iter()
                    .any(|ExceptHandler::ExceptHandler(h)| contains_break(&h.body, depth + 1))
        }
        Stmt::Match(s) => s.cases.iter().any(|c| contains_break(&c.body, depth + 1)),
        Stmt::For(s) => contains_break(&s.orelse, depth + 1),
        Stmt::While(s) => contains_break(&s.orelse, depth + 1),
        _ => false,
    }
}
