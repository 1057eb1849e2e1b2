//! Proxy addresses (`tcp://host:port`, `unix:///path`), and the listeners
//! and streams behind them, so the server and the client treat TCP and Unix
//! sockets alike.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::defaults;
use crate::loopback::is_loopback;
use crate::spool::file::rename_noreplace;

/// Where a proxy listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAddress {
    /// `tcp://host:port` (or bare `host:port`).
    Tcp(String),
    /// `unix:///absolute/path` (or `unix:/absolute/path`).
    Unix(PathBuf),
}

/// Why an address cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not one of the accepted forms.
    #[error("proxy address {addr:?} is not valid: use tcp://HOST:PORT (e.g. tcp://127.0.0.1:9395) or unix:///ABSOLUTE/PATH (e.g. unix:///run/shopify-events/proxy.sock)")]
    Invalid {
        /// The address as given.
        addr: String,
    },
    /// The host name does not resolve.
    #[error("proxy address {addr:?} does not resolve: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A public address without `--allow-public`.
    #[error("refusing to listen on {addr} ({ip} is not a loopback address): the proxy accepts events from anyone who can connect; listen on 127.0.0.1, a unix:// socket, or pass --allow-public (and set --token) if containers reach the host over a network")]
    NotLoopback {
        /// The address as given.
        addr: String,
        /// The public address it resolved to.
        ip: IpAddr,
    },
    /// `bind(2)` failed.
    #[error("cannot listen on {addr}: {source}; is another proxy running there?")]
    Bind {
        /// The address as given.
        addr: String,
        /// The error.
        source: io::Error,
    },
}

impl std::str::FromStr for ProxyAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<ProxyAddress, AddressError> {
        let invalid = || AddressError::Invalid { addr: text.into() };
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') || path.len() < 2 {
                return Err(invalid());
            }
            return Ok(ProxyAddress::Unix(PathBuf::from(path)));
        }
        let host_port = text.strip_prefix("tcp://").unwrap_or(text);
        match host_port.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok() =>
            {
                Ok(ProxyAddress::Tcp(host_port.to_string()))
            }
            _ => Err(invalid()),
        }
    }
}

impl std::fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyAddress::Tcp(addr) => write!(f, "tcp://{addr}"),
            ProxyAddress::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl ProxyAddress {
    /// Binds a listener with [`bind_with`](ProxyAddress::bind_with), a
    /// Unix socket getting [`defaults::PROXY_SOCKET_MODE`].
    pub fn bind(&self, allow_public: bool) -> Result<Listener, AddressError> {
        self.bind_with(allow_public, defaults::PROXY_SOCKET_MODE)
    }

    /// Binds a listener. TCP addresses must all be loopback unless
    /// `allow_public`. A Unix socket gets `socket_mode` (connecting needs
    /// write permission), whatever the umask: it is bound under a
    /// temporary name, given its mode, then renamed into place, so no client
    /// ever connects through a wider mode. A socket file left by a proxy
    /// that is gone is replaced; one a live proxy answers on is not.
    pub fn bind_with(
        &self,
        allow_public: bool,
        socket_mode: u32,
    ) -> Result<Listener, AddressError> {
        let text = self.to_string();
        let bind_error = |source| AddressError::Bind {
            addr: text.clone(),
            source,
        };
        match self {
            ProxyAddress::Tcp(addr) => {
                let addrs: Vec<SocketAddr> = addr
                    .to_socket_addrs()
                    .map_err(|source| AddressError::Resolve {
                        addr: text.clone(),
                        source,
                    })?
                    .collect();
                if !allow_public {
                    if let Some(public) = addrs.iter().find(|a| !is_loopback(a.ip())) {
                        return Err(AddressError::NotLoopback {
                            addr: text.clone(),
                            ip: public.ip(),
                        });
                    }
                }
                TcpListener::bind(&addrs[..])
                    .map(Listener::Tcp)
                    .map_err(bind_error)
            }
            ProxyAddress::Unix(path) => {
                remove_stale_socket(path);
                bind_unix(path, socket_mode)
                    .map(|l| Listener::Unix(l, path.clone()))
                    .map_err(bind_error)
            }
        }
    }

    /// Connects, giving up after `timeout` (TCP; a Unix connect does not wait).
    pub fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        match self {
            ProxyAddress::Tcp(addr) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "resolves to no address");
                for sa in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&sa, timeout) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            ProxyAddress::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
        }
    }
}

/// Binds at a temporary name next to `path`, sets `mode`, and renames it
/// to `path` unless something is there by then.
fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed =
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).and_then(|()| {
            // Something at `path` already: in use (the caller's error
            // names it), never replaced.
            rename_noreplace(&tmp, path).map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) => io::Error::from(io::ErrorKind::AddrInUse),
                _ => e,
            })
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

fn remove_stale_socket(path: &Path) {
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// A bound proxy listener.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix listener and its path (removed when the listener is dropped).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Accepts one connection (the listener is non-blocking in the server:
    /// `WouldBlock` means none is waiting). The stream is blocking.
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        let (stream, peer) = match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_nodelay(true)?;
                (Stream::Tcp(s), peer.to_string())
            }
            Listener::Unix(l, path) => {
                let (s, _) = l.accept()?;
                (Stream::Unix(s), format!("unix:{}", path.display()))
            }
        };
        stream.set_nonblocking(false)?;
        Ok((stream, peer))
    }

    /// Switches accept between blocking and non-blocking.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l, _) => l.set_nonblocking(on),
        }
    }

    /// The address clients use to reach this listener (the actual port when
    /// bound to port 0).
    pub fn local_address(&self) -> io::Result<ProxyAddress> {
        match self {
            Listener::Tcp(l) => Ok(ProxyAddress::Tcp(l.local_addr()?.to_string())),
            Listener::Unix(_, path) => Ok(ProxyAddress::Unix(path.clone())),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected TCP or Unix stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

impl Stream {
    /// See [`TcpStream::set_read_timeout`].
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// See [`TcpStream::set_write_timeout`].
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// See [`TcpStream::set_nonblocking`].
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// See [`TcpStream::try_clone`].
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// See [`TcpStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Through a shared reference too, as std's sockets allow: a connection
// reads frames through a buffered reader while it writes replies.
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_socket_is_in_use_and_never_replaced_and_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let address = ProxyAddress::Unix(path.clone());
        let live = address.bind(false).expect("the first bind");
        let err = address.bind(false).expect_err("a live proxy's socket");
        let AddressError::Bind { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(
            UnixStream::connect(&path).is_ok(),
            "the live socket was replaced"
        );
        // Left behind by a proxy that is gone (no listener answers on it).
        drop(live);
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        address.bind(false).expect("a stale socket is replaced");
    }

    #[test]
    fn accepted_forms_parse_and_others_name_the_forms() {
        let tcp: ProxyAddress = "tcp://127.0.0.1:9395".parse().unwrap();
        assert_eq!(tcp, ProxyAddress::Tcp("127.0.0.1:9395".into()));
        let unix: ProxyAddress = "unix:///run/p.sock".parse().unwrap();
        assert_eq!(unix, ProxyAddress::Unix("/run/p.sock".into()));
        let short: ProxyAddress = "unix:/run/p.sock".parse().unwrap();
        assert_eq!(short, unix);
        for bad in [
            "",
            "tcp://",
            "tcp://host",
            "unix://relative",
            "http://x:1/",
            "h:99999",
        ] {
            let err = bad.parse::<ProxyAddress>().unwrap_err().to_string();
            assert!(err.contains("tcp://HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn public_tcp_address_is_refused_without_allow_public() {
        let err = ProxyAddress::Tcp("0.0.0.0:0".into())
            .bind(false)
            .unwrap_err();
        assert!(matches!(err, AddressError::NotLoopback { .. }), "{err}");
    }
}
