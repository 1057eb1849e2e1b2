//! SysV queues for tests: fresh keys, and queues removed on drop even when
//! the test fails.
//!
//! Keys are `0x7D000000 | (pid & 0xFFFF) << 8 | n`: unique within a test
//! process (256 of them) and, through the pid, across the test processes
//! that run at the same time. A key some queue already holds (left over by a
//! crashed run whose pid was recycled) is skipped, never taken over.

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use sysvmq::{Key, Message, Queue};

use crate::sysctl::raise_msgmnb;

/// A key no queue holds yet; whatever queue holds it when the guard drops
/// (the test's, or one an emitter recreated) is removed.
#[derive(Debug)]
pub struct KeyGuard {
    key: Key,
}

impl KeyGuard {
    /// A fresh key under which no queue exists now.
    pub fn new() -> KeyGuard {
        for _ in 0..256 {
            let key = next_key();
            if Queue::open(key).is_err() {
                return KeyGuard { key };
            }
        }
        panic!("no free queue key for pid {}", std::process::id());
    }

    /// The key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// `0x7d...`, for `--queue-key` and `SHOPIFY_EVENTS_QUEUE_KEY`.
    pub fn hex(&self) -> String {
        format!("{:#010x}", self.key as u32)
    }
}

impl Default for KeyGuard {
    fn default() -> Self {
        KeyGuard::new()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if let Ok(queue) = Queue::open(self.key) {
            let _ = queue.remove();
        }
    }
}

fn next_key() -> Key {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) & 0xFF;
    (0x7D00_0000 | ((std::process::id() & 0xFFFF) << 8) | n) as Key
}

/// A queue this test created, removed on drop (and whatever queue holds its
/// key by then, if it has one). Dereferences to the [`Queue`].
#[derive(Debug)]
pub struct TestQueue {
    queue: Queue,
    key: Option<KeyGuard>,
}

impl TestQueue {
    /// A queue under a fresh key, with the capacity the kernel gives
    /// (`kernel.msgmnb` as it is).
    pub fn new() -> TestQueue {
        for _ in 0..256 {
            let key = KeyGuard::new();
            match Queue::create(key.key(), 0o600) {
                Ok(queue) => {
                    return TestQueue {
                        queue,
                        key: Some(key),
                    }
                }
                // Taken between the check and the create: try another.
                Err(sysvmq::Error::AlreadyExists { .. }) => std::mem::forget(key),
                Err(e) => panic!("create a test queue under {}: {e}", key.hex()),
            }
        }
        panic!("no free queue key for pid {}", std::process::id());
    }

    /// A queue under a fresh key with exactly `capacity` bytes.
    /// `kernel.msgmnb` is raised to at least `capacity` first (never
    /// lowered): a capacity above it needs CAP_SYS_RESOURCE, which root in
    /// a container may lack.
    pub fn with_capacity(capacity: u64) -> TestQueue {
        raise_msgmnb(capacity);
        let queue = TestQueue::new();
        queue
            .set_capacity(capacity)
            .unwrap_or_else(|e| panic!("set the capacity of {} to {capacity}: {e}", queue.hex()));
        queue
    }

    /// A queue without a key (`IPC_PRIVATE`).
    pub fn private() -> TestQueue {
        TestQueue {
            queue: Queue::create_private(0o600).expect("create a private queue"),
            key: None,
        }
    }

    /// The queue's key (panics for a private queue).
    pub fn key(&self) -> Key {
        self.guard().key()
    }

    /// The key as `0x7d...`, for `--queue-key` and `SHOPIFY_EVENTS_QUEUE_KEY`.
    pub fn hex(&self) -> String {
        self.guard().hex()
    }

    /// Messages waiting in the queue now under the key; 0 when there is none.
    pub fn depth(&self) -> u64 {
        let queue = match &self.key {
            Some(key) => Queue::open(key.key()).ok(),
            None => Some(self.queue),
        };
        queue.and_then(|q| q.stat().ok()).map_or(0, |s| s.messages)
    }

    /// Takes every message now in the queue and returns their bodies.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut msg = Message::with_capacity(1, sysvmq::message_size_limit() as usize);
        while self.queue.try_receive(&mut msg, 0).expect("receive") {
            out.push(msg.body().to_vec());
        }
        out
    }

    fn guard(&self) -> &KeyGuard {
        self.key.as_ref().expect("a private queue has no key")
    }
}

impl Default for TestQueue {
    fn default() -> Self {
        TestQueue::new()
    }
}

impl Deref for TestQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        &self.queue
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        // A test that removed the queue itself makes this fail: fine. The
        // key's guard then removes a queue recreated under the key.
        let _ = self.queue.remove();
    }
}
