//! Where an accepted envelope goes: the host queue, or the proxy's own
//! spool when the queue cannot take it.
//!
//! The proxy process is one spool producer: one [`SpoolWriter`] shared by
//! every connection. The rules (issue 8, as the SysV transport keeps them
//! for an app process):
//!
//! - `msgsnd` first. An envelope larger than the queue's limit, or one
//!   that finds the queue full, is appended to the spool instead, and the
//!   frame is acknowledged once the append returned: the record is then in
//!   the page cache, where it survives the proxy's death as the queue does.
//! - **Order.** Once the proxy has spooled, *every* later envelope, of every
//!   connection, goes to the spool too, until the drain has acknowledged
//!   everything the proxy spooled ([`SpoolWriter::drained`]); then the
//!   writer seals its segment and the queue is used again. So no frame of
//!   a connection overtakes an earlier frame of it through the queue, and
//!   neither does a client that reconnected and resent (its new connection
//!   keeps to the same rule). The switch back is made under a lock, with
//!   the check, so no append can slip between "drained" and the seal.
//! - Only when neither can take the envelope does the connection wait
//!   (acks withheld, backpressure) and try both again, a full spool or an
//!   unusable one included. An envelope larger than the queue's limit and a
//!   spool that cannot take it (missing directory, too large for it) is
//!   refused with a nack instead: waiting would not help it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::spool::{SpoolError, SpoolOptions, SpoolWriter};
use crate::transport::{SendError, SysvEmitter};

/// The queue and, if configured, the spool.
#[derive(Debug)]
pub(super) struct Outlet {
    pub(super) emitter: SysvEmitter,
    spool: Option<Spool>,
}

#[derive(Debug)]
struct Spool {
    writer: SpoolWriter,
    /// Spooling now: every envelope goes to the spool.
    spooling: AtomicBool,
    /// Held while entering or leaving spooling and while appending in it.
    switch: Mutex<()>,
}

/// Where one envelope went.
#[derive(Debug)]
pub(super) enum Put {
    /// Into the host queue.
    Enqueued,
    /// Into the proxy's spool.
    Spooled,
    /// Neither can ever take it: nack it (the text says why).
    Refused(String),
    /// Neither can take it now: wait and try again.
    Wait(String),
}

impl Outlet {
    pub(super) fn new(emitter: SysvEmitter, spool: Option<SpoolOptions>) -> Outlet {
        let spool = spool.map(|options| Spool {
            writer: SpoolWriter::new(options),
            spooling: AtomicBool::new(false),
            switch: Mutex::new(()),
        });
        Outlet { emitter, spool }
    }

    /// Puts one queue frame (the message-type prefix, then the envelope
    /// at `frame[prefix..]`) where the rules above say.
    pub(super) fn put(&self, frame: &[u8], prefix: usize) -> Put {
        let envelope = &frame[prefix..];
        if let Some(spool) = &self.spool {
            if spool.spooling.load(Ordering::Acquire) {
                let _switch = spool.switch.lock().unwrap_or_else(|p| p.into_inner());
                if spool.spooling.load(Ordering::Relaxed) {
                    if !spool.writer.drained() {
                        return spool.append(envelope, false);
                    }
                    // Everything spooled is delivered: back to the queue.
                    spool.writer.seal();
                    spool.spooling.store(false, Ordering::Release);
                }
            }
        }
        match self.emitter.forward_frame(frame) {
            Ok(()) => Put::Enqueued,
            Err(error @ (SendError::TooLarge { .. } | SendError::QueueFull { .. })) => {
                let too_large = matches!(error, SendError::TooLarge { .. });
                match &self.spool {
                    Some(spool) => {
                        let _switch = spool.switch.lock().unwrap_or_else(|p| p.into_inner());
                        spool.append(envelope, too_large)
                    }
                    None if too_large => Put::Refused(format!(
                        "{error}; or give the proxy a spool (--spool-dir) for events larger than the queue takes"
                    )),
                    None => Put::Wait(error.to_string()),
                }
            }
            Err(error) => Put::Wait(error.to_string()),
        }
    }
}

impl Spool {
    /// Appends under the switch lock and enters spooling on success.
    /// `too_large`: the queue can never take it, so a spool that cannot
    /// either refuses it rather than making the connection wait.
    fn append(&self, envelope: &[u8], too_large: bool) -> Put {
        match self.writer.append(envelope) {
            Ok(()) => {
                self.spooling.store(true, Ordering::Release);
                Put::Spooled
            }
            Err(e @ (SpoolError::RecordTooLarge { .. } | SpoolError::NotAnEnvelope { .. })) => {
                Put::Refused(e.to_string())
            }
            Err(e @ SpoolError::Unavailable { .. }) if too_large => Put::Refused(format!(
                "the envelope is larger than the host queue takes and the proxy's spool cannot take it: {e}"
            )),
            Err(e) => Put::Wait(e.to_string()),
        }
    }
}
