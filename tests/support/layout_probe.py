"""Check a Layout against the running interpreter's own objects, through ctypes.

Usage: python layout_probe.py name=value ...   (offsets in bytes; bitfields as shift,width;
fields the version lacks are not passed). Prints one line per check, "ok NAME" or
"FAIL NAME: why", and exits 1 if any failed. Works on 3.8-3.14.
"""

import ctypes
import sys
import threading

L = {}
for arg in sys.argv[1:]:
    name, _, value = arg.partition("=")
    L[name] = tuple(int(v) for v in value.split(",")) if "," in value else int(value)

failures = 0


def check(name, got, expected):
    global failures
    if got == expected:
        print("ok", name)
    else:
        failures += 1
        print("FAIL %s: read %r, expected %r" % (name, got, expected))


def ptr(address):
    return ctypes.c_void_p.from_address(address).value or 0


def i32(address):
    return ctypes.c_int.from_address(address).value


def u64(address):
    return ctypes.c_uint64.from_address(address).value


def state_bits(s, field):
    shift, width = L[field]
    word = ctypes.c_uint32.from_address(id(s) + L["unicode_state"]).value
    return (word >> shift) & ((1 << width) - 1)


# Objects.
t = ("a", 2)
b = b"bytes here"
check("object_type", ptr(id(t) + L["object_type"]), id(tuple))
check("var_object_size", ctypes.c_ssize_t.from_address(id(t) + L["var_object_size"]).value, 2)
check("tuple_items", ptr(id(t) + L["tuple_items"] + 8), id(t[1]))
check("bytes_sval", ctypes.string_at(id(b) + L["bytes_sval"], len(b)), b)
check("type_name", ctypes.string_at(ptr(id(int) + L["type_name"])), b"int")

# Unicode: kinds 1, 2 and 4, ASCII or not; characters right after the header.
for text, kind, ascii in (("plain", 1, 1), ("caf\xe9", 1, 0), ("\u20ac5", 2, 0),
                          ("\U0001d11e!", 4, 0)):
    label = "unicode %r" % text
    check(label + " length", ctypes.c_ssize_t.from_address(id(text) + L["unicode_length"]).value,
          len(text))
    check(label + " kind", state_bits(text, "unicode_kind"), kind)
    check(label + " compact", state_bits(text, "unicode_compact"), 1)
    check(label + " ascii", state_bits(text, "unicode_ascii"), ascii)
    if "unicode_ready" in L:
        check(label + " ready", state_bits(text, "unicode_ready"), 1)
    header = L["unicode_ascii_size"] if ascii else L["unicode_compact_size"]
    encoding = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
    check(label + " data", ctypes.string_at(id(text) + header, len(text) * kind),
          text.encode(encoding))

# Dicts: walk the key table at the given offsets (as src/reader/values/ does) and find the
# dict's items in insertion order, the deleted entry skipped. 3.8-3.10's table comes from
# Objects/dict-common.h, not from installed headers: this is what checks it.
def dict_items(d):
    keys = ptr(id(d) + L["dict_keys"])
    if "dict_keys_size" in L:
        size = ctypes.c_ssize_t.from_address(keys + L["dict_keys_size"]).value
        width = 1 if size <= 0xff else 2 if size <= 0xffff else 4 if size <= 0xffffffff else 8
        index_bytes = size * width
        general = True
    else:
        size = 1 << ctypes.c_ubyte.from_address(keys + L["dict_keys_log2_size"]).value
        index_bytes = 1 << ctypes.c_ubyte.from_address(keys + L["dict_keys_log2_index_bytes"]).value
        general = ctypes.c_ubyte.from_address(keys + L["dict_keys_kind"]).value == \
            L["dict_kind_general"]
    prefix = "dict_entry_" if general else "dict_unicode_entry_"
    nentries = ctypes.c_ssize_t.from_address(keys + L["dict_keys_nentries"]).value
    entries = keys + L["dict_keys_indices"] + index_bytes
    items = []
    for i in range(nentries):
        entry = entries + i * L[prefix + "size"]
        value = ptr(entry + L[prefix + "value"])
        if value:
            items.append((ptr(entry + L[prefix + "key"]), value))
    return size, nentries, items


for label, d, deleted in (
        ("dict of str keys", {"one": 1, "two": 2.0, "three": (3,)}, "two"),
        ("dict of mixed keys", {"k": 1, 2: "v", (3,): None}, 2),
        ("dict of 300 keys", {i: -i for i in range(300)}, 7)):
    del d[deleted]
    check(label + " ma_values", ptr(id(d) + L["dict_values"]), 0)
    check(label + " ma_used", ctypes.c_ssize_t.from_address(id(d) + L["dict_used"]).value,
          len(d))
    size, nentries, items = dict_items(d)
    check(label + " size", len(d) < size and size & (size - 1) == 0, True)
    check(label + " nentries", nentries, len(d) + 1)
    check(label + " items", items, [(id(k), id(v)) for k, v in d.items()])


# Code objects.
def sample(first, second=2):
    local = first + second
    return local


code = sample.__code__
check("code_filename", ptr(id(code) + L["code_filename"]), id(code.co_filename))
check("code_name", ptr(id(code) + L["code_name"]), id(code.co_name))
if "code_qualname" in L:
    check("code_qualname", ptr(id(code) + L["code_qualname"]), id(code.co_qualname))
check("code_firstlineno", i32(id(code) + L["code_firstlineno"]), code.co_firstlineno)
check("code_flags", i32(id(code) + L["code_flags"]), code.co_flags)
check("code_argcount", i32(id(code) + L["code_argcount"]), 2)
check("code_nlocals", i32(id(code) + L["code_nlocals"]), 3)
if "code_lnotab" in L:
    check("code_lnotab", ptr(id(code) + L["code_lnotab"]), id(code.co_lnotab))
if "code_linetable" in L:
    check("code_linetable", ptr(id(code) + L["code_linetable"]), id(code.co_linetable))
if "code_code" in L:
    check("code_code", ptr(id(code) + L["code_code"]), id(code.co_code))
if "code_varnames" in L:
    check("code_varnames", ptr(id(code) + L["code_varnames"]), id(code.co_varnames))
if "code_localsplusnames" in L:
    names = ptr(id(code) + L["code_localsplusnames"])
    check("code_localsplusnames", ctypes.cast(names, ctypes.py_object).value,
          ("first", "second", "local"))
    check("code_nlocalsplus", i32(id(code) + L["code_nlocalsplus"]), 3)

# Runtime, interpreter, thread.
api = ctypes.pythonapi
api.PyThreadState_Get.restype = ctypes.c_void_p
api.PyInterpreterState_Main.restype = ctypes.c_void_p
tstate = api.PyThreadState_Get()
interp = api.PyInterpreterState_Main()
runtime = ctypes.addressof(ctypes.c_char.in_dll(api, "_PyRuntime"))
check("runtime_interpreters_main", ptr(runtime + L["runtime_interpreters_main"]), interp)
check("runtime_interpreters_head", ptr(runtime + L["runtime_interpreters_head"]), interp)
check("interp_next", ptr(interp + L["interp_next"]), 0)
check("interp_id", u64(interp + L["interp_id"]), 0)
check("interp_threads_head", ptr(interp + L["interp_threads_head"]), tstate)
check("tstate_next", ptr(tstate + L["tstate_next"]), 0)
check("tstate_interp", ptr(tstate + L["tstate_interp"]), interp)
check("tstate_thread_id", ptr(tstate + L["tstate_thread_id"]), threading.get_ident())
if "tstate_native_thread_id" in L:
    check("tstate_native_thread_id", ptr(tstate + L["tstate_native_thread_id"]),
          threading.get_native_id())


def outer():
    return inner()


def inner():
    # Read the innermost frame with ctypes calls only (C code, no Python frame of their own),
    # so that it is this function's frame.
    read = ctypes.c_void_p.from_address
    if "tstate_frame" in L:
        frame = read(tstate + L["tstate_frame"]).value
    elif "tstate_cframe" in L:
        frame = read(read(tstate + L["tstate_cframe"]).value + L["cframe_current_frame"]).value
    else:
        frame = read(tstate + L["tstate_current_frame"]).value
    here = sys._getframe()
    if "frame_object_back" in L:
        check("tstate_frame", frame, id(here))
        check("frame_object_back", ptr(frame + L["frame_object_back"]), id(here.f_back))
        check("frame_object_code", ptr(frame + L["frame_object_code"]), id(inner.__code__))
        lasti = i32(frame + L["frame_object_lasti"])
        units = 2 if sys.version_info[:2] == (3, 10) else 1
        # The read happened a few instructions before f_lasti is asked for.
        check("frame_object_lasti", 0 < lasti * units < here.f_lasti, True)
        return
    code_at = lambda f: ptr(f + L["iframe_code"]) & ~L["iframe_code_tag_mask"]
    check("iframe_code", code_at(frame), id(inner.__code__))
    caller = ptr(frame + L["iframe_previous"])
    check("iframe_previous", code_at(caller), id(outer.__code__))
    check("iframe_owner", ctypes.c_ubyte.from_address(frame + L["iframe_owner"]).value, 0)
    start = id(inner.__code__) + L["code_code_adaptive"]
    instruction = ptr(frame + L["iframe_instr_ptr"])
    check("iframe_instr_ptr", start < instruction < start + len(inner.__code__.co_code), True)
    # The frame lives in the newest data-stack chunk, below its top.
    chunk = ptr(tstate + L["tstate_datastack_chunk"])
    size = ptr(chunk + L["stack_chunk_size"])
    top = ptr(tstate + L["tstate_datastack_top"])
    limit = ptr(tstate + L["tstate_datastack_limit"])
    check("datastack chunk holds the frame",
          chunk + L["stack_chunk_data"] <= frame < top <= limit <= chunk + size, True)
    # Below the module's frame: nothing (3.11) or the C-stack shim frame (3.12+).
    module_frame = caller
    while module_frame and code_at(module_frame) != id(MODULE_CODE):
        module_frame = ptr(module_frame + L["iframe_previous"])
    if not module_frame:
        check("the module's frame is found", False, True)
        return
    below = ptr(module_frame + L["iframe_previous"])
    if "frame_owned_by_interpreter" in L:
        # 3.14+: the interpreter's own entry frame.
        owner = ctypes.c_ubyte.from_address(below + L["iframe_owner"]).value
        check("frame_owned_by_interpreter", owner, L["frame_owned_by_interpreter"])
    elif "frame_owned_by_cstack" in L:
        owner = ctypes.c_ubyte.from_address(below + L["iframe_owner"]).value
        check("frame_owned_by_cstack", owner, L["frame_owned_by_cstack"])
    else:
        check("no frame below the module's", below, 0)


MODULE_CODE = sys._getframe().f_code
outer()
sys.exit(1 if failures else 0)
