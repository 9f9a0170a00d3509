//! What a pool reports about itself: live counters written by the
//! dispatcher, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A snapshot of what a pool is doing, from [`Pool::stats`](crate::Pool::stats).
///
/// The first four fields are the state now; the others count events since the
/// pool was built. A "task" here is what the pool queues and sends to a
/// worker: one [`submit`](crate::Pool::submit), or one chunk of a
/// [`map`](crate::Pool::map) (however many items it holds). Tasks that fail
/// before they reach the pool's queue (not registered, not encodable, too
/// large, submitted after a shutdown) are not counted anywhere, and neither
/// are tasks ended by [`shutdown_now`](crate::Pool::shutdown_now), by
/// dropping the pool, or by failing to start any worker; so `completed +
/// failed + cancelled` need not add up to the tasks submitted.
///
/// `Stats` is `#[non_exhaustive]`: read its fields, but do not build one
/// with a struct expression (use [`Stats::default`] where a value is needed,
/// e.g. in a test).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(pool: procpool::Pool) {
/// let stats = pool.stats();
/// if stats.alive < stats.workers {
///     eprintln!("{} of {} workers are being replaced", stats.workers - stats.alive, stats.workers);
/// }
/// let finished = stats.completed + stats.failed;
/// if finished > 0 {
///     println!("{:.1}% of tasks failed", 100.0 * stats.failed as f64 / finished as f64);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker slots the pool keeps filled: the
    /// [`workers`](crate::PoolBuilder::workers) it was built with, or, for
    /// an elastic pool ([`max_workers`](crate::PoolBuilder::max_workers)),
    /// how many it has now (between its minimum and maximum), or what
    /// [`Pool::resize`](crate::Pool::resize) set. After a shutdown, what it
    /// was when the shutdown began.
    pub workers: usize,
    /// Workers running, connected and ready for tasks now. Below `workers`
    /// while a worker is being started, replaced or backed off from, and 0
    /// after a shutdown.
    pub alive: usize,
    /// Workers with at least one task sent to them (running, or sent ahead).
    pub busy: usize,
    /// Tasks waiting in the pool's queue for a worker; tasks already sent
    /// ahead to a busy worker are not counted here.
    pub queued: usize,
    /// Tasks that returned a value. A `map` chunk counts once, even if some
    /// of its items panicked (those fail only their items).
    pub completed: u64,
    /// Tasks that panicked, could not be run in the worker (their arguments
    /// or result did not decode or encode), or whose worker died (with no
    /// retry left) or broke the protocol.
    pub failed: u64,
    /// Workers that ended without being asked to (a crash, an outside kill,
    /// a protocol fault) or were killed to cancel or time out the task they
    /// were running; each was replaced. Recycling is counted in `recycled`,
    /// not here.
    pub respawns: u64,
    /// Healthy workers replaced: after [`max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker)
    /// tasks, or for growing past
    /// [`recycle_on_memory_growth`](crate::PoolBuilder::recycle_on_memory_growth).
    pub recycled: u64,
    /// Reruns of tasks whose worker died under them (see
    /// [`PoolBuilder::retries`](crate::PoolBuilder::retries)); a task run
    /// three times counts two.
    pub retried: u64,
    /// Tasks cancelled (handle dropped, or timed out) before they returned:
    /// removed from the queue, skipped by their worker, or killed with it.
    pub cancelled: u64,
}

/// Live counters, written by the dispatcher and read by `Pool::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) workers: AtomicUsize,
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
    /// The counters now.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            workers: self.workers.load(Relaxed),
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
