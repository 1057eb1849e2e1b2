//! [`SendError`]: why a transport did not take an event, the same type for
//! every transport so that one policy (drop or raise) serves them all.

use std::fmt;

use sysvmq::Key;

use crate::spool::SpoolError;

/// Why a transport did not take a frame. Nothing was sent in any case.
///
/// Transport trouble (a full queue or buffer, an unusable queue, a closed
/// transport) may be dropped by a caller that does not raise (`emit`);
/// an event that can never be sent ([`SendError::TooLarge`]) or a frame
/// built wrongly is a programming error to report at once
/// ([`SendError::is_droppable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `sysv`: the SysV queue has no room.
    #[error(
        "SysV queue {key:#010x} is full: the drain is not keeping up or not running \
         (check `shopify-events stats`; size the queue with `shopify-events setup --capacity`)"
    )]
    QueueFull {
        /// Queue key.
        key: Key,
    },
    /// `socket`: the buffer of frames the proxy has not acknowledged is
    /// full: the proxy is down, slow, or withholding acks because the host
    /// queue is full.
    #[error("socket transport buffer is full ({events} events, {bytes} bytes not yet acknowledged by the proxy at {address}; last error: {last_error}): check that `shopify-events proxy` runs and the host's drain keeps up")]
    SocketBufferFull {
        /// The proxy's address.
        address: String,
        /// Frames buffered.
        events: usize,
        /// Bytes buffered.
        bytes: usize,
        /// The last connection or proxy error, or "none".
        last_error: String,
    },
    /// `direct`: the in-process buffer is full: Kafka is slower than the
    /// app, or unreachable.
    #[error("direct transport buffer full ({capacity} events waiting for Kafka): the brokers are slow or unreachable; raise `direct_buffer` or check the brokers")]
    DirectBufferFull {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The envelope can never fit: larger than the limit of the host, the
    /// queue, the proxy's host or Kafka.
    #[error(
        "event envelope is {size} bytes, larger than the {limit}-byte limit set by {setting}; \
         send a smaller payload, or {fix}"
    )]
    TooLarge {
        /// Size of the encoded envelope.
        size: usize,
        /// The limit it exceeds.
        limit: u64,
        /// Which setting imposes the limit.
        setting: &'static str,
        /// What an operator can change.
        fix: &'static str,
    },
    /// The envelope is larger than `max_event_bytes`: no transport of this
    /// process takes it (`sysv` takes envelopes above `kernel.msgmax` into
    /// the spool, up to this limit).
    #[error(
        "event envelope is {size} bytes, larger than max_event_bytes ({max_event_bytes}{}); send \
         a smaller payload, or raise max_event_bytes (SHOPIFY_EVENTS_MAX_EVENT_BYTES) together \
         with Kafka's message.max.bytes",
        msgmax.map(|m| format!("; envelopes above kernel.msgmax ({m}) go to the spool")).unwrap_or_default()
    )]
    EventTooLarge {
        /// Size of the encoded envelope.
        size: usize,
        /// The configured limit.
        max_event_bytes: usize,
        /// `kernel.msgmax`, for the `sysv` transport.
        msgmax: Option<u64>,
    },
    /// The spool could not take the envelope: the `spool` transport's
    /// append failed, or the `sysv` transport's queue could not take it
    /// (`why`) and neither could the spool.
    #[error("{why}: {source}")]
    Spool {
        /// Why the envelope was for the spool.
        why: SpoolWhy,
        /// Why the spool did not take it (names the directory and the fix).
        #[source]
        source: SpoolError,
    },
    /// `sysv`: any other queue failure (permissions, too many queues, ...).
    #[error(transparent)]
    Queue(#[from] sysvmq::Error),
    /// The transport takes no events: it was closed, or its worker could
    /// not be (re)started.
    #[error("{transport} transport unavailable: {reason}")]
    Unavailable {
        /// Which transport.
        transport: &'static str,
        /// Why.
        reason: String,
    },
    /// The envelope could not be numbered: it is not one whole version 2
    /// envelope (a frame built wrongly).
    #[error("cannot number the event: {source}")]
    Stamp {
        /// Why.
        #[source]
        source: crate::envelope::StampError,
    },
    /// The frame lacks the prefix [`FrameSink::begin_frame`](super::FrameSink::begin_frame) writes.
    #[error(
        "frame of {len} bytes has no room for the {prefix}-byte prefix; start it with begin_frame"
    )]
    NoPrefix {
        /// Its length.
        len: usize,
        /// The prefix's length.
        prefix: usize,
    },
}

impl SendError {
    /// Whether a caller that does not raise may drop the event (count it and
    /// go on): true for transport trouble, false for an event that can never
    /// be sent and for a frame built wrongly.
    pub fn is_droppable(&self) -> bool {
        match self {
            SendError::TooLarge { .. }
            | SendError::EventTooLarge { .. }
            | SendError::NoPrefix { .. }
            | SendError::Stamp { .. } => false,
            SendError::Spool { source, .. } => !matches!(
                source,
                SpoolError::RecordTooLarge { .. } | SpoolError::NotAnEnvelope { .. }
            ),
            _ => true,
        }
    }
}

/// Why an envelope was for the spool when the spool failed to take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpoolWhy {
    /// `spool`: every envelope goes there.
    Transport,
    /// `sysv`: the queue was full.
    QueueFull {
        /// Queue key.
        key: Key,
    },
    /// `sysv`: the envelope is larger than the queue ever takes.
    TooLargeForQueue {
        /// Size of the envelope.
        size: usize,
        /// The queue's limit.
        limit: u64,
        /// What sets it (`kernel.msgmax`, or the queue's capacity).
        setting: &'static str,
    },
    /// `sysv`: earlier events of this process wait in the spool, and later
    /// ones follow them there until the drain acknowledged them (order).
    Spooling,
}

impl fmt::Display for SpoolWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolWhy::Transport => f.write_str("the spool transport could not take the event"),
            SpoolWhy::QueueFull { key } => write!(
                f,
                "SysV queue {key:#010x} is full and the spool could not take the event"
            ),
            SpoolWhy::TooLargeForQueue {
                size,
                limit,
                setting,
            } => write!(
                f,
                "the event envelope of {size} bytes is larger than {setting} ({limit}) and the \
                 spool could not take it"
            ),
            SpoolWhy::Spooling => f.write_str(
                "the spool could not take the event (earlier events of this process are in the \
                 spool, so later ones follow them there to keep their order)",
            ),
        }
    }
}
