//! `ShopifyEvents::Native::SpoolReader`: the spool read from Ruby, for
//! specs and operator tooling (what is in a spool directory right now).
//! The drain reads spools itself; this is the same core reader
//! ([`shopify_events_core::spool::SpoolReader`]).
//!
//! `read(ack)` returns the envelopes readable now as binary Strings (each
//! producer's in order) and, with `ack` true, acknowledges them as the drain
//! would once Kafka took them: their writers' `drained` sees it, and
//! finished segments are deleted. `events` returns what the reader found
//! worth reporting (damage, ignored files) as lines.

use std::cell::RefCell;
use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby};
use shopify_events_core::spool::{Discovery, ReaderOptions, SpoolReader as CoreReader};

use crate::errors;
use crate::sysv_emitter::queue_key;

#[magnus::wrap(class = "ShopifyEvents::Native::SpoolReader", free_immediately, size)]
struct SpoolReader {
    // Ruby calls methods one at a time under the GVL; the RefCell makes the
    // reader's `&mut self` API usable from `&self` and panics on no path
    // (no method re-enters another).
    inner: RefCell<CoreReader>,
}

impl SpoolReader {
    /// `new(dir, queue_key)`: a reader that scans the directory on every
    /// `read` and tests writers' liveness each time (precise, not cheap:
    /// the drain's reader uses inotify and a liveness period instead).
    fn new(ruby: &Ruby, dir: String, key: i64) -> Result<Self, Error> {
        let options = ReaderOptions {
            discovery: Discovery::Poll,
            poll_interval: Duration::ZERO,
            liveness_interval: Duration::ZERO,
            ..ReaderOptions::default()
        };
        let inner = CoreReader::open(dir, queue_key(ruby, key)?, options)
            .map_err(|e| errors::spool_error(ruby, &e))?;
        Ok(SpoolReader {
            inner: RefCell::new(inner),
        })
    }

    /// Every envelope readable now, refreshing until a round finds nothing
    /// new; acknowledged if `ack`.
    fn read(ruby: &Ruby, rb_self: &Self, ack: bool) -> Result<RArray, Error> {
        let Ok(mut reader) = rb_self.inner.try_borrow_mut() else {
            return Err(errors::arg_error(ruby, "SpoolReader is in use"));
        };
        let out = ruby.ary_new();
        let mut idle_rounds = 0;
        while idle_rounds < 2 {
            reader
                .refresh()
                .map_err(|e| errors::spool_error(ruby, &e))?;
            let mut got = false;
            while let Some(record) = reader.next_record() {
                got = true;
                out.push(ruby.str_from_slice(reader.body(&record)))?;
                if ack {
                    reader.ack(record.segment(), record.end());
                }
            }
            idle_rounds = if got { 0 } else { idle_rounds + 1 };
        }
        if ack {
            // Reclaims what the acks finished.
            reader
                .refresh()
                .map_err(|e| errors::spool_error(ruby, &e))?;
        }
        Ok(out)
    }

    /// Acknowledges every record readable now without handing it to Ruby
    /// (a drain that takes everything: benchmarks); returns how many.
    fn ack_all(ruby: &Ruby, rb_self: &Self) -> Result<u64, Error> {
        let Ok(mut reader) = rb_self.inner.try_borrow_mut() else {
            return Err(errors::arg_error(ruby, "SpoolReader is in use"));
        };
        let mut count = 0;
        for _ in 0..2 {
            reader
                .refresh()
                .map_err(|e| errors::spool_error(ruby, &e))?;
            while let Some(record) = reader.next_record() {
                reader.ack(record.segment(), record.end());
                count += 1;
            }
        }
        reader
            .refresh()
            .map_err(|e| errors::spool_error(ruby, &e))?;
        Ok(count)
    }

    /// What the reader reported since the last call (damage, given-up and
    /// ignored files), one line each.
    fn events(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let Ok(mut reader) = rb_self.inner.try_borrow_mut() else {
            return Err(errors::arg_error(ruby, "SpoolReader is in use"));
        };
        Ok(ruby.ary_from_iter(reader.take_events().iter().map(|e| e.to_string())))
    }

    /// `{segments:, waiting:, bytes:}` of the backlog.
    fn backlog(ruby: &Ruby, rb_self: &Self) -> Result<magnus::RHash, Error> {
        let Ok(reader) = rb_self.inner.try_borrow() else {
            return Err(errors::arg_error(ruby, "SpoolReader is in use"));
        };
        let b = reader.backlog();
        crate::emit::counters(
            ruby,
            &[
                ("segments", b.segments as u64),
                ("waiting", b.waiting as u64),
                ("bytes", b.bytes),
            ],
        )
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("SpoolReader", ruby.class_object())?;
    class.define_singleton_method("new", function!(SpoolReader::new, 2))?;
    class.define_method("read", method!(SpoolReader::read, 1))?;
    class.define_method("ack_all", method!(SpoolReader::ack_all, 0))?;
    class.define_method("events", method!(SpoolReader::events, 0))?;
    class.define_method("backlog", method!(SpoolReader::backlog, 0))?;
    Ok(())
}
