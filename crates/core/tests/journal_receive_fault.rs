//! Issue 9, item 8: "`msgrcv` dequeues before it copies. A copy that fails
//! (EFAULT on a page that cannot be faulted in) would lose that event. Find
//! out whether this can happen with the prefaulted mapping."
//!
//! What these tests establish:
//!
//! - Confirmed: the kernel takes the message off the queue before it copies
//!   it out, and a copy that faults loses it (`EFAULT`, queue empty).
//! - With the journal's mapping, a page the kernel evicted after the
//!   prefault (clean pages of a file mapping may go at any time) is faulted
//!   back in inside `msgrcv`'s copy and the message arrives whole. The
//!   blocks are allocated (`posix_fallocate`), so that fault cannot fail
//!   for space. What remains is a fault the kernel cannot serve: an I/O
//!   error reading the page back, or the file truncated under the drain
//!   (an operator's error, which also kills the drain with SIGBUS). Either
//!   loses the one message being received. What would prevent it: keeping
//!   the journal's pages resident (`mlock`, with `LimitMEMLOCK=` raised for
//!   the unit), so no fault happens inside the copy; it pins the journal's
//!   size in memory, so it is left to the operator (docs/OPERATIONS.md).

use std::time::Duration;

use shopify_events_core::drain::journal::Journal;
use sysvmq::{Queue, HEADER_LEN};
use testkit::queue::TestQueue;

fn page_of(ptr: *mut u8) -> (*mut libc::c_void, usize) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let start = (ptr as usize) & !(page - 1);
    (start as *mut libc::c_void, page)
}

fn send(queue: &Queue, body: &[u8]) {
    let mut frame = 1i64.to_ne_bytes().to_vec();
    frame.extend_from_slice(body);
    queue.try_send_frame(&frame).unwrap();
}

#[test]
fn a_receive_whose_copy_faults_loses_the_message() {
    let queue = TestQueue::private();
    send(&queue, b"the only copy");
    // A read-only page: the kernel's copy into it faults.
    // SAFETY: a fresh anonymous mapping, unmapped below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: msgrcv writes at most 4096 - HEADER_LEN body bytes at `page`.
    let n = unsafe { libc::msgrcv(queue.id(), page, 4096 - HEADER_LEN, 0, libc::IPC_NOWAIT) };
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(page, 4096) };
    assert_eq!(n, -1);
    assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
    assert_eq!(queue.stat().unwrap().messages, 0, "the message is gone");
}

#[test]
fn a_journal_page_evicted_after_the_prefault_is_faulted_back_inside_the_receive() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::private();
    let mut journal = Journal::open(&dir.path().join("journal.bin"), 1 << 20, 8192).unwrap();
    for round in 0..50u32 {
        let body = format!("event {round} {}", "x".repeat(round as usize * 100));
        send(&queue, body.as_bytes());
        let frame = journal.reserve().expect("room in the journal");
        let (start, len) = page_of(frame.as_mut_ptr());
        // Written back and dropped from memory: the next touch faults.
        // SAFETY: the page lies within the journal's shared file mapping.
        unsafe {
            libc::msync(start, len, libc::MS_SYNC);
            libc::madvise(start, len, libc::MADV_PAGEOUT);
        }
        let got = queue
            .try_receive_into(frame, 0)
            .expect("the receive succeeds")
            .expect("a message");
        let record = journal.commit(got);
        assert_eq!(journal.body(&record), body.as_bytes());
        assert_eq!(queue.stat().unwrap().messages, 0);
        std::thread::sleep(Duration::from_millis(1));
    }
}
