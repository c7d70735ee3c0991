//! Where CPython keeps what a frame walker reads, per version, as data.
//!
//! A [`Layout`] holds the offsets and sizes of the fields of CPython's runtime, interpreter,
//! thread, frame, code and object structures that a stack reader needs. The layouts of 3.8–3.14
//! are measured from each version's own headers by `generate.py` (in this directory) and
//! committed as `generated.rs`; nothing here is copied by hand from a header. From 3.13 on,
//! a running interpreter also describes itself: [`debug_offsets`] builds a `Layout` from the
//! `_Py_DebugOffsets` at the start of its `_PyRuntime`.
//!
//! All offsets are in bytes from the start of the named structure, for 64-bit Linux release
//! builds with the GIL (the default build). Pointers and `Py_ssize_t` are 8 bytes. The table is
//! measured on x86_64; aarch64 Linux has the same values for these structs (same LP64 model and
//! alignment rules), and `generate.py` explains how to measure another target.
//!
//! Version notes a walker must apply, which are properties of the version rather than offsets:
//! - 3.8–3.9 `co_lnotab` and 3.10 `co_linetable` are the old line-number tables (3.10's in its
//!   own format); 3.11+ `co_linetable` is the location table.
//! - `PyFrameObject.f_lasti` counts bytes in 3.8–3.9 and code units (2 bytes) in 3.10.
//! - The instruction pointer of a `_PyInterpreterFrame` is `prev_instr` in 3.11–3.12 (the last
//!   instruction started) and `instr_ptr` in 3.13+ (the instruction executing or about to).
//! - 3.14's `f_executable` is a tagged `_PyStackRef` ([`Layout::iframe_code_tag_mask`]), its
//!   frames owned by the interpreter itself hold no Python code, and the interpreter counts
//!   code-object generations ([`Layout::interp_code_object_generation`]).
//! - Code units are 2 bytes in every version here.

use crate::reader::PyVersion;

pub mod debug_offsets;
mod generated;

pub use generated::{DEBUG_OFFSETS_LAYOUTS, LAYOUTS};

/// A bitfield inside an integer: `(word >> shift) & ((1 << width) - 1)`.
///
/// Positions are of the native-endian unsigned integer read from the field's offset, so they
/// hold on either byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitfield {
    /// Position of the lowest bit.
    pub shift: u8,
    /// Number of bits.
    pub width: u8,
}

impl Bitfield {
    /// This field's value inside `word`.
    pub fn extract(self, word: u32) -> u32 {
        let mask = if self.width >= 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        };
        word.checked_shr(u32::from(self.shift)).unwrap_or(0) & mask
    }
}

/// Offsets (bytes) and sizes of the CPython fields a frame walker reads, for one version.
///
/// `Option` fields are `None` in versions where the field does not exist. Field names follow
/// the structure they belong to: `runtime_` (`_PyRuntimeState`), `interp_`
/// (`PyInterpreterState`), `tstate_` (`PyThreadState`), `cframe_` (`_PyCFrame`), `stack_chunk_`
/// (`_PyStackChunk`), `frame_object_` (`PyFrameObject`, the frame up to 3.10), `iframe_`
/// (`_PyInterpreterFrame`, the frame from 3.11), `code_` (`PyCodeObject`), `unicode_`
/// (`PyASCIIObject` and `PyCompactUnicodeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The CPython version this layout describes.
    pub version: PyVersion,
    /// A free-threaded build (`--disable-gil`, 3.13+): its object header is larger, so nearly
    /// every offset differs from the same version's build with the GIL.
    pub free_threaded: bool,

    /// `sizeof(_PyRuntimeState)`.
    pub runtime_size: usize,
    /// `_PyRuntimeState.interpreters.head`: the newest interpreter, head of the list.
    pub runtime_interpreters_head: usize,
    /// `_PyRuntimeState.interpreters.main`: the main interpreter.
    pub runtime_interpreters_main: usize,
    /// `_PyRuntimeState._finalizing` (`finalizing` in 3.8): the finalizing thread state, set
    /// by `Py_FinalizeEx` after atexit and before modules are cleared.
    pub runtime_finalizing: usize,

    /// `sizeof(PyInterpreterState)`.
    pub interp_size: usize,
    /// `PyInterpreterState.next`: the next (older) interpreter.
    pub interp_next: usize,
    /// Head of the interpreter's thread list: `tstate_head` up to 3.10, `threads.head` 3.11+.
    pub interp_threads_head: usize,
    /// `PyInterpreterState.id` (`int64_t`).
    pub interp_id: usize,
    /// `PyInterpreterState._code_object_generation` (`uint64_t`, 3.14+): changes when code
    /// objects may have been freed, so caches keyed by code address must be dropped.
    pub interp_code_object_generation: Option<usize>,

    /// `sizeof(PyThreadState)`.
    pub tstate_size: usize,
    /// `PyThreadState.next`: the next thread of the same interpreter.
    pub tstate_next: usize,
    /// `PyThreadState.interp`: the thread's interpreter.
    pub tstate_interp: usize,
    /// `PyThreadState.thread_id` (`unsigned long`, the `pthread_t`).
    pub tstate_thread_id: usize,
    /// `PyThreadState.native_thread_id` (`unsigned long`, the kernel's tid; 3.11+).
    pub tstate_native_thread_id: Option<usize>,
    /// `PyThreadState.frame` (3.8–3.10): the innermost `PyFrameObject *`.
    pub tstate_frame: Option<usize>,
    /// `PyThreadState.cframe` (3.11–3.12): a `_PyCFrame *`; its `current_frame` (at
    /// [`Layout::cframe_current_frame`]) is the innermost `_PyInterpreterFrame *`.
    pub tstate_cframe: Option<usize>,
    /// `_PyCFrame.current_frame` (3.11–3.12), inside the struct `tstate_cframe` points to.
    pub cframe_current_frame: Option<usize>,
    /// `PyThreadState.current_frame` (3.13+): the innermost `_PyInterpreterFrame *`.
    pub tstate_current_frame: Option<usize>,
    /// `PyThreadState.datastack_chunk` (3.11+): the newest `_PyStackChunk *`, where frames live.
    pub tstate_datastack_chunk: Option<usize>,
    /// `PyThreadState.datastack_top` (3.11+): first free slot of the newest chunk.
    pub tstate_datastack_top: Option<usize>,
    /// `PyThreadState.datastack_limit` (3.11+): end of the newest chunk.
    pub tstate_datastack_limit: Option<usize>,

    /// `_PyStackChunk.previous` (3.11+): the older chunk.
    pub stack_chunk_previous: Option<usize>,
    /// `_PyStackChunk.size` (3.11+): the chunk's size in bytes, header included.
    pub stack_chunk_size: Option<usize>,
    /// `_PyStackChunk.top` (3.11+): slots in use in an older chunk (the newest one's top is
    /// `datastack_top`).
    pub stack_chunk_top: Option<usize>,
    /// `_PyStackChunk.data` (3.11+): the first slot.
    pub stack_chunk_data: Option<usize>,

    /// `sizeof(PyFrameObject)` (3.8–3.10), counting one slot of the variable `f_localsplus`.
    pub frame_object_size: Option<usize>,
    /// `PyFrameObject.f_back` (3.8–3.10): the caller's frame.
    pub frame_object_back: Option<usize>,
    /// `PyFrameObject.f_code` (3.8–3.10).
    pub frame_object_code: Option<usize>,
    /// `PyFrameObject.f_lasti` (3.8–3.10, `int`): bytes in 3.8–3.9, code units in 3.10.
    pub frame_object_lasti: Option<usize>,
    /// `PyFrameObject.f_lineno` (3.8–3.10, `int`): valid only while tracing.
    pub frame_object_lineno: Option<usize>,
    /// `PyFrameObject.f_gen` (3.8–3.10): the generator or coroutine that owns the frame, or 0
    /// for a function's frame.
    pub frame_object_gen: Option<usize>,

    /// `sizeof(_PyInterpreterFrame)` (3.11+), counting one slot of the variable `localsplus`.
    pub iframe_size: Option<usize>,
    /// `_PyInterpreterFrame.previous` (3.11+): the caller's frame.
    pub iframe_previous: Option<usize>,
    /// The frame's code (3.11+): `f_code` in 3.11–3.12, `f_executable` in 3.13+ (a code
    /// object, or something else for shim frames: check its type). Mask it with
    /// [`Layout::iframe_code_tag_mask`] before use.
    pub iframe_code: Option<usize>,
    /// The frame's instruction pointer (3.11+): `prev_instr` in 3.11–3.12, `instr_ptr` 3.13+.
    pub iframe_instr_ptr: Option<usize>,
    /// `_PyInterpreterFrame.owner` (3.11+, one byte): see the `frame_owned_by_` values.
    pub iframe_owner: Option<usize>,
    /// `_PyInterpreterFrame.localsplus` (3.11+): the locals, then the value stack.
    pub iframe_localsplus: Option<usize>,
    /// Tag bits to clear from the code pointer read at `iframe_code`: 0 up to 3.13 (a plain
    /// `PyObject *`); 3.14's `_PyStackRef` keeps tags in the low bits.
    pub iframe_code_tag_mask: usize,
    /// Owner value `FRAME_OWNED_BY_GENERATOR` (3.11+): such a frame lives in its generator.
    pub frame_owned_by_generator: Option<u8>,
    /// Owner value `FRAME_OWNED_BY_CSTACK` (3.12+): a shim frame pushed by C code, holding no
    /// Python code; a walker skips it.
    pub frame_owned_by_cstack: Option<u8>,
    /// Owner value `FRAME_OWNED_BY_INTERPRETER` (3.14+): another frame of the interpreter's
    /// own, with no Python code; a walker skips it.
    pub frame_owned_by_interpreter: Option<u8>,

    /// `sizeof(PyCodeObject)`: from 3.11 the bytecode follows inline, at `code_code_adaptive`.
    pub code_size: usize,
    /// `PyCodeObject.co_filename` (str).
    pub code_filename: usize,
    /// `PyCodeObject.co_name` (str).
    pub code_name: usize,
    /// `PyCodeObject.co_qualname` (str, 3.11+).
    pub code_qualname: Option<usize>,
    /// `PyCodeObject.co_firstlineno` (`int`).
    pub code_firstlineno: usize,
    /// `PyCodeObject.co_lnotab` (bytes, 3.8–3.9).
    pub code_lnotab: Option<usize>,
    /// `PyCodeObject.co_linetable` (bytes, 3.10+; 3.10's format differs from 3.11+'s).
    pub code_linetable: Option<usize>,
    /// `PyCodeObject.co_code` (bytes object, 3.8–3.10).
    pub code_code: Option<usize>,
    /// `PyCodeObject.co_code_adaptive` (3.11+): the bytecode itself, inline in the object.
    pub code_code_adaptive: Option<usize>,
    /// `PyCodeObject._co_firsttraceable` (`int`, 3.11+): index in code units of the first
    /// instruction after the prologue; a frame before it has not started.
    pub code_firsttraceable: Option<usize>,
    /// `PyCodeObject.co_flags` (`int`).
    pub code_flags: usize,
    /// `CO_NO_MONITORING_EVENTS` (3.13+), the `co_flags` bit of the interpreter's trampoline
    /// code: `_Py_InitCleanup`, pushed in a thread-owned frame between the caller of a class
    /// and its `__init__` (`CALL_ALLOC_AND_ENTER_INIT`). Such a frame is not reported and does
    /// not cut the stack.
    pub code_flag_no_monitoring_events: Option<usize>,
    /// `PyCodeObject.co_argcount` (`int`).
    pub code_argcount: usize,
    /// `PyCodeObject.co_nlocals` (`int`).
    pub code_nlocals: usize,
    /// `PyCodeObject.co_nlocalsplus` (`int`, 3.11+): locals, cells and free variables.
    pub code_nlocalsplus: Option<usize>,
    /// `PyCodeObject.co_varnames` (tuple of str, 3.8–3.10).
    pub code_varnames: Option<usize>,
    /// `PyCodeObject.co_localsplusnames` (tuple of str, 3.11+).
    pub code_localsplusnames: Option<usize>,
    /// `PyCodeObject.co_localspluskinds` (bytes, 3.11+): the kind of each `localsplus` slot.
    pub code_localspluskinds: Option<usize>,

    /// `PyObject.ob_type`.
    pub object_type: usize,
    /// `PyVarObject.ob_size`: item count of tuples, byte count of bytes.
    pub var_object_size: usize,
    /// `PyTypeObject.tp_name` (`const char *`).
    pub type_name: usize,
    /// `PyBytesObject.ob_sval`: the bytes, inline.
    pub bytes_sval: usize,
    /// `PyTupleObject.ob_item`: the item pointers, inline.
    pub tuple_items: usize,

    /// `sizeof(PyASCIIObject)`: a compact ASCII string's characters follow it.
    pub unicode_ascii_size: usize,
    /// `sizeof(PyCompactUnicodeObject)`: a compact non-ASCII string's characters follow it.
    pub unicode_compact_size: usize,
    /// `PyASCIIObject.length`: characters (not bytes).
    pub unicode_length: usize,
    /// `PyASCIIObject.state`: the word holding the bitfields below.
    pub unicode_state: usize,
    /// `sizeof(PyASCIIObject.state)`: 4 (an `unsigned int` word) in every version here.
    pub unicode_state_size: usize,
    /// `state.kind`: bytes per character (1, 2 or 4).
    pub unicode_kind: Bitfield,
    /// `state.compact`: characters follow the object header.
    pub unicode_compact: Bitfield,
    /// `state.ascii`: all characters are ASCII (then the header is a `PyASCIIObject`).
    pub unicode_ascii: Bitfield,
    /// `state.ready` (3.8–3.11): the canonical representation exists.
    pub unicode_ready: Option<Bitfield>,

    // ---- snapshot (src/snapshot/): from sys.modules to every live code object, 3.11+ ----
    /// `PyInterpreterState.imports.modules` (3.12+; `modules` on 3.11): the
    /// `sys.modules` dict.
    pub interp_imports_modules: Option<usize>,
    /// `PyObject.ob_refcnt`; in a free-threaded build, which has none, `ob_ref_shared` (the
    /// count of references from other threads: 0 for many live objects, so no liveness test
    /// may rest on it there).
    pub object_refcnt: usize,
    /// `sizeof(PyObject)`: where the first member of a fixed object follows its header
    /// (`staticmethod`/`classmethod`'s callable, `property`'s getter).
    pub object_head_size: usize,
    /// `PyTypeObject.tp_dict`: a class's namespace (NULL for static builtin types on 3.12+).
    pub type_dict: usize,
    /// `Py_TPFLAGS_TYPE_SUBCLASS` (3.11+): set on `type` and every metaclass.
    pub tpflags_type_subclass: Option<usize>,
    /// `Py_TPFLAGS_DICT_SUBCLASS` (3.11+): set on `dict` and its subclasses.
    pub tpflags_dict_subclass: Option<usize>,
    /// `PyModuleObject.md_dict` (3.11+).
    pub module_dict: Option<usize>,
    /// `PyFunctionObject.func_code` (3.11+).
    pub function_code: Option<usize>,
    /// `PyFunctionObject.func_closure` (3.11+): a tuple of cells, or NULL.
    pub function_closure: Option<usize>,
    /// `PyCodeObject.co_consts` (tuple, 3.11+): nested code objects live here.
    pub code_consts: Option<usize>,
    /// `PyCodeObject.co_exceptiontable` (bytes, 3.11+).
    pub code_exceptiontable: Option<usize>,
    /// `PyCodeObject.co_warmup` (3.11): quickening's warmup counter, -8 when the code is made,
    /// counting up to 0 at each `RESUME` and `JUMP_BACKWARD` it executes (the code is quickened
    /// at 0 and the counter stays there).
    pub code_warmup: Option<usize>,
    /// `-QUICKENING_INITIAL_WARMUP_VALUE` (3.11): minus the value `co_warmup` starts from.
    pub code_warmup_start: Option<usize>,
    // ---- end of snapshot fields (it also reads `type_flags` and the dict fields below) ----
    // --- Function view (`--function --locals`): a frame's locals and the values they hold. ---
    /// `PyFrameObject.f_localsplus` (3.8–3.10): locals, cells, free variables, value stack.
    pub frame_object_localsplus: Option<usize>,
    /// `PyCodeObject.co_cellvars` (tuple of str, 3.8–3.10).
    pub code_cellvars: Option<usize>,
    /// `PyCodeObject.co_freevars` (tuple of str, 3.8–3.10).
    pub code_freevars: Option<usize>,
    /// `PyTypeObject.tp_flags` (`unsigned long`): `Py_TPFLAGS_HEAPTYPE` tells a class made at
    /// run time (whose name anyone can choose) from a built-in type.
    pub type_flags: usize,
    /// `PyCellObject.ob_ref`: the cell's content.
    pub cell_ref: usize,
    /// `PyListObject.ob_item`: pointer to the item pointers.
    pub list_items: usize,
    /// `PyFloatObject.ob_fval` (a C double).
    pub float_value: usize,
    /// `PyLongObject`'s digits: `ob_digit` up to 3.11, `long_value.ob_digit` 3.12+.
    pub long_digits: usize,
    /// `PyLongObject.long_value.lv_tag` (3.12+): digit count << 3 | sign bits. Up to 3.11 the
    /// signed digit count is `ob_size`.
    pub long_tag: Option<usize>,
    /// `PyLong_SHIFT`: bits per digit.
    pub long_digit_bits: usize,
    /// `sizeof(digit)`.
    pub long_digit_size: usize,
    /// `PyDictObject.ma_used`: items in the dict.
    pub dict_used: usize,
    /// `PyDictObject.ma_keys`.
    pub dict_keys: usize,
    /// `PyDictObject.ma_values`: non-NULL for a split table.
    pub dict_values: usize,
    /// `PyDictKeysObject.dk_size` (3.8–3.10, `Py_ssize_t`): slots of the index table, a power
    /// of two; each index is 1, 2, 4 or 8 bytes as it fits in 8, 16, 32 bits or not. 3.11+
    /// keep the log2 instead ([`Layout::dict_keys_log2_size`]). The struct is not in the
    /// installed headers of 3.8–3.10: generate.py lays out a declaration of it from
    /// `Objects/dict-common.h`, checked against live interpreters by tests/it/layouts.rs.
    pub dict_keys_size: Option<usize>,
    /// `PyDictKeysObject.dk_log2_size` (3.11+, one byte).
    pub dict_keys_log2_size: Option<usize>,
    /// `PyDictKeysObject.dk_log2_index_bytes` (3.11+, one byte).
    pub dict_keys_log2_index_bytes: Option<usize>,
    /// `PyDictKeysObject.dk_kind` (3.11+, one byte).
    pub dict_keys_kind: Option<usize>,
    /// `PyDictKeysObject.dk_nentries`: entries used, deleted ones included.
    pub dict_keys_nentries: Option<usize>,
    /// `PyDictKeysObject.dk_indices`: the index table; the entries follow it.
    pub dict_keys_indices: Option<usize>,
    /// `sizeof(PyDictKeyEntry)`: the entry of every dict before 3.11, of a general (not
    /// all-`str` keys) dict from 3.11.
    pub dict_entry_size: Option<usize>,
    /// `PyDictKeyEntry.me_key`.
    pub dict_entry_key: Option<usize>,
    /// `PyDictKeyEntry.me_value`: NULL for a deleted entry.
    pub dict_entry_value: Option<usize>,
    /// `sizeof(PyDictUnicodeEntry)` (3.11+).
    pub dict_unicode_entry_size: Option<usize>,
    /// `PyDictUnicodeEntry.me_key` (3.11+).
    pub dict_unicode_entry_key: Option<usize>,
    /// `PyDictUnicodeEntry.me_value` (3.11+).
    pub dict_unicode_entry_value: Option<usize>,
    /// `DICT_KEYS_GENERAL` (3.11+): a `dk_kind` whose entries are `PyDictKeyEntry`.
    pub dict_kind_general: Option<u8>,
    /// `CO_FAST_CELL` (3.11+): a `co_localspluskinds` bit, the slot holds a cell (once made).
    pub code_fast_cell: Option<u8>,
    /// `CO_FAST_FREE` (3.11+): the slot holds a free variable's cell.
    pub code_fast_free: Option<u8>,
    /// `CO_FAST_HIDDEN` (3.12+): an inlined comprehension's variable, not a local of its own.
    pub code_fast_hidden: Option<u8>,
    /// `Py_INT_TAG` (3.14+): a `_PyStackRef` (a `localsplus` slot) whose tag bits
    /// ([`Layout::iframe_code_tag_mask`]) equal this holds a tagged int, not an object; other
    /// tags (`Py_TAG_REFCNT`: a borrowed or immortal reference) are masked off the pointer.
    pub stackref_int_tag: Option<usize>,
    // --- end of the function view's block ---
}

/// The generated layout of CPython `version` (major, minor) built with the GIL, if there is
/// one.
pub fn layout_for(version: PyVersion) -> Option<&'static Layout> {
    layout_for_build(version, false)
}

/// The generated layout of CPython `version`, free-threaded or not, if there is one.
pub fn layout_for_build(version: PyVersion, free_threaded: bool) -> Option<&'static Layout> {
    LAYOUTS
        .iter()
        .find(|layout| layout.version == version && layout.free_threaded == free_threaded)
}

/// The oldest version with a layout.
pub fn first_version() -> PyVersion {
    LAYOUTS[0].version
}

/// The newest version with a layout: a newer one is refused.
pub fn newest_version() -> PyVersion {
    LAYOUTS[LAYOUTS.len() - 1].version
}

/// Largest struct size or offset taken as plausible: far above any real one (3.13's
/// `_PyRuntimeState` is about 280 KiB), far below what garbage usually reads as.
pub const MAX_PLAUSIBLE_OFFSET: usize = 16 << 20;

impl Layout {
    /// Check that every offset lies inside its structure, variable-length tails come last,
    /// and that fields the version must have are present. The generated table passes; a
    /// layout built from another process's debug offsets must pass before it is used.
    pub fn check_plausible(&self) -> Result<(), String> {
        let version = self.version;
        let minor = version.minor;
        if version.major != 3 || minor < 8 {
            return Err(format!("unsupported version {version}"));
        }
        let sizes = [
            ("runtime_size", self.runtime_size),
            ("interp_size", self.interp_size),
            ("tstate_size", self.tstate_size),
            ("code_size", self.code_size),
            ("unicode_ascii_size", self.unicode_ascii_size),
            ("unicode_compact_size", self.unicode_compact_size),
        ];
        for (name, size) in sizes {
            if size == 0 || size > MAX_PLAUSIBLE_OFFSET {
                return Err(format!("{name} {size} is implausible"));
            }
        }

        let mut checks = Checks::default();
        checks.inside(
            "_PyRuntimeState",
            self.runtime_size,
            &[
                ("interpreters.head", Some(self.runtime_interpreters_head), 8),
                ("interpreters.main", Some(self.runtime_interpreters_main), 8),
            ],
        );
        checks.inside(
            "PyInterpreterState",
            self.interp_size,
            &[
                ("next", Some(self.interp_next), 8),
                ("threads.head", Some(self.interp_threads_head), 8),
                ("id", Some(self.interp_id), 8),
                (
                    "_code_object_generation",
                    self.interp_code_object_generation,
                    8,
                ),
            ],
        );
        checks.inside(
            "PyThreadState",
            self.tstate_size,
            &[
                ("next", Some(self.tstate_next), 8),
                ("interp", Some(self.tstate_interp), 8),
                ("thread_id", Some(self.tstate_thread_id), 8),
                ("native_thread_id", self.tstate_native_thread_id, 8),
                ("frame", self.tstate_frame, 8),
                ("cframe", self.tstate_cframe, 8),
                ("current_frame", self.tstate_current_frame, 8),
                ("datastack_chunk", self.tstate_datastack_chunk, 8),
                ("datastack_top", self.tstate_datastack_top, 8),
                ("datastack_limit", self.tstate_datastack_limit, 8),
            ],
        );
        checks.inside(
            "PyCodeObject",
            self.code_size,
            &[
                ("co_filename", Some(self.code_filename), 8),
                ("co_name", Some(self.code_name), 8),
                ("co_qualname", self.code_qualname, 8),
                ("co_firstlineno", Some(self.code_firstlineno), 4),
                ("co_lnotab", self.code_lnotab, 8),
                ("co_linetable", self.code_linetable, 8),
                ("co_code", self.code_code, 8),
                ("_co_firsttraceable", self.code_firsttraceable, 4),
                ("co_flags", Some(self.code_flags), 4),
                ("co_argcount", Some(self.code_argcount), 4),
                ("co_nlocals", Some(self.code_nlocals), 4),
                ("co_nlocalsplus", self.code_nlocalsplus, 4),
                ("co_varnames", self.code_varnames, 8),
                ("co_localsplusnames", self.code_localsplusnames, 8),
                ("co_localspluskinds", self.code_localspluskinds, 8),
            ],
        );
        // co_code_adaptive is a flexible array ending the object.
        checks.tail("PyCodeObject", self.code_size, self.code_code_adaptive);
        checks.inside(
            "PyASCIIObject",
            self.unicode_ascii_size,
            &[
                ("ob_type", Some(self.object_type), 8),
                ("length", Some(self.unicode_length), 8),
                ("state", Some(self.unicode_state), self.unicode_state_size),
            ],
        );
        checks.ordered(
            "PyASCIIObject",
            &[
                ("ob_type", self.object_type),
                ("length", self.unicode_length),
                ("state", self.unicode_state),
            ],
        );
        if self.unicode_compact_size <= self.unicode_ascii_size {
            checks.fail("PyCompactUnicodeObject must extend PyASCIIObject".to_owned());
        }
        checks.ordered(
            "PyVarObject",
            &[
                ("ob_type", self.object_type),
                ("ob_size", self.var_object_size),
                ("tuple ob_item", self.tuple_items),
            ],
        );
        if self.bytes_sval <= self.var_object_size || self.type_name <= self.var_object_size {
            checks.fail("bytes ob_sval and tp_name must follow ob_size".to_owned());
        }
        if self.unicode_state_size != 4 {
            checks.fail(format!(
                "unicode state is {} bytes, expected a 4-byte word",
                self.unicode_state_size
            ));
        }
        for (name, bits) in [
            ("kind", Some(self.unicode_kind)),
            ("compact", Some(self.unicode_compact)),
            ("ascii", Some(self.unicode_ascii)),
            ("ready", self.unicode_ready),
        ] {
            if let Some(bits) = bits {
                if bits.width == 0 || u32::from(bits.shift) + u32::from(bits.width) > 32 {
                    checks.fail(format!("unicode state.{name} {bits:?} outside its word"));
                }
            }
        }

        if minor <= 10 {
            checks.require(
                "3.8-3.10 frame",
                &[
                    ("tstate frame", self.tstate_frame),
                    ("f_back", self.frame_object_back),
                    ("f_code", self.frame_object_code),
                    ("f_lasti", self.frame_object_lasti),
                    ("co_code", self.code_code),
                    ("co_varnames", self.code_varnames),
                ],
            );
            checks.inside(
                "PyFrameObject",
                self.frame_object_size.unwrap_or(0),
                &[
                    ("f_back", self.frame_object_back, 8),
                    ("f_code", self.frame_object_code, 8),
                    ("f_lasti", self.frame_object_lasti, 4),
                    ("f_lineno", self.frame_object_lineno, 4),
                ],
            );
        } else {
            let current_frame = if self.tstate_current_frame.is_some() {
                self.tstate_current_frame
            } else {
                self.tstate_cframe.and(self.cframe_current_frame)
            };
            checks.require(
                "3.11+ frame",
                &[
                    ("current frame", current_frame),
                    ("previous", self.iframe_previous),
                    ("code", self.iframe_code),
                    ("instruction pointer", self.iframe_instr_ptr),
                    ("owner", self.iframe_owner),
                    ("localsplus", self.iframe_localsplus),
                    ("co_code_adaptive", self.code_code_adaptive),
                    ("co_qualname", self.code_qualname),
                    ("co_linetable", self.code_linetable),
                ],
            );
            let frame_size = self.iframe_size.unwrap_or(0);
            checks.inside(
                "_PyInterpreterFrame",
                frame_size,
                &[
                    ("previous", self.iframe_previous, 8),
                    ("code", self.iframe_code, 8),
                    ("instruction pointer", self.iframe_instr_ptr, 8),
                    ("owner", self.iframe_owner, 1),
                ],
            );
            checks.tail("_PyInterpreterFrame", frame_size, self.iframe_localsplus);
            if let Some(localsplus) = self.iframe_localsplus {
                for (name, offset) in [
                    ("previous", self.iframe_previous),
                    ("code", self.iframe_code),
                    ("instruction pointer", self.iframe_instr_ptr),
                    ("owner", self.iframe_owner),
                ] {
                    if offset.is_some_and(|offset| offset >= localsplus) {
                        checks.fail(format!("_PyInterpreterFrame {name} after localsplus"));
                    }
                }
            }
            checks.require(
                "3.11+ data stack",
                &[
                    ("datastack_chunk", self.tstate_datastack_chunk),
                    ("_PyStackChunk.previous", self.stack_chunk_previous),
                    ("_PyStackChunk.size", self.stack_chunk_size),
                    ("_PyStackChunk.top", self.stack_chunk_top),
                    ("_PyStackChunk.data", self.stack_chunk_data),
                ],
            );
            checks.ordered(
                "_PyStackChunk",
                &[
                    ("previous", self.stack_chunk_previous.unwrap_or(0)),
                    ("size", self.stack_chunk_size.unwrap_or(0)),
                    ("top", self.stack_chunk_top.unwrap_or(0)),
                    ("data", self.stack_chunk_data.unwrap_or(0)),
                ],
            );
        }
        checks.result()
    }
}

/// Collects the first failure of [`Layout::check_plausible`].
#[derive(Default)]
struct Checks {
    failure: Option<String>,
}

impl Checks {
    fn fail(&mut self, message: String) {
        self.failure.get_or_insert(message);
    }

    /// Each present field of `width` bytes lies inside a structure of `size` bytes.
    fn inside(&mut self, structure: &str, size: usize, fields: &[(&str, Option<usize>, usize)]) {
        for &(name, offset, width) in fields {
            if let Some(offset) = offset {
                if offset.checked_add(width).is_none_or(|end| end > size) {
                    self.fail(format!(
                        "{structure}.{name} at {offset} (+{width}) is outside its {size} bytes"
                    ));
                }
            }
        }
    }

    /// A flexible array member, if present, starts inside or at the end of the structure.
    fn tail(&mut self, structure: &str, size: usize, offset: Option<usize>) {
        if offset.is_some_and(|offset| offset > size) {
            self.fail(format!("{structure}'s variable part starts past its end"));
        }
    }

    /// Fields that must appear in this order, each strictly after the one before.
    fn ordered(&mut self, structure: &str, fields: &[(&str, usize)]) {
        for pair in fields.windows(2) {
            if let [(before, first), (after, second)] = pair {
                if first >= second {
                    self.fail(format!("{structure}.{after} must come after .{before}"));
                }
            }
        }
    }

    /// Fields a version needs to be walked at all.
    fn require(&mut self, what: &str, fields: &[(&str, Option<usize>)]) {
        for (name, offset) in fields {
            if offset.is_none() {
                self.fail(format!("{what}: {name} is missing"));
            }
        }
    }

    fn result(self) -> Result<(), String> {
        match self.failure {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
