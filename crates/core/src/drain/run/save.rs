//! The saved spool: written at shutdown, delivered first at the next start.
//!
//! Saving the queue at shutdown (`save_on_stop`): what is left in the
//! kernel queue, which a reboot would lose, moves into the drain's saved
//! spool (`saved/` in the state directory), written to disk before the
//! drain exits. The next start delivers it before anything newer
//! ([`super::super::spool_source`], `Drain::deliver_saved`).
//!
//! Every save writes the same producer's log ([`saved_producer`]), each
//! save's segments numbered after the last one's: should a start be
//! stopped again before it delivered the saved spool (Kafka still down),
//! the next save's events are read after the earlier save's.
//!
//! Each message is received straight into a spool frame
//! ([`Appender::reserve`]) and committed there, so it is in the file's page
//! cache from the moment `msgrcv` dequeued it: a `kill -9` in the middle
//! loses nothing (the next start commits a received, uncommitted record
//! with `commit_received`). A message that is not an envelope is
//! dead-lettered instead, as the drain would have. At the end the segments
//! are `msync`ed and sealed, and their directory `fsync`ed at creation.
//!
//! Bounded by `save_timeout`: what is not taken by then stays in the queue,
//! which keeps it until a reboot. Receiving costs about 1 µs per message
//! and writing back the segments the disk's time: a queue of 1 GiB is a
//! few seconds on a local SSD.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sysvmq::HEADER_LEN;

use super::super::journal::Journal;
use super::super::window::{Origin, Place};
use super::settle::write_dead_letter;
use super::{Drain, TICK};
use crate::envelope::Envelope;
use crate::sink::Sink;
use crate::spool::{list_segments, Appender, SpoolOptions, SyncPolicy, DEFAULT_MAX_RECORD};

/// Largest segment of the saved spool: a big queue takes several, so the
/// next start can delete each once delivered.
const SEGMENT_MAX: u64 = 64 << 20;
/// File mode of saved segments: the drain's alone, like its journal.
const MODE: u32 = 0o600;

/// The producer id of queue `key`'s saved spool: "SAVE" and the key.
pub(crate) fn saved_producer(key: sysvmq::Key) -> u64 {
    0x5341_5645_0000_0000 | u64::from(key as u32)
}

impl<S: Sink> Drain<S> {
    /// Moves what is left in the queue into the saved spool within `bound`;
    /// returns how many events it saved.
    pub(super) fn save_queue(&mut self, bound: Duration) -> u64 {
        let started = Instant::now();
        let deadline = started + bound;
        let dir = self.state.saved_spool();
        if let Err(e) = fs::create_dir_all(&dir) {
            eprintln!(
                "shopify-events drain: cannot save the queue: creating {}: {e}; its events stay \
                 in the queue",
                dir.display()
            );
            return 0;
        }
        let max = sysvmq::message_size_limit() as usize;
        let queued = self
            .queue
            .stat()
            .map(|s| (s.messages, s.bytes))
            .unwrap_or((0, 0));
        if queued.0 == 0 {
            return 0;
        }
        // Room for every queued message with its record header and padding.
        let need = queued.1 + queued.0 * 16 + max as u64;
        let options = SpoolOptions {
            mode: MODE,
            segment_min: need.min(SEGMENT_MAX),
            segment_max: SEGMENT_MAX,
            max_record: max.max(DEFAULT_MAX_RECORD),
            // Synced once at the end (and each segment's header and name at
            // its creation), not per record.
            sync: SyncPolicy::Interval(Duration::from_secs(86_400)),
            ..SpoolOptions::new(&dir, self.key)
        };
        let producer = saved_producer(self.key);
        let next_index = list_segments(&dir, self.key)
            .unwrap_or_default()
            .iter()
            .filter(|s| s.id.producer == producer)
            .map(|s| s.id.index + 1)
            .max()
            .unwrap_or(0);
        let mut appender = Appender::continuing(options, producer, next_index);
        let (mut saved, mut malformed) = (0u64, 0u64);
        let stopped = loop {
            if Instant::now() >= deadline {
                break format!("save_timeout ({} s) reached", bound.as_secs_f64());
            }
            let frame = match appender.reserve(max) {
                Ok(frame) => frame,
                Err(e) => break e.to_string(),
            };
            let len = match self.queue.try_receive_into(frame, 0) {
                Ok(Some(len)) => len,
                Ok(None) => break String::new(),
                Err(sysvmq::Error::Interrupted) => continue,
                Err(e) => break e.to_string(),
            };
            let body = &frame[HEADER_LEN..HEADER_LEN + len];
            if let Err(e) = Envelope::decode(body) {
                // Dead-lettered as the drain would have; the frame is reused.
                let copy = body.to_vec();
                malformed += 1;
                let reason = format!("malformed envelope: {e}");
                write_dead_letter(
                    &mut self.dead,
                    &mut self.dead_log,
                    &self.metrics,
                    &reason,
                    &copy,
                    None,
                );
                continue;
            }
            match appender.commit(len) {
                Ok(()) => saved += 1,
                Err(e) => break e.to_string(),
            }
        };
        let flushed = appender.flush();
        appender.seal();
        drop(appender);
        self.metrics.saved.add(saved);
        let left = self.queue.stat().map(|s| s.messages).unwrap_or(0);
        let flush_note = match flushed {
            Ok(()) => "written to disk".to_owned(),
            Err(e) => format!("NOT all written to disk: {e}"),
        };
        eprintln!(
            "shopify-events drain: saved {saved} events from queue {:#010x} into {} ({flush_note}) \
             in {} ms{}{}; the next start delivers them first",
            self.key,
            dir.display(),
            started.elapsed().as_millis(),
            if malformed > 0 {
                format!(", dead-lettered {malformed} malformed")
            } else {
                String::new()
            },
            if stopped.is_empty() {
                String::new()
            } else {
                format!("; stopped early ({stopped}), {left} events stay in the queue")
            },
        );
        saved
    }

    /// Before the queue is taken: delivers the records left in the journal,
    /// then what the last stop saved from the queue (`save.rs`), until every
    /// saved event is acknowledged or `shutdown`. Taking the queue only
    /// then keeps each process's order across any number of stops: the
    /// journal never holds an event newer than a saved one that is still
    /// to be delivered.
    pub(super) fn deliver_saved(&mut self, journal: &mut Journal, shutdown: &AtomicBool) {
        let mut next_tick = Instant::now();
        while !self.spool.saved_done() && !shutdown.load(Ordering::Relaxed) {
            self.spool.refresh(Instant::now(), false);
            self.resend_due();
            while self.window_has_room() && self.resends.is_empty() {
                let place = match self.pop_waiting() {
                    Some(record) => Place::Journal(record),
                    None => match self.spool.next_saved() {
                        Some(record) => Place::Spool(Origin::Saved, record),
                        None => break,
                    },
                };
                self.admit(place);
            }
            self.settle_into(journal);
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }
}
