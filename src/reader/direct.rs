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
//! 2. the outer frames on which both copies agree (address, code, instruction; for the innermost
//!    frame, address, code and line) are kept, the rest dropped and the stack marked truncated:
//!    a copy torn by the running thread would have to tear identically twice to pass;
//! 3. frames not yet started (before `_co_firsttraceable`: the prologue, `RETURN_GENERATOR`),
//!    C-stack shim frames and (3.14+) the interpreter's entry frames are skipped, as CPython's
//!    own frame walking does.
//!
//! 3.14+: the interpreter's `_code_object_generation` changes when code objects may have been
//! freed; it is read with the thread list and the code cache is dropped when it moves (the
//! identity fields of every cached code are still checked every sample, as on every version).
//!
//! 3.8–3.10 frames are heap objects: one read per frame, twice, compared likewise.

use super::layout::Layout;
use super::line_proof;
use super::linetable::{
    lookup_offset, loop_exit_jumps, InstructionOffset, LineRange, LineTable, LineTableFormat,
    Position, RawFramePosition,
};
use super::memory::{BudgetedMemory, MemoryError, MemoryReader, ReadBudget, ReadRequest};
use super::values::{TypeCache, ValueReader};
use super::{CodeInterner, FunctionFilter, ReadError, ReadErrorKind, StackReader};
use crate::reader::sample::{
    CodeId, CodeInfo, FrameRef, LocalSample, Sample, SourcePoint, TargetFrame,
};
use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;

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
/// Every this many samples, cached code objects not seen on any stack since the previous
/// sweep are dropped: with code created and freed all the time (exec, lambdas in a loop) the
/// cache then holds what runs lately, not everything that ever ran.
const CODE_SWEEP_SAMPLES: u64 = 8192;
/// Local variable slots of a followed function read at most (`--locals`).
const MAX_LOCALS: usize = 512;
/// Frames outside the data-stack chunk read one by one in one walk at most (frames not yet in
/// the thread's plan: a generator started since the last sample). A longer new chain is
/// planned over several samples.
const MAX_UNPLANNED_FRAMES: usize = 1024;
/// `FRAME_OWNED_BY_THREAD`, the same on every version with interpreter frames (3.11+).
const FRAME_OWNED_BY_THREAD: u8 = 0;

/// A sample's budget of reads: [`SAMPLE_BUDGET`] for the thread list and code objects, and
/// [`THREAD_BUDGET`] more per thread found. Derived from the walk's own bounds (three
/// attempts at a batch of six ranges, two copies of [`MAX_PLANNED_FRAMES`] and
/// [`MAX_PLANNED_CODES`], with [`MAX_UNPLANNED_FRAMES`] read one by one and their code
/// objects checked), so that no stack the reader accepts can need more; a sample that does
/// is dropped as `over_budget`, whatever its memory holds. (ranges, bytes)
const SAMPLE_BUDGET: (u64, u64) = (8192, 32 << 20);
const THREAD_BUDGET: (u64, u64) = (
    3 * (6
        + 2 * MAX_PLANNED_FRAMES as u64
        + MAX_PLANNED_CODES as u64
        + 2 * MAX_UNPLANNED_FRAMES as u64),
    3 * 2 * MAX_CHUNK_BYTES as u64 + (4 << 20),
);

/// What a cached code object is, and what must still hold for the cache entry to be valid.
#[derive(Debug, Clone)]
struct CodeEntry {
    /// The sample that last saw this code on a stack (for the sweep).
    last_seen: u64,
    /// Identity fields as read when the entry was made: compared on every use.
    identity: CodeIdentity,
    id: CodeId,
    /// The line table decoded once: runs of code with one line, in offset order.
    lines: Vec<LineRange>,
    /// Length of the code in bytes, bounding instruction offsets.
    code_bytes: u32,
    /// 3.11+: byte offset of the first instruction that runs once the frame has started.
    first_traceable_byte: u32,
    /// 3.12: the backward jumps just before a loop's exit, by byte offset, with the line a
    /// frame standing on one is reported on
    /// ([`super::linetable::may_stand_on_an_unrun_loop_jump`]); `None`
    /// where that line is unknown (the frame is then not placed). Sorted; empty elsewhere.
    loop_exit_jumps: Vec<(u32, Option<u32>)>,
    /// Set for the code of the function followed with `--function`.
    target: Option<Box<TargetCode>>,
}

/// What the function view needs of the followed function's code, read once.
#[derive(Debug, Clone)]
struct TargetCode {
    first_line: u32,
    /// 3.11+: the location table's spans, in offset order; empty before 3.11.
    positions: Vec<Position>,
    /// The frame's local slots in order (`--locals`; empty without).
    slots: Vec<LocalSlot>,
}

/// One `localsplus` slot of the followed function.
#[derive(Debug, Clone)]
struct LocalSlot {
    name: String,
    /// The slot holds a cell (a closure's variable): its content is the value.
    cell: bool,
    /// An inlined comprehension's variable (3.12+), not a local of the function's own.
    hidden: bool,
}

impl TargetCode {
    /// Line and start column of the instruction at byte `offset`.
    fn point_at(&self, offset: u32, line: u32) -> SourcePoint {
        let index = self.positions.partition_point(|p| p.end <= offset);
        let column = self
            .positions
            .get(index)
            .filter(|p| p.start <= offset && p.line == Some(line))
            .and_then(|p| p.column);
        SourcePoint { line, column }
    }
}

impl CodeEntry {
    /// The line a frame standing at byte `offset` is reported on: its instruction's, except on
    /// a loop's exit jump where that may not have run (3.12).
    fn reported_line_at(&self, offset: u32) -> Option<u32> {
        match self
            .loop_exit_jumps
            .binary_search_by_key(&offset, |(at, _)| *at)
        {
            Ok(index) => self.loop_exit_jumps[index].1,
            Err(_) => self.line_at(offset),
        }
    }

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
    /// 3.11+: the frame lies outside the thread's data-stack chunk (a running generator's, a
    /// frame of an older chunk): its code must prove to be a code object, or the thread is
    /// left out (the chain may have left the stack).
    outside: bool,
}

/// Where the interpreter's structures are, once found.
pub struct Target {
    /// Read access to its memory: the live process's, or an image in tests.
    pub memory: Box<dyn MemoryReader>,
    pub layout: Layout,
    /// `PyInterpreterState*` of the main interpreter.
    pub interpreter: usize,
    /// `&PyCode_Type` in the target: every code object's `ob_type`.
    pub code_type: usize,
}

/// Outside-chunk frames and code objects of a thread read speculatively, at most: with the
/// six ranges of the double copy (frame pointer, top, chunk, twice) a thread's batch is one
/// system call (64 ranges) for a stack with up to 29 of them.
const MAX_PLANNED_FRAMES: usize = 1024;
const MAX_PLANNED_CODES: usize = 40;

/// What a thread's last sample needed besides its chunk: read in the same call next time.
#[derive(Debug, Default, Clone)]
struct ThreadPlan {
    /// Frames outside the data-stack chunk (C-stack shim frames, running generators).
    outside: Vec<usize>,
    /// Code objects on the stack, whose identity fields are checked every sample.
    codes: Vec<usize>,
}

/// Stacks read directly from the target's memory.
///
/// In steady state a sample costs one system call for the thread list and one per thread:
/// the list is predicted from the last sample (head pointer and every thread state read
/// together, then the chain checked), and each thread's double copy carries the frames outside
/// its chunk and the identity fields of the code objects its last sample had. A prediction
/// that fails falls back to reading step by step; what is read is the same either way.
pub struct DirectReader {
    target: Target,
    /// With `--blocking`: the process to pause for each read.
    pause: Option<remoteprocess::Process>,
    interner: CodeInterner,
    codes: HashMap<usize, CodeEntry>,
    /// The thread states as last read, in list order.
    threads: Vec<usize>,
    /// Each thread state's fields, this sample (parallel to `threads`).
    thread_spans: Vec<Vec<u8>>,
    plans: HashMap<usize, ThreadPlan>,
    /// Scratch buffers reused across samples.
    chunk_copies: [Vec<u8>; 2],
    /// Planned outside frames as read this sample, per copy: (address, bytes).
    outside: [Vec<(usize, Vec<u8>)>; 2],
    /// Planned code identity fields as read this sample: (address, bytes).
    identities: Vec<(usize, Vec<u8>)>,
    frames: [Vec<RawFrame>; 2],
    /// Scratch for a frame read to discover a chain, and for code addresses.
    frame_scratch: Vec<u8>,
    /// Frames met by the walk in progress (cycles end it); kept to reuse its allocation.
    visited: HashSet<usize>,
    code_scratch: Vec<usize>,
    /// 3.14+: the interpreter's `_code_object_generation` as last read.
    code_generation: Option<u64>,
    /// Samples read, stamping cache entries; and the sample of the last sweep.
    samples_read: u64,
    last_sweep: u64,
    /// Set by a walk that met a frame of its thread's chunk beyond the copied part (the stack
    /// grew since `datastack_top` was read): the live top, to copy again up to it.
    stack_grew_to: Option<usize>,
    /// Set by a walk that met a frame outside the chunk that the batch did not read: it is
    /// added to the thread's plan and the batch read again, never read on its own afterwards
    /// (a late read could pair a newer frame with older copies, alike in both).
    needs_replan: bool,
    /// Set by a 3.8–3.10 walk that met a freed frame: the thread's stack is reported empty and
    /// truncated this sample.
    torn_chain: bool,
    /// The function followed with `--function`, if any.
    function: Option<FunctionFilter>,
    /// Type names of the values read for `--locals`.
    types: TypeCache,
    /// This sample's budget of reads, spent by every read of `target.memory`.
    budget: Arc<ReadBudget>,
    /// Report each frame on its instruction's own line, as `f_lineno` does, even where that
    /// line may not have run ([`DirectReader::with_f_lineno_lines`]).
    f_lineno_lines: bool,
}

impl DirectReader {
    /// A reader of `target`; with `pause`, the process is stopped for each read.
    pub fn new(mut target: Target, pause: Option<remoteprocess::Process>) -> DirectReader {
        let budget = Arc::new(ReadBudget::default());
        budget.reset(SAMPLE_BUDGET.0, SAMPLE_BUDGET.1);
        let memory = std::mem::replace(
            &mut target.memory,
            Box::new(super::memory::ImageMemory::default()),
        );
        target.memory = Box::new(BudgetedMemory::new(memory, budget.clone()));
        DirectReader {
            budget,
            f_lineno_lines: false,
            target,
            pause,
            interner: CodeInterner::default(),
            codes: HashMap::default(),
            threads: Vec::new(),
            thread_spans: Vec::new(),
            plans: HashMap::default(),
            chunk_copies: [Vec::new(), Vec::new()],
            outside: [Vec::new(), Vec::new()],
            identities: Vec::new(),
            frames: [Vec::new(), Vec::new()],
            frame_scratch: Vec::new(),
            visited: HashSet::default(),
            code_scratch: Vec::new(),
            code_generation: None,
            samples_read: 0,
            last_sweep: 0,
            stack_grew_to: None,
            needs_replan: false,
            torn_chain: false,
            function: None,
            types: TypeCache::default(),
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.target.layout
    }

    /// System calls made so far.
    pub fn calls(&self) -> u64 {
        self.target.memory.calls()
    }

    /// This reader, reporting each frame on its instruction's own line as `f_lineno` (and
    /// py-spy) does, even where that line may not have run: the 3.8–3.9 lines that
    /// src/reader/line_proof moves to a line that did, and 3.12's loop-exit jumps
    /// (`may_stand_on_an_unrun_loop_jump`). For comparing frames with readers that do so.
    pub fn with_f_lineno_lines(mut self) -> DirectReader {
        self.f_lineno_lines = true;
        self.codes.clear();
        self
    }

    /// What the last sample read: (ranges, bytes).
    pub fn last_sample_reads(&self) -> (u64, u64) {
        self.budget.spent()
    }

    /// Read the thread list into `threads` and `thread_spans`; returns the number of threads.
    fn thread_states(&mut self) -> Result<usize, MemoryError> {
        let layout = self.target.layout;
        let span = tstate_span(&layout);
        let head_slot = self
            .target
            .interpreter
            .wrapping_add(layout.interp_threads_head);
        let generation_slot = layout
            .interp_code_object_generation
            .map(|offset| self.target.interpreter.wrapping_add(offset));
        let known = self.threads.len();
        if known > 0 && known < 62 {
            let mut head = [0u8; 8];
            let mut generation = [0u8; 8];
            self.thread_spans.resize_with(known, Vec::new);
            let mut requests = Vec::with_capacity(known + 2);
            requests.push(ReadRequest {
                address: head_slot,
                buf: &mut head,
            });
            if let Some(address) = generation_slot {
                requests.push(ReadRequest {
                    address,
                    buf: &mut generation,
                });
            }
            for (buf, &address) in self.thread_spans.iter_mut().zip(&self.threads) {
                buf.resize(span, 0);
                requests.push(ReadRequest { address, buf });
            }
            if self.target.memory.read_many(&mut requests).is_ok() {
                drop(requests);
                let next = |i: usize| read_usize_at(&self.thread_spans[i], layout.tstate_next);
                let chain_holds = usize::from_le_bytes(head) == self.threads[0]
                    && (0..known)
                        .all(|i| next(i) == Some(self.threads.get(i + 1).copied().unwrap_or(0)));
                if chain_holds {
                    if generation_slot.is_some() {
                        self.note_code_generation(u64::from_ne_bytes(generation));
                    }
                    return Ok(known);
                }
            }
        }
        if let Some(address) = generation_slot {
            let generation = self.target.memory.read_usize(address)?;
            self.note_code_generation(generation as u64);
        }
        // Walk the list one thread at a time.
        self.threads.clear();
        let mut seen = std::collections::HashSet::new();
        let mut tstate = self.target.memory.read_usize(head_slot)?;
        while tstate != 0 && self.threads.len() < MAX_THREADS && seen.insert(tstate) {
            let index = self.threads.len();
            if self.thread_spans.len() <= index {
                self.thread_spans.push(Vec::new());
            }
            self.thread_spans[index].resize(span, 0);
            self.target
                .memory
                .read(tstate, &mut self.thread_spans[index])?;
            self.threads.push(tstate);
            tstate = read_usize_at(&self.thread_spans[index], layout.tstate_next).unwrap_or(0);
        }
        self.thread_spans.truncate(self.threads.len());
        let threads = &self.threads;
        self.plans.retain(|t, _| threads.contains(t));
        Ok(self.threads.len())
    }

    /// 3.14+: drop the code cache when the interpreter's code-object generation moved (code
    /// objects were freed, so cached addresses may hold other objects now).
    fn note_code_generation(&mut self, generation: u64) {
        if self.code_generation.is_some_and(|last| last != generation) {
            self.codes.clear();
        }
        self.code_generation = Some(generation);
    }

    /// Thread `index`'s frames, innermost first, in both `self.frames` copies. Returns the
    /// thread id.
    fn read_thread(&mut self, index: usize) -> Result<u64, MemoryError> {
        let layout = self.target.layout;
        let tstate = self.threads[index];
        let span = &self.thread_spans[index];
        let field = |offset: usize| read_usize_at(span, offset);
        let thread_id = field(layout.tstate_thread_id).unwrap_or(0) as u64;
        let frame_slot = match (
            layout.tstate_frame,
            layout.tstate_cframe,
            layout.cframe_current_frame,
            layout.tstate_current_frame,
        ) {
            // 3.8–3.10: tstate->frame.
            (Some(frame), _, _, _) => tstate.wrapping_add(frame),
            // 3.11/3.12: tstate->cframe->current_frame.
            (None, Some(cframe), Some(current), _) => {
                field(cframe).unwrap_or(0).wrapping_add(current)
            }
            // 3.13: tstate->current_frame.
            (None, _, _, Some(current)) => tstate.wrapping_add(current),
            _ => return Err(MemoryError::Unmapped(tstate)),
        };
        if layout.iframe_previous.is_some() {
            let chunk = layout.tstate_datastack_chunk.and_then(field).unwrap_or(0);
            let mut top = layout.tstate_datastack_top.and_then(field).unwrap_or(0);
            let limit = layout.tstate_datastack_limit.and_then(field).unwrap_or(0);
            // Copy again, up to the top read with the frame pointer, or with frames outside the
            // chunk added to the batch; a stack that keeps changing drops the thread from this
            // sample.
            let mut attempt = 0;
            loop {
                attempt += 1;
                self.stack_grew_to = None;
                self.needs_replan = false;
                match self.read_interpreter_frames(tstate, frame_slot, chunk, top, limit) {
                    Ok(()) => break,
                    Err(e) if attempt >= 3 => return Err(e),
                    // Too costly: reading again would not change that.
                    Err(e @ MemoryError::OverBudget { .. }) => return Err(e),
                    Err(e) => match self.stack_grew_to.take() {
                        Some(grown) => top = grown,
                        None if self.needs_replan => {}
                        None => return Err(e),
                    },
                }
            }
        } else {
            self.identities.clear();
            // A chain that met a freed frame is read again from the top: the thread has moved
            // on, and its new stack is as good a sample as the one missed.
            for _attempt in 0..3 {
                self.read_frame_objects(frame_slot)?;
                if !self.torn_chain {
                    break;
                }
            }
        }
        Ok(thread_id)
    }

    /// 3.11+: in one call, copy the frame pointer and the chunk twice, with the planned outside
    /// frames per copy and the planned code identities; then walk both copies.
    fn read_interpreter_frames(
        &mut self,
        tstate: usize,
        frame_slot: usize,
        chunk: usize,
        top: usize,
        limit: usize,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let data_start = chunk.wrapping_add(layout.stack_chunk_data.unwrap_or(0));
        let chunk_len = if chunk != 0 && top > data_start && top - data_start <= MAX_CHUNK_BYTES {
            top - data_start
        } else {
            0
        };
        let mut plan = self.plans.remove(&tstate).unwrap_or_default();
        let (frame_span, identity_span) = (iframe_span(&layout), code_identity_span(&layout));
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
        let top_slot = layout
            .tstate_datastack_top
            .map_or(frame_slot, |o| tstate.wrapping_add(o));
        let (mut top_a, mut top_b) = ([0u8; 8], [0u8; 8]);
        let [outside_a, outside_b] = &mut self.outside;
        let mut requests = Vec::with_capacity(6 + 2 * plan.outside.len() + plan.codes.len());
        push_words(
            &mut requests,
            (frame_slot, &mut frame_a),
            (top_slot, &mut top_a),
        );
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
            (frame_slot, &mut frame_b),
            (top_slot, &mut top_b),
        );
        requests.push(ReadRequest {
            address: data_start,
            buf: copy_b,
        });
        for (address, buf) in outside_b.iter_mut() {
            requests.push(ReadRequest {
                address: *address,
                buf,
            });
        }
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
            // read the six ranges alone, and let the walks find the outside frames anew.
            self.outside.iter_mut().for_each(Vec::clear);
            self.identities.clear();
            plan.outside.clear();
            plan.codes.clear();
            let [copy_a, copy_b] = &mut self.chunk_copies;
            self.target.memory.read_many(&mut [
                ReadRequest {
                    address: frame_slot,
                    buf: &mut frame_a,
                },
                ReadRequest {
                    address: top_slot,
                    buf: &mut top_a,
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
                    address: top_slot,
                    buf: &mut top_b,
                },
                ReadRequest {
                    address: data_start,
                    buf: copy_b,
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
        for (copy, first, live_top) in [(0, frame_a, top_a), (1, frame_b, top_b)] {
            let mut frames = std::mem::take(&mut self.frames[copy]);
            frames.clear();
            let walked = self.walk_interpreter_frames(
                usize::from_le_bytes(first),
                (data_start, chunk_end),
                usize::from_le_bytes(live_top),
                copy,
                &mut frames,
                &mut outside_used,
            );
            self.frames[copy] = frames;
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

    /// Walk `_PyInterpreterFrame`s from `frame` in copy `copy`: from the chunk copy where the
    /// frame lies inside it, else from the planned outside frames read with that copy. Nothing
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
    fn walk_interpreter_frames(
        &mut self,
        mut frame: usize,
        (data_start, chunk_end): (usize, usize),
        live_top: usize,
        copy: usize,
        out: &mut Vec<RawFrame>,
        outside_used: &mut Vec<usize>,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let span = iframe_span(&layout);
        let known_owner = |o: u8| {
            o == FRAME_OWNED_BY_THREAD
                || Some(o) == layout.frame_owned_by_generator
                || Some(o) == layout.frame_owned_by_cstack
                || Some(o) == layout.frame_owned_by_interpreter
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
            if in_chunk.is_some() {
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
            let previous = field(layout.iframe_previous.unwrap_or(0));
            let code = field(layout.iframe_code.unwrap_or(0)) & !layout.iframe_code_tag_mask;
            let instruction = field(layout.iframe_instr_ptr.unwrap_or(0));
            let owner = layout
                .iframe_owner
                .map(|o| bytes.get(o).copied().unwrap_or(u8::MAX));
            if owner.is_some_and(|o| !known_owner(o)) {
                return Err(MemoryError::Implausible(frame));
            }
            // Shims pushed by C code (3.12+) and the interpreter's own entry frames (3.14+)
            // hold no Python code.
            let shim = owner.is_some_and(|o| {
                Some(o) == layout.frame_owned_by_cstack
                    || Some(o) == layout.frame_owned_by_interpreter
            });
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
    fn check_code_type(&mut self, code: usize) -> Result<(), MemoryError> {
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

    /// 3.8–3.10: follow `f_back` from the thread's frame, twice.
    fn read_frame_objects(&mut self, frame_slot: usize) -> Result<(), MemoryError> {
        self.torn_chain = false;
        let layout = self.target.layout;
        let span = frame_object_span(&layout);
        let mut buf = vec![0u8; span];
        for copy in 0..2 {
            let mut frames = std::mem::take(&mut self.frames[copy]);
            frames.clear();
            let mut frame = self.target.memory.read_usize(frame_slot)?;
            let mut result = Ok(());
            // Every frame of a chain is a frame object, of one type: the first frame's type
            // stands for it, and a frame met twice is a cycle.
            let mut frame_type = None;
            self.visited.clear();
            while frame != 0 {
                if frames.len() >= MAX_DEPTH
                    || !frame.is_multiple_of(std::mem::align_of::<usize>())
                    || !self.visited.insert(frame)
                {
                    result = Err(MemoryError::Implausible(frame));
                    break;
                }
                if let Err(e) = self.target.memory.read(frame, &mut buf) {
                    result = Err(e);
                    break;
                }
                let field = |offset: usize| read_usize_at(&buf, offset).unwrap_or(0);
                let type_ptr = field(layout.object_type);
                if *frame_type.get_or_insert(type_ptr) != type_ptr {
                    result = Err(MemoryError::Implausible(frame));
                    break;
                }
                // A frame freed while we followed the chain: CPython keeps freed frames on a
                // free list (and as each code's zombie frame) with a zero reference count, the
                // list linked through `f_back` and each frame's stale code and instruction left
                // in place. Walking on would read the free list as a stack, and both copies
                // would agree on it (it does not change while nothing is allocated): phantom
                // edges such as `dive` calling `raise_at`. A live frame is always referenced.
                if (field(layout.object_refcnt) as isize) <= 0 {
                    self.torn_chain = true;
                    break;
                }
                frames.push(RawFrame {
                    address: frame,
                    code: field(layout.frame_object_code.unwrap_or(0)),
                    position: RawFramePosition::Lasti(
                        read_i32_at(&buf, layout.frame_object_lasti.unwrap_or(0))
                            .unwrap_or(i32::MIN),
                    ),
                    outside: false,
                });
                frame = field(layout.frame_object_back.unwrap_or(0));
            }
            self.frames[copy] = frames;
            result?;
            if self.torn_chain {
                // Nothing of this thread is reported: the frames read before the freed one are
                // no longer known to be its callees' chain.
                self.frames[0].clear();
                self.frames[1].clear();
                break;
            }
        }
        Ok(())
    }

    /// Resolve the code objects of thread `tstate`'s frames (both copies), validating cached
    /// entries against their identity fields: those read with the batch if planned, the rest
    /// in one more call.
    fn validate_codes(
        &mut self,
        tstate: usize,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), MemoryError> {
        let mut addresses = std::mem::take(&mut self.code_scratch);
        addresses.clear();
        addresses.extend(
            self.frames[0]
                .iter()
                .chain(self.frames[1].iter())
                .map(|f| f.code)
                .filter(|c| *c != 0),
        );
        addresses.sort_unstable();
        addresses.dedup();
        let span = code_identity_span(&self.target.layout);
        let mut missing: Vec<(usize, Vec<u8>)> = addresses
            .iter()
            .filter(|a| !self.identities.iter().any(|(p, _)| p == *a))
            .map(|&a| (a, vec![0u8; span]))
            .collect();
        if !missing.is_empty() {
            let mut requests: Vec<ReadRequest> = missing
                .iter_mut()
                .map(|(address, buf)| ReadRequest {
                    address: *address,
                    buf,
                })
                .collect();
            let batch_ok = self.target.memory.read_many(&mut requests).is_ok();
            drop(requests);
            if !batch_ok {
                // One stale pointer fails the whole batch: read one by one, so that it drops
                // only its own frames.
                missing.retain_mut(|(address, buf)| self.target.memory.read(*address, buf).is_ok());
            }
        }
        let identities = std::mem::take(&mut self.identities);
        for &address in &addresses {
            let bytes = identities
                .iter()
                .chain(missing.iter())
                .find(|(a, _)| *a == address)
                .map(|(_, b)| b.as_slice());
            let Some(bytes) = bytes else {
                self.codes.remove(&address);
                continue;
            };
            let identity = self.identity_from(bytes);
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
        self.identities = identities;
        let plan = self.plans.entry(tstate).or_default();
        plan.codes.clear();
        plan.codes.extend(addresses.iter().take(MAX_PLANNED_CODES));
        self.code_scratch = addresses;
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
        let mut lines: Vec<LineRange> = LineTable::new(format, &line_table, identity.first_line)
            .ranges(code_bytes)
            .collect();
        // 3.8–3.9: only lines a frame's position proves ran (src/reader/line_proof).
        if let (true, false, Some(co_code)) = (
            line_proof::applies_to(layout.version),
            self.f_lineno_lines,
            layout.code_code,
        ) {
            let bytes_object = read_usize_at(&header, co_code).unwrap_or(0);
            let code = self.read_bytes(bytes_object, MAX_LINETABLE_BYTES)?;
            lines = line_proof::proven_lines(layout.version, &code, &lines)
                .ok_or(MemoryError::Implausible(address))?;
        }
        let loop_exit_jumps = match (
            super::linetable::may_stand_on_an_unrun_loop_jump(layout.version)
                && !self.f_lineno_lines,
            layout.code_code_adaptive,
        ) {
            (true, Some(code_at)) if code_bytes as usize <= MAX_LINETABLE_BYTES => {
                let mut code = vec![0u8; code_bytes as usize];
                self.target
                    .memory
                    .read(address.wrapping_add(code_at), &mut code)?;
                loop_exit_jumps(layout.version, &code, &lines)
            }
            (true, _) => return Err(MemoryError::Implausible(address)),
            (false, _) => Vec::new(),
        };
        let target = match &self.function {
            Some(filter) if filter.matches(&name, layout.code_qualname.is_some()) => {
                let locals = filter.locals;
                Some(Box::new(self.target_code(
                    &header,
                    format,
                    &line_table,
                    identity.first_line,
                    locals,
                )?))
            }
            _ => None,
        };
        let id = self.interner.intern(&filename, &name, new_codes);
        Ok(CodeEntry {
            last_seen: self.samples_read,
            identity,
            id,
            lines,
            code_bytes,
            first_traceable_byte,
            loop_exit_jumps,
            target,
        })
    }

    /// The followed function's positions and local slots, from its code object's `header`.
    fn target_code(
        &mut self,
        header: &[u8],
        format: LineTableFormat,
        line_table: &[u8],
        first_line: u32,
        locals: bool,
    ) -> Result<TargetCode, MemoryError> {
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
        Ok(TargetCode {
            first_line,
            positions,
            slots,
        })
    }

    /// A tuple of `str` (names of locals), at most [`MAX_LOCALS`] of them.
    fn read_name_tuple(&mut self, tuple: usize) -> Result<Vec<String>, MemoryError> {
        let layout = self.target.layout;
        let size = self
            .target
            .memory
            .read_usize(tuple.wrapping_add(layout.var_object_size))?;
        if size > MAX_LOCALS {
            return Err(MemoryError::Unmapped(tuple));
        }
        let mut raw = vec![0u8; size * 8];
        self.target
            .memory
            .read(tuple.wrapping_add(layout.tuple_items), &mut raw)?;
        raw.chunks_exact(8)
            .map(|c| self.read_unicode(usize::from_le_bytes(c.try_into().unwrap_or_default())))
            .collect()
    }

    /// The followed function's frame `frame` as the function view records it: its source
    /// point and, with `--locals`, its bound local variables.
    fn target_frame(&mut self, frame: &RawFrame, frame_index: u32) -> Option<TargetFrame> {
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
        let mut out = TargetFrame {
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
    fn read_locals(
        &mut self,
        frame: &RawFrame,
        slots: &[LocalSlot],
    ) -> Result<Vec<LocalSample>, MemoryError> {
        let layout = self.target.layout;
        let (slots_at, code_at, position_at) =
            match (layout.iframe_localsplus, layout.frame_object_localsplus) {
                (Some(localsplus), _) => (localsplus, layout.iframe_code, layout.iframe_instr_ptr),
                (None, Some(localsplus)) => (
                    localsplus,
                    layout.frame_object_code,
                    layout.frame_object_lasti,
                ),
                _ => return Ok(Vec::new()),
            };
        let (Some(code_at), Some(position_at)) = (code_at, position_at) else {
            return Ok(Vec::new());
        };
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
            let objects: Vec<usize> = before
                .0
                .chunks_exact(8)
                .zip(slots)
                .filter(|(_, slot)| !slot.hidden)
                .map(|(raw, _)| usize::from_le_bytes(raw.try_into().unwrap_or_default()))
                .collect();
            values.prefetch(&objects);
            for (slot, raw) in slots.iter().zip(before.0.chunks_exact(8)) {
                let object = usize::from_le_bytes(raw.try_into().unwrap_or_default());
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

    /// A `str` object's text (compact ASCII or compact 1/2/4-byte kinds).
    fn read_unicode(&mut self, object: usize) -> Result<String, MemoryError> {
        read_unicode(&mut *self.target.memory, &self.target.layout, object)
    }

    /// The length of a `bytes` object.
    fn read_bytes_len(&mut self, object: usize) -> Result<usize, MemoryError> {
        read_bytes_len(&mut *self.target.memory, &self.target.layout, object)
    }

    /// A `bytes` object's contents, at most `limit` bytes.
    fn read_bytes(&mut self, object: usize, limit: usize) -> Result<Vec<u8>, MemoryError> {
        read_bytes(&mut *self.target.memory, &self.target.layout, object, limit)
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
        let line = entry.reported_line_at(offset)?;
        (line > 0).then_some((entry.id, line))
    }
}

impl StackReader for DirectReader {
    fn follow_function(&mut self, filter: FunctionFilter) -> Result<(), String> {
        self.function = Some(filter);
        // Entries cached before were made without knowing which function to follow.
        self.codes.clear();
        Ok(())
    }

    fn read(
        &mut self,
        sample: &mut Sample,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), ReadError> {
        sample.clear();
        self.budget.reset(SAMPLE_BUDGET.0, SAMPLE_BUDGET.1);
        self.samples_read += 1;
        if self.samples_read - self.last_sweep >= CODE_SWEEP_SAMPLES {
            let since = self.last_sweep;
            self.codes.retain(|_, entry| entry.last_seen > since);
            self.last_sweep = self.samples_read;
        }
        let _paused = match &self.pause {
            Some(process) => Some(process.lock().map_err(|e| {
                ReadError::Transient(
                    ReadErrorKind::Unreadable,
                    format!("cannot pause the target: {e}"),
                )
            })?),
            None => None,
        };
        let threads = self.thread_states().map_err(transient)?;
        self.budget.widen(
            THREAD_BUDGET.0 * threads as u64,
            THREAD_BUDGET.1 * threads as u64,
        );
        for index in 0..threads {
            let thread_id = match self.read_thread(index) {
                Ok(id) => id,
                Err(e @ (MemoryError::Gone | MemoryError::Refused(_))) => return Err(transient(e)),
                Err(e @ MemoryError::OverBudget { .. }) => return Err(transient(e)),
                // A thread exiting while we read it, or a stack that would not settle or led
                // out of itself: leave it out of this sample, counted.
                Err(e) => {
                    sample.threads_dropped.add(ReadErrorKind::of(&e));
                    continue;
                }
            };
            self.validate_codes(self.threads[index], new_codes)
                .map_err(transient)?;
            if self.budget.exceeded() {
                let (ranges, bytes) = self.budget.spent();
                return Err(transient(MemoryError::OverBudget { ranges, bytes }));
            }
            // A frame outside the chunk whose code is not a code object: the chain left the
            // stack there, and nothing beyond it (which is all that is reported) is proven.
            let left_the_stack = self.frames[0]
                .iter()
                .chain(&self.frames[1])
                .any(|f| f.outside && !self.codes.contains_key(&f.code));
            if left_the_stack {
                sample.threads_dropped.add(ReadErrorKind::Implausible);
                continue;
            }
            let agreed = self.agreed_outer_frames();
            let total = self.frames[1].len();
            let frames = std::mem::take(&mut self.frames[1]);
            let mut truncated = agreed < total || self.torn_chain;
            let kept = &frames[total - agreed..];
            let mut resolved: Vec<FrameRef> = Vec::with_capacity(kept.len());
            // Followed frames (`--function`): their index in `kept` and in `resolved`.
            let mut followed: Vec<(usize, usize)> = Vec::new();
            for (index, frame) in kept.iter().enumerate() {
                match self.frame_line(frame) {
                    Some((code, line)) => {
                        if self.function.is_some()
                            && self
                                .codes
                                .get(&frame.code)
                                .is_some_and(|e| e.target.is_some())
                        {
                            followed.push((index, resolved.len()));
                        }
                        resolved.push(FrameRef { code, line })
                    }
                    // The innermost frame not started yet: left out, the stack is truncated.
                    None if index == 0 => truncated = true,
                    // A frame in the middle we cannot place: keep only what lies below it.
                    None => {
                        resolved.clear();
                        followed.clear();
                        truncated = true;
                    }
                }
            }
            let base = sample.frames.len() as u32;
            for (kept_index, resolved_index) in followed {
                let frame = kept[kept_index];
                if let Some(target) = self.target_frame(&frame, base + resolved_index as u32) {
                    sample.targets.push(target);
                }
            }
            self.frames[1] = frames;
            sample.frames.extend(resolved);
            sample.end_thread(thread_id, truncated);
        }
        if self.budget.exceeded() {
            let (ranges, bytes) = self.budget.spent();
            return Err(transient(MemoryError::OverBudget { ranges, bytes }));
        }
        Ok(())
    }
}

impl DirectReader {
    /// How many outermost frames both copies agree on.
    ///
    /// The innermost frame also counts when the copies differ only in its instruction and both
    /// instructions stand on the same line of the same code: what is reported, `(code, line)`,
    /// is then the same in both. A running frame's instruction changes between the copies when
    /// the interpreter stores it at every instruction, as CPython 3.14 does (a quarter to a third
    /// of the samples of a CPU-bound thread lost their innermost frame without this).
    fn agreed_outer_frames(&self) -> usize {
        let [first, second] = &self.frames;
        let agreed = first
            .iter()
            .rev()
            .zip(second.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let only_innermost_differs = first.len() == agreed + 1 && second.len() == agreed + 1;
        if only_innermost_differs {
            let (a, b) = (&first[0], &second[0]);
            let same_line = a.address == b.address
                && a.code == b.code
                && self.frame_line(a).is_some()
                && self.frame_line(a) == self.frame_line(b);
            if same_line {
                return agreed + 1;
            }
        }
        agreed
    }
}

/// A `str` object's text (compact ASCII or compact 1/2/4-byte kinds).
pub fn read_unicode(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
) -> Result<String, MemoryError> {
    let mut header = vec![0u8; layout.unicode_compact_size];
    memory.read(object, &mut header)?;
    let length = read_usize_at(&header, layout.unicode_length).unwrap_or(usize::MAX);
    let state = read_u32_at(&header, layout.unicode_state).unwrap_or(0);
    let kind = layout.unicode_kind.extract(state) as usize;
    let compact = layout.unicode_compact.extract(state) == 1;
    let ascii = layout.unicode_ascii.extract(state) == 1;
    if !compact || !matches!(kind, 1 | 2 | 4) || length.saturating_mul(kind) > MAX_STRING_BYTES {
        return Err(MemoryError::Unmapped(object));
    }
    let data = object.wrapping_add(if ascii {
        layout.unicode_ascii_size
    } else {
        layout.unicode_compact_size
    });
    let mut raw = vec![0u8; length * kind];
    memory.read(data, &mut raw)?;
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
pub fn read_bytes_len(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
) -> Result<usize, MemoryError> {
    let length = memory.read_usize(object.wrapping_add(layout.var_object_size))?;
    if length > isize::MAX as usize {
        return Err(MemoryError::Unmapped(object));
    }
    Ok(length)
}

/// A `bytes` object's contents, at most `limit` bytes.
pub fn read_bytes(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
    limit: usize,
) -> Result<Vec<u8>, MemoryError> {
    let length = read_bytes_len(memory, layout, object)?;
    if length > limit {
        return Err(MemoryError::Unmapped(object));
    }
    let mut data = vec![0u8; length];
    memory.read(object.wrapping_add(layout.bytes_sval), &mut data)?;
    Ok(data)
}

/// Push two word reads in address order, so that the memory reader can merge them into one
/// range when they are close.
fn push_words<'a>(
    requests: &mut Vec<ReadRequest<'a>>,
    first: (usize, &'a mut [u8; 8]),
    second: (usize, &'a mut [u8; 8]),
) {
    let (low, high) = if first.0 <= second.0 {
        (first, second)
    } else {
        (second, first)
    };
    for (address, buf) in [low, high] {
        requests.push(ReadRequest { address, buf });
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
        (layout.tstate_datastack_limit, 8),
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
        (Some(layout.object_refcnt), 8),
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
    ReadError::Transient(ReadErrorKind::of(&e), e.to_string())
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
