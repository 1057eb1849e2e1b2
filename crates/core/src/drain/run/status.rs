//! Once a second: the drain's gauges, `/health` and the stats snapshot
//! that `shopify-events stats` reads.

use sysvmq::HEADER_LEN;

use super::Drain;
use crate::envelope::Envelope;
use crate::metrics::Health;
use crate::ops::DrainSnapshot;
use crate::sink::Sink;

impl<S: Sink> Drain<S> {
    /// Once a second: gauges, health and the stats snapshot.
    pub(super) fn tick(&mut self) {
        let metrics = self.metrics.clone();
        let m = &metrics;
        m.in_flight.set(self.window.open() as i64);
        let stat = self.queue.stat();
        if let Ok(stat) = &stat {
            m.queue_depth.set(stat.messages as i64);
            m.queue_bytes.set(stat.bytes as i64);
            m.queue_capacity.set(stat.capacity as i64);
        }
        let backlog = self.spool.backlog();
        m.spool_backlog_segments.set(backlog.segments as i64);
        m.spool_backlog_bytes.set(backlog.bytes as i64);
        let now_us = crate::clock::now_micros();
        let age = |t: i64| crate::clock::age_secs(now_us, t);
        m.spool_oldest_event_age
            .set(backlog.oldest_us.map_or(0.0, age));
        let oldest = [
            self.window.oldest_time_us(),
            self.queue_head_time_us(),
            backlog.oldest_us,
        ]
        .into_iter()
        .flatten()
        .min();
        m.oldest_event_age.set(oldest.map_or(0.0, age));
        let health = match (&stat, self.sink.healthy()) {
            (Err(e), _) => Health {
                ok: false,
                detail: format!("queue {:#010x}: {e}", self.key),
            },
            (_, Err(reason)) => Health {
                ok: false,
                detail: reason,
            },
            (Ok(_), Ok(())) => Health {
                ok: true,
                detail: format!(
                    "draining queue {:#010x} to {}",
                    self.key,
                    self.sink.describe()
                ),
            },
        };
        if let Ok(mut shared) = self.health.lock() {
            *shared = health;
        }
        self.accounting.tick(m);
        let mut snapshot = DrainSnapshot::now(self.sink.describe(), m.snapshot());
        snapshot.accounting = Some(self.accounting.snapshot());
        if let Err(e) = crate::ops::write_drain_snapshot(&self.state, &snapshot) {
            eprintln!("shopify-events drain: cannot write stats snapshot: {e}");
        }
    }

    /// Emit time of the event at the head of the queue (peeked, not removed).
    fn queue_head_time_us(&mut self) -> Option<i64> {
        let len = self.queue.copy_into(0, &mut self.peek).ok()??;
        let body = self.peek.get(HEADER_LEN..HEADER_LEN + len)?;
        Envelope::decode(body).ok().map(|e| e.time_us)
    }
}
