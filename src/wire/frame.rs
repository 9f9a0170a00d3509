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
//! | `CHUNK` | pool → worker | task index `u32`, item count `u32`, the items' bincode arguments back to back, then each item's length as `u32` |
//! | `OK` | worker → pool | seq `u64`, run time in ns `u64`, bincode result; for a `CHUNK`, per item: `ITEM_OK`/`ITEM_PANIC`/`ITEM_FAILED`, length `u32`, bincode result / panic report / text |
//! | `PANIC` | worker → pool | seq `u64`, bincode `(message, location)` |
//! | `FAILED` | worker → pool | seq `u64`, UTF-8 text: the worker could not run the task |
//! | `SKIPPED` | worker → pool | seq `u64`: cancelled before it started |
//!
//! Responses come back in request order (a worker runs one task at a time).
//! Requests are numbered from 1 in the order a worker receives them; that
//! number (`seq`) is what the control socket's cancel messages name, and
//! every answer repeats it, so an answer that is not the one due (a frame a
//! task wrote to its own socket) is a protocol error instead of a result
//! handed to the wrong caller.
//!
//! Integers are little-endian and fixed-width, so the hot path parses them
//! without bincode.

use std::io::{self, Read};

use crate::codec;
use crate::error::Error;

/// Bumped whenever the format above changes.
pub(crate) const PROTOCOL_VERSION: u32 = 2;
pub(crate) const HEADER_LEN: usize = 8;
/// Room reserved at once for an incoming frame before its bytes arrive: a
/// length is only a claim, so beyond this the buffer grows with the bytes.
pub(crate) const RESERVE_AHEAD: usize = 64 << 20;
const MAGIC: &[u8; 8] = b"procpool";

pub(crate) const HELLO: u8 = 0x10;
pub(crate) const REQUEST: u8 = 0x01;
pub(crate) const OK: u8 = 0x02;
pub(crate) const PANIC: u8 = 0x03;
pub(crate) const FAILED: u8 = 0x04;
pub(crate) const SKIPPED: u8 = 0x05;
pub(crate) const CHUNK: u8 = 0x06;

/// Per-item outcomes inside the answer to a `CHUNK`.
pub(crate) const ITEM_OK: u8 = 0;
pub(crate) const ITEM_PANIC: u8 = 1;
pub(crate) const ITEM_FAILED: u8 = 2;

/// Offset of the arguments in a request frame, header included.
#[cfg(test)]
const REQUEST_ARGS_AT: usize = HEADER_LEN + 1 + 4;
/// Offset of the run time in an `OK` body (after its kind and seq).
const OK_NANOS_AT: usize = 1 + 8;
/// Offset of the result in an `OK` body.
pub(crate) const OK_PAYLOAD_AT: usize = OK_NANOS_AT + 8;

/// Starts a frame in `out`: a placeholder length, then `kind`.
/// [`finish`] fills in the length once the body is written.
pub(crate) fn start(out: &mut Vec<u8>, kind: u8) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(kind);
}

/// Starts an answer to request `seq` in `out`: every answer names the
/// request it answers, so one that does not match the request due is caught
/// (a task writing frames to its own socket could otherwise shift every
/// later answer by one).
pub(crate) fn start_answer(out: &mut Vec<u8>, kind: u8, seq: u64) {
    start(out, kind);
    out.extend_from_slice(&seq.to_le_bytes());
}

/// Fills in the run time of an `OK` answer begun with [`start_answer`] and
/// a zeroed run time.
pub(crate) fn set_ok_nanos(out: &mut [u8], nanos: u64) {
    let at = HEADER_LEN + OK_NANOS_AT;
    out[at..at + 8].copy_from_slice(&nanos.to_le_bytes());
}

/// Writes the body length of the frame that [`start`] began.
pub(crate) fn finish(out: &mut [u8]) {
    let body_len = (out.len() - HEADER_LEN) as u64;
    out[..HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
}

/// The body length of a complete frame we built.
pub(crate) fn body_len_of(frame: &[u8]) -> u64 {
    (frame.len() - HEADER_LEN) as u64
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

/// Builds a `CHUNK` frame item by item: many small tasks in one frame.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    frame: Vec<u8>,
    lens: Vec<u32>,
}

/// Where a chunk's item count sits in its frame.
const CHUNK_COUNT_AT: usize = HEADER_LEN + 1 + 4;
/// Where a chunk's items start in its frame.
const CHUNK_ITEMS_AT: usize = CHUNK_COUNT_AT + 4;

impl ChunkBuilder {
    pub(crate) fn new(task_index: u32) -> ChunkBuilder {
        let mut frame = Vec::with_capacity(256);
        start(&mut frame, CHUNK);
        frame.extend_from_slice(&task_index.to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        ChunkBuilder {
            frame,
            lens: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Encoded bytes so far.
    pub(crate) fn bytes(&self) -> usize {
        // Each item also costs its 4-byte length at the end: zero-byte
        // arguments (`()`) must still fill a chunk.
        self.frame.len() + 4 * self.lens.len()
    }

    /// Appends one item's arguments; on an encode error nothing is appended.
    pub(crate) fn push<A: serde::Serialize>(&mut self, args: &A) -> Result<(), Error> {
        let before = self.frame.len();
        let encoded = codec::encode_into(args, &mut self.frame).and_then(|()| {
            u32::try_from(self.frame.len() - before).map_err(|_| {
                Error::new(crate::error::Repr::Encode {
                    ty: std::any::type_name::<A>(),
                    message: "over 4 GiB; submit values this large one at a time".into(),
                })
            })
        });
        match encoded {
            Ok(len) => {
                self.lens.push(len);
                Ok(())
            }
            Err(err) => {
                self.frame.truncate(before);
                Err(err)
            }
        }
    }

    /// Appends an item already encoded (taken from another chunk).
    pub(crate) fn push_encoded(&mut self, item: &[u8]) {
        self.frame.extend_from_slice(item);
        self.lens
            .push(u32::try_from(item.len()).expect("came from a chunk"));
    }

    /// The complete frame. The builder is left empty, ready for the next chunk.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let task: [u8; 4] = self.frame[HEADER_LEN + 1..CHUNK_COUNT_AT]
            .try_into()
            .expect("4 bytes");
        let count = u32::try_from(self.lens.len()).expect("fewer than 2^32 items");
        self.frame[CHUNK_COUNT_AT..CHUNK_ITEMS_AT].copy_from_slice(&count.to_le_bytes());
        for len in self.lens.drain(..) {
            self.frame.extend_from_slice(&len.to_le_bytes());
        }
        finish(&mut self.frame);
        let frame = std::mem::take(&mut self.frame);
        start(&mut self.frame, CHUNK);
        self.frame.extend_from_slice(&task);
        self.frame.extend_from_slice(&[0; 4]);
        frame
    }
}

/// The items of a complete `CHUNK` frame.
pub(crate) fn items_of_chunk_frame(frame: &[u8]) -> Result<Vec<&[u8]>, String> {
    chunk_items(
        frame
            .get(CHUNK_COUNT_AT..)
            .ok_or("a truncated chunk frame")?,
    )
}

/// The items of a `CHUNK` body, given from the count on (after its kind and
/// task index).
pub(crate) fn chunk_items(rest: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (count, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("a chunk without a count")?;
    let count = u32::from_le_bytes(*count) as usize;
    let lens_at = rest
        .len()
        .checked_sub(count.checked_mul(4).ok_or("absurd item count")?)
        .ok_or("a chunk shorter than its item count")?;
    let (mut items, lens) = rest.split_at(lens_at);
    let mut out = Vec::with_capacity(count);
    for len in lens.chunks_exact(4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if len > items.len() {
            return Err("a chunk item longer than the chunk".into());
        }
        let (item, tail) = items.split_at(len);
        out.push(item);
        items = tail;
    }
    if items.is_empty() {
        Ok(out)
    } else {
        Err("bytes left over after a chunk's items".into())
    }
}

/// One item's outcome in the answer to a `CHUNK`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChunkItem<'a> {
    pub(crate) tag: u8,
    pub(crate) bytes: &'a [u8],
}

/// Reads the next item outcome from a chunk answer at `*pos`.
pub(crate) fn next_chunk_item<'a>(
    payload: &'a [u8],
    pos: &mut usize,
) -> Result<ChunkItem<'a>, String> {
    let rest = payload.get(*pos..).unwrap_or_default();
    let [tag, a, b, c, d, rest @ ..] = rest else {
        return Err("a chunk answer with fewer items than were sent".into());
    };
    let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
    let bytes = rest
        .get(..len)
        .ok_or("a chunk answer item longer than the answer")?;
    *pos += 5 + len;
    Ok(ChunkItem { tag: *tag, bytes })
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
    /// Parses an answer body into the seq of the request it answers and
    /// what it says; `Err` describes garbage.
    pub(crate) fn parse(body: &'a [u8]) -> Result<(u64, Response<'a>), String> {
        let Some((&kind, after_kind)) = body.split_first() else {
            return Err("an empty frame".to_string());
        };
        let Some((seq, rest)) = after_kind.split_first_chunk::<8>() else {
            return Err(format!(
                "a frame of kind 0x{kind:02x} and {} bytes, too short for an answer",
                body.len()
            ));
        };
        let response = match kind {
            OK if rest.len() >= 8 => Response::Ok {
                nanos: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                payload_at: OK_PAYLOAD_AT,
            },
            PANIC => {
                let (message, location) = codec::decode::<(String, Option<String>)>(rest)
                    .map_err(|err| format!("unreadable panic report: {err}"))?;
                Response::Panic { message, location }
            }
            FAILED => std::str::from_utf8(rest)
                .map(Response::Failed)
                .map_err(|_| "a failure report that is not UTF-8".to_string())?,
            SKIPPED if rest.is_empty() => Response::Skipped,
            kind => {
                return Err(format!(
                    "a frame of unknown kind 0x{kind:02x} and {} bytes",
                    body.len()
                ));
            }
        };
        Ok((u64::from_le_bytes(*seq), response))
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
    body.clear();
    reserve_for(body, len)?;
    if len <= RESERVE_AHEAD {
        // The hot path: room is there already (`resize` zeroes only what the
        // buffer, reused between frames, has never held).
        body.resize(len, 0);
        reader.read_exact(body)?;
    } else {
        // Grows past the reservation only as bytes arrive.
        reader.take(len as u64).read_to_end(body)?;
        if body.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(true)
}

/// Reserves room for a frame body of `len` bytes, up to `RESERVE_AHEAD`:
/// a length is only a claim until the bytes arrive.
fn reserve_for(body: &mut Vec<u8>, len: usize) -> io::Result<()> {
    body.try_reserve(len.min(RESERVE_AHEAD))
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a frame"))
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
    let mut body = Vec::new();
    reserve_for(&mut body, len)?;
    reader.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
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
        let answer = |kind: u8, rest: &[u8]| {
            let mut out = Vec::new();
            start_answer(&mut out, kind, 7);
            out.extend_from_slice(rest);
            out[HEADER_LEN..].to_vec()
        };
        assert!(Response::parse(&[]).is_err());
        assert!(Response::parse(&[SKIPPED]).is_err(), "no seq");
        assert!(Response::parse(&answer(0x77, &[1, 2])).is_err());
        assert!(Response::parse(&answer(OK, &[1])).is_err(), "truncated OK");
        assert!(Response::parse(&answer(PANIC, &[0xFF, 0xFF])).is_err());
        assert!(Response::parse(&answer(FAILED, &[0xFF])).is_err());
        assert_eq!(
            Response::parse(&answer(SKIPPED, &[])),
            Ok((7, Response::Skipped))
        );
        let mut ok = Vec::new();
        start_answer(&mut ok, OK, 9);
        ok.extend_from_slice(&[0; 8]);
        set_ok_nanos(&mut ok, 1234);
        ok.push(42);
        assert_eq!(
            Response::parse(&ok[HEADER_LEN..]),
            Ok((
                9,
                Response::Ok {
                    nanos: 1234,
                    payload_at: OK_PAYLOAD_AT
                }
            ))
        );
        assert_eq!(ok[HEADER_LEN + OK_PAYLOAD_AT], 42);
    }

    #[test]
    fn chunk_frames_split_back_into_their_items() {
        let mut builder = ChunkBuilder::new(9);
        for item in [1u64, 300, 70_000] {
            builder.push(&item).unwrap();
        }
        assert_eq!(builder.len(), 3);
        let frame = builder.take();
        assert_eq!(builder.len(), 0, "ready for the next chunk");
        assert_eq!(frame[HEADER_LEN], CHUNK);
        assert_eq!(&frame[HEADER_LEN + 1..HEADER_LEN + 5], &9u32.to_le_bytes());
        let items = items_of_chunk_frame(&frame).unwrap();
        let values: Vec<u64> = items
            .iter()
            .map(|item| codec::decode(item).unwrap())
            .collect();
        assert_eq!(values, [1, 300, 70_000]);
        // A second chunk from the same builder is whole too.
        builder.push(&5u64).unwrap();
        let frame = builder.take();
        assert_eq!(items_of_chunk_frame(&frame).unwrap().len(), 1);
        assert!(chunk_items(&[9, 0, 0, 0, 1]).is_err());
        assert!(chunk_items(&[1, 0, 0, 0, 7, 7, 9, 0, 0, 0]).is_err());
    }

    #[test]
    fn chunk_answers_are_read_item_by_item() {
        let payload = [ITEM_OK, 1, 0, 0, 0, 42, ITEM_PANIC, 0, 0, 0, 0];
        let mut pos = 0;
        assert_eq!(
            next_chunk_item(&payload, &mut pos).unwrap(),
            ChunkItem {
                tag: ITEM_OK,
                bytes: &[42]
            }
        );
        assert_eq!(next_chunk_item(&payload, &mut pos).unwrap().tag, ITEM_PANIC);
        assert!(next_chunk_item(&payload, &mut pos).is_err());
        assert!(next_chunk_item(&[0, 9, 0, 0, 0, 1], &mut 0).is_err());
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
