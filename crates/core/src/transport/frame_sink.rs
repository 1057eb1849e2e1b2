//! [`FrameSink`]: what every native transport does with one encoded event.

use super::SendError;

/// A transport's side of emitting one event, never blocking.
///
/// The caller owns a buffer it reuses: [`begin_frame`](Self::begin_frame)
/// clears it and writes the transport's prefix, the caller encodes one
/// envelope after it, and [`send_frame`](Self::send_frame) hands the frame
/// over. On a failure the caller applies one policy for every transport:
/// it drops the event ([`count_drop`](Self::count_drop)) if the failure is
/// [`droppable`](Self::droppable) and it does not raise, and reports it
/// otherwise.
///
/// Implemented by [`SysvEmitter`](super::SysvEmitter) (a `msgsnd`),
/// [`SocketClient`](crate::proxy::SocketClient) (a bounded buffer an IO
/// thread sends to the proxy) and, with the `kafka` feature,
/// `DirectProducer` (a bounded channel to a librdkafka worker).
pub trait FrameSink {
    /// Clears `buf` and writes what precedes the envelope in a frame.
    fn begin_frame(&self, buf: &mut Vec<u8>);

    /// Hands over one frame ([`begin_frame`](Self::begin_frame)'s prefix
    /// plus an envelope) without blocking. A transport that feeds the drain
    /// numbers the event in place first (the stamp, `numbered.rs`), so
    /// the frame is mutable; the number is kept only if the send succeeds.
    fn send_frame(&self, frame: &mut [u8]) -> Result<(), SendError>;

    /// Whether [`send_frame`](Self::send_frame) seals the CRC of every
    /// version 2 envelope it is handed (numbering rewrites the stamp and
    /// seals it again), so that the caller may encode with
    /// [`Seal::ByStamp`](crate::envelope::Seal::ByStamp) and pay one CRC per
    /// event instead of two. False unless the transport numbers events.
    fn seals(&self) -> bool {
        false
    }

    /// Whether a caller that does not raise may drop the event after this
    /// failure rather than report it.
    fn droppable(&self, failure: &SendError) -> bool {
        failure.is_droppable()
    }

    /// Counts an event the caller dropped after a failed send.
    fn count_drop(&self);
}
