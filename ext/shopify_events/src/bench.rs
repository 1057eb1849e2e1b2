//! `ShopifyEvents::Native::Bench`: baselines measured in the same process as
//! the Ruby benchmarks they are compared with (bench/emit.rb).

use std::sync::OnceLock;
use std::time::Instant;

use magnus::{function, prelude::*, Error, RModule, RString, Ruby};
use shopify_events_core::spool::{SpoolOptions, SpoolWriter};
use sysvmq::HEADER_LEN;

use crate::errors::Class;
use crate::{errors, sysv_emitter::queue_key};

/// The raw floor of the `sysv` transport: `iterations` bare non-blocking
/// `msgsnd` calls of one prebuilt frame, straight to libc. Returns elapsed
/// nanoseconds; raises if any send fails (the caller sizes the queue).
fn msgsnd_floor(ruby: &Ruby, key: i64, body: RString, iterations: usize) -> Result<u64, Error> {
    let queue =
        sysvmq::Queue::open(queue_key(ruby, key)?).map_err(|e| errors::queue_error(ruby, &e))?;
    let mut frame = (1 as libc::c_long).to_ne_bytes().to_vec();
    // SAFETY: copied at once.
    frame.extend_from_slice(unsafe { body.as_slice() });
    let len = frame.len() - HEADER_LEN;
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: `frame` holds a c_long type followed by `len` body bytes.
        let rc = unsafe { libc::msgsnd(queue.id(), frame.as_ptr().cast(), len, libc::IPC_NOWAIT) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(errors::raise(
                ruby,
                Class::QueueError,
                format!("msgsnd floor: {err}; empty or enlarge the bench queue"),
            ));
        }
    }
    Ok(start.elapsed().as_nanos() as u64)
}

/// The raw floor of the `spool` transport: `iterations` appends of one
/// prebuilt envelope with `SpoolWriter::append` (default options, the next
/// segment prepared ahead), straight from Rust. One writer per process,
/// made on the first call with `dir`, kept for later calls (as a transport
/// keeps its own), so segments grow to their steady size as they would.
/// Returns elapsed nanoseconds; raises if an append fails.
fn spool_append_floor(
    ruby: &Ruby,
    dir: String,
    key: i64,
    envelope: RString,
    iterations: usize,
) -> Result<u64, Error> {
    static WRITER: OnceLock<SpoolWriter> = OnceLock::new();
    let key = queue_key(ruby, key)?;
    let writer = WRITER.get_or_init(|| {
        SpoolWriter::new(SpoolOptions {
            prepare_ahead: true,
            ..SpoolOptions::new(dir, key)
        })
    });
    // SAFETY: copied at once.
    let body = unsafe { envelope.as_slice() }.to_vec();
    let fail = |e: shopify_events_core::spool::SpoolError| errors::spool_error(ruby, &e);
    let start = Instant::now();
    for _ in 0..iterations {
        writer.append(&body).map_err(fail)?;
    }
    Ok(start.elapsed().as_nanos() as u64)
}

/// Empties the queue at `key` without creating Ruby objects; returns how
/// many messages it removed. Benchmarks call it between timed batches.
fn purge(ruby: &Ruby, key: i64) -> Result<u64, Error> {
    let queue =
        sysvmq::Queue::open(queue_key(ruby, key)?).map_err(|e| errors::queue_error(ruby, &e))?;
    let mut frame = vec![0u8; HEADER_LEN + sysvmq::message_size_limit() as usize];
    let mut removed = 0;
    while queue
        .try_receive_into(&mut frame, 0)
        .map_err(|e| errors::queue_error(ruby, &e))?
        .is_some()
    {
        removed += 1;
    }
    Ok(removed)
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let bench = native.define_module("Bench")?;
    bench.define_module_function("msgsnd_floor", function!(msgsnd_floor, 3))?;
    bench.define_module_function("purge", function!(purge, 1))?;
    bench.define_module_function("spool_append_floor", function!(spool_append_floor, 4))?;
    let _ = ruby;
    Ok(())
}
