//! Binding the metrics listener, loopback unless told otherwise.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};

use crate::loopback::is_loopback;

/// Why the metrics listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address is not `host:port` or its host does not resolve.
    #[error(
        "metrics address {addr:?} is not a valid host:port ({source}); use e.g. {example}",
        example = crate::defaults::METRICS_ADDR
    )]
    Address {
        /// The address as given.
        addr: String,
        /// Why parsing or resolving it failed.
        source: io::Error,
    },
    /// The address is reachable from other hosts and that was not allowed.
    #[error(
        "refusing to serve metrics on {addr} ({ip} is not a loopback address): /metrics and \
         /health have no authentication; listen on 127.0.0.1 or [::1], or pass \
         --metrics-allow-public if the network is trusted"
    )]
    NotLoopback {
        /// The address as given.
        addr: String,
        /// The first non-loopback address it resolved to.
        ip: IpAddr,
    },
    /// Binding failed (port in use, permission denied, ...).
    #[error("cannot listen for metrics on {addr}: {source}; choose another port (is another drain using it?)")]
    Bind {
        /// The address as given.
        addr: String,
        /// The error from `bind(2)`.
        source: io::Error,
    },
}

/// Binds a listener for [`serve`](super::serve()) on `addr` (`host:port`).
///
/// Metrics reveal event rates and the health endpoint is unauthenticated, so
/// every address `addr` resolves to must be loopback unless `allow_public`;
/// `0.0.0.0` and `[::]` count as public.
pub fn bind(addr: &str, allow_public: bool) -> Result<TcpListener, MetricsError> {
    let address_error = |source| MetricsError::Address {
        addr: addr.into(),
        source,
    };
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(address_error)?.collect();
    if addrs.is_empty() {
        let none = io::Error::new(io::ErrorKind::NotFound, "it resolves to no address");
        return Err(address_error(none));
    }
    if !allow_public {
        if let Some(public) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(MetricsError::NotLoopback {
                addr: addr.into(),
                ip: public.ip(),
            });
        }
    }
    TcpListener::bind(&addrs[..]).map_err(|source| MetricsError::Bind {
        addr: addr.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_address_names_it() {
        let err = bind("no-port-here", false).unwrap_err();
        assert!(matches!(err, MetricsError::Address { .. }));
        assert!(err.to_string().contains("\"no-port-here\""), "{err}");
    }
}
