//! Frames: a 4-byte big-endian length, then that many bytes of `MessagePack`.
//!
//! Both ends of a connection read with [`read_frame`] and write through one
//! [`FrameWriter`], so the server and the client frame bytes the same way
//! and no second copy of the writing rules exists.
//!
//! [`read_frame`] refuses a length over the limit before reading the body,
//! and grows its buffer only as the body's bytes arrive: a peer that
//! announces a large frame and sends nothing more costs a few KiB, not the
//! announced length, and a buffer that once held a large frame is shrunk
//! before the next one. [`decode`] returns [`Error::Codec`] for random,
//! truncated or trailing bytes and never panics.

use std::io::{self, BufWriter, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::socket::Socket;
use crate::error::{Error, Result};
use crate::metrics::Count;
use crate::thread::lock;

/// The default largest frame: a 16 MiB message plus room for its envelope.
pub const DEFAULT_MAX_FRAME: usize = (16 << 20) + (64 << 10);

/// The largest body a length prefix can announce.
pub(super) const MAX_FRAME_LEN: usize = u32::MAX as usize;

/// Why a frame could not be read.
#[derive(Debug)]
pub(super) enum FrameError {
    /// The peer closed the connection cleanly, between frames.
    Eof,
    /// The socket failed, or closed in the middle of a frame.
    Io(io::Error),
    /// The socket's read timeout passed before the first byte of a frame:
    /// the peer is idle, and nothing of a frame was lost.
    Idle,
    /// The length prefix is over the limit.
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Eof => write!(f, "connection closed"),
            FrameError::Idle => write!(f, "no frame before the read timeout"),
            FrameError::Io(e) => write!(f, "connection failed: {e}"),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
        }
    }
}

/// The socket's error is the source, so it survives into
/// [`Error::Disconnected`].
impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// How much of a buffer is kept between frames; a larger one (left by a
/// large frame) is shrunk to this, so an idle connection holds little.
const KEPT_CAPACITY: usize = 64 << 10;

/// Reads one frame's body into `buf` (cleared first).
///
/// The buffer grows with the bytes received (to at most twice them), never
/// to the announced length up front.
///
/// # Errors
///
/// See [`FrameError`]: [`FrameError::Idle`] when the read timeout passed
/// before any byte of the frame; a timeout inside a frame is
/// [`FrameError::Io`].
pub(super) fn read_frame(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    buf.clear();
    if buf.capacity() > KEPT_CAPACITY {
        buf.shrink_to(KEPT_CAPACITY);
    }
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Eof),
            Ok(0) => {
                return Err(FrameError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a length prefix",
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 && is_timeout(&e) => return Err(FrameError::Idle),
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    // `read_to_end` grows the buffer as bytes arrive (doubling at most),
    // so the peer's bytes, not its announced length, decide its size.
    match r.by_ref().take(len as u64).read_to_end(buf) {
        Ok(n) if n == len => {}
        Ok(n) => {
            return Err(FrameError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed after {n} of a frame's {len} bytes"),
            )))
        }
        Err(e) => return Err(FrameError::Io(e)),
    }
    Ok(())
}

/// Whether `buffered` (bytes read ahead from a socket) holds a whole
/// frame, so that [`read_frame`] can return it without waiting.
pub(super) fn has_frame(buffered: &[u8]) -> bool {
    match buffered {
        [a, b, c, d, body @ ..] => body.len() >= u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => false,
    }
}

/// Whether `e` is a socket read timeout (`WouldBlock` on Unix, `TimedOut`
/// on Windows).
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Encodes `value` as one frame (length prefix included) into `out`.
///
/// # Errors
///
/// [`Error::Codec`] when it does not encode, or is over `max` bytes (or
/// over what a length prefix can say).
fn encode_frame<T: Serialize>(value: &T, out: &mut Vec<u8>, max: usize) -> Result<()> {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(out, value)?;
    let len = out.len() - 4;
    let max = max.min(MAX_FRAME_LEN);
    let prefix = u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or_else(|| {
            Error::codec_reason(
                "encode a frame",
                format!("{len} bytes is over the limit of {max} bytes"),
            )
        })?;
    out[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// The sending half of a connection, shared by every thread that writes to
/// it (the server's connection and feed threads; the client's callers,
/// subscribers and reader): one whole frame at a time, so frames never
/// interleave.
///
/// A write that fails, or times out, part way leaves the stream mid-frame:
/// nothing more may be written, so the writer shuts the socket down, which
/// also wakes the connection's reader.
pub(super) struct FrameWriter {
    out: Mutex<Out>,
    /// The same socket, for shutting it down without the lock.
    socket: Socket,
    /// The largest body this side may send.
    limit: usize,
    /// What a write failure says, e.g. "send to the queue server".
    what: &'static str,
    opened: Instant,
    /// When a frame last went out, in milliseconds since `opened`.
    last_write_ms: AtomicU64,
    /// Counts every frame written, when the owner wants them counted.
    frames: Option<Arc<Count>>,
}

struct Out {
    stream: BufWriter<Socket>,
    /// The encoding buffer, kept between frames.
    buf: Vec<u8>,
}

impl FrameWriter {
    /// A writer on `socket` sending bodies of at most `limit` bytes; a
    /// failed write is [`Error::Disconnected`] saying `what`.
    ///
    /// # Errors
    ///
    /// The OS's error when the socket cannot be cloned.
    pub(super) fn new(socket: &Socket, limit: usize, what: &'static str) -> io::Result<Self> {
        Ok(FrameWriter {
            out: Mutex::new(Out {
                stream: BufWriter::new(socket.try_clone()?),
                buf: Vec::new(),
            }),
            socket: socket.try_clone()?,
            limit,
            what,
            opened: Instant::now(),
            last_write_ms: AtomicU64::new(0),
            frames: None,
        })
    }

    /// The same writer counting every frame it writes in `frames` (the
    /// server's stats).
    #[must_use]
    pub(super) fn with_counter(mut self, frames: Arc<Count>) -> Self {
        self.frames = Some(frames);
        self
    }

    /// The same writer with another body limit (the client learns the
    /// server's in the handshake).
    #[must_use]
    pub(super) fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Encodes and writes one frame.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if it does not encode or is over the limit (nothing
    /// is written then); [`Error::Disconnected`] when the socket failed.
    pub(super) fn send<T: Serialize>(&self, value: &T) -> Result<()> {
        self.write(&mut lock(&self.out), value)
    }

    /// Encodes and writes several frames in order, with one flush (one
    /// system call for frames that fit the socket buffer).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send). A frame that does not encode is left out
    /// and its error returned after the others went out.
    pub(super) fn send_all<'a, T: Serialize + 'a>(
        &self,
        values: impl IntoIterator<Item = &'a T>,
    ) -> Result<()> {
        let mut out = lock(&self.out);
        let mut refused = Ok(());
        for value in values {
            match self.encode_into(&mut out, value) {
                Ok(()) => {}
                Err(e @ Error::Codec { .. }) => refused = refused.and(Err(e)),
                Err(e) => return Err(e),
            }
        }
        self.flush(&mut out)?;
        refused
    }

    /// As [`send`](Self::send), unless another thread is writing: then
    /// `None`, and nothing is sent.
    pub(super) fn try_send<T: Serialize>(&self, value: &T) -> Option<Result<()>> {
        let mut out = match self.out.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.write(&mut out, value))
    }

    /// Runs `first` with the writer locked, then, if it succeeded, writes
    /// `value` before anything else can be written.
    ///
    /// The lock is released before the result is returned, so dropping
    /// what `first` made (a feed, which joins a thread that may be waiting
    /// for this writer) cannot deadlock.
    ///
    /// # Errors
    ///
    /// `first`'s error (nothing is written then), or as [`send`](Self::send).
    pub(super) fn send_after<T: Serialize, V>(
        &self,
        value: &T,
        first: impl FnOnce() -> Result<V>,
    ) -> Result<V> {
        let mut out = lock(&self.out);
        let made = first()?;
        let written = self.write(&mut out, value);
        drop(out);
        written.map(|()| made)
    }

    /// How long since the last frame went out (since the writer was made,
    /// when none has).
    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_write_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Shuts both directions of the socket down, waking its reader.
    pub(super) fn disconnect(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    fn write<T: Serialize>(&self, out: &mut Out, value: &T) -> Result<()> {
        self.encode_into(out, value)?;
        self.flush(out)
    }

    /// Encodes one frame into the stream's buffer (which writes to the
    /// socket only when full).
    fn encode_into<T: Serialize>(&self, out: &mut Out, value: &T) -> Result<()> {
        let Out { stream, buf } = out;
        encode_frame(value, buf, self.limit)?;
        stream.write_all(buf).map_err(|e| self.failed(e))?;
        if let Some(frames) = &self.frames {
            frames.add(1);
        }
        Ok(())
    }

    fn flush(&self, out: &mut Out) -> Result<()> {
        out.stream.flush().map_err(|e| self.failed(e))?;
        let now = crate::millis::to_ms(self.opened.elapsed());
        self.last_write_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// A write that failed left the stream mid-frame: nothing more may go
    /// out on it.
    fn failed(&self, e: io::Error) -> Error {
        self.disconnect();
        Error::disconnected(self.what, e)
    }
}

/// Decodes exactly one `T` from a frame's body.
///
/// # Errors
///
/// [`Error::Codec`] for random, truncated or trailing bytes.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = rmp_serde::Deserializer::new(io::Cursor::new(bytes));
    let value = T::deserialize(&mut de).map_err(|e| Error::codec("decode a frame", e))?;
    let read = de.position();
    if read != bytes.len() as u64 {
        return Err(Error::codec_reason(
            "decode a frame",
            format!(
                "{} trailing bytes after the value",
                bytes.len() as u64 - read
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_limits_hold() {
        let mut out = Vec::new();
        encode_frame(&("hi", 3u8), &mut out, 100).unwrap();
        let mut buf = Vec::new();
        read_frame(&mut &out[..], &mut buf, 100).unwrap();
        assert_eq!(decode::<(String, u8)>(&buf).unwrap(), ("hi".to_string(), 3));
        assert!(matches!(
            read_frame(&mut &out[..], &mut buf, 2),
            Err(FrameError::TooLarge { max: 2, .. })
        ));
        assert!(matches!(
            read_frame(&mut &[][..], &mut buf, 2),
            Err(FrameError::Eof)
        ));
        assert!(matches!(
            read_frame(&mut &out[..6], &mut buf, 100),
            Err(FrameError::Io(_))
        ));
        assert!(encode_frame(&vec![0u8; 50], &mut out, 10).is_err());
        assert!(decode::<(String, u8)>(&buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn an_announced_length_allocates_nothing_and_a_large_buffer_shrinks() {
        let mut buf = Vec::new();
        let mut bytes = (16u32 << 20).to_be_bytes().to_vec();
        bytes.push(1);
        assert!(matches!(
            read_frame(&mut &bytes[..], &mut buf, usize::MAX),
            Err(FrameError::Io(_))
        ));
        assert!(buf.capacity() < 4096, "{}", buf.capacity());

        let mut big = Vec::new();
        encode_frame(&vec![7u8; 1 << 20], &mut big, usize::MAX).unwrap();
        read_frame(&mut &big[..], &mut buf, usize::MAX).unwrap();
        let mut small = Vec::new();
        encode_frame(&1u8, &mut small, 100).unwrap();
        read_frame(&mut &small[..], &mut buf, 100).unwrap();
        assert!(buf.capacity() <= KEPT_CAPACITY, "{}", buf.capacity());
    }

    #[test]
    fn the_writer_sends_whole_frames_and_refuses_one_over_its_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket =
            Socket::Tcp(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let (mut peer, _) = listener.accept().unwrap();
        let writer = FrameWriter::new(&socket, 64, "send to the test peer").unwrap();
        assert!(matches!(
            writer.send(&vec![0u8; 100]),
            Err(Error::Codec { .. })
        ));
        // Another thread writing (here: the lock held by send_after) makes
        // try_send give up instead of waiting.
        let inside = writer.send_after(&"second", || Ok(writer.try_send(&"never").is_none()));
        assert!(inside.unwrap());
        writer.send(&"third").unwrap();
        let mut buf = Vec::new();
        for want in ["second", "third"] {
            read_frame(&mut peer, &mut buf, 64).unwrap();
            assert_eq!(decode::<String>(&buf).unwrap(), want);
        }
        // Nothing of the refused frames went out.
        writer.disconnect();
        assert!(matches!(
            read_frame(&mut peer, &mut buf, 64),
            Err(FrameError::Eof)
        ));
        assert!(matches!(
            writer.send(&"after"),
            Err(Error::Disconnected { .. })
        ));
    }
}
