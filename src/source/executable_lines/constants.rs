//! Constant folding as CPython's compiler does it: which expressions become one constant, and
//! which tests have a truth known at compile time (their branches leave no lines).

use super::*;

/// A literal the compiler loads with a single LOAD_CONST.
pub(super) fn is_literal(expression: &Expr) -> bool {
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
pub(super) fn is_folded_constant(expression: &Expr, rules: CompilerRules) -> bool {
    folded_value(expression, rules, 0).is_some()
}

/// Rough shape of a folded constant, enough for CPython's size limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Folded {
    /// An int with this many bits (saturating), or a bool.
    Int(u64),
    /// A float or complex.
    Float,
    /// A str, bytes or tuple of this length.
    Sequence(u64),
    /// None, Ellipsis.
    Other,
}

pub(super) fn folded_value(expression: &Expr, rules: CompilerRules, depth: u32) -> Option<Folded> {
    if depth > MAX_NESTING {
        return None;
    }
    with_stack(|| folded_value_inner(expression, rules, depth))
}

pub(super) fn folded_value_inner(
    expression: &Expr,
    rules: CompilerRules,
    depth: u32,
) -> Option<Folded> {
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
pub(super) fn fold_binary(
    op: Operator,
    left: Folded,
    right: Folded,
    right_expr: &Expr,
) -> Option<Folded> {
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
pub(super) fn is_constant_sequence(expression: &Expr, rules: CompilerRules) -> bool {
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
pub(super) fn dict_items_loading_keys(
    dict: &ruff_python_ast::ExprDict,
    rules: CompilerRules,
) -> Vec<bool> {
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
pub(super) fn constant_truth(expression: &Expr, rules: CompilerRules) -> Option<bool> {
    constant_truth_at(expression, rules, 0)
}

pub(super) fn constant_truth_at(
    expression: &Expr,
    rules: CompilerRules,
    depth: u32,
) -> Option<bool> {
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
