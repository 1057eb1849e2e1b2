//! `shopify-events dead-letters list|show|replay`: reading the drain's
//! dead-letter files and putting their events back into the queue.
//!
//! # The file
//!
//! JSON lines, one object per event Kafka will never take, written by the
//! drain ([`crate::drain::DeadLetters`]):
//!
//! ```text
//! {"envelope_base64":"U0UB…","event_id":"0190…","reason":"Broker: Unknown topic or partition","time":"2026-12-02T05:01:02.123456Z","topic":"orders.created"}
//! ```
//!
//! Only `envelope_base64` is required (it is the whole event, CRC
//! included); `time`, `reason`, `event_id` and `topic` are shown when
//! present, and `event_id`/`topic` are `null` for an envelope that did not
//! decode. Keys are read by name, in any order; unknown keys are ignored.
//! Any file in this format is accepted, rotated ones included: the reader
//! takes a path, not a name.
//!
//! # Damage
//!
//! A dead-letter file is appended to by a process that may be killed or
//! meet a full disk mid-line, so the reader expects damage and never
//! stops at it ([`Record::Damaged`], with the line number and byte offset):
//!
//! - a **torn last line** (no newline, not a whole object) is skipped and
//!   reported; a last line that is a whole object but lacks only its
//!   newline is kept;
//! - a **garbled line** (not JSON, no `envelope_base64`, bad base64) is
//!   skipped and reported; if a whole dead letter follows the garbage on
//!   the same line (a torn line glued to the next one by a later append),
//!   that dead letter is kept and the garbage before it reported;
//! - **whole dead letters glued** on one line (one lost its newline, the
//!   next was appended to it; files joined with `cat`) are all kept;
//! - a line longer than [`MAX_LINE`] is skipped unread.
//!
//! # Replay
//!
//! [`replay`] puts events back into the queue with their original event id
//! and emit time: the envelope as it was, or re-encoded for another topic
//! (`--topic`) with the same id, time, key, headers and payload. Consumers
//! that deduplicate by event id see a replayed event as the one that was
//! lost. Every selected event is checked first (decodes, fits the queue),
//! so a replay that cannot finish refuses before sending anything; only a
//! queue that stays full can stop it half way, and it then says how many
//! went in.

mod read;
mod replay;
mod show;

pub use read::{
    read_dead_letters, Damage, DeadLetter, DeadLetterError, DeadLetterReader, Record, MAX_LINE,
};
pub use replay::{replay, ReplayError, ReplayPlan, ReplayReport, Unsendable};
pub use show::{printable, DeadLetterView, Payload};
