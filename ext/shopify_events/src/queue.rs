//! `ShopifyEvents::Native::Queue`: direct access to a SysV queue, for
//! operators' tooling and for specs that read back what `emit` wrote.
//!
//! `receive` blocks without the GVL and returns when Ruby interrupts the
//! thread (Thread#kill, Timeout), so it never stalls other Ruby threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use magnus::{function, method, prelude::*, Error, RHash, RModule, RString, Ruby};
use sysvmq::HEADER_LEN;

use crate::{errors, nogvl::nogvl, sysv_emitter::queue_key};

#[magnus::wrap(class = "ShopifyEvents::Native::Queue", free_immediately, size)]
struct Queue {
    inner: sysvmq::Queue,
}

/// Longest sleep between polls of an empty queue: bounds the wake-up latency
/// while keeping an idle waiter's CPU use near zero.
const MAX_POLL_SLEEP: Duration = Duration::from_millis(5);

impl Queue {
    fn open(ruby: &Ruby, key: i64) -> Result<Self, Error> {
        let inner = sysvmq::Queue::open(queue_key(ruby, key)?)
            .map_err(|e| errors::queue_error(ruby, &e))?;
        Ok(Queue { inner })
    }

    fn open_or_create(ruby: &Ruby, key: i64, mode: u32) -> Result<Self, Error> {
        let inner = sysvmq::Queue::open_or_create(queue_key(ruby, key)?, mode)
            .map_err(|e| errors::queue_error(ruby, &e))?;
        Ok(Queue { inner })
    }

    fn create(ruby: &Ruby, key: i64, mode: u32) -> Result<Self, Error> {
        let inner = sysvmq::Queue::create(queue_key(ruby, key)?, mode)
            .map_err(|e| errors::queue_error(ruby, &e))?;
        Ok(Queue { inner })
    }

    /// The next message body, or nil if none arrived within `timeout`
    /// seconds (nil: wait until one does).
    fn receive(
        ruby: &Ruby,
        rb_self: &Self,
        timeout: Option<f64>,
    ) -> Result<Option<RString>, Error> {
        let deadline = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(Instant::now() + Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(errors::arg_error(
                    ruby,
                    format!("timeout must be a finite number of seconds >= 0, got {t}"),
                ))
            }
            None => None,
        };
        let queue = rb_self.inner;
        let mut frame = vec![0u8; HEADER_LEN + sysvmq::message_size_limit() as usize];
        loop {
            let received = nogvl(ruby, |interrupted: &AtomicBool| {
                poll(queue, &mut frame, deadline, interrupted)
            })?;
            match received {
                Poll::Received(len) => {
                    return Ok(Some(ruby.enc_str_new(
                        &frame[HEADER_LEN..HEADER_LEN + len],
                        ruby.ascii8bit_encoding(),
                    )))
                }
                Poll::TimedOut => return Ok(None),
                // Ruby woke us without raising (a trap handler ran): wait on.
                Poll::Interrupted => continue,
                Poll::Failed(e) => return Err(errors::queue_error(ruby, &e)),
            }
        }
    }

    /// The next message body, or nil if the queue is empty; never blocks.
    fn try_receive(ruby: &Ruby, rb_self: &Self) -> Result<Option<RString>, Error> {
        let mut frame = vec![0u8; HEADER_LEN + sysvmq::message_size_limit() as usize];
        match rb_self.inner.try_receive_into(&mut frame, 0) {
            Ok(Some(len)) => Ok(Some(ruby.enc_str_new(
                &frame[HEADER_LEN..HEADER_LEN + len],
                ruby.ascii8bit_encoding(),
            ))),
            Ok(None) => Ok(None),
            Err(e) => Err(errors::queue_error(ruby, &e)),
        }
    }

    /// Puts raw bytes into the queue without blocking (message type 1).
    fn try_send(ruby: &Ruby, rb_self: &Self, body: RString) -> Result<(), Error> {
        // SAFETY: copied into the message at once.
        let msg = sysvmq::Message::with_body(1, unsafe { body.as_slice() });
        rb_self
            .inner
            .try_send(&msg)
            .map_err(|e| errors::queue_error(ruby, &e))
    }

    fn stat(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self
            .inner
            .stat()
            .map_err(|e| errors::queue_error(ruby, &e))?;
        let hash = ruby.hash_new();
        let time = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        hash.aset(ruby.to_symbol("depth"), s.messages)?;
        hash.aset(ruby.to_symbol("bytes"), s.bytes)?;
        hash.aset(ruby.to_symbol("capacity"), s.capacity)?;
        hash.aset(ruby.to_symbol("last_send_pid"), s.last_send_pid)?;
        hash.aset(ruby.to_symbol("last_receive_pid"), s.last_receive_pid)?;
        hash.aset(ruby.to_symbol("last_send_time"), time(s.last_send_time))?;
        hash.aset(
            ruby.to_symbol("last_receive_time"),
            time(s.last_receive_time),
        )?;
        hash.aset(ruby.to_symbol("mode"), s.mode)?;
        Ok(hash)
    }

    fn set_capacity(ruby: &Ruby, rb_self: &Self, bytes: u64) -> Result<(), Error> {
        rb_self
            .inner
            .set_capacity(bytes)
            .map_err(|e| errors::queue_error(ruby, &e))
    }

    fn remove(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        rb_self
            .inner
            .remove()
            .map_err(|e| errors::queue_error(ruby, &e))
    }

    fn key(&self) -> i64 {
        i64::from(self.inner.key() as u32)
    }

    fn id(&self) -> i32 {
        self.inner.id()
    }
}

enum Poll {
    Received(usize),
    TimedOut,
    Interrupted,
    Failed(sysvmq::Error),
}

/// Polls with an adaptive sleep (10 µs doubling to 5 ms): SysV queues have no
/// file descriptor to wait on, and a blocking `msgrcv` could only be woken by
/// a signal.
fn poll(
    queue: sysvmq::Queue,
    frame: &mut [u8],
    deadline: Option<Instant>,
    interrupted: &AtomicBool,
) -> Poll {
    let mut sleep = Duration::from_micros(10);
    loop {
        match queue.try_receive_into(frame, 0) {
            Ok(Some(len)) => return Poll::Received(len),
            Ok(None) => {}
            Err(e) => return Poll::Failed(e),
        }
        if interrupted.load(Ordering::SeqCst) {
            return Poll::Interrupted;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Poll::TimedOut;
        }
        let nap = deadline.map_or(sleep, |d| sleep.min(d - now));
        std::thread::sleep(nap);
        sleep = (sleep * 2).min(MAX_POLL_SLEEP);
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Queue", ruby.class_object())?;
    class.define_singleton_method("open", function!(Queue::open, 1))?;
    class.define_singleton_method("open_or_create", function!(Queue::open_or_create, 2))?;
    class.define_singleton_method("create", function!(Queue::create, 2))?;
    class.define_method("receive", method!(Queue::receive, 1))?;
    class.define_method("try_receive", method!(Queue::try_receive, 0))?;
    class.define_method("try_send", method!(Queue::try_send, 1))?;
    class.define_method("stat", method!(Queue::stat, 0))?;
    class.define_method("capacity=", method!(Queue::set_capacity, 1))?;
    class.define_method("remove", method!(Queue::remove, 0))?;
    class.define_method("key", method!(Queue::key, 0))?;
    class.define_method("id", method!(Queue::id, 0))?;
    Ok(())
}
