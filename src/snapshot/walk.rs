//! From the interpreter to every live code object, read-only and bounded.
//!
//! Roots: `sys.modules` (`interp->imports.modules`) → each module's dict → functions, classes
//! (their `tp_dict`, nested classes), `staticmethod`/`classmethod`/`property`/bound methods,
//! what the cells of functions' closures hold (decorated functions) → the functions' code
//! objects → code objects nested in `co_consts`; then, breadth first and within a budget,
//! what instances, lists, tuples and functions' own fields hold ([`instances`]); and the code
//! of every frame on every thread's stack (the running `__main__` module, functions in flight).
//!
//! Target memory is hostile data: every dict, tuple, string and table length is bounded, every
//! object is visited once, nesting depth is bounded, and a code object is only taken if its
//! `ob_type` is `PyCode_Type`, its reference count is plausible, and two reads of the whole
//! object (header and adaptive bytecode) agree (see `read_code`).

use crate::reader::direct::{read_bytes, read_tuple_items, read_unicode, Target};
use crate::reader::layout::{InterpreterFrameLayout, Layout};
use crate::reader::memory::{MemoryError, MemoryReader, ReadRequest};
use crate::reader::objects::read_current_frame;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;

mod instances;
pub mod namespaces;

/// Objects visited at most (modules, dicts' values, classes, functions, code objects).
const MAX_OBJECTS: usize = 4 << 20;
/// Entries read from one dict at most.
const MAX_DICT_ENTRIES: usize = 1 << 20;
/// Items read from one `co_consts` tuple at most.
const MAX_CONSTS: usize = 1 << 16;
/// Classes nested in classes, and code objects nested in `co_consts`, followed this deep.
const MAX_DEPTH: usize = 64;
/// Largest bytecode read (bytes), line table and exception table.
const MAX_CODE_BYTES: usize = 4 << 20;
const MAX_TABLE_BYTES: usize = 4 << 20;
/// Threads followed at most, and frames over all threads' stacks.
const MAX_THREADS: usize = 8192;
const MAX_STACK_FRAMES: usize = 1 << 18;
/// Reads of a code object tried before giving up on getting two equal copies.
const CODE_READ_ATTEMPTS: usize = 3;
/// A live object's reference count is at least 1 and, even immortal (3.12+: 2^32 - 1 plus
/// increments), far below a pointer: a freed block's first word usually holds one.
const MAX_PLAUSIBLE_REFCNT: usize = 1 << 40;

/// One code object as read from the target.
#[derive(Debug, Clone)]
pub struct CodeObject {
    pub address: usize,
    pub filename: String,
    /// `co_qualname`.
    pub qualname: String,
    pub first_line: u32,
    /// `co_code_adaptive`, as two reads agreed on it.
    pub code: Vec<u8>,
    pub line_table: Vec<u8>,
    pub exception_table: Vec<u8>,
    /// `_co_firsttraceable`: index (code units) of the first RESUME.
    pub first_traceable: u32,
    /// `co_consts`: the address of each item that is a code object, else 0.
    pub const_codes: Vec<usize>,
    /// 3.11: `co_warmup` has moved from the value it starts from, so a `RESUME` or a
    /// `JUMP_BACKWARD` of this code ran (the only instructions that count it up).
    pub warmed: bool,
}

/// What the walk saw, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    pub modules: usize,
    pub classes: usize,
    pub functions: usize,
    pub code_objects: usize,
    /// Code objects whose two reads never agreed (being changed while read): left out.
    pub unstable_codes: usize,
    /// Objects that could not be read (freed meanwhile, or not what their type said).
    pub unreadable: usize,
    /// Dicts left out: over the bound.
    pub skipped_dicts: usize,
    /// Instances, lists, tuples and functions whose fields were scanned for more objects.
    pub scanned: usize,
    /// True if the scans' budget (objects or reads) was spent before every queued object.
    pub scan_truncated: bool,
    /// True if a bound on objects was reached and the walk stopped early.
    pub truncated: bool,
    /// Code objects with a frame on some thread's stack when the walk ended, if every stack
    /// could be read to its end.
    pub live_codes: Option<usize>,
}

/// What a walk found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// The code objects, parents before the children in their `co_consts`.
    pub codes: Vec<CodeObject>,
    /// The code objects with a frame on some thread's stack, listed after every code object
    /// was read; `None` if some stack could not be read to its end (a read failed, a bound
    /// was reached, a cycle met): then any code may be live.
    pub live: Option<HashSet<usize>>,
    /// The code objects read as some function object's `__code__` (not merely found in a
    /// `co_consts` or on a stack): a function was made of each, so its `def` ran somewhere.
    pub function_codes: HashSet<usize>,
    pub stats: WalkStats,
}

/// What a type's name and flags say its instances are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Module,
    Class,
    Function,
    /// `staticmethod`, `classmethod`, bound `method`: one callable right after the header.
    Wraps1,
    /// `property`: getter, setter, deleter right after the header.
    Wraps3,
    /// A closure's cell: its content at `cell_ref`.
    Cell,
    /// A dict (or subclass) held in a namespace or a cell: dispatch tables,
    /// `functools.singledispatch`'s registry (in its wrapper's closure).
    Dict,
    /// An instance whose fields are scanned: of a class made by a `class` statement, or a
    /// `functools.partial` or `lru_cache` wrapper. `bytes` is its type's `tp_basicsize`;
    /// `managed`: it has a managed `__dict__`; `inline`: its values follow it (3.13+).
    Instance {
        bytes: u16,
        managed: bool,
        inline: bool,
    },
    List,
    Tuple,
    Other,
}

/// The walk over one target.
pub struct Walker<'a> {
    memory: &'a mut dyn MemoryReader,
    layout: Layout,
    code_type: usize,
    interpreter: usize,
    kinds: HashMap<usize, Kind>,
    visited: HashSet<usize>,
    codes: Vec<CodeObject>,
    /// Code addresses already read (or refused).
    code_seen: HashSet<usize>,
    function_codes: HashSet<usize>,
    /// Objects queued for a scan of their fields, with their depth.
    pending: VecDeque<(usize, usize)>,
    /// `&PyType_Type` (the type of `PyCode_Type`).
    type_type: usize,
    /// Addresses checked as type objects, and the verdict.
    types_checked: HashMap<usize, bool>,
    /// `tp_basicsize` of `function`, once met.
    function_bytes: usize,
    model: Option<instances::ObjectModel>,
    pub stats: WalkStats,
}

impl<'a> Walker<'a> {
    /// A walker over `target`'s memory. Needs a 3.12+ layout (the snapshot fields).
    pub fn new(target: &'a mut Target) -> Walker<'a> {
        let type_type = target
            .memory
            .read_usize(target.code_type.wrapping_add(target.layout.object_type))
            .unwrap_or(0);
        Walker {
            pending: VecDeque::new(),
            type_type,
            types_checked: HashMap::default(),
            function_bytes: 0,
            model: instances::object_model(target.layout.version),
            layout: target.layout,
            code_type: target.code_type,
            interpreter: target.interpreter,
            memory: &mut *target.memory,
            kinds: HashMap::default(),
            visited: HashSet::default(),
            codes: Vec::new(),
            code_seen: HashSet::default(),
            function_codes: HashSet::default(),
            stats: WalkStats::default(),
        }
    }

    /// Walk every root: the code objects found, and those live on a stack at the end.
    pub fn walk(mut self) -> Result<Walk, MemoryError> {
        let modules_slot = self
            .layout
            .interp_imports_modules
            .ok_or(MemoryError::Unmapped(self.interpreter))?;
        let modules = self
            .memory
            .read_usize(self.interpreter.wrapping_add(modules_slot))?;
        for module in self.dict_values(modules)? {
            if self.kind_of(module) == Kind::Module && self.visit(module) {
                self.stats.modules += 1;
                let Some(dict_offset) = self.layout.module_dict else {
                    break;
                };
                match self.memory.read_usize(module.wrapping_add(dict_offset)) {
                    Ok(dict) => {
                        if self.visit(dict) {
                            self.namespace(dict, 0);
                        }
                    }
                    Err(_) => self.stats.unreadable += 1,
                }
            }
        }
        self.drain_scans();
        let (on_stacks, _) = self.stack_codes();
        for code in on_stacks {
            self.code(code, 0);
        }
        // Listed again once every code object has been read: a frame that was between two
        // instructions while its code was read is either still on its stack now, or has
        // moved on (see cfg.rs, rules E and F).
        let (on_stacks, complete) = self.stack_codes();
        let live: Option<HashSet<usize>> = complete.then(|| on_stacks.into_iter().collect());
        self.stats.live_codes = live.as_ref().map(HashSet::len);
        Ok(Walk {
            codes: self.codes,
            live,
            function_codes: self.function_codes,
            stats: self.stats,
        })
    }

    /// Mark `object` visited; false if it was already, or the walk is over its bound.
    fn visit(&mut self, object: usize) -> bool {
        if self.visited.len() >= MAX_OBJECTS {
            self.stats.truncated = true;
            return false;
        }
        object != 0 && self.visited.insert(object)
    }

    /// Follow what a module's or class's namespace holds.
    fn namespace(&mut self, dict: usize, depth: usize) {
        let values = match self.dict_values(dict) {
            Ok(values) => values,
            Err(_) => {
                self.stats.unreadable += 1;
                return;
            }
        };
        for value in values {
            self.object(value, depth);
        }
    }

    /// Follow one object found in a namespace.
    fn object(&mut self, object: usize, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match self.kind_of(object) {
            Kind::Function => {
                if self.visit(object) {
                    self.stats.functions += 1;
                    if let Some(at) = self.layout.function_code {
                        match self.memory.read_usize(object.wrapping_add(at)) {
                            Ok(0) => {}
                            Ok(code) => {
                                if self.function_codes.len() < MAX_OBJECTS {
                                    self.function_codes.insert(code);
                                }
                                self.code(code, depth);
                            }
                            Err(_) => self.stats.unreadable += 1,
                        }
                    }
                    self.closure(object, depth + 1);
                    // Its defaults, attributes (`__wrapped__`), annotations.
                    self.queue_scan(object, depth);
                }
            }
            Kind::Class => {
                if self.visit(object) {
                    self.stats.classes += 1;
                    match self
                        .memory
                        .read_usize(object.wrapping_add(self.layout.type_dict))
                    {
                        Ok(0) => {}
                        Ok(dict) => {
                            if self.visit(dict) {
                                self.namespace(dict, depth + 1);
                            }
                        }
                        Err(_) => self.stats.unreadable += 1,
                    }
                }
            }
            Kind::Wraps1 | Kind::Wraps3 => {
                let fields = if self.kind_of(object) == Kind::Wraps3 {
                    3
                } else {
                    1
                };
                if self.visit(object) {
                    for i in 0..fields {
                        let at = Some(self.layout.object_head_size + 8 * i);
                        self.pointer_field(object, at, depth + 1, false);
                    }
                }
            }
            Kind::Code => self.code(object, depth),
            Kind::Dict => {
                if self.visit(object) {
                    self.namespace(object, depth + 1);
                }
            }
            Kind::Instance { .. } | Kind::List | Kind::Tuple => {
                if self.visit(object) {
                    self.queue_scan(object, depth);
                }
            }
            Kind::Cell | Kind::Module | Kind::Other => {}
        }
    }

    /// Follow what the cells of `function`'s closure hold: the functions a decorator wraps,
    /// nested functions returned by their maker.
    fn closure(&mut self, function: usize, depth: usize) {
        let (Some(closure_at), Some(ref_at)) =
            (self.layout.function_closure, Some(self.layout.cell_ref))
        else {
            return;
        };
        let tuple = match self.memory.read_usize(function.wrapping_add(closure_at)) {
            Ok(0) => return,
            Ok(tuple) => tuple,
            Err(_) => {
                self.stats.unreadable += 1;
                return;
            }
        };
        let Ok(cells) = self.tuple_items(tuple) else {
            self.stats.unreadable += 1;
            return;
        };
        for cell in cells {
            if self.kind_of(cell) == Kind::Cell && self.visit(cell) {
                self.pointer_field(cell, Some(ref_at), depth, false);
            }
        }
    }

    /// The items of a tuple (at most `MAX_CONSTS`).
    fn tuple_items(&mut self, tuple: usize) -> Result<Vec<usize>, MemoryError> {
        read_tuple_items(self.memory, &self.layout, tuple, MAX_CONSTS)
    }

    /// Follow the pointer at `object + offset`: to a code object if `code`, else any object.
    fn pointer_field(&mut self, object: usize, offset: Option<usize>, depth: usize, code: bool) {
        let Some(offset) = offset else { return };
        match self.memory.read_usize(object.wrapping_add(offset)) {
            Ok(0) => {}
            Ok(target) if code => self.code(target, depth),
            Ok(target) => self.object(target, depth),
            Err(_) => self.stats.unreadable += 1,
        }
    }

    /// Read a code object and the code objects nested in its constants.
    fn code(&mut self, address: usize, depth: usize) {
        if depth > MAX_DEPTH || address == 0 || !self.code_seen.insert(address) {
            return;
        }
        if self.code_seen.len() > MAX_OBJECTS {
            self.stats.truncated = true;
            return;
        }
        match self.read_code(address) {
            Ok(Some(code)) => {
                let children: Vec<usize> = code
                    .const_codes
                    .iter()
                    .copied()
                    .filter(|&c| c != 0)
                    .collect();
                self.stats.code_objects += 1;
                self.codes.push(code);
                for child in children {
                    self.code(child, depth + 1);
                }
            }
            Ok(None) => self.stats.unstable_codes += 1,
            Err(_) => self.stats.unreadable += 1,
        }
    }

    /// Read the code object at `address`: `Ok(None)` if no two reads agreed.
    ///
    /// The header and the adaptive bytecode are copied twice in one `process_vm_readv` call
    /// and kept only if both copies are equal: an instruction being specialized while it is
    /// copied (opcode and cache words are written one after the other) cannot leave a state
    /// that both copies show unless it stood still between them. Every change the
    /// interpreter makes to these bytes is made by executing them, so an agreeing copy holds
    /// only real evidence; the double read keeps the copy consistent with its own header.
    fn read_code(&mut self, address: usize) -> Result<Option<CodeObject>, MemoryError> {
        let layout = self.layout;
        let adaptive = layout
            .code_code_adaptive
            .ok_or(MemoryError::Unmapped(address))?;
        let mut header = vec![0u8; layout.code_size];
        self.memory.read(address, &mut header)?;
        let word = |bytes: &[u8], offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
        if word(&header, layout.object_type) != self.code_type {
            return Err(MemoryError::Unmapped(address));
        }
        let units = word(&header, layout.var_object_size);
        let code_bytes = units.saturating_mul(2);
        if code_bytes == 0 || code_bytes > MAX_CODE_BYTES {
            return Err(MemoryError::Unmapped(address));
        }
        let span = adaptive + code_bytes;
        let mut copies = [vec![0u8; span], vec![0u8; span]];
        let mut agreed = false;
        for _ in 0..CODE_READ_ATTEMPTS {
            let [first, second] = &mut copies;
            let mut requests = [
                ReadRequest {
                    address,
                    buf: first.as_mut_slice(),
                },
                ReadRequest {
                    address,
                    buf: second.as_mut_slice(),
                },
            ];
            self.memory.read_many(&mut requests)?;
            if copies[0] == copies[1] {
                agreed = true;
                break;
            }
        }
        if !agreed {
            return Ok(None);
        }
        let bytes = &copies[0];
        let refcnt = word(bytes, layout.object_refcnt);
        if word(bytes, layout.object_type) != self.code_type
            || word(bytes, layout.var_object_size) != units
            || refcnt == 0
            || refcnt > MAX_PLAUSIBLE_REFCNT
        {
            return Err(MemoryError::Unmapped(address));
        }
        let field = |offset: Option<usize>| offset.map(|o| word(bytes, o)).unwrap_or(0);
        let filename = read_unicode(self.memory, &layout, word(bytes, layout.code_filename))?;
        let qualname = read_unicode(
            self.memory,
            &layout,
            field(layout.code_qualname.or(Some(layout.code_name))),
        )?;
        let line_table = read_bytes(
            self.memory,
            &layout,
            field(layout.code_linetable),
            MAX_TABLE_BYTES,
        )?;
        let exception_table = read_bytes(
            self.memory,
            &layout,
            field(layout.code_exceptiontable),
            MAX_TABLE_BYTES,
        )?;
        let first_line = read_i32_at(bytes, layout.code_firstlineno)
            .unwrap_or(0)
            .max(0) as u32;
        let first_traceable = layout
            .code_firsttraceable
            .and_then(|o| read_i32_at(bytes, o))
            .unwrap_or(0)
            .max(0) as u32;
        let const_codes = self.const_codes(field(layout.code_consts))?;
        let warmed = match (layout.code_warmup, layout.code_warmup_start) {
            (Some(at), Some(start)) => {
                read_i16_at(bytes, at).is_some_and(|warmup| i64::from(warmup) != -(start as i64))
            }
            _ => false,
        };
        Ok(Some(CodeObject {
            address,
            filename,
            qualname,
            first_line,
            code: bytes[adaptive..].to_vec(),
            line_table,
            exception_table,
            first_traceable,
            const_codes,
            warmed,
        }))
    }

    /// The items of a `co_consts` tuple that are code objects (0 for the others).
    fn const_codes(&mut self, tuple: usize) -> Result<Vec<usize>, MemoryError> {
        let layout = self.layout;
        let items = self.tuple_items(tuple)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let is_code = item != 0
                && self
                    .memory
                    .read_usize(item.wrapping_add(layout.object_type))
                    .is_ok_and(|t| t == self.code_type);
            out.push(if is_code { item } else { 0 });
        }
        Ok(out)
    }

    /// The values of a (combined-table) dict; split dicts are left out.
    fn dict_values(&mut self, dict: usize) -> Result<Vec<usize>, MemoryError> {
        let l = self.layout;
        let shape = l.dict_key_table;
        let type_ptr = self.memory.read_usize(dict.wrapping_add(l.object_type))?;
        let flags = self.type_flags(type_ptr)?;
        if flags & l.tpflags_dict_subclass.unwrap_or(0) == 0 {
            return Err(MemoryError::Unmapped(dict));
        }
        let split_values = self.memory.read_usize(dict.wrapping_add(l.dict_values))?;
        let keys = self.memory.read_usize(dict.wrapping_add(l.dict_keys))?;
        let mut head = vec![0u8; shape.header_size()];
        self.memory.read(keys, &mut head)?;
        // The same decoding and bounds as the value reader's (DictKeyTable::decode).
        let Some(table) = shape.decode(keys, &head) else {
            return Err(MemoryError::Unmapped(keys));
        };
        let nentries = table.nentries;
        if nentries > MAX_DICT_ENTRIES {
            self.stats.skipped_dicts += 1;
            return Ok(Vec::new());
        }
        if split_values != 0 {
            // An instance's dict sharing its class's keys: the values are apart.
            return Ok(self
                .split_values(split_values, nentries)
                .into_iter()
                .filter(|&value| value != 0)
                .collect());
        }
        let (entry_size, value_at) = (table.entry_size, table.value_at);
        let mut raw = vec![0u8; nentries * entry_size];
        self.memory.read(table.entries, &mut raw)?;
        Ok(raw
            .chunks_exact(entry_size)
            .filter_map(|entry| read_usize_at(entry, value_at))
            .filter(|&value| value != 0)
            .collect())
    }

    /// The code of every frame on every thread's stack, and whether every stack was read to
    /// its end (no failed read, no bound reached, no cycle).
    fn stack_codes(&mut self) -> (Vec<usize>, bool) {
        let l = self.layout;
        let mut codes = Vec::new();
        let Ok(mut tstate) = self
            .memory
            .read_usize(self.interpreter.wrapping_add(l.interp_threads_head))
        else {
            return (codes, false);
        };
        let Some(&InterpreterFrameLayout {
            code: code_at,
            previous,
            ..
        }) = l.frames.interpreter_frames()
        else {
            return (codes, false);
        };
        let mut threads: HashSet<usize> = HashSet::default();
        let mut frames: HashSet<usize> = HashSet::default();
        let mut complete = true;
        while tstate != 0 {
            if threads.len() >= MAX_THREADS || !threads.insert(tstate) {
                return (codes, false);
            }
            let Ok(mut frame) = read_current_frame(self.memory, &l, tstate) else {
                return (codes, false);
            };
            while frame != 0 {
                if frames.len() >= MAX_STACK_FRAMES || !frames.insert(frame) {
                    return (codes, false);
                }
                match self.memory.read_usize(frame.wrapping_add(code_at)) {
                    Ok(code) => codes.push(code & !l.iframe_code_tag_mask),
                    Err(_) => complete = false,
                }
                match self.memory.read_usize(frame.wrapping_add(previous)) {
                    Ok(next) => frame = next,
                    Err(_) => return (codes, false),
                }
            }
            match self.memory.read_usize(tstate.wrapping_add(l.tstate_next)) {
                Ok(next) => tstate = next,
                Err(_) => return (codes, false),
            }
        }
        (codes, complete)
    }

    fn type_flags(&mut self, type_ptr: usize) -> Result<usize, MemoryError> {
        self.memory
            .read_usize(type_ptr.wrapping_add(self.layout.type_flags))
    }

    /// What `object` is, from its type (cached per type).
    fn kind_of(&mut self, object: usize) -> Kind {
        let Ok(type_ptr) = self
            .memory
            .read_usize(object.wrapping_add(self.layout.object_type))
        else {
            return Kind::Other;
        };
        self.kind_of_type(type_ptr)
    }

    /// What instances of `type_ptr` are (cached per type).
    fn kind_of_type(&mut self, type_ptr: usize) -> Kind {
        if type_ptr == self.code_type {
            return Kind::Code;
        }
        if let Some(kind) = self.kinds.get(&type_ptr) {
            return *kind;
        }
        let kind = self.classify_type(type_ptr).unwrap_or(Kind::Other);
        if self.kinds.len() < MAX_OBJECTS {
            self.kinds.insert(type_ptr, kind);
        }
        kind
    }

    fn classify_type(&mut self, type_ptr: usize) -> Result<Kind, MemoryError> {
        let flags = self.type_flags(type_ptr)?;
        if flags & self.layout.tpflags_type_subclass.unwrap_or(0) != 0 {
            return Ok(Kind::Class);
        }
        if flags & self.layout.tpflags_dict_subclass.unwrap_or(0) != 0 {
            return Ok(Kind::Dict);
        }
        let name_ptr = self
            .memory
            .read_usize(type_ptr.wrapping_add(self.layout.type_name))?;
        // `tp_basicsize` follows `tp_name` in every version.
        let bytes = self
            .memory
            .read_usize(type_ptr.wrapping_add(self.layout.type_name + 8))?;
        let instance = Kind::Instance {
            bytes: bytes.min(instances::MAX_FIELD_BYTES) as u16,
            managed: self.model.is_some_and(|m| flags & m.managed_dict_flag != 0),
            inline: self
                .model
                .and_then(|m| m.inline_values_flag)
                .is_some_and(|f| flags & f != 0),
        };
        let mut name = [0u8; 32];
        self.memory.read(name_ptr, &mut name)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(match &name[..end] {
            b"function" => {
                self.function_bytes = bytes.min(instances::MAX_FIELD_BYTES);
                Kind::Function
            }
            b"module" => Kind::Module,
            b"staticmethod" | b"classmethod" | b"method" => Kind::Wraps1,
            b"property" => Kind::Wraps3,
            b"cell" => Kind::Cell,
            b"list" => Kind::List,
            b"tuple" => Kind::Tuple,
            b"functools.partial" | b"functools._lru_cache_wrapper" => instance,
            _ if flags & instances::TPFLAGS_HEAPTYPE != 0 => instance,
            _ => Kind::Other,
        })
    }
}

fn read_usize_at(bytes: &[u8], offset: usize) -> Option<usize> {
    let raw = bytes.get(offset..offset.checked_add(8)?)?;
    Some(usize::from_ne_bytes(raw.try_into().ok()?))
}

fn read_i16_at(bytes: &[u8], offset: usize) -> Option<i16> {
    let raw = bytes.get(offset..offset.checked_add(2)?)?;
    Some(i16::from_ne_bytes(raw.try_into().ok()?))
}

fn read_i32_at(bytes: &[u8], offset: usize) -> Option<i32> {
    let raw = bytes.get(offset..offset.checked_add(4)?)?;
    Some(i32::from_ne_bytes(raw.try_into().ok()?))
}
