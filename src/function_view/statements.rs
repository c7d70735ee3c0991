//! The statements of one function, found in its source: what a sampled source point is
//! reported as.
//!
//! This follows `tracefunc`'s notion of a "line": an AST statement (`a = 1; b = 2` are two),
//! an `except` clause or an `elif`, keyed by its source text. A compound statement is keyed
//! by its header alone (up to its first body statement). A point `(line, column)` belongs to
//! the smallest statement span holding it. Each statement also names the variables it uses
//! as tracefunc's `NameCollector` does: names in the statement itself, not in nested
//! statements, lambdas or comprehensions.
//!
//! The source is parsed with ruff's parser (the one `source::executable_lines` uses).

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{
    Comprehension, ElifElseClause, ExceptHandler, Expr, MatchCase, PySourceType, Stmt,
};
use ruff_text_size::{Ranged, TextSize};
use std::collections::{BTreeSet, HashSet};

/// One statement of the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its source text, as tracefunc keys it (unique within the function: a repeated text
    /// gets trailing spaces, as tracefunc does).
    pub snippet: String,
    /// Start and end `(line, column)`: columns are UTF-8 byte offsets; the end is exclusive.
    pub start: (u32, u32),
    pub end: (u32, u32),
    /// Names the statement uses, sorted.
    pub names: Vec<String>,
}

/// The statements of the function defined at `first_line` (`co_firstlineno`: its first
/// decorator or its `def`) named `name`, in tracefunc's order; `None` if the source does not
/// parse or holds no such function.
pub fn function_statements(source: &str, first_line: u32, name: &str) -> Option<Vec<Statement>> {
    let parsed = ruff_python_parser::parse_unchecked_source(source, PySourceType::Python);
    if !parsed.errors().is_empty() {
        return None;
    }
    let lines = Lines::new(source);
    let function = find_function(parsed.suite(), &lines, first_line, name, 0)?;
    let Stmt::FunctionDef(def) = function else {
        return None;
    };
    let margin = common_margin(source, &lines, function);
    let mut collector = Collector {
        source,
        lines: &lines,
        margin,
        out: Vec::new(),
        used: HashSet::new(),
    };
    collector.body(&def.body, 0);
    Some(collector.out)
}

/// The statement holding `(line, column)`: the smallest span containing it, as tracefunc
/// looks it up.
pub fn statement_at(statements: &[Statement], line: u32, column: u32) -> Option<usize> {
    let size = |s: &Statement| (s.end.0 - s.start.0, s.end.1.wrapping_sub(s.start.1));
    statements
        .iter()
        .enumerate()
        .filter(|(_, s)| contains(s, line, column))
        .min_by_key(|(_, s)| size(s))
        .map(|(i, _)| i)
}

fn contains(s: &Statement, line: u32, col: u32) -> bool {
    let (sl, sc) = s.start;
    let (el, ec) = s.end;
    !(line < sl || line > el || (line == sl && col < sc) || (line == el && col >= ec))
}

/// Deepest recursion followed while looking for the function.
const MAX_DEPTH: usize = 200;

fn find_function<'a>(
    body: &'a [Stmt],
    lines: &Lines,
    first_line: u32,
    name: &str,
    depth: usize,
) -> Option<&'a Stmt> {
    if depth > MAX_DEPTH {
        return None;
    }
    for stmt in body {
        if let Stmt::FunctionDef(def) = stmt {
            let start = lines.line_of(def.range.start());
            let def_line = lines.line_of(def.name.range.start());
            if def.name.id.as_str() == name && (start == first_line || def_line == first_line) {
                return Some(stmt);
            }
        }
        for inner in child_bodies(stmt) {
            if let Some(found) = find_function(inner, lines, first_line, name, depth + 1) {
                return Some(found);
            }
        }
    }
    None
}

/// Every statement list directly inside `stmt`.
fn child_bodies(stmt: &Stmt) -> Vec<&[Stmt]> {
    match stmt {
        Stmt::FunctionDef(s) => vec![&s.body],
        Stmt::ClassDef(s) => vec![&s.body],
        Stmt::For(s) => vec![&s.body, &s.orelse],
        Stmt::While(s) => vec![&s.body, &s.orelse],
        Stmt::If(s) => {
            let mut v: Vec<&[Stmt]> = vec![&s.body];
            v.extend(s.elif_else_clauses.iter().map(|c| c.body.as_slice()));
            v
        }
        Stmt::With(s) => vec![&s.body],
        Stmt::Try(s) => {
            let mut v: Vec<&[Stmt]> = vec![&s.body];
            for handler in &s.handlers {
                let ExceptHandler::ExceptHandler(h) = handler;
                v.push(&h.body);
            }
            v.push(&s.orelse);
            v.push(&s.finalbody);
            v
        }
        Stmt::Match(s) => s.cases.iter().map(|c| c.body.as_slice()).collect(),
        _ => Vec::new(),
    }
}

/// Line starts of the source, for byte offset → (line, column).
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(source: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line_of(&self, offset: TextSize) -> u32 {
        self.starts.partition_point(|&s| s <= offset.to_usize()) as u32
    }

    fn point(&self, offset: TextSize) -> (u32, u32) {
        let line = self.line_of(offset);
        let start = self.starts[(line as usize).saturating_sub(1)];
        (line, (offset.to_usize() - start) as u32)
    }
}

/// The leading whitespace all non-blank lines of the function share (`textwrap.dedent`'s
/// margin over the block `inspect.getsourcelines` returns).
fn common_margin(source: &str, lines: &Lines, function: &Stmt) -> String {
    let (first, _) = lines.point(function.range().start());
    let (last, _) = lines.point(function.range().end());
    let mut margin: Option<&str> = None;
    for line in source
        .split('\n')
        .skip(first as usize - 1)
        .take((last - first + 1) as usize)
    {
        if line.trim().is_empty() {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        margin = Some(match margin {
            None => indent,
            Some(m) => {
                let common = m
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &m[..common]
            }
        });
    }
    margin.unwrap_or("").to_owned()
}

struct Collector<'s> {
    source: &'s str,
    lines: &'s Lines,
    margin: String,
    out: Vec<Statement>,
    used: HashSet<String>,
}

impl Collector<'_> {
    fn body(&mut self, body: &[Stmt], depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for stmt in body {
            self.statement(stmt, depth);
        }
    }

    fn statement(&mut self, stmt: &Stmt, depth: usize) {
        let start = python_start(stmt, self.source);
        let names = statement_names(stmt);
        match stmt {
            Stmt::FunctionDef(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
            }
            Stmt::ClassDef(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
            }
            Stmt::For(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
                self.body(&s.orelse, depth + 1);
            }
            Stmt::While(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
                self.body(&s.orelse, depth + 1);
            }
            Stmt::With(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
            }
            Stmt::If(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
                for clause in &s.elif_else_clauses {
                    if let Some(test) = &clause.test {
                        // An elif is an `If` of its own in Python's tree.
                        let mut collector = NameCollector::default();
                        collector.visit_expr(test);
                        self.push(
                            clause.range.start(),
                            header_end(&clause.body, stmt, self.source),
                            collector.sorted(),
                        );
                    }
                    self.body(&clause.body, depth + 1);
                }
            }
            Stmt::Try(s) => {
                self.push(start, header_end(&s.body, stmt, self.source), names);
                self.body(&s.body, depth + 1);
                for handler in &s.handlers {
                    let ExceptHandler::ExceptHandler(h) = handler;
                    let mut collector = NameCollector::default();
                    if let Some(name) = &h.name {
                        collector.names.insert(name.id.to_string());
                    }
                    if let Some(type_) = &h.type_ {
                        collector.visit_expr(type_);
                    }
                    self.push(
                        h.range.start(),
                        header_end(&h.body, stmt, self.source),
                        collector.sorted(),
                    );
                    self.body(&h.body, depth + 1);
                }
                self.body(&s.orelse, depth + 1);
                self.body(&s.finalbody, depth + 1);
            }
            // tracefunc's key for a match statement spans the whole statement (its cases
            // have no positions): left out; the statements inside are kept.
            Stmt::Match(s) => {
                for case in &s.cases {
                    self.body(&case.body, depth + 1);
                }
            }
            _ => self.push(start, stmt.range().end(), names),
        }
    }

    fn push(&mut self, start: TextSize, end: TextSize, names: Vec<String>) {
        let text = self
            .source
            .get(start.to_usize()..end.to_usize())
            .unwrap_or("");
        let mut snippet = self.dedented(text).trim().to_owned();
        if snippet.is_empty() {
            return;
        }
        while !self.used.insert(snippet.clone()) {
            snippet.push(' ');
        }
        self.out.push(Statement {
            snippet,
            start: self.lines.point(start),
            end: self.lines.point(end),
            names,
        });
    }

    /// Lines after the first lose the function's common margin, as in tracefunc's dedented
    /// source.
    fn dedented(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
                if line.trim().is_empty() {
                    continue;
                }
                out.push_str(line.strip_prefix(self.margin.as_str()).unwrap_or(line));
            } else {
                out.push_str(line);
            }
        }
        out
    }
}

/// Where Python's tree starts a statement: a decorated `def` or `class` at its keyword, not at
/// its first decorator as ruff's range does.
fn python_start(stmt: &Stmt, source: &str) -> TextSize {
    let (decorated, name_start, keywords): (bool, TextSize, &[&str]) = match stmt {
        Stmt::FunctionDef(s) => (
            !s.decorator_list.is_empty(),
            s.name.range.start(),
            if s.is_async {
                &["def", "async"]
            } else {
                &["def"]
            },
        ),
        Stmt::ClassDef(s) => (
            !s.decorator_list.is_empty(),
            s.name.range.start(),
            &["class"],
        ),
        _ => return stmt.range().start(),
    };
    if !decorated {
        return stmt.range().start();
    }
    let mut at = name_start.to_usize();
    for keyword in keywords {
        let before = source[..at].trim_end();
        match before.strip_suffix(keyword) {
            Some(rest) => at = rest.len(),
            None => return stmt.range().start(),
        }
    }
    TextSize::try_from(at).unwrap_or(stmt.range().start())
}

/// The end of a compound statement's header: where its first body statement starts (for a
/// decorated `def`, Python's tree starts it at the keyword).
fn header_end(body: &[Stmt], stmt: &Stmt, source: &str) -> TextSize {
    match body.first() {
        Some(first) => python_start(first, source),
        None => stmt.range().end(),
    }
}

/// The names a statement uses, as tracefunc's `NameCollector` gathers them with the statement
/// as its root.
fn statement_names(stmt: &Stmt) -> Vec<String> {
    let mut collector = NameCollector::default();
    match stmt {
        Stmt::FunctionDef(s) => {
            collector.names.insert(s.name.id.to_string());
        }
        Stmt::ClassDef(s) => {
            collector.names.insert(s.name.id.to_string());
        }
        Stmt::Global(s) => collector
            .names
            .extend(s.names.iter().map(|n| n.id.to_string())),
        Stmt::Nonlocal(s) => collector
            .names
            .extend(s.names.iter().map(|n| n.id.to_string())),
        Stmt::Import(s) => collector
            .names
            .extend(s.names.iter().map(|a| match &a.asname {
                Some(asname) => asname.id.to_string(),
                None => a.name.id.split('.').next().unwrap_or("").to_owned(),
            })),
        Stmt::ImportFrom(s) => collector.names.extend(
            s.names
                .iter()
                .map(|a| a.asname.as_ref().unwrap_or(&a.name).id.to_string()),
        ),
        _ => {}
    }
    visitor::walk_stmt(&mut collector, stmt);
    collector.sorted()
}

/// Names of one statement's own expressions: nested statements, clauses, lambdas and
/// comprehensions are not entered.
#[derive(Default)]
struct NameCollector {
    names: BTreeSet<String>,
}

impl NameCollector {
    fn sorted(self) -> Vec<String> {
        self.names.into_iter().collect()
    }
}

impl<'a> Visitor<'a> for NameCollector {
    fn visit_stmt(&mut self, _stmt: &'a Stmt) {}
    fn visit_except_handler(&mut self, _handler: &'a ExceptHandler) {}
    fn visit_elif_else_clause(&mut self, _clause: &'a ElifElseClause) {}
    fn visit_match_case(&mut self, _case: &'a MatchCase) {}
    fn visit_comprehension(&mut self, _comprehension: &'a Comprehension) {}

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) => {
                self.names.insert(name.id.to_string());
            }
            Expr::Lambda(_)
            | Expr::ListComp(_)
            | Expr::SetComp(_)
            | Expr::DictComp(_)
            | Expr::Generator(_) => {}
            _ => visitor::walk_expr(self, expr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
import os

def target(n, items):
    a = 1; b = 2
    total = 0
    for i in range(n):  # loop
        total += i * a
    if total > 3:
        out = [x for x in items if x > b]
    elif total:
        out = None
    else:
        out = (lambda q: q + n)(1)
    try:
        v = os.path.join('a', str(total))
    except ValueError as e:
        v = f'{e} {total}'
    return total
";

    fn statements() -> Vec<Statement> {
        function_statements(SOURCE, 3, "target").expect("parses")
    }

    #[test]
    fn statements_are_keyed_like_tracefunc() {
        let s = statements();
        let snippets: Vec<&str> = s.iter().map(|s| s.snippet.as_str()).collect();
        assert_eq!(
            snippets,
            [
                "a = 1",
                "b = 2",
                "total = 0",
                "for i in range(n):  # loop",
                "total += i * a",
                "if total > 3:",
                "out = [x for x in items if x > b]",
                "elif total:",
                "out = None",
                "out = (lambda q: q + n)(1)",
                "try:",
                "v = os.path.join('a', str(total))",
                "except ValueError as e:",
                "v = f'{e} {total}'",
                "return total",
            ]
        );
        let names = |i: usize| s[i].names.join(",");
        assert_eq!(names(0), "a");
        assert_eq!(names(3), "i,n,range");
        assert_eq!(names(6), "out"); // the comprehension is its own line in tracefunc
        assert_eq!(names(9), "out"); // and so is the lambda's scope
        assert_eq!(names(11), "os,str,total,v");
        assert_eq!(names(12), "ValueError,e");
        assert_eq!(names(13), "e,total,v");
    }

    #[test]
    fn points_find_the_smallest_statement() {
        let s = statements();
        let at = |line, column| statement_at(&s, line, column).map(|i| s[i].snippet.as_str());
        // `a = 1; b = 2` on line 4: columns 4.. and 11..
        assert_eq!(at(4, 8), Some("a = 1"));
        assert_eq!(at(4, 15), Some("b = 2"));
        assert_eq!(at(4, 10), None); // the `; ` between them
        assert_eq!(at(5, 4), Some("total = 0"));
        // The loop's header.
        assert_eq!(at(6, 13), Some("for i in range(n):  # loop"));
        // Inside the loop's body: the body's statement, not the header's span.
        assert_eq!(at(7, 8), Some("total += i * a"));
    }

    #[test]
    fn repeated_text_gets_trailing_spaces_and_bad_source_is_refused() {
        let src = "def f():\n    x = 1\n    x = 1\n";
        let s = function_statements(src, 1, "f").unwrap();
        assert_eq!(s[0].snippet, "x = 1");
        assert_eq!(s[1].snippet, "x = 1 ");
        assert!(function_statements("def f(:\n", 1, "f").is_none());
        assert!(function_statements(src, 2, "f").is_none());
    }
}
