use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};

use super::*;

/// Runs `child` in a forked child (a new process generation) and returns
/// the numbers it reports. The child must not allocate: it only touches
/// atomics and the pipe before `_exit`.
fn in_forked_child<const N: usize>(child: impl FnOnce() -> [u64; N]) -> [u64; N] {
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` is a valid out array of two fds.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: the child runs `child` (atomics only) and write, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let values = child();
        let mut bytes = [0u8; 64];
        for (i, v) in values.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        // SAFETY: writes our own buffer, then exits without running the
        // harness's destructors.
        unsafe {
            libc::write(pipe[1], bytes.as_ptr().cast(), N * 8);
            libc::_exit(0);
        }
    }
    let mut bytes = [0u8; 64];
    // SAFETY: reads into our own buffer; waits for the child we forked.
    unsafe {
        libc::close(pipe[1]);
        assert_eq!(
            libc::read(pipe[0], bytes.as_mut_ptr().cast(), N * 8),
            (N * 8) as isize,
            "the child reported nothing (it hung or died)"
        );
        libc::close(pipe[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
    std::array::from_fn(|i| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap()))
}

fn take(seq: &Sequencer) -> Stamp {
    seq.sequenced(Ok::<_, ()>).unwrap()
}

#[test]
fn numbers_count_from_zero_and_a_failed_send_gives_its_number_back() {
    let s = Sequencer::new();
    assert_eq!(s.accepted(), 0);
    assert_eq!(take(&s).seq, 0);
    assert_eq!(take(&s).seq, 1);
    let refused: Result<(), u64> = s.sequenced(|stamp| Err(stamp.seq));
    assert_eq!(refused, Err(2));
    let stamp = take(&s);
    assert_eq!(stamp.seq, 2, "the refused event's number is the next one's");
    assert_ne!(stamp.producer, 0);
    assert_eq!(stamp.producer, s.producer());
    assert_eq!(s.accepted(), 3);
}

#[test]
fn a_panicking_send_gives_its_number_back_and_releases_the_sequencer() {
    let s = Sequencer::new();
    take(&s);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.sequenced(|_| -> Result<(), ()> { panic!("send panicked") })
    }));
    assert!(panicked.is_err());
    assert_eq!(take(&s).seq, 1);
}

#[test]
fn threads_get_every_number_once_in_the_order_they_sent() {
    const THREADS: usize = 4;
    const EACH: u64 = 20_000;
    let s = Arc::new(Sequencer::new());
    // Pushed under the sequencer: the log's order is the sending order.
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, log) = (Arc::clone(&s), Arc::clone(&log));
            std::thread::spawn(move || {
                for i in 0..EACH {
                    // Every third send of each thread fails: its number is reused.
                    let _ = s.sequenced(|stamp| {
                        if i % 3 == 0 {
                            return Err(());
                        }
                        log.lock().unwrap().push((stamp.seq, t));
                        Ok(())
                    });
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let log = log.lock().unwrap();
    let accepted = THREADS as u64 * (EACH - EACH.div_ceil(3));
    assert_eq!(log.len() as u64, accepted);
    for (expected, (seq, _)) in log.iter().enumerate() {
        assert_eq!(
            *seq, expected as u64,
            "numbers in sending order, no hole, no repeat"
        );
    }
    assert_eq!(s.accepted(), accepted);
}

#[test]
fn a_forked_child_starts_at_zero_with_its_own_producer_even_if_the_parent_held_the_lock() {
    let s = Arc::new(Sequencer::new());
    take(&s);
    take(&s);
    let parent_producer = s.producer();
    // A thread of the parent holds the sequencer while the fork happens.
    let (holding_tx, holding_rx) = mpsc::channel();
    let release = Arc::new(Barrier::new(2));
    let holder = {
        let (s, release) = (Arc::clone(&s), Arc::clone(&release));
        std::thread::spawn(move || {
            s.sequenced(|stamp| {
                holding_tx.send(()).unwrap();
                release.wait();
                Ok::<_, ()>(stamp.seq)
            })
        })
    };
    holding_rx.recv().unwrap();
    let child = in_forked_child(|| {
        let first = take(&s);
        let second = take(&s);
        [
            first.producer,
            first.seq,
            second.seq,
            process::producer_id(),
            s.accepted(),
        ]
    });
    release.wait();
    assert_eq!(holder.join().unwrap(), Ok(2));
    let [producer, first, second, child_process_id, accepted] = child;
    assert_eq!(
        (first, second, accepted),
        (0, 1, 2),
        "the child counts from 0"
    );
    assert_ne!(producer, parent_producer, "the child is a new producer");
    assert_eq!(
        producer, child_process_id,
        "the child's first sequencer stamps the child's process producer id"
    );
    assert_eq!(take(&s).seq, 3, "the parent goes on where it was");
    assert_eq!(s.producer(), parent_producer);
}

#[test]
fn each_sequencer_of_a_process_is_a_producer_of_its_own() {
    let [first, second, process_id, again] = in_forked_child(|| {
        let (a, b) = (Sequencer::new(), Sequencer::new());
        [
            a.producer(),
            b.producer(),
            process::producer_id(),
            take(&a).producer,
        ]
    });
    assert_eq!(
        first, process_id,
        "the first one used stamps the process's id"
    );
    assert_ne!(second, first);
    assert_ne!(second, 0);
    assert_eq!(again, first);
}
