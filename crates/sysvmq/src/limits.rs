//! Kernel limits on message queues, read from `/proc/sys/kernel`.
//!
//! The values belong to the reading process's IPC namespace, so a container
//! may see other limits than its host. They can change at any time (sysctl),
//! so nothing here caches them; callers that read them on a hot path should.

use std::io;
use std::path::Path;

/// Used when `/proc/sys/kernel/msgmax` cannot be read: the kernel default.
const DEFAULT_MSGMAX: u64 = 8192;

/// The message queue sysctls of the current IPC namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `kernel.msgmax`: largest message body, in bytes.
    pub msgmax: u64,
    /// `kernel.msgmnb`: byte capacity given to new queues; raising a queue
    /// above it needs CAP_SYS_RESOURCE.
    pub msgmnb: u64,
    /// `kernel.msgmni`: most queues the namespace may hold.
    pub msgmni: u64,
}

impl Limits {
    /// Reads the three limits from `/proc/sys/kernel`.
    pub fn read() -> io::Result<Limits> {
        Ok(Limits {
            msgmax: read_sysctl("msgmax")?,
            msgmnb: read_sysctl("msgmnb")?,
            msgmni: read_sysctl("msgmni")?,
        })
    }
}

/// `kernel.msgmax`, read now; 8192 (the kernel default) if it cannot be read.
///
/// Not cached: each call reads `/proc`.
pub fn message_size_limit() -> u64 {
    read_sysctl("msgmax").unwrap_or(DEFAULT_MSGMAX)
}

fn read_sysctl(name: &str) -> io::Result<u64> {
    let path = Path::new("/proc/sys/kernel").join(name);
    let text = std::fs::read_to_string(&path)?;
    parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {:?}, not a number", path.display(), text.trim()),
        )
    })
}

fn parse(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_trailing_newline_and_rejects_garbage() {
        assert_eq!(parse("8192\n"), Some(8192));
        assert_eq!(parse("x"), None);
        assert_eq!(parse("-1"), None);
    }

    #[test]
    fn read_matches_message_size_limit() {
        let limits = Limits::read().expect("/proc/sys/kernel/msg* readable");
        assert!(limits.msgmax > 0 && limits.msgmnb > 0 && limits.msgmni > 0);
        assert_eq!(limits.msgmax, message_size_limit());
    }
}
