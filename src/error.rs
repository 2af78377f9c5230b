//! The one error type of the crate.
//!
//! Every fallible call in syncmq returns [`Result<T>`]. The variants say what
//! went wrong *and with what*: the argument that was out of range, the channel
//! name nobody created, the key whose stored bytes are corrupt. An error is
//! never a substitute for data: a call that fails hands back or keeps what it
//! was given, so bad input loses nothing.
//!
//! Errors from the libraries underneath (amiquip, fjall, rmp-serde) are turned
//! into text at the boundary, so this type does not change with their
//! versions and stays `Clone`, `Send` and `Sync`.

use std::fmt;
use std::time::Duration;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in syncmq.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument or configuration field was empty, out of range or
    /// malformed. `name` is the argument or field (for example `"instances"`
    /// or `"topics[1].priorities"`); `reason` says what was expected.
    InvalidArgument {
        /// The argument or configuration field at fault.
        name: String,
        /// What was wrong with it and what is accepted.
        reason: String,
    },
    /// No channel of this name was created with `new_channel`.
    UnknownChannel(String),
    /// A channel of this name already exists on the adapter.
    ChannelExists(String),
    /// The channel exists but its mode does not allow this operation, for
    /// example `input()` on an output-only channel.
    WrongMode {
        /// The channel asked for.
        channel: String,
        /// The channel's mode, as `Mode`'s `Display` prints it.
        mode: String,
        /// The operation that the mode forbids (`"input"` or `"output"`).
        operation: &'static str,
    },
    /// The object was closed: `what` names it (an adapter, a waiter, a queue).
    Closed(String),
    /// Waiting for `what` took longer than the caller allowed.
    Timeout {
        /// What the caller was waiting for.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// Bytes could not be encoded or decoded: random, truncated, or written
    /// in a format this build does not read.
    Codec(String),
    /// Stored bytes under `key` are corrupt. The store is not changed; the
    /// entry stays where it is for inspection.
    Corrupt {
        /// The store key whose value could not be read, printed readably
        /// (`<space>/<hex>`), a key range (`<space>/<hex>..<space>/<hex>`)
        /// when a scan met a damaged table block, or `file <path>` for a
        /// damaged file (a fjall journal).
        key: String,
        /// What was wrong with the bytes.
        reason: String,
    },
    /// The message broker refused, failed or went away.
    Broker(String),
    /// The broker refused us for good: it did not accept the credentials
    /// (`ACCESS_REFUSED`) or the virtual host (`NOT_ALLOWED`: unknown, or no
    /// permission). Retrying cannot help until the configuration or the
    /// broker's users change, so this is not transient.
    Refused(String),
    /// The broker refused `count` fire-and-retry publishes since they were
    /// last reported (a missing exchange, unroutable with `mandatory`):
    /// returned by `flush` and `close` of the RabbitMQ publisher, whose
    /// `refusals()` channel gives each message back.
    Rejected {
        /// How many publishes were refused.
        count: u64,
        /// Why the first of them was refused.
        first: String,
    },
    /// The storage engine (fjall, PostgreSQL, the file system) failed.
    Storage(String),
    /// A thread of ours, or code it ran for the caller, panicked. `what`
    /// names the thread or the handler; `message` is the panic's text.
    Panicked {
        /// The thread or handler that panicked.
        what: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// A block of the block runtime failed at one stage of its life cycle.
    Block {
        /// The block's responsibility (and kind, as `responsibility (kind)`).
        block: String,
        /// The stage: `init`, `run`, `finish`, `helper` or a callback's name.
        stage: &'static str,
        /// What went wrong.
        error: Box<Error>,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Timeout`].
    pub fn timeout(what: impl Into<String>, after: Duration) -> Self {
        Error::Timeout {
            what: what.into(),
            after,
        }
    }

    /// Shorthand for [`Error::Closed`].
    pub fn closed(what: impl Into<String>) -> Self {
        Error::Closed(what.into())
    }

    /// True for errors that may go away if the same call is made again later
    /// (a broker that went away, a timeout), false for errors that will
    /// repeat until the input or the program changes.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Broker(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { name, reason } => {
                write!(f, "invalid argument `{name}`: {reason}")
            }
            Error::UnknownChannel(name) => write!(
                f,
                "unknown channel `{name}`: create it with `new_channel` first"
            ),
            Error::ChannelExists(name) => write!(
                f,
                "channel `{name}` already exists: channel names are unique per adapter"
            ),
            Error::WrongMode {
                channel,
                mode,
                operation,
            } => write!(
                f,
                "channel `{channel}` has mode {mode}, which does not allow `{operation}()`"
            ),
            Error::Closed(what) => write!(f, "{what} is closed"),
            Error::Timeout { what, after } => {
                write!(f, "timed out after {after:?} waiting for {what}")
            }
            Error::Codec(reason) => write!(f, "codec error: {reason}"),
            Error::Corrupt { key, reason } => {
                write!(f, "corrupt stored value under key {key}: {reason}")
            }
            Error::Broker(reason) => write!(f, "broker error: {reason}"),
            Error::Refused(reason) => write!(f, "refused by the broker: {reason}"),
            Error::Rejected { count, first } => write!(
                f,
                "the broker refused {count} fire-and-retry publishes (the first: {first}); \
                 the publisher's refusals() channel has the messages"
            ),
            Error::Storage(reason) => write!(f, "storage error: {reason}"),
            Error::Panicked { what, message } => write!(f, "{what} panicked: {message}"),
            Error::Block {
                block,
                stage,
                error,
            } => write!(f, "block {block} failed in {stage}: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rmp_serde::encode::Error> for Error {
    fn from(e: rmp_serde::encode::Error) -> Self {
        Error::Codec(format!("could not encode: {e}"))
    }
}

impl From<rmp_serde::decode::Error> for Error {
    fn from(e: rmp_serde::decode::Error) -> Self {
        Error::Codec(format!("could not decode: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_went_wrong() {
        let e = Error::invalid("instances", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid argument `instances`: must be at least 1"
        );
        assert!(Error::UnknownChannel("orders".into())
            .to_string()
            .contains("`orders`"));
        let e = Error::WrongMode {
            channel: "orders".into(),
            mode: "Output".into(),
            operation: "input",
        };
        assert_eq!(
            e.to_string(),
            "channel `orders` has mode Output, which does not allow `input()`"
        );
    }

    #[test]
    fn transient_errors_are_told_apart() {
        assert!(Error::Broker("connection reset".into()).is_transient());
        assert!(Error::timeout("connection", Duration::from_secs(1)).is_transient());
        assert!(!Error::Codec("truncated".into()).is_transient());
        assert!(!Error::closed("adapter").is_transient());
        assert!(!Error::Refused("ACCESS_REFUSED".into()).is_transient());
    }
}
