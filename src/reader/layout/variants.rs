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
