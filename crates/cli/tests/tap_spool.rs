//! `shopify-events tap` sees the events the drain delivers from the spool
//! as it sees those from the queue: the drain publishes to its taps when
//! it settles a delivered event, from the journal or from a spool segment
//! alike (`drain/run/settle.rs`). A real drain (stdout sink) takes events
//! from a SysV queue and from a spool file the test writes with the core's
//! `SpoolWriter`, as the Ruby process's overflow does. Needs root for the
//! queue's capacity.

mod drain_spool_support;

use std::collections::HashSet;
use std::time::Duration;

use drain_spool_support::{spec, spool_emptied, Dirs};
use serde_json::Value;
use shopify_events_core::spool::{SpoolOptions, SpoolWriter};
use testkit::drain::DrainProcess;
use testkit::events::event_frame;
use testkit::queue::TestQueue;
use testkit::sysctl::MIN_MSGMNB;
use testkit::tap::TapProcess;
use testkit::wait::{serial, wait_until};

const READY: Duration = Duration::from_secs(20);

fn field(line: &str, name: &str) -> String {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    value[name].as_str().unwrap_or_default().to_owned()
}

fn spool_read(drain: &DrainProcess) -> f64 {
    drain
        .scrape()
        .and_then(|m| m.get("shopify_events_spool_read_total").copied())
        .unwrap_or(0.0)
}

#[test]
fn a_tap_sees_the_events_delivered_from_the_spool_as_those_from_the_queue() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-spool-");
    let spec = spec(&queue, &dirs)
        .args(["--sink", "stdout"])
        .with_metrics();
    let mut drain = spec.spawn(0);
    drain.wait_serving(READY);
    let socket = spec.state().tap_socket();
    assert!(
        wait_until(READY, || socket.exists()),
        "no tap socket\n{}",
        drain.log_text()
    );

    // Half of the events to the queue, half to a spool file, interleaved.
    let n = 2000;
    let spooled_n = n / 2;
    let mut spooled = TapProcess::spawn(
        &spec,
        dirs.root(),
        "spooled",
        &["--topic", "spooled.*", "--limit", &spooled_n.to_string()],
    );
    let mut all = TapProcess::spawn(&spec, dirs.root(), "all", &["--limit", &n.to_string()]);
    spooled.wait_ready(READY);
    all.wait_ready(READY);
    let writer = SpoolWriter::new(SpoolOptions::new(dirs.spool(), queue.key()));
    let mut frame = Vec::new();
    let mut spooled_ids = HashSet::new();
    for i in 0..n {
        let payload = format!("{{\"n\":{i}}}");
        if i % 2 == 0 {
            let id = event_frame(&mut frame, "spooled.orders", None, payload.as_bytes());
            writer
                .append(&frame[sysvmq::HEADER_LEN..])
                .expect("append to the spool");
            spooled_ids.insert(String::from_utf8(id.to_vec()).expect("id"));
        } else {
            event_frame(&mut frame, "queued.orders", None, payload.as_bytes());
            queue.send_frame(&frame).expect("send");
        }
    }
    writer.seal();

    for (name, tap) in [("spooled", &mut spooled), ("all", &mut all)] {
        let status = tap.wait_timeout(Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "the tap {name}: {status:?}\n{}\n--- drain ---\n{}",
            tap.log_text(),
            drain.log_text()
        );
    }
    assert_eq!(
        spool_read(&drain),
        spooled_n as f64,
        "the spooled events came from the spool"
    );
    let deleted = wait_until(Duration::from_secs(10), || spool_emptied(&dirs.spool()));
    assert!(deleted, "the sealed segment is deleted once acknowledged");
    let status = drain.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", drain.log_text());

    // The drain's stdout is the delivery order; both taps show its lines
    // byte for byte, the spooled tap those of the spooled topic only.
    let delivered = drain.stdout_text();
    let delivered: Vec<&str> = delivered.lines().collect();
    assert_eq!(delivered.len(), n);
    let shown_all = all.stdout_text();
    assert_eq!(
        shown_all.lines().collect::<Vec<_>>(),
        delivered,
        "the tap of every topic"
    );
    let from_spool: Vec<&str> = delivered
        .iter()
        .copied()
        .filter(|l| field(l, "topic") == "spooled.orders")
        .collect();
    let shown = spooled.stdout_text();
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        from_spool,
        "the tap of spooled.*"
    );
    let shown_ids: HashSet<String> = shown.lines().map(|l| field(l, "id")).collect();
    assert_eq!(shown_ids, spooled_ids, "every spooled event, once");
}
