//! Bounds-checked reading for the decoder.

use super::error::DecodeError;

/// Reads fields front to back; every read checks bounds with checked
/// arithmetic, so no input can make decoding panic.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Cursor { bytes, pos }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, or `Truncated` naming `field`.
    pub(super) fn get(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.bytes.len().saturating_sub(self.pos);
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(DecodeError::Truncated {
                field,
                needed: n,
                available,
            })?;
        self.pos += n;
        Ok(slice)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.get(N, field)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// A u32 length followed by that many bytes.
    pub(super) fn u32_prefixed(
        &mut self,
        len_field: &'static str,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(len_field)? as usize;
        self.get(len, field)
    }
}
