//! What a worker's death means for the tasks it held: the one it was
//! running fails, is retried, or was cancelled; the ones it had not started
//! go back to the front of the queue, in their order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use crate::channel::peer::{Connection, Death};
use crate::error::{Crash, Error, Exit, Repr};
use crate::pool::job::Job;
use crate::pool::stats::Counters;
use crate::wire::conn::InFlight;
use crate::worker::EXIT_OUT_OF_MEMORY;

/// Workers that may die while a task's request is being written to them
/// before the task fails (`Error::is_worker_died`) rather than being sent again.
pub(crate) const MAX_FAILED_DELIVERIES: u32 = 3;

/// How a worker that died running a task ended: out of memory if it exited
/// so under the pool's cap (only the cap makes a worker exit with that code,
/// see `sys::exit_on_out_of_memory_abort`).
fn crash_of(pid: u32, exit: Exit, memory_limit: Option<u64>) -> Crash {
    Crash {
        pid,
        exit,
        out_of_memory_at: memory_limit.filter(|_| exit == Exit::Code(EXIT_OUT_OF_MEMORY)),
    }
}

/// What a worker that is gone or going left behind; its exit status decides
/// what its unanswered requests become.
#[derive(Debug)]
pub(crate) struct Remains {
    pub(crate) pid: u32,
    pub(crate) unanswered: VecDeque<InFlight>,
    /// The first of `unanswered` was completely written: it may have run.
    pub(crate) head_started: bool,
    /// Let go for not following the protocol: why.
    pub(crate) protocol_fault: Option<String>,
    /// Its part in channels, released (telling receivers how it died) as
    /// this is settled.
    pub(crate) channels: Connection,
}

/// Reports the task the worker was running and sends the ones it had not
/// started back to the front of `queue`. `true` if the death counts as one
/// more in a row without running a task (the respawn backs off).
pub(crate) fn settle(
    remains: Remains,
    exit: Exit,
    memory_limit: Option<u64>,
    queue: &mut VecDeque<Job>,
    counters: &Counters,
) -> bool {
    let Remains {
        pid,
        unanswered,
        head_started,
        protocol_fault,
        mut channels,
    } = remains;
    let running = unanswered.front().filter(|_| head_started);
    channels.died(Death {
        pid,
        exit,
        task: running.map(|head| head.job.task),
        stopped: running.is_some_and(|head| head.cancel_sent || head.job.is_cancelled()),
    });
    drop(channels);
    let mut entries = unanswered.into_iter();
    let mut ran_something = false;
    let mut retry = None;
    if head_started && let Some(head) = entries.next() {
        ran_something = true;
        let mut job = head.job;
        let span = job.span.take();
        let entered = span.as_deref().map(tracing::Span::enter);
        if head.cancel_sent || job.is_cancelled() {
            // It died because we asked; its caller is gone.
            counters.cancelled.fetch_add(1, Relaxed);
            tracing::debug!(target: "procpool", worker = pid, %exit, task = job.task,
                "worker stopped for its cancelled (or timed-out) task");
        } else if protocol_fault.is_none() && job.retries_left > 0 {
            tracing::warn!(target: "procpool", worker = pid, %exit, task = job.task,
                retries_left = job.retries_left - 1, "worker died running a task; retrying it");
            job.retries_left -= 1;
            job.record_crash(crash_of(pid, exit, memory_limit));
            // A task that has already taken down a worker before is
            // likely the cause: its deaths back off like a crash loop
            // at start-up, or `retries(u32::MAX)` would respawn hot.
            if job.crashed_workers() > 1 {
                ran_something = false;
            }
            counters.retried.fetch_add(1, Relaxed);
            drop(entered);
            // It goes on: so does its span.
            job.span = span;
            retry = Some(job);
        } else {
            counters.failed.fetch_add(1, Relaxed);
            let task = job.task;
            match &protocol_fault {
                Some(fault) => tracing::warn!(target: "procpool", worker = pid, task,
                    fault = fault.as_str(), "worker broke the protocol and was let go"),
                None => tracing::warn!(target: "procpool", worker = pid, %exit, task,
                    "worker died running a task"),
            }
            let error = match protocol_fault {
                Some(message) => Error::protocol(pid, Some(task), message),
                None => {
                    job.record_crash(crash_of(pid, exit, memory_limit));
                    let crashes = *job.crashes.take().expect("recorded just now");
                    Error::crashed(task, crashes.total, crashes.recent)
                }
            };
            job.finish(Err(error));
        }
    }
    // Never started: they go first again, in their order, behind a
    // retried head. A head whose frame was being written when the
    // worker died may be what killed it: after a few such deaths it
    // fails instead of killing worker after worker.
    let rest: Vec<InFlight> = entries.collect();
    for entry in rest.into_iter().rev() {
        if entry.job.is_cancelled() {
            counters.cancelled.fetch_add(1, Relaxed);
        } else if entry.job.failed_deliveries >= MAX_FAILED_DELIVERIES {
            counters.failed.fetch_add(1, Relaxed);
            let task = entry.job.task;
            entry.job.finish(Err(Error::new(Repr::Undeliverable {
                task,
                attempts: MAX_FAILED_DELIVERIES,
                pid,
                exit,
            })));
        } else {
            queue.push_front(entry.job);
        }
    }
    if let Some(job) = retry {
        queue.push_front(job);
    }
    if !head_started {
        tracing::debug!(target: "procpool", worker = pid, %exit, "worker ended while idle");
    }
    !ran_something
}
