//! The design's proof: a receiver that moves messages from a SysV queue into
//! the journal, killed with SIGKILL at random moments and restarted on the
//! same journal, loses no event. Every event sent is afterwards either in the
//! journal or still in the queue, in order, none missing, none corrupted.
//!
//! The receiver is this test binary run again with `RECEIVER_ENV` set, so
//! that only `receiver_process` does anything in it.

use std::env;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::drain::journal::{Journal, HEADER_SIZE, RECORD_MAGIC};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use sysvmq::{Error, Queue, HEADER_LEN};

const EVENTS: u64 = 300_000;
const KILLS: usize = 16;
/// Holds all events: ~100 bytes of envelope plus slot each.
const CAPACITY: u64 = 64 * 1024 * 1024;
const MAX_RECORD: u64 = 8192;
/// The receiver acknowledges (moves the checkpoint) only this rarely.
const ACK_EVERY: u64 = 25_000;
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
    let mut received = 0u64;
    loop {
        let Some(frame) = journal.reserve() else {
            eprintln!("receiver: journal full");
            std::process::exit(3);
        };
        match queue.receive_into(frame, 0) {
            Ok(len) => {
                // Widen the window between msgrcv and commit, so that some
                // kills land in it and recovery must find the raw mtype.
                let received_at = Instant::now();
                while received_at.elapsed() < COMMIT_DELAY {
                    std::hint::spin_loop();
                }
                let record = journal.commit(len);
                received += 1;
                if received % ACK_EVERY == 0 {
                    journal.checkpoint(record.end);
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

/// Kills the receiver and removes the queue even when an assertion fails.
struct Cleanup {
    queue: Queue,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.queue.remove();
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

/// Bodies of the records before the checkpoint, which `Journal::open` no
/// longer reports, read by the documented format.
fn acknowledged_bodies(file: &[u8]) -> Vec<Vec<u8>> {
    let word = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().expect("8 bytes"));
    let checkpoint = word(32) as usize;
    let data = &file[HEADER_SIZE as usize..];
    let (mut at, mut bodies) = (0, Vec::new());
    while at < checkpoint {
        let slot = u64::from_le_bytes(data[at..at + 8].try_into().expect("slot"));
        assert_eq!(
            slot >> 32,
            u64::from(RECORD_MAGIC),
            "uncommitted slot at {at}"
        );
        let len = (slot & 0xFFFF_FFFF) as usize;
        bodies.push(data[at + 8..at + 8 + len].to_vec());
        at += 8 + len.div_ceil(8) * 8;
    }
    assert_eq!(at, checkpoint, "checkpoint not at a record boundary");
    bodies
}

/// Whether the receiver died between msgrcv and commit: the first slot past
/// the committed records holds a raw mtype.
fn died_before_commit(path: &Path) -> bool {
    // Killed before it created the journal: nothing to look at.
    let Some(file) = fs::read(path).ok().filter(|f| f.len() as u64 > HEADER_SIZE) else {
        return false;
    };
    let data = &file[HEADER_SIZE as usize..];
    let mut at = u64::from_le_bytes(file[32..40].try_into().expect("checkpoint")) as usize;
    while let Some(slot) = data.get(at..at + 8) {
        let slot = u64::from_le_bytes(slot.try_into().expect("slot"));
        if slot >> 32 != u64::from(RECORD_MAGIC) {
            return slot != 0;
        }
        at += 8 + ((slot & 0xFFFF_FFFF) as usize).div_ceil(8) * 8;
    }
    false
}

#[test]
fn receiver_killed_16_times_during_300k_sends_loses_no_event() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kill.journal");
    let queue = Queue::create_private(0o600).expect("create queue");
    let mut cleanup = Cleanup { queue, child: None };
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

    let mut found = acknowledged_bodies(&fs::read(&path).expect("read journal"));
    let acknowledged = found.len();
    let journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("reopen journal");
    let report = journal.recovery_report().clone();
    assert_eq!(report.stopped_at_garbage, None, "{report:?}");
    found.extend(journal.recovered().iter().map(|r| journal.body(r).to_vec()));
    let in_journal = found.len();
    found.extend(left_in_queue);

    assert_eq!(kills, KILLS);
    for (i, (got, want)) in found.iter().zip(&sent).enumerate() {
        Envelope::decode(got).unwrap_or_else(|err| panic!("event {i} is corrupted: {err}"));
        assert!(
            got == want,
            "event {i} is not the one sent at that position"
        );
    }
    assert_eq!(found.len(), sent.len(), "events missing or duplicated");
    let elapsed = started.elapsed();
    eprintln!(
        "{EVENTS} events, {kills} kills (+1 before the last {LEFT_QUEUED} sends, {before_commit} between msgrcv and commit): {in_journal} in the journal \
         ({acknowledged} before the checkpoint, {} recovered), {} left in the queue; \
         sent in {send_done:.2?} ({:.0}/s), {full_waits} waits on a full queue, total {elapsed:.2?}",
        report.records,
        found.len() - in_journal,
        EVENTS as f64 / send_done.as_secs_f64(),
    );
}
