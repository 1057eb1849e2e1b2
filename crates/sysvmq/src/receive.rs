//! Receiving: `msgrcv`, taking a message or copying one by position, into a
//! caller's frame or a reusable [`Message`].

use std::io;

use libc::{c_int, c_void, IPC_NOWAIT};

use crate::send::frame_capacity;
use crate::{message_size_limit, Error, Message, Queue, Result, HEADER_LEN};

/// msgrcv flag: copy the message at a position instead of taking it.
/// Defined here because `libc` exports it only for some targets; the kernel
/// answers ENOSYS when built without CONFIG_CHECKPOINT_RESTORE.
const MSG_COPY: c_int = 0o40000;

const COPY_OP: &str =
    "copying a message by position (msgrcv MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)";

impl Queue {
    /// Takes the first message selected by `mtype` (0: any; > 0: that type;
    /// < 0: the lowest type up to `-mtype`) into `frame` without blocking.
    ///
    /// Returns the body length, or `None` if no message matches. A message
    /// longer than `frame.len() - HEADER_LEN` stays queued and yields
    /// [`Error::BufferTooSmall`].
    pub fn try_receive_into(&self, frame: &mut [u8], mtype: i64) -> Result<Option<usize>> {
        let capacity = frame_capacity(frame)?;
        // SAFETY: `frame` is writable for HEADER_LEN + capacity bytes.
        unsafe { self.receive_raw(frame.as_mut_ptr(), capacity, mtype, IPC_NOWAIT) }
    }

    /// Takes a message like [`Queue::try_receive_into`], waiting for one;
    /// [`Error::Interrupted`] on a signal.
    pub fn receive_into(&self, frame: &mut [u8], mtype: i64) -> Result<usize> {
        let capacity = frame_capacity(frame)?;
        // SAFETY: `frame` is writable for HEADER_LEN + capacity bytes.
        unsafe { self.receive_raw(frame.as_mut_ptr(), capacity, mtype, 0) }
            .and_then(|got| got.ok_or_else(|| self.no_message()))
    }

    /// Takes a message into `msg` without blocking; `false` if none matches.
    ///
    /// Accepts bodies up to [`Message::receive_capacity`], which is set to
    /// `kernel.msgmax` on first use if unset. On error `msg` is unchanged.
    pub fn try_receive(&self, msg: &mut Message, mtype: i64) -> Result<bool> {
        self.receive_message(msg, mtype, IPC_NOWAIT)
            .map(|got| got.is_some())
    }

    /// Takes a message into `msg`, waiting for one; see [`Queue::try_receive`].
    pub fn receive(&self, msg: &mut Message, mtype: i64) -> Result<()> {
        self.receive_message(msg, mtype, 0)?
            .ok_or_else(|| self.no_message())
    }

    /// Copies the message at position `index` (0 is the oldest) into `frame`
    /// without removing it; `None` past the last message.
    ///
    /// [`Error::Unsupported`] where the kernel lacks `MSG_COPY`.
    pub fn copy_into(&self, index: usize, frame: &mut [u8]) -> Result<Option<usize>> {
        let capacity = frame_capacity(frame)?;
        let index = i64::try_from(index).map_err(|_| Error::InvalidArgument {
            what: format!("queue position {index} is out of range"),
        })?;
        // SAFETY: `frame` is writable for HEADER_LEN + capacity bytes.
        unsafe { self.receive_raw(frame.as_mut_ptr(), capacity, index, MSG_COPY | IPC_NOWAIT) }
    }

    /// Runs msgrcv; `None` when no message matches (ENOMSG).
    ///
    /// # Safety
    /// `buf` must be valid for writes of `HEADER_LEN + capacity` bytes.
    unsafe fn receive_raw(
        &self,
        buf: *mut u8,
        capacity: usize,
        mtype: i64,
        flags: c_int,
    ) -> Result<Option<usize>> {
        loop {
            // SAFETY: the caller guarantees `buf` is writable for
            // HEADER_LEN + capacity bytes; msgrcv writes the mtype and at most
            // `capacity` body bytes, and needs no alignment (user copy).
            let ret =
                unsafe { libc::msgrcv(self.id(), buf.cast::<c_void>(), capacity, mtype, flags) };
            if let Ok(len) = usize::try_from(ret) {
                return Ok(Some(len));
            }
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOMSG) => Ok(None),
                // A non-blocking call returns at once, so retrying cannot hang.
                Some(libc::EINTR) if flags & IPC_NOWAIT != 0 => continue,
                Some(libc::EINTR) => Err(Error::Interrupted),
                Some(libc::E2BIG) => Err(Error::BufferTooSmall {
                    key: self.key(),
                    capacity,
                }),
                Some(libc::ENOSYS) if flags & MSG_COPY != 0 => {
                    Err(Error::Unsupported { op: COPY_OP })
                }
                _ => Err(self.fail("receive from", "msgrcv", err)),
            };
        }
    }

    fn receive_message(&self, msg: &mut Message, mtype: i64, flags: c_int) -> Result<Option<()>> {
        let capacity = match msg.receive_capacity() {
            Some(capacity) => capacity,
            None => {
                // Read once per message buffer, not per receive: /proc is slow.
                let capacity = usize::try_from(message_size_limit()).unwrap_or(usize::MAX);
                msg.set_receive_capacity(capacity);
                capacity
            }
        };
        let too_big = || Error::InvalidArgument {
            what: format!("a receive capacity of {capacity} bytes is too large"),
        };
        let total = HEADER_LEN.checked_add(capacity).ok_or_else(too_big)?;
        let buf = msg.frame_buffer();
        buf.try_reserve(total.saturating_sub(buf.len()))
            .map_err(|_| too_big())?;
        // SAFETY: after the reserve the allocation holds at least `total` =
        // HEADER_LEN + capacity bytes, writable through `as_mut_ptr`.
        let got = unsafe { self.receive_raw(buf.as_mut_ptr(), capacity, mtype, flags) }?;
        if let Some(len) = got {
            // SAFETY: msgrcv wrote the mtype and `len` <= capacity body bytes,
            // so the first HEADER_LEN + len bytes are initialised and within
            // the capacity reserved above.
            unsafe { buf.set_len(HEADER_LEN + len) };
        }
        Ok(got.map(|_| ()))
    }

    /// A blocking msgrcv returns ENOMSG only if the kernel breaks its contract.
    fn no_message(&self) -> Error {
        let source = io::Error::from_raw_os_error(libc::ENOMSG);
        Error::Os {
            op: "msgrcv",
            key: self.key(),
            source,
        }
    }
}
