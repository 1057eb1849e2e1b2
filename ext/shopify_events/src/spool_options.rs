//! The spool settings the Ruby transports pass (`Transports::Sysv` for its
//! overflow, `Transports::Spool`) as a Hash, turned into the core's
//! [`SpoolOptions`]. `Configuration` validated the values already; what is
//! checked here again raises `ConfigurationError` naming the setting.
//!
//! `{dir: String, max_bytes: Integer | nil, sync: :page_cache | :always |
//! Integer (interval in ms), max_event_bytes: Integer}`, and for
//! benchmarks `prepare_ahead: false` (the transports turn it on).

use std::time::Duration;

use magnus::{prelude::*, Error, RHash, Ruby, Symbol, Value};
use shopify_events_core::spool::{SpoolOptions, SyncPolicy};

use crate::errors::{self, Class};

/// The options for queue `key` from `settings`.
pub(crate) fn spool_options(
    ruby: &Ruby,
    key: sysvmq::Key,
    settings: RHash,
) -> Result<SpoolOptions, Error> {
    let get = |name: &str| -> Result<Value, Error> {
        settings
            .get(ruby.to_symbol(name))
            .ok_or_else(|| invalid(ruby, format!("spool settings lack {name}")))
    };
    let dir: String = String::try_convert(get("dir")?)
        .map_err(|_| invalid(ruby, "spool_dir must be a String path".into()))?;
    let mut options = SpoolOptions::new(dir, key);
    let max_bytes = get("max_bytes")?;
    if !max_bytes.is_nil() {
        options.max_bytes = Some(
            u64::try_convert(max_bytes)
                .map_err(|_| invalid(ruby, "spool_max_bytes must be bytes >= 0 or nil".into()))?,
        );
    }
    options.sync = sync_policy(ruby, get("sync")?)?;
    let max_event_bytes = usize::try_convert(get("max_event_bytes")?)
        .map_err(|_| invalid(ruby, "max_event_bytes must be a number of bytes".into()))?;
    options.max_record = max_event_bytes;
    // Not a setting: benchmarks turn preparation off to measure it.
    if let Some(prepare) = settings.get(ruby.to_symbol("prepare_ahead")) {
        options.prepare_ahead = prepare.to_bool();
    }
    Ok(options)
}

fn sync_policy(ruby: &Ruby, sync: Value) -> Result<SyncPolicy, Error> {
    if let Some(name) = Symbol::from_value(sync) {
        match name.name()?.as_ref() {
            "page_cache" => return Ok(SyncPolicy::PageCache),
            "always" => return Ok(SyncPolicy::Always),
            _ => {}
        }
    } else if let Ok(ms) = u64::try_convert(sync) {
        if ms > 0 {
            return Ok(SyncPolicy::Interval(Duration::from_millis(ms)));
        }
    }
    Err(invalid(
        ruby,
        format!(
            "spool_sync {} is not :page_cache, :always or an interval in milliseconds (> 0)",
            sync.inspect()
        ),
    ))
}

fn invalid(ruby: &Ruby, message: String) -> Error {
    errors::raise(ruby, Class::ConfigurationError, message)
}

/// `Native.parse_size("512MiB")`: bytes, by the rules `shopify-events`
/// uses for its size flags (`ops::parse_size`), so that a size means the
/// same in the app's settings and on the command line.
fn parse_size(ruby: &Ruby, text: String) -> Result<u64, Error> {
    shopify_events_core::ops::parse_size(&text)
        .map_err(|e| errors::raise(ruby, Class::ConfigurationError, e.to_string()))
}

pub(crate) fn init(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
    native.define_module_function("parse_size", magnus::function!(parse_size, 1))?;
    let _ = ruby;
    Ok(())
}
