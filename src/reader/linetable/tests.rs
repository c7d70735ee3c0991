//! The decoders against tables of every format, by hand and from real code objects.

use super::*;
use LineTableFormat::{Linetable310, Lnotab, Locations};

fn lines(table: &LineTable, code_len: u32) -> Vec<Option<u32>> {
    (0..code_len).map(|o| table.line_for_offset(o)).collect()
}

fn ranges(table: &LineTable, code_len: u32) -> Vec<(u32, u32, Option<u32>)> {
    table
        .ranges(code_len)
        .map(|r| (r.start, r.end, r.line))
        .collect()
}

#[test]
fn formats_by_version() {
    assert_eq!(LineTableFormat::for_version(PyVersion::new(3, 7)), None);
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 8)),
        Some(Lnotab)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 9)),
        Some(Lnotab)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 10)),
        Some(Linetable310)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 11)),
        Some(Locations)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 13)),
        Some(Locations)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 14)),
        Some(Locations)
    );
    assert_eq!(
        LineTableFormat::for_version(PyVersion::new(3, 15)),
        Some(Locations)
    );
    assert_eq!(LineTableFormat::for_version(PyVersion::new(3, 16)), None);
    assert_eq!(LineTableFormat::for_version(PyVersion::new(2, 7)), None);
}

#[test]
fn lnotab_applies_every_pair_up_to_the_offset() {
    // Line jumps of 254 take two pairs with no byte increment; -2 goes back (a decorator).
    let bytes = [0, 1, 6, 1, 4, (-2i8) as u8, 0, 127, 0, 127, 2, 1];
    let table = LineTable::new(Lnotab, &bytes, 10);
    let mut expected = vec![Some(11); 6];
    expected.extend([Some(12); 4]);
    expected.extend([Some(264); 2]);
    expected.extend([Some(265); 4]);
    assert_eq!(lines(&table, 16), expected);
    // The last line has no end: it holds to the end of the code and beyond.
    assert_eq!(table.line_for_offset(1000), Some(265));
    assert_eq!(
        ranges(&table, 16),
        [
            (0, 6, Some(11)),
            (6, 10, Some(12)),
            (10, 12, Some(264)),
            (12, 16, Some(265))
        ]
    );
    assert_eq!(table.line_range(16), Some((11, 265)));
    assert_eq!(table.line_range(10), Some((11, 12)));
    assert!(table.positions().is_none());
}

#[test]
fn lnotab_empty_table_is_the_first_line() {
    let table = LineTable::new(Lnotab, &[], 7);
    assert_eq!(table.line_for_offset(0), Some(7));
    assert_eq!(ranges(&table, 4), [(0, 4, Some(7))]);
    assert_eq!(table.line_range(0), None);
}

#[test]
fn linetable310_ranges_with_no_line() {
    let bytes = [8, 0, 4, 1, 0, 2, 6, 0x80, 2, (-1i8) as u8, 0, 5];
    let table = LineTable::new(Linetable310, &bytes, 5);
    let mut expected = vec![Some(5); 8];
    expected.extend([Some(6); 4]);
    expected.extend([None; 6]);
    expected.extend([Some(7); 2]);
    expected.push(None); // past the table
    assert_eq!(lines(&table, 21), expected);
    assert_eq!(
        ranges(&table, 20),
        [
            (0, 8, Some(5)),
            (8, 12, Some(6)),
            (12, 18, None),
            (18, 20, Some(7))
        ]
    );
    assert_eq!(table.line_range(20), Some((5, 7)));
}

#[test]
fn linetable310_merges_pairs_of_one_line() {
    // A long run of one line takes several pairs: one range.
    let bytes = [254, 1, 254, 0, 4, 0];
    let table = LineTable::new(Linetable310, &bytes, 1);
    assert_eq!(ranges(&table, 512), [(0, 512, Some(2))]);
}

/// Builds 3.11+ location tables from the documented forms.
#[derive(Default)]
struct LocationsWriter(Vec<u8>);

impl LocationsWriter {
    fn head(&mut self, code: u8, units: u8) -> &mut Self {
        assert!((1..=8).contains(&units));
        self.0.push(0x80 | code << 3 | (units - 1));
        self
    }
    fn varint(&mut self, mut value: u32) -> &mut Self {
        while value >= 64 {
            self.0.push(0x40 | (value & 0x3f) as u8);
            value >>= 6;
        }
        self.0.push(value as u8);
        self
    }
    fn signed(&mut self, value: i32) -> &mut Self {
        let raw = if value < 0 {
            (value.unsigned_abs() << 1) | 1
        } else {
            (value as u32) << 1
        };
        self.varint(raw)
    }
    fn short(&mut self, units: u8, column: u8, width: u8) -> &mut Self {
        self.head(column / 8, units);
        self.0.push((column % 8) << 4 | width);
        self
    }
    fn one_line(&mut self, units: u8, delta: u8, column: u8, end: u8) -> &mut Self {
        self.head(ONE_LINE_0 + delta, units);
        self.0.extend([column, end]);
        self
    }
    fn no_columns(&mut self, units: u8, delta: i32) -> &mut Self {
        self.head(NO_COLUMNS, units).signed(delta)
    }
    fn long(&mut self, units: u8, delta: i32, lines: u32, col: u32, end: u32) -> &mut Self {
        self.head(LONG, units)
            .signed(delta)
            .varint(lines)
            .varint(col + 1)
            .varint(end + 1)
    }
    fn no_location(&mut self, units: u8) -> &mut Self {
        self.head(NO_LOCATION, units)
    }
}

fn sample_locations() -> Vec<u8> {
    let mut w = LocationsWriter::default();
    w.short(2, 11, 5)
        .one_line(1, 1, 4, 20)
        .no_location(3)
        .no_columns(1, -1)
        .long(8, 200, 2, 300, 5)
        .one_line(1, 0, 0, 127)
        .long(1, -3, 0, 70_000, 0);
    w.0
}

#[test]
fn locations_every_form() {
    let bytes = sample_locations();
    let table = LineTable::new(Locations, &bytes, 100);
    let mut expected = vec![Some(100); 4];
    expected.extend([Some(101); 2]);
    expected.extend([None; 6]);
    expected.extend([Some(100); 2]);
    expected.extend([Some(300); 16]);
    expected.extend([Some(300); 2]);
    expected.extend([Some(297); 2]);
    expected.push(None);
    assert_eq!(lines(&table, 35), expected);
    assert_eq!(
        ranges(&table, 34),
        [
            (0, 4, Some(100)),
            (4, 6, Some(101)),
            (6, 12, None),
            (12, 14, Some(100)),
            (14, 32, Some(300)),
            (32, 34, Some(297)),
        ]
    );
    assert_eq!(table.line_range(34), Some((100, 300)));
    let positions: Vec<_> = table.positions().unwrap().collect();
    let p = |start, end, line, end_line, column, end_column| Position {
        start,
        end,
        line,
        end_line,
        column,
        end_column,
    };
    assert_eq!(
        positions,
        [
            p(0, 4, Some(100), Some(100), Some(11), Some(16)),
            p(4, 6, Some(101), Some(101), Some(4), Some(20)),
            p(6, 12, None, None, None, None),
            p(12, 14, Some(100), Some(100), None, None),
            p(14, 30, Some(300), Some(302), Some(300), Some(5)),
            p(30, 32, Some(300), Some(300), Some(0), Some(127)),
            p(32, 34, Some(297), Some(297), Some(70_000), Some(0)),
        ]
    );
}

#[test]
fn locations_long_form_without_columns() {
    let mut w = LocationsWriter::default();
    w.head(LONG, 1).signed(0).varint(0).varint(0).varint(0);
    let table = LineTable::new(Locations, &w.0, 3);
    let position = table.positions().unwrap().next().unwrap();
    assert_eq!((position.column, position.end_column), (None, None));
    assert_eq!(position.end_line, Some(3));
}

#[test]
fn locations_truncated_or_torn() {
    let bytes = sample_locations();
    let whole = LineTable::new(Locations, &bytes, 100);
    let truth = lines(&whole, 34);
    for cut in 0..bytes.len() {
        let table = LineTable::new(Locations, &bytes[..cut], 100);
        let got = lines(&table, 34);
        // A prefix answers like the whole table up to where it stops, then None.
        let agreeing = got.iter().zip(&truth).take_while(|(g, t)| g == t).count();
        assert!(got[agreeing..].iter().all(Option::is_none), "cut {cut}");
    }
    // An entry whose bytes do not add up: a continuation byte where a head is expected.
    let mut torn = bytes.clone();
    torn.insert(2, 0x05);
    let table = LineTable::new(Locations, &torn, 100);
    assert_eq!(table.line_for_offset(0), None);
    assert_eq!(table.line_range(34), None);
    // A head byte inside a varint.
    let mut w = LocationsWriter::default();
    w.head(NO_COLUMNS, 1).0.push(0x80 | 0x40);
    let table = LineTable::new(Locations, &w.0, 1);
    assert_eq!(table.line_for_offset(0), None);
    // A varint longer than any u32.
    let mut w = LocationsWriter::default();
    w.head(NO_COLUMNS, 1).0.extend([0x7f; 7]);
    w.0.push(0);
    let table = LineTable::new(Locations, &w.0, 1);
    assert_eq!(table.line_for_offset(0), None);
    assert_eq!(table.positions().unwrap().count(), 0);
    // A line driven below zero is no line.
    let mut w = LocationsWriter::default();
    w.no_columns(1, -5).no_columns(1, 10);
    let table = LineTable::new(Locations, &w.0, 2);
    assert_eq!(lines(&table, 4), [None, None, Some(7), Some(7)]);
}

#[test]
fn odd_length_pair_tables_are_malformed() {
    let table = LineTable::new(Lnotab, &[2, 1, 2], 1);
    assert_eq!(table.line_for_offset(0), Some(1));
    assert_eq!(table.line_for_offset(2), None);
    assert_eq!(table.line_range(4), None);
    let table = LineTable::new(Linetable310, &[2, 1, 2], 1);
    assert_eq!(table.line_for_offset(1), Some(2));
    assert_eq!(table.line_for_offset(2), None);
    assert_eq!(table.line_range(4), None);
}

#[test]
fn lookup_offsets_per_version() {
    use InstructionOffset::{At, BeforeStart};
    use RawFramePosition::{InstructionPointer, Lasti};
    let ip = |pointer| InstructionPointer {
        pointer,
        code_start: 0x1000,
    };
    for v in [PyVersion::new(3, 8), PyVersion::new(3, 9)] {
        assert_eq!(lookup_offset(v, Lasti(-1)), Some(BeforeStart));
        assert_eq!(lookup_offset(v, Lasti(0)), Some(At(0)));
        assert_eq!(lookup_offset(v, Lasti(24)), Some(At(24)));
        assert_eq!(lookup_offset(v, Lasti(25)), None);
        assert_eq!(lookup_offset(v, Lasti(-2)), None);
        assert_eq!(lookup_offset(v, ip(0x1000)), None);
    }
    assert_eq!(
        lookup_offset(PyVersion::new(3, 10), Lasti(-1)),
        Some(BeforeStart)
    );
    assert_eq!(
        lookup_offset(PyVersion::new(3, 10), Lasti(12)),
        Some(At(24))
    );
    assert_eq!(
        lookup_offset(PyVersion::new(3, 10), Lasti(13)),
        Some(At(26))
    );
    assert_eq!(lookup_offset(PyVersion::new(3, 10), Lasti(i32::MIN)), None);
    for v in [PyVersion::new(3, 11), PyVersion::new(3, 12)] {
        assert_eq!(lookup_offset(v, ip(0x0ffe)), Some(BeforeStart));
        assert_eq!(lookup_offset(v, ip(0x1000)), Some(At(0)));
        assert_eq!(lookup_offset(v, ip(0x1018)), Some(At(24)));
        assert_eq!(lookup_offset(v, ip(0x1019)), None);
        assert_eq!(lookup_offset(v, ip(0x0ffc)), None);
        assert_eq!(lookup_offset(v, Lasti(0)), None);
    }
    assert_eq!(lookup_offset(PyVersion::new(3, 13), ip(0x0ffe)), None);
    assert_eq!(
        lookup_offset(PyVersion::new(3, 13), ip(0x1000)),
        Some(At(0))
    );
    assert_eq!(
        lookup_offset(PyVersion::new(3, 13), ip(0x1018)),
        Some(At(24))
    );
    assert_eq!(lookup_offset(PyVersion::new(3, 13), ip(u64::MAX)), None);
    assert_eq!(
        lookup_offset(PyVersion::new(3, 13), ip(0x1000 + (1 << 40))),
        None
    );
    assert_eq!(
        lookup_offset(PyVersion::new(3, 14), ip(0x1018)),
        Some(At(24))
    );
    assert_eq!(
        lookup_offset(PyVersion::new(3, 15), ip(0x1018)),
        Some(At(24))
    );
    assert_eq!(lookup_offset(PyVersion::new(3, 15), ip(0x0ffe)), None);
    assert_eq!(lookup_offset(PyVersion::new(3, 16), ip(0x1000)), None);

    let table = LineTable::new(Linetable310, &[2, 1], 4);
    assert_eq!(table.line_at(BeforeStart), Some(4));
    assert_eq!(table.line_at(At(0)), Some(5));
}

/// xorshift64*: a fixed-seed source of garbage tables.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Random bytes in every format: no panic, and every range a table yields agrees with the
/// line lookup at each of its offsets (what ranges show is what lookups answer, up to where
/// a table turns out malformed).
#[test]
fn garbage_never_panics_and_ranges_agree_with_lookups() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut bytes = Vec::new();
    for round in 0..20_000 {
        bytes.clear();
        let len = (rng.next() % 48) as usize;
        // Half the tables biased towards plausible location heads and small deltas.
        let plausible = round % 2 == 0;
        for _ in 0..len {
            let r = rng.next() as u8;
            bytes.push(if plausible && r.is_multiple_of(3) {
                r | 0x80
            } else {
                r
            });
        }
        let first_line = match rng.next() % 4 {
            0 => 0,
            1 => u32::MAX,
            _ => (rng.next() % 5000) as u32,
        };
        let code_len = (rng.next() % 600) as u32;
        for format in [Lnotab, Linetable310, Locations] {
            let table = LineTable::new(format, &bytes, first_line);
            let mut previous_end = 0;
            for range in table.ranges(code_len) {
                assert!(range.start < range.end && range.end <= code_len);
                assert_eq!(range.start, previous_end);
                previous_end = range.end;
                for offset in range.start..range.end {
                    assert_eq!(table.line_for_offset(offset), range.line, "{format:?}");
                }
            }
            if let Some((low, high)) = table.line_range(code_len) {
                assert!(low <= high);
            }
            if let Some(positions) = table.positions() {
                for position in positions {
                    assert!(position.start < position.end);
                    assert_eq!(table.line_for_offset(position.start), position.line);
                }
            }
            table.line_for_offset(u32::MAX);
            table.line_for_offset(rng.next() as u32);
        }
    }
}
