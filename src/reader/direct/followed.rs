//! The function view's reads (`--function`, `--locals`): the followed function's code, its
//! frames' positions, and the local variables each statement uses.

use super::*;

/// What the function view needs of the followed function's code, read once.
#[derive(Debug, Clone)]
pub(super) struct FollowedCode {
    pub(super) first_line: u32,
    /// 3.11+: the location table's spans, in offset order; empty before 3.11.
    pub(super) positions: Vec<Position>,
    /// The frame's local slots in order (`--locals`; empty without).
    pub(super) slots: Vec<LocalSlot>,
}

/// One `localsplus` slot of the followed function.
#[derive(Debug, Clone)]
pub(super) struct LocalSlot {
    pub(super) name: String,
    /// The slot holds a cell (a closure's variable): its content is the value.
    pub(super) cell: bool,
    /// An inlined comprehension's variable (3.12+), not a local of the function's own.
    pub(super) hidden: bool,
}

impl FollowedCode {
    /// Line and start column of the instruction at byte `offset`.
    pub(super) fn point_at(&self, offset: u32, line: u32) -> SourcePoint {
        let index = self.positions.partition_point(|p| p.end <= offset);
        let column = self
            .positions
            .get(index)
            .filter(|p| p.start <= offset && p.line == Some(line))
            .and_then(|p| p.column);
        SourcePoint { line, column }
    }
}

impl DirectReader {
    /// The followed function's positions and local slots, from its code object's `header`.
    pub(super) fn followed_code(
        &mut self,
        header: &[u8],
        format: LineTableFormat,
        line_table: &[u8],
        first_line: u32,
        locals: bool,
    ) -> Result<FollowedCode, MemoryError> {
        let layout = self.target.layout;
        let positions = LineTable::new(format, line_table, first_line)
            .positions()
            .map(|p| p.take(1 << 20).collect())
            .unwrap_or_default();
        let mut slots = Vec::new();
        if locals {
            let pointer = |offset: Option<usize>| offset.and_then(|o| read_usize_at(header, o));
            if let Some(names) = pointer(layout.code_localsplusnames) {
                // 3.11+: one tuple of names, one bytes object of kinds.
                let names = self.read_name_tuple(names)?;
                let kinds = match pointer(layout.code_localspluskinds) {
                    Some(kinds) => self.read_bytes(kinds, MAX_LOCALS)?,
                    None => Vec::new(),
                };
                let bit = |kind: u8, flag: Option<u8>| flag.is_some_and(|f| kind & f != 0);
                for (index, name) in names.into_iter().enumerate() {
                    let kind = kinds.get(index).copied().unwrap_or(0);
                    slots.push(LocalSlot {
                        name,
                        cell: bit(kind, layout.code_fast_cell) || bit(kind, layout.code_fast_free),
                        hidden: bit(kind, layout.code_fast_hidden),
                    });
                }
            } else {
                // 3.8–3.10: co_varnames (co_nlocals of them), then cells, then free variables.
                for (offset, cell) in [
                    (layout.code_varnames, false),
                    (layout.code_cellvars, true),
                    (layout.code_freevars, true),
                ] {
                    if let Some(tuple) = pointer(offset) {
                        for name in self.read_name_tuple(tuple)? {
                            slots.push(LocalSlot {
                                name,
                                cell,
                                hidden: false,
                            });
                        }
                    }
                }
            }
        }
        Ok(FollowedCode {
            first_line,
            positions,
            slots,
        })
    }

    /// A tuple of `str` (names of locals), at most [`MAX_LOCALS`] of them.
    pub(super) fn read_name_tuple(&mut self, tuple: usize) -> Result<Vec<String>, MemoryError> {
        let layout = self.target.layout;
        read_tuple_items(&mut *self.target.memory, &layout, tuple, MAX_LOCALS)?
            .into_iter()
            .map(|item| self.read_unicode(item))
            .collect()
    }

    /// The followed function's frame `frame` as the function view records it: its source
    /// point and, with `--locals`, its bound local variables.
    pub(super) fn followed_frame(
        &mut self,
        frame: &RawFrame,
        frame_index: u32,
    ) -> Option<FollowedFrame> {
        let entry = self.codes.get(&frame.code)?;
        let target = entry.target.as_ref()?;
        let InstructionOffset::At(offset) =
            lookup_offset(self.target.layout.version, frame.position)?
        else {
            return None;
        };
        let line = entry.line_at(offset)?;
        let point = target.point_at(offset, line);
        let first_line = target.first_line;
        let slots = target.slots.clone();
        let mut out = FollowedFrame {
            address: frame.address as u64,
            frame_index,
            first_line,
            point,
            locals: Vec::new(),
        };
        if !slots.is_empty() {
            out.locals = self.read_locals(frame, &slots).unwrap_or_default();
        }
        Some(out)
    }

    /// The bound locals of `frame`. They are read after the stack copies, with the frame's code
    /// and instruction: unless those are still what the walk saw, the frame has moved on (or
    /// returned, and another call's frame took its place: `wait`'s argument read as `target`'s
    /// first local) and none is kept. The slots and the instruction are read again afterwards,
    /// and if either changed, the values may belong to another moment and none is kept either.
    pub(super) fn read_locals(
        &mut self,
        frame: &RawFrame,
        slots: &[LocalSlot],
    ) -> Result<Vec<LocalSample>, MemoryError> {
        let layout = self.target.layout;
        let fields = layout.frames.common();
        let (slots_at, code_at, position_at) = (fields.localsplus, fields.code, fields.instruction);
        let read_state = |memory: &mut dyn MemoryReader| {
            let mut values = vec![0u8; slots.len() * 8];
            let mut code = [0u8; 8];
            let mut position = [0u8; 8];
            memory.read_many(&mut [
                ReadRequest {
                    address: frame.address.wrapping_add(slots_at),
                    buf: &mut values,
                },
                ReadRequest {
                    address: frame.address.wrapping_add(code_at),
                    buf: &mut code,
                },
                ReadRequest {
                    address: frame.address.wrapping_add(position_at),
                    buf: &mut position,
                },
            ])?;
            Ok::<_, MemoryError>((values, code, position))
        };
        let before = read_state(self.target.memory.as_mut())?;
        let code = usize::from_le_bytes(before.1) & !layout.iframe_code_tag_mask;
        let position = match frame.position {
            RawFramePosition::Lasti(_) => {
                RawFramePosition::Lasti(read_i32_at(&before.2, 0).unwrap_or(i32::MIN))
            }
            RawFramePosition::InstructionPointer { code_start, .. } => {
                RawFramePosition::InstructionPointer {
                    pointer: u64::from_le_bytes(before.2),
                    code_start,
                }
            }
        };
        if code != frame.code || position != frame.position {
            return Err(MemoryError::Unmapped(frame.address));
        }
        let mut locals: Vec<LocalSample> = Vec::new();
        {
            let mut values =
                ValueReader::new(self.target.memory.as_mut(), &layout, &mut self.types);
            // 3.14+: each slot is a _PyStackRef, whose low bits are tags: a borrowed or
            // immortal reference (a constant, on 3.15 also a local assigned from one) carries
            // Py_TAG_REFCNT, masked off; a tagged int is no object (read as 0: skipped).
            let object_in = |raw: &[u8]| {
                let bits = usize::from_le_bytes(raw.try_into().unwrap_or_default());
                let tag = bits & layout.iframe_code_tag_mask;
                if layout
                    .stackref_int_tag
                    .is_some_and(|int_tag| tag == int_tag)
                {
                    0
                } else {
                    bits & !layout.iframe_code_tag_mask
                }
            };
            let objects: Vec<usize> = before
                .0
                .chunks_exact(8)
                .zip(slots)
                .filter(|(_, slot)| !slot.hidden)
                .map(|(raw, _)| object_in(raw))
                .collect();
            values.prefetch(&objects);
            for (slot, raw) in slots.iter().zip(before.0.chunks_exact(8)) {
                let object = object_in(raw);
                if object == 0 || slot.hidden || locals.iter().any(|l| l.name == slot.name) {
                    continue;
                }
                if let Ok(Some(value)) = values.describe(object, slot.cell) {
                    locals.push(LocalSample {
                        name: slot.name.clone(),
                        type_name: value.type_name,
                        repr: value.repr,
                    });
                }
            }
        }
        let after = read_state(self.target.memory.as_mut())?;
        if before != after {
            return Err(MemoryError::Unmapped(frame.address));
        }
        Ok(locals)
    }
}
