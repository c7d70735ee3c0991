//! Generic object readers the walks and the snapshot share: `str` and `bytes` contents.

use super::{read_u32_at, read_usize_at, MAX_STRING_BYTES};
use crate::reader::layout::Layout;
use crate::reader::memory::{MemoryError, MemoryReader};

/// A `str` object's text (compact ASCII or compact 1/2/4-byte kinds).
pub fn read_unicode(
    memory: &mut dyn MemoryReader,
    layout: &Layout,
    object: usize,
) -> Result<String, MemoryError> {
    let mut header = vec![0u8; layout.unicode_compact_size];
    memory.read(object, &mut header)?;
    let length = read_usize_at(&header, layout.unicode_length).unwrap_or(usize::MAX);
    let state = read_u32_at(&header, layout.unicode_state).unwrap_or(0);
    let kind = layout.unicode_kind.extract(state) as usize;
    let compact = layout.unicode_compact.extract(state) == 1;
    let ascii = layout.unicode_ascii.extract(state) == 1;
    if !compact || !matches!(kind, 1 | 2 | 4) || length.saturating_mul(kind) > MAX_STRING_BYTES {
        return Err(MemoryError::Unmapped(object));
    }
    let data = object.wrapping_add(if ascii {
        layout.unicode_ascii_size
    } else {
        layout.unicode_compact_size
    });
    let mut raw = vec![0u8; length * kind];
    memory.read(data, &mut raw)?;
    let text: Option<String> = match kind {
        1 if ascii => std::str::from_utf8(&raw).ok().map(str::to_owned),
        1 => Some(raw.iter().map(|&b| b as char).collect()),
        2 => raw
            .chunks_exact(2)
            .map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32))
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
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
