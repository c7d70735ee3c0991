//! The line model's walk of statements: which lines of a module, class or function body the
//! compiler gives a line-table entry (the expressions are in `expressions.rs`).

use super::*;

/// Which kind of code block a suite is the body of (decides what a leading
/// docstring compiles to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    /// Module and class docstrings are stored into `__doc__` at their line.
    Module,
    Class,
    /// A function docstring only becomes `co_consts[0]`: no code, no line.
    Function,
}

/// Where an f-string interpolation's code is attributed before 3.12, when
/// CPython located it by searching the expression text in a string token.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineShift {
    /// Line of the `{` in the real source.
    pub(super) actual_start: u32,
    /// Line CPython attributes to that `{`.
    pub(super) reported_start: u32,
}

/// Walks the syntax tree and collects the lines the compiler would put in
/// the line tables of the module and of every nested code object.
pub(super) struct LineModel<'a> {
    pub(super) rules: CompilerRules,
    pub(super) index: &'a LineIndex,
    pub(super) source: &'a str,
    pub(super) lines: BTreeSet<u32>,
    /// 3.8-3.9: line of an empty statement waiting for an instruction.
    pub(super) pending: Option<u32>,
    pub(super) shift: Option<LineShift>,
    /// Kind of the innermost module, class or function body being walked.
    pub(super) scope: BodyKind,
    /// `from __future__ import annotations`: annotations are not evaluated.
    pub(super) postponed_annotations: bool,
    pub(super) depth: u32,
    pub(super) too_deep_at: Option<u32>,
}

impl<'a> LineModel<'a> {
    pub(super) fn new(rules: CompilerRules, index: &'a LineIndex, source: &'a str) -> Self {
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

    pub(super) fn line(&self, node: &impl Ranged) -> u32 {
        self.index.line_of(node.start())
    }

    pub(super) fn mark(&mut self, line: u32) {
        let line = match self.shift {
            Some(shift) => line
                .saturating_add(shift.reported_start)
                .saturating_sub(shift.actual_start),
            None => line,
        };
        self.lines.insert(line);
    }

    pub(super) fn mark_start(&mut self, node: &impl Ranged) {
        let line = self.line(node);
        self.mark(line);
    }

    /// The compiler emitted an instruction (jump, implicit return, block
    /// cleanup) that takes over the pending line of an empty statement.
    pub(super) fn flush_pending(&mut self) {
        if let Some(line) = self.pending.take() {
            self.mark(line);
        }
    }

    /// Enters one nesting level; false (and the error recorded) if too deep.
    pub(super) fn enter(&mut self, node: &impl Ranged) -> bool {
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

    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub(super) fn module(&mut self, body: &[Stmt]) {
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
    pub(super) fn body(&mut self, body: &[Stmt], kind: BodyKind) {
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
    pub(super) fn suite(&mut self, body: &[Stmt]) {
        for statement in body {
            self.statement(statement);
            if self.ends_flow(statement) {
                break;
            }
        }
    }

    /// Whether the compiler drops the statements following `statement`.
    pub(super) fn ends_flow(&self, statement: &Stmt) -> bool {
        if self.rules.removes_unreachable_code {
            always_leaves(statement, self.rules)
        } else {
            matches!(statement, Stmt::Return(_))
        }
    }

    /// A suite the compiler walks without emitting code (constant-false
    /// branch before 3.10): it still moves the current line, which the next
    /// emitted instruction picks up.
    pub(super) fn unemitted_suite(&mut self, body: &[Stmt]) {
        if self.rules.empty_statements_leave_pending_line {
            if let Some(line) = last_statement_line(body, self.index) {
                self.pending = Some(line);
            }
        }
    }

    pub(super) fn statement(&mut self, statement: &Stmt) {
        if self.enter(statement) {
            with_stack(|| self.statement_inner(statement));
        }
        self.leave();
    }

    pub(super) fn empty_statement(&mut self, statement: &Stmt) {
        if self.rules.empty_statements_leave_pending_line {
            self.pending = Some(self.line(statement));
        } else if matches!(statement, Stmt::Pass(_) | Stmt::Expr(_)) {
            // 3.10+: a NOP keeps the line.
            self.mark_start(statement);
        }
    }

    /// `name: annotation` without a value inside a function compiles to
    /// nothing.
    pub(super) fn is_unevaluated_annotation(&self, statement: &Stmt) -> bool {
        matches!(statement, Stmt::AnnAssign(assign)
            if assign.value.is_none() && assign.simple && self.scope == BodyKind::Function)
    }

    /// A parameter or return annotation.
    pub(super) fn signature_annotation(&mut self, annotation: &Expr) {
        if self.postponed_annotations && self.rules.postponed_annotations_keep_lines {
            self.mark_start(annotation);
        } else {
            self.annotation(annotation);
        }
    }

    /// Annotations are evaluated (in module and class bodies, and for
    /// function signatures) unless postponed by the `__future__` import.
    pub(super) fn annotation(&mut self, annotation: &Expr) {
        if !self.postponed_annotations {
            self.expression(annotation);
        }
    }

    pub(super) fn statement_inner(&mut self, statement: &Stmt) {
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

    pub(super) fn while_loop(&mut self, statement: &Stmt, while_loop: &ruff_python_ast::StmtWhile) {
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

    pub(super) fn if_statement(
        &mut self,
        statement: &Stmt,
        if_statement: &ruff_python_ast::StmtIf,
    ) {
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
    pub(super) fn condition_statement_line(&mut self, line: u32, test: &Expr) {
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
    pub(super) fn condition(&mut self, test: &Expr) {
        if self.enter(test) {
            with_stack(|| self.condition_inner(test));
        }
        self.leave();
    }

    pub(super) fn condition_inner(&mut self, test: &Expr) {
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
    pub(super) fn code_object_start(&mut self, definition: &Stmt, decorators: &[Decorator]) {
        if self.rules.code_starts_at_definition_line {
            match decorators.first() {
                Some(first) => self.mark_start(first),
                None => self.mark_start(definition),
            }
        }
    }

    pub(super) fn decorators(&mut self, decorators: &[Decorator]) {
        for decorator in decorators {
            self.expression(&decorator.expression);
        }
    }

    pub(super) fn parameter_defaults(&mut self, parameters: &Parameters) {
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

    pub(super) fn type_params(&mut self, type_params: Option<&TypeParams>) {
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

    pub(super) fn pattern(&mut self, pattern: &Pattern) {
        if self.enter(pattern) {
            with_stack(|| self.pattern_inner(pattern));
        }
        self.leave();
    }

    pub(super) fn pattern_inner(&mut self, pattern: &Pattern) {
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
}
