//! The tap: events as the drain delivers them, shown live to local clients
//! (`shopify-events tap`) without taking them from the pipeline.
//!
//! # Pieces
//!
//! - [`TapHub`] (`hub.rs`): what the drain loop publishes each delivered
//!   event to. It holds the clients' topic filters and a bounded buffer per
//!   client.
//! - [`Tap`] (`server.rs`): the drain's handle. [`Tap::serve`] binds the
//!   socket and starts the `drain-tap` thread that accepts clients;
//!   [`Tap::delivered`] is the drain loop's one call per delivered event;
//!   dropping it ends every tap ("the drain stopped") and removes the socket.
//! - `writer.rs`: one `drain-tap-client` thread per client, which formats
//!   and writes that client's lines.
//! - [`TapClient`] (`client.rs`): the other end, used by the CLI.
//! - [`TopicFilter`] (`glob.rs`) and the lines of the protocol
//!   (`protocol.rs`).
//!
//! # Cost
//!
//! With no client connected, [`Tap::delivered`] is one relaxed load of the
//! hub's client count (through the [`Tap`]'s pointer to its hub) and a
//! branch not taken, inlined into the drain loop: the event's body is not
//! even looked up (the caller passes a closure that is never called), and
//! the work for clients sits in a function of its own, out of the loop's
//! way. `bench/tap.sh` measures it next to the bare loop. The
//! `drain-tap` thread sleeps in `poll(2)` with no timeout, so nothing wakes
//! while nobody taps. With clients, the drain loop decodes the event once
//! (for its topic), and for the clients whose filter matches copies the
//! envelope once (shared) into each one's buffer; formatting the JSON and
//! writing it happen on the client's own thread. An event no filter matches
//! costs the decode and the glob matches, nothing more.
//!
//! # Slow clients
//!
//! The drain never waits for a client. Each client has a buffer of at most
//! [`TAP_CLIENT_BUFFER`](crate::defaults::TAP_CLIENT_BUFFER) envelope bytes
//! (an event larger than that still goes into an empty buffer); an event
//! that does not fit is dropped for that client and counted. The count
//! travels in band: the client's next line is a `missed` notice, then the
//! event that did fit, so the notice stands where the gap is. A client that
//! never reads costs the drain that buffer and its socket's kernel buffer,
//! and the drain loop nothing but the drop.
//!
//! # Who may tap
//!
//! Local clients only: the socket is a Unix socket in the state directory
//! (`tap-KEY.sock`, [`StateDir::tap_socket`](crate::state_dir::StateDir::tap_socket)),
//! created with mode 0600 ([`crate::state_dir::bind_socket`]), and the
//! drain checks each client's credentials (`SO_PEERCRED`): root or the
//! drain's own user, anyone else is refused and logged. Payloads are the
//! apps' data (customers, orders); the apps' group may write events into
//! the queue, which is no reason to let it read everyone's. The credential
//! check holds even where the file's mode does not: a socket bound while
//! the mode was still the umask's, a state directory an operator loosened,
//! a socket reached from another user namespace (container root is not
//! host root: its uid arrives mapped). A TCP listener would need
//! authentication of its own for the same guarantee; there is none.
//!
//! # Protocol
//!
//! Lines of UTF-8 JSON, each ending in `\n`, over the stream socket.
//!
//! 1. The client sends one request line, at most
//!    [`MAX_REQUEST`](protocol::MAX_REQUEST) bytes, within 2 s:
//!    `{"tap":1,"topics":["orders.*","users.created"]}`. `tap` is the
//!    protocol version; `topics` are globs over topic names (`*` any run of
//!    characters, `?` one character; see [`TopicGlob`]), at most
//!    [`TAP_MAX_GLOBS`](crate::defaults::TAP_MAX_GLOBS) of them; an empty
//!    list means every topic.
//! 2. The drain answers with one notice: either
//!    `{"tap":"ready","queue":"0x53455600","pid":1234,"topics":[...]}` and
//!    the stream of events follows, or
//!    `{"tap":"refused","reason":"..."}` and it closes the connection.
//! 3. Then, until either side closes:
//!    - an **event line**: the event exactly as the stdout sink prints it
//!      ([`crate::sink::write_json_line`]), for every delivered event
//!      whose topic one of the globs matches, in delivery order;
//!    - `{"tap":"missed","events":N}`: N matching events were dropped for
//!      this client since its previous line, because it read too slowly;
//!    - `{"tap":"end","reason":"the drain stopped"}`: the last line; the
//!      drain closes the connection after it (preceded by a `missed`
//!      notice if events were dropped since the last line). A client that
//!      gets end of file without it lost the drain (killed, crashed).
//!
//! A notice line begins with `{"tap":`; an event line never does (its
//! first key is `headers`). The client closes the connection to stop.

mod client;
mod error;
mod glob;
mod hub;
mod peer;
pub mod protocol;
mod server;
mod writer;

pub use client::{TapClient, TapLine};
pub use error::TapError;
pub use glob::{TopicFilter, TopicGlob};
pub use hub::{Item, Subscription, TapHub};
pub use protocol::{Notice, Request};
pub use server::Tap;
