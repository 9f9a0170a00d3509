//! What [`Pool::insights`](crate::Pool::insights) reports: each worker's
//! start-up, busy and idle time and tasks, and the run-time and queue-wait
//! distributions over the last [`WINDOW`] tasks.
//!
//! The data lives inside the dispatcher, plain: each live worker keeps its
//! own tally, and one ring per distribution holds the recent samples. The
//! hot path shares nothing new with callers (no atomic, no lock): an answer
//! adds to its worker's tally and writes one slot of a ring; a task handed
//! to a worker writes one slot of the other. `insights()` is a command to
//! the dispatcher, which answers it between two of its rounds, so what it
//! says is consistent with every result a caller has already seen.

use std::fmt;
use std::time::Duration;

/// Samples per distribution: the last 4,096 tasks. Enough that p99 rests
/// on 41 samples above it (with 1,024 it would be 10, and jump with each
/// slow task), small enough to cost 32 KiB per ring and well under a
/// millisecond to sort for a report; at 500k tasks/s it covers the last
/// 8 ms, at 100 tasks/s the last 40 s: "recent" either way.
pub(crate) const WINDOW: usize = 4096;

/// A ring of the last [`WINDOW`] samples, in ns. It grows as samples come
/// (a pool that runs few tasks, or a one-off `Process`, allocates little),
/// then overwrites the oldest.
#[derive(Debug, Default)]
pub(crate) struct Window {
    samples: Vec<u64>,
    /// Where the next sample goes once the ring is full.
    next: usize,
}

impl Window {
    pub(crate) fn record(&mut self, nanos: u64) {
        if self.samples.len() < WINDOW {
            self.samples.push(nanos);
        } else {
            self.samples[self.next] = nanos;
            self.next = (self.next + 1) % WINDOW;
        }
    }

    /// Percentiles of what it holds now (nearest rank).
    pub(crate) fn distribution(&self) -> Distribution {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let at = |fraction: f64| {
            let Some(last) = sorted.len().checked_sub(1) else {
                return Duration::ZERO;
            };
            // Nearest rank: the smallest sample with at least `fraction`
            // of all at or below it.
            let rank = (fraction * sorted.len() as f64).ceil() as usize;
            Duration::from_nanos(sorted[rank.saturating_sub(1).min(last)])
        };
        Distribution {
            count: sorted.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted
                .last()
                .map_or(Duration::ZERO, |&n| Duration::from_nanos(n)),
        }
    }
}

/// The pool's recent samples: how long tasks ran, and how long they
/// waited in the pool's queue.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    pub(crate) run_time: Window,
    pub(crate) queue_wait: Window,
}

/// What a pool is doing and has been doing, from
/// [`Pool::insights`](crate::Pool::insights): every live worker, and how
/// long recent tasks ran and waited. Its `Display` is a table for logs.
///
/// What counts as a task is what [`Stats`](crate::Stats) counts: one
/// [`submit`](crate::Pool::submit), or one chunk of a
/// [`map`](crate::Pool::map), however many items it holds (a chunk is sent,
/// run and timed as one: its run time is that of all its items, and its
/// items are not timed one by one).
///
/// `#[non_exhaustive]`: read its fields; [`Insights::default`] is an empty
/// one.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(pool: procpool::Pool) {
/// let insights = pool.insights().await;
/// println!("{insights}");
/// if insights.queue_wait.p99 > 10 * insights.run_time.p50 {
///     eprintln!("tasks wait far longer than they run: add workers");
/// }
/// for worker in &insights.workers {
///     println!("worker {} ran {} tasks, idle {:?}", worker.pid, worker.tasks, worker.idle);
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Insights {
    /// The workers live now (connected and taking tasks), in the order of
    /// the pool's places for them; one being started or replaced is not
    /// listed.
    pub workers: Vec<WorkerInsights>,
    /// How long the last tasks (up to 4,096) ran, as their workers
    /// measured it: those that returned and those that panicked (not
    /// those whose worker died, was killed to cancel them, or could not
    /// run them).
    pub run_time: Distribution,
    /// How long the last tasks (up to 4,096) waited in the pool's queue:
    /// from `submit` (or the `map` chunk's sending) until the pool handed
    /// them to a worker, which writes them at once unless its socket is
    /// full. A task sent ahead to a busy worker (see
    /// [`max_in_flight_per_worker`](crate::PoolBuilder::max_in_flight_per_worker)) waits there
    /// too, behind the one running; that is in neither figure. A task
    /// retried after its worker died counts its first wait only.
    pub queue_wait: Distribution,
    /// Tasks in the pool's queue now.
    pub queued: usize,
}

/// One live worker, in [`Insights::workers`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInsights {
    /// Its process id.
    pub pid: u32,
    /// From spawning it to its being ready for tasks: the process start,
    /// the handshake, and the [initializer](crate::PoolBuilder::initializer).
    pub startup: Duration,
    /// Since it was ready.
    pub uptime: Duration,
    /// The run times its tasks reported, summed.
    pub busy: Duration,
    /// `uptime` less `busy`: time with no task running (including the
    /// moments between one task's end and the next's start).
    pub idle: Duration,
    /// Tasks it ran: returned, panicked, or could not run (not those
    /// skipped because they were cancelled before they started).
    pub tasks: u64,
    /// Tasks sent to it and not answered yet (the running one and those
    /// sent ahead).
    pub in_flight: usize,
    /// Workers in its place before it that died or were killed (a crash,
    /// a cancel of a running task, a timeout) and were replaced.
    pub replaced: u64,
    /// Healthy workers in its place before it that were recycled
    /// ([`max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker),
    /// [`recycle_on_memory_growth`](crate::PoolBuilder::recycle_on_memory_growth)).
    pub recycled: u64,
}

/// Percentiles (nearest rank) of durations over a recent window; all zero
/// when `count` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Distribution {
    /// Samples in the window (at most 4,096).
    pub count: usize,
    /// The median.
    pub p50: Duration,
    /// 90% of the samples are at most this.
    pub p90: Duration,
    /// 99% of the samples are at most this.
    pub p99: Duration,
    /// The largest sample.
    pub max: Duration,
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Distribution {
            count,
            p50,
            p90,
            p99,
            max,
        } = *self;
        write!(
            f,
            "p50 {:>9} p90 {:>9} p99 {:>9} max {:>9} (last {count})",
            short(p50),
            short(p90),
            short(p99),
            short(max)
        )
    }
}

/// A duration to three significant figures at most, with its unit.
fn short(d: Duration) -> String {
    format!("{d:.1?}")
}

impl fmt::Display for Insights {
    /// A table: one line per worker, then the two distributions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8} {:>8}",
            "pid",
            "start-up",
            "uptime",
            "busy",
            "idle",
            "tasks",
            "in flight",
            "replaced",
            "recycled"
        )?;
        for w in &self.workers {
            writeln!(
                f,
                "{:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8} {:>8}",
                w.pid,
                short(w.startup),
                short(w.uptime),
                short(w.busy),
                short(w.idle),
                w.tasks,
                w.in_flight,
                w.replaced,
                w.recycled
            )?;
        }
        writeln!(f, "run time   {}", self.run_time)?;
        write!(f, "queue wait {}", self.queue_wait)?;
        if self.queued > 0 {
            write!(f, "\n{} queued now", self.queued)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_the_last_samples() {
        let mut window = Window::default();
        assert_eq!(window.distribution(), Distribution::default());
        for n in 1..=100 {
            window.record(n * 1000);
        }
        let d = window.distribution();
        assert_eq!(d.count, 100);
        assert_eq!(d.p50, Duration::from_micros(50));
        assert_eq!(d.p90, Duration::from_micros(90));
        assert_eq!(d.p99, Duration::from_micros(99));
        assert_eq!(d.max, Duration::from_micros(100));
        // Past the window, the oldest go: only the last WINDOW remain.
        for _ in 0..WINDOW {
            window.record(7);
        }
        let d = window.distribution();
        assert_eq!(d.count, WINDOW);
        assert_eq!(d.max, Duration::from_nanos(7));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let mut window = Window::default();
        window.record(5);
        let d = window.distribution();
        assert_eq!(
            (d.p50, d.p99, d.max),
            (
                Duration::from_nanos(5),
                Duration::from_nanos(5),
                Duration::from_nanos(5)
            )
        );
    }
}
