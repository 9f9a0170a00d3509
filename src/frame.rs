//! The wire format shared by the pool and its workers.
//!
//! Every message is a frame: an 8-byte little-endian body length, then the
//! body. The length is a `u64`, so there is no 2 or 4 GiB cliff; a maximum
//! frame size (see [`PoolBuilder::max_frame_size`](crate::PoolBuilder::max_frame_size))
//! turns a huge or corrupt length into an error instead of an allocation.
//!
//! The first byte of a body says what it is:
//!
//! | kind | direction | rest of the body |
//! |---|---|---|
//! | `HELLO` | worker → pool, once | magic, protocol version `u32`, registry fingerprint `u64`, pid `u32` |
//! | `REQUEST` | pool → worker | task index `u32`, bincode arguments |
//! | `OK` | worker → pool | run time in ns `u64`, bincode result |
//! | `PANIC` | worker → pool | bincode `(message, location)` |
//! | `FAILED` | worker → pool | UTF-8 text: the worker could not run the task |
//! | `SKIPPED` | worker → pool | nothing: cancelled before it started |
//!
//! Responses come back in request order (a worker runs one task at a time), so
//! they carry no ids: the n-th response answers the n-th request. Requests are
//! numbered from 1 in the order a worker receives them; that number (`seq`) is
//! what the control socket's cancel messages name.
//!
//! Integers are little-endian and fixed-width, so the hot path parses them
//! without bincode.

use std::io::{self, Read};

use crate::codec;
use crate::error::Error;

/// Bumped whenever the format above changes.
pub(crate) const PROTOCOL_VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 8;
const MAGIC: &[u8; 8] = b"procpool";

pub(crate) const HELLO: u8 = 0x10;
pub(crate) const REQUEST: u8 = 0x01;
pub(crate) const OK: u8 = 0x02;
pub(crate) const PANIC: u8 = 0x03;
pub(crate) const FAILED: u8 = 0x04;
pub(crate) const SKIPPED: u8 = 0x05;

/// Offset of the arguments in a request frame, header included.
pub(crate) const REQUEST_ARGS_AT: usize = HEADER_LEN + 1 + 4;
/// Offset of the result in an `OK` body.
pub(crate) const OK_PAYLOAD_AT: usize = 1 + 8;

/// Starts a frame in `out`: a placeholder length, then `kind`.
/// [`finish`] fills in the length once the body is written.
pub(crate) fn start(out: &mut Vec<u8>, kind: u8) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(kind);
}

/// Writes the body length of the frame that [`start`] began.
pub(crate) fn finish(out: &mut [u8]) {
    let body_len = (out.len() - HEADER_LEN) as u64;
    out[..HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
}

/// Encodes a complete request frame: done once, at submit time.
pub(crate) fn request<A: serde::Serialize>(task_index: u32, args: &A) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    start(&mut out, REQUEST);
    out.extend_from_slice(&task_index.to_le_bytes());
    codec::encode_into(args, &mut out)?;
    finish(&mut out);
    Ok(out)
}

/// The identity a worker announces before it serves anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    pub(crate) fingerprint: u64,
    pub(crate) pid: u32,
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        start(&mut out, HELLO);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        finish(&mut out);
        out
    }

    /// Parses a hello body; `None` if it is not one.
    pub(crate) fn parse(body: &[u8]) -> Option<Hello> {
        let rest = body.strip_prefix(&[HELLO])?.strip_prefix(MAGIC)?;
        if rest.len() != 16 {
            return None;
        }
        Some(Hello {
            version: u32::from_le_bytes(rest[0..4].try_into().ok()?),
            fingerprint: u64::from_le_bytes(rest[4..12].try_into().ok()?),
            pid: u32::from_le_bytes(rest[12..16].try_into().ok()?),
        })
    }
}

/// A response body, parsed without copying.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Response<'a> {
    Ok {
        nanos: u64,
        payload_at: usize,
    },
    Panic {
        message: String,
        location: Option<String>,
    },
    Failed(&'a str),
    Skipped,
}

impl<'a> Response<'a> {
    /// Parses a response body; `Err` describes garbage.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Response<'a>, String> {
        match body.first() {
            Some(&OK) if body.len() >= OK_PAYLOAD_AT => Ok(Response::Ok {
                nanos: u64::from_le_bytes(body[1..9].try_into().expect("8 bytes")),
                payload_at: OK_PAYLOAD_AT,
            }),
            Some(&PANIC) => {
                let (message, location) = codec::decode::<(String, Option<String>)>(&body[1..])
                    .map_err(|err| format!("unreadable panic report: {err}"))?;
                Ok(Response::Panic { message, location })
            }
            Some(&FAILED) => std::str::from_utf8(&body[1..])
                .map(Response::Failed)
                .map_err(|_| "a failure report that is not UTF-8".to_string()),
            Some(&SKIPPED) if body.len() == 1 => Ok(Response::Skipped),
            Some(kind) => Err(format!(
                "a frame of unknown kind 0x{kind:02x} and {} bytes",
                body.len()
            )),
            None => Err("an empty frame".to_string()),
        }
    }
}

/// Reads the length prefix of a frame and checks it against `max`.
pub(crate) fn body_len(header: [u8; HEADER_LEN], max: u64) -> Result<usize, String> {
    let len = u64::from_le_bytes(header);
    if len > max {
        return Err(format!(
            "a frame of {len} bytes, over the maximum of {max} (raise it with \
             PoolBuilder::max_frame_size if values this large are intended)"
        ));
    }
    usize::try_from(len).map_err(|_| format!("a frame of {len} bytes, too large to address"))
}

/// Blocking read of one frame body into `body` (reused between calls).
/// `Ok(false)` on a clean end of stream before a frame starts.
pub(crate) fn read_blocking(
    reader: &mut impl Read,
    body: &mut Vec<u8>,
    max: u64,
) -> io::Result<bool> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(err) => return Err(err),
    }
    let len =
        body_len(header, max).map_err(|msg| io::Error::new(io::ErrorKind::InvalidData, msg))?;
    // `resize` zeroes only the part of the buffer that grows.
    body.resize(len, 0);
    reader.read_exact(body)?;
    Ok(true)
}

/// Async read of one whole frame body, for the handshake and for tests.
/// `Ok(None)` on a clean end of stream before a frame starts.
pub(crate) async fn read_async<R>(reader: &mut R, max: u64) -> io::Result<Option<Vec<u8>>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len =
        body_len(header, max).map_err(|msg| io::Error::new(io::ErrorKind::InvalidData, msg))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_strangers() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            fingerprint: 0xDEAD_BEEF,
            pid: 42,
        };
        let frame = hello.encode();
        assert_eq!(Hello::parse(&frame[HEADER_LEN..]), Some(hello));
        assert_eq!(Hello::parse(b"\x10notmagic0000000000000000"), None);
        assert_eq!(Hello::parse(&[]), None);
    }

    #[test]
    fn request_frames_carry_their_length() {
        let frame = request(7, &(1u64, "x".to_string())).unwrap();
        let len = u64::from_le_bytes(frame[..8].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - HEADER_LEN);
        assert_eq!(frame[HEADER_LEN], REQUEST);
        assert_eq!(&frame[9..13], &7u32.to_le_bytes());
        let args: (u64, String) = codec::decode(&frame[REQUEST_ARGS_AT..]).unwrap();
        assert_eq!(args, (1, "x".to_string()));
    }

    #[test]
    fn garbage_responses_are_described_not_trusted() {
        assert!(Response::parse(&[]).is_err());
        assert!(Response::parse(&[0x77, 1, 2]).is_err());
        assert!(Response::parse(&[OK, 1]).is_err(), "truncated OK");
        assert!(Response::parse(&[PANIC, 0xFF, 0xFF]).is_err());
        assert!(Response::parse(&[FAILED, 0xFF]).is_err());
        assert_eq!(Response::parse(&[SKIPPED]), Ok(Response::Skipped));
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocating() {
        let err = body_len(u64::MAX.to_le_bytes(), 1 << 20).unwrap_err();
        assert!(err.contains("maximum"), "{err}");
        assert_eq!(body_len(5u64.to_le_bytes(), 5), Ok(5));
    }

    #[tokio::test]
    async fn frames_cross_an_async_byte_stream() {
        use tokio::io::AsyncWriteExt;
        let (mut a, mut b) = tokio::io::duplex(64);
        let frame = request(1, &vec![9u8; 1000]).unwrap();
        let expect = frame[HEADER_LEN..].to_vec();
        let writer = tokio::spawn(async move {
            a.write_all(&frame).await.unwrap();
            a.write_all(&u64::MAX.to_le_bytes()).await.unwrap();
        });
        assert_eq!(read_async(&mut b, 1 << 20).await.unwrap(), Some(expect));
        let err = read_async(&mut b, 1 << 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        writer.await.unwrap();
        assert_eq!(read_async(&mut b, 1 << 20).await.unwrap(), None);
    }
}
