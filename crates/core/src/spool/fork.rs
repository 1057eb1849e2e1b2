//! Keeps writers' lock descriptors out of forked children, and numbers the
//! writers of each process generation.
//!
//! A writer's liveness lock is an OFD lock, owned by the open file
//! description, which a forked child shares: were the child to keep its
//! copy of the descriptor, the segment would look alive as long as the child
//! lives, after its writer died. So each lock descriptor is registered in a
//! fixed table, and an `atfork` child handler closes every registered
//! descriptor (`close` is async-signal-safe; the table is atomics only).
//!
//! A descriptor opened but not yet registered when another thread forks
//! would escape. The `prepare` handler therefore announces the fork
//! (`FORKING`) and waits until no thread is between `open` and registering
//! (`OPENING`); [`open_registered`] announces itself and backs off while a
//! fork is announced. With sequentially consistent operations on both
//! counters, either the opener sees the fork and waits, or the forker sees
//! the opener and waits; the wait lasts one `open` call.
//!
//! Descriptors are also `O_CLOEXEC`, so an `exec` (or `posix_spawn`, which
//! runs no atfork handlers before its exec) drops them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Once;

use crate::process;

/// Lock descriptors a process keeps out of its children.
const SLOTS: usize = 64;
const FREE: i32 = -1;

static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(FREE) }; SLOTS];
/// Threads inside `fork` between the prepare and the parent handler.
static FORKING: AtomicU32 = AtomicU32::new(0);
/// Threads between `open` and registering the descriptor.
static OPENING: AtomicU32 = AtomicU32::new(0);
static HANDLERS: Once = Once::new();
/// Writers created in this process generation (reset in a child).
static INSTANCES: AtomicU64 = AtomicU64::new(0);

extern "C" fn prepare() {
    FORKING.fetch_add(1, SeqCst);
    while OPENING.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn parent() {
    FORKING.fetch_sub(1, SeqCst);
}

extern "C" fn child() {
    // The child has only the forking thread: nobody is opening here.
    FORKING.store(0, SeqCst);
    OPENING.store(0, SeqCst);
    INSTANCES.store(0, SeqCst);
    for slot in &FDS {
        let fd = slot.swap(FREE, SeqCst);
        if fd >= 0 {
            // SAFETY: `fd` was registered by a writer of the parent, whose
            // state the child never uses nor drops (it is leaked there), so
            // nothing else closes this number. close is async-signal-safe.
            unsafe { libc::close(fd) };
        }
    }
}

/// A registered descriptor, closed (and unregistered) on drop, but only in
/// the process generation that opened it: in a forked child the number was
/// closed by the child handler and may name another file by now.
#[derive(Debug)]
pub(super) struct Registered {
    fd: RawFd,
    slot: Option<usize>,
    generation: u64,
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for Registered {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is open for as long as `self` lives (in its own
        // generation; a child never uses its parent's `Registered`).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if process::generation() != self.generation {
            return;
        }
        if let Some(slot) = self.slot.take() {
            FDS[slot].store(FREE, SeqCst);
        }
        // SAFETY: our own descriptor, unregistered above, closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn register_handlers() {
    HANDLERS.call_once(|| {
        // SAFETY: the handlers are 'static `extern "C" fn`s; the child one
        // only touches atomics and calls close. If registration fails
        // (ENOMEM), children keep lock descriptors: reclaim waits for them,
        // nothing is lost.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// A number for a new writer, counting from 0 in every process generation:
/// the first writer of a process (or of a forked child) gets 0.
pub(super) fn next_instance() -> u64 {
    register_handlers();
    INSTANCES.fetch_add(1, SeqCst)
}

/// Opens `path` with `flags | O_CLOEXEC` and `mode`, and registers the
/// descriptor so that forked children close their copy.
pub(super) fn open_registered(path: &Path, flags: i32, mode: u32) -> io::Result<Registered> {
    register_handlers();
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        OPENING.fetch_add(1, SeqCst);
        if FORKING.load(SeqCst) == 0 {
            break;
        }
        OPENING.fetch_sub(1, SeqCst);
        std::thread::yield_now();
    }
    // SAFETY: a valid NUL-terminated path; open has no memory effects.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        OPENING.fetch_sub(1, SeqCst);
        return Err(err);
    }
    let slot = FDS
        .iter()
        .position(|s| s.compare_exchange(FREE, fd, SeqCst, SeqCst).is_ok());
    OPENING.fetch_sub(1, SeqCst);
    Ok(Registered {
        fd,
        slot,
        generation: process::generation(),
    })
}
