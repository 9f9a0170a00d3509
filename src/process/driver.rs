//! The background future behind one [`Process`](crate::Process): a
//! dispatcher of one task for one [`Slot`] that is never refilled.
//!
//! It is the pool's machinery with the pool taken away: the slot starts the
//! worker ([`local::start`](crate::launch::local::start)), its
//! [`LiveWorker`](crate::pool::slot::live) routes every frame the worker
//! sends (answers, calls, and whatever kinds come next), and its reaping
//! attributes a death to the task ([`settle`](crate::pool::slot::settle)).
//! What is left here is the part a pool of one does not need: one job and
//! no queue to speak of. The handle's `kill` is the pool's cancel: it drops
//! its end of the job.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{Error, Exit, Repr};
use crate::launch::local::WorkerSpec;
use crate::pool::insights::Recent;
use crate::pool::job::Job;
use crate::pool::slot::{Ctx, Launch, Recycle, Slot, StartFailed};
use crate::pool::stats::Counters;

/// Runs one job in one fresh worker, then lets the worker go (and reaps it)
/// or, if it died, settles its death on the job. It completes once the
/// worker is reaped, with how it ended if it died.
#[derive(Debug)]
pub(crate) struct Driver {
    slot: Slot<Arc<WorkerSpec>>,
    /// The job until the worker takes it; a job the worker died before
    /// starting comes back here (as it would to a pool's queue).
    queue: VecDeque<Job>,
    launcher: Arc<WorkerSpec>,
    counters: Counters,
}

impl Driver {
    /// Starts the worker for `job` at once.
    pub(crate) fn new(launcher: Arc<WorkerSpec>, job: Job) -> Driver {
        Driver {
            slot: Slot::one_shot(launcher.start()),
            queue: VecDeque::from([job]),
            launcher,
            counters: Counters::default(),
        }
    }
}

/// The slot stopped with the job still in `queue`: the worker died before it
/// could start it (a failed start has failed it already).
fn fail_unstarted(queue: &mut VecDeque<Job>, exit: Option<Exit>) {
    for job in queue.drain(..) {
        let task = job.task;
        let error = match job.placed.pid() {
            Some(pid) => Error::new(Repr::WorkerDied {
                task,
                pid,
                exit: exit.unwrap_or(Exit::Unknown),
            }),
            None => Error::spawn(
                format!("the process for `{task}` stopped before it started"),
                None,
            ),
        };
        job.finish(Err(error));
    }
}

impl Future for Driver {
    type Output = Option<Exit>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Exit>> {
        let Driver {
            slot,
            queue,
            launcher,
            counters,
        } = self.get_mut();
        // The handle let go (dropped, killed) before the worker took the job.
        if let Some(job) = queue.front_mut()
            && job.reply.poll_closed(cx).is_ready()
        {
            queue.clear();
        }
        let mut ctx = Ctx {
            launcher,
            recycle: Recycle::default(),
            queue,
            counters,
            recent: &mut Recent::default(),
        };
        let mut failed = slot.poll(cx, &mut ctx);
        if slot.room(1).is_some()
            && let Some(job) = ctx.queue.pop_front()
        {
            slot.accept(job, ctx.launcher, Recycle::default());
        }
        failed = failed.or(slot.flush(cx, &mut ctx));
        if let Some(StartFailed(err)) = failed {
            for job in ctx.queue.drain(..) {
                job.finish(Err(err.clone()));
            }
        }
        // Answered (or abandoned): the worker's work is done. Closing lets
        // it exit on the hang-up, and reaps it.
        if ctx.queue.is_empty() && slot.is_drained() && !slot.is_stopped() {
            slot.close(cx, &mut ctx);
        }
        if slot.is_stopped() {
            fail_unstarted(ctx.queue, slot.exit());
            return Poll::Ready(slot.exit());
        }
        Poll::Pending
    }
}

impl Drop for Driver {
    /// The runtime is going away under a process still running: kill it and
    /// reap it now, as a dropped pool does.
    fn drop(&mut self) {
        for job in self.queue.drain(..) {
            job.finish(Err(Error::new(Repr::ShutDown)));
        }
        self.slot.discard();
        self.launcher.kill_all();
    }
}
