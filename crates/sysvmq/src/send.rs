//! Sending: `msgsnd`, blocking or not, from a frame or a [`Message`].

use std::io;

use libc::{c_int, c_long, c_void, IPC_NOWAIT};

use crate::{message_size_limit, Error, Message, Queue, Result, HEADER_LEN};

impl Queue {
    /// Sends `frame` (`[mtype][body]`, mtype > 0) without blocking;
    /// [`Error::Full`] if the queue has no room.
    pub fn try_send_frame(&self, frame: &[u8]) -> Result<()> {
        self.send_raw(frame, IPC_NOWAIT)
    }

    /// One non-blocking `msgsnd` of `frame` with nothing checked first: the
    /// `errno` on failure, for a hot path that classifies the rare failure
    /// itself (or calls [`Queue::try_send_frame`], which checks the frame
    /// and names the error). A frame shorter than its mtype header is
    /// refused with `EINVAL` without a call.
    #[inline]
    pub fn try_send_frame_raw(&self, frame: &[u8]) -> std::result::Result<(), i32> {
        let Some(size) = frame.len().checked_sub(HEADER_LEN) else {
            return Err(libc::EINVAL);
        };
        // SAFETY: `frame` is readable for HEADER_LEN + size bytes, exactly
        // what msgsnd reads (see send_raw).
        let ret =
            unsafe { libc::msgsnd(self.id(), frame.as_ptr().cast::<c_void>(), size, IPC_NOWAIT) };
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        }
    }

    /// Sends `frame`, waiting for room; [`Error::Interrupted`] on a signal.
    pub fn send_frame(&self, frame: &[u8]) -> Result<()> {
        self.send_raw(frame, 0)
    }

    /// Sends `msg` without blocking; see [`Queue::try_send_frame`].
    pub fn try_send(&self, msg: &Message) -> Result<()> {
        self.try_send_frame(msg.frame())
    }

    /// Sends `msg`, waiting for room; see [`Queue::send_frame`].
    pub fn send(&self, msg: &Message) -> Result<()> {
        self.send_frame(msg.frame())
    }

    fn send_raw(&self, frame: &[u8], flags: c_int) -> Result<()> {
        let size = body_len(frame)?;
        loop {
            // SAFETY: `frame` is readable for HEADER_LEN + size bytes, exactly
            // what msgsnd reads; the kernel copies from user memory, so the
            // mtype needs no alignment.
            let ret =
                unsafe { libc::msgsnd(self.id(), frame.as_ptr().cast::<c_void>(), size, flags) };
            if ret == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                // A non-blocking call returns at once, so retrying cannot hang.
                Some(libc::EINTR) if flags & IPC_NOWAIT != 0 => continue,
                Some(libc::EINTR) => Error::Interrupted,
                Some(libc::EAGAIN) => Error::Full { key: self.key() },
                Some(libc::EINVAL) => self.invalid_send(size, err),
                _ => self.fail("send to", "msgsnd", err),
            });
        }
    }

    /// msgsnd's EINVAL means a vanished id or a body over `kernel.msgmax`.
    fn invalid_send(&self, size: usize, err: io::Error) -> Error {
        let key = self.key();
        if self.is_gone() {
            return Error::Removed { key };
        }
        let limit = message_size_limit();
        if u64::try_from(size).map_or(true, |size| size > limit) {
            return Error::TooLarge { key, size, limit };
        }
        Error::Os {
            op: "msgsnd",
            key,
            source: err,
        }
    }
}

/// Body length of a frame about to be sent, which must carry an mtype > 0
/// (the kernel would say EINVAL, which this crate reads as TooLarge/Removed).
fn body_len(frame: &[u8]) -> Result<usize> {
    let body = frame_capacity(frame)?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&frame[..HEADER_LEN]);
    let mtype = c_long::from_ne_bytes(header);
    if mtype <= 0 {
        return Err(Error::InvalidArgument {
            what: format!("mtype {mtype} must be positive to send"),
        });
    }
    Ok(body)
}

/// Body bytes a frame has room for after its header.
pub(crate) fn frame_capacity(frame: &[u8]) -> Result<usize> {
    frame
        .len()
        .checked_sub(HEADER_LEN)
        .ok_or_else(|| Error::InvalidArgument {
            what: format!(
                "a frame of {} bytes is shorter than its {HEADER_LEN}-byte mtype header",
                frame.len()
            ),
        })
}
