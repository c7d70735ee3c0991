//! A value's whole content, read exactly (not a repr cut short), for the snapshot's module
//! namespaces: constants (`None`, `bool`, `int`, `float`, `str`, `bytes`) and exact `tuple`,
//! `list` and `dict` objects of those, nested. Anything else, a subclass, a split-table dict, or
//! a value over the budget is `None`: never a guess.

use super::{Kind, Refused, ValueReader};
use crate::reader::layout::Layout;
use crate::reader::memory::MemoryError;

/// Containers inside containers followed at most.
const MAX_CONTENT_DEPTH: usize = 16;
/// Items of one container read at most.
const MAX_CONTENT_ITEMS: usize = 1 << 16;

/// A value's content, as its memory holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    None,
    Bool(bool),
    /// Sign (true: negative) and base-2^`PyLong_SHIFT` digits, least significant first, with
    /// no most significant zero digit.
    Int(bool, Vec<u32>),
    /// The bits of the double.
    Float(u64),
    Str(Vec<u32>),
    Bytes(Vec<u8>),
    Tuple(Vec<Content>),
    List(Vec<Content>),
    /// Entries in insertion order.
    Dict(Vec<(Content, Content)>),
}

/// What a type object says of itself: its address, `tp_flags` and `tp_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub address: usize,
    pub flags: u64,
    pub name: String,
}

impl ValueReader<'_> {
    /// The content of the value at `object`; `budget` is the count of objects still allowed
    /// to be read (each one read spends one); `None` if opaque, unreadable or over budget.
    pub fn content(&mut self, object: usize, budget: &mut usize) -> Option<Content> {
        self.content_at(object, 0, budget).ok()
    }

    fn content_at(
        &mut self,
        object: usize,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Content, Refused> {
        if object == 0 || depth > MAX_CONTENT_DEPTH || *budget == 0 {
            return Err(Refused::Opaque);
        }
        *budget -= 1;
        let (_, kind) = self.type_of(object)?;
        Ok(match kind {
            Kind::NoneType => Content::None,
            Kind::Bool => {
                let (negative, digits) = self.int_digits(object)?;
                Content::Bool(negative || digits.iter().any(|&d| d != 0))
            }
            Kind::Int => {
                if self.layout.long_digit_bits != 30 {
                    return Err(Refused::Opaque); // the displays' digits are 30-bit
                }
                let (negative, mut digits) = self.int_digits(object)?;
                while digits.last() == Some(&0) {
                    digits.pop();
                }
                Content::Int(negative && !digits.is_empty(), digits)
            }
            Kind::Float => {
                let mut raw = [0u8; 8];
                self.read(object.wrapping_add(self.layout.float_value), &mut raw)?;
                Content::Float(u64::from_le_bytes(raw))
            }
            Kind::Str => Content::Str(self.unicode(object)?),
            Kind::Bytes => {
                let length = self.size(object)?;
                if length > super::MAX_TEXT_BYTES {
                    return Err(Refused::Opaque);
                }
                let mut data = vec![0u8; length];
                self.read(object.wrapping_add(self.layout.bytes_sval), &mut data)?;
                Content::Bytes(data)
            }
            Kind::Tuple | Kind::List => {
                let length = self.size(object)?;
                if length > MAX_CONTENT_ITEMS || length > *budget {
                    return Err(Refused::Opaque);
                }
                let items_at = if kind == Kind::Tuple {
                    object.wrapping_add(self.layout.tuple_items)
                } else {
                    self.read_usize(object.wrapping_add(self.layout.list_items))?
                };
                let items = self.pointers(items_at, length)?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.content_at(item, depth + 1, budget)?);
                }
                if kind == Kind::Tuple {
                    Content::Tuple(out)
                } else {
                    Content::List(out)
                }
            }
            Kind::Dict => {
                let entries = self.dict_items(object)?;
                if entries.len() > *budget {
                    return Err(Refused::Opaque);
                }
                let mut out = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key = self.content_at(key, depth + 1, budget)?;
                    out.push((key, self.content_at(value, depth + 1, budget)?));
                }
                Content::Dict(out)
            }
            Kind::Cell | Kind::Other => return Err(Refused::Opaque),
        })
    }

    /// The (key, value) addresses of an exact or subclassed dict's combined table, in
    /// insertion order; `None` for a split table, a torn read or over [`MAX_CONTENT_ITEMS`].
    pub fn dict_entries(&mut self, object: usize) -> Option<Vec<(usize, usize)>> {
        self.dict_items(object).ok()
    }

    fn dict_items(&mut self, object: usize) -> Result<Vec<(usize, usize)>, Refused> {
        let l = self.layout;
        let used = self.read_usize(object.wrapping_add(l.dict_used))?;
        if used == 0 {
            return Ok(Vec::new());
        }
        if used > MAX_CONTENT_ITEMS || self.read_usize(object.wrapping_add(l.dict_values))? != 0 {
            return Err(Refused::Opaque);
        }
        let keys = self.read_usize(object.wrapping_add(l.dict_keys))?;
        let table = self.key_table(keys)?;
        if table.nentries > 2 * MAX_CONTENT_ITEMS {
            return Err(Refused::Opaque);
        }
        let mut raw = vec![0u8; table.nentries * table.entry_size];
        self.read(table.entries, &mut raw)?;
        let pointer = |entry: &[u8], at: usize| {
            entry
                .get(at..at + 8)
                .map(|b| usize::from_le_bytes(b.try_into().unwrap_or_default()))
                .unwrap_or(0)
        };
        let items: Vec<(usize, usize)> = raw
            .chunks_exact(table.entry_size)
            .map(|e| (pointer(e, table.key_at), pointer(e, table.value_at)))
            .filter(|&(key, value)| key != 0 && value != 0)
            .collect();
        if items.len() != used {
            return Err(Refused::Opaque); // torn, or not what its header says
        }
        Ok(items)
    }

    /// The `str` at `object` as text; `None` if it is not an exact `str` or unreadable.
    pub fn text(&mut self, object: usize) -> Option<String> {
        if self.type_of(object).ok()?.1 != Kind::Str {
            return None;
        }
        let points = self.unicode(object).ok()?;
        points.into_iter().map(char::from_u32).collect()
    }

    /// The word at `address`.
    pub fn word(&mut self, address: usize) -> Option<usize> {
        self.read_usize(address).ok()
    }

    /// The layout values are read with.
    pub fn layout(&self) -> &Layout {
        self.layout
    }

    /// The type of the object at `object`.
    pub fn type_info(&mut self, object: usize) -> Result<TypeInfo, MemoryError> {
        let address = self.read_usize(object.wrapping_add(self.layout.object_type))?;
        self.type_object_info(address)
    }

    /// What the type object at `address` says of itself.
    pub fn type_object_info(&mut self, address: usize) -> Result<TypeInfo, MemoryError> {
        let (name_at, flags_at) = (self.layout.type_name, self.layout.type_flags);
        let name_ptr = self.read_usize(address.wrapping_add(name_at))?;
        let flags = self.read_usize(address.wrapping_add(flags_at))? as u64;
        Ok(TypeInfo {
            address,
            flags,
            name: self.c_string(name_ptr)?,
        })
    }
}
