//! The line model's walk of expressions: calls, displays, f-strings, comprehensions and the
//! lines each one's instructions carry.

use super::*;

impl<'a> LineModel<'a> {
    pub(super) fn expressions(&mut self, expressions: &[Expr]) {
        for expression in expressions {
            self.expression(expression);
        }
    }

    /// The iterable of a `for` (or comprehension): a list or set display of
    /// constants there is folded into a constant tuple/frozenset.
    pub(super) fn iterable(&mut self, iterable: &Expr) {
        if is_constant_sequence(iterable, self.rules) {
            self.mark_start(iterable);
        } else {
            self.expression(iterable);
        }
    }

    pub(super) fn expression(&mut self, expression: &Expr) {
        if self.enter(expression) {
            with_stack(|| self.expression_inner(expression));
        }
        self.leave();
    }

    pub(super) fn expression_inner(&mut self, expression: &Expr) {
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
    pub(super) fn display(&mut self, elements: &[Expr]) {
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

    pub(super) fn fstring(&mut self, fstring: &ruff_python_ast::ExprFString) {
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
    pub(super) fn fstring_literal_runs(&mut self, parts: &[&FStringPart]) {
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
    pub(super) fn located_interpolation(
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

    pub(super) fn searched_line(
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

    pub(super) fn interpolated_element(&mut self, element: &InterpolatedStringElement) {
        if let InterpolatedStringElement::Interpolation(interpolation) = element {
            self.expression(&interpolation.expression);
            if let Some(spec) = &interpolation.format_spec {
                self.interpolated_elements(&spec.elements);
            }
        }
    }

    pub(super) fn interpolated_elements(&mut self, elements: &InterpolatedStringElements) {
        for element in elements.iter() {
            self.interpolated_element(element);
        }
    }

    pub(super) fn comprehension(&mut self, generators: &[Comprehension], elements: &[&Expr]) {
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
