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
use super::printable::{printability, Printability};

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

    /// Where the entries of the key table at `keys` are, and how they are laid out. The
    /// layout says which table this version has: `dk_size` and its index width (3.8–3.10) or
    /// `dk_log2_size`, `dk_log2_index_bytes` and `dk_kind` (3.11+).
    fn key_table(&mut self, keys: usize) -> Result<KeyTable, Refused> {
        let l = self.layout;
        let (Some(nentries_at), Some(indices_at)) = (l.dict_keys_nentries, l.dict_keys_indices)
        else {
            return Err(Refused::Opaque);
        };
        let mut header = vec![0u8; indices_at];
        self.read(keys, &mut header)?;
        let byte = |at: usize| header.get(at).copied();
        let word = |at: usize| {
            header
                .get(at..at + 8)
                .map(|b| usize::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        let nentries = word(nentries_at).ok_or(Refused::Opaque)?;
        let general = (l.dict_entry_size, l.dict_entry_key, l.dict_entry_value);
        let (size, index_bytes, (entry_size, key_at, value_at)) =
            match (l.dict_keys_size, l.dict_keys_log2_size) {
                (Some(size_at), _) => {
                    let size = word(size_at).ok_or(Refused::Opaque)?;
                    if !size.is_power_of_two() || size > 1 << 30 {
                        return Err(Refused::Opaque);
                    }
                    let width = match size {
                        0..=0xff => 1,
                        0x100..=0xffff => 2,
                        _ => 4, // 8-byte indices start past 2^32 slots, beyond the bound
                    };
                    (size, size * width, general)
                }
                (None, Some(log2_size_at)) => {
                    let (Some(log2_size), Some(log2_index_bytes), Some(kind)) = (
                        byte(log2_size_at),
                        l.dict_keys_log2_index_bytes.and_then(byte),
                        l.dict_keys_kind.and_then(byte),
                    ) else {
                        return Err(Refused::Opaque);
                    };
                    if log2_size > 30 || log2_index_bytes > 40 {
                        return Err(Refused::Opaque);
                    }
                    let entries = if Some(kind) == l.dict_kind_general {
                        general
                    } else {
                        (
                            l.dict_unicode_entry_size,
                            l.dict_unicode_entry_key,
                            l.dict_unicode_entry_value,
                        )
                    };
                    (1usize << log2_size, 1usize << log2_index_bytes, entries)
                }
                (None, None) => return Err(Refused::Opaque),
            };
        let (Some(entry_size), Some(key_at), Some(value_at)) = (entry_size, key_at, value_at)
        else {
            return Err(Refused::Opaque);
        };
        if nentries > size || entry_size == 0 {
            return Err(Refused::Opaque);
        }
        Ok(KeyTable {
            nentries,
            entries: keys.wrapping_add(indices_at).wrapping_add(index_bytes),
            entry_size,
            key_at,
            value_at,
        })
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
        let field = |at: usize, size: usize| {
            header
                .get(at..at + size)
                .map(|b| b.iter().rev().fold(0usize, |acc, &x| acc << 8 | x as usize))
        };
        let length = field(l.unicode_length, 8).unwrap_or(usize::MAX);
        let state = field(l.unicode_state, 4).unwrap_or(0) as u32;
        let kind = l.unicode_kind.extract(state) as usize;
        let compact = l.unicode_compact.extract(state) == 1;
        let ascii = l.unicode_ascii.extract(state) == 1;
        if !compact || !matches!(kind, 1 | 2 | 4) || length.saturating_mul(kind) > MAX_TEXT_BYTES {
            return Err(Refused::Opaque);
        }
        let data = object.wrapping_add(if ascii {
            l.unicode_ascii_size
        } else {
            l.unicode_compact_size
        });
        let mut raw = vec![0u8; length * kind];
        self.read(data, &mut raw)?;
        Ok(match kind {
            1 => raw.iter().map(|&b| u32::from(b)).collect(),
            2 => raw
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }
}

/// A dict's key table, as [`ValueReader::key_table`] finds it.
struct KeyTable {
    /// Entries used, deleted ones included.
    nentries: usize,
    /// Address of the first entry.
    entries: usize,
    entry_size: usize,
    key_at: usize,
    value_at: usize,
}

/// A repr being built: stops growing once it is longer than [`MAX_REPR_CHARS`].
#[derive(Default)]
struct Repr {
    text: String,
    chars: usize,
}

impl Repr {
    fn full(&self) -> bool {
        self.chars > MAX_REPR_CHARS
    }

    /// Characters still kept before the repr is long enough to be cut.
    fn room(&self) -> usize {
        (MAX_REPR_CHARS + 1).saturating_sub(self.chars)
    }

    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if self.full() {
                return;
            }
            self.text.push(c);
            self.chars += 1;
        }
    }

    /// tracefunc's cut: `s if len(s) <= 50 else s[:47] + "..."`.
    fn finish(self) -> String {
        cut_repr(&self.text)
    }
}

/// tracefunc's cut of a repr: `s if len(s) <= 50 else s[:47] + "..."` (characters).
pub fn cut_repr(s: &str) -> String {
    if s.chars().count() <= MAX_REPR_CHARS {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(MAX_REPR_CHARS - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// Decimal digits of a magnitude given in base-2^bits digits, least significant first.
pub fn digits_to_decimal(digits: &[u32], bits: u32) -> String {
    // Base 10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = Vec::new();
    for &digit in digits.iter().rev() {
        let mut carry = u64::from(digit);
        for limb in limbs.iter_mut() {
            let value = (u64::from(*limb) << bits) + carry;
            *limb = (value % 1_000_000_000) as u32;
            carry = value / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    match limbs.split_last() {
        None => "0".to_owned(),
        Some((top, rest)) => {
            let mut s = top.to_string();
            for limb in rest.iter().rev() {
                s.push_str(&format!("{limb:09}"));
            }
            s
        }
    }
}

/// `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal
/// point falls within -4 < exponent <= 16, else `d.ddde+XX`.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let formatted = format!("{value:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exponent + 1; // position of the decimal point after the first digit
    if value == 0.0 {
        return format!("{sign}0.0");
    }
    if -4 < decpt && decpt <= 16 {
        let n = digits.len() as i32;
        let body = if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= n {
            format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
        } else {
            format!(
                "{}.{}",
                &digits[..decpt as usize],
                &digits[decpt as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = decpt - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{sign}{first}{point}e{e_sign}{:02}", e.abs())
    }
}

/// The quote Python's reprs choose: `'` unless the text has `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// `repr(str)`; `None` when a character's printability differs between the supported
/// versions (see [`printable`](super::printable)), so that the target's repr is not known.
pub fn str_repr(text: &str) -> Option<String> {
    let code_points: Vec<u32> = text.chars().map(u32::from).collect();
    code_points_repr(&code_points, usize::MAX)
}

/// `repr(str)` of a string's code points (a lone surrogate included), built until it is longer
/// than `limit` characters: a character past that point cannot make the kept part opaque.
/// `None` if a character before it is printable in some supported versions only.
///
/// As CPython's `unicode_repr`: quotes `'` unless the text has `'` and no `"`; `\\`, `\t`,
/// `\n`, `\r` and the quote escaped; other ASCII controls and DEL as `\xNN`; other ASCII as
/// is; beyond ASCII, a printable character as is and any other as `\xNN` (up to U+00FF),
/// `\uNNNN` (up to U+FFFF) or `\UNNNNNNNN`, in lowercase hex.
pub fn code_points_repr(code_points: &[u32], limit: usize) -> Option<String> {
    let has = |c: char| code_points.contains(&u32::from(c));
    let quote = quote_for(has('\''), has('"'));
    let mut out = String::with_capacity(code_points.len().min(limit) + 2);
    let mut chars = 1usize;
    out.push(quote);
    for &code in code_points {
        if chars > limit {
            return Some(out);
        }
        let start = out.len();
        match char::from_u32(code) {
            Some('\\') => out.push_str("\\\\"),
            Some('\t') => out.push_str("\\t"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some(c) if c == quote => {
                out.push('\\');
                out.push(c);
            }
            Some(_) if code < 0x20 || code == 0x7f => out.push_str(&format!("\\x{code:02x}")),
            Some(c) if code < 0x7f => out.push(c),
            _ => match printability(code) {
                Printability::Printable => out.push(char::from_u32(code)?),
                Printability::Unprintable if code <= 0xff => {
                    out.push_str(&format!("\\x{code:02x}"))
                }
                Printability::Unprintable if code <= 0xffff => {
                    out.push_str(&format!("\\u{code:04x}"))
                }
                Printability::Unprintable => out.push_str(&format!("\\U{code:08x}")),
                Printability::Differs => return None,
            },
        }
        chars += out[start..].chars().count();
    }
    out.push(quote);
    Some(out)
}

/// `repr(bytes)`.
pub fn bytes_repr(data: &[u8]) -> String {
    let quote = quote_for(data.contains(&b'\''), data.contains(&b'"'));
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b as char == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_does() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (-0.0, "-0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
        ];
        for (value, want) in cases {
            assert_eq!(float_repr(value), want, "{value}");
        }
    }

    #[test]
    fn ints_in_decimal() {
        assert_eq!(digits_to_decimal(&[], 30), "0");
        assert_eq!(digits_to_decimal(&[7], 30), "7");
        // 2**30 + 5
        assert_eq!(digits_to_decimal(&[5, 1], 30), "1073741829");
        // 2**90 = 1237940039285380274899124224
        assert_eq!(
            digits_to_decimal(&[0, 0, 0, 1], 30),
            "1237940039285380274899124224"
        );
    }

    #[test]
    fn strings_and_bytes_quote_and_escape_as_python_does() {
        assert_eq!(str_repr("hi").unwrap(), "'hi'");
        assert_eq!(str_repr("it's").unwrap(), "\"it's\"");
        assert_eq!(str_repr("'\"").unwrap(), "'\\'\"'");
        assert_eq!(str_repr("a\nb\t\\\x01").unwrap(), "'a\\nb\\t\\\\\\x01'");
        assert_eq!(str_repr("café ß\u{a0}").unwrap(), "'café ß\\xa0'");
        assert_eq!(str_repr("日本").unwrap(), "'日本'");
        assert_eq!(str_repr("→").unwrap(), "'→'");
        assert_eq!(bytes_repr(b"ab\x00'"), "b\"ab\\x00'\"");
        assert_eq!(bytes_repr(b"\xff\\"), "b'\\xff\\\\'");
    }

    #[test]
    fn escapes_beyond_ascii_follow_python() {
        // Each repr is what every CPython 3.8-3.14 prints.
        let cases: &[(&[u32], &str)] = &[
            (&[0x68, 0xe9, 0x6c, 0x6c, 0x6f], "'héllo'"),
            (&[0x80, 0x9f, 0xa0, 0xad, 0xff], "'\\x80\\x9f\\xa0\\xadÿ'"),
            (&[0x378], "'\\u0378'"), // unassigned
            (&[0x200b, 0x2028, 0xfeff], "'\\u200b\\u2028\\ufeff'"), // Cf, Zl, Cf
            (&[0x3000], "'\\u3000'"), // IDEOGRAPHIC SPACE (Zs)
            (&[0xd800, 0xdfff], "'\\ud800\\udfff'"), // lone surrogates
            (&[0xe000], "'\\ue000'"), // private use
            (&[0x1f40d], "'🐍'"),
            (&[0x4e16, 0x754c], "'世界'"),
            (&[0xe0001], "'\\U000e0001'"), // LANGUAGE TAG (Cf)
            (&[0x10ffff], "'\\U0010ffff'"),
            (&[0x27, 0x2028], "\"'\\u2028\""), // the quote choice holds beyond ASCII
        ];
        for (code_points, want) in cases {
            assert_eq!(
                code_points_repr(code_points, usize::MAX).as_deref(),
                Some(*want),
                "{code_points:x?}"
            );
        }
    }

    #[test]
    fn a_character_printable_in_some_versions_only_is_opaque_unless_cut_off() {
        // U+1FAE8 SHAKING FACE: Unicode 15.0, printable from Python 3.12 on only.
        assert_eq!(code_points_repr(&[0x61, 0x1fae8], usize::MAX), None);
        // Not a code point at all.
        assert_eq!(code_points_repr(&[0x110000], usize::MAX), None);
        // Past the cut it does not matter: the kept part is the same in every version.
        let mut long = vec![0x78u32; 60];
        long.push(0x1fae8);
        let cut = cut_repr(&code_points_repr(&long, MAX_REPR_CHARS + 1).unwrap());
        assert_eq!(cut, format!("'{}...", "x".repeat(46)));
        // The quote is chosen from the whole text, even past the cut.
        long.push(0x27);
        let cut = cut_repr(&code_points_repr(&long, MAX_REPR_CHARS + 1).unwrap());
        assert_eq!(cut, format!("\"{}...", "x".repeat(46)));
    }

    #[test]
    fn reprs_are_cut_as_tracefunc_cuts_them() {
        let long = "x".repeat(60);
        let cut = cut_repr(&long);
        assert_eq!(cut.chars().count(), 50);
        assert!(cut.ends_with("..."));
        assert_eq!(cut_repr("short"), "short");
        assert_eq!(cut_repr(&"y".repeat(50)), "y".repeat(50));
    }
}
