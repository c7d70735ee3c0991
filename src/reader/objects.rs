//! Decoders of the CPython objects that more than one reader reads: the header of a compact
//! `str` and a dict's key table. The stack reader (`direct`), the value reader (`values`) and
//! the snapshot walk (`snapshot::walk`) read the bytes with their own memory and budgets, and
//! decode them here, with one set of bounds, so that what is plausible cannot differ between
//! them. The readers at the end ([`read_unicode`], [`read_bytes`], [`read_tuple_items`]) read
//! and decode whole `str`, `bytes` and `tuple` objects for the stack reader and the snapshot
//! walk, and [`read_current_frame`] a thread's innermost frame for the snapshot walk (the stack
//! reader reads the same [`Layout::current_frame`] slot from its batched thread copies).

use super::layout::{DictKeyTable, Layout};
use super::memory::{MemoryError, MemoryReader};

/// Where a compact `str`'s characters are and how wide, decoded by [`str_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrShape {
    /// Characters (not bytes).
    pub length: usize,
    /// Bytes per character: 1, 2 or 4.
    pub kind: usize,
    /// All characters are ASCII.
    pub ascii: bool,
    /// Offset of the characters from the object's start.
    pub data_at: usize,
}

impl StrShape {
    /// Bytes of the characters.
    pub fn bytes(self) -> usize {
        self.length * self.kind
    }
}

/// The shape of the `str` whose first `layout.unicode_compact_size` bytes are `header`, or
/// `None` if it is not a compact string of 1-, 2- or 4-byte characters holding at most
/// `max_bytes` bytes of them (a legacy string, or not a string at all).
pub fn str_shape(layout: &Layout, header: &[u8], max_bytes: usize) -> Option<StrShape> {
    let length = read_usize(header, layout.unicode_length)?;
    let state_raw: [u8; 4] = header
        .get(layout.unicode_state..layout.unicode_state.checked_add(4)?)?
        .try_into()
        .ok()?;
    let state = u32::from_le_bytes(state_raw);
    let kind = layout.unicode_kind.extract(state) as usize;
    let compact = layout.unicode_compact.extract(state) == 1;
    let ascii = layout.unicode_ascii.extract(state) == 1;
    if !compact || !matches!(kind, 1 | 2 | 4) || length.saturating_mul(kind) > max_bytes {
        return None;
    }
    let data_at = if ascii {
        layout.unicode_ascii_size
    } else {
        layout.unicode_compact_size
    };
    Some(StrShape {
        length,
        kind,
        ascii,
        data_at,
    })
}

/// The code points of `raw`, characters of `kind` bytes each (1, 2 or 4; native order).
pub fn code_points(kind: usize, raw: &[u8]) -> Vec<u32> {
    match kind {
        1 => raw.iter().map(|&b| u32::from(b)).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Where a dict key table's entries are, decoded by [`DictKeyTable::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntries {
    /// `dk_nentries`: entries in use, deleted ones (NULL value) included; at most the size.
    pub nentries: usize,
    /// Address of the first entry.
    pub entries: usize,
    /// Bytes per entry (never 0).
    pub entry_size: usize,
    /// Offset of the key pointer in an entry.
    pub key_at: usize,
    /// Offset of the value pointer in an entry.
    pub value_at: usize,
}

/// The largest key table taken as plausible: 2^30 slots, far more than any process holds (and
/// below 2^32 slots, past which 3.8–3.10's indices would take 8 bytes, a width not counted here).
const MAX_LOG2_SLOTS: usize = 30;

impl DictKeyTable {
    /// Bytes to read from the start of a key table to decode it: up to its index table.
    pub fn header_size(self) -> usize {
        match self {
            DictKeyTable::Sized {
                dict_keys_indices, ..
            }
            | DictKeyTable::Log2 {
                dict_keys_indices, ..
            } => dict_keys_indices,
        }
    }

    /// Where the entries of the key table at `keys` are, from its first
    /// [`header_size`](Self::header_size) bytes; `None` if the header is implausible (a size
    /// that is not a power of two or above 2^30 slots, an index width that does not follow
    /// from the size, more entries than slots), so torn or foreign memory is never followed.
    pub fn decode(self, keys: usize, header: &[u8]) -> Option<KeyEntries> {
        let byte = |at: usize| header.get(at).copied().map(usize::from);
        let word = |at: usize| {
            let raw: [u8; 8] = header.get(at..at.checked_add(8)?)?.try_into().ok()?;
            Some(usize::from_le_bytes(raw))
        };
        let (nentries_at, size, index_bytes, (entry_size, key_at, value_at)) = match self {
            DictKeyTable::Sized {
                dict_keys_size,
                dict_keys_nentries,
                dict_entry_size,
                dict_entry_key,
                dict_entry_value,
                ..
            } => {
                let size = word(dict_keys_size)?;
                if !size.is_power_of_two() || size > 1 << MAX_LOG2_SLOTS {
                    return None;
                }
                let width = match size {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    _ => 4,
                };
                let entry = (dict_entry_size, dict_entry_key, dict_entry_value);
                (dict_keys_nentries, size, size * width, entry)
            }
            DictKeyTable::Log2 {
                dict_keys_log2_size,
                dict_keys_log2_index_bytes,
                dict_keys_kind,
                dict_keys_nentries,
                dict_entry_size,
                dict_entry_key,
                dict_entry_value,
                dict_unicode_entry_size,
                dict_unicode_entry_key,
                dict_unicode_entry_value,
                dict_kind_general,
                ..
            } => {
                let log2_size = byte(dict_keys_log2_size)?;
                let log2_index_bytes = byte(dict_keys_log2_index_bytes)?;
                // Indices are 1 to 8 bytes each.
                if log2_size > MAX_LOG2_SLOTS
                    || log2_index_bytes < log2_size
                    || log2_index_bytes > log2_size + 3
                {
                    return None;
                }
                let entry = if byte(dict_keys_kind)? == dict_kind_general {
                    (dict_entry_size, dict_entry_key, dict_entry_value)
                } else {
                    (
                        dict_unicode_entry_size,
                        dict_unicode_entry_key,
                        dict_unicode_entry_value,
                    )
                };
                (
                    dict_keys_nentries,
                    1usize << log2_size,
                    1usize << log2_index_bytes,
                    entry,
                )
            }
        };
        let nentries = word(nentries_at)?;
        if nentries > size || entry_size == 0 {
            return None;
        }
        Some(KeyEntries {
            nentries,
            entries: keys
                .wrapping_add(self.header_size())
                .wrapping_add(index_bytes),
            entry_size,
            key_at,
            value_at,
        })
    }
}

fn read_usize(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(usize::from_le_bytes(raw))
}

/// Longest `str` read (a file or function name), in bytes: a longer one is refused.
const MAX_STRING_BYTES: usize = 64 * 1024;

/// A `str` object's text (compact ASCII or compact 1/2/4-byte kinds).
pub fn read_unicode(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
) -> Result<String, MemoryError> {
    let mut header = vec![0u8; layout.unicode_compact_size];
    memory.read(object, &mut header)?;
    let shape =
        str_shape(layout, &header, MAX_STRING_BYTES).ok_or(MemoryError::Unmapped(object))?;
    let mut raw = vec![0u8; shape.bytes()];
    memory.read(object.wrapping_add(shape.data_at), &mut raw)?;
    // An ASCII string holds no byte above 0x7f; any other code point must be a character
    // (not a lone surrogate).
    let text: Option<String> = if shape.ascii && !raw.is_ascii() {
        None
    } else {
        code_points(shape.kind, &raw)
            .into_iter()
            .map(char::from_u32)
            .collect()
    };
    text.ok_or(MemoryError::Unmapped(object))
}

/// The length of a `bytes` object.
pub fn read_bytes_len(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
) -> Result<usize, MemoryError> {
    let length = memory.read_usize(object.wrapping_add(layout.var_object_size))?;
    if length > isize::MAX as usize {
        return Err(MemoryError::Unmapped(object));
    }
    Ok(length)
}

/// A `bytes` object's contents, at most `limit` bytes.
pub fn read_bytes(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
    limit: usize,
) -> Result<Vec<u8>, MemoryError> {
    let length = read_bytes_len(memory, layout, object)?;
    if length > limit {
        return Err(MemoryError::Unmapped(object));
    }
    let mut data = vec![0u8; length];
    memory.read(object.wrapping_add(layout.bytes_sval), &mut data)?;
    Ok(data)
}

/// A tuple's item pointers, at most `limit` of them (more is refused, as implausible).
pub fn read_tuple_items(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    tuple: usize,
    limit: usize,
) -> Result<Vec<usize>, MemoryError> {
    let len = memory.read_usize(tuple.wrapping_add(layout.var_object_size))?;
    if len > limit {
        return Err(MemoryError::Unmapped(tuple));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut items = vec![0u8; len * 8];
    memory.read(tuple.wrapping_add(layout.tuple_items), &mut items)?;
    Ok(items
        .chunks_exact(8)
        .map(|chunk| usize::from_ne_bytes(chunk.try_into().unwrap_or([0; 8])))
        .collect())
}

/// The innermost frame of the thread whose `PyThreadState` is at `tstate` (0 for none), found
/// the way its version finds it ([`Layout::current_frame`]).
pub fn read_current_frame(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    tstate: usize,
) -> Result<usize, MemoryError> {
    let slot = layout
        .current_frame
        .slot(tstate, |at| memory.read_usize(tstate.wrapping_add(at)).ok())
        .ok_or(MemoryError::Unmapped(tstate))?;
    memory.read_usize(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::layout::LAYOUTS;

    /// A key table header of `layout`'s shape: 8 slots, `nentries` used, `kind` (3.11+).
    fn header(
        layout: &Layout,
        size_or_log2: u64,
        index_log2: u8,
        kind: u8,
        nentries: u64,
    ) -> Vec<u8> {
        let shape = layout.dict_key_table;
        let mut bytes = vec![0u8; shape.header_size()];
        let mut put = |at: usize, value: &[u8]| bytes[at..at + value.len()].copy_from_slice(value);
        match shape {
            DictKeyTable::Sized {
                dict_keys_size,
                dict_keys_nentries,
                ..
            } => {
                put(dict_keys_size, &size_or_log2.to_le_bytes());
                put(dict_keys_nentries, &nentries.to_le_bytes());
            }
            DictKeyTable::Log2 {
                dict_keys_log2_size,
                dict_keys_log2_index_bytes,
                dict_keys_kind,
                dict_keys_nentries,
                ..
            } => {
                put(dict_keys_log2_size, &[size_or_log2 as u8]);
                put(dict_keys_log2_index_bytes, &[index_log2]);
                put(dict_keys_kind, &[kind]);
                put(dict_keys_nentries, &nentries.to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn a_plausible_key_table_is_decoded_and_an_implausible_one_refused() {
        const KEYS: usize = 0x10_0000;
        for layout in LAYOUTS {
            let shape = layout.dict_key_table;
            let indices = shape.header_size();
            let (eight_slots, general) = match shape {
                DictKeyTable::Sized { .. } => (8, 0),
                DictKeyTable::Log2 {
                    dict_kind_general, ..
                } => (3, dict_kind_general as u8),
            };
            let table = shape
                .decode(KEYS, &header(layout, eight_slots, 3, general, 5))
                .unwrap_or_else(|| panic!("{:?}: a real table refused", layout.version));
            assert_eq!(table.nentries, 5);
            assert_eq!(table.entries, KEYS + indices + 8, "{:?}", layout.version);
            assert!(table.entry_size >= 16 && table.key_at < table.entry_size);
            // More entries than slots, a size that is no power of two or too large.
            assert_eq!(
                shape.decode(KEYS, &header(layout, eight_slots, 3, general, 9)),
                None
            );
            let bad_size = match shape {
                DictKeyTable::Sized { .. } => [3, 1 << 31],
                DictKeyTable::Log2 { .. } => [31, 64],
            };
            for size in bad_size {
                assert_eq!(
                    shape.decode(KEYS, &header(layout, size, 3, general, 0)),
                    None
                );
            }
            if let DictKeyTable::Log2 {
                dict_unicode_entry_size,
                ..
            } = shape
            {
                // An index width that does not follow from the size.
                assert_eq!(shape.decode(KEYS, &header(layout, 3, 7, general, 1)), None);
                assert_eq!(shape.decode(KEYS, &header(layout, 3, 2, general, 1)), None);
                // Not the general kind: unicode entries.
                let unicode = shape
                    .decode(KEYS, &header(layout, 3, 3, general + 1, 1))
                    .unwrap();
                assert_eq!(unicode.entry_size, dict_unicode_entry_size);
            }
            // A header cut short.
            let whole = header(layout, eight_slots, 3, general, 5);
            assert_eq!(shape.decode(KEYS, &whole[..indices / 2]), None);
        }
    }

    #[test]
    fn str_shapes_of_every_layout() {
        for layout in LAYOUTS {
            let mut bytes = vec![0u8; layout.unicode_compact_size];
            bytes[layout.unicode_length..][..8].copy_from_slice(&5u64.to_le_bytes());
            let bit = |field: crate::reader::layout::Bitfield, value: u32| value << field.shift;
            let state = bit(layout.unicode_kind, 2) | bit(layout.unicode_compact, 1);
            bytes[layout.unicode_state..][..4].copy_from_slice(&state.to_le_bytes());
            let shape = str_shape(layout, &bytes, 1 << 20).unwrap();
            assert_eq!((shape.length, shape.kind, shape.ascii), (5, 2, false));
            assert_eq!(shape.data_at, layout.unicode_compact_size);
            assert_eq!(str_shape(layout, &bytes, 9), None, "over the bound");
            let state = bit(layout.unicode_kind, 1)
                | bit(layout.unicode_compact, 1)
                | bit(layout.unicode_ascii, 1);
            bytes[layout.unicode_state..][..4].copy_from_slice(&state.to_le_bytes());
            assert_eq!(
                str_shape(layout, &bytes, 5).unwrap().data_at,
                layout.unicode_ascii_size
            );
            // Not compact (a legacy string), or a kind that does not exist.
            let state = bit(layout.unicode_kind, 1);
            bytes[layout.unicode_state..][..4].copy_from_slice(&state.to_le_bytes());
            assert_eq!(str_shape(layout, &bytes, 1 << 20), None);
            let state = bit(layout.unicode_kind, 3) | bit(layout.unicode_compact, 1);
            bytes[layout.unicode_state..][..4].copy_from_slice(&state.to_le_bytes());
            assert_eq!(str_shape(layout, &bytes, 1 << 20), None);
        }
        assert_eq!(code_points(2, &[0x41, 0, 0xac, 0x20]), vec![0x41, 0x20ac]);
    }
}
