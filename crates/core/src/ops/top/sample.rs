//! One reading of everything `top` shows: the queue (`msgctl(IPC_STAT)`,
//! and its head peeked with `MSG_COPY` when no drain is up), the drain's
//! snapshot and the proxy's.

use std::path::PathBuf;

use serde::Serialize;
use sysvmq::{Key, Queue, HEADER_LEN};

use super::super::proxy_snapshot::{read_proxy_snapshot, ProxySnapshot};
use super::super::published::{read_published, unix_now, Liveness};
use super::super::snapshot::DrainSnapshot;
use crate::envelope::Envelope;
use crate::state_dir::StateDir;

/// Everything read at one refresh.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was read, in Unix seconds.
    pub at: f64,
    /// The queue, or why it cannot be read (missing, no permission).
    pub queue: Result<QueueReading, String>,
    /// The drain, from its snapshot.
    pub drain: Liveness<DrainReading>,
    /// The proxy, from its snapshot.
    pub proxy: Liveness<ProxySnapshot>,
}

/// The queue as `msgctl(IPC_STAT)` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueReading {
    /// Messages waiting.
    pub depth: u64,
    /// Bytes of message bodies waiting.
    pub bytes: u64,
    /// Capacity in bytes (and in messages).
    pub capacity: u64,
    /// The message at the head, if it was peeked.
    pub head: Head,
}

/// What peeking at the queue's head found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// Not peeked: a drain is up and reports the oldest event's age itself.
    NotPeeked,
    /// The queue is empty.
    Empty,
    /// The head is an envelope emitted at this time (Unix microseconds).
    EmittedAt(i64),
    /// Peeking failed; why.
    Unknown(&'static str),
}

/// The drain's snapshot, with the sections `top` shows when the drain
/// reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainReading {
    /// The snapshot as the drain wrote it.
    pub snapshot: DrainSnapshot,
    /// The spool's backlog, from the drain's snapshot.
    pub spool: Option<SpoolBacklog>,
    /// Loss accounting (issue 11, phase 2), when the drain reports it.
    pub accounting: Option<LossAccounting>,
}

/// Events waiting in spool files for the drain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpoolBacklog {
    /// Spool files (segments) not yet fully taken.
    pub segments: u64,
    /// Their bytes not yet taken.
    pub bytes: u64,
    /// Age of the oldest event in them, in seconds.
    pub oldest_age: f64,
}

/// The drain's count of events emitted and never received, and of events
/// received twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LossAccounting {
    /// Events emitted and never received: gaps less late arrivals, since
    /// the accounting began (it survives drain restarts).
    pub gaps: u64,
    /// Events received more than once.
    pub duplicates: u64,
}

impl From<DrainSnapshot> for DrainReading {
    fn from(snapshot: DrainSnapshot) -> Self {
        let m = &snapshot.metrics;
        let accounting = snapshot.accounting.as_ref().map(|a| LossAccounting {
            gaps: a.missing,
            duplicates: a.totals.duplicates,
        });
        let spool = Some(SpoolBacklog {
            segments: u64::try_from(m.spool_backlog_segments).unwrap_or(0),
            bytes: u64::try_from(m.spool_backlog_bytes).unwrap_or(0),
            oldest_age: m.spool_oldest_event_age,
        });
        DrainReading {
            snapshot,
            spool,
            accounting,
        }
    }
}

/// Takes [`Sample`]s of one queue, its drain and its proxy.
#[derive(Debug)]
pub struct Sampler {
    key: Key,
    drain: StateDir,
    proxy: StateDir,
    peek: Vec<u8>,
}

impl Sampler {
    /// Reads queue `key`, the drain's snapshot in `state_dir` and the
    /// proxy's in `run_dir`.
    pub fn new(key: Key, state_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Sampler {
        Sampler {
            key,
            drain: StateDir::new(state_dir.into(), key),
            proxy: StateDir::new(run_dir.into(), key),
            peek: Vec::new(),
        }
    }

    /// The queue's key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// Reads everything once.
    pub fn read(&mut self) -> Sample {
        let at = unix_now();
        let drain = match read_published::<DrainSnapshot>(&self.drain.stats_snapshot(), at) {
            Liveness::Up { snapshot, age } => Liveness::Up {
                snapshot: snapshot.into(),
                age,
            },
            Liveness::Stale { snapshot, age } => Liveness::Stale {
                snapshot: snapshot.into(),
                age,
            },
            Liveness::Down(down) => Liveness::Down(down),
        };
        let peek = drain.up().is_none();
        let queue = self.read_queue(peek);
        Sample {
            at,
            queue,
            drain,
            proxy: read_proxy_snapshot(&self.proxy, at),
        }
    }

    fn read_queue(&mut self, peek: bool) -> Result<QueueReading, String> {
        let key = self.key;
        let queue = Queue::open(key).map_err(|e| match e {
            sysvmq::Error::NotFound { .. } => format!(
                "queue {key:#010x} does not exist: create it with \
                 `shopify-events setup --queue-key {key:#010x} --capacity SIZE`"
            ),
            e => e.to_string(),
        })?;
        let stat = queue.stat().map_err(|e| e.to_string())?;
        let head = match (peek, stat.messages) {
            (false, _) => Head::NotPeeked,
            (true, 0) => Head::Empty,
            (true, _) => self.peek_head(&queue),
        };
        Ok(QueueReading {
            depth: stat.messages,
            bytes: stat.bytes,
            capacity: stat.capacity,
            head,
        })
    }

    /// Copies the head message without taking it, and reads its emit time.
    fn peek_head(&mut self, queue: &Queue) -> Head {
        let size = HEADER_LEN + sysvmq::message_size_limit() as usize;
        if self.peek.len() != size {
            self.peek = vec![0; size];
        }
        let len = match queue.copy_into(0, &mut self.peek) {
            Ok(Some(len)) => len,
            // Taken between the stat and the copy.
            Ok(None) => return Head::Empty,
            Err(sysvmq::Error::Unsupported { .. }) => {
                return Head::Unknown("this kernel cannot peek (no MSG_COPY)")
            }
            Err(sysvmq::Error::BufferTooSmall { .. }) => {
                return Head::Unknown("the head is larger than kernel.msgmax")
            }
            Err(sysvmq::Error::PermissionDenied { .. }) => {
                return Head::Unknown("no read permission on the queue")
            }
            Err(_) => return Head::Unknown("peeking failed"),
        };
        let body = self
            .peek
            .get(HEADER_LEN..HEADER_LEN + len)
            .unwrap_or_default();
        match Envelope::decode(body) {
            Ok(event) => Head::EmittedAt(event.time_us),
            Err(_) => Head::Unknown("the head is not an envelope"),
        }
    }
}
