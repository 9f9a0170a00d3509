//! What a pool reports about itself: live counters written by the
//! dispatcher, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A snapshot of what a pool is doing, from [`Pool::stats`](crate::Pool::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker slots the pool keeps filled.
    pub workers: usize,
    /// Workers running and connected now.
    pub alive: usize,
    /// Workers with at least one task sent to them.
    pub busy: usize,
    /// Tasks waiting for a worker.
    pub queued: usize,
    /// Tasks that returned a value.
    pub completed: u64,
    /// Tasks that panicked, or whose worker died or misbehaved.
    pub failed: u64,
    /// Workers replaced after they died or were killed.
    pub respawns: u64,
    /// Workers replaced after `max_tasks_per_worker` tasks.
    pub recycled: u64,
    /// Tasks run again after their worker died (see `PoolBuilder::retries`).
    pub retried: u64,
    /// Tasks cancelled (handle dropped, or timed out) before they returned.
    pub cancelled: u64,
}

/// Live counters, written by the dispatcher and read by `Pool::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) alive: AtomicUsize,
    pub(crate) busy: AtomicUsize,
    pub(crate) queued: AtomicUsize,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) respawns: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

impl Counters {
    /// The counters now, for a pool of `workers` slots.
    pub(crate) fn snapshot(&self, workers: usize) -> Stats {
        Stats {
            workers,
            alive: self.alive.load(Relaxed),
            busy: self.busy.load(Relaxed),
            queued: self.queued.load(Relaxed),
            completed: self.completed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            respawns: self.respawns.load(Relaxed),
            recycled: self.recycled.load(Relaxed),
            retried: self.retried.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
        }
    }
}
