//! The `spool` transport: every envelope is appended to this process's own
//! spool log ([`crate::spool`]), which the drain tails. No system call in
//! the common case: a copy into a shared file mapping and one release
//! store (`SpoolWriter::append`).
//!
//! What it survives is the spool's: once `send_frame` returned, the
//! envelope is in the page cache of a file, so any crash of the process
//! keeps it, and so does a reboot once the kernel wrote it back (or at once
//! with `SyncPolicy::Always`). A spool that cannot take an envelope (full,
//! the directory missing or not writable) fails the send with
//! [`SendError::Spool`], which the caller drops or raises.
//!
//! The options are used as given; the extension turns
//! [`SpoolOptions::prepare_ahead`] on, so that a thread of the writer's own
//! creates the next segment while events are appended and the append that
//! fills a segment does not create the next one itself.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::numbered::send_numbered;
use super::{FrameSink, SendError, SpoolWhy};
use crate::sequence::Sequencer;
use crate::spool::{SpoolError, SpoolOptions, SpoolWriter};

/// Appends encoded envelopes to the process's spool log. Shared by every
/// thread of the process; a forked child writes files of its own (see
/// [`SpoolWriter`]).
#[derive(Debug)]
pub struct SpoolEmitter {
    writer: SpoolWriter,
    dropped: AtomicU64,
    sequencer: Sequencer,
}

/// The `spool` transport's counters (this process generation's, except
/// `dropped`, which a forked child inherits like the `sysv` counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolEmitterStats {
    /// Events appended.
    pub emitted: u64,
    /// Envelope bytes appended.
    pub bytes: u64,
    /// Events the spool could not take (dropped or raised).
    pub failures: u64,
    /// Events given up on by a caller that does not raise (`emit`).
    pub dropped: u64,
    /// Segments created.
    pub segments: u64,
}

impl SpoolEmitter {
    /// An emitter writing into the spool `options` describe; touches no
    /// file until the first send.
    pub fn new(options: SpoolOptions) -> SpoolEmitter {
        SpoolEmitter {
            writer: SpoolWriter::new(options),
            dropped: AtomicU64::new(0),
            sequencer: Sequencer::new(),
        }
    }

    /// The writer.
    pub fn writer(&self) -> &SpoolWriter {
        &self.writer
    }

    /// The sequencer that numbers this emitter's events.
    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// The counters.
    pub fn stats(&self) -> SpoolEmitterStats {
        let writer = self.writer.stats();
        SpoolEmitterStats {
            emitted: writer.appended,
            bytes: writer.bytes,
            failures: writer.failures,
            dropped: self.dropped.load(Relaxed),
            segments: writer.segments_created,
        }
    }
}

impl FrameSink for SpoolEmitter {
    /// A spool record is the bare envelope: no prefix.
    #[inline]
    fn begin_frame(&self, buf: &mut Vec<u8>) {
        buf.clear();
    }

    #[inline]
    fn send_frame(&self, frame: &mut [u8]) -> Result<(), SendError> {
        send_numbered(&self.sequencer, frame, 0, |frame| self.append(frame))
    }

    /// Numbering seals every version 2 envelope (`numbered.rs`).
    fn seals(&self) -> bool {
        true
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
}

impl SpoolEmitter {
    /// Appends one envelope, already numbered.
    #[inline]
    fn append(&self, frame: &[u8]) -> Result<(), SendError> {
        self.writer.append(frame).map_err(|source| match source {
            SpoolError::RecordTooLarge { len, max_record } => SendError::EventTooLarge {
                size: len,
                max_event_bytes: max_record,
                msgmax: None,
            },
            source => SendError::Spool {
                why: SpoolWhy::Transport,
                source,
            },
        })
    }
}
