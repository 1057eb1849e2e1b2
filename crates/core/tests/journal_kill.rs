//! The design's proof: a receiver that moves messages from a SysV queue into
//! the journal, killed with SIGKILL at random moments and restarted on the
//! same journal, loses no event. The journal is a small ring that wraps some
//! 85 times during the run, so the receiver "delivers" what it
//! acknowledges: it appends the records' bodies to a file before moving the
//! checkpoint past them, as the drain waits for Kafka. Every event sent is
//! afterwards delivered, in the journal or still in the queue, in order,
//! none missing, none corrupted; an event may be delivered again after a
//! kill between its delivery and the checkpoint (at-least-once).
//!
//! The receiver is this test binary run again with `RECEIVER_ENV` set, so
//! that only `receiver_process` does anything in it.

use std::collections::VecDeque;
use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::drain::journal::{lap_tag, Journal, HEADER_SIZE, WRAP_LEN};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use sysvmq::{Error, Queue, HEADER_LEN};
use testkit::queue::TestQueue;

const EVENTS: u64 = 300_000;
const KILLS: usize = 16;
/// About 3,500 records of ~75 bytes: the ring wraps some 85 times.
const CAPACITY: u64 = 256 * 1024;
const MAX_RECORD: u64 = 8192;
/// Every this many records the receiver delivers a random share of what is
/// pending, so the checkpoint lags by a varying amount and the ring fills
/// up now and then (then it delivers the older half).
const ACK_EVERY: u64 = 1000;
/// Bytes of one entry of the delivered file: a `u32` length and the body,
/// zero-padded. Entries never straddle a page, so a kill during a write
/// leaves whole entries.
const ENTRY: usize = 256;
/// Events sent after the last kill, with no receiver: they stay queued.
const LEFT_QUEUED: u64 = 100;
const COMMIT_DELAY: Duration = Duration::from_micros(3);
const RECEIVER_ENV: &str = "SHOPIFY_EVENTS_JOURNAL_KILL_RECEIVER";

/// In the re-executed binary: receive into the journal until killed.
#[test]
fn receiver_process() {
    let Ok(spec) = env::var(RECEIVER_ENV) else {
        return; // A normal test run: nothing to do.
    };
    let (id, path) = spec.split_once(':').expect("queue id:journal path");
    let queue = Queue::from_id(0, id.parse().expect("queue id"));
    let mut journal = Journal::open(Path::new(path), CAPACITY, MAX_RECORD).expect("open journal");
    let mut delivered = open_delivered(Path::new(path));
    let mut pending: VecDeque<_> = journal.recovered().into();
    let mut seed = u64::from(std::process::id()) | 1;
    let mut received = 0u64;
    loop {
        if journal.reserve().is_none() {
            let count = pending.len().div_ceil(2);
            deliver(&mut journal, &mut delivered, &mut pending, count);
            continue;
        }
        let Some(frame) = journal.reserve() else {
            unreachable!("a frame was just reserved");
        };
        match queue.receive_into(frame, 0) {
            Ok(len) => {
                // Widen the window between msgrcv and commit, so that some
                // kills land in it and recovery must find the raw mtype.
                let received_at = Instant::now();
                while received_at.elapsed() < COMMIT_DELAY {
                    std::hint::spin_loop();
                }
                pending.push_back(journal.commit(len));
                received += 1;
                if received % ACK_EVERY == 0 {
                    let count = (random(&mut seed) % (pending.len() as u64 + 1)) as usize;
                    deliver(&mut journal, &mut delivered, &mut pending, count);
                }
            }
            Err(Error::Interrupted) => {}
            Err(err) => {
                eprintln!("receiver: {err}");
                std::process::exit(4);
            }
        }
    }
}

fn delivered_path(journal: &Path) -> PathBuf {
    journal.with_extension("delivered")
}

/// The delivered file, cut back to whole entries.
fn open_delivered(journal: &Path) -> File {
    let path = delivered_path(journal);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .expect("open delivered file");
    let len = file.metadata().expect("stat delivered file").len();
    file.set_len(len - len % ENTRY as u64)
        .expect("truncate delivered file");
    file
}

/// Delivers the oldest `count` pending records, then acknowledges them.
fn deliver(
    journal: &mut Journal,
    delivered: &mut File,
    pending: &mut VecDeque<shopify_events_core::drain::journal::RecordRef>,
    count: usize,
) {
    let mut batch = Vec::with_capacity(count * ENTRY);
    let mut last = None;
    for record in pending.drain(..count) {
        let body = journal.body(&record);
        assert!(body.len() <= ENTRY - 4, "an event of {} bytes", body.len());
        let mut entry = [0u8; ENTRY];
        entry[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        entry[4..4 + body.len()].copy_from_slice(body);
        batch.extend_from_slice(&entry);
        last = Some(record);
    }
    if let Some(record) = last {
        delivered.write_all(&batch).expect("write delivered file");
        journal.checkpoint(record.end);
    }
}

/// Bodies in the delivered file, ignoring a torn last entry.
fn delivered_bodies(journal: &Path) -> Vec<Vec<u8>> {
    let file = fs::read(delivered_path(journal)).unwrap_or_default();
    file.chunks_exact(ENTRY)
        .map(|entry| {
            let len = u32::from_le_bytes(entry[..4].try_into().expect("length")) as usize;
            entry[4..4 + len].to_vec()
        })
        .collect()
}

fn spawn_receiver(queue: &Queue, path: &Path) -> Child {
    Command::new(env::current_exe().expect("test binary"))
        .args([
            "receiver_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RECEIVER_ENV, format!("{}:{}", queue.id(), path.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn receiver")
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL receiver");
    child.wait().expect("reap receiver");
}

/// Kills the receiver even when an assertion fails.
struct Cleanup {
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// xorshift64*: reproducible kill points without a dependency.
fn random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn envelope(i: u64) -> Vec<u8> {
    let t = shopify_events_core::clock::now_micros();
    let mut out = Vec::with_capacity(128);
    let payload = i.to_le_bytes();
    encode(
        &mut out,
        EventId::generate(t),
        t,
        "kill.test",
        None,
        &[],
        &payload,
    )
    .expect("encode");
    out
}

fn header_word(file: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(file[off..off + 8].try_into().expect("8 bytes"))
}

/// Whether the receiver died between msgrcv and commit: walking the ring
/// from the checkpoint by the documented format, the first slot that is
/// neither a record nor a wrap marker of its lap holds a raw mtype.
fn died_before_commit(path: &Path) -> bool {
    // Killed before it created the journal: nothing to look at.
    let Some(file) = fs::read(path).ok().filter(|f| f.len() as u64 > HEADER_SIZE) else {
        return false;
    };
    let capacity = header_word(&file, 16);
    let data = &file[HEADER_SIZE as usize..];
    // Killed while it created the journal: sized, header not yet written.
    if capacity == 0 || capacity as usize > data.len() {
        return false;
    }
    let mut at = header_word(&file, 32);
    for _ in 0..capacity / 8 {
        let (lap, offset) = (at / capacity, (at % capacity) as usize);
        let slot = header_word(data, offset);
        if slot >> 32 != u64::from(lap_tag(lap)) {
            return slot != 0;
        }
        at = match slot as u32 {
            WRAP_LEN => (lap + 1) * capacity,
            len => at + 8 + u64::from(len).div_ceil(8) * 8,
        };
    }
    panic!("no end to the records from the checkpoint");
}

/// The event number an envelope carries in its payload.
fn sequence(body: &[u8]) -> Result<u64, String> {
    let event = Envelope::decode(body).map_err(|e| e.to_string())?;
    let payload = event.payload.try_into().map_err(|_| "payload of 8 bytes")?;
    Ok(u64::from_le_bytes(payload))
}

#[test]
fn receiver_killed_16_times_during_300k_sends_loses_no_event() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kill.journal");
    let queue = TestQueue::private();
    let mut cleanup = Cleanup { child: None };
    cleanup.child = Some(spawn_receiver(&queue, &path));

    let mut seed = u64::from(std::process::id()) << 20 | started.elapsed().as_nanos() as u64 | 1;
    eprintln!("kill test seed {seed:#x}");
    let mut kill_at: Vec<u64> = (0..KILLS)
        .map(|_| random(&mut seed) % (EVENTS - LEFT_QUEUED))
        .collect();
    kill_at.sort_unstable();

    let mut sent = Vec::with_capacity(EVENTS as usize);
    let mut frame = Vec::with_capacity(256);
    let mut next_kill = kill_at.iter().peekable();
    let (mut full_waits, mut kills, mut before_commit) = (0u64, 0usize, 0usize);
    for i in 0..EVENTS {
        if i == EVENTS - LEFT_QUEUED {
            // Once the receiver caught up, so that the rest fits the queue.
            let deadline = Instant::now() + Duration::from_secs(30);
            while queue.stat().expect("stat").messages > 0 {
                assert!(Instant::now() < deadline, "receiver stopped receiving");
                sleep(Duration::from_millis(1));
            }
            if let Some(mut child) = cleanup.child.take() {
                kill(&mut child);
            }
        }
        let body = envelope(i);
        frame.clear();
        frame.extend_from_slice(&1i64.to_ne_bytes());
        frame.extend_from_slice(&body);
        sent.push(body);
        loop {
            match queue.try_send_frame(&frame) {
                Ok(()) => break,
                Err(Error::Full { .. }) => {
                    full_waits += 1;
                    assert!(cleanup.child.is_some(), "queue full with no receiver");
                    if let Some(status) = cleanup.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                        panic!("receiver exited on its own: {status}");
                    }
                    sleep(Duration::from_micros(20));
                }
                Err(err) => panic!("send {i}: {err}"),
            }
        }
        while next_kill.next_if(|&&at| at == i).is_some() {
            // Vary the moment further: the receiver may be in msgrcv, between
            // msgrcv and commit, or starting up.
            sleep(Duration::from_micros(random(&mut seed) % 300));
            if let Some(child) = cleanup.child.as_mut() {
                kill(child);
            }
            kills += 1;
            before_commit += usize::from(died_before_commit(&path));
            cleanup.child = Some(spawn_receiver(&queue, &path));
        }
    }
    let send_done = started.elapsed();

    let mut left_in_queue = Vec::new();
    let mut buf = vec![0u8; HEADER_LEN + MAX_RECORD as usize];
    while let Some(len) = queue.try_receive_into(&mut buf, 0).expect("receive rest") {
        left_in_queue.push(buf[HEADER_LEN..HEADER_LEN + len].to_vec());
    }

    let mut found = delivered_bodies(&path);
    let delivered = found.len();
    let journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("reopen journal");
    let report = journal.recovery_report().clone();
    assert_eq!(report.stopped_at_garbage, None, "{report:?}");
    found.extend(journal.recovered().iter().map(|r| journal.body(r).to_vec()));
    let laps = journal.write_offset() / journal.capacity();
    let left = left_in_queue.len();
    found.extend(left_in_queue);

    assert_eq!(kills, KILLS);
    // Delivered, then pending in the journal, then queued: every event in
    // the order sent, each first seen right after its predecessor; the only
    // others are events seen before again (delivered, but killed before the
    // checkpoint moved past them).
    let (mut next, mut again) = (0u64, 0usize);
    for (at, got) in found.iter().enumerate() {
        let i = sequence(got).unwrap_or_else(|err| panic!("entry {at} is corrupted: {err}"));
        assert!(
            i <= next,
            "event {next} is missing (entry {at} is event {i})"
        );
        assert!(
            sent.get(i as usize) == Some(got),
            "entry {at} (event {i}) differs from what was sent"
        );
        if i == next {
            next += 1;
        } else {
            again += 1;
        }
    }
    assert_eq!(next, EVENTS, "events missing at the end");
    assert!(laps >= 50, "the ring wrapped only {laps} times");
    let elapsed = started.elapsed();
    eprintln!(
        "{EVENTS} events, {kills} kills (+1 before the last {LEFT_QUEUED} sends, {before_commit} between msgrcv and commit), \
         {laps} laps of the ring: {delivered} delivered ({again} of them again after a kill), {} pending in the journal, \
         {left} left in the queue; sent in {send_done:.2?} ({:.0}/s), {full_waits} waits on a full queue, total {elapsed:.2?}",
        report.records,
        EVENTS as f64 / send_done.as_secs_f64(),
    );
}
