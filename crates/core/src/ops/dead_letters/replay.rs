//! Putting dead letters back into the queue.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use sysvmq::{Key, Message, Queue};

use super::read::DeadLetter;
use crate::envelope::{EncodeError, Envelope, EnvelopeWriter, Flags, PayloadError};
use crate::topic::{validate_topic, TopicError};
use crate::transport::DEFAULT_MTYPE;

/// What to replay, and where.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The queue to put the events into.
    pub key: Key,
    /// Send to this topic instead of each event's own.
    pub topic: Option<String>,
    /// How long to wait for room while the queue is full.
    pub wait: Duration,
    /// Replay what can be replayed and report the rest, instead of refusing
    /// the whole replay.
    pub skip_unsendable: bool,
}

/// A dead letter that cannot be replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsendable {
    /// Its line in the file.
    pub line: u64,
    /// Its event id, if known.
    pub event_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// (line, event id, topic) of each event put into the queue, in order.
    pub replayed: Vec<(u64, String, String)>,
    /// Those skipped (only with `skip_unsendable`).
    pub skipped: Vec<Unsendable>,
}

/// Why a replay refused or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// `--topic` is not a valid Kafka topic.
    #[error("--topic {topic:?}: {source}")]
    Topic {
        /// The topic given.
        topic: String,
        /// What is wrong with it.
        source: TopicError,
    },
    /// The queue cannot be opened.
    #[error("cannot open queue {key:#010x}: {source}; replay puts events into an existing queue (`shopify-events setup` creates it)")]
    Queue {
        /// The queue key.
        key: u32,
        /// Why.
        source: sysvmq::Error,
    },
    /// Some selected events cannot be replayed; nothing was sent.
    #[error("nothing replayed: {} of the selected dead letters cannot be: {}; replay the others with --skip-unsendable", .unsendable.len(), describe(.unsendable))]
    Unsendable {
        /// Each of them, with the reason.
        unsendable: Vec<Unsendable>,
    },
    /// The queue stayed full longer than the wait.
    #[error("queue {key:#010x} stayed full for {waited:?}: {replayed} of {total} events replayed (the rest not); is the drain running? Run the replay again for the rest with --line")]
    Full {
        /// The queue key.
        key: u32,
        /// How long it waited.
        waited: Duration,
        /// Events put in before it stopped (the report's first ones).
        replayed: usize,
        /// Events selected.
        total: usize,
        /// What went in.
        report: ReplayReport,
    },
    /// Sending failed for another reason.
    #[error("sending to queue {key:#010x} failed after {replayed} events: {source}")]
    Send {
        /// The queue key.
        key: u32,
        /// Events put in before it failed.
        replayed: usize,
        /// Why.
        source: sysvmq::Error,
    },
}

fn describe(unsendable: &[Unsendable]) -> String {
    let mut text: Vec<String> = unsendable
        .iter()
        .take(5)
        .map(|u| format!("line {}: {}", u.line, u.reason))
        .collect();
    if unsendable.len() > 5 {
        text.push(format!("and {} more", unsendable.len() - 5));
    }
    text.join("; ")
}

/// Puts `letters` into the queue of `plan`, in order, each with its own
/// event id and emit time; see the module docs.
pub fn replay(letters: &[DeadLetter], plan: &ReplayPlan) -> Result<ReplayReport, ReplayError> {
    if let Some(topic) = &plan.topic {
        validate_topic(topic).map_err(|e| ReplayError::Topic {
            topic: topic.clone(),
            source: e,
        })?;
    }
    let key = plan.key;
    let queue = Queue::open(key).map_err(|source| ReplayError::Queue {
        key: key as u32,
        source,
    })?;
    let capacity = queue
        .stat()
        .map_err(|source| ReplayError::Queue {
            key: key as u32,
            source,
        })?
        .capacity;
    let msgmax = sysvmq::message_size_limit();
    let mut ready = Vec::with_capacity(letters.len());
    let mut report = ReplayReport::default();
    for letter in letters {
        match prepare(letter, plan.topic.as_deref(), msgmax, capacity) {
            Ok(message) => ready.push(message),
            Err(reason) => report.skipped.push(Unsendable {
                line: letter.line,
                event_id: letter.event_id.clone(),
                reason,
            }),
        }
    }
    if !report.skipped.is_empty() && !plan.skip_unsendable {
        return Err(ReplayError::Unsendable {
            unsendable: report.skipped,
        });
    }
    let total = ready.len();
    for (line, id, topic, message) in ready {
        let deadline = Instant::now() + plan.wait;
        loop {
            match queue.try_send(&message) {
                Ok(()) => break,
                Err(sysvmq::Error::Full { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(sysvmq::Error::Full { .. }) => {
                    return Err(ReplayError::Full {
                        key: key as u32,
                        waited: plan.wait,
                        replayed: report.replayed.len(),
                        total,
                        report,
                    })
                }
                Err(source) => {
                    return Err(ReplayError::Send {
                        key: key as u32,
                        replayed: report.replayed.len(),
                        source,
                    })
                }
            }
        }
        report.replayed.push((line, id, topic));
    }
    Ok(report)
}

/// The queue message for `letter`, or why there is none.
fn prepare(
    letter: &DeadLetter,
    topic: Option<&str>,
    msgmax: u64,
    capacity: u64,
) -> Result<(u64, String, String, Message), String> {
    let event = Envelope::decode(&letter.envelope)
        .map_err(|e| format!("its envelope does not decode ({e}), so it cannot be replayed"))?;
    let body = match topic {
        None => letter.envelope.clone(),
        Some(topic) => reencode(&event, topic).map_err(|e| format!("cannot re-encode it: {e}"))?,
    };
    let size = body.len() as u64;
    if size > msgmax {
        return Err(format!(
            "it is {size} bytes, larger than kernel.msgmax ({msgmax} bytes), the largest message \
             the queue takes: raise it (`sysctl -w kernel.msgmax={size}`, with kernel.msgmnb at \
             least as large) and replay again; the spool will take such events once it lands"
        ));
    }
    if size > capacity {
        return Err(format!(
            "it is {size} bytes, larger than the queue's capacity ({capacity} bytes): grow the \
             queue with `shopify-events setup --capacity SIZE`"
        ));
    }
    let id = event.id.to_string();
    let topic = topic.unwrap_or(event.topic).to_owned();
    Ok((
        letter.line,
        id,
        topic,
        Message::with_body(DEFAULT_MTYPE, &body),
    ))
}

/// `event` again, for `topic`: same id, emit time, key, headers, payload
/// and JSON flag.
fn reencode(event: &Envelope<'_>, topic: &str) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(event.payload.len() + 256);
    let mut writer = EnvelopeWriter::begin(&mut out, event.id, event.time_us, topic, event.key)?;
    for (name, value) in event.headers.iter() {
        writer.header(name, value)?;
    }
    let json = event.flags.contains(Flags::PAYLOAD_JSON);
    writer
        .payload_with(json, |buf| {
            buf.extend_from_slice(event.payload);
            Ok::<(), Infallible>(())
        })
        .map_err(|e| match e {
            PayloadError::Encode(e) => e,
            PayloadError::Write(never) => match never {},
        })?;
    Ok(out)
}
