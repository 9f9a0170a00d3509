//! The worker's sending half of its connection, shared by every thread:
//! the task thread's answers, and calls that any thread makes while a task
//! runs. Frames go out whole, one writer at a time.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::outbox::Outbox;
use crate::wire::call::{self, Service};

/// The worker's connection to its pool, for sending.
pub(crate) struct Link {
    writer: Mutex<UnixStream>,
    calls: Mutex<Calls>,
    /// Signalled when a reply makes room under [`MAX_IN_FLIGHT`].
    room: Condvar,
    /// Threads blocked until a frame from the pool comes (a channel's
    /// credit or message), besides those waiting on calls.
    waiters: AtomicUsize,
    /// How many calls wait for replies: `calls.waiting.len()`, readable
    /// without the lock (the task thread asks once per request).
    awaiting: AtomicUsize,
    /// The largest piece of a channel message one frame may carry.
    piece: usize,
    /// The largest frame body the pool takes.
    max_frame: u64,
    /// Small frames waiting to be written together.
    outbox: Outbox,
}

/// A thread waiting for a frame from the pool: the reader keeps reading
/// while it lives, even if no task runs.
pub(crate) struct Waiting(&'static Link);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Release);
    }
}

/// What the pool's service replied to a call: its answer, or why it
/// refused the call.
pub(crate) type Reply = Result<Vec<u8>, String>;

/// The most calls of one worker that may be unanswered at once; a thread
/// sending ahead waits past it. It bounds what the pool holds for a worker
/// that sends calls and does not read the replies (~100 KiB of small
/// replies), and is far more than a round trip needs to be hidden: at
/// ~20 µs a round trip and ~1 µs a call, about 20 in flight do it.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// Calls sent and not yet answered, by id.
#[derive(Default)]
struct Calls {
    next_id: u64,
    waiting: HashMap<u64, SyncSender<Reply>>,
    /// Threads waiting on `Link::room`.
    wanting_room: usize,
}

/// A call sent, its reply to come.
pub(crate) struct Pending {
    answer: Receiver<Reply>,
}

impl Pending {
    /// Blocks until the reply comes: reading it on this thread if it is
    /// the task thread and no other thread reads (a reply handed between
    /// threads costs two wake-ups), else handed it.
    ///
    /// Never waits for ever: the pool answers every call, and a pool that
    /// goes away ends this process.
    pub(crate) fn wait(self) -> io::Result<Reply> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the pool went away");
        let mut got = None;
        let read = super::reader::read_here_until(|| match self.answer.try_recv() {
            Ok(reply) => {
                got = Some(Ok(reply));
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => {
                got = Some(Err(gone()));
                true
            }
        });
        if let (true, Some(got)) = (read, got) {
            return got;
        }
        super::reader::expect_reply();
        self.answer.recv().map_err(|_| gone())
    }
}

static LINK: OnceLock<Link> = OnceLock::new();

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Holders never leave a frame half-written by panicking (writes return
    // errors), so a poisoned lock still guards whole frames.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Makes `writer` this process's link to its pool.
    pub(super) fn install(writer: UnixStream, max_frame: u64) -> &'static Link {
        LINK.get_or_init(|| Link {
            writer: Mutex::new(writer),
            calls: Mutex::default(),
            room: Condvar::new(),
            waiters: AtomicUsize::new(0),
            piece: crate::wire::channel::piece_for(max_frame),
            max_frame,
            outbox: Outbox::default(),
            awaiting: AtomicUsize::new(0),
        })
    }

    /// The largest piece of a channel message one frame may carry.
    pub(crate) fn piece(&self) -> usize {
        self.piece
    }

    /// The largest frame body the pool takes.
    pub(crate) fn max_frame(&self) -> u64 {
        self.max_frame
    }

    /// Marks this thread as waiting for a frame from the pool until the
    /// guard drops, and makes sure the reader sees it come.
    pub(crate) fn waiting(&'static self) -> Waiting {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        super::reader::expect_reply();
        Waiting(self)
    }

    /// Queues a whole small frame, given in pieces, to go out soon, with others (see
    /// [`Outbox`]); it goes no later than the next frame [`send`](Self::send)
    /// writes.
    pub(crate) fn send_soon(&'static self, frame: &[&[u8]]) -> io::Result<()> {
        self.outbox.push(self, frame, true)
    }

    /// [`send_soon`](Self::send_soon) for the reader thread, which must
    /// never wait on a write: the pool may be waiting for it to read.
    pub(crate) fn send_from_reader(&'static self, frame: &[&[u8]]) -> io::Result<()> {
        self.outbox.push(self, frame, false)
    }

    pub(super) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// This process's link, if it is a worker that is serving.
    pub(crate) fn get() -> Option<&'static Link> {
        LINK.get()
    }

    /// Sends a whole frame, given in pieces, after whatever is queued
    /// (`[]`: just what is queued).
    pub(crate) fn send(&self, pieces: &[&[u8]]) -> io::Result<()> {
        let mut writer = lock(&self.writer);
        if let Some(queued) = self.outbox.take() {
            writer.write_all(&queued)?;
        }
        for piece in pieces {
            writer.write_all(piece)?;
        }
        Ok(())
    }

    /// Asks the pool's `service` and blocks this thread until it replies.
    ///
    /// Never waits for ever: the pool answers every call, and a pool that
    /// goes away ends this process.
    pub(crate) fn call(&'static self, service: Service, args: &[u8]) -> io::Result<Reply> {
        let (id, answer) = self.register(usize::MAX).expect("no bound");
        // The task thread reads its reply itself where it can (see
        // `read_here_until`); other threads are handed theirs.
        if !super::panic::is_task_thread() {
            super::reader::expect_reply();
        }
        self.send(&[&call::call_head(id, service, args.len()), args])?;
        Pending { answer }.wait()
    }

    /// Sends a call to the pool's `service` without waiting for the reply:
    /// it goes out soon, with other small frames (see [`Outbox`]), and the
    /// reply is read by whichever thread reads next. First waits while
    /// [`MAX_IN_FLIGHT`] calls of this process are unanswered.
    pub(crate) fn start(&'static self, service: Service, args: &[u8]) -> io::Result<Pending> {
        // Checked again as it registers: threads sending at once must not
        // all pass one look at the count.
        let (id, answer) = loop {
            if self.awaiting.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                self.wait_for_room();
            }
            if let Some(registered) = self.register(MAX_IN_FLIGHT) {
                break registered;
            }
        };
        // Read while this thread goes on: the replies must not pile up in
        // the pool (which stops reading calls once its replies back up).
        super::reader::expect_reply();
        self.send_soon(&[&call::call_head(id, service, args.len()), args])?;
        Ok(Pending { answer })
    }

    /// A new call id, and where its reply will be handed; `None` if
    /// `bound` calls are unanswered already.
    fn register(&self, bound: usize) -> Option<(u64, Receiver<Reply>)> {
        let mut calls = lock(&self.calls);
        if calls.waiting.len() >= bound {
            return None;
        }
        let (reply, answer) = sync_channel(1);
        calls.next_id += 1;
        let id = calls.next_id;
        calls.waiting.insert(id, reply);
        self.awaiting.store(calls.waiting.len(), Ordering::Release);
        Some((id, answer))
    }

    /// Blocks until fewer than [`MAX_IN_FLIGHT`] calls are unanswered:
    /// reading the replies itself on the task thread, else handed the
    /// news by whoever reads.
    fn wait_for_room(&self) {
        let has_room = || self.awaiting.load(Ordering::Acquire) < MAX_IN_FLIGHT;
        if super::reader::read_here_until(has_room) {
            return;
        }
        super::reader::expect_reply();
        let mut calls = lock(&self.calls);
        while calls.waiting.len() >= MAX_IN_FLIGHT {
            calls.wanting_room += 1;
            calls = self
                .room
                .wait(calls)
                .unwrap_or_else(PoisonError::into_inner);
            calls.wanting_room -= 1;
        }
    }

    /// Whether some thread waits for a reply or another frame.
    pub(super) fn awaits_replies(&self) -> bool {
        self.waiters.load(Ordering::Acquire) > 0 || self.awaiting.load(Ordering::Acquire) != 0
    }

    /// Hands a reply to the thread waiting on call `id`; `Err` if no call
    /// has that id.
    pub(super) fn deliver(&self, id: u64, outcome: Result<Vec<u8>, String>) -> Result<(), String> {
        let waiting = {
            let mut calls = lock(&self.calls);
            let waiting = calls.waiting.remove(&id);
            self.awaiting.store(calls.waiting.len(), Ordering::Release);
            if calls.wanting_room > 0 && calls.waiting.len() < MAX_IN_FLIGHT {
                self.room.notify_all();
            }
            waiting
        };
        match waiting {
            // A caller that sent ahead may have stopped waiting: then the
            // reply is dropped (the call was applied all the same).
            Some(reply) => {
                let _ = reply.send(outcome);
                Ok(())
            }
            None => Err(format!("a reply to call {id}, which was never made")),
        }
    }
}

/// Sends `bytes` to the pool and returns what it sent back: a round trip
/// through the pool's routing of frames a worker starts, from any thread
/// of a running task. For tests and diagnostics.
///
/// # Errors
///
/// `NotConnected` outside a pool's worker; `BrokenPipe` if the pool is gone.
#[doc(hidden)]
pub fn echo_through_pool(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let link = Link::get()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not inside a pool's worker"))?;
    link.call(Service::Echo, bytes)?.map_err(io::Error::other)
}
