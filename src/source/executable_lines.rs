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

use std::collections::BTreeSet;
use std::fmt;

use ruff_python_ast::token::{TokenKind, Tokens};
use ruff_python_ast::{
    BoolOp, CmpOp, Comprehension, Decorator, ExceptHandler, Expr, FStringPart,
    InterpolatedStringElement, InterpolatedStringElements, Number, Operator, Parameters, Pattern,
    PySourceType, Stmt, TypeParam, TypeParams, UnaryOp,
};
use ruff_text_size::{Ranged, TextRange, TextSize};

/// Why [`executable_lines`] could not compute a line set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutableLinesError {
    /// The source is not valid Python; `line` is 1-based.
    Syntax { line: u32, message: String },
    /// The source nests deeper than this module is willing to follow
    /// (CPython itself refuses such input with a RecursionError or
    /// "too many nested parentheses").
    TooDeeplyNested { line: u32 },
    /// The Python version is outside the supported range (3.8 to 3.14).
    UnsupportedVersion { major: u8, minor: u8 },
}

impl fmt::Display for ExecutableLinesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { line, message } => write!(f, "syntax error at line {line}: {message}"),
            Self::TooDeeplyNested { line } => write!(f, "source nested too deeply at line {line}"),
            Self::UnsupportedVersion { major, minor } => {
                write!(
                    f,
                    "unsupported Python version {major}.{minor} (supported: 3.8 to 3.14)"
                )
            }
        }
    }
}

impl std::error::Error for ExecutableLinesError {}

/// Lines CPython's `trace` module would mark as executable, as Lib/trace.py's
/// `_find_executable_linenos` computes them for Python `version` (major, minor).
///
/// Supported versions are 3.8 to 3.14.  Line numbers are 1-based.  Code that
/// CPython 3.13 attributes to "no line" (`None`) is not reported.
pub fn executable_lines(
    source: &str,
    version: (u8, u8),
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

/// The compiler behaviours that differ between the supported versions.
#[derive(Debug, Clone, Copy)]
struct CompilerRules {
    /// 3.10+: an attribute load is attributed to the line of the attribute name.
    attribute_on_name_line: bool,
    /// 3.11+: each function-like code object starts with RESUME on its first
    /// line (the `def`, `lambda` or first-decorator line).
    code_starts_at_definition_line: bool,
    /// 3.12+: the tokenizer splits f-strings into FSTRING_START/MIDDLE/END, so
    /// an f-string is never a STRING token for `_find_strings`.
    fstrings_are_not_string_tokens: bool,
    /// 3.8-3.9: a statement that compiles to nothing (`pass`, `global`, a
    /// constant expression) only leaves its line pending: the line shows up
    /// if the compiler emits an instruction (a jump, an implicit return...)
    /// before the next statement sets a new line.  3.10+ (PEP 626) give
    /// `pass` and constant expressions a NOP that keeps the line.
    empty_statements_leave_pending_line: bool,
    /// 3.10+: control-flow-graph dead code elimination (code after return,
    /// raise, break, continue, infinite loops; constant-false branches).
    /// Before 3.10 only code right after a `return` is dropped.
    removes_unreachable_code: bool,
    /// 3.8-3.9: `if`/`while` with a constant test compile no test at all,
    /// so their line is missing; 3.10+ keep it as a NOP.
    constant_test_keeps_line: bool,
    /// 3.8-3.9 and 3.14+: all-constant positional defaults are folded into
    /// one constant and lose their lines (by the peephole optimizer up to
    /// 3.9, the CFG optimizer in 3.14); 3.10-3.13 leave NOPs carrying them.
    folded_defaults_lose_lines: bool,
    /// 3.9+: a list/set display of more than two constants is built from
    /// one constant tuple, so its elements have no lines.
    constant_displays_folded: bool,
    /// 3.10+: dicts of more than 15 items are built item by item, so even
    /// constant keys get their lines.
    big_dicts_built_item_by_item: bool,
    /// 3.11+: the module code object starts with RESUME at line 0.
    module_starts_at_line_zero: bool,
    /// Before 3.12, how f-string interpolations were located.
    fstring_expression_search: FStringSearch,
    /// Whether an `if`/`elif`/`while` line gets an instruction of its own
    /// when its test starts on a later line.
    condition_statement_line: ConditionLine,
    /// 3.8-3.12: a `with` statement's own line carries its setup; 3.13 uses
    /// the context expressions' lines.
    with_statement_has_own_line: bool,
    /// 3.12+: each run of literal text in an f-string (merged across an
    /// implicit concatenation) is loaded at the line where the run starts.
    fstring_literals_keep_lines: bool,
    /// 3.12+: postponed (`from __future__ import annotations`) signature
    /// annotations are loaded as constants at their own lines.
    postponed_annotations_keep_lines: bool,
    /// 3.11+: the AST optimizer turns `"...%s..." % (a, b)` into an
    /// f-string, so the tuple display has no instruction of its own.
    percent_format_becomes_fstring: bool,
    /// 3.10+: a call with more than 30 argument slots builds its positional
    /// arguments like a tuple display (folded when all are constants).
    big_calls_build_argument_tuple: bool,
    /// 3.8-3.10: a module whose code has no line at all gets line 1 (its
    /// `co_firstlineno`) for the implicit `return None`.
    empty_module_returns_at_line_one: bool,
    /// 3.14+: list and set displays of more than 30 (STACK_USE_GUIDELINE)
    /// elements are built item by item, each constant at its own line.
    big_displays_built_item_by_item: bool,
    /// 3.8-3.13: runs of constant dict keys are loaded as one tuple
    /// (BUILD_CONST_KEY_MAP); 3.14 removed that instruction and loads each key.
    constant_key_maps: bool,
}

/// When the line of an `if`/`elif`/`while` keyword gets an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConditionLine {
    /// 3.8-3.9: always.
    Always,
    /// 3.10-3.11: unless the first tested operand is a comparison.
    UnlessFirstTestIsComparison,
    /// 3.12+: never; only the test's own lines appear.
    Never,
}

/// How CPython located the code of an f-string interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FStringSearch {
    /// 3.12+: real token positions.
    None,
    /// 3.8: by searching the expression text in the first string of an
    /// implicit concatenation.
    FirstPart,
}

impl CompilerRules {
    fn for_version(version: (u8, u8)) -> Result<Self, ExecutableLinesError> {
        let (major, minor) = version;
        if major != 3 || !(8..=14).contains(&minor) {
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

/// Lines that `trace._find_strings` reports: every line spanned by a string
/// token that directly follows an INDENT token (or starts the file).
fn docstring_lines(tokens: &Tokens, lines: &LineIndex, rules: CompilerRules) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    // Python's tokenize emits INDENT right before the first token of the
    // first real line of a block, after any comment-only or blank lines.
    let mut after_indent = true;
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        let mut string_range = None;
        match token.kind() {
            TokenKind::String => string_range = Some(token.range()),
            TokenKind::FStringStart if !rules.fstrings_are_not_string_tokens => {
                // Before 3.12 a whole f-string is one STRING token.
                let end = matching_fstring_end(tokens, index);
                let end_range = tokens.get(end).map_or(token.range(), Ranged::range);
                string_range = Some(TextRange::new(token.start(), end_range.end()));
                index = end;
            }
            _ => {}
        }
        match token.kind() {
            TokenKind::Indent => after_indent = true,
            TokenKind::Comment | TokenKind::NonLogicalNewline if index > 0 => {}
            _ => {
                if let (Some(range), true) = (string_range, after_indent) {
                    found.extend(lines.line_of(range.start())..=lines.line_of(range.end()));
                }
                after_indent = false;
            }
        }
        index += 1;
    }
    found
}

/// Index of the FStringEnd token closing the f-string opened at `start`.
fn matching_fstring_end(tokens: &Tokens, start: usize) -> usize {
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(start) {
        match token.kind() {
            TokenKind::FStringStart => depth += 1,
            TokenKind::FStringEnd => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

/// Which kind of code block a suite is the body of (decides what a leading
/// docstring compiles to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// Module and class docstrings are stored into `__doc__` at their line.
    Module,
    Class,
    /// A function docstring only becomes `co_consts[0]`: no code, no line.
    Function,
}

/// Where an f-string interpolation's code is attributed before 3.12, when
/// CPython located it by searching the expression text in a string token.
#[derive(Debug, Clone, Copy)]
struct LineShift {
    /// Line of the `{` in the real source.
    actual_start: u32,
    /// Line CPython attributes to that `{`.
    reported_start: u32,
}

/// Walks the syntax tree and collects the lines the compiler would put in
/// the line tables of the module and of every nested code object.
struct LineModel<'a> {
    rules: CompilerRules,
    index: &'a LineIndex,
    source: &'a str,
    lines: BTreeSet<u32>,
    /// 3.8-3.9: line of an empty statement waiting for an instruction.
    pending: Option<u32>,
    shift: Option<LineShift>,
    /// Kind of the innermost module, class or function body being walked.
    scope: BodyKind,
    /// `from __future__ import annotations`: annotations are not evaluated.
    postponed_annotations: bool,
    depth: u32,
    too_deep_at: Option<u32>,
}

impl<'a> LineModel<'a> {
    fn new(rules: CompilerRules, index: &'a LineIndex, source: &'a str) -> Self {
        Self {
            rules,
            index,
            source,
            lines: BTreeSet::new(),
            pending: None,
            shift: None,
            scope: BodyKind::Module,
            postponed_annotations: false,
            depth: 0,
            too_deep_at: None,
        }
    }

    fn line(&self, node: &impl Ranged) -> u32 {
        self.index.line_of(node.start())
    }

    fn mark(&mut self, line: u32) {
        let line = match self.shift {
            Some(shift) => line
                .saturating_add(shift.reported_start)
                .saturating_sub(shift.actual_start),
            None => line,
        };
        self.lines.insert(line);
    }

    fn mark_start(&mut self, node: &impl Ranged) {
        let line = self.line(node);
        self.mark(line);
    }

    /// The compiler emitted an instruction (jump, implicit return, block
    /// cleanup) that takes over the pending line of an empty statement.
    fn flush_pending(&mut self) {
        if let Some(line) = self.pending.take() {
            self.mark(line);
        }
    }

    /// Enters one nesting level; false (and the error recorded) if too deep.
    fn enter(&mut self, node: &impl Ranged) -> bool {
        self.depth += 1;
        if self.too_deep_at.is_some() {
            return false;
        }
        if self.depth > MAX_NESTING {
            self.too_deep_at = Some(self.line(node));
            return false;
        }
        true
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn module(&mut self, body: &[Stmt]) {
        self.postponed_annotations = has_future_annotations(body);
        self.body(body, BodyKind::Module);
        self.flush_pending();
        if self.rules.empty_module_returns_at_line_one && self.lines.is_empty() {
            self.mark(1);
        }
        if self.rules.module_starts_at_line_zero {
            self.lines.insert(0);
        }
    }

    /// A module, class or function body: docstring handling, then the suite.
    fn body(&mut self, body: &[Stmt], kind: BodyKind) {
        let outer_scope = std::mem::replace(&mut self.scope, kind);
        let statements = match body.split_first() {
            Some((first, rest)) if is_docstring(first) => {
                if kind != BodyKind::Function {
                    self.pending = None;
                    self.mark_start(first);
                }
                rest
            }
            _ => body,
        };
        self.suite(statements);
        self.scope = outer_scope;
    }

    /// Statements of one block, stopping where the rest becomes unreachable.
    fn suite(&mut self, body: &[Stmt]) {
        for statement in body {
            self.statement(statement);
            if self.ends_flow(statement) {
                break;
            }
        }
    }

    /// Whether the compiler drops the statements following `statement`.
    fn ends_flow(&self, statement: &Stmt) -> bool {
        if self.rules.removes_unreachable_code {
            always_leaves(statement, self.rules)
        } else {
            matches!(statement, Stmt::Return(_))
        }
    }

    /// A suite the compiler walks without emitting code (constant-false
    /// branch before 3.10): it still moves the current line, which the next
    /// emitted instruction picks up.
    fn unemitted_suite(&mut self, body: &[Stmt]) {
        if self.rules.empty_statements_leave_pending_line {
            if let Some(line) = last_statement_line(body, self.index) {
                self.pending = Some(line);
            }
        }
    }

    fn statement(&mut self, statement: &Stmt) {
        if self.enter(statement) {
            with_stack(|| self.statement_inner(statement));
        }
        self.leave();
    }

    fn empty_statement(&mut self, statement: &Stmt) {
        if self.rules.empty_statements_leave_pending_line {
            self.pending = Some(self.line(statement));
        } else if matches!(statement, Stmt::Pass(_) | Stmt::Expr(_)) {
            // 3.10+: a NOP keeps the line.
            self.mark_start(statement);
        }
    }

    /// `name: annotation` without a value inside a function compiles to
    /// nothing.
    fn is_unevaluated_annotation(&self, statement: &Stmt) -> bool {
        matches!(statement, Stmt::AnnAssign(assign)
            if assign.value.is_none() && assign.simple && self.scope == BodyKind::Function)
    }

    /// A parameter or return annotation.
    fn signature_annotation(&mut self, annotation: &Expr) {
        if self.postponed_annotations && self.rules.postponed_annotations_keep_lines {
            self.mark_start(annotation);
        } else {
            self.annotation(annotation);
        }
    }

    /// Annotations are evaluated (in module and class bodies, and for
    /// function signatures) unless postponed by the `__future__` import.
    fn annotation(&mut self, annotation: &Expr) {
        if !self.postponed_annotations {
            self.expression(annotation);
        }
    }

    fn statement_inner(&mut self, statement: &Stmt) {
        if is_empty_statement(statement) || self.is_unevaluated_annotation(statement) {
            self.empty_statement(statement);
            return;
        }
        self.pending = None;
        match statement {
            Stmt::FunctionDef(def) => {
                self.decorators(&def.decorator_list);
                self.parameter_defaults(&def.parameters);
                self.type_params(def.type_params.as_deref());
                for parameter in def.parameters.iter() {
                    if let Some(annotation) = parameter.annotation() {
                        self.signature_annotation(annotation);
                    }
                }
                if let Some(returns) = &def.returns {
                    self.signature_annotation(returns);
                }
                self.mark_start(&def.name);
                self.code_object_start(statement, &def.decorator_list);
                self.body(&def.body, BodyKind::Function);
                self.flush_pending();
            }
            Stmt::ClassDef(class) => {
                self.decorators(&class.decorator_list);
                self.type_params(class.type_params.as_deref());
                self.mark_start(&class.name);
                if let Some(arguments) = &class.arguments {
                    for argument in &arguments.args {
                        self.expression(argument);
                    }
                    for keyword in &arguments.keywords {
                        self.expression(&keyword.value);
                    }
                }
                self.code_object_start(statement, &class.decorator_list);
                self.body(&class.body, BodyKind::Class);
                self.flush_pending();
            }
            Stmt::Return(ret) => {
                self.mark_start(statement);
                if let Some(value) = &ret.value {
                    self.expression(value);
                }
            }
            Stmt::Delete(delete) => {
                self.mark_start(statement);
                self.expressions(&delete.targets);
            }
            Stmt::TypeAlias(alias) => {
                self.mark_start(statement);
                self.expression(&alias.value);
            }
            Stmt::Assign(assign) => {
                self.mark_start(statement);
                self.expression(&assign.value);
                self.expressions(&assign.targets);
            }
            Stmt::AugAssign(assign) => {
                self.mark_start(statement);
                self.expression(&assign.target);
                self.expression(&assign.value);
            }
            Stmt::AnnAssign(assign) => {
                self.mark_start(statement);
                if let Some(value) = &assign.value {
                    self.expression(value);
                    self.expression(&assign.target);
                } else if !assign.simple {
                    // Only the target's sub-expressions are evaluated.
                    match &*assign.target {
                        Expr::Attribute(attribute) => self.expression(&attribute.value),
                        Expr::Subscript(subscript) => {
                            self.expression(&subscript.value);
                            self.expression(&subscript.slice);
                        }
                        _ => {}
                    }
                }
                if self.scope != BodyKind::Function {
                    self.annotation(&assign.annotation);
                }
            }
            Stmt::For(for_loop) => {
                self.mark_start(statement);
                self.iterable(&for_loop.iter);
                self.expression(&for_loop.target);
                self.suite(&for_loop.body);
                self.flush_pending();
                self.suite(&for_loop.orelse);
            }
            Stmt::While(while_loop) => self.while_loop(statement, while_loop),
            Stmt::If(if_statement) => self.if_statement(statement, if_statement),
            Stmt::With(with) => {
                if self.rules.with_statement_has_own_line {
                    self.mark_start(statement);
                }
                for item in &with.items {
                    self.expression(&item.context_expr);
                    if let Some(target) = &item.optional_vars {
                        self.expression(target);
                    }
                }
                self.suite(&with.body);
                self.flush_pending();
            }
            Stmt::Match(match_statement) => {
                self.mark_start(statement);
                self.expression(&match_statement.subject);
                for case in &match_statement.cases {
                    self.pattern(&case.pattern);
                    if let Some(guard) = &case.guard {
                        self.expression(guard);
                    }
                    self.suite(&case.body);
                }
            }
            Stmt::Raise(raise) => {
                self.mark_start(statement);
                if let Some(exception) = &raise.exc {
                    self.expression(exception);
                }
                if let Some(cause) = &raise.cause {
                    self.expression(cause);
                }
            }
            Stmt::Try(try_statement) => {
                self.mark_start(statement);
                self.suite(&try_statement.body);
                self.flush_pending();
                for handler in &try_statement.handlers {
                    let ExceptHandler::ExceptHandler(handler) = handler;
                    self.pending = None;
                    self.mark_start(handler);
                    if let Some(kind) = &handler.type_ {
                        self.expression(kind);
                    }
                    self.suite(&handler.body);
                    self.flush_pending();
                }
                if !(self.rules.removes_unreachable_code
                    && try_statement
                        .body
                        .iter()
                        .any(|s| always_leaves(s, self.rules)))
                {
                    self.suite(&try_statement.orelse);
                }
                if !try_statement.finalbody.is_empty() {
                    self.flush_pending();
                    self.suite(&try_statement.finalbody);
                    self.flush_pending();
                }
            }
            Stmt::Assert(assert) => {
                self.mark_start(statement);
                self.expression(&assert.test);
                if let Some(message) = &assert.msg {
                    self.expression(message);
                }
            }
            Stmt::Import(_) | Stmt::ImportFrom(_) | Stmt::Break(_) | Stmt::Continue(_) => {
                self.mark_start(statement);
            }
            Stmt::Expr(expression_statement) => {
                self.mark_start(statement);
                self.expression(&expression_statement.value);
            }
            Stmt::Pass(_) | Stmt::Global(_) | Stmt::Nonlocal(_) | Stmt::IpyEscapeCommand(_) => {}
        }
    }

    fn while_loop(&mut self, statement: &Stmt, while_loop: &ruff_python_ast::StmtWhile) {
        match constant_truth(&while_loop.test, self.rules) {
            Some(false) => {
                if self.rules.constant_test_keeps_line {
                    self.mark_start(statement);
                } else {
                    self.unemitted_suite(&while_loop.body);
                }
                self.suite(&while_loop.orelse);
            }
            Some(true) => {
                if self.rules.constant_test_keeps_line {
                    self.mark_start(statement);
                }
                self.suite(&while_loop.body);
                self.flush_pending();
                self.suite(&while_loop.orelse);
            }
            None => {
                self.condition_statement_line(self.line(statement), &while_loop.test);
                self.condition(&while_loop.test);
                self.suite(&while_loop.body);
                self.flush_pending();
                self.suite(&while_loop.orelse);
            }
        }
    }

    fn if_statement(&mut self, statement: &Stmt, if_statement: &ruff_python_ast::StmtIf) {
        // An `elif` chain is a nested `if` in the `else` branch.
        let mut test = Some(&*if_statement.test);
        let mut test_node: &dyn RangedLine = statement;
        let mut body: &[Stmt] = &if_statement.body;
        let mut clauses = if_statement.elif_else_clauses.iter();
        loop {
            let next = clauses.next();
            let Some(condition) = test else {
                // A final `else:` body.
                self.suite(body);
                return;
            };
            self.pending = None;
            match constant_truth(condition, self.rules) {
                Some(true) => {
                    if self.rules.constant_test_keeps_line {
                        self.mark(test_node.start_line(self.index));
                    }
                    self.suite(body);
                    if !self.rules.constant_test_keeps_line {
                        // Before 3.10 the other branches are not compiled.
                        let rest: Vec<&[Stmt]> = next
                            .into_iter()
                            .chain(clauses.by_ref())
                            .map(|clause| &clause.body[..])
                            .collect();
                        for branch in rest {
                            let pending = self.pending;
                            self.unemitted_suite(branch);
                            if self.pending.is_none() {
                                self.pending = pending;
                            }
                        }
                    }
                    return;
                }
                Some(false) => {
                    if self.rules.constant_test_keeps_line {
                        self.mark(test_node.start_line(self.index));
                    } else {
                        self.unemitted_suite(body);
                    }
                }
                None => {
                    self.condition_statement_line(test_node.start_line(self.index), condition);
                    self.condition(condition);
                    self.suite(body);
                    if next.is_some() {
                        // JUMP_FORWARD over the other branches.
                        self.flush_pending();
                    }
                }
            }
            let Some(clause) = next else { return };
            test = clause.test.as_ref();
            test_node = clause;
            body = &clause.body;
        }
    }

    /// The `if`/`elif`/`while` keyword line, when the compiler gives the
    /// test's jump that line.
    fn condition_statement_line(&mut self, line: u32, test: &Expr) {
        let marked = match self.rules.condition_statement_line {
            ConditionLine::Always => true,
            ConditionLine::UnlessFirstTestIsComparison => {
                !matches!(first_tested_operand(test, 0), Expr::Compare(_))
            }
            ConditionLine::Never => false,
        };
        if marked {
            self.mark(line);
        }
    }

    /// A test compiled straight into conditional jumps: `and`, `or` and
    /// `not` emit no instruction of their own there.
    fn condition(&mut self, test: &Expr) {
        if self.enter(test) {
            with_stack(|| self.condition_inner(test));
        }
        self.leave();
    }

    fn condition_inner(&mut self, test: &Expr) {
        match test {
            Expr::BoolOp(op) if self.rules.condition_statement_line != ConditionLine::Always => {
                for value in &op.values {
                    self.condition(value);
                }
            }
            Expr::UnaryOp(op)
                if op.op == UnaryOp::Not
                    && self.rules.condition_statement_line != ConditionLine::Always =>
            {
                self.condition(&op.operand)
            }
            _ => self.expression(test),
        }
    }

    /// The line a new code object's first instruction (RESUME, 3.11+) gets.
    fn code_object_start(&mut self, definition: &Stmt, decorators: &[Decorator]) {
        if self.rules.code_starts_at_definition_line {
            match decorators.first() {
                Some(first) => self.mark_start(first),
                None => self.mark_start(definition),
            }
        }
    }

    fn decorators(&mut self, decorators: &[Decorator]) {
        for decorator in decorators {
            self.expression(&decorator.expression);
        }
    }

    fn parameter_defaults(&mut self, parameters: &Parameters) {
        let positional: Vec<&Expr> = parameters
            .posonlyargs
            .iter()
            .chain(&parameters.args)
            .filter_map(|parameter| parameter.default.as_deref())
            .collect();
        let folded = self.rules.folded_defaults_lose_lines
            && positional
                .iter()
                .all(|default| is_folded_constant(default, self.rules));
        if !folded {
            for default in positional {
                self.expression(default);
            }
        }
        for parameter in &parameters.kwonlyargs {
            if let Some(default) = &parameter.default {
                self.expression(default);
            }
        }
    }

    fn type_params(&mut self, type_params: Option<&TypeParams>) {
        let Some(type_params) = type_params else {
            return;
        };
        for param in &type_params.type_params {
            let (bound, default) = match param {
                TypeParam::TypeVar(var) => (var.bound.as_deref(), var.default.as_deref()),
                TypeParam::TypeVarTuple(var) => (None, var.default.as_deref()),
                TypeParam::ParamSpec(spec) => (None, spec.default.as_deref()),
            };
            if let Some(bound) = bound {
                self.expression(bound);
            }
            if let Some(default) = default {
                self.expression(default);
            }
        }
    }

    fn pattern(&mut self, pattern: &Pattern) {
        if self.enter(pattern) {
            with_stack(|| self.pattern_inner(pattern));
        }
        self.leave();
    }

    fn pattern_inner(&mut self, pattern: &Pattern) {
        self.mark_start(pattern);
        match pattern {
            Pattern::MatchValue(value) => self.expression(&value.value),
            Pattern::MatchSingleton(_) | Pattern::MatchStar(_) => {}
            Pattern::MatchSequence(sequence) => {
                for inner in &sequence.patterns {
                    self.pattern(inner);
                }
            }
            Pattern::MatchMapping(mapping) => {
                self.expressions(&mapping.keys);
                for inner in &mapping.patterns {
                    self.pattern(inner);
                }
            }
            Pattern::MatchClass(class) => {
                self.expression(&class.cls);
                for inner in &class.arguments.patterns {
                    self.pattern(inner);
                }
                for keyword in &class.arguments.keywords {
                    self.pattern(&keyword.pattern);
                }
            }
            Pattern::MatchAs(capture) => {
                if let Some(inner) = &capture.pattern {
                    self.pattern(inner);
                }
            }
            Pattern::MatchOr(alternatives) => {
                for inner in &alternatives.patterns {
                    self.pattern(inner);
                }
            }
        }
    }

    fn expressions(&mut self, expressions: &[Expr]) {
        for expression in expressions {
            self.expression(expression);
        }
    }

    /// The iterable of a `for` (or comprehension): a list or set display of
    /// constants there is folded into a constant tuple/frozenset.
    fn iterable(&mut self, iterable: &Expr) {
        if is_constant_sequence(iterable, self.rules) {
            self.mark_start(iterable);
        } else {
            self.expression(iterable);
        }
    }

    fn expression(&mut self, expression: &Expr) {
        if self.enter(expression) {
            with_stack(|| self.expression_inner(expression));
        }
        self.leave();
    }

    fn expression_inner(&mut self, expression: &Expr) {
        self.mark_start(expression);
        if is_folded_constant(expression, self.rules) {
            return;
        }
        match expression {
            Expr::BoolOp(op) => self.expressions(&op.values),
            Expr::Named(named) => {
                self.expression(&named.value);
                self.expression(&named.target);
            }
            Expr::BinOp(op) => {
                self.expression(&op.left);
                match (&*op.right, self.rules.percent_format_becomes_fstring) {
                    (Expr::Tuple(tuple), true) if is_simple_percent_format(op, &tuple.elts) => {
                        self.expressions(&tuple.elts);
                    }
                    _ => self.expression(&op.right),
                }
            }
            Expr::UnaryOp(op) => self.expression(&op.operand),
            Expr::Lambda(lambda) => {
                if let Some(parameters) = &lambda.parameters {
                    self.parameter_defaults(parameters);
                }
                self.expression(&lambda.body);
            }
            Expr::If(conditional) => {
                self.expression(&conditional.test);
                self.expression(&conditional.body);
                self.expression(&conditional.orelse);
            }
            Expr::Dict(dict) => {
                let with_keys = dict_items_loading_keys(dict, self.rules);
                for (item, loads_key) in dict.items.iter().zip(with_keys) {
                    if let (Some(key), true) = (&item.key, loads_key) {
                        self.expression(key);
                    }
                    self.expression(&item.value);
                }
            }
            Expr::Set(set) => self.display(&set.elts),
            Expr::List(list) => self.display(&list.elts),
            Expr::Tuple(tuple) => self.expressions(&tuple.elts),
            Expr::ListComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::SetComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::Generator(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::DictComp(comp) => match &comp.key {
                Some(key) => self.comprehension(&comp.generators, &[key, &comp.value]),
                None => self.comprehension(&comp.generators, &[&comp.value]),
            },
            Expr::Await(inner) => self.expression(&inner.value),
            Expr::Yield(inner) => {
                if let Some(value) = &inner.value {
                    self.expression(value);
                }
            }
            Expr::YieldFrom(inner) => self.expression(&inner.value),
            Expr::Compare(compare) => {
                self.expression(&compare.left);
                for (op, comparator) in compare.ops.iter().zip(compare.comparators.iter()) {
                    if matches!(op, CmpOp::In | CmpOp::NotIn) {
                        self.iterable(comparator);
                    } else {
                        self.expression(comparator);
                    }
                }
            }
            Expr::Call(call) => {
                self.expression(&call.func);
                let arguments = &call.arguments;
                let slots = arguments.args.len() + 2 * arguments.keywords.len();
                if self.rules.big_calls_build_argument_tuple && slots > 30 {
                    self.display(&arguments.args);
                } else {
                    self.expressions(&arguments.args);
                }
                for keyword in &call.arguments.keywords {
                    self.expression(&keyword.value);
                }
            }
            Expr::FString(fstring) => self.fstring(fstring),
            Expr::TString(tstring) => {
                for element in tstring.value.elements() {
                    self.interpolated_element(element);
                }
            }
            Expr::Attribute(attribute) => {
                self.expression(&attribute.value);
                if self.rules.attribute_on_name_line {
                    self.mark_start(&attribute.attr);
                }
            }
            Expr::Subscript(subscript) => {
                self.expression(&subscript.value);
                self.expression(&subscript.slice);
            }
            Expr::Starred(starred) => self.expression(&starred.value),
            Expr::Slice(slice) => {
                for part in [&slice.lower, &slice.upper, &slice.step]
                    .into_iter()
                    .flatten()
                {
                    self.expression(part);
                }
            }
            Expr::Name(_)
            | Expr::StringLiteral(_)
            | Expr::BytesLiteral(_)
            | Expr::NumberLiteral(_)
            | Expr::BooleanLiteral(_)
            | Expr::NoneLiteral(_)
            | Expr::EllipsisLiteral(_)
            | Expr::IpyEscapeCommand(_) => {}
        }
    }

    /// List and set displays; 3.9+ build those of more than two constants
    /// from a single constant.
    fn display(&mut self, elements: &[Expr]) {
        let folded = self.rules.constant_displays_folded
            && elements.len() > 2
            && !(self.rules.big_displays_built_item_by_item && elements.len() > 30)
            && elements
                .iter()
                .all(|element| is_folded_constant(element, self.rules));
        if !folded {
            self.expressions(elements);
        }
    }

    fn fstring(&mut self, fstring: &ruff_python_ast::ExprFString) {
        let parts: Vec<&FStringPart> = fstring.value.iter().collect();
        if self.rules.fstring_literals_keep_lines {
            self.fstring_literal_runs(&parts);
        }
        let first_part = parts.first().map(|part| part.range());
        for part in &parts {
            let FStringPart::FString(part_fstring) = part else {
                continue;
            };
            let reference = match (self.rules.fstring_expression_search, first_part) {
                (FStringSearch::None, _) => None,
                (FStringSearch::FirstPart, Some(first)) => Some(first),
                (FStringSearch::FirstPart, None) => None,
            };
            for element in part_fstring.elements.iter() {
                self.located_interpolation(element, reference);
            }
        }
    }

    /// Marks the start line of each run of non-empty literal text.
    fn fstring_literal_runs(&mut self, parts: &[&FStringPart]) {
        let mut in_run = false;
        for part in parts {
            match part {
                FStringPart::Literal(literal) => {
                    if !in_run && !literal.value.is_empty() {
                        self.mark_start(*part);
                        in_run = true;
                    }
                }
                FStringPart::FString(part_fstring) => {
                    for element in part_fstring.elements.iter() {
                        match element {
                            InterpolatedStringElement::Literal(literal) => {
                                if !in_run && !literal.value.is_empty() {
                                    self.mark_start(literal);
                                    in_run = true;
                                }
                            }
                            InterpolatedStringElement::Interpolation(_) => in_run = false,
                        }
                    }
                }
            }
        }
    }

    /// Before 3.12 CPython parsed each interpolation separately and located
    /// it by finding `{expression text` in a string token's text: the line is
    /// that token's line plus the newlines before the first match.
    fn located_interpolation(
        &mut self,
        element: &InterpolatedStringElement,
        reference: Option<TextRange>,
    ) {
        let InterpolatedStringElement::Interpolation(interpolation) = element else {
            return;
        };
        let Some(reference) = reference else {
            self.interpolated_element(element);
            return;
        };
        let saved = self.shift;
        if saved.is_none() {
            let actual_start = self.line(interpolation);
            let reported_start = self.searched_line(
                reference,
                interpolation.start(),
                interpolation.expression.end(),
            );
            self.shift = Some(LineShift {
                actual_start,
                reported_start,
            });
        }
        self.interpolated_element(element);
        self.shift = saved;
    }

    fn searched_line(
        &self,
        reference: TextRange,
        brace: TextSize,
        expression_end: TextSize,
    ) -> u32 {
        let reference_line = self.index.line_of(reference.start());
        let text = |range: TextRange| {
            self.source
                .get(usize::from(range.start())..usize::from(range.end()))
        };
        let Some(haystack) = text(reference) else {
            return reference_line;
        };
        let Some(needle) = text(TextRange::new(brace, expression_end.max(brace))) else {
            return reference_line;
        };
        // CPython's needle also holds the whitespace before `!`, `:`, `=` or `}`.
        let trailing: String = self
            .source
            .get(usize::from(expression_end)..)
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        let needle = format!("{needle}{trailing}");
        match haystack.find(&needle) {
            Some(position) => {
                let newlines = haystack[..position].bytes().filter(|&b| b == b'\n').count();
                reference_line + u32::try_from(newlines).unwrap_or(0)
            }
            None => reference_line,
        }
    }

    fn interpolated_element(&mut self, element: &InterpolatedStringElement) {
        if let InterpolatedStringElement::Interpolation(interpolation) = element {
            self.expression(&interpolation.expression);
            if let Some(spec) = &interpolation.format_spec {
                self.interpolated_elements(&spec.elements);
            }
        }
    }

    fn interpolated_elements(&mut self, elements: &InterpolatedStringElements) {
        for element in elements.iter() {
            self.interpolated_element(element);
        }
    }

    fn comprehension(&mut self, generators: &[Comprehension], elements: &[&Expr]) {
        for generator in generators {
            self.iterable(&generator.iter);
            self.expression(&generator.target);
            self.expressions(&generator.ifs);
        }
        for element in elements {
            self.expression(element);
        }
    }
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

/// Whether `format % (items...)` is a str format of only `%s`/`%r`/`%a`
/// units (and `%%`), one per item, which 3.11+ compile as an f-string.
fn is_simple_percent_format(op: &ruff_python_ast::ExprBinOp, items: &[Expr]) -> bool {
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
fn first_tested_operand(test: &Expr, depth: u32) -> &Expr {
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
fn has_future_annotations(body: &[Stmt]) -> bool {
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
fn is_empty_statement(statement: &Stmt) -> bool {
    match statement {
        Stmt::Pass(_) | Stmt::Global(_) | Stmt::Nonlocal(_) => true,
        Stmt::Expr(expression) => is_literal(&expression.value),
        _ => false,
    }
}

/// A first statement that CPython takes as the docstring.
fn is_docstring(statement: &Stmt) -> bool {
    matches!(statement, Stmt::Expr(expression) if matches!(*expression.value, Expr::StringLiteral(_)))
}

/// Start line of the last statement (innermost) of a suite.
fn last_statement_line(body: &[Stmt], index: &LineIndex) -> Option<u32> {
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
fn always_leaves(statement: &Stmt, rules: CompilerRules) -> bool {
    always_leaves_at(statement, rules, 0)
}

fn always_leaves_at(statement: &Stmt, rules: CompilerRules, depth: u32) -> bool {
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
fn contains_break(body: &[Stmt], depth: u32) -> bool {
    if depth > MAX_NESTING {
        return false;
    }
    body.iter()
        .any(|statement| with_stack(|| contains_break_in(statement, depth)))
}

fn contains_break_in(statement: &Stmt, depth: u32) -> bool {
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

/// A literal the compiler loads with a single LOAD_CONST.
fn is_literal(expression: &Expr) -> bool {
    matches!(
        expression,
        Expr::StringLiteral(_)
            | Expr::BytesLiteral(_)
            | Expr::NumberLiteral(_)
            | Expr::BooleanLiteral(_)
            | Expr::NoneLiteral(_)
            | Expr::EllipsisLiteral(_)
    )
}

/// An expression the AST optimizer folds into one constant (located at the
/// expression's start): literals, tuples of constants, unary and binary
/// operations on constants (within CPython's size limits), `__debug__`.
fn is_folded_constant(expression: &Expr, rules: CompilerRules) -> bool {
    folded_value(expression, rules, 0).is_some()
}

/// Rough shape of a folded constant, enough for CPython's size limits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Folded {
    /// An int with this many bits (saturating), or a bool.
    Int(u64),
    /// A float or complex.
    Float,
    /// A str, bytes or tuple of this length.
    Sequence(u64),
    /// None, Ellipsis.
    Other,
}

fn folded_value(expression: &Expr, rules: CompilerRules, depth: u32) -> Option<Folded> {
    if depth > MAX_NESTING {
        return None;
    }
    with_stack(|| folded_value_inner(expression, rules, depth))
}

fn folded_value_inner(expression: &Expr, rules: CompilerRules, depth: u32) -> Option<Folded> {
    match expression {
        Expr::NumberLiteral(number) => Some(match &number.value {
            Number::Int(int) => Folded::Int(
                int.as_u64()
                    .map_or(128, |v| u64::from(64 - v.leading_zeros())),
            ),
            Number::Float(_) | Number::Complex { .. } => Folded::Float,
        }),
        Expr::BooleanLiteral(_) => Some(Folded::Int(1)),
        Expr::NoneLiteral(_) | Expr::EllipsisLiteral(_) => Some(Folded::Other),
        Expr::StringLiteral(string) => Some(Folded::Sequence(string.value.chars().count() as u64)),
        Expr::BytesLiteral(bytes) => Some(Folded::Sequence(bytes.value.bytes().count() as u64)),
        Expr::FString(fstring) if !rules.fstrings_are_not_string_tokens => {
            // Before 3.12 an f-string without placeholders is a plain str.
            let has_placeholder = fstring.value.elements().any(|e| e.is_interpolation());
            (!has_placeholder).then_some(Folded::Sequence(0))
        }
        Expr::Name(name) if name.id.as_str() == "__debug__" => Some(Folded::Int(1)),
        Expr::Tuple(tuple) => {
            for element in &tuple.elts {
                folded_value(element, rules, depth + 1)?;
            }
            Some(Folded::Sequence(tuple.elts.len() as u64))
        }
        Expr::UnaryOp(op) => {
            let operand = folded_value(&op.operand, rules, depth + 1)?;
            match (op.op, operand) {
                (UnaryOp::Not, _) => Some(Folded::Int(1)),
                (_, Folded::Int(_) | Folded::Float) => Some(operand),
                _ => None,
            }
        }
        Expr::BinOp(op) => {
            let left = folded_value(&op.left, rules, depth + 1)?;
            let right = folded_value(&op.right, rules, depth + 1)?;
            fold_binary(op.op, left, right, &op.right)
        }
        _ => None,
    }
}

/// CPython's `safe_*` limits: ints up to 128 bits, strings/bytes up to
/// 4096 items, tuples up to 256 items; division by zero is not folded.
fn fold_binary(op: Operator, left: Folded, right: Folded, right_expr: &Expr) -> Option<Folded> {
    const MAX_INT_BITS: u64 = 128;
    const MAX_STR_SIZE: u64 = 4096;
    let right_is_zero = matches!(right_expr, Expr::NumberLiteral(n) if matches!(&n.value, Number::Int(i) if i.as_u64() == Some(0)));
    match (op, left, right) {
        (Operator::Add, Folded::Sequence(a), Folded::Sequence(b)) => Some(Folded::Sequence(a + b)),
        (Operator::Mult, Folded::Sequence(len), Folded::Int(bits))
        | (Operator::Mult, Folded::Int(bits), Folded::Sequence(len)) => {
            let count = if bits >= 32 { u64::MAX } else { 1u64 << bits };
            // The real count is unknown; accept only when clearly small.
            (len.saturating_mul(count.min(1 << 12)) <= MAX_STR_SIZE && bits <= 12)
                .then_some(Folded::Sequence(len.saturating_mul(count)))
        }
        (Operator::Pow, Folded::Int(a), Folded::Int(b)) => {
            let result = a.saturating_mul(if b >= 8 { u64::MAX } else { 1 << b });
            (result <= MAX_INT_BITS).then_some(Folded::Int(result))
        }
        (Operator::LShift, Folded::Int(a), Folded::Int(b)) => {
            let result = a.saturating_add(if b >= 8 { u64::MAX } else { 1 << b });
            (result <= MAX_INT_BITS).then_some(Folded::Int(result))
        }
        (Operator::Div | Operator::FloorDiv | Operator::Mod, _, _) if right_is_zero => None,
        (_, Folded::Int(a), Folded::Int(b)) if !matches!(op, Operator::MatMult) => {
            Some(Folded::Int(a.max(b) + 1))
        }
        (_, Folded::Int(_) | Folded::Float, Folded::Int(_) | Folded::Float)
            if !matches!(op, Operator::MatMult) =>
        {
            Some(Folded::Float)
        }
        // `str % args` (formatting) is never folded.
        _ => None,
    }
}

/// A list or set display of constants, which `in` tests and `for` loops turn
/// into one constant tuple/frozenset.
fn is_constant_sequence(expression: &Expr, rules: CompilerRules) -> bool {
    let elements = match expression {
        Expr::List(list) => &list.elts,
        Expr::Set(set) => &set.elts,
        _ => return false,
    };
    elements
        .iter()
        .all(|element| is_folded_constant(element, rules))
}

/// For each dict item, whether the compiler loads its key with its own
/// instruction.  Runs of constant keys are otherwise loaded as one tuple
/// (BUILD_CONST_KEY_MAP) at the dict's line.
fn dict_items_loading_keys(dict: &ruff_python_ast::ExprDict, rules: CompilerRules) -> Vec<bool> {
    // 3.10+: STACK_USE_GUIDELINE (30) splits big dicts into chunks that are
    // built item by item with MAP_ADD.
    let chunk_limit: usize = if rules.big_dicts_built_item_by_item {
        16
    } else {
        usize::MAX
    };
    let items = &dict.items;
    let mut loads_key = vec![true; items.len()];
    if !rules.constant_key_maps {
        return loads_key;
    }
    let mark_chunk = |begin: usize, end: usize, loads_key: &mut Vec<bool>| {
        let count = end - begin;
        let big = rules.big_dicts_built_item_by_item && count * 2 > 30;
        let all_constant = items[begin..end].iter().all(|item| {
            item.key
                .as_ref()
                .is_some_and(|key| is_folded_constant(key, rules))
        });
        if count > 1 && !big && all_constant {
            for flag in &mut loads_key[begin..end] {
                *flag = false;
            }
        }
    };
    let mut pending = 0usize;
    for (i, item) in items.iter().enumerate() {
        if item.key.is_none() {
            if pending > 0 {
                mark_chunk(i - pending, i, &mut loads_key);
                pending = 0;
            }
        } else if pending >= chunk_limit {
            mark_chunk(i - pending, i + 1, &mut loads_key);
            pending = 0;
        } else {
            pending += 1;
        }
    }
    if pending > 0 {
        mark_chunk(items.len() - pending, items.len(), &mut loads_key);
    }
    loads_key
}

/// The truth value of a test the compiler treats as constant, if any.
/// From 3.10 the CFG optimizer also folds `and`/`or` short-circuits on
/// constants.
fn constant_truth(expression: &Expr, rules: CompilerRules) -> Option<bool> {
    constant_truth_at(expression, rules, 0)
}

fn constant_truth_at(expression: &Expr, rules: CompilerRules, depth: u32) -> Option<bool> {
    if depth > MAX_NESTING {
        return None;
    }
    let truth = |e: &Expr| with_stack(|| constant_truth_at(e, rules, depth + 1));
    match expression {
        Expr::BoolOp(op) if rules.removes_unreachable_code => {
            // `and` stops at the first false value, `or` at the first true one.
            let stop_at = op.op == BoolOp::Or;
            for value in &op.values {
                match truth(value)? {
                    v if v == stop_at => return Some(v),
                    _ => {}
                }
            }
            Some(!stop_at)
        }
        Expr::BooleanLiteral(b) => Some(b.value),
        Expr::NoneLiteral(_) => Some(false),
        Expr::EllipsisLiteral(_) => Some(true),
        Expr::NumberLiteral(number) => Some(match &number.value {
            Number::Int(int) => int.as_u64() != Some(0),
            Number::Float(value) => *value != 0.0,
            Number::Complex { real, imag } => *real != 0.0 || *imag != 0.0,
        }),
        Expr::StringLiteral(string) => Some(!string.value.is_empty()),
        Expr::BytesLiteral(bytes) => Some(!bytes.value.is_empty()),
        Expr::Name(name) if name.id.as_str() == "__debug__" => Some(true),
        Expr::UnaryOp(op) if op.op == UnaryOp::Not => truth(&op.operand).map(|v| !v),
        Expr::Tuple(tuple) if tuple.elts.iter().all(|e| truth(e).is_some()) => {
            Some(!tuple.elts.is_empty())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: [(u8, u8); 6] = [(3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)];

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
                version.0, version.1
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
        let lines_13 = executable_lines(&list, (3, 13)).unwrap();
        let lines_14 = executable_lines(&list, (3, 14)).unwrap();
        assert_eq!(lines_13.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(lines_14.len(), 2 + 31, "{lines_14:?}");

        let dict = "x = {\n    'a':\n        (1, 2),\n    'b':\n        (3, 4),\n}\n";
        let keys = |version| executable_lines(dict, version).unwrap();
        assert_eq!(
            keys((3, 13)).into_iter().collect::<Vec<_>>(),
            vec![0, 1, 3, 5]
        );
        assert_eq!(
            keys((3, 14)).into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );

        let defaults = "def f(a=1,\n      b=2):\n    pass\n";
        let lines = |version| executable_lines(defaults, version).unwrap();
        assert!(lines((3, 13)).contains(&2));
        assert!(!lines((3, 14)).contains(&2));
    }

    #[test]
    fn unsupported_versions_are_errors() {
        for version in [(2, 7), (3, 7), (3, 15), (4, 0)] {
            assert!(matches!(
                executable_lines("x = 1\n", version),
                Err(ExecutableLinesError::UnsupportedVersion { .. })
            ));
        }
    }

    #[test]
    fn syntax_errors_are_errors() {
        let error = executable_lines("x = 1\ndef (:\n", (3, 12));
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
                let _ = executable_lines(source, (3, 12));
                let _ = executable_lines(source, (3, 8));
            }
        }
        let nested_blocks: String = (0..150)
            .map(|level| format!("{}if x:\n", "    ".repeat(level)))
            .collect::<String>()
            + &"    ".repeat(150)
            + "pass\n";
        let _ = executable_lines(&nested_blocks, (3, 10));
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
            for minor in 8..=14 {
                let _ = executable_lines(&source, (3, minor));
            }
        }
    }
}
