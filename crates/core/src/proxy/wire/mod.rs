//! What travels between the socket client and the proxy: the addresses
//! both sides use ([`ProxyAddress`], TCP or Unix) and the frames on the
//! connection ([`frame`], specified in docs/PROTOCOL.md, "Proxy frames").
//! Plain data and sockets; nothing here knows the client or the server.

mod address;
pub mod frame;

pub use address::{AddressError, Listener, ProxyAddress, Stream};
