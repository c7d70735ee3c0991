//! Line numbers from a code object's line table, decoded exactly as CPython decodes them.
//!
//! Our stack reader copies a code object's line table out of the target and must turn a frame's
//! position into the line `frame.f_lineno` reports. Three formats exist:
//!
//! | Python    | field          | format                     |
//! |-----------|----------------|----------------------------|
//! | 3.8–3.9   | `co_lnotab`    | [`LineTableFormat::Lnotab`] |
//! | 3.10      | `co_linetable` | [`LineTableFormat::Linetable310`] |
//! | 3.11–3.15 | `co_linetable` | [`LineTableFormat::Locations`] (3.12–3.15 unchanged) |
//!
//! Which format a version uses is its layout's `line_table_format`, and what its frames store is
//! its layout's `frame_instruction`, both emitted by src/reader/layout/generate.py: a version
//! gets a line here by having a layout, never by a range of versions written in this module.
//!
//! Offsets are always **byte** offsets into the code (`co_code`; `co_code_adaptive` on 3.11+,
//! whose code units are 2 bytes, caches included), which is what `PyCode_Addr2Line` takes on
//! every version. What a frame stores is not that offset on every version: turn it into one with
//! [`lookup_offset`], then ask [`LineTable::line_at`].
//!
//! The table bytes come from another process and may be torn or garbage: nothing here panics,
//! every walk is bounded by the table's length, and malformed data gives `None`. A decoded line is
//! still only as good as the bytes; [`LineTable::line_range`] gives the span a caller can check.

mod decode;

use crate::reader::layout::{layout_for, FrameInstruction};
use crate::reader::PyVersion;
use decode::*;

/// How a version encodes its line table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineTableFormat {
    /// 3.8–3.9 `co_lnotab`: pairs of (unsigned byte increment, signed line increment). The line
    /// of offset `A` is `co_firstlineno` plus the line increments of every pair whose running
    /// byte total is `<= A` (Objects/lnotab_notes.txt, `PyCode_Addr2Line`).
    Lnotab,
    /// 3.10 `co_linetable`: pairs of (unsigned byte length, signed line delta), each pair one
    /// range of code; a line delta of -128 means the range has no line and leaves the running
    /// line unchanged (PEP 626).
    Linetable310,
    /// 3.11+ location table: one entry per run of code units, each starting with a byte with
    /// bit 7 set (`1 code:4 length-1:3`), followed by the form's varints or bytes; it also holds
    /// end lines and columns (InternalDocs/code_objects.md, Objects/locations.md).
    Locations,
}

impl LineTableFormat {
    /// The format of CPython `version`, as its generated layout says; `None` for a version
    /// without one.
    pub fn for_version(version: PyVersion) -> Option<LineTableFormat> {
        layout_for(version).map(|layout| layout.line_table_format)
    }
}

/// What a frame stores about where it stands, read raw from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFramePosition {
    /// 3.8–3.10: `PyFrameObject.f_lasti` (bytes on 3.8–3.9, code units on 3.10; -1 before the
    /// first instruction).
    Lasti(i32),
    /// 3.11–3.12: `_PyInterpreterFrame.prev_instr`; 3.13+: `_PyInterpreterFrame.instr_ptr`. With
    /// the address of the code's first code unit (the code object's address plus the offset of
    /// `co_code_adaptive`).
    InstructionPointer { pointer: u64, code_start: u64 },
}

/// The offset the interpreter looks up for a frame's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionOffset {
    /// The frame has not executed its first instruction: `PyCode_Addr2Line` gets a negative
    /// offset and answers `co_firstlineno`.
    BeforeStart,
    /// Byte offset into the code.
    At(u32),
}

/// The offset CPython `version` looks up to compute the line of a frame that stores `raw`, or
/// `None` if `raw` cannot be a position of that version (garbage, or the wrong variant).
///
/// Every version computes `f_lineno` (without a trace function) as `PyCode_Addr2Line(code, addr)`:
///
/// - 3.8–3.9 (`PyFrame_GetLineNumber`): `addr = f_lasti`, the byte offset of the last
///   instruction started (even); -1 before the first.
/// - 3.10 (`PyFrame_GetLineNumber`): `addr = f_lasti * 2`, `f_lasti` counting code units; -1
///   before the first.
/// - 3.11–3.12 (`_PyInterpreterFrame_GetLine` / `PyUnstable_InterpreterFrame_GetLine`):
///   `addr = (prev_instr - _PyCode_CODE(code)) * 2`, `prev_instr` pointing at the last
///   instruction started, or at a code unit of its inline cache: while a Python callee runs,
///   the caller's `prev_instr` stays on its `CALL`'s last cache entry (caches share their
///   instruction's line). Before the first instruction `prev_instr` is one code unit before the
///   code.
/// - 3.13 (`PyUnstable_InterpreterFrame_GetLine`): the same formula on `instr_ptr`, which points
///   at the instruction executing (a caller's stays on its `CALL`), or about to begin: a frame
///   not started stands on offset 0 (its first instruction, usually `RESUME` on the `def` line),
///   never before the code.
/// - 3.14: as 3.13 (`_PyInterpreterFrame_LASTI` against `_PyFrame_GetBytecode`, which is
///   `co_code_adaptive` in a build with the GIL).
/// - 3.15: as 3.14 (checked against its own `f_lineno` by tests/it/linetable.rs).
///
/// The caller still checks `At(offset)` against the code's length.
pub fn lookup_offset(version: PyVersion, raw: RawFramePosition) -> Option<InstructionOffset> {
    layout_for(version).and_then(|layout| offset_of_instruction(layout.frame_instruction, raw))
}

/// [`lookup_offset`] for a frame whose instruction field means `instruction` (the version's
/// [`Layout::frame_instruction`](crate::reader::layout::Layout::frame_instruction)).
pub fn offset_of_instruction(
    instruction: FrameInstruction,
    raw: RawFramePosition,
) -> Option<InstructionOffset> {
    use InstructionOffset::{At, BeforeStart};
    match (instruction, raw) {
        (FrameInstruction::LastiBytes, RawFramePosition::Lasti(lasti)) => match lasti {
            -1 => Some(BeforeStart),
            l if l >= 0 && l % 2 == 0 => Some(At(l as u32)),
            _ => None,
        },
        (FrameInstruction::LastiCodeUnits, RawFramePosition::Lasti(lasti)) => match lasti {
            -1 => Some(BeforeStart),
            l if l >= 0 => (l as u32).checked_mul(2).map(At),
            _ => None,
        },
        (
            FrameInstruction::PrevInstr | FrameInstruction::InstrPtr,
            RawFramePosition::InstructionPointer {
                pointer,
                code_start,
            },
        ) => {
            let bytes = pointer.wrapping_sub(code_start) as i64;
            if bytes % 2 != 0 {
                None
            } else if bytes == -2 && instruction == FrameInstruction::PrevInstr {
                Some(BeforeStart)
            } else {
                u32::try_from(bytes).ok().map(At)
            }
        }
        _ => None,
    }
}

/// Whether a frame of CPython `version` can stand on a loop's backward jump that did not run:
/// the jump just before the loop's exit (`END_FOR`, `END_SEND`), right after a generator that
/// the loop drove returned.
///
/// - 3.12: `FOR_ITER_GEN` and `SEND_GEN` run the generator's frame inline, the caller's
///   `prev_instr` on the instruction's last cache entry and its `return_offset` set to the
///   jump's `oparg`. When the generator returns, `RETURN_VALUE` and `RETURN_CONST` unlink its
///   frame, clear it, and do `frame->prev_instr += frame->return_offset` before the caller
///   resumes: until `END_FOR` (or `END_SEND`) starts and moves `prev_instr` on, the caller
///   stands on the instruction before it, the loop's `JUMP_BACKWARD` on the body's last line.
///   A `for` over a generator that yields nothing was sampled on its body line that way.
/// - 3.13–3.15: `FOR_ITER_GEN` keeps `instr_ptr` on itself and the return moves only the
///   local `next_instr` (`LOAD_IP(frame->return_offset)`): the caller stands on the `for` line
///   until `END_FOR` starts.
/// - 3.11 resumes a generator through `gen_send_ex`, in a frame of its own; 3.8–3.10 keep
///   `f_lasti` on `FOR_ITER` while the generator runs.
///
/// Where this holds, a frame on such a jump is reported on the line of the jump's target (the
/// `FOR_ITER` or `SEND` the loop started from, which ran in either case).
pub fn may_stand_on_an_unrun_loop_jump(version: PyVersion) -> bool {
    version == PyVersion::new(3, 12)
}

/// 3.12: the backward jumps of `code` (its `co_code_adaptive`) that stand just before a loop's
/// exit (`END_FOR`, `END_SEND`, or their instrumented forms), each with the line of the jump's
/// target, the `FOR_ITER` or `SEND` that ran before the frame could stand there
/// ([`may_stand_on_an_unrun_loop_jump`]). The positions of these instructions never change
/// (specializing and instrumenting rewrite opcodes in place), so the result holds for the
/// code object's life.
pub fn loop_exit_jumps(
    version: PyVersion,
    code: &[u8],
    lines: &[LineRange],
) -> Vec<(u32, Option<u32>)> {
    use crate::snapshot::opcodes::{table_for, Opcodes};
    let Some(table) = table_for(version) else {
        return Vec::new();
    };
    let ops = Opcodes::new(table);
    let named =
        |unit: &[u8], names: &[&str]| ops.get(unit[0]).is_some_and(|op| names.contains(&op.name));
    let line_at = |offset: u32| {
        let index = lines.partition_point(|r| r.end <= offset);
        lines
            .get(index)
            .filter(|r| r.start <= offset)
            .and_then(|r| r.line)
    };
    let units: Vec<&[u8]> = code.chunks_exact(2).collect();
    let mut jumps = Vec::new();
    for index in 0..units.len().saturating_sub(1) {
        let jump = units[index];
        if !named(
            jump,
            &[
                "JUMP_BACKWARD",
                "JUMP_BACKWARD_NO_INTERRUPT",
                "INSTRUMENTED_JUMP_BACKWARD",
                // A jump that starts a line, while line events are on (the original opcode is
                // kept aside, its argument in place): its target decides.
                "INSTRUMENTED_LINE",
            ],
        ) || !named(
            units[index + 1],
            &[
                "END_FOR",
                "END_SEND",
                "INSTRUMENTED_END_FOR",
                "INSTRUMENTED_END_SEND",
            ],
        ) {
            continue;
        }
        // The argument, with the EXTENDED_ARG prefixes before it (at most three).
        let mut argument = u32::from(jump[1]);
        let mut shift = 8;
        let mut at = index;
        while at > 0 && shift <= 24 && named(units[at - 1], &["EXTENDED_ARG"]) {
            at -= 1;
            argument |= u32::from(units[at][1]) << shift;
            shift += 8;
        }
        let caches = ops.get(jump[0]).map_or(0, |op| u32::from(op.caches));
        // A backward jump's target, in code units: the unit after its caches, less the argument.
        let target = (index as u32 + 1 + caches).checked_sub(argument);
        let target_line = target.and_then(|unit| {
            let starts_the_loop = units.get(unit as usize).is_some_and(|u| {
                named(u, &["FOR_ITER", "SEND"])
                    || ops.get(u[0]).is_some_and(|op| {
                        ops.get(op.base)
                            .is_some_and(|base| base.name == "FOR_ITER" || base.name == "SEND")
                            || op.name == "INSTRUMENTED_FOR_ITER"
                    })
            });
            if starts_the_loop {
                line_at(unit * 2)
            } else {
                None
            }
        });
        jumps.push(((index * 2) as u32, target_line));
    }
    jumps
}

/// A line table and what it needs to be read: borrowed bytes, no allocation.
#[derive(Debug, Clone, Copy)]
pub struct LineTable<'a> {
    format: LineTableFormat,
    bytes: &'a [u8],
    first_line: u32,
}

/// A run of code with one line, like an item of `code.co_lines()`: bytes `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    pub start: u32,
    pub end: u32,
    /// `None` where the code has no line (3.10+: e.g. cleanup code the compiler adds).
    pub line: Option<u32>,
}

/// The source span of a run of code units (3.11+), like the items of `code.co_positions()`
/// (which repeats them once per code unit): bytes `start..end`. Columns are UTF-8 byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub start: u32,
    pub end: u32,
    pub line: Option<u32>,
    pub end_line: Option<u32>,
    pub column: Option<u32>,
    pub end_column: Option<u32>,
}

impl<'a> LineTable<'a> {
    /// `bytes` is `co_lnotab` (3.8–3.9) or `co_linetable` (3.10+); `first_line` is
    /// `co_firstlineno`.
    pub fn new(format: LineTableFormat, bytes: &'a [u8], first_line: u32) -> LineTable<'a> {
        LineTable {
            format,
            bytes,
            first_line,
        }
    }

    /// The line of the instruction at byte `offset`, as `PyCode_Addr2Line(code, offset)`; `None`
    /// if the table gives it no line, does not reach it, or is malformed before it.
    pub fn line_for_offset(&self, offset: u32) -> Option<u32> {
        let offset = u64::from(offset);
        let mut entries = self.entries();
        loop {
            match entries.next_entry() {
                Step::Entry(entry) if entry.end > offset => {
                    return entry.line.and_then(line_number);
                }
                Step::Entry(_) => {}
                Step::End | Step::Malformed => return None,
            }
        }
    }

    /// The line the interpreter reports for a frame at `at` (from [`lookup_offset`]).
    pub fn line_at(&self, at: InstructionOffset) -> Option<u32> {
        match at {
            InstructionOffset::BeforeStart => Some(self.first_line),
            InstructionOffset::At(offset) => self.line_for_offset(offset),
        }
    }

    /// The runs of code with one line, in order, like `code.co_lines()` on 3.11+: adjacent
    /// runs with the same line are merged (3.10's `co_lines()` yields them split, one per
    /// table pair), and no run is empty. Runs stop at `code_len`, the code's length in bytes,
    /// where the 3.8–3.9 table's last line ends. Iteration stops early at malformed data.
    pub fn ranges(&self, code_len: u32) -> LineRanges<'a> {
        LineRanges {
            entries: self.entries(),
            code_len,
            pending: None,
            done: false,
        }
    }

    /// The smallest and largest line of the code's first `code_len` bytes, or `None` if the
    /// table is malformed there or gives no line at all.
    pub fn line_range(&self, code_len: u32) -> Option<(u32, u32)> {
        let mut ranges = self.ranges(code_len);
        let mut span: Option<(u32, u32)> = None;
        for line in ranges.by_ref().filter_map(|r| r.line) {
            span = Some(match span {
                None => (line, line),
                Some((low, high)) => (low.min(line), high.max(line)),
            });
        }
        if ranges.entries.malformed {
            return None;
        }
        span
    }

    /// The source spans of the code (3.11+ only: `None` for older formats), one item per table
    /// entry. Iteration stops early at malformed data.
    pub fn positions(&self) -> Option<Positions<'a>> {
        (self.format == LineTableFormat::Locations).then(|| Positions {
            reader: ByteReader::new(self.bytes),
            code_offset: 0,
            line: i64::from(self.first_line),
        })
    }

    fn entries(&self) -> Entries<'a> {
        Entries {
            format: self.format,
            reader: ByteReader::new(self.bytes),
            code_offset: 0,
            line: i64::from(self.first_line),
            lnotab_tail_done: false,
            malformed: false,
        }
    }
}

/// A computed line as the interpreter would report it, if it is a line at all.
fn line_number(line: i64) -> Option<u32> {
    u32::try_from(line).ok()
}

/// Iterator of [`LineTable::ranges`].
#[derive(Debug, Clone)]
pub struct LineRanges<'a> {
    entries: Entries<'a>,
    code_len: u32,
    pending: Option<LineRange>,
    done: bool,
}

impl Iterator for LineRanges<'_> {
    type Item = LineRange;

    fn next(&mut self) -> Option<LineRange> {
        let code_len = u64::from(self.code_len);
        while !self.done {
            let next = match self.entries.next_entry() {
                Step::Entry(entry) if entry.start < code_len => LineRange {
                    start: entry.start as u32,
                    end: entry.end.min(code_len) as u32,
                    // A line that cannot be a line number (negative) is no line.
                    line: entry.line.and_then(line_number),
                },
                Step::Entry(_) | Step::End | Step::Malformed => {
                    self.done = true;
                    break;
                }
            };
            match &mut self.pending {
                Some(pending) if pending.line == next.line && pending.end == next.start => {
                    pending.end = next.end;
                }
                _ => {
                    if let Some(previous) = self.pending.replace(next) {
                        return Some(previous);
                    }
                }
            }
        }
        self.pending.take()
    }
}

/// Iterator of [`LineTable::positions`].
#[derive(Debug, Clone)]
pub struct Positions<'a> {
    reader: ByteReader<'a>,
    code_offset: u64,
    line: i64,
}

impl Iterator for Positions<'_> {
    type Item = Position;

    fn next(&mut self) -> Option<Position> {
        if self.reader.at_end() {
            return None;
        }
        let entry = read_location_entry(&mut self.reader)?;
        let start = self.code_offset;
        let end = start + entry.length;
        let (start, end) = (u32::try_from(start).ok()?, u32::try_from(end).ok()?);
        self.code_offset = u64::from(end);
        let line = match entry.line_delta {
            Some(delta) => {
                self.line = self.line.saturating_add(delta);
                line_number(self.line)
            }
            None => None,
        };
        let position = match entry.columns {
            Columns::NoLocation => Position {
                start,
                end,
                line: None,
                end_line: None,
                column: None,
                end_column: None,
            },
            Columns::None => Position {
                start,
                end,
                line,
                end_line: line,
                column: None,
                end_column: None,
            },
            Columns::Span { column, end_column } => Position {
                start,
                end,
                line,
                end_line: line,
                column: Some(column),
                end_column: Some(end_column),
            },
            Columns::Long {
                end_line_delta,
                column_plus_one,
                end_column_plus_one,
            } => Position {
                start,
                end,
                line,
                end_line: line.and_then(|l| l.checked_add(end_line_delta)),
                column: column_plus_one.checked_sub(1),
                end_column: end_column_plus_one.checked_sub(1),
            },
        };
        Some(position)
    }
}

#[cfg(test)]
mod tests;
