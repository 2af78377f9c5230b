//! The JSON configurations of the adapter and publisher handles, as small
//! serde structs that refuse unknown fields: a misspelt field is an error
//! naming it, never a setting silently left at its default. Each field
//! maps to one builder of the root crate; times are whole milliseconds, in
//! fields ending in `_ms`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use syncmq::queue::Durability;
use syncmq::rabbitmq::{ConnectionConfig, PublisherConfig};
use syncmq::{DurableConfig, Error, Result};

/// `"simple"`: `{}` (or NULL), or `{"close_timeout_ms": 5000}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimpleJson {
    /// How long close waits for readers to take what is left.
    pub(crate) close_timeout_ms: Option<u64>,
}

/// `"durable"`: `{"path": "/var/lib/app/queue", "durability": "durable",
/// "close_timeout_ms": 10000}`; only `path` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DurableJson {
    /// The queue directory (created when missing).
    pub(crate) path: String,
    /// `"durable"` (fsync, the default) or `"buffered"`.
    #[serde(default)]
    durability: Durability,
    close_timeout_ms: Option<u64>,
}

impl DurableJson {
    /// The adapter's settings.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` naming `path` when it is empty.
    pub(crate) fn config(&self) -> Result<DurableConfig> {
        if self.path.is_empty() {
            return Err(Error::invalid("path", "is empty"));
        }
        let mut config = DurableConfig::new().with_durability(self.durability);
        if let Some(ms) = self.close_timeout_ms {
            config = config.with_close_timeout(Duration::from_millis(ms));
        }
        Ok(config)
    }
}

/// `"rabbitmq"`: `{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"],
/// "shuffle": false}`; several URLs are the nodes of one cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RabbitJson {
    urls: Vec<String>,
    #[serde(default)]
    shuffle: bool,
}

impl RabbitJson {
    /// The connection's settings (checked when the connection opens).
    pub(crate) fn connection(&self) -> ConnectionConfig {
        ConnectionConfig::cluster(self.urls.iter().cloned()).with_shuffle(self.shuffle)
    }
}

/// A publisher: the connection's `urls` and `shuffle`, and what maps to
/// `PublisherConfig`: `window`, `buffer`, `mandatory`, `persistent`,
/// `nack_retries`, `confirm_timeout_ms`, `close_timeout_ms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublisherJson {
    urls: Vec<String>,
    #[serde(default)]
    shuffle: bool,
    window: Option<usize>,
    buffer: Option<usize>,
    mandatory: Option<bool>,
    persistent: Option<bool>,
    nack_retries: Option<u32>,
    confirm_timeout_ms: Option<u64>,
    close_timeout_ms: Option<u64>,
}

impl PublisherJson {
    /// The publisher's own connection.
    pub(crate) fn connection(&self) -> ConnectionConfig {
        ConnectionConfig::cluster(self.urls.iter().cloned()).with_shuffle(self.shuffle)
    }

    /// The publisher's settings, the defaults where a field is absent
    /// (checked when the publisher starts).
    pub(crate) fn publisher(&self) -> PublisherConfig {
        let mut config = PublisherConfig::new();
        if let Some(window) = self.window {
            config = config.with_window(window);
        }
        if let Some(buffer) = self.buffer {
            config = config.with_buffer(buffer);
        }
        if let Some(mandatory) = self.mandatory {
            config = config.with_mandatory(mandatory);
        }
        if let Some(persistent) = self.persistent {
            config = config.with_persistent(persistent);
        }
        if let Some(retries) = self.nack_retries {
            config = config.with_nack_retries(retries);
        }
        if let Some(ms) = self.confirm_timeout_ms {
            config = config.with_confirm_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = self.close_timeout_ms {
            config = config.with_close_timeout(Duration::from_millis(ms));
        }
        config
    }
}

/// Parses `json` (the argument `name`) as a `T`.
///
/// # Errors
///
/// `InvalidArgument` naming `name`, with serde's message (which names an
/// unknown or missing field, or the line and column of a syntax error).
pub(crate) fn parse<T: DeserializeOwned>(json: &str, name: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::invalid(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_is_named() {
        let e = parse::<DurableJson>(r#"{"path":"q","pth":1}"#, "config_json").unwrap_err();
        assert!(e.to_string().contains("`pth`"), "{e}");
        let e = parse::<SimpleJson>(r#"{"buffer":1}"#, "config_json").unwrap_err();
        assert!(e.to_string().contains("`buffer`"), "{e}");
    }

    #[test]
    fn a_missing_path_and_an_empty_one_are_named() {
        let e = parse::<DurableJson>("{}", "config_json").unwrap_err();
        assert!(e.to_string().contains("`path`"), "{e}");
        let json: DurableJson = parse(r#"{"path":""}"#, "config_json").unwrap();
        assert!(json.config().unwrap_err().to_string().contains("path"));
    }

    #[test]
    fn publisher_fields_reach_the_config() {
        let json: PublisherJson = parse(
            r#"{"urls":["amqp://h"],"window":8,"mandatory":false,"confirm_timeout_ms":1500}"#,
            "config_json",
        )
        .unwrap();
        let config = json.publisher();
        assert_eq!(config.window(), 8);
        assert!(!config.mandatory());
        assert_eq!(config.confirm_timeout(), Duration::from_millis(1500));
        assert_eq!(json.connection().urls(), ["amqp://h".to_string()]);
    }
}
