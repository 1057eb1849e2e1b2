//! The drain's configuration: a TOML file, then environment and flags on
//! top (the CLI applies those). Every key under `[kafka]` goes to librdkafka
//! unchanged; nested TOML tables are flattened back into dotted names, so
//! `bootstrap.servers = "..."` and `"bootstrap.servers" = "..."` both work.
//!
//! ```toml
//! queue_key = 0x53455600
//! state_dir = "/var/lib/shopify-events"
//! max_in_flight = 10000
//! journal_size = "64MiB"
//! shutdown_timeout = 10.0
//! metrics_addr = "127.0.0.1:9394"
//! spool_dir = "/var/spool/shopify-events"
//! save_on_stop = true
//! save_timeout = 15.0
//!
//! [kafka]
//! "bootstrap.servers" = "kafka-1:9092,kafka-2:9092"
//! "compression.type" = "zstd"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sysvmq::Key;

use crate::defaults;
use crate::state_dir::StateDir;

/// librdkafka settings the drain's producer starts from, over the shared
/// `kafka::DEFAULTS` and under the user's `[kafka]` keys.
///
/// `message.timeout.ms = 0` (no timeout): librdkafka keeps retrying an
/// event in order until Kafka takes it, instead of giving it back after
/// the timeout while later events of its partition may still get through
/// (the gaps its idempotent producer documents). The drain holds at most
/// its window in librdkafka meanwhile; the rest waits in the queue and the
/// spool, and `oldest_event_age` and `/health` show the outage. Setting a
/// timeout brings the old behaviour back: events that time out are sent
/// again, possibly after later events of the same partition.
pub const KAFKA_DEFAULTS: &[(&str, &str)] = &[("message.timeout.ms", "0")];

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Kafka through librdkafka (needs `kafka."bootstrap.servers"`).
    Kafka,
    /// JSON lines on stdout: the embedded default without brokers.
    Stdout,
}

/// Everything the drain needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// SysV key of the queue to drain.
    #[serde(deserialize_with = "queue_key")]
    pub queue_key: Key,
    /// Journal, lock file and stats snapshot live here.
    pub state_dir: PathBuf,
    /// Dead-letter file directory (default: `state_dir`).
    pub dead_letter_dir: Option<PathBuf>,
    /// Destination; default: Kafka when brokers are configured, else stdout.
    pub sink: Option<SinkKind>,
    /// Events sent and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Bytes of journal space for records (`"64MiB"` or a number).
    #[serde(deserialize_with = "size")]
    pub journal_size: u64,
    /// Seconds to wait for in-flight deliveries at shutdown.
    pub shutdown_timeout: f64,
    /// Where to serve `/metrics` and `/health` (loopback unless `metrics_allow_public`).
    pub metrics_addr: Option<String>,
    /// Allow a non-loopback `metrics_addr`.
    pub metrics_allow_public: bool,
    /// Permissions of the queue if the drain has to create it.
    pub queue_mode: u32,
    /// The spool directory whose segments for this queue the drain
    /// delivers.
    pub spool_dir: PathBuf,
    /// At SIGTERM, after the in-flight wait, move what is left in the queue
    /// into the drain's saved spool (flushed to disk); the next start
    /// delivers it first.
    pub save_on_stop: bool,
    /// Seconds the save may take; what is left stays in the queue.
    pub save_timeout: f64,
    /// Start even if the journal is damaged where records may follow: what
    /// lies past the damage is given up (logged with its positions).
    pub discard_damaged_journal: bool,
    /// Bytes after which the dead-letter file is rotated.
    #[serde(deserialize_with = "size")]
    pub dead_letter_max_bytes: u64,
    /// Dead-letter files kept, the current one included.
    pub dead_letter_files: usize,
    /// Seconds a missing event number may wait for reordering (the queue,
    /// the spool and the proxy are different paths) before the loss
    /// accounting counts it as a gap.
    pub accounting_window: f64,
    /// librdkafka settings, passed unchanged.
    #[serde(deserialize_with = "flat_settings")]
    pub kafka: BTreeMap<String, String>,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            queue_key: defaults::QUEUE_KEY,
            state_dir: PathBuf::from(defaults::STATE_DIR),
            dead_letter_dir: None,
            sink: None,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            journal_size: defaults::JOURNAL_SIZE,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT.as_secs_f64(),
            metrics_addr: None,
            metrics_allow_public: false,
            queue_mode: defaults::QUEUE_MODE,
            spool_dir: PathBuf::from(defaults::SPOOL_DIR),
            save_on_stop: false,
            save_timeout: defaults::SAVE_TIMEOUT.as_secs_f64(),
            discard_damaged_journal: false,
            dead_letter_max_bytes: defaults::DEAD_LETTER_MAX_BYTES,
            dead_letter_files: defaults::DEAD_LETTER_FILES,
            accounting_window: defaults::ACCOUNTING_WINDOW.as_secs_f64(),
            kafka: BTreeMap::new(),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid for the drain.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What TOML or the schema said.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {setting} = {value}: {fix}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// The rejected value.
        value: String,
        /// What would be accepted.
        fix: &'static str,
    },
}

impl DrainConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<DrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        DrainConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<DrainConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The sink to use: as configured, else Kafka when brokers are set.
    pub fn sink_kind(&self) -> SinkKind {
        self.sink
            .unwrap_or(if self.kafka.contains_key("bootstrap.servers") {
                SinkKind::Kafka
            } else {
                SinkKind::Stdout
            })
    }

    /// The drain's state directory, with the dead-letter directory.
    pub fn state(&self) -> StateDir {
        let state = StateDir::new(&self.state_dir, self.queue_key);
        match &self.dead_letter_dir {
            Some(dir) => state.with_dead_letter_dir(dir),
            None => state,
        }
    }

    /// The shutdown bound as a Duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_timeout.clamp(0.0, 86_400.0))
    }

    /// The loss accounting's settings: the defaults, with this window.
    pub fn accounting(&self) -> crate::accounting::TrackerConfig {
        crate::accounting::TrackerConfig {
            window: Duration::from_secs_f64(self.accounting_window.clamp(0.001, 86_400.0)),
            ..crate::accounting::TrackerConfig::default()
        }
    }

    /// The save's bound as a Duration.
    pub fn save_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.save_timeout.clamp(0.0, 86_400.0))
    }

    /// The librdkafka settings of the drain's producer: [`KAFKA_DEFAULTS`],
    /// then `kafka` (the user's keys win).
    pub fn kafka_settings(&self) -> BTreeMap<String, String> {
        let mut settings: BTreeMap<String, String> = KAFKA_DEFAULTS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        settings.extend(self.kafka.clone());
        settings
    }

    /// Checks values no type can rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return Err(ConfigError::Invalid {
                setting: "max_in_flight",
                value: "0".into(),
                fix: "use at least 1 (10000 is a good start)",
            });
        }
        for (setting, secs) in [
            ("shutdown_timeout", self.shutdown_timeout),
            ("save_timeout", self.save_timeout),
        ] {
            if !secs.is_finite() || secs < 0.0 {
                return Err(ConfigError::Invalid {
                    setting,
                    value: secs.to_string(),
                    fix: "use a number of seconds >= 0",
                });
            }
        }
        let window = self.accounting_window;
        if !window.is_finite() || !(0.001..=86_400.0).contains(&window) {
            return Err(ConfigError::Invalid {
                setting: "accounting_window",
                value: window.to_string(),
                fix: "use a number of seconds from 0.001 to 86400 (60 is the default)",
            });
        }
        if self.dead_letter_files == 0 {
            return Err(ConfigError::Invalid {
                setting: "dead_letter_files",
                value: "0".into(),
                fix: "keep at least 1 file (8 is the default)",
            });
        }
        if self.sink_kind() == SinkKind::Kafka && !self.kafka.contains_key("bootstrap.servers") {
            return Err(ConfigError::Invalid {
                setting: "sink",
                value: "kafka".into(),
                fix: "set kafka.\"bootstrap.servers\" (or --brokers / SHOPIFY_EVENTS_BROKERS)",
            });
        }
        Ok(())
    }
}

/// Parses a queue key written as a number or a string (`"0x53455600"`, `"1397051904"`).
pub fn parse_queue_key(text: &str) -> Result<Key, ConfigError> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse::<u32>().ok(),
    };
    match parsed {
        Some(key) if key != 0 => Ok(key as Key),
        _ => Err(ConfigError::Invalid {
            setting: "queue_key",
            value: text.to_owned(),
            fix: "use a decimal number or 0x-prefixed hex from 1 to 0xFFFFFFFF, e.g. 0x53455600",
        }),
    }
}

fn queue_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::Integer(n) => u32::try_from(n)
            .ok()
            .filter(|&k| k != 0)
            .map(|k| k as Key)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("queue_key {n} is not between 1 and 0xFFFFFFFF"))
            }),
        toml::Value::String(text) => parse_queue_key(&text).map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "queue_key must be a number or a string, got {other}"
        ))),
    }
}

fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::Integer(n) => {
            u64::try_from(n).map_err(|_| serde::de::Error::custom(format!("size {n} is negative")))
        }
        toml::Value::String(text) => {
            crate::ops::parse_size(&text).map_err(serde::de::Error::custom)
        }
        other => Err(serde::de::Error::custom(format!(
            "a size must be a number of bytes or a string like \"64MiB\", got {other}"
        ))),
    }
}

fn flat_settings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    fn flatten(prefix: &str, table: toml::Table, out: &mut BTreeMap<String, String>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                toml::Value::Table(inner) => flatten(&key, inner, out),
                toml::Value::String(s) => {
                    out.insert(key, s);
                }
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    flatten("", toml::Table::deserialize(deserializer)?, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_keys_are_flattened_and_stringified() {
        let config = DrainConfig::from_toml(
            "queue_key = \"0x10\"\njournal_size = \"1MiB\"\n[kafka]\nbootstrap.servers = \"b:9092\"\n\"linger.ms\" = 10\n\"enable.idempotence\" = true\n",
        )
        .unwrap();
        assert_eq!(config.queue_key, 16);
        assert_eq!(config.journal_size, 1024 * 1024);
        assert_eq!(config.kafka["bootstrap.servers"], "b:9092");
        assert_eq!(config.kafka["linger.ms"], "10");
        assert_eq!(config.kafka["enable.idempotence"], "true");
        assert_eq!(config.sink_kind(), SinkKind::Kafka);
    }

    #[test]
    fn spool_save_and_dead_letter_settings_parse_and_the_drain_runs_without_a_message_timeout() {
        let config = DrainConfig::from_toml(
            "spool_dir = \"/srv/spool\"\nsave_on_stop = true\nsave_timeout = 2.5\n\
             discard_damaged_journal = true\ndead_letter_max_bytes = \"1MiB\"\n\
             dead_letter_files = 3\n[kafka]\n\"bootstrap.servers\" = \"b:9092\"\n",
        )
        .unwrap();
        assert_eq!(config.spool_dir, PathBuf::from("/srv/spool"));
        assert!(config.save_on_stop && config.discard_damaged_journal);
        assert_eq!(config.save_timeout(), Duration::from_millis(2500));
        assert_eq!(config.dead_letter_max_bytes, 1 << 20);
        assert_eq!(config.dead_letter_files, 3);
        assert_eq!(config.kafka_settings()["message.timeout.ms"], "0");
        let mut timed = config.clone();
        timed
            .kafka
            .insert("message.timeout.ms".into(), "60000".into());
        assert_eq!(
            timed.kafka_settings()["message.timeout.ms"],
            "60000",
            "the user's wins"
        );
        let defaults = DrainConfig::default();
        assert_eq!(defaults.spool_dir, PathBuf::from(defaults::SPOOL_DIR));
        assert!(!defaults.save_on_stop);
        let none = DrainConfig {
            dead_letter_files: 0,
            ..DrainConfig::default()
        };
        assert!(none
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dead_letter_files"));
    }

    #[test]
    fn stdout_is_the_default_without_brokers() {
        let config = DrainConfig::from_toml("").unwrap();
        assert_eq!(config.sink_kind(), SinkKind::Stdout);
        assert_eq!(config.queue_key, defaults::QUEUE_KEY);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn an_accounting_window_that_is_not_a_positive_number_of_seconds_is_refused_by_name() {
        for bad in ["0", "-1", "nan", "inf", "100000"] {
            let config = DrainConfig {
                accounting_window: bad.parse().unwrap(),
                ..DrainConfig::default()
            };
            let e = config.validate().unwrap_err().to_string();
            assert!(e.contains("accounting_window"), "{bad}: {e}");
        }
        let config = DrainConfig::from_toml("accounting_window = 5").unwrap();
        assert_eq!(config.accounting().window, Duration::from_secs(5));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_their_names() {
        assert!(DrainConfig::from_toml("queue_kee = 1")
            .unwrap_err()
            .contains("queue_kee"));
        assert!(DrainConfig::from_toml("queue_key = 0")
            .unwrap_err()
            .contains("queue_key 0"));
        let kafka_without_brokers = DrainConfig {
            sink: Some(SinkKind::Kafka),
            ..DrainConfig::default()
        };
        assert!(kafka_without_brokers
            .validate()
            .unwrap_err()
            .to_string()
            .contains("bootstrap.servers"));
        assert!(parse_queue_key("0xZZ")
            .unwrap_err()
            .to_string()
            .contains("0xZZ"));
    }
}
