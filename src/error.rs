//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause kept inside an [`Error`]: the library's own error, shared so
/// that `Error` stays `Clone`.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What [`Error::NotFound`] and [`Error::AlreadyExists`] are about.
///
/// An enum rather than a string so that a caller can match "no such topic"
/// without comparing text; `#[non_exhaustive]` so that a new kind of named
/// object is not a breaking change. `Display` prints the lower-case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A channel of an [`Adapter`](crate::Adapter).
    Channel,
    /// A topic of the durable queue.
    Topic,
    /// A subscriber of a topic of the durable queue.
    Subscriber,
    /// A RabbitMQ queue or a queue of the queue server.
    Queue,
}

impl ObjectKind {
    /// The lower-case word (`"channel"`, `"topic"`, ...), also the wire form
    /// of the queue server.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Channel => "channel",
            ObjectKind::Topic => "topic",
            ObjectKind::Subscriber => "subscriber",
            ObjectKind::Queue => "queue",
        }
    }

    /// The kind whose [`as_str`](Self::as_str) is `word`.
    pub fn from_word(word: &str) -> Option<Self> {
        [
            ObjectKind::Channel,
            ObjectKind::Topic,
            ObjectKind::Subscriber,
            ObjectKind::Queue,
        ]
        .into_iter()
        .find(|k| k.as_str() == word)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in syncmq.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm. [`is_transient`](Error::is_transient) says which are
/// worth retrying.
///
/// Every fallible call in syncmq returns [`Result<T>`]. The variants say what
/// went wrong *and with what*: the argument that was out of range, the topic
/// nobody declared, the key whose stored bytes are corrupt. An error is
/// never a substitute for data: a call that fails hands back or keeps what it
/// was given, so bad input loses nothing.
///
/// Errors from the libraries underneath (fjall, amiquip, postgres, `std::io`,
/// rmp-serde) are kept, not turned into text: [`Error::Io`],
/// [`Error::Storage`], [`Error::Codec`] and [`Error::Disconnected`] hold
/// them as a [`ErrorSource`] (an `Arc`, so `Error` stays `Clone`, `Send` and
/// `Sync`), [`std::error::Error::source`] returns them for downcasting, and
/// [`Error::sqlstate`] reads a PostgreSQL error's code. `Display` prints the
/// operation and the whole cause chain on one line, so `{e}` alone is enough
/// for a log line.
#[derive(Debug, Clone)]
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
    /// No channel, topic, subscriber or queue of this name exists.
    NotFound {
        /// What kind of object was looked up.
        kind: ObjectKind,
        /// The name looked up.
        name: String,
    },
    /// A channel, topic, subscriber or queue of this name already exists.
    AlreadyExists {
        /// What kind of object was to be created.
        kind: ObjectKind,
        /// The name already taken.
        name: String,
    },
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
    Codec {
        /// What was being encoded or decoded (`"decode a stored message"`).
        what: String,
        /// Why: rmp-serde's error, or the check that failed.
        source: ErrorSource,
    },
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
    /// The operating system refused: a socket, a file, stdin or stdout,
    /// signal registration, a new thread.
    Io {
        /// The operation and its object (`"start thread syncmq-commit"`).
        what: String,
        /// The `std::io::Error`.
        source: ErrorSource,
    },
    /// The storage engine (fjall, PostgreSQL) failed. A PostgreSQL error
    /// keeps its SQLSTATE: see [`Error::sqlstate`].
    Storage {
        /// The operation (`"postgres outbox: insert a row"`).
        what: String,
        /// fjall's or postgres' error (or the check that failed).
        source: ErrorSource,
    },
    /// The RabbitMQ broker or the queue server went away or could not be
    /// reached. Transient: the same call may succeed once it is back.
    Disconnected {
        /// The peer and what was being done (`"connect to 127.0.0.1:5672"`).
        what: String,
        /// The socket's, amiquip's or the frame reader's error.
        source: ErrorSource,
    },
    /// Nothing answered at `addr`: the connection was refused, timed out or
    /// found no route. Transient: the same call may succeed once the peer
    /// listens. Told apart from [`Disconnected`](Error::Disconnected) (a
    /// peer that answered and then went away) so that a person reads which
    /// address to check.
    Unreachable {
        /// What was to be reached (`"the queue server"`).
        what: String,
        /// The address tried.
        addr: String,
        /// The socket's error.
        source: ErrorSource,
    },
    /// The address to listen on is taken by another socket: another
    /// server, or an earlier one that has not let go of it yet.
    AddrInUse {
        /// The address, as given.
        addr: String,
    },
    /// A data directory is open in another process (or another time in
    /// this one): one process at a time may own a queue directory.
    DirectoryInUse {
        /// The directory.
        dir: PathBuf,
        /// The process that owns it, when it wrote its pid down (see
        /// [`FjallStore`](crate::queue::FjallStore)).
        pid: Option<u32>,
    },
    /// A bounded buffer, or the peer, cannot take more right now: the
    /// publisher's buffer is full of messages awaiting confirms, the broker
    /// blocks publishing (a resource alarm), the queue server is at its
    /// connection limit. Transient: retry once it drains.
    Busy {
        /// What is full (`"publisher buffer"`, `"queue server"`).
        what: String,
        /// How full, or the peer's reason.
        reason: String,
    },
    /// The broker or the queue server said no: a reply code and its text.
    /// For RabbitMQ `code` is the AMQP reply code (403 `ACCESS_REFUSED`,
    /// 404 `NOT_FOUND` for a missing exchange, 312 `NO_ROUTE` for an
    /// unroutable mandatory publish, 530 `NOT_ALLOWED`); a queue server's
    /// error reply of a kind this build does not know is code 0. Retrying
    /// cannot help until the configuration or the peer changes.
    Refused {
        /// The AMQP reply code, or 0 when the peer gave none.
        code: u16,
        /// The peer's reply text, with what was refused.
        text: String,
    },
    /// An ack, nack or reject of a delivery the connection that delivered it
    /// no longer carries (it reconnected since): the message is redelivered,
    /// nothing was sent to the broker.
    StaleDelivery {
        /// The delivery (tag and connection generation).
        what: String,
    },
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

/// A cause that is only text: a check of ours that failed, or an error that
/// crossed the queue server's wire.
#[derive(Debug, Clone)]
struct Reason(String);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reason {}

/// `e` as a [`ErrorSource`].
fn source(e: impl std::error::Error + Send + Sync + 'static) -> ErrorSource {
    Arc::new(e)
}

/// `text` as a [`ErrorSource`], for causes that are a check of ours (or text
/// from the queue server's wire).
pub(crate) fn reason(text: impl Into<String>) -> ErrorSource {
    Arc::new(Reason(text.into()))
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: ObjectKind, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// Shorthand for [`Error::AlreadyExists`].
    pub fn already_exists(kind: ObjectKind, name: impl Into<String>) -> Self {
        Error::AlreadyExists {
            kind,
            name: name.into(),
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

    /// [`Error::Io`] for `what` failing with `e`.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source: source(e),
        }
    }

    /// [`Error::Storage`] for `what` failing with the storage engine's `e`.
    pub fn storage(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            what: what.into(),
            source: source(e),
        }
    }

    /// [`Error::Storage`] for `what` failing a check of ours: `why` says which.
    pub fn storage_reason(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Storage {
            what: what.into(),
            source: reason(why),
        }
    }

    /// [`Error::Codec`] for encoding or decoding `what` failing with `e`.
    pub fn codec(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Codec {
            what: what.into(),
            source: source(e),
        }
    }

    /// [`Error::Codec`] for `what` failing a check of ours: `why` says which.
    pub fn codec_reason(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Codec {
            what: what.into(),
            source: reason(why),
        }
    }

    /// [`Error::Disconnected`] for `what` failing with `e`.
    pub fn disconnected(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Disconnected {
            what: what.into(),
            source: source(e),
        }
    }

    /// [`Error::Disconnected`] whose cause is only known as text: `why`.
    pub fn disconnected_reason(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Disconnected {
            what: what.into(),
            source: reason(why),
        }
    }

    /// [`Error::Unreachable`]: `what` at `addr` did not answer, with the
    /// socket's error `e`.
    pub fn unreachable(
        what: impl Into<String>,
        addr: impl Into<String>,
        e: std::io::Error,
    ) -> Self {
        Error::Unreachable {
            what: what.into(),
            addr: addr.into(),
            source: source(e),
        }
    }

    /// The error for a failed bind of `addr`: [`Error::AddrInUse`] when the
    /// address is taken, else [`Error::Io`] naming it.
    pub fn listen(addr: impl Into<String>, e: std::io::Error) -> Self {
        let addr = addr.into();
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::AddrInUse { addr }
        } else {
            Error::io(format!("listen on {addr}"), e)
        }
    }

    /// Shorthand for [`Error::Refused`].
    pub fn refused(code: u16, text: impl Into<String>) -> Self {
        Error::Refused {
            code,
            text: text.into(),
        }
    }

    /// True for errors that may go away if the same call is made again later
    /// (the peer went away, a timeout), false for errors that will repeat
    /// until the input, the configuration or the program changes. A
    /// [`Block`](Error::Block) error is transient when its cause is.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::Disconnected { .. }
            | Error::Unreachable { .. }
            | Error::Busy { .. } => true,
            Error::Block { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// The PostgreSQL SQLSTATE of the error's cause (`"23505"` for a unique
    /// violation), when the cause is a PostgreSQL error that has one; looked
    /// up through [`Block`](Error::Block) errors too.
    pub fn sqlstate(&self) -> Option<&str> {
        #[cfg(feature = "postgres")]
        {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = match self {
                Error::Block { error, .. } => return error.sqlstate(),
                other => std::error::Error::source(other),
            };
            while let Some(e) = cause {
                if let Some(pg) = e.downcast_ref::<postgres::Error>() {
                    return pg.code().map(postgres::error::SqlState::code);
                }
                cause = e.source();
            }
        }
        None
    }
}

/// `what: cause chain` of a variant with a source; `Display` would add the
/// variant's own prefix.
#[cfg(feature = "durable")]
struct CauseText<'a>(&'a str, &'a ErrorSource);

#[cfg(feature = "durable")]
impl fmt::Display for CauseText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.0)?;
        write_chain(f, self.1.as_ref())
    }
}

impl Error {
    /// The error's text without the variant's prefix (`fjall: write
    /// batch: ...` rather than `storage error: fjall: ...`), for the queue
    /// server's wire, which names the variant on its own.
    #[cfg(feature = "durable")]
    pub(crate) fn cause_text(&self) -> String {
        match self {
            Error::Codec { what, source }
            | Error::Io { what, source }
            | Error::Storage { what, source }
            | Error::Disconnected { what, source } => CauseText(what, source).to_string(),
            other => other.to_string(),
        }
    }
}

/// Writes `cause` and its own causes, `: `-separated, skipping a cause whose
/// text the one before it already printed (many libraries include it).
fn write_chain(
    f: &mut fmt::Formatter<'_>,
    cause: &(dyn std::error::Error + 'static),
) -> fmt::Result {
    let mut printed = cause.to_string();
    f.write_str(&printed)?;
    let mut next = cause.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !printed.contains(&text) {
            write!(f, ": {text}")?;
        }
        printed = text;
        next = e.source();
    }
    Ok(())
}

/// A socket's error as a person says it: `connection refused` rather
/// than the OS's `Connection refused (os error 111)`; other causes as
/// [`write_chain`] prints them.
fn write_socket_error(
    f: &mut fmt::Formatter<'_>,
    cause: &(dyn std::error::Error + 'static),
) -> fmt::Result {
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.raw_os_error().is_some() => {
            let text = io.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            if let Some(first) = chars.next() {
                write!(f, "{}", first.to_lowercase())?;
            }
            f.write_str(chars.as_str())
        }
        _ => write_chain(f, cause),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { name, reason } => {
                write!(f, "invalid argument `{name}`: {reason}")
            }
            Error::NotFound { kind, name } => write!(f, "no {kind} named `{name}`"),
            Error::AlreadyExists { kind, name } => write!(f, "{kind} `{name}` already exists"),
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
            Error::Codec { what, source } => {
                write!(f, "codec error: {what}: ")?;
                write_chain(f, source.as_ref())
            }
            Error::Corrupt { key, reason } => {
                write!(f, "corrupt stored value under key {key}: {reason}")
            }
            Error::Io { what, source } => {
                write!(f, "I/O error: {what}: ")?;
                write_chain(f, source.as_ref())
            }
            Error::Storage { what, source } => {
                write!(f, "storage error: {what}: ")?;
                write_chain(f, source.as_ref())
            }
            Error::Disconnected { what, source } => {
                write!(f, "disconnected: {what}: ")?;
                write_chain(f, source.as_ref())
            }
            Error::Unreachable { what, addr, source } => {
                write!(f, "cannot reach {what} at {addr}: ")?;
                write_socket_error(f, source.as_ref())
            }
            Error::AddrInUse { addr } => write!(f, "address {addr} is already in use"),
            Error::DirectoryInUse { dir, pid } => {
                write!(
                    f,
                    "data directory {} is in use by another process",
                    dir.display()
                )?;
                match pid {
                    Some(pid) => write!(f, " (pid {pid})"),
                    None => write!(f, " (its pid is not known)"),
                }
            }
            Error::Busy { what, reason } => write!(f, "{what} is busy: {reason}"),
            Error::Refused { code, text } => write!(f, "refused ({code}): {text}"),
            Error::StaleDelivery { what } => write!(
                f,
                "stale delivery {what}: its connection is gone, the broker redelivers it"
            ),
            Error::Rejected { count, first } => write!(
                f,
                "the broker refused {count} fire-and-retry publishes (the first: {first}); \
                 the publisher's refusals() channel has the messages"
            ),
            Error::Panicked { what, message } => write!(f, "{what} panicked: {message}"),
            Error::Block {
                block,
                stage,
                error,
            } => write!(f, "block {block} failed in {stage}: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Codec { source, .. }
            | Error::Io { source, .. }
            | Error::Storage { source, .. }
            | Error::Disconnected { source, .. }
            | Error::Unreachable { source, .. } => Some(source.as_ref()),
            Error::Block { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl From<rmp_serde::encode::Error> for Error {
    fn from(e: rmp_serde::encode::Error) -> Self {
        Error::codec("encode MessagePack", e)
    }
}

impl From<rmp_serde::decode::Error> for Error {
    fn from(e: rmp_serde::decode::Error) -> Self {
        Error::codec("decode MessagePack", e)
    }
}

/// So that `?` works on fjall calls inside
/// [`Outbox::add_within_tx`](crate::outbox::Outbox::add_within_tx).
#[cfg(feature = "durable")]
impl From<fjall::Error> for Error {
    fn from(e: fjall::Error) -> Self {
        Error::storage("fjall", e)
    }
}

/// So that `?` works on PostgreSQL calls inside
/// [`Outbox::add_within_tx`](crate::outbox::Outbox::add_within_tx); the SQLSTATE
/// stays readable through [`Error::sqlstate`].
#[cfg(feature = "postgres")]
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::storage("postgres", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn io_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn messages_name_what_went_wrong() {
        let e = Error::invalid("instances", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid argument `instances`: must be at least 1"
        );
        assert_eq!(
            Error::not_found(ObjectKind::Topic, "orders").to_string(),
            "no topic named `orders`"
        );
        assert_eq!(
            Error::already_exists(ObjectKind::Channel, "orders").to_string(),
            "channel `orders` already exists"
        );
        let e = Error::WrongMode {
            channel: "orders".into(),
            mode: "Output".into(),
            operation: "input",
        };
        assert_eq!(
            e.to_string(),
            "channel `orders` has mode Output, which does not allow `input()`"
        );
        assert_eq!(
            Error::io("start thread x", io_error()).to_string(),
            "I/O error: start thread x: connection refused"
        );
        assert_eq!(
            Error::refused(403, "ACCESS_REFUSED").to_string(),
            "refused (403): ACCESS_REFUSED"
        );
    }

    #[test]
    fn addresses_and_directories_are_named_as_a_person_would() {
        let os_refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let e = Error::unreachable("the queue server", "127.0.0.1:1", os_refused);
        assert_eq!(
            e.to_string(),
            "cannot reach the queue server at 127.0.0.1:1: connection refused"
        );
        assert!(e.is_transient());
        assert!(e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused));
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert_eq!(
            Error::listen("127.0.0.1:7450", in_use).to_string(),
            "address 127.0.0.1:7450 is already in use"
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(
            Error::listen("0.0.0.0:80", denied),
            Error::Io { ref what, .. } if what == "listen on 0.0.0.0:80"
        ));
        let dir = PathBuf::from("/srv/queue");
        let known = Error::DirectoryInUse {
            dir: dir.clone(),
            pid: Some(42),
        };
        assert_eq!(
            known.to_string(),
            "data directory /srv/queue is in use by another process (pid 42)"
        );
        let unknown = Error::DirectoryInUse { dir, pid: None };
        assert!(unknown.to_string().ends_with("(its pid is not known)"));
    }

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let e = Error::io("listen on 127.0.0.1:1", io_error());
        let cause = e.source().expect("a source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // Clone shares the cause.
        assert!(e.clone().source().is_some());
        let decode = rmp_serde::from_slice::<u32>(b"").unwrap_err();
        let e = Error::from(decode);
        assert!(e
            .source()
            .and_then(|s| s.downcast_ref::<rmp_serde::decode::Error>())
            .is_some());
        let inner = Error::disconnected("connect", io_error());
        let block = Error::Block {
            block: "b".into(),
            stage: "run",
            error: Box::new(inner),
        };
        assert!(block
            .source()
            .and_then(|s| s.downcast_ref::<Error>())
            .is_some());
        assert!(Error::closed("x").source().is_none());
    }

    #[test]
    fn display_prints_the_cause_chain_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::storage("insert a row", Outer(io_error()));
        assert_eq!(
            e.to_string(),
            "storage error: insert a row: db error: connection refused"
        );
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let transient = [
            Error::timeout("connection", Duration::from_secs(1)),
            Error::disconnected("connect to 127.0.0.1:1", io_error()),
            Error::disconnected_reason("server", "closed the connection"),
            Error::unreachable("the queue server", "127.0.0.1:1", io_error()),
            Error::Busy {
                what: "publisher buffer".into(),
                reason: "full".into(),
            },
            Error::Block {
                block: "b".into(),
                stage: "run",
                error: Box::new(Error::disconnected_reason("x", "gone")),
            },
        ];
        for e in transient {
            assert!(e.is_transient(), "{e}");
        }
        let lasting = [
            Error::invalid("instances", "must be at least 1"),
            Error::not_found(ObjectKind::Topic, "t"),
            Error::already_exists(ObjectKind::Channel, "c"),
            Error::WrongMode {
                channel: "c".into(),
                mode: "Output".into(),
                operation: "input",
            },
            Error::closed("adapter"),
            Error::codec_reason("decode a stored message", "truncated"),
            Error::Corrupt {
                key: "k".into(),
                reason: "r".into(),
            },
            Error::io("stdout", io_error()),
            Error::storage_reason("fjall", "disk full"),
            Error::refused(403, "ACCESS_REFUSED"),
            Error::AddrInUse {
                addr: "127.0.0.1:7450".into(),
            },
            Error::DirectoryInUse {
                dir: PathBuf::from("data"),
                pid: None,
            },
            Error::StaleDelivery {
                what: "tag 1".into(),
            },
            Error::Rejected {
                count: 1,
                first: "NOT_FOUND".into(),
            },
            Error::Panicked {
                what: "handler".into(),
                message: "boom".into(),
            },
            Error::Block {
                block: "b".into(),
                stage: "init",
                error: Box::new(Error::closed("x")),
            },
        ];
        for e in lasting {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn object_kinds_round_trip_their_word() {
        for k in [
            ObjectKind::Channel,
            ObjectKind::Topic,
            ObjectKind::Subscriber,
            ObjectKind::Queue,
        ] {
            assert_eq!(ObjectKind::from_word(k.as_str()), Some(k));
        }
        assert_eq!(ObjectKind::from_word("table"), None);
    }

    #[test]
    fn errors_are_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Error>();
    }
}
