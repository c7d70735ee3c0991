//! What each module's namespace holds, for the inference of module bodies
//! (`src/snapshot/bodies/namespaces.rs`): per module in `sys.modules`, its `__name__`, its
//! `__file__` and the names bound in its dict ([`read`]); then, only for the values the
//! source makes candidates, [`Values::bound`]: the value's content if it is a constant or an
//! exact tuple, list or dict of constants, or what a class says of itself (`__name__`,
//! `__module__`, `__firstlineno__`); any other value is [`Bound::Other`].
//!
//! Read-only and bounded: modules, entries per dict, objects read for contents over the whole
//! walk, and string lengths (see [`crate::reader::values`]). A value that cannot be read
//! exactly is [`Bound::Other`], which proves nothing.

use crate::reader::direct::Target;
use crate::reader::values::{Content, TypeCache, ValueReader};

/// Modules summarized at most.
const MAX_MODULES: usize = 1 << 15;
/// Objects read for contents at most over every module, and for one value.
const MAX_CONTENT_OBJECTS: usize = 1 << 21;
const MAX_VALUE_OBJECTS: usize = 1 << 16;
/// Objects whose first bytes [`ValueReader::prefetch`] reads in one call.
const PREFETCH_BATCH: usize = 60;
/// `Py_TPFLAGS_HEAPTYPE`.
const HEAP_TYPE: u64 = 1 << 9;

/// One module's namespace.
#[derive(Debug, Clone, Default)]
pub struct Namespace {
    /// `__name__` and `__file__`.
    pub name: String,
    pub file: String,
    pub entries: Vec<Entry>,
}

/// One name bound in a module's dict.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The value's address, for [`Values::bound`].
    pub address: usize,
}

/// What a bound value is, as far as it is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// A constant, or an exact tuple, list or dict of them, read whole.
    Content(Content),
    /// A class made at run time (a heap type): its `tp_name` (its `__name__`), the
    /// `__module__` and `__firstlineno__` (3.13+) its dict holds.
    Class {
        name: String,
        module: Option<String>,
        first_line: Option<u32>,
    },
    /// Anything else.
    Other,
}

/// The namespace of every module in `sys.modules` whose `__file__` is an absolute `.py` path.
pub fn read(target: &mut Target) -> Vec<Namespace> {
    let layout = target.layout;
    let (Some(modules_at), Some(dict_at)) = (layout.interp_imports_modules, layout.module_dict)
    else {
        return Vec::new();
    };
    let mut types = TypeCache::default();
    let mut reader = ValueReader::new(&mut *target.memory, &layout, &mut types);
    let Some(modules) = reader.word(target.interpreter.wrapping_add(modules_at)) else {
        return Vec::new();
    };
    let Some(entries) = reader.dict_entries(modules) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (_, module) in entries.into_iter().take(MAX_MODULES) {
        if !is_module(&mut reader, module) {
            continue;
        }
        let Some(dict) = reader.word(module.wrapping_add(dict_at)) else {
            continue;
        };
        if let Some(namespace) = namespace(&mut reader, dict) {
            out.push(namespace);
        }
    }
    out
}

fn is_module(reader: &mut ValueReader, object: usize) -> bool {
    reader
        .type_info(object)
        .is_ok_and(|t| t.name == "module" && t.flags & HEAP_TYPE == 0)
}

/// The (str key, value) pairs of a dict.
fn named_entries(reader: &mut ValueReader, dict: usize) -> Option<Vec<(String, usize)>> {
    let entries = reader.dict_entries(dict)?;
    let mut out = Vec::with_capacity(entries.len());
    // The keys' headers and short texts in one read per batch.
    for batch in entries.chunks(PREFETCH_BATCH) {
        let keys: Vec<usize> = batch.iter().map(|&(key, _)| key).collect();
        reader.prefetch(&keys);
        out.extend(
            batch
                .iter()
                .filter_map(|&(key, value)| Some((reader.text(key)?, value))),
        );
    }
    Some(out)
}

fn namespace(reader: &mut ValueReader, dict: usize) -> Option<Namespace> {
    let entries = named_entries(reader, dict)?;
    let text_of = |reader: &mut ValueReader, key: &str| {
        let &(_, value) = entries.iter().find(|(name, _)| name == key)?;
        reader.text(value)
    };
    let name = text_of(reader, "__name__")?;
    // Absolute, as code objects name their files: a relative one would be another key.
    let file = text_of(reader, "__file__").filter(|f| f.starts_with('/') && f.ends_with(".py"))?;
    let mut namespace = Namespace {
        name,
        file,
        entries: Vec::with_capacity(entries.len()),
    };
    for (key, value) in entries {
        namespace.entries.push(Entry {
            name: key,
            address: value,
        });
    }
    Some(namespace)
}

/// Reads bound values, within one budget over the snapshot.
pub struct Values<'a> {
    reader: ValueReader<'a>,
    budget: usize,
}

impl<'a> Values<'a> {
    /// A reader of `target`'s values (`types`: its type cache).
    pub fn new(target: &'a mut Target, types: &'a mut TypeCache) -> Values<'a> {
        Values {
            reader: ValueReader::new(&mut *target.memory, &target.layout, types),
            budget: MAX_CONTENT_OBJECTS,
        }
    }

    /// What the value at `address` is, as far as it is read.
    pub fn bound(&mut self, address: usize) -> Bound {
        bound(&mut self.reader, address, &mut self.budget)
    }
}

fn bound(reader: &mut ValueReader, value: usize, budget: &mut usize) -> Bound {
    let Ok(info) = reader.type_info(value) else {
        return Bound::Other;
    };
    match info.name.as_str() {
        "NoneType" | "bool" | "int" | "float" | "str" | "bytes" | "tuple" | "list" | "dict"
            if info.flags & HEAP_TYPE == 0 =>
        {
            let mut allowed = (*budget).min(MAX_VALUE_OBJECTS);
            let before = allowed;
            let content = reader.content(value, &mut allowed);
            *budget -= before - allowed;
            return content.map_or(Bound::Other, Bound::Content);
        }
        _ => {}
    }
    // A class: its type is `type` or a metaclass (`Py_TPFLAGS_TYPE_SUBCLASS`).
    let type_subclass = reader.layout().tpflags_type_subclass.unwrap_or(0) as u64;
    if info.flags & type_subclass == 0 || type_subclass == 0 {
        return Bound::Other;
    }
    class(reader, value).unwrap_or(Bound::Other)
}

fn class(reader: &mut ValueReader, class: usize) -> Option<Bound> {
    let own = reader.type_object_info(class).ok()?;
    if own.flags & HEAP_TYPE == 0 {
        return None;
    }
    let type_dict = reader.layout().type_dict;
    let dict = reader.word(class.wrapping_add(type_dict))?;
    let mut module = None;
    let mut first_line = None;
    for (key, value) in named_entries(reader, dict)? {
        match key.as_str() {
            "__module__" => module = reader.text(value),
            "__firstlineno__" => {
                let mut one = 1;
                if let Some(Content::Int(false, digits)) = reader.content(value, &mut one) {
                    first_line = match digits.as_slice() {
                        [] => Some(0),
                        [d] => Some(*d),
                        _ => None,
                    };
                }
            }
            _ => {}
        }
    }
    Some(Bound::Class {
        name: own.name,
        module,
        first_line,
    })
}
