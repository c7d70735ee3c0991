//! Python's reprs rebuilt from values already read: ints from their digits, floats, str and
//! bytes quoted and escaped as CPython does, and the cut to [`MAX_REPR_CHARS`] characters.

use super::printable::{printability, Printability};
use super::MAX_REPR_CHARS;

/// A repr being built: stops growing once it is longer than [`MAX_REPR_CHARS`].
#[derive(Default)]
pub(super) struct Repr {
    pub(super) text: String,
    pub(super) chars: usize,
}

impl Repr {
    pub(super) fn full(&self) -> bool {
        self.chars > MAX_REPR_CHARS
    }

    /// Characters still kept before the repr is long enough to be cut.
    pub(super) fn room(&self) -> usize {
        (MAX_REPR_CHARS + 1).saturating_sub(self.chars)
    }

    pub(super) fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if self.full() {
                return;
            }
            self.text.push(c);
            self.chars += 1;
        }
    }

    /// tracefunc's cut: `s if len(s) <= 50 else s[:47] + "..."`.
    pub(super) fn finish(self) -> String {
        cut_repr(&self.text)
    }
}

/// tracefunc's cut of a repr: `s if len(s) <= 50 else s[:47] + "..."` (characters).
pub fn cut_repr(s: &str) -> String {
    if s.chars().count() <= MAX_REPR_CHARS {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(MAX_REPR_CHARS - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// Decimal digits of a magnitude given in base-2^bits digits, least significant first.
pub fn digits_to_decimal(digits: &[u32], bits: u32) -> String {
    // Base 10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = Vec::new();
    for &digit in digits.iter().rev() {
        let mut carry = u64::from(digit);
        for limb in limbs.iter_mut() {
            let value = (u64::from(*limb) << bits) + carry;
            *limb = (value % 1_000_000_000) as u32;
            carry = value / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    match limbs.split_last() {
        None => "0".to_owned(),
        Some((top, rest)) => {
            let mut s = top.to_string();
            for limb in rest.iter().rev() {
                s.push_str(&format!("{limb:09}"));
            }
            s
        }
    }
}

/// `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal
/// point falls within -4 < exponent <= 16, else `d.ddde+XX`.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let formatted = format!("{value:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exponent + 1; // position of the decimal point after the first digit
    if value == 0.0 {
        return format!("{sign}0.0");
    }
    if -4 < decpt && decpt <= 16 {
        let n = digits.len() as i32;
        let body = if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= n {
            format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
        } else {
            format!(
                "{}.{}",
                &digits[..decpt as usize],
                &digits[decpt as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = decpt - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{sign}{first}{point}e{e_sign}{:02}", e.abs())
    }
}

/// The quote Python's reprs choose: `'` unless the text has `'` and no `"`.
pub(super) fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// `repr(str)`; `None` when a character's printability differs between the supported
/// versions (see [`printable`](super::printable)), so that the target's repr is not known.
pub fn str_repr(text: &str) -> Option<String> {
    let code_points: Vec<u32> = text.chars().map(u32::from).collect();
    code_points_repr(&code_points, usize::MAX)
}

/// `repr(str)` of a string's code points (a lone surrogate included), built until it is longer
/// than `limit` characters: a character past that point cannot make the kept part opaque.
/// `None` if a character before it is printable in some supported versions only.
///
/// As CPython's `unicode_repr`: quotes `'` unless the text has `'` and no `"`; `\\`, `\t`,
/// `\n`, `\r` and the quote escaped; other ASCII controls and DEL as `\xNN`; other ASCII as
/// is; beyond ASCII, a printable character as is and any other as `\xNN` (up to U+00FF),
/// `\uNNNN` (up to U+FFFF) or `\UNNNNNNNN`, in lowercase hex.
pub fn code_points_repr(code_points: &[u32], limit: usize) -> Option<String> {
    let has = |c: char| code_points.contains(&u32::from(c));
    let quote = quote_for(has('\''), has('"'));
    let mut out = String::with_capacity(code_points.len().min(limit) + 2);
    let mut chars = 1usize;
    out.push(quote);
    for &code in code_points {
        if chars > limit {
            return Some(out);
        }
        let start = out.len();
        match char::from_u32(code) {
            Some('\\') => out.push_str("\\\\"),
            Some('\t') => out.push_str("\\t"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some(c) if c == quote => {
                out.push('\\');
                out.push(c);
            }
            Some(_) if code < 0x20 || code == 0x7f => out.push_str(&format!("\\x{code:02x}")),
            Some(c) if code < 0x7f => out.push(c),
            _ => match printability(code) {
                Printability::Printable => out.push(char::from_u32(code)?),
                Printability::Unprintable if code <= 0xff => {
                    out.push_str(&format!("\\x{code:02x}"))
                }
                Printability::Unprintable if code <= 0xffff => {
                    out.push_str(&format!("\\u{code:04x}"))
                }
                Printability::Unprintable => out.push_str(&format!("\\U{code:08x}")),
                Printability::Differs => return None,
            },
        }
        chars += out[start..].chars().count();
    }
    out.push(quote);
    Some(out)
}

/// `repr(bytes)`.
pub fn bytes_repr(data: &[u8]) -> String {
    let quote = quote_for(data.contains(&b'\''), data.contains(&b'"'));
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b as char == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn floats_print_as_python_does() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (-0.0, "-0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
        ];
        for (value, want) in cases {
            assert_eq!(float_repr(value), want, "{value}");
        }
    }

    #[test]
    pub(super) fn ints_in_decimal() {
        assert_eq!(digits_to_decimal(&[], 30), "0");
        assert_eq!(digits_to_decimal(&[7], 30), "7");
        // 2**30 + 5
        assert_eq!(digits_to_decimal(&[5, 1], 30), "1073741829");
        // 2**90 = 1237940039285380274899124224
        assert_eq!(
            digits_to_decimal(&[0, 0, 0, 1], 30),
            "1237940039285380274899124224"
        );
    }

    #[test]
    pub(super) fn strings_and_bytes_quote_and_escape_as_python_does() {
        assert_eq!(str_repr("hi").unwrap(), "'hi'");
        assert_eq!(str_repr("it's").unwrap(), "\"it's\"");
        assert_eq!(str_repr("'\"").unwrap(), "'\\'\"'");
        assert_eq!(str_repr("a\nb\t\\\x01").unwrap(), "'a\\nb\\t\\\\\\x01'");
        assert_eq!(str_repr("café ß\u{a0}").unwrap(), "'café ß\\xa0'");
        assert_eq!(str_repr("日本").unwrap(), "'日本'");
        assert_eq!(str_repr("→").unwrap(), "'→'");
        assert_eq!(bytes_repr(b"ab\x00'"), "b\"ab\\x00'\"");
        assert_eq!(bytes_repr(b"\xff\\"), "b'\\xff\\\\'");
    }

    #[test]
    pub(super) fn escapes_beyond_ascii_follow_python() {
        // Each repr is what every CPython 3.8-3.14 prints.
        let cases: &[(&[u32], &str)] = &[
            (&[0x68, 0xe9, 0x6c, 0x6c, 0x6f], "'héllo'"),
            (&[0x80, 0x9f, 0xa0, 0xad, 0xff], "'\\x80\\x9f\\xa0\\xadÿ'"),
            (&[0x378], "'\\u0378'"), // unassigned
            (&[0x200b, 0x2028, 0xfeff], "'\\u200b\\u2028\\ufeff'"), // Cf, Zl, Cf
            (&[0x3000], "'\\u3000'"), // IDEOGRAPHIC SPACE (Zs)
            (&[0xd800, 0xdfff], "'\\ud800\\udfff'"), // lone surrogates
            (&[0xe000], "'\\ue000'"), // private use
            (&[0x1f40d], "'🐍'"),
            (&[0x4e16, 0x754c], "'世界'"),
            (&[0xe0001], "'\\U000e0001'"), // LANGUAGE TAG (Cf)
            (&[0x10ffff], "'\\U0010ffff'"),
            (&[0x27, 0x2028], "\"'\\u2028\""), // the quote choice holds beyond ASCII
        ];
        for (code_points, want) in cases {
            assert_eq!(
                code_points_repr(code_points, usize::MAX).as_deref(),
                Some(*want),
                "{code_points:x?}"
            );
        }
    }

    #[test]
    pub(super) fn a_character_printable_in_some_versions_only_is_opaque_unless_cut_off() {
        // U+1FAE8 SHAKING FACE: Unicode 15.0, printable from Python 3.12 on only.
        assert_eq!(code_points_repr(&[0x61, 0x1fae8], usize::MAX), None);
        // Not a code point at all.
        assert_eq!(code_points_repr(&[0x110000], usize::MAX), None);
        // Past the cut it does not matter: the kept part is the same in every version.
        let mut long = vec![0x78u32; 60];
        long.push(0x1fae8);
        let cut = cut_repr(&code_points_repr(&long, MAX_REPR_CHARS + 1).unwrap());
        assert_eq!(cut, format!("'{}...", "x".repeat(46)));
        // The quote is chosen from the whole text, even past the cut.
        long.push(0x27);
        let cut = cut_repr(&code_points_repr(&long, MAX_REPR_CHARS + 1).unwrap());
        assert_eq!(cut, format!("\"{}...", "x".repeat(46)));
    }

    #[test]
    pub(super) fn reprs_are_cut_as_tracefunc_cuts_them() {
        let long = "x".repeat(60);
        let cut = cut_repr(&long);
        assert_eq!(cut.chars().count(), 50);
        assert!(cut.ends_with("..."));
        assert_eq!(cut_repr("short"), "short");
        assert_eq!(cut_repr(&"y".repeat(50)), "y".repeat(50));
    }
}
