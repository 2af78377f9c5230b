//! Frames: a 4-byte big-endian length, then that many bytes of MessagePack.
//!
//! [`read_frame`] refuses a length over the limit before reading the body,
//! and grows its buffer only as the body's bytes arrive: a peer that
//! announces a large frame and sends nothing more costs a few KiB, not the
//! announced length, and a buffer that once held a large frame is shrunk
//! before the next one. [`decode`] returns [`Error::Codec`] for random,
//! truncated or trailing bytes and never panics.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The default largest frame: a 16 MiB message plus room for its envelope.
pub const DEFAULT_MAX_FRAME: usize = (16 << 20) + (64 << 10);

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
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
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> Result<(), FrameError> {
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

/// Whether `e` is a socket read timeout (`WouldBlock` on Unix, `TimedOut`
/// on Windows).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Encodes `value` as one frame (length prefix included) into `out`.
///
/// # Errors
///
/// [`Error::Codec`] when it does not encode, or is over `max` bytes.
pub fn encode_frame<T: Serialize>(value: &T, out: &mut Vec<u8>, max: usize) -> Result<()> {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(out, value)?;
    let len = out.len() - 4;
    if len > max {
        return Err(Error::codec_reason(
            "encode a frame",
            format!("{len} bytes is over the limit of {max} bytes"),
        ));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Writes one encoded frame and flushes.
///
/// # Errors
///
/// The socket's error.
pub fn write_encoded(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

/// Decodes exactly one `T` from a frame's body.
///
/// # Errors
///
/// [`Error::Codec`] for random, truncated or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
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
}
