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
pub(crate) const PROTOCOL_VERSION: u32 = 11;

// Kinds, pool → worker.
pub(crate) const START: u8 = 0x20;
pub(crate) const REQUEST: u8 = 0x01;
pub(crate) const CHUNK: u8 = 0x06;
pub(crate) const CANCEL: u8 = 0x07;
pub(crate) const REPLY: u8 = 0x31;
pub(crate) const PING: u8 = 0x60;
pub(crate) const UNMAP: u8 = 0x70;
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

/// Set in a kind whose frame carries attachments: byte buffers after its
/// payload, sent as they are rather than through the codec (see
/// [`attach`]). Only `REQUEST` and `OK` frames may.
pub(crate) const ATTACHED: u8 = 0x80;
/// Most attachments one frame may carry: the table of their lengths is
/// read before any of them, so it is bounded.
pub(crate) const MAX_ATTACHMENTS: usize = 1 << 16;

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

/// The body length of a complete frame we built (with its attachments,
/// which are not in `frame`).
pub(crate) fn body_len_of(frame: &[u8]) -> u64 {
    let header = frame.first_chunk::<HEADER_LEN>().expect("a whole frame");
    u64::from_le_bytes(*header)
}

/// Makes a frame completed by [`end`] carry attachments of `lens` bytes,
/// which the sender writes right after it: flags its kind, puts the count
/// and the lengths before the payload, and counts them in the length.
///
/// ```text
/// length u64 | kind|ATTACHED u8 | id u64 | count u32 | length u64 × count | payload | attachments
/// ```
///
/// Nothing changes for no attachments.
pub(crate) fn attach(frame: &mut Vec<u8>, lens: impl ExactSizeIterator<Item = usize>) {
    if lens.len() == 0 {
        return;
    }
    let mut table = Vec::with_capacity(4 + 8 * lens.len());
    table.extend_from_slice(&(lens.len() as u32).to_le_bytes());
    let mut attached = 0u64;
    for len in lens {
        table.extend_from_slice(&(len as u64).to_le_bytes());
        attached += len as u64;
    }
    frame[HEADER_LEN] |= ATTACHED;
    let at = HEADER_LEN + PREFIX_LEN;
    frame.splice(at..at, table);
    let body_len = (frame.len() - HEADER_LEN) as u64 + attached;
    frame[..HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
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

/// Blocking read of one frame body into `body` (reused between calls), and
/// of its attachments, each into an allocation of its own, in `attachments`
/// (cleared first). The body is left as if the frame had none: its kind
/// without [`ATTACHED`], its id, its payload.
/// `Ok(false)` on a clean end of stream before a frame starts.
pub(crate) fn read_blocking(
    reader: &mut impl Read,
    body: &mut Vec<u8>,
    attachments: &mut Vec<Vec<u8>>,
    max: u64,
) -> io::Result<bool> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(err) => return Err(err),
    }
    let len = body_len(header, max).map_err(invalid)?;
    body.clear();
    attachments.clear();
    if len <= PREFIX_LEN {
        return read_exactly(reader, body, len).map(|()| true);
    }
    read_exactly(reader, body, PREFIX_LEN)?;
    if body[0] & ATTACHED == 0 {
        read_exactly(reader, body, len - PREFIX_LEN)?;
        return Ok(true);
    }
    body[0] &= !ATTACHED;
    let mut count = [0u8; 4];
    reader.read_exact(&mut count)?;
    let mut table = Vec::new();
    read_exactly(reader, &mut table, table_len(u32::from_le_bytes(count))?)?;
    let lens = attachment_lens(&table);
    let payload = payload_len(len, lens.clone()).map_err(invalid)?;
    read_exactly(reader, body, payload)?;
    for len in lens {
        let mut attachment = Vec::new();
        read_exactly(reader, &mut attachment, len)?;
        attachments.push(attachment);
    }
    Ok(true)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Bytes of the length table after a count of attachments; `Err` if the
/// count is over [`MAX_ATTACHMENTS`].
pub(crate) fn table_len(count: u32) -> io::Result<usize> {
    match count as usize {
        0 => Err(invalid(
            "a frame flagged with attachments that has none".into(),
        )),
        count if count > MAX_ATTACHMENTS => Err(invalid(format!(
            "a frame with {count} attachments, over the most of {MAX_ATTACHMENTS}"
        ))),
        count => Ok(8 * count),
    }
}

/// The lengths in an attachment table.
pub(crate) fn attachment_lens(table: &[u8]) -> impl ExactSizeIterator<Item = usize> + Clone {
    table.chunks_exact(8).map(|len| {
        let len = u64::from_le_bytes(len.try_into().expect("chunks of 8"));
        usize::try_from(len).unwrap_or(usize::MAX)
    })
}

/// The payload's length in an attached frame of `body_len` bytes: what the
/// kind, id, table and attachments leave. `Err` if they claim more than
/// the frame holds (the lengths are garbage).
pub(crate) fn payload_len(
    body_len: usize,
    mut lens: impl ExactSizeIterator<Item = usize>,
) -> Result<usize, String> {
    let overhead = PREFIX_LEN + 4 + 8 * lens.len();
    lens.try_fold(overhead, usize::checked_add)
        .and_then(|claimed| body_len.checked_sub(claimed))
        .ok_or_else(|| {
            format!("a frame of {body_len} bytes whose attachments claim more than it holds")
        })
}

/// Appends exactly `len` bytes from `reader` to `into`, reserving room
/// for them up to [`RESERVE_AHEAD`] at once (a length is only a claim until
/// the bytes arrive) and reading into it without zeroing it first.
fn read_exactly(reader: &mut impl Read, into: &mut Vec<u8>, len: usize) -> io::Result<()> {
    reserve_for(into, len)?;
    let want = into.len() + len;
    reader.take(len as u64).read_to_end(into)?;
    if into.len() != want {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reserves room for a frame body of `len` bytes, up to `RESERVE_AHEAD`:
/// a length is only a claim until the bytes arrive.
fn reserve_for(body: &mut Vec<u8>, len: usize) -> io::Result<()> {
    body.try_reserve(len.min(RESERVE_AHEAD))
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a frame"))
}

/// A whole body read as it came (by [`read_async`]), with its attachments,
/// if it has any, dropped: its kind without [`ATTACHED`], id and payload.
/// For the handshake, which does not keep results.
pub(crate) fn drop_attachments(mut body: Vec<u8>) -> Result<Vec<u8>, String> {
    if body.len() <= PREFIX_LEN || body[0] & ATTACHED == 0 {
        return Ok(body);
    }
    let count = body
        .get(PREFIX_LEN..PREFIX_LEN + 4)
        .ok_or("a frame flagged with attachments too short for their count")?;
    let count = u32::from_le_bytes(count.try_into().expect("4 bytes"));
    let table_end = PREFIX_LEN + 4 + table_len(count).map_err(|err| err.to_string())?;
    let table = body
        .get(PREFIX_LEN + 4..table_end)
        .ok_or("a frame too short for its attachment table")?;
    let payload_end = table_end + payload_len(body.len(), attachment_lens(table))?;
    body.truncate(payload_end);
    body.drain(PREFIX_LEN..table_end);
    body[0] &= !ATTACHED;
    Ok(body)
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
        let (mut body, mut attachments) = (Vec::new(), Vec::new());
        assert!(read_blocking(&mut reader, &mut body, &mut attachments, 64).unwrap());
        assert_eq!(Parts::of(&body).unwrap().id, 1);
        assert!(read_blocking(&mut reader, &mut body, &mut attachments, 64).unwrap());
        assert_eq!(Parts::of(&body).unwrap().id, 2);
        assert!(!read_blocking(&mut reader, &mut body, &mut attachments, 64).unwrap());
    }

    #[test]
    fn blocking_reads_take_attachments_apart_and_refuse_garbage_tables() {
        let attachments = [vec![1u8; 40_000], vec![], vec![9]];
        let mut frame = Vec::new();
        begin(&mut frame, REQUEST, 4);
        frame.extend_from_slice(b"args");
        end(&mut frame);
        attach(&mut frame, attachments.iter().map(Vec::len));
        assert_eq!(frame[HEADER_LEN], REQUEST | ATTACHED);
        attachments.iter().for_each(|a| frame.extend_from_slice(a));
        let unattached = drop_attachments(frame[HEADER_LEN..].to_vec()).unwrap();
        let (mut body, mut got) = (Vec::new(), Vec::new());
        assert!(read_blocking(&mut &frame[..], &mut body, &mut got, 1 << 20).unwrap());
        let parts = Parts::of(&body).unwrap();
        assert_eq!(
            (parts.kind, parts.id, parts.payload),
            (REQUEST, 4, &b"args"[..])
        );
        assert_eq!(body, unattached);
        assert_eq!(got, attachments);
        // Lengths past the frame's end; then a count over the most.
        let mut garbage = Vec::new();
        begin(&mut garbage, REQUEST, 5);
        end(&mut garbage);
        attach(&mut garbage, [1usize << 40].into_iter());
        garbage[..HEADER_LEN].copy_from_slice(&21u64.to_le_bytes());
        let err = read_blocking(&mut &garbage[..], &mut body, &mut got, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("claim more"), "{err}");
        garbage[HEADER_LEN + PREFIX_LEN..][..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_blocking(&mut &garbage[..], &mut body, &mut got, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("over the most"), "{err}");
    }
}
