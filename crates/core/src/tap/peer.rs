//! Who is on the other end of a Unix socket (`SO_PEERCRED`), and whether
//! they may tap.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// The credentials the kernel recorded when the client connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) pid: i32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl Peer {
    /// The peer of `stream`, as the kernel saw it at `connect(2)` (in this
    /// process's user namespace: a uid from another namespace arrives
    /// mapped, or as the overflow uid).
    pub(super) fn of(stream: &UnixStream) -> io::Result<Peer> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes of the sizes given;
        // the descriptor is the stream's, open for the call.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                std::ptr::addr_of_mut!(cred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Peer {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// Root and the drain's own user may tap; nobody else, whatever the
    /// socket file's mode says.
    pub(super) fn may_tap(&self, drain_uid: u32) -> bool {
        self.uid == 0 || self.uid == drain_uid
    }
}

/// The drain's effective uid.
pub(super) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let peer = Peer::of(&a).expect("SO_PEERCRED");
        assert_eq!(peer.pid as u32, std::process::id());
        assert_eq!(peer.uid, own_uid());
        assert!(peer.may_tap(own_uid()));
        let stranger = Peer { uid: 4242, ..peer };
        assert!(!stranger.may_tap(1000));
        assert!(Peer { uid: 0, ..peer }.may_tap(1000), "root may");
    }
}
