//! Admission: events into the window, from the queue's records and the
//! spool's in turn, each handed to the sink as it is admitted (see the
//! order rules in the [module docs](super)).

use super::super::journal::{JournalView, RecordRef};
use super::super::receiver::{Received, Receiver};
use super::super::spool_source::SpoolSource;
use super::super::window::{Origin, Place};
use super::super::DrainError;
use super::{Drain, RECEIVE_BATCH, WINDOW_SLACK};
use crate::envelope::Envelope;
use crate::sink::{Rejected, Sink};

/// Where the bytes of the event at `place` are; empty while there is no
/// view.
pub(super) fn body<'a>(
    view: &'a Option<JournalView>,
    spool: &'a SpoolSource,
    place: &Place,
) -> &'a [u8] {
    match place {
        Place::Journal(record) => view.as_ref().map_or(&[], |view| view.body(record)),
        Place::Spool(origin, record) => spool.body(*origin, record),
    }
}

/// What became of handing an event to the sink.
pub(super) enum Offered {
    Sent,
    /// No room: the event waits in `resends`, and nothing newer is sent.
    Refused,
    /// It can never be sent: dead-letter it.
    Permanent(String),
}

fn offer<S: Sink>(sink: &mut S, event: &Envelope<'_>, token: u64) -> Offered {
    match sink.send(event, token) {
        Ok(()) => Offered::Sent,
        Err(Rejected::Full) => Offered::Refused,
        Err(Rejected::Permanent(reason)) => Offered::Permanent(reason),
    }
}

impl<S: Sink> Drain<S> {
    /// Admits events into the window and sends them, up to a batch and
    /// while the window has room, taking turns between the queue and the
    /// spool; returns how many. Nothing new goes while the sink's
    /// give-backs wait: they go first.
    pub(super) fn take_batch(&mut self, receiver: &Receiver) -> Result<usize, DrainError> {
        let mut taken = 0;
        while taken < RECEIVE_BATCH && self.window_has_room() && self.resends.is_empty() {
            self.queue_turn = !self.queue_turn;
            let mut admitted = false;
            for queue in [self.queue_turn, !self.queue_turn] {
                admitted = if queue {
                    self.admit_from_queue(receiver)?
                } else {
                    self.admit_from_spool()
                };
                if admitted {
                    break;
                }
            }
            if !admitted {
                break;
            }
            taken += 1;
        }
        Ok(taken)
    }

    /// Admits the next queue record: one recovered from the journal, else
    /// one received. False if none is ready.
    fn admit_from_queue(&mut self, receiver: &Receiver) -> Result<bool, DrainError> {
        loop {
            if let Some(record) = self.pop_waiting() {
                self.admit(Place::Journal(record));
                return Ok(true);
            }
            match receiver.try_take() {
                Some(received) => {
                    self.take(received)?;
                }
                None => return Ok(false),
            }
        }
    }

    /// The next waiting queue record, moving the horizon past it.
    pub(super) fn pop_waiting(&mut self) -> Option<RecordRef> {
        let record = self.waiting.pop_front()?;
        self.admitted += 1;
        self.recovered_left = self.recovered_left.saturating_sub(1);
        self.pass_marks();
        Some(record)
    }

    /// Moves the horizon to the marks whose records were all admitted.
    fn pass_marks(&mut self) {
        while let Some(&(after, horizon)) = self.marks.front() {
            if after > self.admitted {
                break;
            }
            self.horizon = self.horizon.max(horizon);
            self.marks.pop_front();
        }
    }

    /// Admits the next spooled record whose segment the horizon allows,
    /// once the journal's and the saved spool's records are all admitted.
    fn admit_from_spool(&mut self) -> bool {
        if self.recovered_left > 0 || self.spool.saved_pending() {
            return false;
        }
        match self.spool.next(self.horizon) {
            Some(record) => {
                self.admit(Place::Spool(Origin::Spool, record));
                true
            }
            None => false,
        }
    }

    /// Whether the window takes another event. `open` bounds what is out
    /// at the sink; the window may also hold finished events behind a slow
    /// one (acks arrive per partition), up to a few windows' worth, so one
    /// slow partition does not stall the others while memory stays bounded.
    /// The rest waits in `waiting`, the channel, the journal, the queue and
    /// the spool.
    pub(super) fn window_has_room(&self) -> bool {
        self.window.open() < self.max_in_flight
            && self.window.len() < self.max_in_flight * WINDOW_SLACK
    }

    /// Acts on what the receiving thread handed over; returns how many
    /// records it took.
    pub(super) fn take(&mut self, received: Received) -> Result<usize, DrainError> {
        match received {
            Received::Records(records, horizon) => {
                let taken = records.len();
                self.taken += taken as u64;
                self.waiting.extend(records);
                self.marks.push_back((self.taken, horizon));
                self.pass_marks();
                return Ok(taken);
            }
            Received::Horizon(horizon) => {
                self.marks.push_back((self.taken, horizon));
                self.pass_marks();
            }
            Received::Reopened(queue) => {
                self.queue = queue;
                eprintln!(
                    "shopify-events drain: queue {:#010x} was removed; opened it again (id {})",
                    self.key,
                    queue.id()
                );
            }
            Received::Failed(error) => return Err(error),
        }
        Ok(0)
    }

    /// Puts the event at `place` in the window and sends it.
    pub(super) fn admit(&mut self, place: Place) {
        let bytes = body(&self.view, &self.spool, &place);
        let (token, offered) = match Envelope::decode(bytes) {
            Ok(event) => {
                self.metrics.topics.record(event.topic, bytes.len());
                self.accounting.admit(event.stamp);
                let token = self.window.push(place, event.time_us);
                (token, offer(&mut self.sink, &event, token))
            }
            Err(e) => {
                let token = self.window.push(place, 0);
                (
                    token,
                    Offered::Permanent(format!("malformed envelope: {e}")),
                )
            }
        };
        match offered {
            Offered::Sent => {}
            Offered::Refused => self.resends.refused(token),
            Offered::Permanent(reason) => self.dead_letter(token, &reason),
        }
    }

    /// Sends the event of `token` again.
    pub(super) fn send(&mut self, token: u64) -> Offered {
        let Some(place) = self.window.place(token) else {
            return Offered::Sent;
        };
        match Envelope::decode(body(&self.view, &self.spool, &place)) {
            Err(e) => Offered::Permanent(format!("malformed envelope: {e}")),
            Ok(event) => offer(&mut self.sink, &event, token),
        }
    }
}
