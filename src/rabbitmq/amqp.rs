//! The edge between syncmq and amiquip: parsing an `amqp://` URL, opening a
//! named connection, turning amiquip's errors into ours, and mapping a
//! [`Message`] to AMQP properties and back.
//!
//! We open the TCP stream ourselves (instead of `Connection::insecure_open`)
//! for two reasons: the connection then carries a name (the `information`
//! client property, shown by `rabbitmqctl list_connections
//! client_properties` and the management UI), so an operator or a test can
//! find and close exactly one connection; the connect gets a timeout; and
//! an attempt can be cut short from another thread ([`Abort`]).
//!
//! # Message mapping
//!
//! | `Message`  | AMQP                                                      |
//! |------------|-----------------------------------------------------------|
//! | body       | body                                                      |
//! | key        | `message_id`                                              |
//! | headers    | headers, as long strings                                  |
//! | priority   | `priority` = 9 - min(priority, 9) (ours: 0 is the highest) |
//! | expiry     | header `x-syncmq-expires-at` (ms since the epoch), and `expiration` (ms left) when that fits AMQP's `u32` |
//! | persistent | `delivery_mode` 2                                         |
//!
//! Headers starting with `x-syncmq-` are ours and are removed again when a
//! delivery is turned back into a `Message`.

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use amiquip::{AmqpProperties, AmqpValue, Auth, ConnectionOptions, FieldTable};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::millis::to_ms;
use crate::rabbitmq::connection::tls::{self, TlsConnect};
use crate::thread::lock;

/// The header holding a message's absolute expiry, in ms since the epoch.
pub(crate) const EXPIRES_AT_HEADER: &str = "x-syncmq-expires-at";
/// The highest AMQP priority we map to.
pub(crate) const MAX_AMQP_PRIORITY: u8 = 9;

/// An AMQP URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmqpUrl {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    pub password: String,
    pub heartbeat: Option<u16>,
    /// `amqps://`: TLS (only with the `tls` feature).
    pub tls: bool,
}

impl AmqpUrl {
    /// `host:port`, as logs and [`Connection::current_address`] show it.
    ///
    /// [`Connection::current_address`]: crate::rabbitmq::Connection::current_address
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `amqp://user:pass@host:port/vhost?heartbeat=N` (or `amqps://`,
/// TLS, port 5671 by default, with the `tls` feature). Every part but the
/// scheme is optional: guest/guest at localhost:5672, vhost `/`.
pub(crate) fn parse_url(full: &str) -> Result<AmqpUrl> {
    // Errors show the URL without its password.
    let url = redacted(full);
    let url = url.as_str();
    let bad = |reason: String| Error::invalid("url", reason);
    let (rest, tls) = match full.split_once("://") {
        Some(("amqp", rest)) => (rest, false),
        #[cfg(feature = "tls")]
        Some(("amqps", rest)) => (rest, true),
        #[cfg(not(feature = "tls"))]
        Some(("amqps", _)) => {
            return Err(bad(
                "amqps:// needs TLS, and syncmq was built without the `tls` feature; \
                 enable it or use amqp://"
                    .into(),
            ))
        }
        _ => return Err(bad(format!("`{url}` is not an amqp://host URL"))),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, vhost) = match rest.split_once('/') {
        Some((a, v)) => (a, v),
        None => (rest, ""),
    };
    if vhost.contains('/') {
        return Err(bad(format!(
            "`{url}`: the vhost must be one path segment (write `/` as %2f)"
        )));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                percent_decode(user, user)?,
                percent_decode(pass, "the password")?,
            ),
            None => (percent_decode(u, u)?, "guest".to_string()),
        },
        None => ("guest".to_string(), "guest".to_string()),
    };
    if hostport.contains(',') {
        return Err(bad(format!(
            "`{url}` lists several hosts; give each broker a URL of its own: \
             ConnectionConfig::cluster([\"amqp://a\", \"amqp://b\"])"
        )));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad(format!("`{url}`: port `{p}` is not a number up to 65535")))?;
            (h, port)
        }
        _ => (hostport, if tls { 5671 } else { 5672 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "localhost" } else { host };
    let mut heartbeat = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("heartbeat", v)) => {
                heartbeat = Some(v.parse::<u16>().map_err(|_| {
                    bad(format!(
                        "`{url}`: heartbeat `{v}` is not a number of seconds"
                    ))
                })?);
            }
            _ => {
                return Err(bad(format!(
                    "`{url}`: unsupported query parameter `{pair}` (only heartbeat=SECONDS)"
                )))
            }
        }
    }
    Ok(AmqpUrl {
        host: host.to_string(),
        port,
        vhost: if vhost.is_empty() {
            "/".to_string()
        } else {
            percent_decode(vhost, vhost)?
        },
        username,
        password,
        heartbeat,
        tls,
    })
}

/// `url` with its password replaced by `***`, for errors and logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `s` with its `%XX` escapes decoded; errors name it as `shown`.
fn percent_decode(s: &str, shown: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::invalid("url", format!("bad percent escape in `{shown}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("url", format!("`{shown}` is not UTF-8")))
}

/// A way to cut a connect attempt short from another thread.
///
/// Neither a TCP connect nor amiquip's handshake watches a stop signal, and
/// the broker holds a refused handshake open for about 3 s. So the attempt
/// keeps a duplicate of its socket here, and [`abort`](Self::abort) shuts
/// that socket down: the connect's poll or the handshake's read then fails
/// at once, and the attempt's thread (and amiquip's I/O thread, which
/// amiquip joins when the handshake fails) ends and can be joined.
#[derive(Debug, Default)]
pub(crate) struct Abort {
    state: Mutex<AbortState>,
}

#[derive(Debug, Default)]
struct AbortState {
    aborted: bool,
    /// A duplicate of the socket of the attempt under way.
    socket: Option<Socket>,
}

impl Abort {
    /// Ends the attempt under way and any later one: shuts its socket down.
    pub(crate) fn abort(&self) {
        let mut state = lock(&self.state);
        state.aborted = true;
        if let Some(socket) = state.socket.take() {
            // Fails only when the socket is not connected yet and has no
            // peer; the attempt then fails on its own check below.
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Keeps a duplicate of `socket` for [`abort`](Self::abort).
    fn watch(&self, socket: &Socket) -> Result<()> {
        let mut state = lock(&self.state);
        if state.aborted {
            return Err(aborted());
        }
        state.socket = Some(
            socket
                .try_clone()
                .map_err(|e| Error::io("duplicate a socket", e))?,
        );
        Ok(())
    }

    /// Forgets the socket: from now on it belongs to the connection alone,
    /// and closes when amiquip closes it.
    fn unwatch(&self) {
        lock(&self.state).socket = None;
    }

    /// `Err` once aborted.
    fn check(&self) -> Result<()> {
        if lock(&self.state).aborted {
            Err(aborted())
        } else {
            Ok(())
        }
    }
}

fn aborted() -> Error {
    Error::closed("the connection (during a connect attempt)")
}

/// Forgets the watched socket however the attempt ends.
struct Unwatch<'a>(&'a Abort);

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        self.0.unwatch();
    }
}

/// Opens a connection named `name` with the given heartbeat (seconds; the
/// URL's `heartbeat` wins) and TCP connect timeout, which also bounds the
/// TLS and AMQP handshakes; over TLS with `tls` (built for an `amqps://`
/// URL). [`Abort::abort`] ends it at once from another thread, with
/// [`Error::Closed`]; only the name lookup cannot be cut short.
pub(crate) fn open(
    url: &AmqpUrl,
    name: &str,
    heartbeat: u16,
    connect_timeout: Duration,
    tls: Option<&TlsConnect>,
    abort: &Abort,
) -> Result<amiquip::Connection> {
    let target = format!("{}:{}", url.host, url.port);
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| Error::disconnected(format!("resolve {target}"), e))?;
    let _unwatch = Unwatch(abort);
    let mut last: Option<io::Error> = None;
    let mut stream = None;
    for addr in addrs {
        match connect(addr, connect_timeout, abort) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => {
                abort.check()?;
                last = Some(e);
            }
        }
    }
    // A connect that "succeeded" on a socket shut down by abort is no
    // connection.
    abort.check()?;
    let stream = stream.ok_or_else(|| match last {
        Some(e) => Error::disconnected(format!("connect to {target}"), e),
        None => Error::disconnected_reason(format!("connect to {target}"), "no address"),
    })?;
    let _ = stream.set_nodelay(true);
    let stream = mio::net::TcpStream::from_stream(stream)
        .map_err(|e| Error::io(format!("set up the socket to {target}"), e))?;
    let options = ConnectionOptions::<Auth>::default()
        .auth(Auth::Plain {
            username: url.username.clone(),
            password: url.password.clone(),
        })
        .virtual_host(url.vhost.clone())
        .heartbeat(url.heartbeat.unwrap_or(heartbeat))
        .connection_timeout(Some(connect_timeout))
        .information(Some(name.to_string()));
    let opened = tls::open_stream(tls, &url.host, stream, options, name);
    // An abort makes the handshake fail however it fails: say why.
    abort.check()?;
    opened.map_err(|e| {
        let domain = tls.map_or(url.host.as_str(), |tls| tls.domain(&url.host));
        if let Some(e) = tls::handshake_failure(&e, &target, domain) {
            return e;
        }
        match refusal(&e, url) {
            Some((code, reason)) => Error::refused(code, format!("{target}: {reason}")),
            None => broker(&format!("open an AMQP connection to {target}"), e),
        }
    })
}

/// A TCP connect to `addr` on a socket that `abort` can shut down while the
/// connect (and then the handshake) is under way.
fn connect(addr: SocketAddr, timeout: Duration, abort: &Abort) -> io::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    abort
        .watch(&socket)
        .map_err(|e| io::Error::new(io::ErrorKind::Interrupted, e.to_string()))?;
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

/// The reason, when `e` is a refusal no retry will change: credentials
/// (`ACCESS_REFUSED`, or amiquip's `InvalidCredentials` when the broker
/// just drops the socket) or the vhost (`NOT_ALLOWED`: unknown, or no
/// permission). A vhost's connection limit is also `NOT_ALLOWED`, but it
/// lifts when others disconnect, so it stays transient.
fn refusal(e: &amiquip::Error, url: &AmqpUrl) -> Option<(u16, String)> {
    match e {
        amiquip::Error::InvalidCredentials => Some((
            ACCESS_REFUSED,
            format!(
                "ACCESS_REFUSED: the credentials of user `{}` were not accepted",
                url.username
            ),
        )),
        amiquip::Error::ServerClosedConnection { code: 403, message } => Some((
            ACCESS_REFUSED,
            format!("ACCESS_REFUSED for user `{}`: {message}", url.username),
        )),
        amiquip::Error::ServerClosedConnection { code: 530, message }
            if !message.contains("limit") =>
        {
            Some((
                NOT_ALLOWED,
                format!(
                    "NOT_ALLOWED on vhost `{}` for user `{}`: {message}",
                    url.vhost, url.username
                ),
            ))
        }
        _ => None,
    }
}

/// AMQP reply code 403.
pub(crate) const ACCESS_REFUSED: u16 = 403;
/// AMQP reply code 312, of a mandatory publish that no queue took.
pub(crate) const NO_ROUTE: u16 = 312;
/// AMQP reply code 530.
pub(crate) const NOT_ALLOWED: u16 = 530;

/// Wraps an amiquip error with what we were doing (`context`). A channel
/// the broker closed with a reply code (a missing exchange or queue, no
/// permission) is [`Error::Refused`] with that code; everything else
/// (sockets, heartbeats, a connection the broker or we closed) is
/// [`Error::Disconnected`] keeping amiquip's error.
pub(crate) fn broker(context: &str, e: amiquip::Error) -> Error {
    match e {
        amiquip::Error::ServerClosedChannel { code, message, .. } => {
            Error::refused(code, format!("{context}: {message}"))
        }
        e => Error::disconnected(context, e),
    }
}

/// The AMQP properties for `message`.
pub(crate) fn properties(message: &Message, persistent: bool) -> AmqpProperties {
    let mut props = AmqpProperties::default()
        .with_priority(MAX_AMQP_PRIORITY - message.priority().min(MAX_AMQP_PRIORITY));
    if persistent {
        props = props.with_delivery_mode(2);
    }
    if let Some(key) = message.key() {
        props = props.with_message_id(key.to_string());
    }
    let mut headers = FieldTable::new();
    for (name, value) in message.headers() {
        headers.insert(name.clone(), AmqpValue::LongString(value.clone()));
    }
    if let Some(at) = message.expires_at() {
        let at_ms = unix_ms(at);
        headers.insert(
            EXPIRES_AT_HEADER.to_string(),
            AmqpValue::LongLongInt(i64::try_from(at_ms).unwrap_or(i64::MAX)),
        );
        let left = at_ms.saturating_sub(unix_ms(SystemTime::now()));
        if let Ok(left) = u32::try_from(left) {
            props = props.with_expiration(left.to_string());
        }
    }
    if !headers.is_empty() {
        props = props.with_headers(headers);
    }
    props
}

/// The broker's default `max_message_size` (`rabbit.max_message_size`):
/// the largest body it takes before it closes the channel.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 128 << 20;
/// The broker's default `frame_max`, which amiquip accepts as offered: a
/// message's properties travel in one frame, and a larger one makes the
/// broker close the whole connection (`frame_too_large`).
pub(crate) const DEFAULT_FRAME_MAX: usize = 128 << 10;
/// The longest AMQP short string (names, routing keys, `message_id`).
const MAX_SHORT_STRING: usize = 255;

/// Checks, before anything is sent, that the broker can take this publish
/// at all. Sending one it cannot take makes the broker close the channel
/// (every message in flight on it then loses its confirm and is resent)
/// or, for a malformed frame, the whole connection.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming what is too long: the body beyond
/// `max_message_size`, the properties beyond one frame, or a name, routing
/// key or key beyond an AMQP short string.
pub(crate) fn check_publishable(
    exchange: &str,
    routing_key: &str,
    message: &Message,
    max_message_size: usize,
) -> Result<()> {
    let short = |name: &str, value: &str| {
        if value.len() > MAX_SHORT_STRING {
            Err(Error::invalid(
                name,
                format!(
                    "{} bytes, AMQP allows at most {MAX_SHORT_STRING}",
                    value.len()
                ),
            ))
        } else {
            Ok(())
        }
    };
    short("exchange", exchange)?;
    short("routing_key", routing_key)?;
    if let Some(key) = message.key() {
        short("key (AMQP message_id)", key)?;
    }
    for name in message.headers().keys() {
        short("header name", name)?;
    }
    let body = message.body().len();
    if body > max_message_size {
        return Err(Error::invalid(
            "message",
            format!(
                "the body has {body} bytes, more than the broker's maximum message size \
                 of {max_message_size} (PublisherConfig::with_max_message_size; \
                 RabbitMQ's max_message_size)"
            ),
        ));
    }
    // Frame and content header overhead, our own headers and the other
    // properties: generously, so that the estimate is never below the
    // encoded size.
    let fixed = 256;
    let key = message.key().map_or(0, |k| 1 + k.len());
    let headers: usize = message
        .headers()
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 4 + value.len())
        .sum();
    let properties = fixed + key + headers;
    if properties > DEFAULT_FRAME_MAX {
        return Err(Error::invalid(
            "message",
            format!(
                "its key and headers need about {properties} bytes, more than one frame \
                 of {DEFAULT_FRAME_MAX} bytes (the broker's frame_max) can carry"
            ),
        ));
    }
    Ok(())
}

/// The header a stream puts on each delivery: the message's offset.
pub(crate) const STREAM_OFFSET_HEADER: &str = "x-stream-offset";

/// The offset of a delivery from a stream.
pub(crate) fn stream_offset_of(props: &AmqpProperties) -> Option<u64> {
    match props.headers().as_ref()?.get(STREAM_OFFSET_HEADER)? {
        AmqpValue::LongLongInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The message a delivery carries.
pub(crate) fn message_from(body: Vec<u8>, props: &AmqpProperties) -> Message {
    let mut message = Message::new(body);
    if let Some(p) = props.priority() {
        message = message.with_priority(MAX_AMQP_PRIORITY - (*p).min(MAX_AMQP_PRIORITY));
    }
    if let Some(key) = props.message_id() {
        message = message.with_key(key.clone());
    }
    if let Some(headers) = props.headers() {
        for (name, value) in headers {
            if name == EXPIRES_AT_HEADER {
                if let AmqpValue::LongLongInt(ms) = value {
                    let ms = u64::try_from(*ms).unwrap_or(0);
                    message = message.with_expiry(UNIX_EPOCH + Duration::from_millis(ms));
                }
            } else if !name.starts_with("x-syncmq-") {
                message = message.with_header(name.clone(), header_text(value));
            }
        }
    }
    message
}

/// A header's value as text: strings as they are, numbers and booleans
/// as written (the broker's `x-delivery-count` is `1`, not `LongLongInt(1)`),
/// tables and arrays (`x-death`) as `{name: value, ...}` and `[value, ...]`.
pub(crate) fn header_text(value: &AmqpValue) -> String {
    match value {
        AmqpValue::LongString(s) => s.clone(),
        AmqpValue::ByteArray(b) => String::from_utf8_lossy(b).into_owned(),
        AmqpValue::Boolean(b) => b.to_string(),
        AmqpValue::ShortShortUInt(n) => n.to_string(),
        AmqpValue::ShortUInt(n) => n.to_string(),
        AmqpValue::LongUInt(n) => n.to_string(),
        AmqpValue::ShortShortInt(n) => n.to_string(),
        AmqpValue::ShortInt(n) => n.to_string(),
        AmqpValue::LongInt(n) => n.to_string(),
        AmqpValue::LongLongInt(n) => n.to_string(),
        AmqpValue::Timestamp(n) => n.to_string(),
        AmqpValue::Float(n) => n.to_string(),
        AmqpValue::Double(n) => n.to_string(),
        AmqpValue::FieldTable(table) => {
            let fields: Vec<String> = table
                .iter()
                .map(|(name, value)| format!("{name}: {}", header_text(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        AmqpValue::FieldArray(values) => {
            let values: Vec<String> = values.iter().map(header_text).collect();
            format!("[{}]", values.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// `at` in whole milliseconds since the Unix epoch (0 before it).
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let u = parse_url("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("127.0.0.1", 5672, "/")
        );
        let u = parse_url("amqp://bob:p%40ss@broker/prod?heartbeat=4").unwrap();
        assert_eq!((u.username.as_str(), u.password.as_str()), ("bob", "p@ss"));
        assert_eq!(
            (u.port, u.vhost.as_str(), u.heartbeat),
            (5672, "prod", Some(4))
        );
        let u = parse_url("amqp://").unwrap();
        assert_eq!(
            (u.host.as_str(), u.username.as_str()),
            ("localhost", "guest")
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn amqps_urls_are_tls_on_5671_by_default() {
        let u = parse_url("amqps://guest:guest@localhost/%2f").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("localhost", 5671, true));
        let u = parse_url("amqps://broker:6671").unwrap();
        assert_eq!((u.port, u.tls), (6671, true));
        assert!(!parse_url("amqp://broker").unwrap().tls);
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (url, needle) in [
            ("http://x", "not an amqp"),
            #[cfg(not(feature = "tls"))]
            ("amqps://x", "without the `tls` feature"),
            ("amqp://x:99999", "port"),
            ("amqp://x/a/b", "one path segment"),
            ("amqp://x?frame_max=1", "unsupported"),
            ("amqp://x/%zz", "percent"),
        ] {
            match parse_url(url) {
                Err(Error::InvalidArgument { name, reason }) => {
                    assert_eq!(name, "url");
                    assert!(reason.contains(needle), "{url}: {reason}");
                }
                other => panic!("{url}: expected InvalidArgument, got {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_reach_an_error() {
        assert_eq!(
            redacted("amqp://bob:hunter2@broker:5672/prod?heartbeat=4"),
            "amqp://bob:***@broker:5672/prod?heartbeat=4"
        );
        assert_eq!(redacted("amqp://broker/x"), "amqp://broker/x");
        for url in ["amqp://bob:hunter2@broker:99999", "amqp://bob:hun%zzter2@b"] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("hun%zz"), "{e}");
        }
    }

    #[test]
    fn messages_map_to_properties_and_back() {
        let at = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let msg = Message::new(b"x".to_vec())
            .with_key("k")
            .with_header("h", "v")
            .with_priority(2)
            .with_expiry(at);
        let props = properties(&msg, true);
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(props.priority(), &Some(7));
        // Far beyond u32 milliseconds: only the header carries it.
        assert_eq!(props.expiration(), &None);
        assert_eq!(message_from(b"x".to_vec(), &props), msg);
        let mut broker_headers = FieldTable::new();
        broker_headers.insert("x-delivery-count".into(), AmqpValue::LongLongInt(2));
        broker_headers.insert("flag".into(), AmqpValue::Boolean(true));
        let delivered = message_from(
            vec![],
            &AmqpProperties::default().with_headers(broker_headers),
        );
        assert_eq!(delivered.header("x-delivery-count"), Some("2"));
        assert_eq!(delivered.header("flag"), Some("true"));

        let soon = Message::new(vec![]).with_ttl(Duration::from_secs(60));
        let props = properties(&soon, false);
        let left: u32 = props.expiration().as_ref().unwrap().parse().unwrap();
        assert!(left > 50_000 && left <= 60_000, "{left}");
        assert_eq!(props.delivery_mode(), &None);
    }

    #[test]
    fn what_the_broker_cannot_take_is_refused_naming_the_part() {
        let fine = Message::new(vec![0; 100])
            .with_key("k")
            .with_header("h", "v");
        check_publishable("ex", "rk", &fine, 100).unwrap();
        let refused = |exchange: &str, routing_key: &str, message: &Message, name: &str| {
            match check_publishable(exchange, routing_key, message, 100) {
                Err(Error::InvalidArgument { name: n, .. }) => assert_eq!(n, name),
                other => panic!("expected {name} refused, got {other:?}"),
            }
        };
        refused("ex", "rk", &Message::new(vec![0; 101]), "message");
        let long = "x".repeat(256);
        refused(&long, "rk", &fine, "exchange");
        refused("ex", &long, &fine, "routing_key");
        refused(
            "ex",
            "rk",
            &fine.clone().with_key(long.clone()),
            "key (AMQP message_id)",
        );
        refused(
            "ex",
            "rk",
            &fine.clone().with_header(long, "v"),
            "header name",
        );
        let huge_header = fine.with_header("big", "v".repeat(DEFAULT_FRAME_MAX));
        refused("ex", "rk", &huge_header, "message");
    }
}
