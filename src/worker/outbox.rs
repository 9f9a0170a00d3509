//! Small frames that may wait a moment (channel messages), gathered so a
//! task that sends many writes them in few syscalls: the writer thread
//! takes everything queued while its last write was under way. A frame
//! sent straight on the link (an answer, a call) first writes what is
//! queued, so a task's messages reach the pool before its answer.
//!
//! Measured on the 2-core VM: one `write` per small message capped a task
//! streaming `u64`s to the parent at ~0.55M messages/s.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::link::Link;

/// Bytes queued before a sender waits for the writer thread to catch up.
const QUEUE_LIMIT: usize = 1 << 20;

#[derive(Default)]
pub(super) struct Outbox {
    state: Mutex<Queued>,
    /// Wakes the writer thread: work came.
    work: Condvar,
    /// Wakes senders waiting for room.
    room: Condvar,
    /// Whether anything is queued: the hot path (an answer) reads only this.
    nonempty: AtomicBool,
}

/// (Condvars are signalled only when someone waits: a notify is a
/// syscall whether or not anyone does.)
#[derive(Default)]
struct Queued {
    bytes: Vec<u8>,
    /// The writer thread sleeps until `work` is signalled.
    asleep: bool,
    /// Senders waiting on `room`.
    full: usize,
    started: bool,
    /// A write failed: the pool is gone, and so, soon, is this process.
    failed: bool,
}

fn lock(mutex: &Mutex<Queued>) -> MutexGuard<'_, Queued> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    /// Queues a whole frame, given in pieces, for the writer thread
    /// (started on first use), first waiting while the queue is full if
    /// `wait`.
    pub(super) fn push(&self, link: &'static Link, frame: &[&[u8]], wait: bool) -> io::Result<()> {
        let mut state = lock(&self.state);
        while wait && state.bytes.len() >= QUEUE_LIMIT && !state.failed {
            state.full += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.full -= 1;
        }
        if state.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        for piece in frame {
            state.bytes.extend_from_slice(piece);
        }
        self.nonempty.store(true, Ordering::Release);
        if !state.started {
            state.started = true;
            std::thread::Builder::new()
                .name("procpool-writer".into())
                .spawn(move || link.outbox().run(link))?;
        } else if state.asleep {
            state.asleep = false;
            self.work.notify_one();
        }
        Ok(())
    }

    /// Takes what is queued, if anything (the caller holds the writer lock
    /// and writes it before its own frame).
    pub(super) fn take(&self) -> Option<Vec<u8>> {
        if !self.nonempty.load(Ordering::Acquire) {
            return None;
        }
        let mut state = lock(&self.state);
        self.nonempty.store(false, Ordering::Release);
        let bytes = std::mem::take(&mut state.bytes);
        if state.full > 0 {
            self.room.notify_all();
        }
        (!bytes.is_empty()).then_some(bytes)
    }

    fn run(&self, link: &Link) {
        let mut state = lock(&self.state);
        loop {
            while state.bytes.is_empty() {
                state.asleep = true;
                state = self
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.asleep = false;
            drop(state);
            let written = link.send(&[]);
            state = lock(&self.state);
            if written.is_err() {
                state.failed = true;
                self.room.notify_all();
                return;
            }
        }
    }
}
