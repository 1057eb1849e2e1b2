//! An owned message kept as the frame the kernel reads and writes, so sending
//! and receiving need no copy and, once the buffer has grown, no allocation.

use libc::c_long;

/// Bytes of the `mtype` prefix of a frame: one native-endian `c_long`.
pub const HEADER_LEN: usize = std::mem::size_of::<c_long>();

/// An owned message: a type (`mtype`, > 0 to be sent) and a body of bytes.
///
/// It is stored as a frame (`[mtype][body]`), the layout `msgsnd` and
/// `msgrcv` use. A message reused for receiving keeps its buffer, so a
/// receive loop allocates once.
#[derive(Debug, Clone)]
pub struct Message {
    /// Always at least `HEADER_LEN` bytes long.
    frame: Vec<u8>,
    /// Body bytes to offer `msgrcv`; `None` until set or first received into,
    /// then `kernel.msgmax` is read once and kept.
    receive_capacity: Option<usize>,
}

impl Message {
    /// An empty message of type `mtype`.
    ///
    pub fn new(mtype: i64) -> Message {
        Message::with_body(mtype, &[])
    }

    /// A message of type `mtype` holding a copy of `body`.
    pub fn with_body(mtype: i64, body: &[u8]) -> Message {
        let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
        frame.extend_from_slice(&encode(mtype));
        frame.extend_from_slice(body);
        Message {
            frame,
            receive_capacity: None,
        }
    }

    /// An empty message whose buffer already holds a body of `body_capacity`
    /// bytes, and which receives messages up to that size.
    pub fn with_capacity(mtype: i64, body_capacity: usize) -> Message {
        let mut frame = Vec::with_capacity(HEADER_LEN.saturating_add(body_capacity));
        frame.extend_from_slice(&encode(mtype));
        Message {
            frame,
            receive_capacity: Some(body_capacity),
        }
    }

    /// The message type.
    pub fn mtype(&self) -> i64 {
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&self.frame[..HEADER_LEN]);
        i64::from_ne_bytes(bytes)
    }

    /// Changes the message type, keeping the body.
    pub fn set_mtype(&mut self, mtype: i64) {
        self.frame[..HEADER_LEN].copy_from_slice(&encode(mtype));
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.frame[HEADER_LEN..]
    }

    /// The whole frame, `[mtype][body]`, as `msgsnd` takes it.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Empties the body, keeping the type and the buffer.
    pub fn clear_body(&mut self) {
        self.frame.truncate(HEADER_LEN);
    }

    /// Appends `bytes` to the body.
    pub fn extend_body(&mut self, bytes: &[u8]) {
        self.frame.extend_from_slice(bytes);
    }

    /// The largest body a receive into this message accepts, if decided yet.
    pub fn receive_capacity(&self) -> Option<usize> {
        self.receive_capacity
    }

    /// Sets the largest body a receive into this message accepts; a larger
    /// message is left in the queue with [`crate::Error::BufferTooSmall`].
    pub fn set_receive_capacity(&mut self, body_capacity: usize) {
        self.receive_capacity = Some(body_capacity);
    }

    /// The frame buffer, for receiving into. Callers keep `len >= HEADER_LEN`.
    pub(crate) fn frame_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.frame
    }
}

// `mtype` is a C long; lib.rs limits the crate to LP64 targets, where that
// is an i64, so the public API can say i64.
const _: () = assert!(HEADER_LEN == std::mem::size_of::<i64>());

fn encode(mtype: i64) -> [u8; HEADER_LEN] {
    mtype.to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_native_endian_mtype_then_body() {
        let msg = Message::with_body(7, b"a\0b");
        assert_eq!(&msg.frame()[..HEADER_LEN], &c_long::to_ne_bytes(7));
        assert_eq!(&msg.frame()[HEADER_LEN..], b"a\0b");
        assert_eq!(msg.mtype(), 7);
        assert_eq!(msg.body(), b"a\0b");
    }

    #[test]
    fn body_edits_keep_the_type() {
        let mut msg = Message::new(3);
        assert!(msg.body().is_empty());
        msg.extend_body(b"xy");
        msg.extend_body(b"z");
        msg.set_mtype(9);
        assert_eq!((msg.mtype(), msg.body()), (9, &b"xyz"[..]));
        msg.clear_body();
        assert_eq!((msg.mtype(), msg.body()), (9, &b""[..]));
    }

    #[test]
    fn with_capacity_sets_receive_capacity() {
        let msg = Message::with_capacity(1, 64);
        assert_eq!(msg.receive_capacity(), Some(64));
        assert!(msg.frame.capacity() >= HEADER_LEN + 64);
        assert_eq!(Message::new(1).receive_capacity(), None);
    }
}
