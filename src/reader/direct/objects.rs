//! Generic object readers the walks and the snapshot share: `str` and `bytes` contents.

use super::MAX_STRING_BYTES;
use crate::reader::layout::Layout;
use crate::reader::memory::{MemoryError, MemoryReader};
use crate::reader::objects::{code_points, str_shape};

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
