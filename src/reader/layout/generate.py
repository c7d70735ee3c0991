#!/usr/bin/env python3
"""Generate src/reader/layout/generated.rs from the headers of every installed CPython 3.8-3.15.

For each interpreter found, this writes a small C program that includes that version's own
headers (public and internal, compiled with -DPy_BUILD_CORE), prints offsetof/sizeof values,
enum values and the bit positions of the unicode state bitfields, compiles it with `cc`, runs
it, and turns what it printed into one `Layout` constant per version. For 3.13+ it also records
where each member of `_Py_DebugOffsets` lives, so that the Rust side can read those offsets out
of a running interpreter (see debug_offsets.rs).

Which interpreters:
  - TRACER_TEST_PYTHONS, if set: interpreter paths separated by ':' or spaces (as the tests
    read it); each is asked for its version and include directory;
  - otherwise $PYENV_ROOT/versions/3.X.*/bin/python (PYENV_ROOT defaults to /root/.pyenv),
    then target/pythons/3.X/bin/python3.X (tests/support/fetch-python.sh installs 3.14 there).
  One per minor version, the first found winning.

Usage:
  python3 src/reader/layout/generate.py                 # rewrite generated.rs in place
  python3 src/reader/layout/generate.py -o /tmp/gen.rs  # write elsewhere (the tests do this)

Versions not found are left out of the output and reported on stderr; the committed file must
hold all of 3.8-3.14, so regenerate it on a machine that has them all (3.14: run
tests/support/fetch-python.sh 3.14 first).

Target: the values are those of the machine's C compiler, x86_64 Linux here. On aarch64 Linux
(LP64 like x86_64) none of these structs differ. To generate for another target, run this with
CC set to a cross compiler and CC_RUN to a runner for its binaries, e.g.
  CC=aarch64-linux-gnu-gcc CC_RUN="qemu-aarch64 -L /usr/aarch64-linux-gnu" python3 generate.py
against headers from interpreters built for that target (pyconfig.h is target-specific).
The generated table assumes release builds with the GIL: a Py_DEBUG/Py_TRACE_REFS build moves
object fields, and a free-threaded build changes the object header.
"""

import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# The newest minor version with tables; a newer one is refused (src/target/attach.rs).
NEWEST = 15
MINORS = range(8, NEWEST + 1)
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "generated.rs")

# Kinds of Layout field, and the Rust type each becomes.
#   offset: a usize present in every version (the spec must cover every one of MINORS);
#   option: Option<usize>, None in versions the spec does not cover;
#   enum:   Option<u8>, an enum value;
#   bits:   Bitfield present in every version;  bits?: Option<Bitfield>.
#   fixed:  a usize the spec gives as a literal (no C expression applies).
#   variant: one variant of a Rust enum per range of minors (variants.rs), its spec entries
#            (first, last, "Enum::Variant", {field: C expression}); unit variants have {}.
#            "Enum::Variant(Record)" is a tuple variant holding one struct of the fields. A
#            field of type Option is Some(expr) where the version has it, None where not.
#            Every one of MINORS must be covered.
RUST_TYPES = {
    "offset": "usize",
    "option": "Option<usize>",
    "enum": "Option<u8>",
    "bits": "Bitfield",
    "bits?": "Option<Bitfield>",
    "fixed": "usize",
    "variant": None,
}


def all_versions(expr):
    return [(MINORS.start, MINORS.stop - 1, expr)]


def interpreter_frame_fields(minor):
    """The `InterpreterFrameLayout` of 3.`minor` (11+): {field: C expression}, an owner value
    the version lacks as None (emitted `None`), one it has as Some(expr)."""
    code = "f_code" if minor <= 12 else "f_executable"
    instr = "prev_instr" if minor <= 12 else "instr_ptr"
    return {
        "tstate_datastack_chunk": "offsetof(PyThreadState, datastack_chunk)",
        "tstate_datastack_top": "offsetof(PyThreadState, datastack_top)",
        "tstate_datastack_limit": "offsetof(PyThreadState, datastack_limit)",
        "stack_chunk_previous": "offsetof(_PyStackChunk, previous)",
        "stack_chunk_size": "offsetof(_PyStackChunk, size)",
        "stack_chunk_top": "offsetof(_PyStackChunk, top)",
        "stack_chunk_data": "offsetof(_PyStackChunk, data)",
        "size": "sizeof(_PyInterpreterFrame)",
        "previous": "offsetof(_PyInterpreterFrame, previous)",
        "code": f"offsetof(_PyInterpreterFrame, {code})",
        "instr_ptr": f"offsetof(_PyInterpreterFrame, {instr})",
        "owner": "offsetof(_PyInterpreterFrame, owner)",
        "localsplus": "offsetof(_PyInterpreterFrame, localsplus)",
        "owned_by_generator": "FRAME_OWNED_BY_GENERATOR",
        "owned_by_cstack": Some("FRAME_OWNED_BY_CSTACK") if 12 <= minor <= 14 else None,
        # 3.14+: the interpreter's own entry frames (no Python code).
        "owned_by_interpreter": Some("FRAME_OWNED_BY_INTERPRETER") if minor >= 14 else None,
    }


class Some:
    """A variant field of type Option: present in this version, emitted `Some(value)`."""

    def __init__(self, expr):
        self.expr = expr


FRAMES = [
    (8, 10, "Frames::FrameObjects(FrameObjectLayout)", {
        "size": "sizeof(PyFrameObject)",
        "back": "offsetof(PyFrameObject, f_back)",
        "code": "offsetof(PyFrameObject, f_code)",
        "lasti": "offsetof(PyFrameObject, f_lasti)",
        "lineno": "offsetof(PyFrameObject, f_lineno)",
        "gen": "offsetof(PyFrameObject, f_gen)",
        "localsplus": "offsetof(PyFrameObject, f_localsplus)",
    }),
] + [(minor, minor, "Frames::InterpreterFrames(InterpreterFrameLayout)",
      interpreter_frame_fields(minor)) for minor in range(11, NEWEST + 1)]


# (Layout field, kind, [(first minor, last minor, C expression), ...]).
# The C expressions are evaluated against each version's headers; their order here is the
# order of Layout's fields (mod.rs must match: the generated file does not compile otherwise).
FIELDS = [
    # _PyRuntimeState
    ("runtime_size", "offset", all_versions("sizeof(_PyRuntimeState)")),
    ("runtime_interpreters_head", "offset",
     all_versions("offsetof(_PyRuntimeState, interpreters.head)")),
    ("runtime_interpreters_main", "offset",
     all_versions("offsetof(_PyRuntimeState, interpreters.main)")),
    # Set by Py_FinalizeEx once atexit has run, before modules are cleared: the final snapshot's
    # moment (3.8's `finalizing`, `_finalizing` from 3.9).
    ("runtime_finalizing", "offset",
     [(8, 8, "offsetof(_PyRuntimeState, finalizing)"),
      (9, MINORS.stop - 1, "offsetof(_PyRuntimeState, _finalizing)")]),
    # PyInterpreterState
    ("interp_size", "offset", all_versions("sizeof(PyInterpreterState)")),
    ("interp_next", "offset", all_versions("offsetof(PyInterpreterState, next)")),
    ("interp_threads_head", "offset", [
        (8, 10, "offsetof(PyInterpreterState, tstate_head)"),
        (11, NEWEST, "offsetof(PyInterpreterState, threads.head)"),
    ]),
    ("interp_id", "offset", all_versions("offsetof(PyInterpreterState, id)")),
    # 3.14+: bumped when code objects may have been freed (caches by code address go stale).
    ("interp_code_object_generation", "option",
     [(14, NEWEST, "offsetof(PyInterpreterState, _code_object_generation)")]),
    # PyThreadState
    ("tstate_size", "offset", all_versions("sizeof(PyThreadState)")),
    ("tstate_next", "offset", all_versions("offsetof(PyThreadState, next)")),
    ("tstate_interp", "offset", all_versions("offsetof(PyThreadState, interp)")),
    ("tstate_thread_id", "offset", all_versions("offsetof(PyThreadState, thread_id)")),
    ("tstate_native_thread_id", "option",
     [(11, NEWEST, "offsetof(PyThreadState, native_thread_id)")]),
    # How the innermost frame is found (variants.rs): one read up to 3.10 and from 3.13, two
    # (through the _PyCFrame) in 3.11-3.12.
    ("current_frame", "variant", [
        (8, 10, "CurrentFrame::FrameObject",
         {"tstate_frame": "offsetof(PyThreadState, frame)"}),
        (11, 12, "CurrentFrame::ThroughCFrame",
         {"tstate_cframe": "offsetof(PyThreadState, cframe)",
          "cframe_current_frame": "offsetof(_PyCFrame, current_frame)"}),
        (13, NEWEST, "CurrentFrame::InThreadState",
         {"tstate_current_frame": "offsetof(PyThreadState, current_frame)"}),
    ]),
    # What the frames are (variants.rs): PyFrameObjects up to 3.10, then
    # _PyInterpreterFrames on the thread's data stack.
    ("frames", "variant", FRAMES),
    # What the frame's instruction field means (variants.rs), properties of the version read
    # from its frame struct: f_lasti in bytes, f_lasti in code units, prev_instr, instr_ptr.
    ("frame_instruction", "variant", [
        (8, 9, "FrameInstruction::LastiBytes", {}),
        (10, 10, "FrameInstruction::LastiCodeUnits", {}),
        (11, 12, "FrameInstruction::PrevInstr", {}),
        (13, NEWEST, "FrameInstruction::InstrPtr", {}),
    ]),
    # Up to 3.13 the code pointer is a plain PyObject*: nothing to mask. 3.14's f_executable
    # is a _PyStackRef whose low bits are tags.
    ("iframe_code_tag_mask", "fixed", [(8, 13, "0"), (14, NEWEST, "Py_TAG_BITS")]),
    # PyCodeObject
    ("code_size", "offset", all_versions("sizeof(PyCodeObject)")),
    ("code_filename", "offset", all_versions("offsetof(PyCodeObject, co_filename)")),
    ("code_name", "offset", all_versions("offsetof(PyCodeObject, co_name)")),
    ("code_qualname", "option", [(11, NEWEST, "offsetof(PyCodeObject, co_qualname)")]),
    ("code_firstlineno", "offset", all_versions("offsetof(PyCodeObject, co_firstlineno)")),
    ("code_lnotab", "option", [(8, 9, "offsetof(PyCodeObject, co_lnotab)")]),
    ("code_linetable", "option", [(10, NEWEST, "offsetof(PyCodeObject, co_linetable)")]),
    # The line table's format (linetable/mod.rs): co_lnotab, 3.10's co_linetable, or the
    # location table of 3.11+.
    ("line_table_format", "variant", [
        (8, 9, "LineTableFormat::Lnotab", {}),
        (10, 10, "LineTableFormat::Linetable310", {}),
        (11, NEWEST, "LineTableFormat::Locations", {}),
    ]),
    ("code_code", "option", [(8, 10, "offsetof(PyCodeObject, co_code)")]),
    ("code_code_adaptive", "option", [(11, NEWEST, "offsetof(PyCodeObject, co_code_adaptive)")]),
    ("code_firsttraceable", "option",
     [(11, NEWEST, "offsetof(PyCodeObject, _co_firsttraceable)")]),
    ("code_flags", "offset", all_versions("offsetof(PyCodeObject, co_flags)")),
    # 3.13+: the co_flags bit of the interpreter's own trampoline code (`_Py_InitCleanup`, the
    # frame between a class call and its __init__): no Python code, not a frame to report.
    ("code_flag_no_monitoring_events", "option", [(13, NEWEST, "CO_NO_MONITORING_EVENTS")]),
    ("code_argcount", "offset", all_versions("offsetof(PyCodeObject, co_argcount)")),
    ("code_nlocals", "offset", all_versions("offsetof(PyCodeObject, co_nlocals)")),
    ("code_nlocalsplus", "option", [(11, NEWEST, "offsetof(PyCodeObject, co_nlocalsplus)")]),
    ("code_varnames", "option", [(8, 10, "offsetof(PyCodeObject, co_varnames)")]),
    ("code_localsplusnames", "option",
     [(11, NEWEST, "offsetof(PyCodeObject, co_localsplusnames)")]),
    ("code_localspluskinds", "option",
     [(11, NEWEST, "offsetof(PyCodeObject, co_localspluskinds)")]),
    # Objects
    ("object_type", "offset", all_versions("offsetof(PyObject, ob_type)")),
    ("var_object_size", "offset", all_versions("offsetof(PyVarObject, ob_size)")),
    ("type_name", "offset", all_versions("offsetof(PyTypeObject, tp_name)")),
    ("bytes_sval", "offset", all_versions("offsetof(PyBytesObject, ob_sval)")),
    ("tuple_items", "offset", all_versions("offsetof(PyTupleObject, ob_item)")),
    # Unicode
    ("unicode_ascii_size", "offset", all_versions("sizeof(PyASCIIObject)")),
    ("unicode_compact_size", "offset", all_versions("sizeof(PyCompactUnicodeObject)")),
    ("unicode_length", "offset", all_versions("offsetof(PyASCIIObject, length)")),
    ("unicode_state", "offset", all_versions("offsetof(PyASCIIObject, state)")),
    ("unicode_state_size", "offset", all_versions("sizeof(((PyASCIIObject *)0)->state)")),
    ("unicode_kind", "bits", all_versions("kind")),
    ("unicode_compact", "bits", all_versions("compact")),
    ("unicode_ascii", "bits", all_versions("ascii")),
    ("unicode_ready", "bits?", [(8, 11, "ready")]),
    # ---- snapshot (src/snapshot/): walking sys.modules to every live code object, 3.11+ ----
    # Kept together at the end so that merging with branches adding other fields stays easy.
    ("interp_imports_modules", "option",
     [(11, 11, "offsetof(PyInterpreterState, modules)"),
      (12, NEWEST, "offsetof(PyInterpreterState, imports.modules)")]),
    # A free-threaded build has no ob_refcnt: its shared count (Py_ssize_t) stands for it.
    ("object_refcnt", "offset", all_versions("TRACER_OFFSET_OF_REFCNT")),
    ("object_head_size", "offset", all_versions("sizeof(PyObject)")),
    ("type_dict", "offset", all_versions("offsetof(PyTypeObject, tp_dict)")),
    ("tpflags_type_subclass", "option", [(11, NEWEST, "Py_TPFLAGS_TYPE_SUBCLASS")]),
    ("tpflags_dict_subclass", "option", [(11, NEWEST, "Py_TPFLAGS_DICT_SUBCLASS")]),
    ("module_dict", "option", [(11, NEWEST, "offsetof(PyModuleObject, md_dict)")]),
    ("function_code", "option", [(11, NEWEST, "offsetof(PyFunctionObject, func_code)")]),
    ("function_closure", "option", [(11, NEWEST, "offsetof(PyFunctionObject, func_closure)")]),
    ("code_consts", "option", [(11, NEWEST, "offsetof(PyCodeObject, co_consts)")]),
    ("code_exceptiontable", "option", [(11, NEWEST, "offsetof(PyCodeObject, co_exceptiontable)")]),
    # 3.11's quickening warmup counter (internal/pycore_code.h: -8, counting up to 0).
    ("code_warmup", "option", [(11, 11, "offsetof(PyCodeObject, co_warmup)")]),
    ("code_warmup_start", "option", [(11, 11, "-(QUICKENING_INITIAL_WARMUP_VALUE)")]),
    # ---- end of snapshot fields (it also reads tp_flags and the dict fields below) ----
    # --- Function view (--function --locals): a frame's locals and the values they hold. ---
    ("code_cellvars", "option", [(8, 10, "offsetof(PyCodeObject, co_cellvars)")]),
    ("code_freevars", "option", [(8, 10, "offsetof(PyCodeObject, co_freevars)")]),
    ("type_flags", "offset", all_versions("offsetof(PyTypeObject, tp_flags)")),
    ("cell_ref", "offset", all_versions("offsetof(PyCellObject, ob_ref)")),
    ("list_items", "offset", all_versions("offsetof(PyListObject, ob_item)")),
    ("float_value", "offset", all_versions("offsetof(PyFloatObject, ob_fval)")),
    ("long_digits", "offset", [
        (8, 11, "offsetof(PyLongObject, ob_digit)"),
        (12, NEWEST, "offsetof(PyLongObject, long_value.ob_digit)"),
    ]),
    ("long_tag", "option", [(12, NEWEST, "offsetof(PyLongObject, long_value.lv_tag)")]),
    ("long_digit_bits", "offset", all_versions("PyLong_SHIFT")),
    ("long_digit_size", "offset", all_versions("sizeof(digit)")),
    ("dict_used", "offset", all_versions("offsetof(PyDictObject, ma_used)")),
    ("dict_keys", "offset", all_versions("offsetof(PyDictObject, ma_keys)")),
    ("dict_values", "offset", all_versions("offsetof(PyDictObject, ma_values)")),
    # PyDictKeysObject and PyDictKeyEntry are in the installed headers from 3.11 on; before,
    # they live in Objects/dict-common.h, which is not installed: 3.8-3.10 measure the copy
    # declared in PRE_3_11_DICT (below), which tests/it/layouts.rs checks against each
    # interpreter's own dicts (tests/support/layout_probe.py).
    ("dict_key_table", "variant", [
        (8, 10, "DictKeyTable::Sized", {
            "dict_keys_size": "offsetof(TracerDictKeysObject, dk_size)",
            "dict_keys_nentries": "offsetof(TracerDictKeysObject, dk_nentries)",
            "dict_keys_indices": "offsetof(TracerDictKeysObject, dk_indices)",
            "dict_entry_size": "sizeof(TracerDictKeyEntry)",
            "dict_entry_key": "offsetof(TracerDictKeyEntry, me_key)",
            "dict_entry_value": "offsetof(TracerDictKeyEntry, me_value)",
        }),
        (11, NEWEST, "DictKeyTable::Log2", {
            "dict_keys_log2_size": "offsetof(PyDictKeysObject, dk_log2_size)",
            "dict_keys_log2_index_bytes": "offsetof(PyDictKeysObject, dk_log2_index_bytes)",
            "dict_keys_kind": "offsetof(PyDictKeysObject, dk_kind)",
            "dict_keys_nentries": "offsetof(PyDictKeysObject, dk_nentries)",
            "dict_keys_indices": "offsetof(PyDictKeysObject, dk_indices)",
            "dict_entry_size": "sizeof(PyDictKeyEntry)",
            "dict_entry_key": "offsetof(PyDictKeyEntry, me_key)",
            "dict_entry_value": "offsetof(PyDictKeyEntry, me_value)",
            "dict_unicode_entry_size": "sizeof(PyDictUnicodeEntry)",
            "dict_unicode_entry_key": "offsetof(PyDictUnicodeEntry, me_key)",
            "dict_unicode_entry_value": "offsetof(PyDictUnicodeEntry, me_value)",
            "dict_kind_general": "DICT_KEYS_GENERAL",
        }),
    ]),
    ("code_fast_cell", "enum", [(11, NEWEST, "CO_FAST_CELL")]),
    ("code_fast_free", "enum", [(11, NEWEST, "CO_FAST_FREE")]),
    ("code_fast_hidden", "enum", [(12, NEWEST, "CO_FAST_HIDDEN")]),
    # 3.14+: a localsplus slot is a _PyStackRef; this tag value (in iframe_code_tag_mask's
    # bits) marks a tagged int, not an object.
    ("stackref_int_tag", "option", [(14, NEWEST, "Py_INT_TAG")]),
    # --- end of the function view's block ---
]

# _Py_DebugOffsets members read by debug_offsets.rs, 3.13+: (DebugField variant, member path),
# or (variant, member path, first minor) for a member added later.
DEBUG_FIELDS = [
    ("RuntimeStateSize", "runtime_state.size"),
    ("RuntimeStateInterpretersHead", "runtime_state.interpreters_head"),
    ("RuntimeStateFinalizing", "runtime_state.finalizing"),
    ("InterpreterStateSize", "interpreter_state.size"),
    ("InterpreterStateId", "interpreter_state.id"),
    ("InterpreterStateNext", "interpreter_state.next"),
    ("InterpreterStateThreadsHead", "interpreter_state.threads_head"),
    ("InterpreterStateCodeObjectGeneration", "interpreter_state.code_object_generation", 14),
    ("ThreadStateSize", "thread_state.size"),
    ("ThreadStateNext", "thread_state.next"),
    ("ThreadStateInterp", "thread_state.interp"),
    ("ThreadStateCurrentFrame", "thread_state.current_frame"),
    ("ThreadStateThreadId", "thread_state.thread_id"),
    ("ThreadStateNativeThreadId", "thread_state.native_thread_id"),
    ("ThreadStateDatastackChunk", "thread_state.datastack_chunk"),
    ("InterpreterFrameSize", "interpreter_frame.size"),
    ("InterpreterFramePrevious", "interpreter_frame.previous"),
    ("InterpreterFrameExecutable", "interpreter_frame.executable"),
    ("InterpreterFrameInstrPtr", "interpreter_frame.instr_ptr"),
    ("InterpreterFrameLocalsplus", "interpreter_frame.localsplus"),
    ("InterpreterFrameOwner", "interpreter_frame.owner"),
    ("CodeObjectSize", "code_object.size"),
    ("CodeObjectFilename", "code_object.filename"),
    ("CodeObjectName", "code_object.name"),
    ("CodeObjectQualname", "code_object.qualname"),
    ("CodeObjectLinetable", "code_object.linetable"),
    ("CodeObjectFirstlineno", "code_object.firstlineno"),
    ("CodeObjectArgcount", "code_object.argcount"),
    ("CodeObjectLocalsplusnames", "code_object.localsplusnames"),
    ("CodeObjectLocalspluskinds", "code_object.localspluskinds"),
    ("CodeObjectCoCodeAdaptive", "code_object.co_code_adaptive"),
    ("PyObjectObType", "pyobject.ob_type"),
    ("TypeObjectTpName", "type_object.tp_name"),
    ("TupleObjectObItem", "tuple_object.ob_item"),
    ("TupleObjectObSize", "tuple_object.ob_size"),
    ("BytesObjectObSize", "bytes_object.ob_size"),
    ("BytesObjectObSval", "bytes_object.ob_sval"),
    ("UnicodeObjectState", "unicode_object.state"),
    ("UnicodeObjectLength", "unicode_object.length"),
    ("UnicodeObjectAsciiobjectSize", "unicode_object.asciiobject_size"),
]
DEBUG_OFFSETS_SINCE = 13


def debug_fields(minor):
    """(variant, member path) of each DEBUG_FIELDS member that 3.`minor` has."""
    return [(entry[0], entry[1]) for entry in DEBUG_FIELDS
            if minor >= (entry[2] if len(entry) > 2 else DEBUG_OFFSETS_SINCE)]


# Headers holding the structs above, per version.
def includes(minor):
    if minor == 8:
        internal = ["internal/pycore_pystate.h"]
    elif minor <= 10:
        internal = ["internal/pycore_interp.h", "internal/pycore_runtime.h"]
    elif minor == 11:
        # pycore_moduleobject.h: the snapshot's module field.
        internal = ["internal/pycore_interp.h", "internal/pycore_runtime.h",
                    "internal/pycore_frame.h", "internal/pycore_moduleobject.h"]
    elif minor <= 13:
        # pycore_dict.h and pycore_moduleobject.h: the snapshot's dict and module fields.
        internal = ["internal/pycore_interp.h", "internal/pycore_runtime.h",
                    "internal/pycore_frame.h", "internal/pycore_dict.h",
                    "internal/pycore_moduleobject.h"]
    else:
        # 3.14 moved the frame struct to pycore_interpframe_structs.h and tags the code
        # pointer with pycore_stackref.h's Py_TAG_BITS.
        internal = ["internal/pycore_interp.h", "internal/pycore_runtime.h",
                    "internal/pycore_frame.h", "internal/pycore_interpframe.h",
                    "internal/pycore_stackref.h", "internal/pycore_dict.h",
                    "internal/pycore_moduleobject.h"]
    # code.h is public up to 3.10; from 3.11 Python.h includes cpython/code.h itself.
    public = ["frameobject.h", "code.h"] if minor <= 10 else ["frameobject.h"]
    # Function view: PyLongObject (public longintrepr.h up to 3.10), PyDictKeysObject (3.11+).
    public += ["longintrepr.h"] if minor <= 10 else ["internal/pycore_dict.h"]
    return ["Python.h"] + internal + public


C_PRELUDE = r"""
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where a bitfield of PyASCIIObject.state lives: set it to all ones in a zeroed object and see
   which bits of the state word changed. Fails if anything outside the state word changed or
   the bits are not contiguous. The state is read as a native unsigned int, so positions are
   those of the integer, whatever the byte order. */
static void report_bits(const char *name, const unsigned char *object, size_t object_size,
                        size_t state_offset, size_t state_size) {
    if (state_size != sizeof(uint32_t)) {
        fprintf(stderr, "%s: state is %zu bytes, expected 4\n", name, state_size);
        exit(1);
    }
    for (size_t i = 0; i < object_size; i++) {
        if (object[i] != 0 && (i < state_offset || i >= state_offset + state_size)) {
            fprintf(stderr, "%s: byte %zu outside the state word changed\n", name, i);
            exit(1);
        }
    }
    uint32_t mask;
    memcpy(&mask, object + state_offset, sizeof mask);
    if (mask == 0) {
        fprintf(stderr, "%s: no bit changed\n", name);
        exit(1);
    }
    unsigned shift = (unsigned)__builtin_ctz(mask);
    unsigned width = (unsigned)__builtin_popcount(mask);
    if ((mask >> shift) != ((width == 32) ? 0xffffffffu : ((1u << width) - 1u))) {
        fprintf(stderr, "%s: bits not contiguous (mask %#x)\n", name, mask);
        exit(1);
    }
    printf("%s=bits:%u,%u\n", name, shift, width);
}

#define REPORT_BITS(name, member)                                                     \
    do {                                                                              \
        PyASCIIObject object;                                                         \
        memset(&object, 0, sizeof object);                                            \
        object.state.member = -1; /* converted modulo 2^width: all ones */            \
        report_bits(name, (const unsigned char *)&object, sizeof object,              \
                    offsetof(PyASCIIObject, state), sizeof object.state);             \
    } while (0)
"""


# The dict key table of 3.8-3.10, as Objects/dict-common.h of those versions declares it (the
# same in all three): not in their installed headers, so declared here under our own names
# for the compiler to lay out. dk_indices holds dk_size indices of 1, 2, 4 or 8 bytes each
# (dk_size <= 0xff, <= 0xffff, <= 0xffffffff, larger); the PyDictKeyEntry array follows it.
PRE_3_11_DICT = r"""
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} TracerDictKeyEntry;

typedef struct {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup; /* dict_lookup_func */
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} TracerDictKeysObject;
"""


def c_program(minor):
    lines = [f'#include "{h}"' for h in includes(minor)]
    lines.append(C_PRELUDE)
    lines.append("#ifdef Py_GIL_DISABLED\n"
                 "#define TRACER_OFFSET_OF_REFCNT offsetof(PyObject, ob_ref_shared)\n"
                 "#else\n"
                 "#define TRACER_OFFSET_OF_REFCNT offsetof(PyObject, ob_refcnt)\n"
                 "#endif")
    if minor <= 10:
        lines.append(PRE_3_11_DICT)
    lines.append("int main(void) {")
    for name, kind, spec in FIELDS:
        if kind == "variant":
            _variant, fields = variant_for(spec, minor)
            for field, expr in fields.items():
                if expr is None:
                    continue
                if isinstance(expr, Some):
                    expr = expr.expr
                lines.append(f'    printf("{name}.{field}=%llu\\n", '
                             f'(unsigned long long)({expr}));')
            continue
        expr = expression_for(spec, minor)
        if expr is None:
            continue
        if kind in ("bits", "bits?"):
            lines.append(f'    REPORT_BITS("{name}", {expr});')
        else:
            lines.append(f'    printf("{name}=%llu\\n", (unsigned long long)({expr}));')
    if minor >= DEBUG_OFFSETS_SINCE:
        lines.append('    printf("debug:size=%zu\\n", sizeof(_Py_DebugOffsets));')
        lines.append('    printf("debug:runtime_position=%zu\\n", '
                     'offsetof(_PyRuntimeState, debug_offsets));')
        for member in ("cookie", "version", "free_threaded"):
            lines.append(f'    printf("debug:{member}=%zu\\n", '
                         f'offsetof(_Py_DebugOffsets, {member}));')
        for variant, member in debug_fields(minor):
            lines.append(f'    printf("debug_field:{variant}=%zu\\n", '
                         f'offsetof(_Py_DebugOffsets, {member}));')
    lines.append("    return 0;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def expression_for(spec, minor):
    for first, last, expr in spec:
        if first <= minor <= last:
            return expr
    return None


def variant_for(spec, minor):
    """("Enum::Variant", {field: C expression}) of a variant field in 3.`minor`."""
    for first, last, variant, fields in spec:
        if first <= minor <= last:
            return variant, fields
    sys.exit(f"generate.py: no variant for 3.{minor} in {spec}")


def check_spec():
    for name, kind, spec in FIELDS:
        if kind not in RUST_TYPES:
            sys.exit(f"generate.py: {name}: unknown kind {kind}")
        if kind == "variant":
            for minor in MINORS:
                variant_for(spec, minor)
            continue
        if kind in ("offset", "bits", "fixed"):
            missing = [m for m in MINORS if expression_for(spec, m) is None]
            if missing:
                sys.exit(f"generate.py: {name} is required but has no expression for "
                         f"3.{missing[0]}")


def find_pythons():
    """{(minor, free_threaded): (full version, include dir, defines)} per build found, the
    first found winning."""
    listed = os.environ.get("TRACER_TEST_PYTHONS", "").strip()
    if listed:
        candidates = [p for p in re.split(r"[: \n]", listed) if p]
    else:
        root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
        candidates = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python")))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
        candidates += sorted(p for p in glob.glob(os.path.join(repo, "target", "pythons", "3.*",
                                                               "bin", "python3.*"))
                             if not p.endswith("-config"))
    found = {}
    for python in candidates:
        try:
            out = subprocess.run(
                [python, "-c",
                 "import sys, sysconfig; "
                 "print('%d %d %s' % (sys.version_info[0], sys.version_info[1], "
                 "sys.version.split()[0])); "
                 "print(sysconfig.get_config_var('INCLUDEPY'))\n"
                 "print(sysconfig.get_paths()['include'])\n"
                 "print(sysconfig.get_config_var('PY_CORE_CFLAGS') or '')\n"
                 "print(sysconfig.get_config_var('Py_GIL_DISABLED') or 0)"],
                capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
        except (OSError, subprocess.SubprocessError) as error:
            print(f"generate.py: skipping {python}: {error}", file=sys.stderr)
            continue
        major, minor, full = out[0].split()
        include = out[1].strip()
        if not os.path.isdir(include):
            # A relocated install (Debian's, unpacked elsewhere): INCLUDEPY names where it was
            # built for, the install scheme where it is.
            include = out[2].strip()
        # A free-threaded build (--disable-gil, 3.13+) is a build of its own: its object header
        # and so nearly every offset differ.
        build = (int(minor), out[4].strip() == "1")
        if int(major) != 3 or int(minor) not in MINORS or build in found:
            continue
        marker = "pycore_runtime.h" if int(minor) >= 9 else "pycore_pystate.h"
        if not os.path.isfile(os.path.join(include, "internal", marker)):
            print(f"generate.py: skipping {python}: no internal headers under {include}",
                  file=sys.stderr)
            continue
        found[build] = (full, include, build_defines(out[3]))
    return found


def build_defines(core_cflags):
    """The -D options the interpreter's own core was compiled with (PY_CORE_CFLAGS): they
    shape its structs as much as pyconfig.h does. Debian's 3.14 and 3.15 are built with
    --enable-experimental-jit=yes-off, that is -D_Py_TIER2=3 -D_Py_JIT, which 3.15's
    _PyThreadStateImpl grows by (so PyInterpreterState, which embeds one, too). Not
    _FORTIFY_SOURCE: a hardening option that changes no layout (and warns without -O)."""
    return [flag for flag in shlex.split(core_cflags)
            if flag.startswith("-D") and not flag.startswith("-D_FORTIFY_SOURCE")
            and flag != "-DPy_BUILD_CORE"]


def measure(minor, include, defines, workdir):
    name = f"layout3{minor}-{len(os.listdir(workdir))}"
    source = os.path.join(workdir, f"{name}.c")
    binary = os.path.join(workdir, name)
    with open(source, "w") as f:
        f.write(c_program(minor))
    cc = shlex.split(os.environ.get("CC", "cc"))
    # The parent directory too: Debian's pyconfig.h includes <MULTIARCH/python3.X/pyconfig.h>.
    compile_cmd = cc + ["-DPy_BUILD_CORE"] + defines + ["-I", include, "-I", os.path.join(include, "internal"),
                        "-I", os.path.dirname(include), "-o", binary, source]
    result = subprocess.run(compile_cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"generate.py: compiling against 3.{minor} headers failed:\n"
                 f"{' '.join(compile_cmd)}\n{result.stderr}")
    run = shlex.split(os.environ.get("CC_RUN", "")) + [binary]
    result = subprocess.run(run, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"generate.py: measuring 3.{minor} failed:\n{result.stderr}")
    values = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def rust_value(kind, raw):
    if raw is None:
        return "None"
    if kind in ("bits", "bits?"):
        shift, width = raw[len("bits:"):].split(",")
        value = f"Bitfield {{ shift: {shift}, width: {width} }}"
    else:
        number = int(raw)
        if kind == "enum" and number > 255:
            sys.exit(f"generate.py: enum value {number} does not fit the u8 owner field")
        value = str(number)
    return f"Some({value})" if kind in ("option", "enum", "bits?") else value


def const_name(build):
    """PY3_13 for a build with the GIL, PY3_13T for a free-threaded one."""
    minor, free_threaded = build
    return f"PY3_{minor}T" if free_threaded else f"PY3_{minor}"


def layout_block(build, full, values):
    minor, free_threaded = build
    kind = "a free-threaded build (--disable-gil)" if free_threaded else "a build with the GIL"
    lines = [f"/// CPython 3.{minor}, {kind}, measured from the {full} headers.",
             f"pub const {const_name(build)}: Layout = Layout {{",
             f"    version: PyVersion::new(3, {minor}),",
             f"    free_threaded: {'true' if free_threaded else 'false'},"]
    for name, kind, spec in FIELDS:
        if kind == "variant":
            lines.append(f"    {name}: {variant_value(name, spec, minor, values)},")
            continue
        raw = values.get(name)
        if expression_for(spec, minor) is not None and raw is None:
            sys.exit(f"generate.py: 3.{minor}: {name} was not printed")
        lines.append(f"    {name}: {rust_value(kind, raw)},")
    lines.append("};")
    return "\n".join(lines)


def variant_value(name, spec, minor, values):
    variant, fields = variant_for(spec, minor)
    if not fields:
        return variant
    members = []
    for field, expr in fields.items():
        if expr is None:
            members.append(f"{field}: None")
            continue
        raw = values.get(f"{name}.{field}")
        if raw is None:
            sys.exit(f"generate.py: 3.{minor}: {name}.{field} was not printed")
        value = int(raw)
        value = f"Some({value})" if isinstance(expr, Some) else str(value)
        members.append(f"{field}: {value}")
    # "Enum::Variant(Struct)": a tuple variant holding one struct of the fields.
    if variant.endswith(")"):
        outer, _, record = variant[:-1].partition("(")
        return f"{outer}({record} {{ {', '.join(members)} }})"
    return f"{variant} {{ {', '.join(members)} }}"


def debug_block(minor, values):
    lines = [f"/// Where the members of 3.{minor}'s `_Py_DebugOffsets` are.",
             f"pub const DEBUG_OFFSETS_PY3_{minor}: DebugOffsetsLayout = DebugOffsetsLayout {{",
             f"    version: PyVersion::new(3, {minor}),",
             f"    size: {values['debug:size']},",
             f"    free_threaded: {values['debug:free_threaded']},",
             "    fields: &["]
    for variant, _member in debug_fields(minor):
        lines.append(f"        (DebugField::{variant}, {values['debug_field:' + variant]}),")
    lines.append("    ],")
    lines.append("};")
    for member, expected in (("runtime_position", 0), ("cookie", 0), ("version", 8)):
        if int(values[f"debug:{member}"]) != expected:
            sys.exit(f"generate.py: 3.{minor}: _Py_DebugOffsets {member} is at "
                     f"{values['debug:' + member]}, debug_offsets.rs assumes {expected}")
    return "\n".join(lines)


def render(found, measured, target):
    sources = ", ".join(f"{full}{'t' if ft else ''}"
                        for (_minor, ft), (full, _inc, _defs) in sorted(found.items()))
    out = [
        "// @generated by src/reader/layout/generate.py from each CPython version's own headers.",
        "// Do not edit: regenerate with",
        "//     python3 src/reader/layout/generate.py",
        "// (TRACER_TEST_PYTHONS or $PYENV_ROOT/versions/3.X.* choose the interpreters).",
        f"// Measured from: {sources}; target {target}.",
        "",
        "use super::debug_offsets::{DebugField, DebugOffsetsLayout};",
        ("use super::variants::{\n    CurrentFrame, DictKeyTable, FrameInstruction, FrameObjectLayout, Frames,\n"
         "    InterpreterFrameLayout,\n};"),
        "use super::{Bitfield, Layout};",
        "use crate::reader::linetable::LineTableFormat;",
        "use crate::reader::PyVersion;",
        "",
    ]
    builds = sorted(measured)
    for build in builds:
        out.append(layout_block(build, found[build][0], measured[build]))
        out.append("")
    out.append("/// Every generated layout, oldest version first, a version's build with the GIL")
    out.append("/// before its free-threaded one.")
    out.append("pub static LAYOUTS: &[Layout] = &[" +
               ", ".join(const_name(b) for b in builds) + "];")
    out.append("")
    # Where each member of _Py_DebugOffsets lives does not depend on the build (the struct
    # has no member under Py_GIL_DISABLED): one table per minor, checked against both.
    debug_minors = sorted({m for m, _ft in builds if m >= DEBUG_OFFSETS_SINCE})
    for minor in debug_minors:
        gil = measured.get((minor, False))
        block = debug_block(minor, gil or measured[(minor, True)])
        if gil and (minor, True) in measured and debug_block(minor, measured[(minor, True)]) != block:
            sys.exit(f"generate.py: 3.{minor}: _Py_DebugOffsets differs between the builds with "
                     "and without the GIL; debug_offsets.rs assumes one table per minor")
        out.append(block)
        out.append("")
    out.append("/// Every generated `_Py_DebugOffsets` layout, oldest version first.")
    out.append("pub static DEBUG_OFFSETS_LAYOUTS: &[DebugOffsetsLayout] = &[" +
               ", ".join(f"DEBUG_OFFSETS_PY3_{m}" for m in debug_minors) + "];")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                        help="where to write the Rust file (default: generated.rs beside this)")
    args = parser.parse_args()
    check_spec()
    found = find_pythons()
    for minor in MINORS:
        if (minor, False) not in found:
            print(f"generate.py: no CPython 3.{minor} with headers found; left out",
                  file=sys.stderr)
    if not found:
        sys.exit(f"generate.py: no CPython 3.8-3.{NEWEST} found at all")
    measured = {}
    with tempfile.TemporaryDirectory(prefix="tracer-layouts-") as workdir:
        for build, (_full, include, defines) in sorted(found.items()):
            measured[build] = measure(build[0], include, defines, workdir)
    target = subprocess.run(shlex.split(os.environ.get("CC", "cc")) + ["-dumpmachine"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    text = render(found, measured, target)
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        sys.exit("generate.py: rustfmt not found (the committed file is rustfmt-formatted)")
    formatted = subprocess.run([rustfmt, "--edition", "2021", "--emit", "stdout", "--quiet"],
                               input=text, capture_output=True, text=True)
    if formatted.returncode != 0:
        sys.exit(f"generate.py: rustfmt failed:\n{formatted.stderr}\n{text}")
    with open(args.output, "w") as f:
        f.write(formatted.stdout)
    print(f"generate.py: wrote {args.output} "
          f"(3.{', 3.'.join(const_name(b)[4:].lower() for b in sorted(found))})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
