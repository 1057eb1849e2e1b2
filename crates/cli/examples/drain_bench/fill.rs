//! The events a run sends: envelopes of random hex, into the SysV queue or
//! into spool files as the sysv transport's overflow writes them.

use std::path::Path;

use shopify_events_core::spool::{Appender, SpoolOptions};
use testkit::events::event_frame;
use testkit::queue::TestQueue;
use testkit::rng::XorShift;

/// Envelopes of `payload` random-hex bytes, into the queue or spool files.
pub struct Filler {
    topic: String,
    frame: Vec<u8>,
    payload: Vec<u8>,
    rng: XorShift,
}

impl Filler {
    pub fn new(topic: &str, payload: usize) -> Filler {
        Filler {
            topic: topic.to_owned(),
            frame: Vec::new(),
            payload: vec![0u8; payload],
            rng: XorShift(0x9e37_79b9_7f4a_7c15),
        }
    }

    pub fn next(&mut self) -> &[u8] {
        self.rng.fill_hex(&mut self.payload);
        event_frame(&mut self.frame, &self.topic, None, &self.payload);
        &self.frame
    }

    pub fn queue(&mut self, queue: &TestQueue, count: usize) {
        for _ in 0..count {
            let frame = self.next();
            queue
                .try_send_frame(frame)
                .unwrap_or_else(|e| panic!("filling the queue: {e}"));
        }
    }

    /// `count` envelopes round-robin over 4 writers (4 producers' files),
    /// sealed when done.
    pub fn spool(&mut self, dir: &Path, key: sysvmq::Key, count: usize) {
        let mut writers: Vec<Appender> = (0..4)
            .map(|_| Appender::new(SpoolOptions::new(dir, key)))
            .collect();
        for i in 0..count {
            let frame = self.next().to_vec();
            writers[i % 4]
                .append(&frame[sysvmq::HEADER_LEN..])
                .unwrap_or_else(|e| panic!("filling the spool: {e}"));
        }
    }
}
