//! Where the drain loop publishes delivered events, and where each tap
//! client's bounded buffer is filled from.
//!
//! The drain loop is the only publisher; the subscribers are client
//! threads. The list of subscribers sits behind a mutex that the drain
//! takes only while somebody taps: `active`, the number of subscribers, is
//! read with one relaxed load first. A stale read costs nothing wrong: a
//! client that just subscribed sees events from the next delivery on, one
//! that just left is skipped under the lock.
//!
//! A client with several globs (up to
//! [`TAP_MAX_GLOBS`](crate::defaults::TAP_MAX_GLOBS)) would cost the drain
//! loop every glob against every event's topic; its verdict per topic is
//! kept instead ([`VERDICTS`] topics at most, forgotten all at once when
//! full), so a busy topic costs one hash lookup per such client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use super::TopicFilter;
use crate::envelope::Envelope;

/// Topics whose verdict a client's filter keeps; past it, they are
/// forgotten and learnt again. Bounds the memory a client with many topics
/// flowing costs: at most this many topic names of at most 249 bytes.
const VERDICTS: usize = 1024;
/// Globs from which a filter's verdicts are kept: fewer cost less to match
/// than the lookup.
const VERDICTS_FROM_GLOBS: usize = 4;

/// One event for one client: the envelope, and how many matching events
/// were dropped for the client just before it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Events dropped for this client since the previous item.
    pub missed_before: u64,
    /// The event's envelope (shared by every client it went to).
    pub body: Arc<[u8]>,
}

/// A client's end of the hub: its events, in delivery order.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    items: Receiver<Item>,
    queued: Arc<AtomicUsize>,
    tail: Arc<AtomicU64>,
}

impl Subscription {
    /// The next event; once the hub closed (or dropped this client), the
    /// channel disconnects after the last one.
    pub fn items(&self) -> &Receiver<Item> {
        &self.items
    }

    /// Gives `item`'s room in the buffer back, once it was written.
    pub fn done(&self, item: &Item) {
        self.queued.fetch_sub(item.body.len(), Relaxed);
    }

    /// Events dropped after the last item, known once the channel
    /// disconnected.
    pub fn missed_at_end(&self) -> u64 {
        self.tail.load(Relaxed)
    }
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    filter: TopicFilter,
    items: Sender<Item>,
    /// Envelope bytes sent and not yet given back by the client's thread.
    queued: Arc<AtomicUsize>,
    /// Dropped since the last item sent (only the drain loop touches it).
    missed: u64,
    tail: Arc<AtomicU64>,
    /// Whether `filter` passes a topic, for the topics seen lately (kept
    /// only for filters of [`VERDICTS_FROM_GLOBS`] globs or more).
    verdicts: HashMap<Box<str>, bool>,
}

impl Subscriber {
    /// Whether this client wants events of `topic`.
    fn wants(&mut self, topic: &str) -> bool {
        if self.filter.len() < VERDICTS_FROM_GLOBS {
            return self.filter.matches(topic);
        }
        if let Some(&verdict) = self.verdicts.get(topic) {
            return verdict;
        }
        let verdict = self.filter.matches(topic);
        if self.verdicts.len() >= VERDICTS {
            self.verdicts.clear();
        }
        self.verdicts.insert(topic.into(), verdict);
        verdict
    }
}

#[derive(Debug, Default)]
struct Subscribers {
    list: Vec<Subscriber>,
    next_id: u64,
    closed: bool,
}

/// The drain's side of every tap.
#[derive(Debug)]
pub struct TapHub {
    /// Subscribers in `inner`: the one load the drain pays per delivered
    /// event while nobody taps.
    active: AtomicUsize,
    inner: Mutex<Subscribers>,
    /// Envelope bytes held per client, at most.
    budget: usize,
}

impl TapHub {
    /// A hub holding at most `budget` envelope bytes per client.
    pub fn new(budget: usize) -> TapHub {
        TapHub {
            active: AtomicUsize::new(0),
            inner: Mutex::new(Subscribers::default()),
            budget,
        }
    }

    /// Publishes a delivered event to the clients whose filter matches its
    /// topic. `body` gives the event's envelope and is called only if
    /// somebody taps; with nobody, this is one relaxed load.
    #[inline]
    pub fn publish<'a>(&self, body: impl FnOnce() -> Option<&'a [u8]>) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        if let Some(body) = body() {
            self.publish_to_clients(body);
        }
    }

    #[cold]
    #[inline(never)]
    fn publish_to_clients(&self, body: &[u8]) {
        let Ok(event) = Envelope::decode(body) else {
            return;
        };
        let mut inner = self.lock();
        let mut shared: Option<Arc<[u8]>> = None;
        for sub in inner.list.iter_mut() {
            if !sub.wants(event.topic) {
                continue;
            }
            let queued = sub.queued.load(Relaxed);
            if queued > 0 && queued + body.len() > self.budget {
                sub.missed += 1;
                continue;
            }
            let body = shared.get_or_insert_with(|| Arc::from(body)).clone();
            sub.queued.fetch_add(body.len(), Relaxed);
            let item = Item {
                missed_before: std::mem::take(&mut sub.missed),
                body,
            };
            // Unbounded channel, bounded by `queued`: send only fails once
            // the client's thread is gone, and it unsubscribes then.
            let _ = sub.items.send(item);
        }
    }

    /// Registers a client; `None` once the hub is closed.
    pub fn subscribe(&self, filter: TopicFilter) -> Option<Subscription> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let (sender, receiver) = crossbeam_channel::unbounded();
        let id = inner.next_id;
        inner.next_id += 1;
        let queued = Arc::new(AtomicUsize::new(0));
        let tail = Arc::new(AtomicU64::new(0));
        inner.list.push(Subscriber {
            id,
            filter,
            items: sender,
            queued: queued.clone(),
            missed: 0,
            tail: tail.clone(),
            verdicts: HashMap::new(),
        });
        self.active.store(inner.list.len(), Relaxed);
        Some(Subscription {
            id,
            items: receiver,
            queued,
            tail,
        })
    }

    /// Removes a client (its thread is done with it).
    pub fn unsubscribe(&self, subscription: &Subscription) {
        let mut inner = self.lock();
        inner.list.retain(|s| s.id != subscription.id);
        self.active.store(inner.list.len(), Relaxed);
    }

    /// Ends every subscription: each channel disconnects after its last
    /// item, with the count dropped since then in
    /// [`Subscription::missed_at_end`]. Later subscriptions are refused.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for sub in inner.list.drain(..) {
            sub.tail.store(sub.missed, Relaxed);
        }
        self.active.store(0, Relaxed);
    }

    /// Clients subscribed now.
    pub fn clients(&self) -> usize {
        self.active.load(Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        // A panicking client thread cannot leave the list half-changed:
        // every change is one push, retain or drain.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope;
    use crate::event_id::EventId;

    fn envelope(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        envelope::encode(&mut out, EventId::generate(1), 1, topic, None, &[], payload)
            .expect("encode");
        out
    }

    fn filter(globs: &[&str]) -> TopicFilter {
        TopicFilter::parse(globs).expect("globs")
    }

    #[test]
    fn nobody_tapping_never_looks_at_the_event() {
        let hub = TapHub::new(1 << 20);
        let mut asked = 0;
        hub.publish(|| {
            asked += 1;
            None
        });
        assert_eq!(asked, 0);
        let sub = hub.subscribe(filter(&[])).expect("open");
        hub.unsubscribe(&sub);
        hub.publish(|| {
            asked += 1;
            None
        });
        assert_eq!(asked, 0, "a client that left costs nothing either");
    }

    #[test]
    fn each_client_gets_its_topics_in_order() {
        let hub = TapHub::new(1 << 20);
        let orders = hub.subscribe(filter(&["orders.*"])).expect("open");
        let all = hub.subscribe(filter(&[])).expect("open");
        let events = [
            envelope("orders.created", b"1"),
            envelope("users.created", b"2"),
            envelope("orders.paid", b"3"),
        ];
        for e in &events {
            hub.publish(|| Some(e.as_slice()));
        }
        let got: Vec<_> = orders.items().try_iter().map(|i| i.body).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(&*got[0], &events[0][..]);
        assert_eq!(&*got[1], &events[2][..]);
        assert_eq!(all.items().try_iter().count(), 3);
    }

    #[test]
    fn a_full_buffer_drops_for_that_client_and_counts_in_band() {
        let e = envelope("t", &[b'x'; 100]);
        let hub = TapHub::new(e.len() * 2);
        let slow = hub.subscribe(filter(&[])).expect("open");
        let fast = hub.subscribe(filter(&[])).expect("open");
        let mut fast_got = 0;
        let mut publish = |n: usize| {
            for _ in 0..n {
                hub.publish(|| Some(e.as_slice()));
                for item in fast.items().try_iter() {
                    assert_eq!(item.missed_before, 0);
                    fast.done(&item);
                    fast_got += 1;
                }
            }
        };
        publish(5);
        let items: Vec<_> = slow.items().try_iter().collect();
        assert_eq!(items.len(), 2, "two fit in the buffer");
        assert!(items.iter().all(|i| i.missed_before == 0));
        for item in &items {
            slow.done(item);
        }
        publish(1);
        let next = slow.items().try_recv().expect("room again");
        assert_eq!(next.missed_before, 3, "three dropped before it");
        publish(3);
        hub.close();
        let rest: Vec<_> = slow.items().iter().collect();
        assert_eq!(rest.len(), 1, "one more fit beside the one not given back");
        assert_eq!(slow.missed_at_end(), 2);
        assert_eq!(fast_got, 9, "the fast client missed none");
        assert_eq!(fast.missed_at_end(), 0);
        assert!(hub.subscribe(filter(&[])).is_none(), "closed");
    }

    #[test]
    fn a_filter_of_many_globs_gives_the_same_verdicts_kept_or_forgotten() {
        let hub = TapHub::new(1 << 30);
        let globs = ["a.*", "b.?", "*.c", "d", "e*f"];
        let sub = hub.subscribe(filter(&globs)).expect("open");
        let wanted = |topic: &str| filter(&globs).matches(topic);
        // More distinct topics than the verdicts kept, each seen twice.
        let topics: Vec<String> = (0..VERDICTS + 10)
            .flat_map(|i| [format!("a.{i}"), format!("x{i}.c"), format!("n{i}")])
            .chain(["b.1", "b.12", "d", "dd", "eXf", "e"].map(String::from))
            .collect();
        let mut expected = 0;
        for _ in 0..2 {
            for topic in &topics {
                let e = envelope(topic, b"p");
                hub.publish(|| Some(e.as_slice()));
                expected += usize::from(wanted(topic));
            }
        }
        hub.close();
        let got = sub.items().iter().count();
        assert_eq!(got, expected);
        assert!(expected > 0 && expected < topics.len() * 2);
    }

    #[test]
    fn an_event_larger_than_the_budget_still_goes_to_an_empty_buffer() {
        let e = envelope("t", &[b'x'; 1000]);
        let hub = TapHub::new(10);
        let sub = hub.subscribe(filter(&[])).expect("open");
        hub.publish(|| Some(e.as_slice()));
        hub.publish(|| Some(e.as_slice()));
        let first = sub.items().try_recv().expect("first");
        assert!(sub.items().try_recv().is_err());
        sub.done(&first);
        hub.publish(|| Some(e.as_slice()));
        assert_eq!(sub.items().try_recv().expect("third").missed_before, 1);
    }
}
