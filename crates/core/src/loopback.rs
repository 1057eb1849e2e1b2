//! What counts as a loopback address, for the listeners that refuse public
//! ones unless told otherwise (the metrics server, the proxy).

use std::net::IpAddr;

/// `127.0.0.0/8`, `::1`, and `::ffff:127.x.y.z` (which
/// `Ipv6Addr::is_loopback` does not count). `0.0.0.0` and `::` are not.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_loopback_counts_as_loopback_and_unspecified_does_not() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(is_loopback(ip("127.0.0.2")));
        assert!(is_loopback(ip("::1")));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(!is_loopback(ip("0.0.0.0")));
        assert!(!is_loopback(ip("::")));
        assert!(!is_loopback(ip("10.0.0.1")));
    }
}
