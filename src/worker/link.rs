//! The worker's sending half of its connection, shared by every thread:
//! the task thread's answers, and calls that any thread makes while a task
//! runs. Frames go out whole, one writer at a time.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TryRecvError, sync_channel};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use super::outbox::Outbox;
use crate::wire::call::{self, Service};

/// The worker's connection to its pool, for sending.
pub(crate) struct Link {
    writer: Mutex<UnixStream>,
    calls: Mutex<Calls>,
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

/// Calls sent and not yet answered, by id.
#[derive(Default)]
struct Calls {
    next_id: u64,
    waiting: HashMap<u64, SyncSender<Result<Vec<u8>, String>>>,
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
    pub(crate) fn call(
        &self,
        service: Service,
        args: &[u8],
    ) -> io::Result<Result<Vec<u8>, String>> {
        let (reply, answer) = sync_channel(1);
        let id = {
            let mut calls = lock(&self.calls);
            calls.next_id += 1;
            let id = calls.next_id;
            calls.waiting.insert(id, reply);
            self.awaiting.store(calls.waiting.len(), Ordering::Release);
            id
        };
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the pool went away");
        // The task thread reads its reply itself where it can (see
        // `read_here_until`); other threads are handed theirs.
        let by_hand = super::panic::is_task_thread();
        if !by_hand {
            super::reader::expect_reply();
        }
        self.send(&[&call::call_head(id, service, args.len()), args])?;
        if by_hand {
            let mut got = None;
            let read = super::reader::read_here_until(|| match answer.try_recv() {
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
        }
        answer.recv().map_err(|_| gone())
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
            waiting
        };
        match waiting {
            // The caller cannot be gone: it waits until the reply comes.
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
