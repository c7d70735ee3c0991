//! Whether `repr(str)` shows a character as it is or escapes it, in every supported version.
//!
//! Python escapes a non-ASCII character in a `str`'s repr unless `str.isprintable()` says it is
//! printable, which follows the Unicode database of the interpreter's own version. The tables
//! in `generated.rs` are measured from every CPython 3.8–3.15 by `generate.py` (in this
//! directory): code points printable in all of them, and code points printable in none. A code
//! point in neither (one a newer Unicode assigned, say) is [`Printability::Differs`], and the
//! value decoder leaves a string holding it opaque rather than guess which repr the target
//! would produce.

mod generated;

pub use generated::{PRINTABLE_IN_EVERY_VERSION, UNPRINTABLE_IN_EVERY_VERSION, VERSIONS};

/// What every supported version's `str.isprintable()` says of one code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printability {
    /// Printable in every version: `repr` shows it as it is.
    Printable,
    /// Printable in no version: `repr` escapes it.
    Unprintable,
    /// Printable in some versions only, or not a code point at all (past U+10FFFF).
    Differs,
}

/// [`Printability`] of `code` (any `u32`: surrogates and values past U+10FFFF included).
pub fn printability(code: u32) -> Printability {
    if in_ranges(PRINTABLE_IN_EVERY_VERSION, code) {
        Printability::Printable
    } else if in_ranges(UNPRINTABLE_IN_EVERY_VERSION, code) {
        Printability::Unprintable
    } else {
        Printability::Differs
    }
}

/// Whether `code` lies in one of `ranges` (inclusive, ascending, not overlapping).
fn in_ranges(ranges: &[(u32, u32)], code: u32) -> bool {
    let after = ranges.partition_point(|&(first, _)| first <= code);
    after > 0 && code <= ranges[after - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_ascending_disjoint_and_within_unicode() {
        for table in [PRINTABLE_IN_EVERY_VERSION, UNPRINTABLE_IN_EVERY_VERSION] {
            assert!(!table.is_empty());
            for &(first, last) in table {
                assert!(first <= last && last <= 0x10ffff, "{first:#x}..{last:#x}");
            }
            for pair in table.windows(2) {
                assert!(
                    pair[0].1 + 1 < pair[1].0,
                    "{pair:x?}: not merged or overlapping"
                );
            }
        }
    }

    #[test]
    fn well_known_code_points() {
        use Printability::*;
        for (code, want) in [
            (0x41, Printable),     // A
            (0x7f, Unprintable),   // DEL
            (0xa0, Unprintable),   // NO-BREAK SPACE (Zs)
            (0xad, Unprintable),   // SOFT HYPHEN (Cf)
            (0xe9, Printable),     // é
            (0x378, Unprintable),  // unassigned in every version
            (0x200b, Unprintable), // ZERO WIDTH SPACE (Cf)
            (0x4e16, Printable),   // 世
            (0xd800, Unprintable), // a surrogate
            (0x1f40d, Printable),  // SNAKE (Unicode 6.0)
            (0x1fae8, Differs),    // SHAKING FACE: Unicode 15.0, Python 3.12+
            (0x10ffff, Unprintable),
            (0x110000, Differs),
            (u32::MAX, Differs),
        ] {
            assert_eq!(printability(code), want, "{code:#x}");
        }
    }
}
