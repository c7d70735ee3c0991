//! Statements of a module body proven to have run by what the module's namespace holds
//! (docs/snapshot.md, section 3b, "From the namespaces"). A fact is a statement of the module's
//! own scope (not in a `def` or a class body) whose binding is found in the module's dict:
//!
//! - **a constant display**: `NAME = <display>` or `NAME: T = <display>`, the display a dict,
//!   list or tuple of at least [`MIN_ENTRIES`] entries built of constants only (nested
//!   displays of constants included), and the dict holds under `NAME` an exact dict, list or
//!   tuple with exactly that content (a dict's keys in order);
//! - **a class**: `class NAME`, and the dict holds under `NAME` a class whose `__name__` is
//!   `NAME`, whose `__module__` is the module's `__name__` and, on 3.13+, whose
//!   `__firstlineno__` is the statement's first line (one that is not says the file changed:
//!   nothing of the file is inferred); the class statement then completed, so its whole body ran;
//!
//! Imports are no fact: the module (or object) an import binds is one `setattr` away for code
//! outside the module, which needs no fingerprint to bind it (tests/it/snapshot_namespaces.rs
//! binds `json` so), and a submodule import binds its name in the parent package.
//!
//! In every case no other statement of the file binds `NAME` anywhere, in any scope (any
//! assignment, `del`, augmented assignment, import, `def`, `class`, `for`/`with`/`except`
//! target, walrus, pattern capture, `global`, parameter), the file has no `import *` and never
//! names `globals`, `vars`, `locals` or `exec`. The value was then bound by that statement in
//! some execution of the body (reloaded, the latest that reached it), which is the one fact
//! the sequence rule needs; what is left is code outside the module binding the same name to
//! an equal content, or to an equally named class claiming this module (named as residual
//! risks in docs/snapshot.md).

use super::LineStarts;
use crate::reader::values::Content;
use crate::snapshot::walk::namespaces::{Bound, Namespace};
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, ExprContext, Number, Pattern, Stmt, UnaryOp};
use ruff_text_size::{Ranged, TextSize};
use std::collections::{HashMap, HashSet};

/// Entries a display needs to be taken as a fingerprint of its statement: fewer, and a value
/// made elsewhere (a test's `mock.patch(..., new=[])`, a default) is too likely to be equal.
pub const MIN_ENTRIES: usize = 4;
/// Constants of one display compared at most.
const MAX_DISPLAY_ITEMS: usize = 1 << 20;
/// Nesting followed at most (statements and displays).
const MAX_DEPTH: usize = 64;

/// What the namespace proves of the statements of one module.
#[derive(Debug, Default)]
pub struct Facts {
    /// Start offsets of statements whose binding is in the namespace.
    pub bound: HashSet<TextSize>,
    /// A class's `__firstlineno__` names another line: the file changed since it ran.
    pub changed: bool,
}

/// The facts of `namespace` about the module whose parsed body is `suite`.
/// A reader of bound values by address ([`crate::snapshot::walk::namespaces::Values`]).
pub type Resolve<'r> = &'r mut dyn FnMut(usize) -> Bound;

pub(super) fn facts(
    suite: &[Stmt],
    lines: &LineStarts,
    namespace: &Namespace,
    resolve: Resolve,
) -> Facts {
    let mut binders = Binders::default();
    binders.visit_body(suite);
    let mut walk = Finder {
        lines,
        namespace,
        binders,
        values: namespace
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.address))
            .collect(),
        resolve,
        facts: Facts::default(),
    };
    if !walk.binders.dynamic {
        walk.block(suite, 0);
    }
    walk.facts
}

/// How many times each name is bound anywhere in a file, and whether the file binds names
/// in ways a name count cannot see (`import *`, `globals()`, `vars()`, `locals()`, `exec`).
#[derive(Default)]
struct Binders {
    counts: HashMap<String, usize>,
    dynamic: bool,
}

impl Binders {
    fn add(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_default() += 1;
    }

    fn once(&self, name: &str) -> bool {
        self.counts.get(name) == Some(&1)
    }
}

impl<'a> Visitor<'a> for Binders {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(def) => self.add(def.name.as_str()),
            Stmt::ClassDef(class) => self.add(class.name.as_str()),
            Stmt::Import(import) => {
                for alias in &import.names {
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    self.add(bound.split('.').next().unwrap_or(bound));
                }
            }
            Stmt::ImportFrom(import) => {
                for alias in &import.names {
                    if alias.name.as_str() == "*" {
                        self.dynamic = true;
                    }
                    self.add(alias.asname.as_ref().unwrap_or(&alias.name).as_str());
                }
            }
            Stmt::Global(g) => g.names.iter().for_each(|n| self.add(n.as_str())),
            Stmt::Nonlocal(n) => n.names.iter().for_each(|n| self.add(n.as_str())),
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Name(name) = expr {
            match name.ctx {
                ExprContext::Store | ExprContext::Del => self.add(name.id.as_str()),
                _ => {}
            }
            if matches!(name.id.as_str(), "globals" | "vars" | "locals" | "exec") {
                self.dynamic = true;
            }
        }
        visitor::walk_expr(self, expr);
    }

    fn visit_except_handler(&mut self, handler: &'a ruff_python_ast::ExceptHandler) {
        let ruff_python_ast::ExceptHandler::ExceptHandler(h) = handler;
        if let Some(name) = &h.name {
            self.add(name.as_str());
        }
        visitor::walk_except_handler(self, handler);
    }

    fn visit_parameter(&mut self, parameter: &'a ruff_python_ast::Parameter) {
        self.add(parameter.name.as_str());
        visitor::walk_parameter(self, parameter);
    }

    fn visit_type_param(&mut self, param: &'a ruff_python_ast::TypeParam) {
        self.add(param.name().as_str());
        visitor::walk_type_param(self, param);
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        match pattern {
            Pattern::MatchAs(p) => p.name.iter().for_each(|n| self.add(n.as_str())),
            Pattern::MatchStar(p) => p.name.iter().for_each(|n| self.add(n.as_str())),
            Pattern::MatchMapping(p) => p.rest.iter().for_each(|n| self.add(n.as_str())),
            _ => {}
        }
        visitor::walk_pattern(self, pattern);
    }
}

struct Finder<'a, 'r> {
    lines: &'a LineStarts,
    namespace: &'a Namespace,
    binders: Binders,
    values: HashMap<&'a str, usize>,
    /// Only the values of candidate statements' names are read.
    resolve: Resolve<'r>,
    facts: Facts,
}

impl Finder<'_, '_> {
    /// The statements of the module's own scope: compound statements are followed, `def`
    /// and class bodies are not (their names bind elsewhere).
    fn block(&mut self, stmts: &[Stmt], depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for stmt in stmts {
            if self.proves(stmt) {
                self.facts.bound.insert(stmt.start());
            }
            match stmt {
                Stmt::If(s) => {
                    self.block(&s.body, depth + 1);
                    for clause in &s.elif_else_clauses {
                        self.block(&clause.body, depth + 1);
                    }
                }
                Stmt::For(s) => {
                    self.block(&s.body, depth + 1);
                    self.block(&s.orelse, depth + 1);
                }
                Stmt::While(s) => {
                    self.block(&s.body, depth + 1);
                    self.block(&s.orelse, depth + 1);
                }
                Stmt::With(s) => self.block(&s.body, depth + 1),
                Stmt::Try(s) => {
                    self.block(&s.body, depth + 1);
                    for handler in &s.handlers {
                        let ruff_python_ast::ExceptHandler::ExceptHandler(h) = handler;
                        self.block(&h.body, depth + 1);
                    }
                    self.block(&s.orelse, depth + 1);
                    self.block(&s.finalbody, depth + 1);
                }
                _ => {}
            }
        }
    }

    /// The value bound to `name` if this file binds it once.
    fn value(&mut self, name: &str) -> Option<Bound> {
        let address = self
            .binders
            .once(name)
            .then(|| self.values.get(name).copied())
            .flatten()?;
        Some((self.resolve)(address))
    }

    fn proves(&mut self, stmt: &Stmt) -> bool {
        match stmt {
            Stmt::Assign(assign) => assign.targets.iter().any(|target| {
                matches!(target, Expr::Name(_)) && self.display_bound(target, &assign.value)
            }),
            Stmt::AnnAssign(assign) => assign
                .value
                .as_ref()
                .is_some_and(|value| self.display_bound(&assign.target, value)),
            Stmt::ClassDef(class) => {
                let Some(Bound::Class {
                    name,
                    module,
                    first_line,
                }) = self.value(class.name.as_str())
                else {
                    return false;
                };
                if name != class.name.as_str()
                    || module.as_deref() != Some(self.namespace.name.as_str())
                {
                    return false;
                }
                let first = class.decorator_list.first().map_or_else(
                    || self.lines.line(class.start()),
                    |d| self.lines.line(d.start()),
                );
                if first_line.is_some_and(|l| l != first) {
                    self.facts.changed = true;
                    return false;
                }
                true
            }
            _ => false,
        }
    }

    /// `target` is a name bound once in the file, to a value with exactly the content of
    /// the display `value`, large enough to be its fingerprint.
    fn display_bound(&mut self, target: &Expr, value: &Expr) -> bool {
        let Expr::Name(name) = target else {
            return false;
        };
        let entries = match value {
            Expr::Dict(d) => d.items.len(),
            Expr::List(l) => l.elts.len(),
            Expr::Tuple(t) => t.elts.len(),
            _ => return false,
        };
        if entries < MIN_ENTRIES {
            return false;
        }
        let Some(Bound::Content(found)) = self.value(name.id.as_str()) else {
            return false;
        };
        let mut budget = MAX_DISPLAY_ITEMS;
        expected(value, 0, &mut budget).is_some_and(|want| want == found)
    }
}

/// The content a display of constants makes; `None` if some part is not a constant or a
/// display of them, a dict repeats a key, or the budget is spent.
fn expected(expr: &Expr, depth: usize, budget: &mut usize) -> Option<Content> {
    if depth > MAX_DEPTH || *budget == 0 {
        return None;
    }
    *budget -= 1;
    Some(match expr {
        Expr::NoneLiteral(_) => Content::None,
        Expr::BooleanLiteral(b) => Content::Bool(b.value),
        Expr::NumberLiteral(n) => number(&n.value, false)?,
        Expr::UnaryOp(u) if u.op == UnaryOp::USub => match u.operand.as_ref() {
            Expr::NumberLiteral(n) => number(&n.value, true)?,
            _ => return None,
        },
        Expr::StringLiteral(s) => Content::Str(s.value.to_str().chars().map(u32::from).collect()),
        Expr::BytesLiteral(b) => Content::Bytes(b.value.bytes().collect()),
        Expr::Tuple(t) => Content::Tuple(items(&t.elts, depth, budget)?),
        Expr::List(l) => Content::List(items(&l.elts, depth, budget)?),
        Expr::Dict(d) => {
            let mut out: Vec<(Content, Content)> = Vec::with_capacity(d.items.len());
            for item in &d.items {
                let key = expected(item.key.as_ref()?, depth + 1, budget)?;
                // Equal keys of different types (1, 1.0, True) merge too: refuse any doubt.
                if out.iter().any(|(k, _)| *k == key) || !plain_key(&key) {
                    return None;
                }
                out.push((key, expected(&item.value, depth + 1, budget)?));
            }
            Content::Dict(out)
        }
        _ => return None,
    })
}

/// Keys whose equality is their content's: strings, bytes, ints (never `bool` or `float`,
/// which equal ints), `None`, and tuples of them.
fn plain_key(key: &Content) -> bool {
    match key {
        Content::Str(_) | Content::Bytes(_) | Content::None | Content::Int(..) => true,
        Content::Tuple(items) => items.iter().all(plain_key),
        _ => false,
    }
}

fn items(elts: &[Expr], depth: usize, budget: &mut usize) -> Option<Vec<Content>> {
    elts.iter()
        .map(|e| {
            if matches!(e, Expr::Starred(_)) {
                None
            } else {
                expected(e, depth + 1, budget)
            }
        })
        .collect()
}

fn number(n: &Number, negative: bool) -> Option<Content> {
    match n {
        Number::Int(i) => {
            let mut value = i.as_u64()?;
            let mut digits = Vec::new();
            while value != 0 {
                digits.push((value & ((1 << 30) - 1)) as u32);
                value >>= 30;
            }
            Some(Content::Int(negative && !digits.is_empty(), digits))
        }
        Number::Float(f) => {
            let f = if negative { -*f } else { *f };
            Some(Content::Float(f.to_bits()))
        }
        Number::Complex { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::infer_with;
    use super::*;
    use crate::snapshot::walk::namespaces::Entry;
    use std::collections::BTreeSet;

    fn text(s: &str) -> Content {
        Content::Str(s.chars().map(u32::from).collect())
    }

    fn int(n: u32) -> Content {
        Content::Int(false, if n == 0 { vec![] } else { vec![n] })
    }

    fn table(keys: &[&str]) -> Bound {
        Bound::Content(Content::Dict(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (text(k), int(i as u32 + 1)))
                .collect(),
        ))
    }

    /// A namespace, and its values by address (the entry's index).
    fn namespace(entries: Vec<(&str, Bound)>) -> (Namespace, Vec<Bound>) {
        let ns = Namespace {
            name: "pkg.mod".into(),
            file: "/x/pkg/mod.py".into(),
            entries: entries
                .iter()
                .enumerate()
                .map(|(address, (name, _))| Entry {
                    name: name.to_string(),
                    address,
                })
                .collect(),
        };
        (ns, entries.into_iter().map(|(_, value)| value).collect())
    }

    fn claims(source: &str, (ns, values): &(Namespace, Vec<Bound>)) -> Option<BTreeSet<u32>> {
        let mut resolve = |address: usize| values[address].clone();
        infer_with(source, &Default::default(), Some(ns), &mut resolve).map(|i| i.lines)
    }

    const SOURCE: &str = "\
import os
from typing import TypedDict
class K(TypedDict):
    a: int
T = {\"a\": 1, \"b\": 2,
     \"c\": 3, \"d\": 4}
TAIL = 1
";

    #[test]
    fn a_display_found_whole_proves_it_and_what_came_before() {
        let ns = namespace(vec![("T", table(&["a", "b", "c", "d"]))]);
        let want: BTreeSet<u32> = [1, 2, 3, 4, 5, 6].into_iter().collect();
        assert_eq!(claims(SOURCE, &ns), Some(want));
        // Keys in another order, one entry fewer, a short display: nothing.
        for other in [table(&["b", "a", "c", "d"]), table(&["a", "b", "c"])] {
            let ns = namespace(vec![("T", other)]);
            assert_eq!(claims(SOURCE, &ns), Some(BTreeSet::new()));
        }
        let short = "X = 0\nT = [1, 2, 3]\n";
        let ns = namespace(vec![(
            "T",
            Bound::Content(Content::List(vec![int(1), int(2), int(3)])),
        )]);
        assert_eq!(claims(short, &ns), Some(BTreeSet::new()));
    }

    #[test]
    fn a_name_with_another_binder_or_a_dynamic_file_proves_nothing() {
        let ns = namespace(vec![("T", table(&["a", "b", "c", "d"]))]);
        for extra in [
            "def f():\n    global T\n",
            "del T\n",
            "for T in []: pass\n",
            "def g(T=None): pass\n",
            "from elsewhere import *\n",
            "globals()['X'] = 1\n",
        ] {
            let source = format!("{SOURCE}{extra}");
            let got = claims(&source, &ns).unwrap_or_default();
            assert!(!got.contains(&5), "{extra:?}: {got:?}");
        }
    }

    #[test]
    fn a_class_claiming_its_module_and_line_proves_its_whole_statement() {
        let class = |module: &str, line: Option<u32>| Bound::Class {
            name: "K".into(),
            module: Some(module.into()),
            first_line: line,
        };
        let want: BTreeSet<u32> = [1, 2, 3, 4].into_iter().collect();
        for line in [None, Some(3)] {
            let ns = namespace(vec![("K", class("pkg.mod", line))]);
            assert_eq!(claims(SOURCE, &ns), Some(want.clone()));
        }
        // Made in another module: nothing; its statement on another line: the file changed.
        let ns = namespace(vec![("K", class("pkg.other", Some(3)))]);
        assert_eq!(claims(SOURCE, &ns), Some(BTreeSet::new()));
        let ns = namespace(vec![("K", class("pkg.mod", Some(9)))]);
        assert_eq!(claims(SOURCE, &ns), None);
    }

    #[test]
    fn displays_of_nested_constants_and_doubtful_keys() {
        let mut budget = MAX_DISPLAY_ITEMS;
        let parse = |s: &str| {
            let parsed = ruff_python_parser::parse_expression(s).unwrap();
            parsed.into_expr()
        };
        let got = expected(
            &parse("(-1, 2.5, None, b'x', True, ('n', 2**3))"),
            0,
            &mut budget,
        );
        // `2**3` is an operation, not a display of constants.
        assert_eq!(got, None);
        let got = expected(&parse("[-1, 2.5, None, b'x', True]"), 0, &mut budget).unwrap();
        assert_eq!(
            got,
            Content::List(vec![
                Content::Int(true, vec![1]),
                Content::Float(2.5f64.to_bits()),
                Content::None,
                Content::Bytes(b"x".to_vec()),
                Content::Bool(true),
            ])
        );
        // 1 and True are one key; a repeated key keeps its first place: refused.
        assert_eq!(
            expected(&parse("{1: 'a', True: 'b'}"), 0, &mut budget),
            None
        );
        assert_eq!(expected(&parse("{'a': 1, 'a': 2}"), 0, &mut budget), None);
        assert_eq!(expected(&parse("{'a': 1, **x}"), 0, &mut budget), None);
    }
}
