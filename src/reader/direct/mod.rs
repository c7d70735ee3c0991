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
//!    a copy torn by the running thread would have to tear identically twice to pass. Both
//!    frame pointers are read between the copies of the frames, so a copy that is wholly the
//!    outer part of the other is the whole stack when its pointer was read (docs/hostile.md);
//! 3. frames not yet started (before `_co_firsttraceable`: the prologue, `RETURN_GENERATOR`),
//!    C-stack shim frames and (3.14+) the interpreter's entry frames are skipped, as CPython's
//!    own frame walking does.
//!
//! 3.14+: the interpreter's `_code_object_generation` changes when code objects may have been
//! freed; it is read with the thread list and the code cache is dropped when it moves (the
//! identity fields of every cached code are still checked every sample, as on every version).
//!
//! 3.8–3.10 frames are heap objects: one read per frame, twice, compared likewise.

use super::layout::{FrameObjectLayout, Frames, InterpreterFrameLayout, Layout};
use super::line_proof;
use super::linetable::{
    lookup_offset, loop_exit_jumps, InstructionOffset, LineRange, LineTable, LineTableFormat,
    Position, RawFramePosition,
};
use super::memory::{BudgetedMemory, MemoryError, MemoryReader, ReadBudget, ReadRequest};
use super::values::{TypeCache, ValueReader};
use super::{CodeInterner, FollowedFunction, ReadError, ReadErrorKind, StackReader};
use crate::reader::sample::{
    CodeId, CodeInfo, FollowedFrame, FrameRef, LocalSample, Sample, SourcePoint,
};
use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;

mod agreement;
mod code_cache;
mod followed;
mod frame_objects;
mod interpreter_frames;

pub use crate::reader::objects::{read_bytes, read_bytes_len, read_tuple_items, read_unicode};
use code_cache::CodeEntry;
use followed::FollowedCode;

/// Threads followed in one interpreter at most.
const MAX_THREADS: usize = 8192;
/// Interpreters read, at most (the main one and its subinterpreters).
const MAX_INTERPRETERS: usize = 256;
/// Frames followed in one thread at most (Python's default recursion limit is 1000).
const MAX_DEPTH: usize = 16384;
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
/// Reads of one thread's stack in one sample at most: a stack that grew past its copy, met
/// frames outside the batch or whose two copies disagree is read again, up to this.
const MAX_ATTEMPTS: usize = 3;
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
    MAX_ATTEMPTS as u64
        * (6 + 2 * MAX_PLANNED_FRAMES as u64
            + MAX_PLANNED_CODES as u64
            + 2 * MAX_UNPLANNED_FRAMES as u64),
    MAX_ATTEMPTS as u64 * 2 * MAX_CHUNK_BYTES as u64 + (4 << 20),
);

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
    /// `&_PyRuntime`, whose interpreter list leads to the subinterpreters; 0 when unknown (a
    /// test image): the main interpreter alone is read.
    pub runtime: usize,
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
    /// The interpreters as last read: the main one first, then the others newest first.
    interpreters: Vec<usize>,
    /// The thread states as last read: each interpreter's in list order, main's first.
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
    /// The thread's frame pointer as read with each copy (the first frame each walk met).
    frame_pointers: [usize; 2],
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
    /// The two copies of an earlier read of this thread that disagreed, kept while it is read
    /// again.
    stash: [Vec<RawFrame>; 2],
    /// The frame pointers read with the stashed copies.
    stash_pointers: [usize; 2],
    /// Set by a 3.8–3.10 walk that met a freed frame: the thread's stack is reported empty and
    /// truncated this sample.
    torn_chain: bool,
    /// The function followed with `--function`, if any.
    function: Option<FollowedFunction>,
    /// Type names of the values read for `--locals`.
    types: TypeCache,
    /// This sample's budget of reads, spent by every read of `target.memory`.
    budget: Arc<ReadBudget>,
    /// Report each frame on its instruction's own line, as `f_lineno` does, even where that
    /// line may not have run ([`DirectReader::with_f_lineno_lines`]).
    f_lineno_lines: bool,
    /// Debug counters of the stacks cut short (`TRACER_DEBUG_TRUNCATION`).
    cuts: agreement::CutCounts,
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
            cuts: Default::default(),
            target,
            pause,
            interner: CodeInterner::default(),
            codes: HashMap::default(),
            interpreters: Vec::new(),
            threads: Vec::new(),
            thread_spans: Vec::new(),
            plans: HashMap::default(),
            chunk_copies: [Vec::new(), Vec::new()],
            outside: [Vec::new(), Vec::new()],
            identities: Vec::new(),
            frames: [Vec::new(), Vec::new()],
            frame_pointers: [0; 2],
            stash: [Vec::new(), Vec::new()],
            stash_pointers: [0; 2],
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

    /// What the last sample read: (ranges, bytes). For tests (tests/it/readers.rs checks a
    /// steady sample's system calls and ranges); the binary does not ask.
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
        // The prediction holds for the main interpreter alone, while the runtime's list still
        // starts with it; with subinterpreters every sample walks the lists.
        let runtime = self.target.runtime;
        let main_alone = self.interpreters.len() <= 1;
        if known > 0 && known < 61 && main_alone {
            let mut head = [0u8; 8];
            let mut generation = [0u8; 8];
            let mut newest = self.target.interpreter.to_le_bytes();
            self.thread_spans.resize_with(known, Vec::new);
            let mut requests = Vec::with_capacity(known + 3);
            requests.push(ReadRequest {
                address: head_slot,
                buf: &mut head,
            });
            if runtime != 0 {
                requests.push(ReadRequest {
                    address: runtime.wrapping_add(layout.runtime_interpreters_head),
                    buf: &mut newest,
                });
            }
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
                let chain_holds = usize::from_le_bytes(newest) == self.target.interpreter
                    && usize::from_le_bytes(head) == self.threads[0]
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
        self.list_interpreters()?;
        if let Some(offset) = layout.interp_code_object_generation {
            // Each interpreter has its own generation: their sum moves when any one does.
            let mut generation = 0u64;
            for (index, &interp) in self.interpreters.iter().enumerate() {
                match self.target.memory.read_usize(interp.wrapping_add(offset)) {
                    Ok(value) => generation = generation.wrapping_add(value as u64),
                    Err(e) if index == 0 => return Err(e),
                    Err(_) => {}
                }
            }
            self.note_code_generation(generation);
        }
        // Walk each interpreter's list one thread at a time, the main interpreter's first. A
        // subinterpreter's list that cannot be read (it is being destroyed) is left out.
        self.threads.clear();
        let mut seen = std::collections::HashSet::new();
        for index in 0..self.interpreters.len() {
            let slot = self.interpreters[index].wrapping_add(layout.interp_threads_head);
            let mut tstate = match self.target.memory.read_usize(slot) {
                Ok(tstate) => tstate,
                Err(e) if index == 0 => return Err(e),
                Err(_) => continue,
            };
            while tstate != 0 && self.threads.len() < MAX_THREADS && seen.insert(tstate) {
                let at = self.threads.len();
                if self.thread_spans.len() <= at {
                    self.thread_spans.push(Vec::new());
                }
                self.thread_spans[at].resize(span, 0);
                match self.target.memory.read(tstate, &mut self.thread_spans[at]) {
                    Ok(()) => {}
                    Err(e) if index == 0 => return Err(e),
                    Err(_) => break,
                }
                self.threads.push(tstate);
                tstate = read_usize_at(&self.thread_spans[at], layout.tstate_next).unwrap_or(0);
            }
        }
        self.thread_spans.truncate(self.threads.len());
        let threads = &self.threads;
        self.plans.retain(|t, _| threads.contains(t));
        Ok(self.threads.len())
    }

    /// The main interpreter, then the others from the runtime's list (newest first), into
    /// `interpreters`; the main one alone when the runtime is unknown.
    fn list_interpreters(&mut self) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let main = self.target.interpreter;
        self.interpreters.clear();
        self.interpreters.push(main);
        if self.target.runtime == 0 {
            return Ok(());
        }
        let head = self
            .target
            .runtime
            .wrapping_add(layout.runtime_interpreters_head);
        let mut interp = self.target.memory.read_usize(head)?;
        let mut steps = 0;
        while interp != 0 && steps < MAX_INTERPRETERS {
            steps += 1;
            if interp != main && !self.interpreters.contains(&interp) {
                self.interpreters.push(interp);
            }
            match self
                .target
                .memory
                .read_usize(interp.wrapping_add(layout.interp_next))
            {
                Ok(next) => interp = next,
                // A subinterpreter being destroyed: the ones read so far are kept.
                Err(_) => break,
            }
        }
        Ok(())
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
        let frame_slot = layout
            .current_frame
            .slot(tstate, |offset| Some(field(offset).unwrap_or(0)))
            .ok_or(MemoryError::Unmapped(tstate))?;
        let (chunk, mut top, limit) = match &layout.frames {
            Frames::InterpreterFrames(frames) => (
                field(frames.tstate_datastack_chunk).unwrap_or(0),
                field(frames.tstate_datastack_top).unwrap_or(0),
                field(frames.tstate_datastack_limit).unwrap_or(0),
            ),
            Frames::FrameObjects(_) => (0, 0, 0),
        };
        self.identities.clear();
        // Read again: up to the top read with the frame pointer, or with the frames found
        // outside the batch added to it, or when the two copies disagree (frames changing
        // while they were read: the innermost frame cut off). A stack that keeps changing is
        // read at most MAX_ATTEMPTS times; the last pair that was read whole is kept.
        let mut stashed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.cuts.last_reads = attempt;
            self.stack_grew_to = None;
            self.needs_replan = false;
            let read = match layout.frames {
                Frames::InterpreterFrames(frames) => {
                    self.read_interpreter_frames(&frames, tstate, frame_slot, chunk, top, limit)
                }
                Frames::FrameObjects(frames) => {
                    self.read_frame_objects(&frames, tstate, frame_slot)
                }
            };
            match read {
                Ok(()) if self.torn_chain && stashed => {
                    self.restore_stash();
                    break;
                }
                // A 3.8–3.10 chain that met a freed frame is read again from the top: the
                // thread has moved on, and its new stack is as good a sample as the one missed.
                Ok(()) if self.torn_chain && attempt < MAX_ATTEMPTS => {}
                // Every read met a freed frame: nothing of the thread is known.
                Ok(()) if self.torn_chain => return Err(MemoryError::Torn(0)),
                Ok(()) if attempt >= MAX_ATTEMPTS || self.stack_proven() => break,
                Ok(()) => {
                    self.swap_stash();
                    stashed = true;
                }
                // Too costly: reading again would not change that.
                Err(e @ MemoryError::OverBudget { .. }) => return Err(e),
                Err(e) => {
                    let retry = attempt < MAX_ATTEMPTS
                        && match self.stack_grew_to.take() {
                            Some(grown) => {
                                top = grown;
                                true
                            }
                            // Frames that changed while they were read (a frame pointer
                            // past the top read with it): a new pair may be whole.
                            None => self.needs_replan || matches!(e, MemoryError::Torn(_)),
                        };
                    if retry {
                        continue;
                    }
                    if stashed {
                        self.restore_stash();
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(thread_id)
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

    /// Whether a frame of known code has not started: its position is before the code's first
    /// instruction, or before its first traceable one (the prologue, `RETURN_GENERATOR`).
    fn frame_not_started(&self, frame: &RawFrame) -> bool {
        let Some(entry) = self.codes.get(&frame.code) else {
            return false;
        };
        match lookup_offset(self.target.layout.version, frame.position) {
            Some(InstructionOffset::BeforeStart) => true,
            Some(InstructionOffset::At(offset)) => offset < entry.first_traceable_byte,
            None => false,
        }
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
    fn follow_function(&mut self, function: FollowedFunction) -> Result<(), String> {
        self.function = Some(function);
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
            let whole_at_pointer = !self.torn_chain && self.whole_at_frame_pointer(agreed);
            let agreed = if whole_at_pointer { total } else { agreed };
            let mut truncated = !(whole_at_pointer || self.copies_agree()) || self.torn_chain;
            let mut reason = truncated.then(|| self.cut_reason(agreed));
            let frames = std::mem::take(&mut self.frames[1]);
            let kept = &frames[total - agreed..];
            let mut resolved: Vec<FrameRef> = Vec::with_capacity(kept.len());
            // Followed frames (`--function`): their index in `kept` and in `resolved`.
            let mut followed: Vec<(usize, usize)> = Vec::new();
            // No frame but trampolines met yet: this one is the innermost Python frame.
            let mut innermost = true;
            for (index, frame) in kept.iter().enumerate() {
                if self.codes.get(&frame.code).is_some_and(|e| e.trampoline) {
                    continue;
                }
                let this_innermost = std::mem::replace(&mut innermost, false);
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
                    // The innermost frame not started yet (pushed, its first instruction not
                    // run: both copies hold it so, or it would not be kept) is left out, as
                    // CPython's own frame walking does; the stack is whole without it. Any
                    // other innermost frame that cannot be placed is cut off: truncated.
                    None if this_innermost => {
                        if truncated || !self.frame_not_started(frame) {
                            truncated = true;
                            reason.get_or_insert(agreement::CutReason::InnermostUnplaced);
                        }
                    }
                    // A frame in the middle we cannot place: keep only what lies below it.
                    None => {
                        resolved.clear();
                        followed.clear();
                        truncated = true;
                        reason.get_or_insert(agreement::CutReason::MiddleUnplaced);
                    }
                }
            }
            let base = sample.frames.len() as u32;
            for (kept_index, resolved_index) in followed {
                let frame = kept[kept_index];
                if let Some(target) = self.followed_frame(&frame, base + resolved_index as u32) {
                    sample.followed.push(target);
                }
            }
            match reason {
                Some(reason) if truncated => self.cuts.cut(reason, total - agreed),
                _ => self.cuts.whole(),
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
    let iframes = layout.frames.interpreter_frames();
    span_of(&[
        (Some(layout.tstate_next), 8),
        (Some(layout.tstate_thread_id), 8),
        (Some(layout.current_frame.tstate_field()), 8),
        (iframes.map(|f| f.tstate_datastack_chunk), 8),
        (iframes.map(|f| f.tstate_datastack_top), 8),
        (iframes.map(|f| f.tstate_datastack_limit), 8),
    ])
}

/// The part of `_PyInterpreterFrame` the walker reads (3.11+).
fn iframe_span(frames: &InterpreterFrameLayout) -> usize {
    span_of(&[
        (Some(frames.previous), 8),
        (Some(frames.code), 8),
        (Some(frames.instr_ptr), 8),
        (Some(frames.owner), 1),
    ])
}

/// The part of `PyFrameObject` the walker reads (3.8–3.10).
fn frame_object_span(layout: &Layout, frames: &FrameObjectLayout) -> usize {
    span_of(&[
        (Some(layout.object_refcnt), 8),
        (Some(frames.back), 8),
        (Some(frames.code), 8),
        (Some(frames.lasti), 4),
        (Some(frames.gen), 8),
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
