//! The client's side of the handshake: connect, send the `Hello`, read the
//! `Welcome` within the connect timeout.

use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

use super::config::ClientConfig;
use crate::proxy::wire::frame::{Hello, Status, Welcome, PROTOCOL_VERSION};
use crate::proxy::wire::Stream;

/// A blocking stream whose handshake the proxy accepted, and its welcome;
/// or why not, as the client's `last_error` says it.
pub(super) fn connect(config: &ClientConfig) -> Result<(Stream, Welcome), String> {
    let address = &config.address;
    let fail = |e: std::io::Error| format!("cannot connect to the proxy at {address}: {e}");
    let mut stream = address.connect(config.connect_timeout).map_err(fail)?;
    stream
        .set_read_timeout(Some(config.connect_timeout))
        .map_err(fail)?;
    stream
        .set_write_timeout(Some(config.connect_timeout))
        .map_err(fail)?;
    let mut hello = Vec::with_capacity(16 + config.token.len());
    Hello {
        version: PROTOCOL_VERSION,
        token: config.token.clone(),
    }
    .encode(&mut hello)
    .map_err(|e| e.to_string())?;
    stream.write_all(&hello).map_err(fail)?;
    let deadline = Instant::now() + config.connect_timeout;
    let mut reply = Vec::with_capacity(64);
    let welcome = loop {
        match Welcome::decode(&reply) {
            Ok(Some((welcome, _))) => break welcome,
            Ok(None) => {}
            Err(e) => return Err(format!("{address} is not a shopify-events proxy: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the proxy at {address} did not answer the handshake"
            ));
        }
        let mut chunk = [0u8; 256];
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "the proxy at {address} closed the connection during the handshake"
                ))
            }
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    };
    if welcome.status != Status::Ok {
        return Err(format!(
            "the proxy at {address} refused the connection ({:?}): {}",
            welcome.status, welcome.text
        ));
    }
    Ok((stream, welcome))
}
