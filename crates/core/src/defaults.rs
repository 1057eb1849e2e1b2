//! Every default of the project, in one place.
//!
//! The Rust code (the drain, the proxy, the transports, the CLI's flags)
//! takes its defaults from here, and so does the gem: the extension
//! publishes them as the frozen Hash `ShopifyEvents::Native::DEFAULTS`, which
//! `lib/shopify_events/configuration.rb` reads. Documentation may quote the
//! values; code never repeats them.
//!
//! librdkafka's own settings (acks, idempotence, compression) are not here:
//! they are the Kafka producer's configuration and live with it
//! (`kafka::DEFAULTS`).

use std::time::Duration;

use sysvmq::Key;

/// The queue key when none is configured: the bytes "SEV\0".
pub const QUEUE_KEY: Key = 0x5345_5600;
/// [`QUEUE_KEY`] as operators write it (`--queue-key`, `SHOPIFY_EVENTS_QUEUE_KEY`).
pub const QUEUE_KEY_TEXT: &str = "0x53455600";
/// Permissions of a queue that has to be created: owner and group.
pub const QUEUE_MODE: u32 = 0o660;
/// [`QUEUE_MODE`] as `shopify-events setup --mode` takes it (octal).
pub const QUEUE_MODE_TEXT: &str = "660";

/// Where the drain keeps its state (journal, lock, stats snapshot, dead
/// letters): see [`crate::state_dir`].
pub const STATE_DIR: &str = "/var/lib/shopify-events";
/// Where the proxy writes its stats snapshot (`proxy-KEY.json`, read by
/// `shopify-events top`): runtime data, gone at reboot like the proxy's
/// socket beside it (the packaged unit's `RuntimeDirectory`).
pub const RUN_DIR: &str = "/run/shopify-events";
/// Where emitting processes write their spool files (`crate::spool`): the
/// `sysv` transport what the queue cannot take, the `spool` transport every
/// event.
pub const SPOOL_DIR: &str = "/var/spool/shopify-events";
/// Mode of the spool directory `shopify-events setup` creates: setgid, so
/// that files take the directory's group, and no access for others.
pub const SPOOL_DIR_MODE: u32 = 0o2770;
/// When spooled records are written to disk (`spool_sync`): left to the
/// kernel's write-back (`page_cache`), every N ms (`interval:N`), or before
/// each emit returns (`always`).
pub const SPOOL_SYNC_TEXT: &str = "page_cache";
/// The largest event envelope the `sysv` and `spool` transports take
/// (`max_event_bytes`): Kafka's default `message.max.bytes`. Envelopes above
/// `kernel.msgmax` up to this go to the spool.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Events the drain sends and has not yet seen acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 10_000;
/// Bytes of journal space for records.
pub const JOURNAL_SIZE: u64 = 64 << 20;
/// How long the drain waits for in-flight deliveries at shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the drain's save at shutdown (`save_on_stop`) may take the
/// queue into its saved spool; what is left stays in the queue. Together
/// with [`SHUTDOWN_TIMEOUT`] it stays below the shipped unit's
/// `TimeoutStopSec` (30 s).
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(15);
/// A dead-letter file is rotated once it holds this many bytes.
pub const DEAD_LETTER_MAX_BYTES: u64 = 64 << 20;
/// Dead-letter files kept: the current one and the rotated ones; the oldest
/// beyond it is deleted (logged and counted).
pub const DEAD_LETTER_FILES: usize = 8;
/// Where the drain serves `/metrics` and `/health` when told to (the
/// packaged configuration uses it; without a setting no server runs).
pub const METRICS_ADDR: &str = "127.0.0.1:9394";

/// Permissions of the drain's tap socket (`tap-KEY.sock`): whoever can
/// connect reads every payload, so only the drain's user (and root).
pub const TAP_SOCKET_MODE: u32 = 0o600;
/// `shopify-events tap` clients one drain serves at once.
pub const TAP_MAX_CLIENTS: usize = 8;
/// Topic globs one tap client may ask for: the drain loop tries them
/// against every delivered event's topic, so a request cannot make that
/// cost hundreds of matches per event.
pub const TAP_MAX_GLOBS: usize = 64;
/// Envelope bytes the drain holds for one tap client that has not written
/// them yet; past it, that client misses events (and is told how many).
pub const TAP_CLIENT_BUFFER: usize = 1 << 20;

/// How often `shopify-events top` refreshes.
pub const TOP_INTERVAL: Duration = Duration::from_secs(1);
/// Topics `shopify-events top` lists, the busiest first.
pub const TOP_TOPICS: usize = 8;
/// How long `shopify-events dead-letters replay` waits for room in a full
/// queue before it gives up.
pub const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// How long a flush waits for buffered events (socket, direct), at exit and
/// by default in `ShopifyEvents.flush`; also how long the direct
/// transport's worker keeps delivering after its handle was dropped.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Events the direct transport buffers in the process, at most.
pub const DIRECT_BUFFER: usize = 10_000;
/// Frames the socket client keeps unacknowledged, at most.
pub const SOCKET_MAX_BUFFERED_EVENTS: usize = 100_000;
/// Frame bytes the socket client keeps unacknowledged, at most.
pub const SOCKET_MAX_BUFFERED_BYTES: usize = 32 << 20;
/// Time the socket client has to connect and complete the handshake.
pub const SOCKET_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// First pause after a failed connect; doubles up to [`SOCKET_BACKOFF_MAX`].
pub const SOCKET_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between the socket client's connection attempts.
pub const SOCKET_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Connections the proxy serves at once.
pub const PROXY_MAX_CONNECTIONS: usize = 1024;
/// Connections the proxy holds in their handshake at once; past it the
/// oldest is closed, so silent connections cannot crowd out real clients.
pub const PROXY_MAX_PENDING_HANDSHAKES: usize = 256;
/// Time a new proxy connection has to complete its handshake.
pub const PROXY_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence at a frame boundary after which the proxy closes a connection.
pub const PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time one data frame may take to arrive, from its first byte to its last.
pub const PROXY_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Mode of the proxy's Unix socket: owner and group may connect, like the
/// queue's mode.
pub const PROXY_SOCKET_MODE: u32 = 0o660;
/// [`PROXY_SOCKET_MODE`] as `shopify-events proxy --socket-mode` takes it.
pub const PROXY_SOCKET_MODE_TEXT: &str = "660";
/// Time a write of acks may block before the proxy drops the connection.
pub const PROXY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the proxy's shutdown waits for its connection threads.
pub const PROXY_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the drain's loss accounting waits for a missing sequence number
/// once a later one of the same producer arrived, before counting it as a
/// gap (see `accounting`).
pub const ACCOUNTING_WINDOW: Duration = Duration::from_secs(60);
/// How far past a missing number a producer's numbers may run before the
/// missing one counts as a gap at once, however recent.
pub const ACCOUNTING_WINDOW_EVENTS: u64 = 65_536;
/// Silence after which a producer's pending numbers are settled and its
/// window freed (it is kept as a few words).
pub const ACCOUNTING_RETIRE_AFTER: Duration = Duration::from_secs(600);
/// Silence after which the accounting forgets a producer altogether.
pub const ACCOUNTING_FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Producers the accounting keeps; past it the longest silent are evicted.
pub const ACCOUNTING_MAX_PRODUCERS: usize = 100_000;
/// Bytes all producers' reordering windows may take together.
pub const ACCOUNTING_MAX_WINDOW_BYTES: usize = 32 << 20;
/// How often the drain saves the accounting state (and at shutdown).
pub const ACCOUNTING_SAVE_INTERVAL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_spell_their_values() {
        let key = QUEUE_KEY_TEXT.trim_start_matches("0x");
        assert_eq!(u32::from_str_radix(key, 16), Ok(QUEUE_KEY as u32));
        assert_eq!(u32::from_str_radix(QUEUE_MODE_TEXT, 8), Ok(QUEUE_MODE));
        assert_eq!(
            u32::from_str_radix(PROXY_SOCKET_MODE_TEXT, 8),
            Ok(PROXY_SOCKET_MODE)
        );
    }
}
