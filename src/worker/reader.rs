//! How a worker reads its connection: whoever holds the read half reads
//! and routes every frame by kind — requests to the task thread's queue,
//! cancels to the kill logic, replies to the thread waiting on its call —
//! and the worker (and everything its tasks started) ends the moment the
//! pool hangs up, even mid-task.
//!
//! Two threads take turns. The task thread reads while it has nothing to
//! run, so on the hot path a request goes from the socket to the task with
//! no hand-off between threads (measured on this 2-core VM, pinned to one
//! CPU: a hand-off for every request added 3.6 µs to a round trip of
//! 11.5 µs). While a task runs, the reader thread reads: it sleeps in
//! `epoll_wait` on the socket, armed (one-shot) when a task starts and
//! disarmed when the task thread goes back to waiting on the socket itself,
//! so it is woken only by frames that come while tasks run (a cancel, a
//! call's reply, requests sent ahead), not by every request.
//!
//! Arming costs an `epoll_ctl` each way, which for tasks of a few µs cost
//! 10% of W2's throughput. So while tasks have been short (under
//! [`SHORT_TASK`] on average) a task starts unarmed, and the reader thread,
//! which looks every [`WATCH_EVERY`] (also when idle: 50 wake-ups a second),
//! arms itself for one that has run that long: a cancel or a hang-up during
//! a long task is still seen within 20–40 ms, and a thread that waits for a
//! reply arms it at once.

use std::collections::{BTreeSet, VecDeque};
use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rustix::event::epoll;
use rustix::net::RecvFlags;

use super::link::Link;
use super::teardown::{fail, teardown};
use crate::wire::frame::{self, CANCEL, CHUNK, PING, PONG, Parts, REPLY, REQUEST, UNMAP};
use crate::wire::{call, channel, unmap};

/// Requests waiting for the task thread, and what it is doing.
#[derive(Default)]
struct State {
    /// Request bodies received and not started, with their ids.
    queue: VecDeque<Queued>,
    /// Ids in `queue` whose caller stopped waiting.
    cancelled: BTreeSet<u64>,
    /// The request being run.
    running: Option<u64>,
    /// The last request id received (ids only grow).
    last_id: u64,
    /// Body buffers the task thread is done with, for the next reads: a
    /// burst of requests queued at once reuses them rather than allocating
    /// one each (see [`MAX_SPARES`]).
    spares: Vec<Vec<u8>>,
    /// The last body over [`MAX_SPARE_BYTES`], kept alone: a stream of
    /// large requests (16 MiB each) reads each into the last one's buffer
    /// instead of growing, faulting in and zeroing a new one (that cost
    /// W3 ~60% of its throughput).
    big_spare: Option<Vec<u8>>,
    /// Tasks started so far: the reader thread, seeing the same count
    /// with a task running on two wakes in a row, knows it runs long
    /// (without a clock read per task).
    started: u64,
    /// Moving average of recent tasks' run times, in ns.
    average_nanos: u64,
}

/// How the reader thread is watching the socket. Its own lock, taken
/// last: a thread that waits for a channel's frame arms the reader while
/// holding the channel table, which the reader takes while holding
/// `State` to route a frame.
#[derive(Default)]
struct Watch {
    /// Whether the reader thread will wake for the next frame.
    armed: bool,
    /// Whether the socket is in the epoll set at all (armed or spent): out
    /// of it while tasks are short, so arrivals cost the kernel nothing.
    registered: bool,
}

/// The read half and the frame being read into: held by whoever reads.
struct Reading {
    reader: BufReader<UnixStream>,
    body: Vec<u8>,
    /// The attachments of the frame in `body`.
    attachments: Vec<Vec<u8>>,
}

/// A request waiting for the task thread.
struct Queued {
    id: u64,
    body: Vec<u8>,
    attachments: Vec<Vec<u8>>,
}

/// What the task thread and the reader thread share.
pub(super) struct Inbox {
    reading: Mutex<Reading>,
    /// One lock, taken twice per task, so "is it running?" and "start it"
    /// cannot interleave.
    state: Mutex<State>,
    watch: Mutex<Watch>,
    /// Wakes the reader thread while a task runs and the socket is readable.
    epoll: OwnedFd,
    /// The socket as registered with `epoll`.
    watched: UnixStream,
    max_frame: u64,
    link: &'static Link,
}

/// A request the task thread took from the inbox.
pub(super) struct Next {
    pub(super) id: u64,
    pub(super) body: Vec<u8>,
    pub(super) attachments: Vec<Vec<u8>>,
    /// Cancelled before it started: answer `SKIPPED` without running it.
    pub(super) skip: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inbox {
    /// Reads from `socket`; `link` is where call replies go.
    pub(super) fn new(
        socket: UnixStream,
        max_frame: u64,
        link: &'static Link,
    ) -> std::io::Result<Inbox> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let watched = socket.try_clone()?;
        Ok(Inbox {
            reading: Mutex::new(Reading {
                reader: BufReader::with_capacity(64 * 1024, socket),
                body: Vec::new(),
                attachments: Vec::new(),
            }),
            state: Mutex::default(),
            watch: Mutex::default(),
            epoll,
            watched,
            max_frame,
            link,
        })
    }

    /// Lets the reader thread wake for the next frame (`true`), or not; a
    /// no-op if it already is (or is not).
    ///
    /// Once armed, it stays so until it wakes (one-shot) or the task thread
    /// is about to wait for the pool itself, so a burst of pipelined tasks
    /// costs two `epoll_ctl` calls, not two per task.
    fn arm(&self, armed: bool) {
        use epoll::EventFlags;
        let mut watch = lock(&self.watch);
        if watch.armed == armed && (armed || !watch.registered) {
            return;
        }
        let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
        let data = epoll::EventData::new_u64(0);
        let done = match (armed, watch.registered) {
            (true, true) => epoll::modify(&self.epoll, &self.watched, data, flags),
            (true, false) => epoll::add(&self.epoll, &self.watched, data, flags),
            (false, _) => epoll::delete(&self.epoll, &self.watched),
        };
        if let Err(err) = done {
            fail(&format!("cannot watch the connection: {err}"));
        }
        watch.armed = armed;
        watch.registered = armed;
    }

    fn is_registered(&self) -> bool {
        lock(&self.watch).registered
    }

    /// The next request, read from the connection if none is queued; it is
    /// marked running (unless it is to be skipped).
    pub(super) fn next(&self) -> Next {
        loop {
            if let Some(next) = self.pop(&mut lock(&self.state)) {
                return next;
            }
            let mut reading = lock(&self.reading);
            // Replies to threads that outlive their task come while this
            // thread may be busy (or blocked sending an answer behind such
            // a caller): the reader thread stays armed for them.
            let calls_waiting = self.link.awaits_replies();
            let mut state = lock(&self.state);
            // The reader thread may have queued one while we waited.
            if let Some(next) = self.pop(&mut state) {
                return next;
            }
            if !calls_waiting && self.is_registered() && !has_more(&reading) {
                // About to wait for the pool: we will see what comes.
                self.arm(false);
            }
            drop(state);
            read_frame(&mut reading, self.max_frame);
            // One lock for the whole batch: a cancel or a reply may have
            // come in the same read as this request, and epoll cannot see
            // what is buffered, so every whole frame is routed now.
            let mut state = lock(&self.state);
            self.route(&mut state, &mut reading);
            while has_whole_frame(&reading) {
                read_frame(&mut reading, self.max_frame);
                self.route(&mut state, &mut reading);
            }
            if let Some(next) = self.pop(&mut state) {
                return next;
            }
        }
    }

    fn pop(&self, state: &mut State) -> Option<Next> {
        let Queued {
            id,
            body,
            attachments,
        } = state.queue.pop_front()?;
        let skip = state.cancelled.remove(&id);
        if !skip {
            state.running = Some(id);
            state.started += 1;
            if state.average_nanos >= SHORT_TASK.as_nanos() as u64 {
                self.arm(true);
            }
        }
        Some(Next {
            id,
            body,
            attachments,
            skip,
        })
    }

    /// The task thread is done with a request, which ran for `ran` ns
    /// (`None`: skipped). Its answer is not sent yet: a cancel arriving
    /// now is for a finished task, and is ignored.
    pub(super) fn done(&self, body: Vec<u8>, ran: Option<u64>) {
        let mut state = lock(&self.state);
        state.running = None;
        super::cancel::task_done();
        if let Some(nanos) = ran {
            state.average_nanos = (state.average_nanos / 8 * 7).saturating_add(nanos / 8);
        }
        if body.capacity() > MAX_SPARE_BYTES {
            state.big_spare = Some(body);
        } else if state.spares.len() < MAX_SPARES {
            state.spares.push(body);
        }
    }

    /// Routes the frame just read; ends the worker on anything that is
    /// not our protocol.
    fn route(&self, state: &mut State, reading: &mut Reading) {
        if let Err(problem) = self.try_route(state, reading) {
            fail(&format!("the pool sent {problem}"));
        }
    }

    fn try_route(&self, state: &mut State, reading: &mut Reading) -> Result<(), String> {
        let parts = Parts::of(&reading.body)?;
        if !reading.attachments.is_empty() && parts.kind != REQUEST {
            return Err(format!(
                "attachments on a frame of kind 0x{:02x}, which takes none",
                parts.kind
            ));
        }
        match parts.kind {
            REQUEST | CHUNK => push(state, parts.id, reading),
            CANCEL if parts.payload.is_empty() => cancel(state, parts.id),
            REPLY => {
                let outcome = call::parse_reply(parts.payload)?.map(<[u8]>::to_vec);
                self.link.deliver(parts.id, outcome)
            }
            // Through the writer thread: the reader must not wait on a write.
            PING if parts.payload.is_empty() => self
                .link
                .send_from_reader(&[&frame::empty(PONG, 0)])
                .map_err(|err| format!("(could not answer its keepalive: {err})")),
            channel::CREDIT | channel::DATA | channel::CLOSED | channel::FORGOTTEN => {
                crate::channel::remote::route(parts)
            }
            UNMAP => {
                crate::shared::forget(unmap::parse(parts.payload)?);
                Ok(())
            }
            kind => Err(format!(
                "a frame of unknown kind 0x{kind:02x} ({} bytes)",
                reading.body.len()
            )),
        }
    }
}

/// Reads one frame into `reading.body`; ends the worker on a hang-up or on
/// anything that is not our protocol.
fn read_frame(reading: &mut Reading, max_frame: u64) {
    let Reading {
        reader,
        body,
        attachments,
    } = reading;
    match frame::read_blocking(reader, body, attachments, max_frame) {
        Ok(true) => {}
        // The pool is gone (shut down, dropped, or dead): so are we.
        Ok(false) => teardown(),
        Err(err) if is_hang_up(&err) => teardown(),
        Err(err) => fail(&format!("reading from the pool: {err}")),
    }
}

fn push(state: &mut State, id: u64, reading: &mut Reading) -> Result<(), String> {
    if id <= state.last_id {
        return Err(format!(
            "request {id} came after request {}: ids must grow",
            state.last_id
        ));
    }
    state.last_id = id;
    let next_buffer = state
        .big_spare
        .take()
        .or_else(|| state.spares.pop())
        .unwrap_or_default();
    state.queue.push_back(Queued {
        id,
        body: std::mem::replace(&mut reading.body, next_buffer),
        attachments: std::mem::take(&mut reading.attachments),
    });
    Ok(())
}

fn cancel(state: &mut State, id: u64) -> Result<(), String> {
    if state.running == Some(id) {
        // Holding the lock: the task thread cannot start the next one.
        if !super::cancel::ask(id, end_if_still_running) {
            teardown();
        }
        return Ok(());
    }
    if state.queue.iter().any(|queued| queued.id == id) {
        state.cancelled.insert(id);
    } else if id > state.last_id {
        return Err(format!("a cancel of request {id}, which never came"));
    }
    // Otherwise it finished already: nothing to do.
    Ok(())
}

/// Ends the worker if request `id` is still running: its grace period is
/// over. Under the lock, so it cannot finish and the next start meanwhile.
fn end_if_still_running(id: u64) {
    if let Some(inbox) = INBOX.get() {
        let state = lock(&inbox.state);
        if state.running == Some(id) {
            teardown();
        }
    }
}

/// Tasks shorter than this on average start without arming the reader
/// thread (see the module docs).
pub(super) const SHORT_TASK: Duration = Duration::from_micros(100);
/// How often the reader thread looks for a long task it was not armed for.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(20);
/// Most body buffers kept for reuse: as many requests as the pool sends
/// ahead by default (`max_in_flight_per_worker`).
const MAX_SPARES: usize = 64;
/// Larger body buffers are not pooled; only the last of them is kept.
const MAX_SPARE_BYTES: usize = 64 * 1024;

static INBOX: OnceLock<&'static Inbox> = OnceLock::new();

/// Makes `inbox` the one [`expect_reply`] and [`running_task`] use: before
/// any task runs (the reader thread may not be running yet).
pub(super) fn install(inbox: &'static Inbox) {
    let _ = INBOX.set(inbox);
}

/// Makes sure the reply to a call about to be sent is read at once, even
/// while a task runs.
pub(super) fn expect_reply() {
    if let Some(inbox) = INBOX.get() {
        inbox.arm(true);
    }
}

/// Reads and routes frames on this thread until `answered()`, if it is the
/// task thread and no other thread is reading: a task waiting on its own
/// call then reads the reply itself, as it reads its requests, instead of
/// being handed it by the reader thread (two wake-ups, each ~30 µs where it
/// wakes an idle vCPU: a call cost ~50 µs here, a whole task 13 µs).
/// Everything else that comes meanwhile is routed as the reader thread
/// would route it. `false` if it did not read (the caller then waits to be
/// handed its reply).
pub(super) fn read_here_until(mut answered: impl FnMut() -> bool) -> bool {
    let Some(inbox) = INBOX.get() else {
        return false;
    };
    if !super::panic::is_task_thread() {
        return false;
    }
    let Ok(mut reading) = inbox.reading.try_lock() else {
        return false;
    };
    // We read now: the reader thread need not wake for what comes.
    inbox.arm(false);
    while !answered() {
        read_frame(&mut reading, inbox.max_frame);
        let mut state = lock(&inbox.state);
        inbox.route(&mut state, &mut reading);
        while has_whole_frame(&reading) {
            read_frame(&mut reading, inbox.max_frame);
            inbox.route(&mut state, &mut reading);
        }
    }
    drop(reading);
    // As the reader thread leaves it after reading.
    let rearm = lock(&inbox.state).running.is_some() || inbox.link.awaits_replies();
    inbox.arm(rearm);
    true
}

/// The id of the request the task thread is running (0: none).
pub(crate) fn running_task() -> u64 {
    INBOX
        .get()
        .and_then(|inbox| lock(&inbox.state).running)
        .unwrap_or(0)
}

/// The reader thread: reads whatever comes while a task runs, until the
/// pool hangs up or breaks the protocol (then it ends the worker).
pub(super) fn run(inbox: &'static Inbox) -> ! {
    let mut events = Vec::with_capacity(1);
    // The task count seen running at the last wake, if one was.
    let mut seen_running = None;
    let every = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: WATCH_EVERY.as_nanos() as _,
    };
    loop {
        events.clear();
        match epoll::wait(
            &inbox.epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&every),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => fail(&format!("cannot watch the connection: {err}")),
        }
        if events.is_empty() {
            // No frame: is a task running long without us?
            let calls_waiting = inbox.link.awaits_replies();
            let running = {
                let state = lock(&inbox.state);
                state.running.map(|_| state.started)
            };
            // The same task as at the last wake: it has run for a while.
            let long_task = running.is_some() && running == seen_running;
            seen_running = running;
            if long_task || calls_waiting {
                inbox.arm(true); // (a no-op if armed already)
            }
            continue;
        }
        // A one-shot wake: disarmed now, until armed again.
        lock(&inbox.watch).armed = false;
        let mut reading = lock(&inbox.reading);
        while has_more(&reading) {
            read_frame(&mut reading, inbox.max_frame);
            inbox.route(&mut lock(&inbox.state), &mut reading);
        }
        drop(reading);
        let calls_waiting = inbox.link.awaits_replies();
        let rearm = lock(&inbox.state).running.is_some() || calls_waiting;
        inbox.arm(rearm);
    }
}

/// Whether a whole frame is already buffered (so reading it cannot block).
fn has_whole_frame(reading: &Reading) -> bool {
    let buffered = reading.reader.buffer();
    buffered
        .first_chunk::<{ frame::HEADER_LEN }>()
        .is_some_and(|header| {
            (buffered.len() - frame::HEADER_LEN) as u64 >= u64::from_le_bytes(*header)
        })
}

/// Whether a frame (or the end of the stream) can be read without waiting.
fn has_more(reading: &Reading) -> bool {
    if !reading.reader.buffer().is_empty() {
        return true;
    }
    let mut byte = [0u8; 1];
    loop {
        match rustix::net::recv(
            reading.reader.get_ref(),
            &mut byte,
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return false,
            // Bytes, the end of the stream, or an error: reading says which.
            _ => return true,
        }
    }
}

pub(super) fn is_hang_up(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(err.kind(), ConnectionReset | BrokenPipe | UnexpectedEof)
}
