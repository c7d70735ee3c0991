//! The structural variants of CPython's runtime: what differs between versions in kind, not only
//! in offset. Each [`Layout`](super::Layout) holds one value of each, emitted by `generate.py`
//! from the version's own headers, so a consumer matches on the variant instead of guessing the
//! version from which offsets are present.

/// How a thread's innermost frame is found from its `PyThreadState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentFrame {
    /// 3.8–3.10: `PyThreadState.frame` holds the innermost `PyFrameObject *`.
    FrameObject {
        /// `PyThreadState.frame`.
        tstate_frame: usize,
    },
    /// 3.11–3.12: `PyThreadState.cframe` points to a `_PyCFrame` whose `current_frame` is the
    /// innermost `_PyInterpreterFrame *` (two reads).
    ThroughCFrame {
        /// `PyThreadState.cframe`.
        tstate_cframe: usize,
        /// `_PyCFrame.current_frame`, inside the struct `tstate_cframe` points to.
        cframe_current_frame: usize,
    },
    /// 3.13+: `PyThreadState.current_frame` holds the innermost `_PyInterpreterFrame *`.
    InThreadState {
        /// `PyThreadState.current_frame`.
        tstate_current_frame: usize,
    },
}

impl CurrentFrame {
    /// Where the pointer to the innermost frame lives, given the thread state's address and a
    /// reader of one of its pointer fields (`read(offset)`; `None` if unreadable). `None` when
    /// the `_PyCFrame` pointer of 3.11–3.12 cannot be read.
    pub fn slot(self, tstate: usize, read: impl FnOnce(usize) -> Option<usize>) -> Option<usize> {
        match self {
            CurrentFrame::FrameObject { tstate_frame } => Some(tstate.wrapping_add(tstate_frame)),
            CurrentFrame::ThroughCFrame {
                tstate_cframe,
                cframe_current_frame,
            } => read(tstate_cframe).map(|cframe| cframe.wrapping_add(cframe_current_frame)),
            CurrentFrame::InThreadState {
                tstate_current_frame,
            } => Some(tstate.wrapping_add(tstate_current_frame)),
        }
    }

    /// The `PyThreadState` field read first: `frame`, `cframe` or `current_frame`.
    pub fn tstate_field(self) -> usize {
        match self {
            CurrentFrame::FrameObject { tstate_frame } => tstate_frame,
            CurrentFrame::ThroughCFrame { tstate_cframe, .. } => tstate_cframe,
            CurrentFrame::InThreadState {
                tstate_current_frame,
            } => tstate_current_frame,
        }
    }

    /// Whether the frames found this way are `PyFrameObject`s (3.8–3.10) rather than
    /// `_PyInterpreterFrame`s.
    pub fn finds_frame_objects(self) -> bool {
        matches!(self, CurrentFrame::FrameObject { .. })
    }
}

/// What the instruction field of a version's frame holds, and so how it becomes the byte offset
/// `PyCode_Addr2Line` takes (see `linetable::lookup_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameInstruction {
    /// 3.8–3.9 `PyFrameObject.f_lasti`: the byte offset of the last instruction started; -1
    /// before the first.
    LastiBytes,
    /// 3.10 `PyFrameObject.f_lasti`: the same in code units (2 bytes); -1 before the first.
    LastiCodeUnits,
    /// 3.11–3.12 `_PyInterpreterFrame.prev_instr`: the last code unit started (or a code unit of
    /// its inline cache); one code unit before the code before the first instruction.
    PrevInstr,
    /// 3.13+ `_PyInterpreterFrame.instr_ptr`: the instruction executing or about to begin; a
    /// frame not started stands on offset 0.
    InstrPtr,
}

/// The shape of a dict's key table (`PyDictKeysObject`), and where its entries are.
///
/// Field names are those of the structs' members: `dict_keys_*` of `PyDictKeysObject`,
/// `dict_entry_*` of `PyDictKeyEntry`, `dict_unicode_entry_*` of `PyDictUnicodeEntry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictKeyTable {
    /// 3.8–3.10: `dk_size` (`Py_ssize_t`) slots of the index table, each index 1, 2, 4 or 8
    /// bytes as `dk_size` fits in 8, 16, 32 bits or not; every entry a `PyDictKeyEntry`. Not in
    /// the installed headers: generate.py lays out `Objects/dict-common.h`'s declaration,
    /// checked against live interpreters by tests/it/layouts.rs.
    Sized {
        /// `dk_size`.
        dict_keys_size: usize,
        /// `dk_nentries`: entries used, deleted ones included.
        dict_keys_nentries: usize,
        /// `dk_indices`: the index table; the entries follow it.
        dict_keys_indices: usize,
        /// `sizeof(PyDictKeyEntry)`.
        dict_entry_size: usize,
        /// `PyDictKeyEntry.me_key`.
        dict_entry_key: usize,
        /// `PyDictKeyEntry.me_value`: NULL for a deleted entry.
        dict_entry_value: usize,
    },
    /// 3.11+: one-byte `dk_log2_size` and `dk_log2_index_bytes`, and `dk_kind`: general
    /// tables hold `PyDictKeyEntry`s, all-`str` ones (unicode or split) `PyDictUnicodeEntry`s.
    Log2 {
        /// `dk_log2_size`.
        dict_keys_log2_size: usize,
        /// `dk_log2_index_bytes`.
        dict_keys_log2_index_bytes: usize,
        /// `dk_kind`.
        dict_keys_kind: usize,
        /// `dk_nentries`.
        dict_keys_nentries: usize,
        /// `dk_indices`.
        dict_keys_indices: usize,
        /// `sizeof(PyDictKeyEntry)`.
        dict_entry_size: usize,
        /// `PyDictKeyEntry.me_key`.
        dict_entry_key: usize,
        /// `PyDictKeyEntry.me_value`.
        dict_entry_value: usize,
        /// `sizeof(PyDictUnicodeEntry)`.
        dict_unicode_entry_size: usize,
        /// `PyDictUnicodeEntry.me_key`.
        dict_unicode_entry_key: usize,
        /// `PyDictUnicodeEntry.me_value`.
        dict_unicode_entry_value: usize,
        /// `DICT_KEYS_GENERAL`: the `dk_kind` of a table of `PyDictKeyEntry`s.
        dict_kind_general: usize,
    },
}

/// What a version's frames are, and where their fields and the thread's data stack are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    /// 3.8–3.10: each frame is a heap `PyFrameObject`, linked to its caller by `f_back`.
    FrameObjects(FrameObjectLayout),
    /// 3.11+: frames are `_PyInterpreterFrame`s, most of them in the thread's data-stack
    /// chunks, linked to the caller by `previous`, each with an owner.
    InterpreterFrames(InterpreterFrameLayout),
}

impl Frames {
    /// The `PyFrameObject` fields, on 3.8–3.10.
    pub fn frame_objects(&self) -> Option<&FrameObjectLayout> {
        match self {
            Frames::FrameObjects(frames) => Some(frames),
            Frames::InterpreterFrames(_) => None,
        }
    }

    /// The `_PyInterpreterFrame` and data-stack fields, on 3.11+.
    pub fn interpreter_frames(&self) -> Option<&InterpreterFrameLayout> {
        match self {
            Frames::InterpreterFrames(frames) => Some(frames),
            Frames::FrameObjects(_) => None,
        }
    }

    /// Where a frame's caller, code, instruction field and locals are, in either kind:
    /// (`f_back` or `previous`, `f_code` or the code field, `f_lasti` or the instruction
    /// pointer, `f_localsplus` or `localsplus`).
    pub fn common(&self) -> FrameFields {
        match self {
            Frames::FrameObjects(f) => FrameFields {
                caller: f.back,
                code: f.code,
                instruction: f.lasti,
                localsplus: f.localsplus,
            },
            Frames::InterpreterFrames(f) => FrameFields {
                caller: f.previous,
                code: f.code,
                instruction: f.instr_ptr,
                localsplus: f.localsplus,
            },
        }
    }
}

/// The fields every kind of frame has, as offsets in the frame ([`Frames::common`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFields {
    /// The caller's frame pointer.
    pub caller: usize,
    /// The code pointer (on 3.14 a tagged `_PyStackRef`: mask it).
    pub code: usize,
    /// The instruction field ([`FrameInstruction`] says what it holds).
    pub instruction: usize,
    /// The locals, then the value stack.
    pub localsplus: usize,
}

/// `PyFrameObject`, the frame of 3.8–3.10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameObjectLayout {
    /// `sizeof(PyFrameObject)`, counting one slot of the variable `f_localsplus`.
    pub size: usize,
    /// `f_back`: the caller's frame.
    pub back: usize,
    /// `f_code`.
    pub code: usize,
    /// `f_lasti` (`int`): bytes in 3.8–3.9, code units in 3.10.
    pub lasti: usize,
    /// `f_lineno` (`int`): valid only while tracing.
    pub lineno: usize,
    /// `f_gen`: the generator or coroutine that owns the frame, or 0 for a function's frame.
    pub gen: usize,
    /// `f_localsplus`: locals, cells, free variables, value stack.
    pub localsplus: usize,
}

/// `_PyInterpreterFrame` and the data stack it lives on (3.11+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterpreterFrameLayout {
    /// `PyThreadState.datastack_chunk`: the newest `_PyStackChunk *`, where frames live.
    pub tstate_datastack_chunk: usize,
    /// `PyThreadState.datastack_top`: first free slot of the newest chunk.
    pub tstate_datastack_top: usize,
    /// `PyThreadState.datastack_limit`: end of the newest chunk.
    pub tstate_datastack_limit: usize,
    /// `_PyStackChunk.previous`: the older chunk.
    pub stack_chunk_previous: usize,
    /// `_PyStackChunk.size`: the chunk's size in bytes, header included.
    pub stack_chunk_size: usize,
    /// `_PyStackChunk.top`: slots in use in an older chunk (the newest one's top is
    /// `datastack_top`).
    pub stack_chunk_top: usize,
    /// `_PyStackChunk.data`: the first slot.
    pub stack_chunk_data: usize,
    /// `sizeof(_PyInterpreterFrame)`, counting one slot of the variable `localsplus`.
    pub size: usize,
    /// `previous`: the caller's frame.
    pub previous: usize,
    /// The frame's code: `f_code` in 3.11–3.12, `f_executable` in 3.13+ (a code object, or
    /// something else for shim frames: check its type). Mask it with
    /// `Layout::iframe_code_tag_mask` before use.
    pub code: usize,
    /// The instruction pointer: `prev_instr` in 3.11–3.12, `instr_ptr` 3.13+.
    pub instr_ptr: usize,
    /// `owner` (one byte): one of the `owned_by_` values or `FRAME_OWNED_BY_THREAD` (0).
    pub owner: usize,
    /// `localsplus`: the locals, then the value stack.
    pub localsplus: usize,
    /// `FRAME_OWNED_BY_GENERATOR`: such a frame lives in its generator.
    pub owned_by_generator: u8,
    /// `FRAME_OWNED_BY_CSTACK` (3.12–3.14): a shim frame pushed by C code, holding no Python
    /// code; a walker skips it.
    pub owned_by_cstack: Option<u8>,
    /// `FRAME_OWNED_BY_INTERPRETER` (3.14+): another frame of the interpreter's own, with no
    /// Python code; a walker skips it.
    pub owned_by_interpreter: Option<u8>,
}
