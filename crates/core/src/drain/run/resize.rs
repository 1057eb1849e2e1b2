//! Resizing the journal when `kernel.msgmax` was raised under a running
//! drain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sysvmq::HEADER_LEN;

use super::{Drain, Place, TICK};
use crate::drain::journal::Journal;
use crate::drain::DrainError;
use crate::sink::Sink;

impl<S: Sink> Drain<S> {
    /// A message larger than the journal's frames (`limit` bytes) waits at
    /// the head of the queue: `kernel.msgmax` was raised. The journal keeps
    /// its geometry while it holds events (their positions depend on it),
    /// so deliver everything it holds, then open it again with frames for
    /// the new limit (at least twice the old one, in case msgmax was raised
    /// and lowered again) and go on. Returns the journal unchanged if
    /// `shutdown` comes first; the next start resizes it.
    pub(super) fn regrow(
        &mut self,
        mut journal: Journal,
        limit: u64,
        shutdown: &AtomicBool,
    ) -> Result<Journal, DrainError> {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(journal);
        }
        eprintln!(
            "shopify-events drain: a message in queue {:#010x} is larger than the journal's \
             {limit}-byte records (kernel.msgmax was raised); delivering the {} events taken \
             so far, then resizing the journal",
            self.key,
            self.window.len() + self.waiting.len()
        );
        let mut next_tick = Instant::now();
        while self.window.len() + self.waiting.len() > 0 {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(journal);
            }
            while self.window_has_room() && self.resends.is_empty() {
                let Some(record) = self.pop_waiting() else {
                    break;
                };
                self.admit(Place::Journal(record));
            }
            self.settle_into(&mut journal);
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        // Every event is delivered: save the accounting so that the last
        // checkpoint, held for it, moves before the journal is reopened.
        if let Some(released) = self.accounting.release(true) {
            if let Some(checkpoint) = self.apply(released) {
                journal.checkpoint(checkpoint);
            }
        }
        let max_record = sysvmq::message_size_limit().max(limit.saturating_mul(2));
        // The journal's lock belongs to its open file, which every mapping of
        // it (the view's too) holds: let go of both before opening the file
        // again. The drain's lock on the queue still keeps others out.
        self.view = None;
        drop(journal);
        let journal = Journal::open(&self.state.journal(), self.journal_size, max_record)?;
        self.view = Some(journal.view());
        self.peek
            .resize(HEADER_LEN + journal.max_record() as usize, 0);
        eprintln!(
            "shopify-events drain: journal resized for records of up to {} bytes",
            journal.max_record()
        );
        Ok(journal)
    }
}
