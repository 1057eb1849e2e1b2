//! Handing the frame to the queue: the product's `SysvEmitter` without
//! numbering (`forward_frame`; since the product adopted this cut, it is
//! `msgsnd` from the cached id too, checks on the error path), or the
//! prototype: `msgsnd` from the cached id at once, with the size checks the
//! kernel repeats left to the error path. Neither stamps the envelope: the
//! prototypes measure the path as it was before the stamp (one CRC).

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

use shopify_events_core::transport::{SendError, SysvEmitter};
use sysvmq::HEADER_LEN;

use crate::cuts::{has, NO_SEND, NO_STATS, SEND};

/// What the prototype keeps beside the product's emitter.
pub(crate) struct DirectQueue {
    /// The queue id, or -1 until the first send opened it.
    pub(crate) id: AtomicI32,
    pub(crate) emitted: AtomicU64,
}

impl DirectQueue {
    pub(crate) const fn new() -> Self {
        DirectQueue {
            id: AtomicI32::new(-1),
            emitted: AtomicU64::new(0),
        }
    }
}

/// Sends one frame (mtype prefix + envelope).
#[inline(always)]
pub(crate) fn send<const CUTS: u32>(
    emitter: &SysvEmitter,
    direct: &DirectQueue,
    key: i32,
    frame: &[u8],
) -> Result<(), SendError> {
    if has(CUTS, NO_SEND) {
        return Ok(());
    }
    if !has(CUTS, SEND) {
        return emitter.forward_frame(frame);
    }
    let id = direct.id.load(Relaxed);
    if id >= 0 {
        // SAFETY: `frame` holds the 8-byte mtype and the body after it
        // (begin_frame wrote the prefix, so it is at least HEADER_LEN long).
        let rc = unsafe {
            libc::msgsnd(
                id,
                frame.as_ptr().cast(),
                frame.len() - HEADER_LEN,
                libc::IPC_NOWAIT,
            )
        };
        if rc == 0 {
            if !has(CUTS, NO_STATS) {
                direct.emitted.fetch_add(1, Relaxed);
            }
            return Ok(());
        }
    }
    slow_send(emitter, direct, key, frame)
}

/// First send, and every failure: the product's path opens the queue,
/// checks sizes and classifies the error (it sends again, which a product
/// version would not: it would map the errno it already has).
#[cold]
#[inline(never)]
fn slow_send(
    emitter: &SysvEmitter,
    direct: &DirectQueue,
    key: i32,
    frame: &[u8],
) -> Result<(), SendError> {
    emitter.forward_frame(frame)?;
    if let Ok(queue) = sysvmq::Queue::open(key) {
        direct.id.store(queue.id(), Relaxed);
    }
    direct.emitted.fetch_add(1, Relaxed);
    Ok(())
}
