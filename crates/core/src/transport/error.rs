//! [`SendError`]: why a transport did not take an event, the same type for
//! every transport so that one policy (drop or raise) serves them all.

use sysvmq::Key;

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
        !matches!(
            self,
            SendError::TooLarge { .. } | SendError::NoPrefix { .. }
        )
    }
}
