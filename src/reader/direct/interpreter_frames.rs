//! The 3.11+ walk: a thread's `_PyInterpreterFrame` chain, read with its data-stack chunk
//! twice in one call, each frame outside the chunk accepted only once it proves to be a frame.

use super::*;

impl DirectReader {
    /// 3.11+: in one call, copy the frame pointer and the chunk twice, with the planned outside
    /// frames per copy and the planned code identities; then walk both copies.
    pub(super) fn read_interpreter_frames(
        &mut self,
        frames: &InterpreterFrameLayout,
        tstate: usize,
        frame_slot: usize,
        chunk: usize,
        top: usize,
        limit: usize,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let data_start = chunk.wrapping_add(frames.stack_chunk_data);
        let listed_top = top;
        // Copied a little past the top read with the thread list, within the chunk: a stack
        // that grew by a call since (a leaf function pushed) is then in the copy, rather than
        // read again.
        let top = if limit > top {
            top.saturating_add(CHUNK_SLACK_BYTES).min(limit)
        } else {
            top
        };
        let chunk_len = if chunk != 0 && top > data_start && top - data_start <= MAX_CHUNK_BYTES {
            top - data_start
        } else {
            0
        };
        let mut plan = self.plans.remove(&tstate).unwrap_or_default();
        let (frame_span, identity_span) = (iframe_span(frames), code_identity_span(&layout));
        for copy in &mut self.outside {
            copy.resize_with(plan.outside.len(), || (0, Vec::new()));
            for ((address, buf), &planned) in copy.iter_mut().zip(&plan.outside) {
                *address = planned;
                buf.resize(frame_span, 0);
            }
        }
        self.identities
            .resize_with(plan.codes.len(), || (0, Vec::new()));
        for ((address, buf), &planned) in self.identities.iter_mut().zip(&plan.codes) {
            *address = planned;
            buf.resize(identity_span, 0);
        }
        let [copy_a, copy_b] = &mut self.chunk_copies;
        copy_a.resize(chunk_len, 0);
        copy_b.resize(chunk_len, 0);
        let (mut frame_a, mut frame_b) = ([0u8; 8], [0u8; 8]);
        // `datastack_top` read with each frame pointer: frames of the chunk below it and past
        // the copy must not be read one by one (a stack torn over time could then look whole
        // to both copies).
        let top_slot = tstate.wrapping_add(frames.tstate_datastack_top);
        let (mut top_a, mut top_b) = ([0u8; 8], [0u8; 8]);
        // Copy B's part of the chunk around the top read with the thread list (its innermost
        // frames) is read first, right after B's frame pointer: the two reads of what changes
        // fastest are then a few hundred bytes apart, not a chunk.
        let split = listed_top
            .saturating_sub(data_start)
            .saturating_sub(INNER_BYTES)
            .min(chunk_len);
        let (copy_b_low, copy_b_high) = copy_b.split_at_mut(split);
        let [outside_a, outside_b] = &mut self.outside;
        let mut requests = Vec::with_capacity(7 + 2 * plan.outside.len() + plan.codes.len());
        // Copy A's frames, then both frame pointers, then copy B's frames: every frame both
        // copies agree on held its value while either frame pointer was read
        // (`DirectReader::copies_agree`).
        requests.push(ReadRequest {
            address: data_start,
            buf: copy_a,
        });
        for (address, buf) in outside_a.iter_mut() {
            requests.push(ReadRequest {
                address: *address,
                buf,
            });
        }
        push_words(
            &mut requests,
            (frame_slot, &mut frame_a),
            (top_slot, &mut top_a),
        );
        push_words(
            &mut requests,
            (frame_slot, &mut frame_b),
            (top_slot, &mut top_b),
        );
        for (address, buf) in outside_b.iter_mut() {
            requests.push(ReadRequest {
                address: *address,
                buf,
            });
        }
        requests.push(ReadRequest {
            address: data_start.wrapping_add(split),
            buf: copy_b_high,
        });
        requests.push(ReadRequest {
            address: data_start,
            buf: copy_b_low,
        });
        for (address, buf) in self.identities.iter_mut() {
            requests.push(ReadRequest {
                address: *address,
                buf,
            });
        }
        let planned_ok = self.target.memory.read_many(&mut requests).is_ok();
        drop(requests);
        if !planned_ok {
            // Something planned is gone (a generator finished, a chunk or code object freed):
            // read the chunk and frame pointers alone, in the same order, and let the walks
            // find the outside frames anew.
            self.outside.iter_mut().for_each(Vec::clear);
            self.identities.clear();
            plan.outside.clear();
            plan.codes.clear();
            let [copy_a, copy_b] = &mut self.chunk_copies;
            let (copy_b_low, copy_b_high) = copy_b.split_at_mut(split);
            self.target.memory.read_many(&mut [
                ReadRequest {
                    address: data_start,
                    buf: copy_a,
                },
                ReadRequest {
                    address: frame_slot,
                    buf: &mut frame_a,
                },
                ReadRequest {
                    address: top_slot,
                    buf: &mut top_a,
                },
                ReadRequest {
                    address: frame_slot,
                    buf: &mut frame_b,
                },
                ReadRequest {
                    address: top_slot,
                    buf: &mut top_b,
                },
                ReadRequest {
                    address: data_start.wrapping_add(split),
                    buf: copy_b_high,
                },
                ReadRequest {
                    address: data_start,
                    buf: copy_b_low,
                },
            ])?;
        }
        // The chunk's whole address range: a frame in it must come from the copies.
        let chunk_end = if limit > data_start && limit - data_start <= MAX_CHUNK_BYTES {
            limit
        } else {
            data_start.saturating_add(chunk_len)
        };
        let mut outside_used = Vec::new();
        self.frame_pointers = [usize::from_le_bytes(frame_a), usize::from_le_bytes(frame_b)];
        for (copy, first, live_top) in [(0, frame_a, top_a), (1, frame_b, top_b)] {
            let mut walked_frames = std::mem::take(&mut self.frames[copy]);
            walked_frames.clear();
            let walked = self.walk_interpreter_frames(
                frames,
                usize::from_le_bytes(first),
                (data_start, chunk_end, usize::from_le_bytes(live_top)),
                copy,
                &mut walked_frames,
                &mut outside_used,
            );
            self.frames[copy] = walked_frames;
            if let Err(e) = walked {
                // Keep what the batch should read next time, with what this walk needed.
                let mut outside = plan.outside;
                outside.extend(outside_used);
                outside.sort_unstable();
                outside.dedup();
                outside.truncate(MAX_PLANNED_FRAMES);
                self.plans.insert(
                    tstate,
                    ThreadPlan {
                        outside,
                        codes: plan.codes,
                    },
                );
                return Err(e);
            }
        }
        outside_used.sort_unstable();
        outside_used.dedup();
        outside_used.truncate(MAX_PLANNED_FRAMES);
        self.plans.insert(
            tstate,
            ThreadPlan {
                outside: outside_used,
                codes: plan.codes,
            },
        );
        Ok(())
    }

    /// Walk `_PyInterpreterFrame`s (laid out as `frames` says) from `frame` in copy `copy` of
    /// the chunk at `data_start..chunk_end`, its top read at `live_top`: from the chunk copy
    /// where the frame lies inside it, else from the planned outside frames read with it. Nothing
    /// is read afterwards: a frame between the copy's end and `live_top` sets `stack_grew_to`,
    /// an outside frame not in the batch sets `needs_replan`, and either fails the walk, to be
    /// read again whole. Addresses of frames outside the chunk are pushed to `outside_used`.
    ///
    /// The walk follows only what it can prove is a frame of this stack: frames of the chunk
    /// lie below their callee in it (a stack grows up), a frame outside it is met once (no
    /// cycle), every frame has an owner its version defines, and a frame outside the chunk
    /// read one by one must hold a code object (the batch's are checked once resolved).
    /// Anything else is [`MemoryError::Implausible`]: a `previous` that led into another
    /// object (once, on 3.12, into `PyType_Type`, whose type field at the offset of `previous`
    /// is itself: 16,381 reads of the same 71 bytes a walk).
    pub(super) fn walk_interpreter_frames(
        &mut self,
        frames: &InterpreterFrameLayout,
        mut frame: usize,
        (data_start, chunk_end, live_top): (usize, usize, usize),
        copy: usize,
        out: &mut Vec<RawFrame>,
        outside_used: &mut Vec<usize>,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let span = iframe_span(frames);
        let known_owner = |o: u8| {
            o == FRAME_OWNED_BY_THREAD
                || o == frames.owned_by_generator
                || Some(o) == frames.owned_by_cstack
                || Some(o) == frames.owned_by_interpreter
        };
        self.visited.clear();
        let mut unplanned = 0usize;
        let mut last_in_chunk: Option<usize> = None;
        // Counted in steps, not in frames kept: shim frames are not kept, and a cycle of them
        // (a hostile or torn `previous`) would otherwise be followed without end.
        let mut steps = 0usize;
        while frame != 0 {
            steps += 1;
            if steps > MAX_DEPTH || !frame.is_multiple_of(std::mem::align_of::<usize>()) {
                return Err(MemoryError::Implausible(frame));
            }
            // Checked: a garbage pointer near the top of the address space must not wrap.
            let in_chunk = frame
                .checked_sub(data_start)
                .and_then(|at| self.chunk_copies[copy].get(at..at.checked_add(span)?));
            let copied_end = data_start.saturating_add(self.chunk_copies[copy].len());
            let outside = in_chunk.is_none() && !(data_start..chunk_end).contains(&frame);
            if let Some(bytes) = in_chunk {
                // A frame at or above the data stack's top read with this copy is not on it
                // (memory past the top is copied too, and holds popped frames). One exception:
                // `RETURN_GENERATOR` pops the function's frame (the top comes down to it)
                // before it points the thread's frame back at the caller, so a thread caught
                // between the two (even paused) stands on a frame exactly at the top, whose
                // Python code has not started and never will: it is left out, the walk goes
                // on from its caller, as it will a moment later. On 3.13 this left the
                // thread out of every sample taken there (a torn stack, read again in vain).
                let above_top = frame >= live_top;
                if above_top && steps == 1 && frame == live_top {
                    let owner = bytes.get(frames.owner).copied();
                    if owner.is_none_or(|o| o == FRAME_OWNED_BY_THREAD) {
                        last_in_chunk = Some(frame);
                        frame = read_usize_at(bytes, frames.previous).unwrap_or(0);
                        continue;
                    }
                }
                if above_top {
                    return Err(MemoryError::Torn(frame));
                }
                if last_in_chunk.is_some_and(|callee| frame >= callee) {
                    return Err(MemoryError::Implausible(frame));
                }
                last_in_chunk = Some(frame);
            } else if outside && !self.visited.insert(frame) {
                return Err(MemoryError::Implausible(frame)); // a cycle
            }
            let mut read_alone = false;
            let bytes: &[u8] = if let Some(in_chunk) = in_chunk {
                in_chunk
            } else if (copied_end..live_top).contains(&frame)
                && live_top - data_start <= MAX_CHUNK_BYTES
            {
                // The stack grew past the copy: copy again rather than read frames one by one.
                self.stack_grew_to = Some(live_top);
                return Err(MemoryError::Torn(frame));
            } else if !outside {
                // In this chunk but neither copied nor below the live top: torn.
                return Err(MemoryError::Torn(frame));
            } else {
                outside_used.push(frame);
                match self.outside[copy].iter().find(|(a, _)| *a == frame) {
                    Some((_, planned)) => planned,
                    None => {
                        // Not in this batch: read it now only to find the rest of the chain
                        // (this walk will fail); the next batch reads it with both copies.
                        unplanned += 1;
                        if unplanned > MAX_UNPLANNED_FRAMES {
                            return Err(MemoryError::Torn(frame));
                        }
                        self.needs_replan = true;
                        self.frame_scratch.resize(span, 0);
                        self.target.memory.read(frame, &mut self.frame_scratch)?;
                        read_alone = true;
                        &self.frame_scratch
                    }
                }
            };
            let field = |offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
            let previous = field(frames.previous);
            let code = field(frames.code) & !layout.iframe_code_tag_mask;
            let instruction = field(frames.instr_ptr);
            let owner = bytes.get(frames.owner).copied().unwrap_or(u8::MAX);
            if !known_owner(owner) {
                return Err(MemoryError::Implausible(frame));
            }
            // A running generator's frame links to its caller (a frame or, 3.12+, the shim of
            // the C code that resumed it); `YIELD_VALUE` points the thread back at the caller,
            // then clears `previous`. A chain that ends at a generator's frame was read between
            // the two: the thread has moved on, and its caller's frames are not shown (a dump
            // of mix.py printed the worker as `squares` alone, "whole").
            if previous == 0 && owner == frames.owned_by_generator {
                return Err(MemoryError::Torn(frame));
            }
            // Shims pushed by C code (3.12+) and the interpreter's own entry frames (3.14+)
            // hold no Python code.
            let shim =
                Some(owner) == frames.owned_by_cstack || Some(owner) == frames.owned_by_interpreter;
            if !shim {
                if outside && (code == 0 || !code.is_multiple_of(std::mem::align_of::<usize>())) {
                    return Err(MemoryError::Implausible(frame));
                }
                if read_alone {
                    self.check_code_type(code)?;
                }
                out.push(RawFrame {
                    address: frame,
                    code,
                    position: RawFramePosition::InstructionPointer {
                        pointer: instruction as u64,
                        code_start: code.wrapping_add(layout.code_code_adaptive.unwrap_or(0))
                            as u64,
                    },
                    outside,
                });
            }
            frame = previous;
        }
        if self.needs_replan {
            return Err(MemoryError::Torn(0));
        }
        Ok(())
    }

    /// A frame outside the chunk read one by one, not a shim: its code field must point to a
    /// code object (one more read, made only while a new chain is discovered).
    pub(super) fn check_code_type(&mut self, code: usize) -> Result<(), MemoryError> {
        let type_ptr = self
            .target
            .memory
            .read_usize(code.wrapping_add(self.target.layout.object_type))
            .map_err(|e| match e {
                MemoryError::Unmapped(a) => MemoryError::Implausible(a),
                other => other,
            })?;
        if type_ptr != self.target.code_type {
            return Err(MemoryError::Implausible(code));
        }
        Ok(())
    }
}

/// Bytes of the data-stack chunk copied past the top read with the thread list (within the
/// chunk's limit): room for a frame or two pushed since.
const CHUNK_SLACK_BYTES: usize = 512;
/// Bytes of the chunk below the top read with the thread list that copy B reads first, next
/// to the frame pointers: room for the innermost frame or two.
const INNER_BYTES: usize = 512;
