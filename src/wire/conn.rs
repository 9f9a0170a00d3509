//! The pool's end of one worker's connection: the requests in flight, in
//! order, the small frames (cancels, replies) that go between them, and the
//! bytes going out and coming in.
//!
//! Generic over the byte stream, so it is tested over `tokio::io::duplex`
//! without a process, and could carry a remote worker's stdio later.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::pool::job::Job;
use crate::sys;
use crate::wire::cancel;
use crate::wire::frame::{self, ATTACHED, HEADER_LEN, PREFIX_LEN, RESERVE_AHEAD};

/// Frames at least this large are handed over in the read buffer they arrived
/// in rather than copied out of it.
const ZERO_COPY_FROM: usize = 64 * 1024;
/// How much to read at a time when no larger frame is pending.
const READ_CHUNK: usize = 64 * 1024;
/// Most frames handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// A request sent (or being sent) to the worker and not yet answered.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) job: Job,
    /// The id this request has on this connection (its answer names it).
    pub(crate) id: u64,
    /// A `CANCEL` for it was queued.
    pub(crate) cancel_sent: bool,
}

/// A complete frame body: `buf[start..]`, and the frame's attachments,
/// each read into its own allocation (the body is as if it had none: its
/// kind without [`ATTACHED`], its id, its payload).
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) attachments: Vec<Vec<u8>>,
}

/// A frame with attachments whose body is in and whose attachments are
/// still arriving: each is read straight into its own allocation, not
/// into the read buffer.
#[derive(Debug)]
struct Attaching {
    body: Body,
    /// The attachment being filled, and how long it will be.
    current: Vec<u8>,
    want: usize,
    /// The lengths of those after it.
    rest: std::vec::IntoIter<usize>,
}

impl Body {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[derive(Debug)]
pub(crate) struct Conn<S> {
    io: S,
    max_frame: u64,
    /// Received bytes; the unparsed part is `read_buf[read_pos..]`.
    read_buf: Vec<u8>,
    read_pos: usize,
    in_flight: VecDeque<InFlight>,
    /// How many of `in_flight`, from the front, are completely written.
    written: usize,
    /// Bytes of `in_flight[written]` already written.
    partial: usize,
    /// Small frames to send between requests (never inside one), and how
    /// much of them is written.
    control: Vec<u8>,
    control_pos: usize,
    /// The frame whose attachments are being read, if one is.
    attaching: Option<Attaching>,
    /// Fires at the earliest caller's deadline among the requests watched
    /// for cancellation.
    deadline_timer: Option<Pin<Box<Sleep>>>,
    next_id: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// `first_id`: the id the next request gets (ids before it went out
    /// during the handshake: the initializer's).
    pub(crate) fn new(io: S, max_frame: u64, first_id: u64) -> Conn<S> {
        Conn {
            io,
            max_frame,
            read_buf: Vec::new(),
            read_pos: 0,
            in_flight: VecDeque::new(),
            written: 0,
            partial: 0,
            control: Vec::new(),
            control_pos: 0,
            attaching: None,
            deadline_timer: None,
            next_id: first_id,
        }
    }

    /// The largest frame body the peer may send.
    pub(crate) fn max_frame(&self) -> u64 {
        self.max_frame
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The request the worker is running or will run next: the oldest one
    /// completely written and not yet answered.
    pub(crate) fn head(&self) -> Option<&InFlight> {
        self.in_flight.front().filter(|_| self.written > 0)
    }

    /// The task of request `id`, if it is still in flight.
    pub(crate) fn task_of(&self, id: u64) -> Option<&'static str> {
        self.in_flight
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| entry.job.task)
    }

    /// Queues a request behind those in flight.
    pub(crate) fn push(&mut self, mut job: Job) {
        let id = self.next_id;
        self.next_id += 1;
        frame::set_id(&mut job.request.frame, id);
        self.in_flight.push_back(InFlight {
            job,
            id,
            cancel_sent: false,
        });
    }

    /// Queues a whole frame to go out between requests.
    pub(crate) fn queue_control(&mut self, frame: &[u8]) {
        self.control.extend_from_slice(frame);
    }

    /// [`queue_control`](Self::queue_control) for frames in a buffer of their
    /// own, which becomes the queue if nothing is waiting (a large channel
    /// message is not copied once more).
    pub(crate) fn queue_control_owned(&mut self, frames: Vec<u8>) {
        if self.control_backlog() == 0 {
            self.control = frames;
            self.control_pos = 0;
        } else {
            self.control.extend_from_slice(&frames);
        }
    }

    /// Drops the control frames not yet written: the worker will read no more.
    pub(crate) fn discard_control(&mut self) {
        self.control.clear();
        self.control_pos = 0;
    }

    /// Bytes queued by [`queue_control`](Self::queue_control) and not yet
    /// written.
    pub(crate) fn control_backlog(&self) -> usize {
        self.control.len() - self.control_pos
    }

    /// Queues a `CANCEL` for each request whose caller stopped waiting, and
    /// arranges to be woken when the next ones do.
    ///
    /// Only the two requests that start soonest are watched (a constant
    /// cost per poll, not one per request in flight): a deeper one is
    /// checked as it moves up, which for a skipped request is in time, and
    /// for one already running means its worker is killed instead. A
    /// request not yet written at all is left until it is: its cancel must
    /// not overtake it.
    pub(crate) fn cancel_abandoned(&mut self, cx: &mut Context<'_>) {
        let started_writing = self.written + usize::from(self.partial > 0);
        let mut next_deadline = None;
        for entry in self.in_flight.iter_mut().take(2.min(started_writing)) {
            if entry.cancel_sent {
                continue;
            }
            let placed = &entry.job.placed;
            placed.watch(cx.waker());
            let past_deadline = match placed.deadline() {
                Some(at) if at <= Instant::now() => true,
                Some(at) => {
                    next_deadline = Some(next_deadline.map_or(at, |next: Instant| next.min(at)));
                    false
                }
                None => false,
            };
            if past_deadline || entry.job.reply.poll_closed(cx).is_ready() {
                entry.cancel_sent = true;
                self.control.extend_from_slice(&cancel::encode(entry.id));
            }
        }
        // Woken at the next deadline of a watched request, polled or not.
        match next_deadline {
            Some(at) => {
                let timer = self
                    .deadline_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
            }
            None => self.deadline_timer = None,
        }
    }

    /// Takes the answered request off the front.
    ///
    /// `None` if the worker answered a request that was never (fully) sent:
    /// a protocol violation.
    pub(crate) fn pop_answered(&mut self) -> Option<InFlight> {
        if self.written == 0 {
            return None;
        }
        self.written -= 1;
        self.in_flight.pop_front()
    }

    /// Takes everything in flight, for failing it: the worker is being
    /// killed, so nothing more is written to it.
    pub(crate) fn take_in_flight(&mut self) -> VecDeque<InFlight> {
        self.written = 0;
        self.partial = 0;
        self.control.clear();
        self.control_pos = 0;
        std::mem::take(&mut self.in_flight)
    }

    /// Everything still in flight, and whether the first of it may have
    /// started running (its frame was completely written). A first request
    /// whose write was cut short by the worker's death is marked: its
    /// delivery may be what killed the worker.
    pub(crate) fn into_unanswered(mut self) -> (VecDeque<InFlight>, bool) {
        if self.written == 0
            && self.partial > 0
            && let Some(head) = self.in_flight.front_mut()
        {
            head.job.failed_deliveries += 1;
        }
        (self.in_flight, self.written > 0)
    }

    /// Writes what is queued, as many frames per system call as fit.
    /// `Ready(Ok)` once everything is written.
    ///
    /// Control frames go first, except after a request already part-way
    /// out, which is finished first: frames never interleave.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.in_flight.len() || !self.control.is_empty() {
            let control_first = self.control_pos > 0 || self.partial == 0;
            let with_control = !self.control.is_empty();
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut control_second = false;
            if control_first && with_control {
                slices[0] = IoSlice::new(&self.control[self.control_pos..]);
                count = 1;
            }
            'requests: for (i, entry) in self.in_flight.iter().skip(self.written).enumerate() {
                // A request goes in pieces: its frame, then its attachments.
                let mut skip = if i == 0 { self.partial } else { 0 };
                for piece in entry.job.request.pieces() {
                    if skip >= piece.len() {
                        skip -= piece.len();
                        continue;
                    }
                    if count + 2 > MAX_IOVECS {
                        break 'requests;
                    }
                    slices[count] = IoSlice::new(&piece[skip..]);
                    skip = 0;
                    count += 1;
                }
                if i == 0 && !control_first && with_control {
                    slices[count] = IoSlice::new(&self.control);
                    count += 1;
                    control_second = true;
                }
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n, control_first && with_control, control_second);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Accounts for `n` bytes written in the order `poll_flush` laid out.
    fn advance(&mut self, mut n: usize, control_first: bool, control_second: bool) {
        if control_first {
            n = self.advance_control(n);
        }
        let mut first = true;
        while n > 0 {
            let left = self.in_flight[self.written].job.request.wire_len() - self.partial;
            if n < left {
                self.partial += n;
                return;
            }
            n -= left;
            self.written += 1;
            self.partial = 0;
            if first && control_second {
                n = self.advance_control(n);
            }
            first = false;
        }
    }

    /// Takes up to `n` written bytes off the control queue; returns the rest.
    fn advance_control(&mut self, n: usize) -> usize {
        let taken = n.min(self.control.len() - self.control_pos);
        self.control_pos += taken;
        if self.control_pos == self.control.len() {
            self.control.clear();
            self.control_pos = 0;
        }
        n - taken
    }

    /// The next complete frame body already received, if any.
    ///
    /// # Errors
    ///
    /// A description of the garbage if the length prefix is over the maximum.
    pub(crate) fn next_body(&mut self) -> Result<Option<Body>, String> {
        if self.attaching.is_some() {
            return self.fill_attachments();
        }
        let unread = &self.read_buf[self.read_pos..];
        let Some(header) = unread.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = frame::body_len(*header, self.max_frame)?;
        if len > PREFIX_LEN
            && unread
                .get(HEADER_LEN)
                .is_some_and(|kind| kind & ATTACHED != 0)
        {
            return self.begin_attached(len);
        }
        let frame_len = len
            .checked_add(HEADER_LEN)
            .ok_or_else(|| format!("a frame of {len} bytes, too large to address"))?;
        if unread.len() < frame_len {
            self.make_room(frame_len, len)?;
            return Ok(None);
        }
        let body = if self.read_pos == 0 && unread.len() == frame_len && len >= ZERO_COPY_FROM {
            Body {
                buf: std::mem::take(&mut self.read_buf),
                start: HEADER_LEN,
                attachments: Vec::new(),
            }
        } else {
            let at = self.read_pos + HEADER_LEN;
            self.read_pos += frame_len;
            Body {
                buf: self.read_buf[at..at + len].to_vec(),
                start: 0,
                attachments: Vec::new(),
            }
        };
        self.compact();
        Ok(Some(body))
    }

    /// Makes room for `bytes` unread bytes in the read buffer (a frame of
    /// `body_len`, or the part of it before its attachments) so they are read
    /// straight into place; but a length is only a claim, so beyond
    /// `RESERVE_AHEAD` the room grows with what has actually arrived
    /// (doubling), and an allocation that fails is an error, not an abort.
    fn make_room(&mut self, bytes: usize, body_len: usize) -> Result<(), String> {
        let unread = self.read_buf.len() - self.read_pos;
        let want = bytes.min(unread.saturating_mul(2).max(RESERVE_AHEAD));
        if self.read_buf.capacity() - self.read_pos < want {
            self.read_buf.drain(..self.read_pos);
            self.read_pos = 0;
            let more = want - self.read_buf.len();
            self.read_buf
                .try_reserve_exact(more)
                .map_err(|_| format!("a frame of {body_len} bytes, more than memory allows"))?;
        }
        Ok(())
    }

    /// Forgets the read buffer's contents once all of it is parsed.
    fn compact(&mut self) {
        if self.read_pos == self.read_buf.len() {
            self.read_buf.clear();
            self.read_pos = 0;
        }
    }

    /// Starts on a frame of `len` body bytes with attachments once its
    /// table and payload are in: the attachments that follow are read into
    /// allocations of their own.
    fn begin_attached(&mut self, len: usize) -> Result<Option<Body>, String> {
        const TABLE_AT: usize = HEADER_LEN + PREFIX_LEN + 4;
        let unread = &self.read_buf[self.read_pos..];
        let Some(count) = unread.get(TABLE_AT - 4..TABLE_AT) else {
            return Ok(None);
        };
        let count = u32::from_le_bytes(count.try_into().expect("4 bytes"));
        let table_end = TABLE_AT + frame::table_len(count).map_err(|err| err.to_string())?;
        if unread.len() < table_end {
            self.make_room(table_end, len)?;
            return Ok(None);
        }
        let lens = frame::attachment_lens(&unread[TABLE_AT..table_end]);
        let payload_end = table_end + frame::payload_len(len, lens)?;
        if unread.len() < payload_end {
            self.make_room(payload_end, len)?;
            return Ok(None);
        }
        let unread = &self.read_buf[self.read_pos..];
        let mut lens = frame::attachment_lens(&unread[TABLE_AT..table_end]);
        let mut buf = Vec::with_capacity(PREFIX_LEN + payload_end - table_end);
        buf.push(unread[HEADER_LEN] & !ATTACHED);
        buf.extend_from_slice(&unread[HEADER_LEN + 1..HEADER_LEN + PREFIX_LEN]);
        buf.extend_from_slice(&unread[table_end..payload_end]);
        let want = lens.next().expect("a table has one length at least");
        let rest: Vec<usize> = lens.collect();
        self.read_pos += payload_end;
        self.attaching = Some(Attaching {
            body: Body {
                buf,
                start: 0,
                attachments: Vec::with_capacity(rest.len() + 1),
            },
            current: Vec::new(),
            want,
            rest: rest.into_iter(),
        });
        self.fill_attachments()
    }

    /// Moves what the read buffer holds of the attachments being read into
    /// them; the body once the last is whole.
    fn fill_attachments(&mut self) -> Result<Option<Body>, String> {
        let attaching = self.attaching.as_mut().expect("attachments are being read");
        loop {
            let missing = attaching.want - attaching.current.len();
            let buffered = &self.read_buf[self.read_pos..];
            let take = missing.min(buffered.len());
            reserve_for_attachment(&mut attaching.current, attaching.want, take)?;
            attaching.current.extend_from_slice(&buffered[..take]);
            self.read_pos += take;
            if attaching.current.len() < attaching.want {
                self.compact();
                return Ok(None);
            }
            let whole = std::mem::take(&mut attaching.current);
            attaching.body.attachments.push(whole);
            match attaching.rest.next() {
                Some(want) => attaching.want = want,
                None => {
                    let done = self.attaching.take().expect("checked");
                    self.compact();
                    return Ok(Some(done.body));
                }
            }
        }
    }

    /// Bytes received that do not make a whole frame yet.
    pub(crate) fn incomplete_bytes(&self) -> usize {
        let attaching = self.attaching.as_ref().map_or(0, |attaching| {
            // A frame is part-way in even before its first attachment byte.
            1 + attaching.current.len()
        });
        self.read_buf.len() - self.read_pos + attaching
    }

    /// Reads more bytes. `Ready(Ok(0))` is the end of the stream.
    ///
    /// While an attachment is being read and nothing else is buffered,
    /// reads straight into it, never past its end.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if let Some(attaching) = &mut self.attaching
            && self.read_pos == self.read_buf.len()
        {
            let missing = attaching.want - attaching.current.len();
            if reserve_for_attachment(&mut attaching.current, attaching.want, READ_CHUNK).is_err() {
                return Poll::Ready(Err(io::ErrorKind::OutOfMemory.into()));
            }
            return sys::poll_read_spare(&mut self.io, cx, &mut attaching.current, missing);
        }
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 2 {
            if self.read_pos > 0 {
                self.read_buf.drain(..self.read_pos);
                self.read_pos = 0;
            }
            self.read_buf.reserve(READ_CHUNK);
        }
        sys::poll_read_spare(&mut self.io, cx, &mut self.read_buf, usize::MAX)
    }
}

impl<S: Transport> Conn<S> {
    /// Reads whatever the peer already sent, without waiting and without
    /// relying on the runtime's readiness: for a worker that has exited,
    /// whose every completed write is in our receive queue by now.
    pub(crate) fn read_sent(&mut self) -> io::Result<()> {
        self.io.read_sent(&mut self.read_buf)
    }
}

/// Makes room in an attachment of `want` bytes for `more` of them: all of
/// it at once up to [`RESERVE_AHEAD`] (a length is only a claim), beyond
/// that doubling as bytes arrive.
fn reserve_for_attachment(
    attachment: &mut Vec<u8>,
    want: usize,
    more: usize,
) -> Result<(), String> {
    let missing = want - attachment.len();
    let spare = attachment.capacity() - attachment.len();
    if spare >= missing.min(more.max(1)) {
        return Ok(());
    }
    let room = missing.min(attachment.len().max(RESERVE_AHEAD));
    attachment
        .try_reserve_exact(room)
        .map_err(|_| format!("an attachment of {want} bytes, more than memory allows"))
}

/// A byte stream a [`Conn`] can carry, with the one thing tokio's traits do
/// not offer: taking what the peer already sent without the runtime's
/// readiness (which can lag behind a process that just died).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Appends to `into` whatever the peer already sent, without waiting.
    fn read_sent(&mut self, into: &mut Vec<u8>) -> io::Result<()>;
}

impl Transport for tokio::net::UnixStream {
    fn read_sent(&mut self, into: &mut Vec<u8>) -> io::Result<()> {
        // More than a socket buffer holds cannot have been sent before the
        // death; a process it forked may still be writing, so stop there.
        const AT_MOST: usize = 16 << 20;
        let mut chunk = [0u8; 16 * 1024];
        let mut read = 0;
        while read < AT_MOST {
            match rustix::io::read(self.as_fd(), &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    into.extend_from_slice(&chunk[..n]);
                    read += n;
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// In memory, readiness never lags: whatever was written has already been
/// read by `poll_fill` when its writer is found gone.
impl Transport for tokio::io::DuplexStream {
    fn read_sent(&mut self, _into: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    fn job(
        bytes: usize,
    ) -> (
        Job,
        oneshot::Receiver<Result<crate::pool::job::Reply, crate::Error>>,
    ) {
        let (reply, rx) = oneshot::channel();
        // A `Vec<u8>` of 16 KiB or more goes as an attachment.
        let request = crate::wire::request::encode(3, vec![7u8; bytes]).unwrap();
        (
            Job {
                task: "t",
                request,
                reply,
                retries_left: 0,
                failed_deliveries: 0,
                crashes: None,
                placed: Default::default(),
                holds: Default::default(),
                regions: Default::default(),
                room: None,
            },
            rx,
        )
    }

    async fn next(conn: &mut Conn<tokio::io::DuplexStream>) -> Option<Body> {
        loop {
            if let Some(body) = conn.next_body().unwrap() {
                return Some(body);
            }
            if poll_fn(|cx| conn.poll_fill(cx)).await.unwrap() == 0 {
                return None;
            }
        }
    }

    #[tokio::test]
    async fn writes_every_request_and_reads_frames_of_any_size() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut conn = Conn::new(ours, 1 << 30, 1);
        let sizes = [0, 10, 100_000, 3, 1 << 20];
        let mut receivers = Vec::new();
        for size in sizes {
            let (job, rx) = job(size);
            receivers.push(rx);
            conn.push(job);
        }
        let requests: Vec<_> = conn
            .in_flight
            .iter()
            .map(|e| e.job.request.clone())
            .collect();
        assert!(
            requests
                .iter()
                .filter(|r| !r.attachments.is_empty())
                .count()
                == 2
        );
        let expected: Vec<u8> = requests
            .iter()
            .flat_map(|r| r.pieces())
            .flatten()
            .copied()
            .collect();
        assert_eq!(conn.written, 0, "nothing written yet");
        let echo = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            theirs.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "bytes arrive in order, unchanged");
            theirs.write_all(&got).await.unwrap();
            theirs.shutdown().await.unwrap();
        });
        poll_fn(|cx| conn.poll_flush(cx)).await.unwrap();
        assert_eq!(conn.written, sizes.len());
        for (i, request) in requests.iter().enumerate() {
            let body = next(&mut conn).await.expect("a frame");
            let whole: Vec<u8> = request.pieces().flatten().copied().collect();
            let without = frame::drop_attachments(whole[HEADER_LEN..].to_vec()).unwrap();
            assert!(
                body.bytes() == &without[..],
                "the body, without the attachment table"
            );
            let attached: Vec<&[u8]> = request.attachments.iter().map(|a| a.as_bytes()).collect();
            assert!(
                body.attachments.iter().map(Vec::as_slice).eq(attached),
                "each attachment whole"
            );
            assert_eq!(frame::Parts::of(body.bytes()).unwrap().id, i as u64 + 1);
            let answered = conn.pop_answered().unwrap();
            assert_eq!(answered.id, i as u64 + 1);
        }
        assert!(next(&mut conn).await.is_none());
        assert!(conn.pop_answered().is_none());
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancel_goes_between_requests_never_inside_one() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut conn = Conn::new(ours, 1 << 30, 1);
        let (big, big_rx) = job(100_000);
        let (small, _small_rx) = job(5);
        conn.push(big);
        conn.push(small);
        // Part of the big request goes out, then its caller gives up.
        let partly = poll_fn(|cx| Poll::Ready(conn.poll_flush(cx))).await;
        assert!(partly.is_pending());
        assert!(conn.partial > 0, "the big request is part-way out");
        drop(big_rx);
        poll_fn(|cx| {
            conn.cancel_abandoned(cx);
            Poll::Ready(())
        })
        .await;
        assert_eq!(conn.control_backlog(), HEADER_LEN + frame::PREFIX_LEN);
        let reader = tokio::spawn(async move {
            let mut frames = Vec::new();
            while let Some(body) = frame::read_async(&mut theirs, 1 << 30).await.unwrap() {
                let parts = frame::Parts::of(&body).unwrap();
                frames.push((parts.kind & !ATTACHED, parts.id, parts.payload.len()));
            }
            frames
        });
        poll_fn(|cx| conn.poll_flush(cx)).await.unwrap();
        drop(conn);
        let frames = reader.await.unwrap();
        let kinds: Vec<(u8, u64)> = frames.iter().map(|&(kind, id, _)| (kind, id)).collect();
        assert_eq!(
            kinds,
            [(frame::REQUEST, 1), (frame::CANCEL, 1), (frame::REQUEST, 2)]
        );
    }

    /// A whole frame of `kind` with `payload` and `attachments` after it.
    fn attached(kind: u8, id: u64, payload: &[u8], attachments: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::begin(&mut out, kind, id);
        out.extend_from_slice(payload);
        frame::end(&mut out);
        frame::attach(&mut out, attachments.iter().map(Vec::len));
        attachments.iter().for_each(|a| out.extend_from_slice(a));
        out
    }

    #[tokio::test]
    async fn attachments_arrive_whole_in_allocations_of_their_own() {
        // A narrow stream: every part of a frame arrives in pieces.
        let (ours, mut theirs) = tokio::io::duplex(100);
        let mut conn = Conn::new(ours, 1 << 30, 1);
        let sizes = [1usize, 0, 70_000, 17, 300_000];
        let attachments: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        let mut stream = attached(frame::OK, 1, b"payload", &attachments);
        let after = frame::empty(frame::OK, 2);
        stream.extend_from_slice(&after);
        stream.extend_from_slice(&attached(frame::OK, 3, b"", &attachments[2..3]));
        let writer = tokio::spawn(async move {
            theirs.write_all(&stream).await.unwrap();
            theirs
        });
        let first = next(&mut conn).await.unwrap();
        let parts = frame::Parts::of(first.bytes()).unwrap();
        assert_eq!(
            (parts.kind, parts.id, parts.payload),
            (frame::OK, 1, &b"payload"[..])
        );
        assert!(
            first.attachments == attachments,
            "each attachment, in order"
        );
        let second = next(&mut conn).await.unwrap();
        assert!(second.bytes() == &after[HEADER_LEN..] && second.attachments.is_empty());
        let third = next(&mut conn).await.unwrap();
        assert_eq!(frame::Parts::of(third.bytes()).unwrap().id, 3);
        assert!(third.attachments == attachments[2..3]);
        assert_eq!(conn.incomplete_bytes(), 0);
        drop(writer.await.unwrap());
        assert!(next(&mut conn).await.is_none());
    }

    #[tokio::test]
    async fn garbage_attachment_tables_are_errors_before_any_allocation() {
        let table = |count: u32, lens: &[u64], body_len: u64| {
            let mut out = body_len.to_le_bytes().to_vec();
            out.push(frame::OK | ATTACHED);
            out.extend_from_slice(&1u64.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            lens.iter()
                .for_each(|len| out.extend_from_slice(&len.to_le_bytes()));
            out
        };
        let cases = [
            (table(1, &[u64::MAX], 21), "claim more"),
            (table(2, &[1 << 40, 1 << 40], 29), "claim more"),
            (table(0, &[], 13), "has none"),
            (table(u32::MAX, &[], 1 << 20), "over the most"),
        ];
        for (garbage, says) in cases {
            let (ours, mut theirs) = tokio::io::duplex(4096);
            let mut conn = Conn::new(ours, 1 << 30, 0);
            theirs.write_all(&garbage).await.unwrap();
            poll_fn(|cx| conn.poll_fill(cx)).await.unwrap();
            let err = conn.next_body().unwrap_err();
            assert!(err.contains(says), "{err}");
            assert!(conn.read_buf.capacity() < 1 << 20);
        }
    }

    #[tokio::test]
    async fn an_oversized_length_is_an_error_before_any_allocation() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = Conn::new(ours, 1024, 0);
        theirs.write_all(&(1u64 << 40).to_le_bytes()).await.unwrap();
        poll_fn(|cx| conn.poll_fill(cx)).await.unwrap();
        let err = conn.next_body().unwrap_err();
        assert!(err.contains("maximum"), "{err}");
        assert!(conn.read_buf.capacity() < 1 << 20);
    }
}
