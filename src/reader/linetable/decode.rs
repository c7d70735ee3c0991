//! The three line-table encodings decoded entry by entry: 3.8–3.9 `co_lnotab`, 3.10
//! `co_linetable`, 3.11+ location entries. Every read is bounded by the table's own bytes.

use super::*;

/// One table entry as a range of code, before merging: bytes `start..end` (`end` may be
/// `u64::MAX` for the open-ended last line of a 3.8–3.9 table).
#[derive(Debug, Clone, Copy)]
pub(super) struct RawEntry {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) line: Option<i64>,
}

pub(super) enum Step {
    Entry(RawEntry),
    End,
    Malformed,
}

/// Walks a table's entries in order, yielding only non-empty ranges, as CPython's
/// `_PyLineTable_NextAddressRange` does.
#[derive(Debug, Clone)]
pub(super) struct Entries<'a> {
    pub(super) format: LineTableFormat,
    pub(super) reader: ByteReader<'a>,
    pub(super) code_offset: u64,
    /// The running line (`computed_line`), wide enough that no table can overflow it.
    pub(super) line: i64,
    pub(super) lnotab_tail_done: bool,
    pub(super) malformed: bool,
}

impl Entries<'_> {
    pub(super) fn next_entry(&mut self) -> Step {
        if self.malformed {
            return Step::Malformed;
        }
        let step = match self.format {
            LineTableFormat::Lnotab => self.next_lnotab(),
            LineTableFormat::Linetable310 => self.next_linetable310(),
            LineTableFormat::Locations => self.next_location(),
        };
        if let Step::Malformed = step {
            self.malformed = true;
        }
        step
    }

    pub(super) fn next_lnotab(&mut self) -> Step {
        // Pairs with a zero byte increment only move the line (long line jumps take several).
        while !self.reader.at_end() {
            let (Some(byte_increment), Some(line_increment)) =
                (self.reader.byte(), self.reader.byte())
            else {
                return Step::Malformed;
            };
            let start = self.code_offset;
            let line = self.line;
            self.code_offset += u64::from(byte_increment);
            self.line += i64::from(line_increment as i8);
            if byte_increment > 0 {
                return Step::Entry(RawEntry {
                    start,
                    end: self.code_offset,
                    line: Some(line),
                });
            }
        }
        if self.lnotab_tail_done {
            return Step::End;
        }
        self.lnotab_tail_done = true;
        Step::Entry(RawEntry {
            start: self.code_offset,
            end: u64::MAX,
            line: Some(self.line),
        })
    }

    pub(super) fn next_linetable310(&mut self) -> Step {
        while !self.reader.at_end() {
            let (Some(length), Some(line_delta)) = (self.reader.byte(), self.reader.byte()) else {
                return Step::Malformed;
            };
            let start = self.code_offset;
            self.code_offset += u64::from(length);
            let line = match line_delta as i8 {
                -128 => None,
                delta => {
                    self.line += i64::from(delta);
                    Some(self.line)
                }
            };
            if length > 0 {
                return Step::Entry(RawEntry {
                    start,
                    end: self.code_offset,
                    line,
                });
            }
        }
        Step::End
    }

    pub(super) fn next_location(&mut self) -> Step {
        if self.reader.at_end() {
            return Step::End;
        }
        let Some(entry) = read_location_entry(&mut self.reader) else {
            return Step::Malformed;
        };
        let start = self.code_offset;
        self.code_offset += entry.length;
        let line = entry.line_delta.map(|delta| {
            self.line = self.line.saturating_add(delta);
            self.line
        });
        Step::Entry(RawEntry {
            start,
            end: self.code_offset,
            line,
        })
    }
}

/// One decoded 3.11+ location entry.
pub(super) struct LocationEntry {
    /// Bytes of code covered (never 0).
    pub(super) length: u64,
    /// Change of the running line, or `None` for "no location" (which leaves it unchanged).
    pub(super) line_delta: Option<i64>,
    pub(super) columns: Columns,
}

pub(super) enum Columns {
    NoLocation,
    None,
    /// Start and end column on the start line.
    Span {
        column: u32,
        end_column: u32,
    },
    /// Stored plus one, so that 0 means "none".
    Long {
        end_line_delta: u32,
        column_plus_one: u32,
        end_column_plus_one: u32,
    },
}

/// Codes of a location entry's first byte (`_PyCodeLocationInfoKind`).
pub(super) const SHORT_FORM_LAST: u8 = 9;
pub(super) const ONE_LINE_0: u8 = 10;
pub(super) const ONE_LINE_2: u8 = 12;
pub(super) const NO_COLUMNS: u8 = 13;
pub(super) const LONG: u8 = 14;
pub(super) const NO_LOCATION: u8 = 15;

/// Reads one location entry and checks that the next entry starts right after it: an entry
/// whose bytes do not add up is torn or garbage.
pub(super) fn read_location_entry(reader: &mut ByteReader) -> Option<LocationEntry> {
    let first = reader.byte()?;
    if first & 0x80 == 0 {
        return None;
    }
    let code = (first >> 3) & 0x0f;
    let length = (u64::from(first & 0x07) + 1) * 2;
    let (line_delta, columns) = match code {
        0..=SHORT_FORM_LAST => {
            let second = reader.continuation_byte()?;
            let column = u32::from(code) * 8 + u32::from((second >> 4) & 0x07);
            let end_column = column + u32::from(second & 0x0f);
            (Some(0), Columns::Span { column, end_column })
        }
        ONE_LINE_0..=ONE_LINE_2 => {
            let column = u32::from(reader.continuation_byte()?);
            let end_column = u32::from(reader.continuation_byte()?);
            let delta = i64::from(code - ONE_LINE_0);
            (Some(delta), Columns::Span { column, end_column })
        }
        NO_COLUMNS => (Some(reader.signed_varint()?), Columns::None),
        LONG => {
            let delta = reader.signed_varint()?;
            let columns = Columns::Long {
                end_line_delta: reader.varint()?,
                column_plus_one: reader.varint()?,
                end_column_plus_one: reader.varint()?,
            };
            (Some(delta), columns)
        }
        NO_LOCATION => (None, Columns::NoLocation),
        _ => unreachable!("a 4-bit code"),
    };
    if !reader.at_entry_start() {
        return None;
    }
    Some(LocationEntry {
        length,
        line_delta,
        columns,
    })
}

/// Bounded reads over a table.
#[derive(Debug, Clone)]
pub(super) struct ByteReader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) position: usize,
}

/// A `u32` takes at most 6 chunks of 6 bits.
pub(super) const MAX_VARINT_BYTES: usize = 6;

impl<'a> ByteReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { bytes, position: 0 }
    }

    pub(super) fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// At the end, or at a byte with bit 7 set (the first byte of a location entry).
    pub(super) fn at_entry_start(&self) -> bool {
        self.bytes
            .get(self.position)
            .is_none_or(|byte| byte & 0x80 != 0)
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(byte)
    }

    /// A byte inside a location entry: bit 7 clear.
    pub(super) fn continuation_byte(&mut self) -> Option<u8> {
        self.byte().filter(|byte| byte & 0x80 == 0)
    }

    /// 6-bit chunks, least significant first, bit 6 set on all but the last.
    pub(super) fn varint(&mut self) -> Option<u32> {
        let mut value: u64 = 0;
        for chunk_index in 0..MAX_VARINT_BYTES {
            let byte = self.continuation_byte()?;
            value |= u64::from(byte & 0x3f) << (6 * chunk_index);
            if byte & 0x40 == 0 {
                return u32::try_from(value).ok();
            }
        }
        None
    }

    /// A varint holding `magnitude << 1 | sign`.
    pub(super) fn signed_varint(&mut self) -> Option<i64> {
        let raw = self.varint()?;
        let magnitude = i64::from(raw >> 1);
        Some(if raw & 1 != 0 { -magnitude } else { magnitude })
    }
}
