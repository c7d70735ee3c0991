//! Our own stack reader: walks CPython's thread and frame structures in the target's memory
//! with per-version layouts ([`Layout`], data generated from each version's headers, or read
//! from the target's `_Py_DebugOffsets` on 3.13+), batching reads and caching code objects.
//!
//! Every sample is either correct or dropped. Unknown memory is hostile: every loop, length
//! and depth is bounded, every pointer read is checked before it is followed, and a frame's
//! line must come from its own code object's line table.
//!
//! Per thread and sample, 3.11+:
//! 1. the thread state's frame pointer and the thread's data-stack chunk are read *twice*, in one
//!    `process_vm_readv` call; frames are walked in both copies (frames outside the chunk, such as
//!    a running generator's, are read one by one);
//! 2. the outer frames on which both copies agree (address, code, instruction) are kept, the
//!    rest dropped and the stack marked truncated: a copy torn by the running thread would have
//!    to tear identically twice to pass;
//! 3. frames not yet started (before `_co_firsttraceable`: the prologue, `RETURN_GENERATOR`) and
//!    C-stack shim frames are skipped, as CPython's own frame walking does.
//!
//! 3.8–3.10 frames are heap objects: one read per frame, twice, compared likewise.

use super::layout::Layout;
use super::linetable::{
    lookup_offset, InstructionOffset, LineRange, LineTable, LineTableFormat, RawFramePosition,
};
use super::memory::{MemoryError, ReadRequest, TargetMemory};
use super::{CodeInterner, ReadError, StackReader};
use crate::sample::{CodeId, CodeInfo, FrameRef, Sample};
use std::collections::HashMap;

/// Threads followed in one interpreter at most.
const MAX_THREADS: usize = 8192;
/// Frames followed in one thread at most (Python's default recursion limit is 1000).
const MAX_DEPTH: usize = 16384;
/// Longest file or function name read, in bytes.
const MAX_STRING_BYTES: usize = 64 * 1024;
/// Longest line table read, in bytes.
const MAX_LINETABLE_BYTES: usize = 4 << 20;
/// Largest data-stack chunk copied in one read.
const MAX_CHUNK_BYTES: usize = 8 << 20;
/// Code objects cached at most; past that the cache is cleared (new code is being created
/// without bound, e.g. by exec in a loop).
const MAX_CACHED_CODES: usize = 1 << 16;

/// What a cached code object is, and what must still hold for the cache entry to be valid.
#[derive(Debug, Clone)]
struct CodeEntry {
    /// Identity fields as read when the entry was made: compared on every use.
    identity: CodeIdentity,
    id: CodeId,
    /// The line table decoded once: runs of code with one line, in offset order.
    lines: Vec<LineRange>,
    /// Length of the code in bytes, bounding instruction offsets.
    code_bytes: u32,
    /// 3.11+: byte offset of the first instruction that runs once the frame has started.
    first_traceable_byte: u32,
}

impl CodeEntry {
    /// The line of the instruction at byte `offset` (binary search over the decoded runs).
    fn line_at(&self, offset: u32) -> Option<u32> {
        let index = self.lines.partition_point(|r| r.end <= offset);
        let run = self.lines.get(index)?;
        (run.start <= offset).then_some(run.line).flatten()
    }
}

/// The fields of a code object that identify it: if any differs, the address now holds
/// another object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeIdentity {
    type_ptr: usize,
    filename: usize,
    name: usize,
    line_table: usize,
    first_line: u32,
}

/// One frame as read from memory, before its code is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawFrame {
    address: usize,
    code: usize,
    position: RawFramePosition,
}

/// Where the interpreter's structures are, once found.
pub struct Target {
    pub memory: TargetMemory,
    pub layout: Layout,
    /// `PyInterpreterState*` of the main interpreter.
    pub interpreter: usize,
    /// `&PyCode_Type` in the target: every code object's `ob_type`.
    pub code_type: usize,
}

/// Stacks read directly from the target's memory.
pub struct DirectReader {
    target: Target,
    /// With `--blocking`: the process to pause for each read.
    pause: Option<remoteprocess::Process>,
    interner: CodeInterner,
    codes: HashMap<usize, CodeEntry>,
    /// Scratch buffers reused across samples.
    thread_buf: Vec<u8>,
    chunk_copies: [Vec<u8>; 2],
    frames: [Vec<RawFrame>; 2],
}

impl DirectReader {
    /// A reader of `target`; with `pause`, the process is stopped for each read.
    pub fn new(target: Target, pause: Option<remoteprocess::Process>) -> DirectReader {
        DirectReader {
            target,
            pause,
            interner: CodeInterner::default(),
            codes: HashMap::new(),
            thread_buf: Vec::new(),
            chunk_copies: [Vec::new(), Vec::new()],
            frames: [Vec::new(), Vec::new()],
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.target.layout
    }

    /// System calls made so far.
    pub fn calls(&self) -> u64 {
        self.target.memory.calls
    }

    /// Thread states of the interpreter, in list order.
    fn thread_states(&mut self) -> Result<Vec<usize>, MemoryError> {
        let layout = self.target.layout;
        let mut states = Vec::new();
        let mut tstate = self
            .target
            .memory
            .read_usize(self.target.interpreter + layout.interp_threads_head)?;
        while tstate != 0 && states.len() < MAX_THREADS {
            if states.contains(&tstate) {
                break; // a cycle: a torn list
            }
            states.push(tstate);
            tstate = self.target.memory.read_usize(tstate + layout.tstate_next)?;
        }
        Ok(states)
    }

    /// One thread's frames, innermost first, in `self.frames[copy]`, from its thread state.
    /// Returns the thread id.
    fn read_thread(&mut self, tstate: usize) -> Result<u64, MemoryError> {
        let layout = self.target.layout;
        let span = tstate_span(&layout);
        self.thread_buf.resize(span, 0);
        self.target.memory.read(tstate, &mut self.thread_buf)?;
        let field = |offset: usize| read_usize_at(&self.thread_buf, offset);
        let thread_id = field(layout.tstate_thread_id).unwrap_or(0) as u64;
        let frame_slot = match (
            layout.tstate_frame,
            layout.tstate_cframe,
            layout.cframe_current_frame,
            layout.tstate_current_frame,
        ) {
            // 3.8–3.10: tstate->frame.
            (Some(frame), _, _, _) => tstate + frame,
            // 3.11/3.12: tstate->cframe->current_frame.
            (None, Some(cframe), Some(current), _) => field(cframe).unwrap_or(0) + current,
            // 3.13: tstate->current_frame.
            (None, _, _, Some(current)) => tstate + current,
            _ => return Err(MemoryError::Unmapped(tstate)),
        };
        if layout.iframe_previous.is_some() {
            let chunk = layout.tstate_datastack_chunk.and_then(field).unwrap_or(0);
            let top = layout.tstate_datastack_top.and_then(field).unwrap_or(0);
            self.read_interpreter_frames(frame_slot, chunk, top)?;
        } else {
            self.read_frame_objects(frame_slot)?;
        }
        Ok(thread_id)
    }

    /// 3.11+: copy the frame pointer and the chunk twice in one call, walk both copies.
    fn read_interpreter_frames(
        &mut self,
        frame_slot: usize,
        chunk: usize,
        top: usize,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let data_start = chunk + layout.stack_chunk_data.unwrap_or(0);
        let chunk_len = if chunk != 0 && top > data_start && top - data_start <= MAX_CHUNK_BYTES {
            top - data_start
        } else {
            0
        };
        let [copy_a, copy_b] = &mut self.chunk_copies;
        copy_a.resize(chunk_len, 0);
        copy_b.resize(chunk_len, 0);
        let (mut frame_a, mut frame_b) = ([0u8; 8], [0u8; 8]);
        self.target.memory.read_many(&mut [
            ReadRequest {
                address: frame_slot,
                buf: &mut frame_a,
            },
            ReadRequest {
                address: data_start,
                buf: copy_a,
            },
            ReadRequest {
                address: frame_slot,
                buf: &mut frame_b,
            },
            ReadRequest {
                address: data_start,
                buf: copy_b,
            },
        ])?;
        for (copy, first) in [(0, frame_a), (1, frame_b)] {
            let mut frames = std::mem::take(&mut self.frames[copy]);
            frames.clear();
            let walked = self.walk_interpreter_frames(
                usize::from_le_bytes(first),
                data_start,
                copy,
                &mut frames,
            );
            self.frames[copy] = frames;
            walked?;
        }
        Ok(())
    }

    /// Walk `_PyInterpreterFrame`s from `frame`, reading from chunk copy `copy` where the frame
    /// lies inside it and from memory otherwise.
    fn walk_interpreter_frames(
        &mut self,
        mut frame: usize,
        data_start: usize,
        copy: usize,
        out: &mut Vec<RawFrame>,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let span = iframe_span(&layout);
        let mut outside = vec![0u8; span];
        while frame != 0 {
            if out.len() >= MAX_DEPTH {
                return Err(MemoryError::Unmapped(frame)); // a cycle or garbage: drop
            }
            let chunk = &self.chunk_copies[copy];
            let bytes: &[u8] = if frame >= data_start && frame + span <= data_start + chunk.len() {
                &chunk[frame - data_start..frame - data_start + span]
            } else {
                self.target.memory.read(frame, &mut outside)?;
                &outside
            };
            let field = |offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
            let previous = field(layout.iframe_previous.unwrap_or(0));
            let code = field(layout.iframe_code.unwrap_or(0)) & !layout.iframe_code_tag_mask;
            let instruction = field(layout.iframe_instr_ptr.unwrap_or(0));
            let owner = layout
                .iframe_owner
                .map(|o| bytes.get(o).copied().unwrap_or(0));
            let shim =
                matches!((owner, layout.frame_owned_by_cstack), (Some(o), Some(c)) if o == c);
            if !shim {
                out.push(RawFrame {
                    address: frame,
                    code,
                    position: RawFramePosition::InstructionPointer {
                        pointer: instruction as u64,
                        code_start: (code + layout.code_code_adaptive.unwrap_or(0)) as u64,
                    },
                });
            }
            frame = previous;
        }
        Ok(())
    }

    /// 3.8–3.10: follow `f_back` from the thread's frame, twice.
    fn read_frame_objects(&mut self, frame_slot: usize) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let span = frame_object_span(&layout);
        let mut buf = vec![0u8; span];
        for copy in 0..2 {
            let mut frames = std::mem::take(&mut self.frames[copy]);
            frames.clear();
            let mut frame = self.target.memory.read_usize(frame_slot)?;
            let mut result = Ok(());
            while frame != 0 {
                if frames.len() >= MAX_DEPTH {
                    result = Err(MemoryError::Unmapped(frame));
                    break;
                }
                if let Err(e) = self.target.memory.read(frame, &mut buf) {
                    result = Err(e);
                    break;
                }
                let field = |offset: usize| read_usize_at(&buf, offset).unwrap_or(0);
                frames.push(RawFrame {
                    address: frame,
                    code: field(layout.frame_object_code.unwrap_or(0)),
                    position: RawFramePosition::Lasti(
                        read_i32_at(&buf, layout.frame_object_lasti.unwrap_or(0))
                            .unwrap_or(i32::MIN),
                    ),
                });
                frame = field(layout.frame_object_back.unwrap_or(0));
            }
            self.frames[copy] = frames;
            result?;
        }
        Ok(())
    }

    /// Resolve the code objects of both copies' frames, validating cached entries with one
    /// batched read of every distinct code object's identity fields.
    fn validate_codes(
        &mut self,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), MemoryError> {
        let mut addresses: Vec<usize> = self.frames[0]
            .iter()
            .chain(self.frames[1].iter())
            .map(|f| f.code)
            .filter(|c| *c != 0)
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let layout = self.target.layout;
        let span = code_identity_span(&layout);
        let mut buffers = vec![vec![0u8; span]; addresses.len()];
        // Identity reads of codes whose memory is gone fail the whole batch; read them one by
        // one then, so that one stale pointer drops only its own frames.
        let mut requests: Vec<ReadRequest> = addresses
            .iter()
            .zip(buffers.iter_mut())
            .map(|(&address, buf)| ReadRequest { address, buf })
            .collect();
        let batch_ok = self.target.memory.read_many(&mut requests).is_ok();
        drop(requests);
        for (i, &address) in addresses.iter().enumerate() {
            if !batch_ok && self.target.memory.read(address, &mut buffers[i]).is_err() {
                self.codes.remove(&address);
                continue;
            }
            let identity = self.identity_from(&buffers[i]);
            if identity.type_ptr != self.target.code_type {
                self.codes.remove(&address);
                continue;
            }
            let cached = self
                .codes
                .get(&address)
                .is_some_and(|e| e.identity == identity);
            if !cached {
                self.codes.remove(&address);
                if let Ok(entry) = self.resolve_code(address, identity, new_codes) {
                    if self.codes.len() >= MAX_CACHED_CODES {
                        self.codes.clear();
                    }
                    self.codes.insert(address, entry);
                }
            }
        }
        Ok(())
    }

    fn identity_from(&self, bytes: &[u8]) -> CodeIdentity {
        let layout = &self.target.layout;
        let field = |offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
        CodeIdentity {
            type_ptr: field(layout.object_type),
            filename: field(layout.code_filename),
            name: field(layout.code_qualname.unwrap_or(layout.code_name)),
            line_table: field(layout.code_linetable.or(layout.code_lnotab).unwrap_or(0)),
            first_line: read_i32_at(bytes, layout.code_firstlineno)
                .unwrap_or(0)
                .max(0) as u32,
        }
    }

    /// Read a code object's strings and line table: a new cache entry.
    fn resolve_code(
        &mut self,
        address: usize,
        identity: CodeIdentity,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<CodeEntry, MemoryError> {
        let layout = self.target.layout;
        let filename = self.read_unicode(identity.filename)?;
        let name = self.read_unicode(identity.name)?;
        let line_table = self.read_bytes(identity.line_table, MAX_LINETABLE_BYTES)?;
        let format =
            LineTableFormat::for_version(layout.version).ok_or(MemoryError::Unmapped(address))?;
        let mut header = vec![0u8; layout.code_size];
        self.target.memory.read(address, &mut header)?;
        let code_bytes = match layout.code_code {
            // 3.8–3.10: co_code is a bytes object; its length in bytes.
            Some(co_code) => {
                let bytes_object = read_usize_at(&header, co_code).unwrap_or(0);
                self.read_bytes_len(bytes_object)?
            }
            // 3.11+: the code object is variable-sized: ob_size code units of two bytes.
            None => read_usize_at(&header, layout.var_object_size)
                .unwrap_or(0)
                .saturating_mul(2),
        };
        let code_bytes = u32::try_from(code_bytes).map_err(|_| MemoryError::Unmapped(address))?;
        let first_traceable_byte = layout
            .code_firsttraceable
            .and_then(|o| read_i32_at(&header, o))
            .unwrap_or(0)
            .clamp(0, i32::MAX / 2) as u32
            * 2;
        let lines: Vec<LineRange> = LineTable::new(format, &line_table, identity.first_line)
            .ranges(code_bytes)
            .collect();
        let id = self.interner.intern(&filename, &name, new_codes);
        Ok(CodeEntry {
            identity,
            id,
            lines,
            code_bytes,
            first_traceable_byte,
        })
    }

    /// A `str` object's text (compact ASCII or compact 1/2/4-byte kinds).
    fn read_unicode(&mut self, object: usize) -> Result<String, MemoryError> {
        let layout = self.target.layout;
        let mut header = vec![0u8; layout.unicode_compact_size];
        self.target.memory.read(object, &mut header)?;
        let length = read_usize_at(&header, layout.unicode_length).unwrap_or(usize::MAX);
        let state = read_u32_at(&header, layout.unicode_state).unwrap_or(0);
        let kind = layout.unicode_kind.extract(state) as usize;
        let compact = layout.unicode_compact.extract(state) == 1;
        let ascii = layout.unicode_ascii.extract(state) == 1;
        if !compact || !matches!(kind, 1 | 2 | 4) || length.saturating_mul(kind) > MAX_STRING_BYTES
        {
            return Err(MemoryError::Unmapped(object));
        }
        let data = object
            + if ascii {
                layout.unicode_ascii_size
            } else {
                layout.unicode_compact_size
            };
        let mut raw = vec![0u8; length * kind];
        self.target.memory.read(data, &mut raw)?;
        let text: Option<String> = match kind {
            1 if ascii => std::str::from_utf8(&raw).ok().map(str::to_owned),
            1 => Some(raw.iter().map(|&b| b as char).collect()),
            2 => raw
                .chunks_exact(2)
                .map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32))
                .collect(),
            _ => raw
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        };
        text.ok_or(MemoryError::Unmapped(object))
    }

    /// The length of a `bytes` object.
    fn read_bytes_len(&mut self, object: usize) -> Result<usize, MemoryError> {
        let layout = self.target.layout;
        let length = self
            .target
            .memory
            .read_usize(object + layout.var_object_size)?;
        if length > isize::MAX as usize {
            return Err(MemoryError::Unmapped(object));
        }
        Ok(length)
    }

    /// A `bytes` object's contents, at most `limit` bytes.
    fn read_bytes(&mut self, object: usize, limit: usize) -> Result<Vec<u8>, MemoryError> {
        let length = self.read_bytes_len(object)?;
        if length > limit {
            return Err(MemoryError::Unmapped(object));
        }
        let mut data = vec![0u8; length];
        self.target
            .memory
            .read(object + self.target.layout.bytes_sval, &mut data)?;
        Ok(data)
    }

    /// The line a frame stands on, if its code is known and its instruction valid; `None` for
    /// a frame not started or a torn read.
    fn frame_line(&self, frame: &RawFrame) -> Option<(CodeId, u32)> {
        let entry = self.codes.get(&frame.code)?;
        // A frame not started (f_lasti -1, prev_instr before the code) is left out, and so is
        // one standing before its first traceable instruction (the prologue, or
        // RETURN_GENERATOR of a generator just created), as CPython's frame walking does.
        let InstructionOffset::At(offset) =
            lookup_offset(self.target.layout.version, frame.position)?
        else {
            return None;
        };
        if offset >= entry.code_bytes || offset < entry.first_traceable_byte {
            return None;
        }
        let line = entry.line_at(offset)?;
        (line > 0).then_some((entry.id, line))
    }
}

impl StackReader for DirectReader {
    fn read(
        &mut self,
        sample: &mut Sample,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), ReadError> {
        sample.clear();
        let _paused = match &self.pause {
            Some(process) => Some(
                process
                    .lock()
                    .map_err(|e| ReadError::Transient(format!("cannot pause the target: {e}")))?,
            ),
            None => None,
        };
        let threads = self.thread_states().map_err(transient)?;
        for tstate in threads {
            let thread_id = match self.read_thread(tstate) {
                Ok(id) => id,
                // A thread exiting while we read it: leave it out of this sample.
                Err(MemoryError::Unmapped(_)) => continue,
                Err(e) => return Err(transient(e)),
            };
            self.validate_codes(new_codes).map_err(transient)?;
            let agreed = self.agreed_outer_frames();
            let total = self.frames[1].len();
            let frames = std::mem::take(&mut self.frames[1]);
            let mut truncated = agreed < total;
            let kept = &frames[total - agreed..];
            let mut resolved: Vec<FrameRef> = Vec::with_capacity(kept.len());
            for (index, frame) in kept.iter().enumerate() {
                match self.frame_line(frame) {
                    Some((code, line)) => resolved.push(FrameRef { code, line }),
                    // The innermost frame not started yet: left out, the stack is truncated.
                    None if index == 0 => truncated = true,
                    // A frame in the middle we cannot place: keep only what lies below it.
                    None => {
                        resolved.clear();
                        truncated = true;
                    }
                }
            }
            self.frames[1] = frames;
            sample.frames.extend(resolved);
            sample.end_thread(thread_id, truncated);
        }
        Ok(())
    }
}

impl DirectReader {
    /// How many outermost frames both copies agree on.
    fn agreed_outer_frames(&self) -> usize {
        self.frames[0]
            .iter()
            .rev()
            .zip(self.frames[1].iter().rev())
            .take_while(|(a, b)| a == b)
            .count()
    }
}

/// Bytes to read from the start of a structure so that every field at `offsets` (each
/// `size` bytes wide) is included.
fn span_of(fields: &[(Option<usize>, usize)]) -> usize {
    fields
        .iter()
        .filter_map(|(offset, size)| offset.map(|o| o + size))
        .max()
        .unwrap_or(0)
}

/// The part of `PyThreadState` the walker reads.
fn tstate_span(layout: &Layout) -> usize {
    span_of(&[
        (Some(layout.tstate_next), 8),
        (Some(layout.tstate_thread_id), 8),
        (layout.tstate_frame, 8),
        (layout.tstate_cframe, 8),
        (layout.tstate_current_frame, 8),
        (layout.tstate_datastack_chunk, 8),
        (layout.tstate_datastack_top, 8),
    ])
}

/// The part of `_PyInterpreterFrame` the walker reads (3.11+).
fn iframe_span(layout: &Layout) -> usize {
    span_of(&[
        (layout.iframe_previous, 8),
        (layout.iframe_code, 8),
        (layout.iframe_instr_ptr, 8),
        (layout.iframe_owner, 1),
    ])
}

/// The part of `PyFrameObject` the walker reads (3.8–3.10).
fn frame_object_span(layout: &Layout) -> usize {
    span_of(&[
        (layout.frame_object_back, 8),
        (layout.frame_object_code, 8),
        (layout.frame_object_lasti, 4),
    ])
}

/// The identity fields of a code object, compared on every use.
fn code_identity_span(layout: &Layout) -> usize {
    span_of(&[
        (Some(layout.object_type), 8),
        (Some(layout.code_filename), 8),
        (Some(layout.code_name), 8),
        (layout.code_qualname, 8),
        (layout.code_linetable, 8),
        (layout.code_lnotab, 8),
        (Some(layout.code_firstlineno), 4),
    ])
}

fn transient(e: MemoryError) -> ReadError {
    ReadError::Transient(e.to_string())
}

fn read_usize_at(bytes: &[u8], offset: usize) -> Option<usize> {
    let raw = bytes.get(offset..offset + 8)?;
    Some(usize::from_le_bytes(raw.try_into().ok()?))
}

fn read_i32_at(bytes: &[u8], offset: usize) -> Option<i32> {
    let raw = bytes.get(offset..offset + 4)?;
    Some(i32::from_le_bytes(raw.try_into().ok()?))
}

fn read_u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let raw = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}
