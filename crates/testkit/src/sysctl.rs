//! The SysV limits tests need. They are global to the IPC namespace and
//! shared with every other test run on the host, so they are only ever
//! raised, never lowered.

/// `kernel.msgmnb` the drain tests make sure of: a queue of this capacity
/// holds about 250,000 small events.
pub const MIN_MSGMNB: u64 = 64 << 20;

const MSGMNB: &str = "/proc/sys/kernel/msgmnb";

/// Raises `kernel.msgmnb` to `min` if it is lower (needs root) and returns
/// the value now in force; says why on stderr if it cannot.
pub fn raise_msgmnb(min: u64) -> u64 {
    let current = read_msgmnb();
    if current >= min {
        return current;
    }
    if let Err(e) = std::fs::write(MSGMNB, min.to_string()) {
        eprintln!("cannot raise {MSGMNB} from {current} to {min}: {e}");
        return current;
    }
    min
}

/// Like [`raise_msgmnb`], but panics if `kernel.msgmnb` stays below `min`.
/// Run it before creating a queue: a queue's capacity is fixed from msgmnb
/// at creation.
pub fn ensure_msgmnb(min: u64) {
    let now = raise_msgmnb(min);
    assert!(
        now >= min,
        "kernel.msgmnb is {now}, the test needs {min}: run it as root"
    );
}

fn read_msgmnb() -> u64 {
    std::fs::read_to_string(MSGMNB)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
