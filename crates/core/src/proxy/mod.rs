//! The container path: the `socket` transport's client and the host proxy.
//!
//! A container has its own IPC namespace and cannot reach the host's SysV
//! queue. Its app sends each envelope in a numbered frame over TCP or a Unix
//! socket ([`SocketClient`]); the host's proxy ([`run`]) puts it into
//! the queue with `msgsnd` and acknowledges it only after the kernel took it.
//! The wire format is in [`wire::frame`] and docs/PROTOCOL.md ("Proxy frames").
//!
//! Delivery: acknowledged ⇒ in the host queue. Unacknowledged frames stay
//! in the client's bounded buffer and are resent after a reconnect
//! (duplicates carry the same event id); they are lost if the app process
//! dies first.

mod client;
mod metrics;
mod server;
pub mod wire;

pub use client::{ClientConfig, ClientError, ClientSnapshot, ClientStats, SocketClient};
pub use metrics::ProxyMetrics;
pub use server::{run, ServerConfig, ServerError};
pub use wire::{AddressError, Listener, ProxyAddress, Stream};
