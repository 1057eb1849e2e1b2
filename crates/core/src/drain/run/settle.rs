//! What the sink said: outcomes applied to the window, each place's
//! acknowledgements persisted, give-backs sent again in order, dead
//! letters written (or logged in full when no file can be).

use std::time::Instant;

use super::super::log_limit::LogLimit;
use super::super::DeadLetters;
use super::admit::{body, Offered};
use super::Drain;
use crate::envelope::Envelope;
use crate::metrics::DrainMetrics;
use crate::sink::{Delivery, Outcome, Sink};

impl<S: Sink> Drain<S> {
    /// Writes the event of `token` to the dead letters and finishes it.
    pub(super) fn dead_letter(&mut self, token: u64, reason: &str) {
        let Some(place) = self.window.place(token) else {
            return;
        };
        let bytes = body(&self.view, &self.spool, &place);
        let event = Envelope::decode(bytes).ok();
        write_dead_letter(
            &mut self.dead,
            &mut self.dead_log,
            &self.metrics,
            reason,
            bytes,
            event.as_ref(),
        );
        self.window.finish(token);
    }

    /// Sends again, oldest first, what the sink gave back and is due;
    /// returns how many went. One refused again stays first, and the rest
    /// wait for the next round: no busy loop against a full sink.
    pub(super) fn resend_due(&mut self) -> usize {
        let now = Instant::now();
        let mut sent = 0;
        while let Some(token) = self.resends.pop_due(now) {
            match self.send(token) {
                Offered::Sent => sent += 1,
                Offered::Refused => {
                    self.resends.refused(token);
                    break;
                }
                Offered::Permanent(reason) => {
                    self.dead_letter(token, &reason);
                    sent += 1;
                }
            }
        }
        sent
    }

    /// Applies the sink's outcomes and the spool's acknowledgements;
    /// returns the checkpoint the journal may move to, if the journal's
    /// finished prefix grew.
    pub(super) fn settle(&mut self) -> Option<u64> {
        let now_us = crate::clock::now_micros();
        let outcomes = std::mem::take(&mut self.outcomes);
        for Delivery { token, outcome } in &outcomes {
            match outcome {
                Outcome::Delivered => {
                    let (view, spool, window) = (&self.view, &self.spool, &self.window);
                    self.tap
                        .delivered(|| Some(body(view, spool, &window.place(*token)?)));
                    if let Some(time_us) = self.window.finish(*token) {
                        self.metrics.produced.inc();
                        self.metrics
                            .delivery_latency
                            .observe(crate::clock::age_secs(now_us, time_us));
                    }
                }
                Outcome::Retry(_) => {
                    self.metrics.retried.inc();
                    self.resends.failed(*token);
                }
                Outcome::Permanent(reason) => self.dead_letter(*token, reason),
            }
        }
        self.outcomes = outcomes;
        self.outcomes.clear();
        self.window.advance(&mut self.acks);
        self.accounting.hold(&self.acks);
        self.accounting
            .release(false)
            .and_then(|released| self.apply(released))
    }

    /// Acknowledges the spool records the accounting released; returns the
    /// journal checkpoint it released.
    pub(super) fn apply(&mut self, released: super::account::Released) -> Option<u64> {
        for &(origin, segment, end) in &released.spool {
            self.spool.ack(origin, segment, end);
        }
        released.journal
    }
}

/// Writes a dead letter and counts it. If no dead-letter file can be
/// written, the line goes to the log in full and is counted as a failure:
/// the event is not lost in silence, and it does not hold back the events
/// behind it.
pub(super) fn write_dead_letter(
    dead: &mut DeadLetters,
    log: &mut LogLimit,
    metrics: &DrainMetrics,
    reason: &str,
    bytes: &[u8],
    event: Option<&Envelope<'_>>,
) {
    metrics.dead_lettered.inc();
    match dead.write(reason, bytes, event) {
        Ok(written) => {
            for path in written.dropped {
                metrics.dead_letter_files_dropped.inc();
                eprintln!(
                    "shopify-events drain: deleted the oldest dead-letter file {} to stay within \
                     dead_letter_files; raise dead_letter_files or dead_letter_max_bytes to keep \
                     more",
                    path.display()
                );
            }
            let allowed = log.allow(Instant::now(), |n| {
                eprintln!(
                    "shopify-events drain: {n} more dead letters in the last minute were not \
                     logged (see the dead-letter file)"
                );
            });
            if allowed {
                eprintln!(
                    "shopify-events drain: dead-lettered event{}: {reason}",
                    event
                        .map(|e| format!(" {} (topic {})", e.id, e.topic))
                        .unwrap_or_default()
                );
            }
        }
        Err(not_written) => {
            metrics.dead_letter_failures.inc();
            eprintln!(
                "shopify-events drain: cannot write dead letter to {}: {}; the dead letter in \
                 full: {}",
                dead.path().display(),
                not_written.source,
                not_written.line
            );
        }
    }
}
