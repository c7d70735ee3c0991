//! Module and class bodies, inferred soundly from the functions they made.
//!
//! CPython frees a module's code object once its body has run, and a class body's once the
//! class is made, so their bytecode leaves no evidence. What stays is what they made: a
//! function object whose code has `co_qualname` `name` or `Class.name` (no `<locals>`, no
//! `<lambda>`) and `co_firstlineno` `L` was made by the `MAKE_FUNCTION` of the `def` statement
//! at `L` of a module or class body of that file (`L` is the first decorator's line when
//! decorated). That statement started and its `MAKE_FUNCTION` ran (its decorators' expressions
//! and defaults were evaluated before it).
//!
//! From one statement known to have started, the module's source structure gives more, all
//! about that same execution of the body (a body may run several times, reloaded or in a
//! loop; no fact of one execution is combined with a fact of another):
//!
//! - **sequence**: a statement of a block is entered only by falling through from the one
//!   before it (Python has no jump into a block), so every earlier statement of its block
//!   *completed normally*;
//! - **nesting**: a statement that started inside a compound statement's block means the
//!   compound statement started (its header ran: the `if` test and every earlier `elif` test,
//!   the `for`/`while`/`with` header, the `try` and its first body statement, the `except`
//!   lines tried before a handler that ran, a class's decorators and `class` line); a
//!   statement that started in a `try`'s `else` means its whole body completed;
//! - **completion**: a simple statement that completed ran its first line; a `class` that
//!   completed ran its whole body (the class object is made after it); a `try` that completed
//!   ran its `finally` block whole, and its body whole if it has no handler; a `with` that
//!   completed entered its body (`__exit__` may have swallowed an exception of it); an `if`,
//!   `for` or `while` that completed ran its header, and nothing is said of its branches.
//!
//! Lines are only reported if the version's compiler gives them code
//! ([`crate::source::executable_lines`]) and the statement's first instruction lies on that
//! line (a header whose expression starts on a later line is left out). If a function's
//! `(qualname, first line)` names no `def` of the source read now, the file changed since it
//! ran, and nothing of it is inferred. See docs/snapshot.md, "Module and class bodies".

use ruff_python_ast::{ExceptHandler, Expr, PySourceType, Stmt};
use ruff_text_size::{Ranged, TextSize};
use std::collections::{BTreeSet, HashSet};

pub mod namespaces;

/// Statements nested deeper than this are not followed (the parser itself bounds nesting).
const MAX_NESTING: usize = 200;

/// A function found in the target: `co_qualname` and `co_firstlineno` of its code.
pub type Made = (String, u32);

/// What [`infer`] proves of one file, before the filter on executable lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inferred {
    /// Lines proven run.
    pub lines: BTreeSet<u32>,
    /// coverage.py arcs `(from, to)` proven run: from a statement whose code in the body's
    /// frame lies on one line to the first line of the next statement of its block, which
    /// started (see [`Bodies::sequence_arcs`]). Both lines must have code to count.
    pub arcs: BTreeSet<(u32, u32)>,
}

/// The lines of `source` proven run by the functions in `made` (all of that file), and the
/// arcs, before the filter on executable lines; `None` if some function names no `def` of this
/// source (the file changed since it ran) or the source does not parse.
pub fn infer(source: &str, made: &HashSet<Made>) -> Option<Inferred> {
    infer_with(source, made, None, &mut |_| {
        crate::snapshot::walk::namespaces::Bound::Other
    })
}

/// [`infer`], with the facts the module's namespace proves ([`namespaces`]) if given.
pub fn infer_with(
    source: &str,
    made: &HashSet<Made>,
    namespace: Option<&crate::snapshot::walk::namespaces::Namespace>,
    resolve: namespaces::Resolve,
) -> Option<Inferred> {
    let parsed = ruff_python_parser::parse_unchecked_source(source, PySourceType::Python);
    if !parsed.errors().is_empty() {
        return None;
    }
    let lines = LineStarts::new(source);
    let facts = match namespace {
        Some(own) => namespaces::facts(parsed.suite(), &lines, own, resolve),
        None => namespaces::Facts::default(),
    };
    if facts.changed {
        return None;
    }
    let mut walk = Bodies {
        lines,
        made,
        facts,
        matched: HashSet::new(),
        claims: BTreeSet::new(),
        arcs: BTreeSet::new(),
    };
    walk.block(parsed.suite(), "", 0);
    let lines: Vec<&str> = source.lines().collect();
    let unmatched = made
        .iter()
        .filter(|m| !walk.matched.contains(*m))
        .filter(|(_, line)| !annotation_scope_line(&lines, *line))
        // 3.14+ compiles a module's or class's annotations into a function of its own.
        .filter(|(qualname, _)| qualname.rsplit('.').next() != Some("__annotate__"))
        .count();
    if unmatched != 0 {
        return None;
    }
    Some(Inferred {
        lines: walk.claims,
        arcs: walk.arcs,
    })
}

/// True if line `line` (1-based) of the source is a `type` alias statement or a generic
/// `def`/`class` (PEP 695): CPython makes a function named after the alias or the type
/// parameter for the lazily evaluated value or bound, which no `def` names. Such a function
/// proves nothing here (it is no evidence) and is no sign that the file changed.
fn annotation_scope_line(lines: &[&str], line: u32) -> bool {
    let Some(text) = (line as usize)
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .map(|l| l.trim_start())
    else {
        return false;
    };
    if text.starts_with("type ") {
        return true;
    }
    let header = text.strip_prefix("async ").unwrap_or(text);
    (header.starts_with("def ") || header.starts_with("class "))
        && header
            .find('[')
            .is_some_and(|bracket| header.find(['(', ':']).is_none_or(|end| bracket < end))
}

/// 1-based line of a byte offset.
struct LineStarts(Vec<u32>);

impl LineStarts {
    fn new(source: &str) -> LineStarts {
        let bytes = source.as_bytes();
        let mut starts = vec![0u32];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i as u32 + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => starts.push(i as u32 + 1),
                _ => {}
            }
            i += 1;
        }
        LineStarts(starts)
    }

    fn line(&self, at: TextSize) -> u32 {
        self.0.partition_point(|&s| s <= at.to_u32()) as u32
    }
}

struct Bodies<'a> {
    lines: LineStarts,
    made: &'a HashSet<Made>,
    /// Statements whose binding the module's namespace holds.
    facts: namespaces::Facts,
    /// The entries of `made` that name a `def` of this source.
    matched: HashSet<Made>,
    claims: BTreeSet<u32>,
    arcs: BTreeSet<(u32, u32)>,
}

impl Bodies<'_> {
    fn line(&self, node: &impl Ranged) -> u32 {
        self.lines.line(node.start())
    }

    /// The line of `stmt` if `expr` (what its first instruction evaluates) starts on it.
    fn header(&mut self, stmt: &Stmt, expr: &Expr) {
        let line = self.line(stmt);
        if self.line(expr) == line {
            self.claims.insert(line);
        }
    }

    /// Follow one block of a module or class body (`scope`: the enclosing classes' qualified
    /// name): claims what its statements that provably started prove; true if one did.
    fn block(&mut self, stmts: &[Stmt], scope: &str, depth: usize) -> bool {
        if depth > MAX_NESTING {
            return false;
        }
        let mut last = None;
        for (i, stmt) in stmts.iter().enumerate() {
            if self.statement(stmt, scope, depth) {
                last = Some(i);
            }
        }
        let Some(last) = last else { return false };
        for stmt in &stmts[..last] {
            self.completed(stmt, depth);
        }
        self.sequence_arcs(&stmts[..=last]);
        true
    }

    /// Follow `stmt`'s nested blocks; if something in it provably ran, claim what its start
    /// proves and return true.
    fn statement(&mut self, stmt: &Stmt, scope: &str, depth: usize) -> bool {
        let depth = depth + 1;
        match stmt {
            Stmt::FunctionDef(def) => {
                let qualname = qualify(scope, def.name.as_str());
                let first = def
                    .decorator_list
                    .first()
                    .map_or_else(|| self.line(def), |d| self.line(d));
                let key = (qualname, first);
                if !self.made.contains(&key) {
                    return false;
                }
                self.matched.insert(key);
                // Decorators are evaluated, then MAKE_FUNCTION runs on the `def` line.
                for decorator in &def.decorator_list {
                    self.header_of_decorator(decorator);
                }
                self.claims.insert(self.line(&def.name));
                true
            }
            Stmt::ClassDef(class) => {
                let inner = qualify(scope, class.name.as_str());
                let ran = self.block(&class.body, &inner, depth);
                if self.facts.bound.contains(&stmt.start()) {
                    // The class found in the namespace was made once its body completed.
                    self.completed(stmt, depth - 1);
                    return true;
                }
                if !ran {
                    return false;
                }
                self.class_started(class);
                true
            }
            Stmt::If(stmt_if) => {
                let mut ran = self.block(&stmt_if.body, scope, depth);
                if ran {
                    self.header(stmt, &stmt_if.test);
                }
                for (j, clause) in stmt_if.elif_else_clauses.iter().enumerate() {
                    if !self.block(&clause.body, scope, depth) {
                        continue;
                    }
                    ran = true;
                    // Every test before this clause, and its own, was evaluated.
                    self.header(stmt, &stmt_if.test);
                    for earlier in &stmt_if.elif_else_clauses[..=j] {
                        if let Some(test) = &earlier.test {
                            if self.line(earlier) == self.line(test) {
                                self.claims.insert(self.line(earlier));
                            }
                        }
                    }
                }
                ran
            }
            Stmt::For(stmt_for) => {
                let body = self.block(&stmt_for.body, scope, depth);
                let orelse = self.block(&stmt_for.orelse, scope, depth);
                if (body || orelse) && !stmt_for.is_async {
                    self.header(stmt, &stmt_for.iter);
                }
                body || orelse
            }
            Stmt::While(stmt_while) => {
                let body = self.block(&stmt_while.body, scope, depth);
                let orelse = self.block(&stmt_while.orelse, scope, depth);
                if body || orelse {
                    self.header(stmt, &stmt_while.test);
                }
                body || orelse
            }
            Stmt::With(with) => {
                let ran = self.block(&with.body, scope, depth);
                if ran && !with.is_async {
                    if let Some(item) = with.items.first() {
                        self.header(stmt, &item.context_expr);
                    }
                }
                ran
            }
            Stmt::Try(stmt_try) if !stmt_try.is_star => {
                let mut ran = self.block(&stmt_try.body, scope, depth);
                for (j, handler) in stmt_try.handlers.iter().enumerate() {
                    if !self.block(handler_body(handler), scope, depth) {
                        continue;
                    }
                    ran = true;
                    // Handlers are tried in order: each `except` before it was matched.
                    for earlier in &stmt_try.handlers[..=j] {
                        let ExceptHandler::ExceptHandler(h) = earlier;
                        if let Some(kind) = &h.type_ {
                            if self.line(h) == self.line(kind.as_ref()) {
                                self.claims.insert(self.line(h));
                            }
                        }
                    }
                }
                if self.block(&stmt_try.orelse, scope, depth) {
                    ran = true;
                    // `else` runs only once the whole body completed.
                    for body in &stmt_try.body {
                        self.completed(body, depth);
                    }
                }
                ran |= self.block(&stmt_try.finalbody, scope, depth);
                if ran {
                    self.try_started(stmt_try, depth);
                }
                ran
            }
            _ => self.bound_by_namespace(stmt),
        }
    }

    /// A simple statement whose binding the namespace holds: its value was computed whole
    /// and stored (an annotation, evaluated after the store, may have failed).
    fn bound_by_namespace(&mut self, stmt: &Stmt) -> bool {
        if !self.facts.bound.contains(&stmt.start()) {
            return false;
        }
        self.claims.insert(self.line(stmt));
        if matches!(stmt, Stmt::Assign(_) | Stmt::AnnAssign(_)) {
            self.straight_line(stmt);
        }
        true
    }

    fn header_of_decorator(&mut self, decorator: &ruff_python_ast::Decorator) {
        let line = self.line(decorator);
        if self.line(&decorator.expression) == line {
            self.claims.insert(line);
        }
    }

    fn class_started(&mut self, class: &ruff_python_ast::StmtClassDef) {
        for decorator in &class.decorator_list {
            self.header_of_decorator(decorator);
        }
        // LOAD_BUILD_CLASS, on the `class` line, runs before the body.
        self.claims.insert(self.line(&class.name));
    }

    /// A `try` started: its line, and its first body statement started.
    fn try_started(&mut self, stmt_try: &ruff_python_ast::StmtTry, depth: usize) {
        self.claims.insert(self.line(stmt_try));
        if let Some(first) = stmt_try.body.first() {
            self.started(first, depth);
        }
    }

    /// `stmt` started (its first instruction ran): what that alone proves.
    fn started(&mut self, stmt: &Stmt, depth: usize) {
        if depth > MAX_NESTING {
            return;
        }
        match stmt {
            Stmt::Expr(_)
            | Stmt::Assign(_)
            | Stmt::AugAssign(_)
            | Stmt::AnnAssign(_)
            | Stmt::Import(_)
            | Stmt::ImportFrom(_)
            | Stmt::Delete(_)
            | Stmt::Raise(_)
            | Stmt::Pass(_)
                // The first instruction lies on the first line only if it is the only one.
                if self.line(stmt) == self.lines.line(stmt.end()) =>
            {
                self.claims.insert(self.line(stmt));
            }
            Stmt::If(s) => self.header(stmt, &s.test),
            Stmt::While(s) => self.header(stmt, &s.test),
            Stmt::For(s) if !s.is_async => self.header(stmt, &s.iter),
            Stmt::With(s) if !s.is_async => {
                if let Some(item) = s.items.first() {
                    self.header(stmt, &item.context_expr);
                }
            }
            Stmt::Try(s) if !s.is_star => self.try_started(s, depth + 1),
            Stmt::FunctionDef(def) => {
                if let Some(d) = def.decorator_list.first() {
                    self.header_of_decorator(d);
                }
            }
            Stmt::ClassDef(class) => {
                if let Some(d) = class.decorator_list.first() {
                    self.header_of_decorator(d);
                }
            }
            _ => {}
        }
    }

    /// `stmt` completed normally (the statement after it started): what that proves.
    fn completed(&mut self, stmt: &Stmt, depth: usize) {
        let depth = depth + 1;
        if depth > MAX_NESTING {
            return;
        }
        match stmt {
            Stmt::Expr(_)
            | Stmt::Assign(_)
            | Stmt::AugAssign(_)
            | Stmt::AnnAssign(_)
            | Stmt::Import(_)
            | Stmt::ImportFrom(_)
            | Stmt::Delete(_)
            | Stmt::Pass(_)
            | Stmt::TypeAlias(_) => {
                self.claims.insert(self.line(stmt));
                self.straight_line(stmt);
            }
            Stmt::FunctionDef(def) => {
                for decorator in &def.decorator_list {
                    self.header_of_decorator(decorator);
                }
                self.claims.insert(self.line(&def.name));
            }
            Stmt::ClassDef(class) => {
                self.class_started(class);
                // The class object is made once its body has run to its end.
                for inner in &class.body {
                    self.completed(inner, depth);
                }
                self.sequence_arcs(&class.body);
            }
            Stmt::If(s) => self.header(stmt, &s.test),
            Stmt::While(s) => self.header(stmt, &s.test),
            Stmt::For(s) if !s.is_async => self.header(stmt, &s.iter),
            Stmt::With(s) if !s.is_async => {
                if let Some(item) = s.items.first() {
                    self.header(stmt, &item.context_expr);
                }
                if let Some(first) = s.body.first() {
                    self.started(first, depth);
                }
            }
            Stmt::Try(s) if !s.is_star => {
                self.try_started(s, depth);
                if s.handlers.is_empty() {
                    for inner in &s.body {
                        self.completed(inner, depth);
                    }
                }
                for inner in &s.finalbody {
                    self.completed(inner, depth);
                }
            }
            _ => {}
        }
    }
}

impl Bodies<'_> {
    /// coverage.py's arcs between consecutive statements of one execution of a block, every
    /// one of `stmts` but the last having completed normally and the last having started:
    /// control fell from each to the next. An arc is written only where the tracer's last
    /// line in the frame is known (every instruction the statement has in the body's frame
    /// lies on one line, [`Bodies::one_line`]) and where the next statement's first
    /// instruction lies on its first line ([`Bodies::first_line`]).
    fn sequence_arcs(&mut self, stmts: &[Stmt]) {
        for pair in stmts.windows(2) {
            let (Some(from), Some(to)) = (self.one_line(&pair[0]), self.first_line(&pair[1]))
            else {
                continue;
            };
            if from != to {
                self.arcs.insert((from, to));
            }
        }
    }

    /// The line all of `stmt`'s code in the body's own frame lies on, if it is one line: a
    /// simple statement written on one line, or an undecorated `def` or `class` whose header
    /// is one line (its body is other code).
    fn one_line(&self, stmt: &Stmt) -> Option<u32> {
        let line = self.line(stmt);
        let on_line = |node: &dyn Ranged| self.lines.line(node.end()) == line;
        match stmt {
            Stmt::Expr(_)
            | Stmt::Assign(_)
            | Stmt::AugAssign(_)
            | Stmt::AnnAssign(_)
            | Stmt::Import(_)
            | Stmt::ImportFrom(_)
            | Stmt::Delete(_) => on_line(stmt).then_some(line),
            Stmt::FunctionDef(def) => (def.decorator_list.is_empty()
                && def.type_params.is_none()
                && on_line(&*def.parameters)
                && def.returns.as_deref().is_none_or(|r| on_line(r)))
            .then_some(line),
            Stmt::ClassDef(class) => (class.decorator_list.is_empty()
                && class.type_params.is_none()
                && class.arguments.as_deref().is_none_or(|a| on_line(a)))
            .then_some(line),
            _ => None,
        }
    }

    /// The line of `stmt`'s first instruction, where it is known to be its first line.
    fn first_line(&self, stmt: &Stmt) -> Option<u32> {
        let line = self.line(stmt);
        let starts_on_line = |expr: &Expr| self.line(expr) == line && !constant_test(expr);
        match stmt {
            Stmt::FunctionDef(def) if !def.decorator_list.is_empty() => {
                let first = &def.decorator_list[0];
                (self.line(&first.expression) == line).then_some(line)
            }
            Stmt::ClassDef(class) if !class.decorator_list.is_empty() => {
                let first = &class.decorator_list[0];
                (self.line(&first.expression) == line).then_some(line)
            }
            Stmt::If(s) => starts_on_line(&s.test).then_some(line),
            Stmt::While(s) => starts_on_line(&s.test).then_some(line),
            Stmt::For(s) if !s.is_async => starts_on_line(&s.iter).then_some(line),
            Stmt::With(s) if !s.is_async => s
                .items
                .first()
                .filter(|item| starts_on_line(&item.context_expr))
                .map(|_| line),
            Stmt::Try(s) if !s.is_star => Some(line),
            _ => self.one_line(stmt),
        }
    }

    /// A simple statement that completed and has no branch in its own code (no `and`/`or`,
    /// conditional expression, comprehension, chained comparison, `await`/`yield`) ran every
    /// one of its instructions: the line each of its expressions starts on is claimed (only
    /// lines with code survive the filter). Lambda bodies, and annotations (lazy on 3.14,
    /// strings under `from __future__ import annotations`), are separate code and are not.
    fn straight_line(&mut self, stmt: &Stmt) {
        let mut lines = StraightLine {
            index: &self.lines,
            lines: BTreeSet::new(),
            other_code: BTreeSet::new(),
            branches: false,
            depth: 0,
        };
        ruff_python_ast::visitor::walk_stmt(&mut lines, stmt);
        if !lines.branches {
            self.claims
                .extend(lines.lines.difference(&lines.other_code).copied());
        }
    }
}

/// A test the compiler may fold away (a literal, `__debug__`): its statement's first
/// instruction is then elsewhere.
fn constant_test(expr: &Expr) -> bool {
    match expr {
        Expr::Name(name) => name.id.as_str() == "__debug__",
        Expr::UnaryOp(op) => constant_test(&op.operand),
        _ => expr.is_literal_expr(),
    }
}

/// The start lines of a statement's expressions, and whether its code branches.
struct StraightLine<'l> {
    index: &'l LineStarts,
    lines: BTreeSet<u32>,
    /// Lines a lambda spans after its first: its own code may be all that is there (3.14
    /// folds constant defaults into one constant on the `lambda` line), and the filter on
    /// executable lines cannot tell whose code a line holds.
    other_code: BTreeSet<u32>,
    branches: bool,
    depth: usize,
}

impl<'a> ruff_python_ast::visitor::Visitor<'a> for StraightLine<'_> {
    fn visit_annotation(&mut self, _: &'a Expr) {}

    fn visit_expr(&mut self, expr: &'a Expr) {
        if self.branches || self.depth > MAX_NESTING {
            self.branches = true;
            return;
        }
        match expr {
            Expr::BoolOp(_)
            | Expr::If(_)
            | Expr::ListComp(_)
            | Expr::SetComp(_)
            | Expr::DictComp(_)
            | Expr::Generator(_)
            | Expr::Await(_)
            | Expr::Yield(_)
            | Expr::YieldFrom(_) => {
                self.branches = true;
                return;
            }
            Expr::Compare(compare) if compare.comparators.len() > 1 => {
                self.branches = true;
                return;
            }
            _ => {}
        }
        self.lines.insert(self.index.line(expr.start()));
        self.depth += 1;
        if let Expr::Lambda(lambda) = expr {
            let (first, last) = (
                self.index.line(lambda.start()),
                self.index.line(lambda.end()),
            );
            self.other_code.extend(first + 1..=last);
            // Only the defaults are evaluated here; the body is the lambda's own code.
            if let Some(parameters) = &lambda.parameters {
                for parameter in parameters.iter_non_variadic_params() {
                    if let Some(default) = parameter.default() {
                        self.visit_expr(default);
                    }
                }
            }
        } else {
            ruff_python_ast::visitor::walk_expr(self, expr);
        }
        self.depth -= 1;
    }
}

fn handler_body(handler: &ExceptHandler) -> &[Stmt] {
    let ExceptHandler::ExceptHandler(h) = handler;
    &h.body
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(items: &[(&str, u32)]) -> HashSet<Made> {
        items.iter().map(|(q, l)| (q.to_string(), *l)).collect()
    }

    #[test]
    fn sequence_nesting_and_handlers() {
        let source = "\
import os
try:
    import json
    x = json.dumps(1)
except ImportError:
    json = None
if os.sep == '/':
    def f(): pass
else:
    def f(): pass
y = 1
class C:
    a = 1
    def m(self): pass
    b = 2
z = f()
";
        let got = infer(source, &made(&[("f", 8), ("C.m", 14)]))
            .unwrap()
            .lines;
        // After `try` completed: its line and first statement; not `x = ...` nor the handler.
        let want: BTreeSet<u32> = [1, 2, 3, 7, 8, 11, 12, 13, 14].into_iter().collect();
        assert_eq!(got, want);
        // Arcs only from a one-line statement to the next of its block that started.
        let arcs = infer(source, &made(&[("f", 8), ("C.m", 14)])).unwrap().arcs;
        let want: BTreeSet<(u32, u32)> = [(1, 2), (11, 12), (13, 14)].into_iter().collect();
        assert_eq!(arcs, want);
        // A function the source does not define: the file changed, nothing is inferred.
        assert!(infer(source, &made(&[("f", 9)])).is_none());
    }

    #[test]
    fn a_statement_after_a_caught_exception_proves_nothing_of_the_try_body() {
        let source = "\
try:
    boom()
    skipped = 1
except Exception:
    pass
def g(): pass
";
        let got = infer(source, &made(&[("g", 6)])).unwrap().lines;
        let want: BTreeSet<u32> = [1, 2, 6].into_iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_handler_that_ran_and_a_completed_class() {
        let source = "\
try:
    import nothing_here
except ImportError:
    def fallback(): pass
class K:
    c = 1
    def n(self): pass
    d = 2
def last(): pass
";
        let got = infer(source, &made(&[("fallback", 4), ("last", 9)]))
            .unwrap()
            .lines;
        let want: BTreeSet<u32> = [1, 2, 3, 4, 5, 6, 7, 8, 9].into_iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn continuation_lines_of_straight_line_statements_only() {
        let source = "\
TABLE = dict(
    a=1,
    b=[lambda x, y=None,
       z=None: None],
    c=2,
)
PICK = (1
        if TABLE else
        2)
def f(): pass
";
        let got = infer(source, &made(&[("f", 10)])).unwrap().lines;
        // Not 4 (a lambda's own code may be all there is), nor 8-9 (a branch).
        let want: BTreeSet<u32> = [1, 2, 3, 5, 7, 10].into_iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn type_alias_and_type_parameter_functions_are_no_sign_of_change() {
        let source = "import x\ntype Alias = int\n\ndef f[T: Alias](a: T) -> T:\n    return a\n";
        // `Alias`'s value and `T`'s bound are functions no `def` names.
        let claims = infer(source, &made(&[("f", 4), ("Alias", 2), ("T", 4)]))
            .unwrap()
            .lines;
        assert!(claims.contains(&1) && claims.contains(&4), "{claims:?}");
        assert!(infer(source, &made(&[("f", 4), ("g", 1)])).is_none());
    }

    #[test]
    fn decorated_defs_and_classes_claim_their_def_and_class_lines() {
        let source = "\
@dec
class C:
    @property
    def p(self): pass
";
        let got = infer(source, &made(&[("C.p", 3)])).unwrap().lines;
        let want: BTreeSet<u32> = [1, 2, 3, 4].into_iter().collect();
        assert_eq!(got, want);
    }
}
