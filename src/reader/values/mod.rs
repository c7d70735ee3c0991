//! Python values read out of the target's memory, for the function view's local variables.
//!
//! [`describe`] turns an object address into `(type name, repr)` the way `tracefunc` shows a
//! value: `type(v).__name__` and `repr(v)` cut to 50 characters (`s[:47] + "..."`). The repr is
//! rebuilt here from the object's memory, never by calling into the target, for `int`, `bool`,
//! `float`, `None`, `str`, `bytes`, and tuples, lists and dicts of those. Anything else,
//! and anything we cannot rebuild exactly (a string with a non-ASCII symbol whose printability
//! needs Unicode's tables, a container nested too deep, a split-table dict), is shown as
//! `<type at 0xADDRESS>`: never a guess.
//!
//! Target memory is hostile: every length, digit count, depth and item count is bounded, and a
//! repr stops being built as soon as it is long enough to be cut.

use super::layout::Layout;
use super::memory::{MemoryError, MemoryReader, ReadRequest};
use super::objects::{code_points, str_shape, KeyEntries};
use super::printable;

mod content;
mod repr;

pub use content::{Content, TypeInfo};

use repr::Repr;
pub use repr::{bytes_repr, code_points_repr, cut_repr, digits_to_decimal, float_repr, str_repr};

/// Characters of a repr kept, as tracefunc cuts them.
pub const MAX_REPR_CHARS: usize = 50;
/// Containers inside containers followed at most.
const MAX_DEPTH: usize = 3;
/// Items of one container read at most (the repr is long enough well before).
const MAX_ITEMS: usize = 64;
/// Longest `str` or `bytes` read, in bytes (the quote choice needs the whole value).
const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Digits (30 bits each) of an `int` decoded at most: 630 decimal digits.
const MAX_INT_DIGITS: usize = 70;
/// Longest type name read.
const MAX_TYPE_NAME: usize = 256;
/// `Py_TPFLAGS_HEAPTYPE`.
const HEAP_TYPE: u64 = 1 << 9;

/// A value as the function view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `type(v).__name__`.
    pub type_name: String,
    /// `repr(v)` cut to [`MAX_REPR_CHARS`], or `<type at 0x…>`.
    pub repr: String,
}

/// Why a repr could not be rebuilt: a memory error, or a value we do not decode exactly.
enum Refused {
    Memory(MemoryError),
    Opaque,
}

impl From<MemoryError> for Refused {
    fn from(e: MemoryError) -> Refused {
        Refused::Memory(e)
    }
}

/// The built-in types we decode, told by their type object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Float,
    NoneType,
    Str,
    Bytes,
    Tuple,
    List,
    Dict,
    Cell,
    Other,
}

/// Type objects seen before: address → (tp_name pointer, tp_flags, `__name__`, kind). An
/// entry is used only while the type's tp_name pointer and flags still read the same.
#[derive(Debug, Default)]
pub struct TypeCache {
    entries: std::collections::HashMap<usize, (usize, u64, String, Kind)>,
}

/// Types cached at most; past that the cache starts over.
const MAX_CACHED_TYPES: usize = 4096;

/// Reads values of one target.
pub struct ValueReader<'a> {
    memory: &'a mut dyn MemoryReader,
    layout: &'a Layout,
    types: &'a mut TypeCache,
    /// Blocks read ahead in one call ([`ValueReader::prefetch`]): (address, bytes).
    prefetched: Vec<(usize, Vec<u8>)>,
}

/// Bytes read ahead from each value: enough for small ints, floats, short strings and bytes,
/// and a few tuple items, so that most values need no read of their own.
pub const PREFETCH_BYTES: usize = 64;

impl<'a> ValueReader<'a> {
    pub fn new(
        memory: &'a mut dyn MemoryReader,
        layout: &'a Layout,
        types: &'a mut TypeCache,
    ) -> ValueReader<'a> {
        ValueReader {
            memory,
            layout,
            types,
            prefetched: Vec::new(),
        }
    }

    /// Read the first [`PREFETCH_BYTES`] of every object at `objects`, then the type objects
    /// they name, in two calls; later reads inside these blocks are served from them. If a
    /// batch fails (an object at the end of a mapping), values are read one by one instead.
    pub fn prefetch(&mut self, objects: &[usize]) {
        let type_span = self.layout.type_name.max(self.layout.type_flags) + 8;
        let read = |memory: &mut dyn MemoryReader, addresses: &[usize], len: usize| {
            let mut blocks: Vec<(usize, Vec<u8>)> =
                addresses.iter().map(|&a| (a, vec![0u8; len])).collect();
            let mut requests: Vec<ReadRequest> = blocks
                .iter_mut()
                .map(|(address, buf)| ReadRequest {
                    address: *address,
                    buf,
                })
                .collect();
            let ok = memory.read_many(&mut requests).is_ok();
            drop(requests);
            if ok {
                blocks
            } else {
                Vec::new()
            }
        };
        let mut objects: Vec<usize> = objects.iter().copied().filter(|&a| a != 0).collect();
        objects.sort_unstable();
        objects.dedup();
        objects.truncate(60);
        let blocks = read(self.memory, &objects, PREFETCH_BYTES);
        let at = self.layout.object_type;
        let mut types: Vec<usize> = blocks
            .iter()
            .filter_map(|(_, b)| b.get(at..at + 8))
            .map(|b| usize::from_le_bytes(b.try_into().unwrap_or_default()))
            .filter(|&t| t != 0)
            .collect();
        types.sort_unstable();
        types.dedup();
        types.truncate(60);
        let type_blocks = read(self.memory, &types, type_span);
        self.prefetched = blocks;
        self.prefetched.extend(type_blocks);
    }

    fn read(&mut self, address: usize, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (start, block) in &self.prefetched {
            if let Some(at) = address.checked_sub(*start) {
                if let Some(bytes) = block.get(at..at.saturating_add(buf.len())) {
                    buf.copy_from_slice(bytes);
                    return Ok(());
                }
            }
        }
        self.memory.read(address, buf)
    }

    fn read_usize(&mut self, address: usize) -> Result<usize, MemoryError> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Ok(usize::from_le_bytes(bytes))
    }

    /// The value at `object`: its type name and repr. A cell (a closure's variable) is
    /// followed when `deref_cell`; `Ok(None)` for an empty cell (an unbound variable).
    pub fn describe(
        &mut self,
        object: usize,
        deref_cell: bool,
    ) -> Result<Option<Described>, MemoryError> {
        let mut object = object;
        let (mut type_name, mut kind) = self.type_of(object)?;
        if kind == Kind::Cell && deref_cell {
            object = self
                .memory
                .read_usize(object.wrapping_add(self.layout.cell_ref))?;
            if object == 0 {
                return Ok(None);
            }
            (type_name, kind) = self.type_of(object)?;
        }
        let mut out = Repr::default();
        let repr = match self.repr_into(object, kind, 0, &mut out) {
            Ok(()) => out.finish(),
            Err(Refused::Opaque) => format!("<{type_name} at {object:#x}>"),
            Err(Refused::Memory(e)) => return Err(e),
        };
        Ok(Some(Described { type_name, repr }))
    }

    /// The type's `__name__` and what we know of it.
    fn type_of(&mut self, object: usize) -> Result<(String, Kind), MemoryError> {
        let type_object = self.read_usize(object.wrapping_add(self.layout.object_type))?;
        // tp_name and tp_flags in one read.
        let (name_at, flags_at) = (self.layout.type_name, self.layout.type_flags);
        let mut header = vec![0u8; name_at.max(flags_at) + 8];
        self.read(type_object, &mut header)?;
        let word =
            |at: usize| usize::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
        let (name_ptr, flags) = (word(name_at), word(flags_at) as u64);
        if let Some((cached_name, cached_flags, name, kind)) = self.types.entries.get(&type_object)
        {
            if *cached_name == name_ptr && *cached_flags == flags {
                return Ok((name.clone(), *kind));
            }
        }
        let full = self.c_string(name_ptr)?;
        // `__name__` of a static type is tp_name after its last dot; a heap type's tp_name is
        // its `__name__` already.
        let short = if flags & HEAP_TYPE != 0 {
            full.as_str()
        } else {
            full.rsplit('.').next().unwrap_or(&full)
        }
        .to_owned();
        let kind = if flags & HEAP_TYPE != 0 {
            Kind::Other
        } else {
            match full.as_str() {
                "int" => Kind::Int,
                "bool" => Kind::Bool,
                "float" => Kind::Float,
                "NoneType" => Kind::NoneType,
                "str" => Kind::Str,
                "bytes" => Kind::Bytes,
                "tuple" => Kind::Tuple,
                "list" => Kind::List,
                "dict" => Kind::Dict,
                "cell" => Kind::Cell,
                _ => Kind::Other,
            }
        };
        if self.types.entries.len() >= MAX_CACHED_TYPES {
            self.types.entries.clear();
        }
        self.types
            .entries
            .insert(type_object, (name_ptr, flags, short.clone(), kind));
        Ok((short, kind))
    }

    /// A NUL-terminated string of at most [`MAX_TYPE_NAME`] bytes, read in small steps.
    fn c_string(&mut self, address: usize) -> Result<String, MemoryError> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 32];
        while bytes.len() < MAX_TYPE_NAME {
            let at = address.wrapping_add(bytes.len());
            // Do not cross a page boundary in one read: the name may end just before one.
            let to_page = 4096 - (at % 4096);
            let n = chunk.len().min(to_page);
            self.read(at, &mut chunk[..n])?;
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                bytes.extend_from_slice(&chunk[..end]);
                return Ok(String::from_utf8_lossy(&bytes).into_owned());
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        Err(MemoryError::Unmapped(address))
    }

    fn repr_into(
        &mut self,
        object: usize,
        kind: Kind,
        depth: usize,
        out: &mut Repr,
    ) -> Result<(), Refused> {
        if out.full() {
            return Ok(());
        }
        match kind {
            Kind::NoneType => out.push_str("None"),
            Kind::Bool => {
                let (negative, digits) = self.int_digits(object)?;
                let truth = negative || digits.iter().any(|&d| d != 0);
                out.push_str(if truth { "True" } else { "False" });
            }
            Kind::Int => {
                let (negative, digits) = self.int_digits(object)?;
                if negative {
                    out.push_str("-");
                }
                out.push_str(&digits_to_decimal(
                    &digits,
                    self.layout.long_digit_bits as u32,
                ));
            }
            Kind::Float => {
                let mut raw = [0u8; 8];
                self.read(object.wrapping_add(self.layout.float_value), &mut raw)?;
                out.push_str(&float_repr(f64::from_le_bytes(raw)));
            }
            Kind::Str => {
                let text = self.unicode(object)?;
                let repr = code_points_repr(&text, out.room()).ok_or(Refused::Opaque)?;
                out.push_str(&repr);
            }
            Kind::Bytes => {
                let length = self.size(object)?;
                if length > MAX_TEXT_BYTES {
                    return Err(Refused::Opaque);
                }
                let mut data = vec![0u8; length];
                self.read(object.wrapping_add(self.layout.bytes_sval), &mut data)?;
                out.push_str(&bytes_repr(&data));
            }
            Kind::Tuple | Kind::List => {
                if depth >= MAX_DEPTH {
                    return Err(Refused::Opaque);
                }
                let length = self.size(object)?;
                let items_at = if kind == Kind::Tuple {
                    object.wrapping_add(self.layout.tuple_items)
                } else {
                    self.read_usize(object.wrapping_add(self.layout.list_items))?
                };
                let (open, close) = if kind == Kind::Tuple {
                    ("(", ")")
                } else {
                    ("[", "]")
                };
                out.push_str(open);
                let items = self.pointers(items_at, length.min(MAX_ITEMS))?;
                for (i, &item) in items.iter().enumerate() {
                    if out.full() {
                        return Ok(());
                    }
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.item_into(item, depth, out)?;
                }
                if out.full() {
                    return Ok(());
                }
                if length > MAX_ITEMS {
                    return Err(Refused::Opaque);
                }
                if kind == Kind::Tuple && length == 1 {
                    out.push_str(",");
                }
                out.push_str(close);
            }
            Kind::Dict => {
                if depth >= MAX_DEPTH {
                    return Err(Refused::Opaque);
                }
                self.dict_into(object, depth, out)?;
            }
            Kind::Cell | Kind::Other => return Err(Refused::Opaque),
        }
        Ok(())
    }

    fn item_into(&mut self, item: usize, depth: usize, out: &mut Repr) -> Result<(), Refused> {
        if item == 0 {
            return Err(Refused::Opaque);
        }
        let (_, kind) = self.type_of(item)?;
        self.repr_into(item, kind, depth + 1, out)
    }

    /// Combined-table dicts: entries in insertion order, deleted ones (NULL value) skipped.
    /// Split tables (an instance's `__dict__`, and before 3.11 also `{}`) are opaque unless
    /// empty.
    fn dict_into(&mut self, object: usize, depth: usize, out: &mut Repr) -> Result<(), Refused> {
        let l = self.layout;
        let used = self.read_usize(object.wrapping_add(l.dict_used))?;
        if used == 0 {
            out.push_str("{}");
            return Ok(());
        }
        if used > isize::MAX as usize {
            return Err(Refused::Opaque);
        }
        if self.read_usize(object.wrapping_add(l.dict_values))? != 0 {
            return Err(Refused::Opaque); // a split table
        }
        let keys = self.read_usize(object.wrapping_add(l.dict_keys))?;
        let table = self.key_table(keys)?;
        let read_entries = table.nentries.min(4 * MAX_ITEMS);
        let mut raw = vec![0u8; read_entries * table.entry_size];
        self.read(table.entries, &mut raw)?;
        out.push_str("{");
        let mut shown = 0usize;
        for entry in raw.chunks_exact(table.entry_size) {
            let pointer = |at: usize| {
                entry
                    .get(at..at + 8)
                    .map(|b| usize::from_le_bytes(b.try_into().unwrap_or_default()))
                    .unwrap_or(0)
            };
            let (key, value) = (pointer(table.key_at), pointer(table.value_at));
            if value == 0 {
                continue;
            }
            if out.full() {
                return Ok(());
            }
            if shown > 0 {
                out.push_str(", ");
            }
            self.item_into(key, depth, out)?;
            out.push_str(": ");
            self.item_into(value, depth, out)?;
            shown += 1;
        }
        if out.full() {
            return Ok(());
        }
        if shown != used {
            return Err(Refused::Opaque); // more entries than read, or torn
        }
        out.push_str("}");
        Ok(())
    }

    /// Where the entries of the key table at `keys` are, and how they are laid out, decoded
    /// as the layout's [`DictKeyTable`](crate::reader::layout::DictKeyTable) says (the same
    /// decoding and bounds as the snapshot walk's).
    fn key_table(&mut self, keys: usize) -> Result<KeyEntries, Refused> {
        let shape = self.layout.dict_key_table;
        let mut header = vec![0u8; shape.header_size()];
        self.read(keys, &mut header)?;
        shape.decode(keys, &header).ok_or(Refused::Opaque)
    }

    /// `ob_size`, checked.
    fn size(&mut self, object: usize) -> Result<usize, Refused> {
        let size = self.read_usize(object.wrapping_add(self.layout.var_object_size))?;
        if size > isize::MAX as usize {
            return Err(Refused::Opaque);
        }
        Ok(size)
    }

    fn pointers(&mut self, at: usize, count: usize) -> Result<Vec<usize>, Refused> {
        let mut raw = vec![0u8; count * 8];
        self.read(at, &mut raw)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| usize::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }

    /// An int's sign and digits, least significant first.
    fn int_digits(&mut self, object: usize) -> Result<(bool, Vec<u32>), Refused> {
        let l = self.layout;
        let (negative, count) = match l.long_tag {
            // 3.12+: lv_tag = digits << 3 | sign (0 positive, 1 zero, 2 negative).
            Some(tag_at) => {
                let tag = self.read_usize(object.wrapping_add(tag_at))?;
                match tag & 3 {
                    0 | 1 => (false, tag >> 3),
                    2 => (true, tag >> 3),
                    _ => return Err(Refused::Opaque),
                }
            }
            None => {
                let size = self
                    .memory
                    .read_usize(object.wrapping_add(l.var_object_size))?
                    as isize;
                (size < 0, size.unsigned_abs())
            }
        };
        if count > MAX_INT_DIGITS || l.long_digit_size != 4 || l.long_digit_bits > 31 {
            return Err(Refused::Opaque);
        }
        let mut raw = vec![0u8; count * 4];
        self.read(object.wrapping_add(l.long_digits), &mut raw)?;
        let limit = 1u32 << l.long_digit_bits;
        let digits: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        if digits.iter().any(|&d| d >= limit) {
            return Err(Refused::Opaque);
        }
        Ok((negative, digits))
    }

    /// A compact `str`'s code points (lone surrogates included, as Python keeps them).
    fn unicode(&mut self, object: usize) -> Result<Vec<u32>, Refused> {
        let l = self.layout;
        let mut header = vec![0u8; l.unicode_compact_size];
        self.read(object, &mut header)?;
        let shape = str_shape(l, &header, MAX_TEXT_BYTES).ok_or(Refused::Opaque)?;
        let mut raw = vec![0u8; shape.bytes()];
        self.read(object.wrapping_add(shape.data_at), &mut raw)?;
        Ok(code_points(shape.kind, &raw))
    }
}
