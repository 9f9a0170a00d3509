//! Frames: the length prefix, the kind and id every body starts with, and
//! reading whole frames. The kinds and their payloads are listed in the
//! [module docs](super).

use std::io::{self, Read};

/// Bytes of the length prefix in front of every body.
pub(crate) const HEADER_LEN: usize = 8;
/// Bytes of every body before its payload: the kind and the id.
pub(crate) const PREFIX_LEN: usize = 1 + 8;
/// Room reserved at once for an incoming frame before its bytes arrive: a
/// length is only a claim, so beyond this the buffer grows with the bytes.
pub(crate) const RESERVE_AHEAD: usize = 64 << 20;

/// Bumped whenever the format in the module docs changes.
pub(crate) const PROTOCOL_VERSION: u32 = 9;

// Kinds, pool → worker.
pub(crate) const START: u8 = 0x20;
pub(crate) const REQUEST: u8 = 0x01;
pub(crate) const CHUNK: u8 = 0x06;
pub(crate) const CANCEL: u8 = 0x07;
pub(crate) const REPLY: u8 = 0x31;
pub(crate) const PING: u8 = 0x60;
// Kinds, worker → pool.
pub(crate) const HELLO: u8 = 0x10;
pub(crate) const OK: u8 = 0x02;
pub(crate) const PANIC: u8 = 0x03;
pub(crate) const FAILED: u8 = 0x04;
pub(crate) const SKIPPED: u8 = 0x05;
pub(crate) const TOO_LARGE: u8 = 0x08;
pub(crate) const CALL: u8 = 0x30;
pub(crate) const LOG: u8 = 0x50;
pub(crate) const PONG: u8 = 0x61;

/// Starts a frame of `kind` for `id` in `out` (cleared first), with a
/// placeholder length that [`end`] fills in once the payload is written.
pub(crate) fn begin(out: &mut Vec<u8>, kind: u8, id: u64) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
}

/// Writes the body length of the frame that [`begin`] started.
pub(crate) fn end(out: &mut [u8]) {
    let body_len = (out.len() - HEADER_LEN) as u64;
    out[..HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
}

/// A whole frame of `kind` for `id` with no payload.
pub(crate) fn empty(kind: u8, id: u64) -> [u8; HEADER_LEN + PREFIX_LEN] {
    let mut out = [0; HEADER_LEN + PREFIX_LEN];
    out[..HEADER_LEN].copy_from_slice(&(PREFIX_LEN as u64).to_le_bytes());
    out[HEADER_LEN] = kind;
    out[HEADER_LEN + 1..].copy_from_slice(&id.to_le_bytes());
    out
}

/// Readdresses a complete frame to `id` (a request encoded once at submit
/// time gets its id when a worker is chosen, and a new one if it is sent
/// to another).
pub(crate) fn set_id(frame: &mut [u8], id: u64) {
    frame[HEADER_LEN + 1..HEADER_LEN + PREFIX_LEN].copy_from_slice(&id.to_le_bytes());
}

/// The body length of a complete frame we built.
pub(crate) fn body_len_of(frame: &[u8]) -> u64 {
    (frame.len() - HEADER_LEN) as u64
}

/// A received body, split into what it is, whom it is for, and the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    pub(crate) kind: u8,
    pub(crate) id: u64,
    pub(crate) payload: &'a [u8],
}

impl<'a> Parts<'a> {
    /// Splits a body; `Err` describes one too short to be a frame.
    pub(crate) fn of(body: &'a [u8]) -> Result<Parts<'a>, String> {
        let too_short = || {
            format!(
                "a frame of {} bytes, too short to say what it is",
                body.len()
            )
        };
        let (&kind, rest) = body.split_first().ok_or_else(too_short)?;
        let (id, payload) = rest.split_first_chunk::<8>().ok_or_else(too_short)?;
        Ok(Parts {
            kind,
            id: u64::from_le_bytes(*id),
            payload,
        })
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
    fn every_frame_says_what_it_is_and_whom_it_is_for() {
        let mut out = Vec::new();
        begin(&mut out, REQUEST, 7);
        out.extend_from_slice(b"abc");
        end(&mut out);
        assert_eq!(body_len_of(&out), (PREFIX_LEN + 3) as u64);
        set_id(&mut out, 9);
        let parts = Parts::of(&out[HEADER_LEN..]).unwrap();
        assert_eq!(
            (parts.kind, parts.id, parts.payload),
            (REQUEST, 9, &b"abc"[..])
        );
        let cancel = empty(CANCEL, 5);
        let parts = Parts::of(&cancel[HEADER_LEN..]).unwrap();
        assert_eq!((parts.kind, parts.id, parts.payload.len()), (CANCEL, 5, 0));
        assert!(Parts::of(&[OK, 1, 2]).is_err(), "too short for an id");
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
        let mut frame = Vec::new();
        begin(&mut frame, REQUEST, 1);
        frame.extend_from_slice(&[9; 1000]);
        end(&mut frame);
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

    #[test]
    fn blocking_reads_reuse_their_buffer() {
        let mut stream = Vec::new();
        for id in 1..=2 {
            let mut frame = Vec::new();
            begin(&mut frame, OK, id);
            end(&mut frame);
            stream.extend_from_slice(&frame);
        }
        let mut reader = &stream[..];
        let mut body = Vec::new();
        assert!(read_blocking(&mut reader, &mut body, 64).unwrap());
        assert_eq!(Parts::of(&body).unwrap().id, 1);
        assert!(read_blocking(&mut reader, &mut body, 64).unwrap());
        assert_eq!(Parts::of(&body).unwrap().id, 2);
        assert!(!read_blocking(&mut reader, &mut body, 64).unwrap());
    }
}
