//! Instances, lists and tuples: code reachable only through objects (coverage issue, item 3).
//!
//! toolz's `curry` objects hold their function in a `functools.partial` in the instance's
//! `__dict__`; `functools.lru_cache` wrappers, `partial`s, objects with `__slots__`, lists of
//! callbacks and functions' own attributes (`__wrapped__`) and defaults hold functions the
//! namespaces do not. Such objects are queued while the namespaces are walked and scanned
//! afterwards, breadth first (every module's own instances before what they hold), within a
//! budget of objects and of reads.
//!
//! A scan is conservative: every word of the object's own fields (`tp_basicsize`), of its
//! managed `__dict__` or inline attribute values, or of a list's or tuple's items is a
//! *candidate*, followed only if it points at a live object (aligned, a plausible reference
//! count) whose type is a real type object (its own type is `type`, or a metaclass whose type
//! is `type`). A candidate that is no pointer cannot pass for one unless it is the address of
//! a live object, and then what is followed is that live object: a function found that way
//! was still made by its `def`, and a code object is still only taken if it reads as one
//! twice (`read_code`). Bounds only lower recall.

use super::{read_usize_at, Kind, Walker, MAX_PLAUSIBLE_REFCNT};
use crate::reader::memory::MemoryError;

/// Objects scanned at most over one walk (instances, functions' fields, lists, tuples).
pub(super) const MAX_SCANNED: usize = 1 << 17;
/// Read requests the scans may make over one walk.
const MAX_SCAN_READS: u64 = 1 << 21;
/// Bytes of an object's own fields scanned at most.
pub(super) const MAX_FIELD_BYTES: usize = 512;
/// Items of one list or tuple, and attribute values of one instance, scanned at most.
const MAX_ITEMS: usize = 1 << 12;
/// Candidate pointers above this are no user-space address.
const MAX_ADDRESS: usize = 1 << 47;

/// `Py_TPFLAGS_HEAPTYPE` (Include/object.h, unchanged since 2.x): a class made by a `class`
/// statement; its instances are scanned.
pub(super) const TPFLAGS_HEAPTYPE: usize = 1 << 9;

/// Where an object's managed `__dict__` and attribute values live, per version (from
/// Include/object.h and Include/internal/pycore_object.h, pycore_dict.h of each version;
/// checked against each interpreter's `type.__flags__` by tests/it/snapshot_instances.rs).
#[derive(Debug, Clone, Copy)]
pub(super) struct ObjectModel {
    /// `Py_TPFLAGS_MANAGED_DICT`.
    pub managed_dict_flag: usize,
    /// `MANAGED_DICT_OFFSET`: the word before the object that holds the dict (or, on 3.12,
    /// the tagged values pointer).
    pub managed_dict_offset: isize,
    /// 3.12's `PyDictOrValues`: a word with its low bit set is the values pointer minus one,
    /// the values' insertion order kept in the bytes before them.
    pub tagged_values: bool,
    /// 3.11's `_PyObject_ValuesPointer`: the word (before the object) holding the values
    /// pointer apart from the dict's, the insertion order kept before the values as on 3.12.
    pub values_slot: Option<isize>,
    /// 3.13+'s `Py_TPFLAGS_INLINE_VALUES`: the values follow the object at `tp_basicsize`.
    pub inline_values_flag: Option<usize>,
    /// Offset of `values[0]` in `PyDictValues` (3.13+ has a 4-byte header, padded).
    pub values_items: usize,
}

/// The model of `version`, if one is known (3.11+).
pub(super) fn object_model(version: crate::reader::PyVersion) -> Option<ObjectModel> {
    match (version.major, version.minor) {
        // 3.11's Include/internal/pycore_object.h: the dict at obj - 3 words, the values at
        // obj - 4 (`_PyObject_ManagedDictPointer`, `_PyObject_ValuesPointer`).
        (3, 11) => Some(ObjectModel {
            managed_dict_flag: 1 << 4,
            managed_dict_offset: -3 * 8,
            tagged_values: false,
            values_slot: Some(-4 * 8),
            inline_values_flag: None,
            values_items: 0,
        }),
        (3, 12) => Some(ObjectModel {
            managed_dict_flag: 1 << 4,
            managed_dict_offset: -3 * 8,
            tagged_values: true,
            values_slot: None,
            inline_values_flag: None,
            values_items: 0,
        }),
        (3, 13..=15) => Some(ObjectModel {
            managed_dict_flag: 1 << 4,
            managed_dict_offset: -3 * 8,
            tagged_values: false,
            values_slot: None,
            inline_values_flag: Some(1 << 2),
            values_items: 8,
        }),
        _ => None,
    }
}

impl Walker<'_> {
    /// Queue `object` (an instance, function, list or tuple) for a scan, once.
    pub(super) fn queue_scan(&mut self, object: usize, depth: usize) {
        if self.pending.len() < MAX_SCANNED {
            self.pending.push_back((object, depth));
        } else {
            self.stats.scan_truncated = true;
        }
    }

    /// Scan every queued object, breadth first, until the queue is empty or a budget is spent.
    pub(super) fn drain_scans(&mut self) {
        let reads_at_start = self.memory.calls();
        while let Some((object, depth)) = self.pending.pop_front() {
            if self.stats.scanned >= MAX_SCANNED
                || self.memory.calls().saturating_sub(reads_at_start) > MAX_SCAN_READS
            {
                self.stats.scan_truncated = true;
                self.pending.clear();
                return;
            }
            self.stats.scanned += 1;
            let candidates = match self.kind_of(object) {
                Kind::Instance {
                    bytes,
                    managed,
                    inline,
                } => self.instance_words(object, bytes as usize, managed, inline),
                Kind::Function => {
                    let bytes = self.function_bytes;
                    self.words(object, bytes)
                }
                Kind::List => self.list_items(object),
                Kind::Tuple => self.tuple_items(object).unwrap_or_default(),
                _ => Vec::new(),
            };
            for candidate in candidates {
                match self.plausible_object(candidate) {
                    // Never of interest: not read again.
                    Some(Kind::Other | Kind::Cell | Kind::Module)
                        if self.visited.len() < super::MAX_OBJECTS =>
                    {
                        self.visited.insert(candidate);
                    }
                    Some(Kind::Other | Kind::Cell | Kind::Module) => {}
                    Some(_) => self.object(candidate, depth + 1),
                    None => {}
                }
            }
        }
    }

    /// The words of an instance's own fields, of its managed dict or inline values.
    fn instance_words(
        &mut self,
        object: usize,
        bytes: usize,
        managed: bool,
        inline: bool,
    ) -> Vec<usize> {
        let mut words = self.words(object, bytes);
        // Its class, which may be reachable from no module.
        if let Ok(class) = self
            .memory
            .read_usize(object.wrapping_add(self.layout.object_type))
        {
            words.push(class);
        }
        let Some(model) = self.model else {
            return words;
        };
        if managed {
            let slot = object.wrapping_add_signed(model.managed_dict_offset);
            match self.memory.read_usize(slot) {
                Ok(0) => {}
                Ok(tagged) if model.tagged_values && tagged & 1 == 1 => {
                    words.extend(self.ordered_values(tagged.wrapping_add(1)));
                }
                // A dict: followed as a candidate (its split values are read there).
                Ok(dict) => words.push(dict),
                Err(_) => self.stats.unreadable += 1,
            }
            if let Some(at) = model.values_slot {
                match self.memory.read_usize(object.wrapping_add_signed(at)) {
                    Ok(0) => {}
                    Ok(values) => words.extend(self.ordered_values(values)),
                    Err(_) => self.stats.unreadable += 1,
                }
            }
        }
        if inline {
            let values = object.wrapping_add(bytes);
            // `PyDictValues`: capacity is its first byte (3.13+).
            let mut head = [0u8; 1];
            if self.memory.read(values, &mut head).is_ok() {
                let capacity = head[0] as usize;
                words.extend(self.value_words(values.wrapping_add(model.values_items), capacity));
            }
        }
        words
    }

    /// 3.11's and 3.12's values of a managed dict: the insertion order (the `size` byte at `values - 2`,
    /// the indices before it, `prefix` bytes in all) gives which slots hold a value.
    fn ordered_values(&mut self, values: usize) -> Vec<usize> {
        let mut prefix_size = [0u8; 1];
        if self
            .memory
            .read(values.wrapping_sub(1), &mut prefix_size)
            .is_err()
        {
            return Vec::new();
        }
        let prefix = prefix_size[0] as usize;
        if prefix < 2 {
            return Vec::new();
        }
        let mut prefix_bytes = vec![0u8; prefix];
        if self
            .memory
            .read(values.wrapping_sub(prefix), &mut prefix_bytes)
            .is_err()
        {
            return Vec::new();
        }
        let size = prefix_bytes[prefix - 2] as usize;
        let order = prefix_bytes[..prefix - 2].iter().rev().take(size);
        let slots = order.map(|&ix| ix as usize + 1).max().unwrap_or(0);
        self.value_words(values, slots)
    }

    /// The values of a split dict (`ma_values`), `count` slots.
    pub(super) fn split_values(&mut self, values: usize, count: usize) -> Vec<usize> {
        let Some(model) = self.model else {
            return Vec::new();
        };
        if model.tagged_values || model.values_slot.is_some() {
            // 3.11, 3.12: `ma_values` is the values array itself, its order in the prefix.
            return self.ordered_values(values);
        }
        self.value_words(values.wrapping_add(model.values_items), count)
    }

    /// `count` words (at most `MAX_ITEMS`) from `at`, or none if they cannot be read.
    fn value_words(&mut self, at: usize, count: usize) -> Vec<usize> {
        let count = count.min(MAX_ITEMS);
        let mut raw = vec![0u8; count * 8];
        if count == 0 || self.memory.read(at, &mut raw).is_err() {
            return Vec::new();
        }
        raw.chunks_exact(8)
            .filter_map(|w| read_usize_at(w, 0))
            .collect()
    }

    /// The words of an object's fields after its header, `bytes` of the object in all.
    fn words(&mut self, object: usize, bytes: usize) -> Vec<usize> {
        let head = self.layout.object_head_size;
        let bytes = bytes.min(MAX_FIELD_BYTES);
        if bytes <= head {
            return Vec::new();
        }
        self.value_words(object.wrapping_add(head), (bytes - head) / 8)
    }

    /// The items of a list (at most `MAX_ITEMS`).
    fn list_items(&mut self, list: usize) -> Vec<usize> {
        let layout = self.layout;
        let Ok(len) = self
            .memory
            .read_usize(list.wrapping_add(layout.var_object_size))
        else {
            return Vec::new();
        };
        let Ok(items) = self.memory.read_usize(list.wrapping_add(layout.list_items)) else {
            return Vec::new();
        };
        if len > MAX_ITEMS || items == 0 {
            return Vec::new();
        }
        self.value_words(items, len)
    }

    /// The kind of `candidate` if it is the address of a live object whose type is a real
    /// type (and it was not visited yet).
    fn plausible_object(&mut self, candidate: usize) -> Option<Kind> {
        if candidate == 0
            || !candidate.is_multiple_of(8)
            || candidate >= MAX_ADDRESS
            || self.visited.contains(&candidate)
        {
            return None;
        }
        let mut head = [0u8; 16];
        let (refcnt_at, type_at) = (self.layout.object_refcnt, self.layout.object_type);
        if refcnt_at + 8 > head.len() || type_at + 8 > head.len() {
            return None;
        }
        self.memory.read(candidate, &mut head).ok()?;
        let refcnt = read_usize_at(&head, refcnt_at).unwrap_or(0);
        let type_ptr = read_usize_at(&head, type_at).unwrap_or(0);
        let live = refcnt != 0 && refcnt <= MAX_PLAUSIBLE_REFCNT && self.is_type(type_ptr);
        live.then(|| self.kind_of_type(type_ptr))
    }

    /// True if `type_ptr` is a type object: its type is `type`, or a metaclass (a subclass of
    /// `type`) whose own type is `type`. Cached per address.
    fn is_type(&mut self, type_ptr: usize) -> bool {
        if let Some(&known) = self.types_checked.get(&type_ptr) {
            return known;
        }
        let verdict = self.check_type(type_ptr).unwrap_or(false);
        if self.types_checked.len() < super::MAX_OBJECTS {
            self.types_checked.insert(type_ptr, verdict);
        }
        verdict
    }

    fn check_type(&mut self, type_ptr: usize) -> Result<bool, MemoryError> {
        if type_ptr == 0 || !type_ptr.is_multiple_of(8) || type_ptr >= MAX_ADDRESS {
            return Ok(false);
        }
        let type_at = self.layout.object_type;
        let meta = self.memory.read_usize(type_ptr.wrapping_add(type_at))?;
        if meta == self.type_type {
            return Ok(true);
        }
        if meta == 0 || !meta.is_multiple_of(8) || meta >= MAX_ADDRESS {
            return Ok(false);
        }
        let meta_type = self.memory.read_usize(meta.wrapping_add(type_at))?;
        let subclass = self.layout.tpflags_type_subclass.unwrap_or(0);
        Ok(meta_type == self.type_type && self.type_flags(meta)? & subclass != 0)
    }
}
