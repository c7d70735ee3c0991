//! `trace._find_strings`: the lines of "docstrings" (a STRING token after INDENT, or first in
//! the file), which trace leaves out of the executable lines.

use super::*;

/// Lines that `trace._find_strings` reports: every line spanned by a string
/// token that directly follows an INDENT token (or starts the file).
pub(super) fn docstring_lines(
    tokens: &Tokens,
    lines: &LineIndex,
    rules: CompilerRules,
) -> BTreeSet<u32> {
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
pub(super) fn matching_fstring_end(tokens: &Tokens, start: usize) -> usize {
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
