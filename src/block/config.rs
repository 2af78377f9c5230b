//! The runtime's configuration: [`RuntimeConfig`], the blocks in their
//! order and the runtime's deadlines, and [`BlockConfig`], one block.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::block::value::Value;
use crate::error::{Error, Result};

/// One block of the configuration: its factory's name, its
/// responsibility, its own configuration.
///
/// A block's responsibility defaults to its name; responsibilities are
/// unique in a process. In a file: `{"name": "publisher",
/// "responsibility": "events", "config": {"channel": "lines"}}`, where only
/// `name` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    responsibility: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    config: Value,
}

impl BlockConfig {
    /// A block made by the factory `name`, with responsibility `name` and
    /// no configuration of its own.
    pub fn new(name: impl Into<String>) -> Self {
        BlockConfig {
            name: name.into(),
            responsibility: None,
            config: Value::Null,
        }
    }

    /// Sets the responsibility: the instance's name, unique in the process.
    #[must_use]
    pub fn with_responsibility(mut self, responsibility: impl Into<String>) -> Self {
        self.responsibility = Some(responsibility.into());
        self
    }

    /// Sets the block's own configuration, handed to its `init`.
    #[must_use]
    pub fn with_config(mut self, config: impl Into<Value>) -> Self {
        self.config = config.into();
        self
    }

    /// The factory's name: the block's kind.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The responsibility; the name when none was given.
    pub fn responsibility(&self) -> &str {
        self.responsibility.as_deref().unwrap_or(&self.name)
    }

    /// The block's own configuration.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Checks the name and the responsibility, as
    /// [`RuntimeConfig::validate`] does for each block.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `name` or `responsibility` when it
    /// is empty, longer than [`RuntimeConfig::MAX_NAME_LEN`] or has control
    /// characters.
    pub fn validate(&self) -> Result<()> {
        self.validate_as("block")
    }

    /// As [`validate`](Self::validate); `field` is how errors name the
    /// block (`"blocks[2]"`).
    fn validate_as(&self, field: &str) -> Result<()> {
        check_name(&format!("{field}.name"), self.name())?;
        check_name(&format!("{field}.responsibility"), self.responsibility())
    }
}

/// Which blocks make up the process, and the runtime's deadlines.
///
/// The order of the blocks is the order of `init`; `finish` goes the other
/// way. It deserialises from any serde format, so a process can be
/// described in a file (durations in whole milliseconds):
///
/// ```json
/// { "process": { "site": "eu-1" },
///   "blocks": [
///     { "name": "finisher" },
///     { "name": "publisher", "responsibility": "events", "config": { "channel": "lines" } },
///     { "name": "tcp-reader", "config": { "listen": "127.0.0.1:7000" } }
///   ],
///   "finish_timeout_ms": 5000,
///   "heartbeat_ms": 1000 }
/// ```
///
/// In code:
///
/// ```
/// use std::time::Duration;
/// use syncmq::block::{BlockConfig, RuntimeConfig};
///
/// let config = RuntimeConfig::new()
///     .with_block(BlockConfig::new("finisher"))
///     .with_block(BlockConfig::new("counter").with_responsibility("left"))
///     .with_block(BlockConfig::new("counter").with_responsibility("right"))
///     .with_finish_timeout(Duration::from_secs(2));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The process's own settings, shared by every block (the Go adapter's
    /// `Configurator.Configuration()`).
    #[serde(skip_serializing_if = "Value::is_null")]
    process: Value,
    blocks: Vec<BlockConfig>,
    #[serde(rename = "finish_timeout_ms", with = "crate::millis")]
    finish_timeout: Duration,
    #[serde(rename = "heartbeat_ms", with = "crate::millis")]
    heartbeat: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig::new()
    }
}

impl RuntimeConfig {
    /// How long one block may take to finish (its queued events, `finish`,
    /// the end of `run` and of its helper threads), by default.
    pub const DEFAULT_FINISH_TIMEOUT: Duration = Duration::from_secs(5);
    /// How often the monitor checks the dependency, by default.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
    /// The longest name or responsibility accepted, in bytes.
    pub const MAX_NAME_LEN: usize = 128;

    /// No blocks, the default deadlines.
    pub fn new() -> Self {
        RuntimeConfig {
            process: Value::Null,
            blocks: Vec::new(),
            finish_timeout: RuntimeConfig::DEFAULT_FINISH_TIMEOUT,
            heartbeat: RuntimeConfig::DEFAULT_HEARTBEAT,
        }
    }

    /// Sets the process's own configuration: settings every block may read
    /// in its `init` through [`InitContext::process`](crate::block::InitContext::process)
    /// (a database URL, the process's name, limits), beside each block's own
    /// part. In a file it is the top-level `process` value.
    #[must_use]
    pub fn with_process(mut self, process: impl Into<Value>) -> Self {
        self.process = process.into();
        self
    }

    /// Appends a block: it is initialised after the ones before it and
    /// finished before them.
    #[must_use]
    pub fn with_block(mut self, block: BlockConfig) -> Self {
        self.blocks.push(block);
        self
    }

    /// Sets how long each block may take to finish, when the runtime
    /// closes or finishes it early: its queued events, its `finish`, the
    /// end of its `run` and of its helper threads. The runtime's
    /// [`close`](crate::block::Runtime::close) takes at most this once per
    /// block, plus once for the monitor. The recommended setting is the
    /// default, 5 s; a block that takes longer is reported as an
    /// [`Error::Timeout`] and left behind, and the others are finished.
    #[must_use]
    pub fn with_finish_timeout(mut self, timeout: Duration) -> Self {
        self.finish_timeout = timeout;
        self
    }

    /// Sets how often the monitor checks a connected dependency, and tries
    /// to connect a disconnected one. The default is 1 s. A dependency that
    /// can wake the monitor (one over a
    /// [`ConnectionWaiter`](crate::ConnectionWaiter)) is seen connecting at
    /// once whatever this is.
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// The process's own configuration; `Value::Null` when none was given.
    pub fn process(&self) -> &Value {
        &self.process
    }

    /// The blocks, in init order.
    pub fn blocks(&self) -> &[BlockConfig] {
        &self.blocks
    }

    /// The finish deadline per block.
    pub fn finish_timeout(&self) -> Duration {
        self.finish_timeout
    }

    /// The monitor's heartbeat.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Checks the configuration. [`Runtime::start`](crate::block::Runtime::start)
    /// and [`init_blocks`](crate::block::init_blocks) call this.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field: an empty name or
    /// responsibility, one longer than [`MAX_NAME_LEN`](Self::MAX_NAME_LEN)
    /// or with control characters, a responsibility used twice, a zero
    /// finish timeout or heartbeat.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for (i, block) in self.blocks.iter().enumerate() {
            block.validate_as(&format!("blocks[{i}]"))?;
            let resp = block.responsibility();
            if !seen.insert(resp) {
                return Err(Error::invalid(
                    format!("blocks[{i}].responsibility"),
                    format!("responsibility `{resp}` is used by an earlier block; responsibilities are unique"),
                ));
            }
        }
        if self.finish_timeout < Duration::from_millis(1) {
            return Err(Error::invalid("finish_timeout", "must be at least 1 ms"));
        }
        if self.heartbeat < Duration::from_millis(1) {
            return Err(Error::invalid("heartbeat", "must be at least 1 ms"));
        }
        Ok(())
    }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.len() > RuntimeConfig::MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "is at most {} bytes, {:?} has {}",
                RuntimeConfig::MAX_NAME_LEN,
                name,
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{name:?} contains control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_json_with_defaults() {
        let config: RuntimeConfig = serde_json::from_str(
            r#"{"blocks": [{"name": "finisher"}, {"name": "reader", "responsibility": "r1", "config": {"port": 1}}]}"#,
        )
        .unwrap();
        assert_eq!(config.blocks().len(), 2);
        assert_eq!(config.blocks()[0].responsibility(), "finisher");
        assert_eq!(config.blocks()[1].responsibility(), "r1");
        assert_eq!(
            config.blocks()[1].config().get("port"),
            Some(&Value::Int(1))
        );
        assert_eq!(
            config.finish_timeout(),
            RuntimeConfig::DEFAULT_FINISH_TIMEOUT
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn durations_are_milliseconds_in_files_and_unknown_fields_are_refused() {
        let config = RuntimeConfig::new()
            .with_block(BlockConfig::new("a"))
            .with_finish_timeout(Duration::from_millis(1500))
            .with_heartbeat(Duration::from_millis(20));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["finish_timeout_ms"], 1500);
        assert_eq!(json["heartbeat_ms"], 20);
        let back: RuntimeConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
        for typo in [
            r#"{"finish_timeout": 10}"#,
            r#"{"blocks": [{"name": "a", "responsibilty": "b"}]}"#,
        ] {
            let err = serde_json::from_str::<RuntimeConfig>(typo).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{typo}: {err}");
        }
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let dup = RuntimeConfig::new()
            .with_block(BlockConfig::new("a"))
            .with_block(BlockConfig::new("b").with_responsibility("a"));
        match dup.validate() {
            Err(Error::InvalidArgument { name, .. }) => {
                assert_eq!(name, "blocks[1].responsibility");
            }
            other => panic!("{other:?}"),
        }
        let empty = RuntimeConfig::new().with_block(BlockConfig::new(""));
        assert!(
            matches!(empty.validate(), Err(Error::InvalidArgument { name, .. }) if name == "blocks[0].name")
        );
        let zero = RuntimeConfig::new().with_finish_timeout(Duration::ZERO);
        assert!(
            matches!(zero.validate(), Err(Error::InvalidArgument { name, .. }) if name == "finish_timeout")
        );
        let zero = RuntimeConfig::new().with_heartbeat(Duration::from_micros(999));
        assert!(
            matches!(zero.validate(), Err(Error::InvalidArgument { name, .. }) if name == "heartbeat")
        );
        let control = RuntimeConfig::new().with_block(BlockConfig::new("a\nb"));
        assert!(control.validate().is_err());
    }
}
