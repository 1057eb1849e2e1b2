//! Reading topics back: every record of a topic from the beginning of each
//! partition (explicit `assign`, no consumer group: faster and
//! deterministic), as [`Consumed`] copies or as event ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use shopify_events_core::kafka::EVENT_ID_HEADER;

/// `prefix-<pid>-<nanos>-<n>`: unique within and across test processes.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One record read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key; `None` for none.
    pub key: Option<Vec<u8>>,
    /// An absent (null) payload reads as empty.
    pub payload: Vec<u8>,
    /// In order; a null header value reads as empty.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Its timestamp, if it has one.
    pub timestamp_ms: Option<i64>,
}

impl Consumed {
    /// Copies what the tests compare out of a consumed message.
    pub fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Consumed {
        Consumed {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: match m.timestamp() {
                Timestamp::NotAvailable => None,
                t => t.to_millis(),
            },
        }
    }
}

impl Consumed {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A consumer of `bootstrap` in a group of its own, reading from the
/// earliest offset and committing nothing.
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("support"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create consumer")
}

/// The topic's partition count as librdkafka sees it; `None` if unknown.
pub fn partition_count(consumer: &BaseConsumer, topic: &str) -> Option<i32> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len() as i32)
}

/// Reads `topic` from the beginning of every partition (explicit `assign`,
/// no consumer group) until `expected` records arrived or `timeout` passed,
/// and returns what arrived, ordered by (partition, offset).
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let mut out = consume_until(bootstrap, topic, timeout, Duration::ZERO, |records| {
        records.len() >= expected
    });
    out.sort_by_key(|c| (c.partition, c.offset));
    out
}

/// Reads `topic` from the beginning of every partition until `done` says
/// the records so far are complete, then keeps reading until nothing new
/// arrived for `quiet` (late duplicates), or until `timeout`. Returns the
/// records in arrival order.
///
/// Do not count a Tansu topic's records with `fetch_watermarks`: Tansu
/// 0.6.0's ListOffsets answers with high watermarks that lag far behind
/// (3 of 20,000 acknowledged records right after a flush), while a
/// consumer reads all of them.
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    quiet: Duration,
    mut done: impl FnMut(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer(bootstrap);
    let partitions = loop {
        if let Some(n) = partition_count(&consumer, topic) {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} has no metadata on {bootstrap}"
        );
        sleep(Duration::from_millis(50));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut complete = done(&out);
    let mut last_new = Instant::now();
    while !(complete && last_new.elapsed() >= quiet) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(Consumed::from_message(&m));
                last_new = Instant::now();
            }
            Some(Err(e)) => *errors.entry(e.to_string()).or_default() += 1,
            None => {}
        }
        if !complete {
            complete = done(&out);
        }
    }
    if !errors.is_empty() {
        eprintln!("consuming {topic}: consumer errors: {errors:?}");
    }
    out
}

/// (low, high) watermarks of one partition, None if the broker did not say.
/// Against Tansu 0.6.0 the high watermark is the base offset of the last
/// batch, not the next offset: it under-counts (librdkafka's mock cluster is
/// exact).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Option<(i64, i64)> {
    consumer(bootstrap)
        .fetch_watermarks(topic, partition, Duration::from_secs(5))
        .ok()
}

/// Reads every record of `topic` (partitions `0..partitions`, explicit
/// assign from the beginning, no group) up to the high watermarks seen at
/// the start, and returns each record's `event_id` header (an empty vec for a
/// record without one). Panics if it cannot finish within `timeout`.
/// Exact against librdkafka's mock cluster; against Tansu 0.6.0 it stops
/// short (see [`watermarks`]).
pub fn read_event_ids(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer(bootstrap);
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
        if high > 0 {
            remaining.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut ids = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} back: still missing offsets {remaining:?} after {timeout:?} \
             (errors {errors:?})"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let id = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == EVENT_ID_HEADER)
                            .and_then(|h| h.value.map(<[u8]>::to_vec))
                    })
                    .unwrap_or_default();
                ids.push(id);
                if let Some(&high) = remaining.get(&m.partition()) {
                    if m.offset() + 1 >= high {
                        remaining.remove(&m.partition());
                    }
                }
            }
            Some(Err(e)) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    if !errors.is_empty() {
        eprintln!("read_event_ids({topic}): consumer errors: {errors:?}");
    }
    ids
}
