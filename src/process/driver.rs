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
use crate::pool::job::Job;
use crate::pool::slot::{Ctx, Launch, Slot, StartFailed};
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

    /// A start failed: the job fails with why.
    fn start_failed(&mut self, failed: Option<StartFailed>) {
        if let Some(StartFailed(err)) = failed {
            for job in self.queue.drain(..) {
                job.finish(Err(err.clone()));
            }
        }
    }

    /// The slot stopped with the job still here: the worker died before it
    /// could start it.
    fn fail_unstarted(&mut self) {
        let exit = self.slot.exit().unwrap_or(Exit::Unknown);
        for job in self.queue.drain(..) {
            let task = job.task;
            let error = match job.placed.pid() {
                Some(pid) => Error::new(Repr::WorkerDied { task, pid, exit }),
                None => Error::new(Repr::Cancelled { task, pid: None }),
            };
            job.finish(Err(error));
        }
    }
}

impl Future for Driver {
    type Output = Option<Exit>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Exit>> {
        let this = self.get_mut();
        // The handle let go (dropped, killed) before the worker took the job.
        if let Some(job) = this.queue.front_mut()
            && job.reply.poll_closed(cx).is_ready()
        {
            this.queue.clear();
        }
        let mut ctx = Ctx {
            launcher: &this.launcher,
            queue: &mut this.queue,
            counters: &this.counters,
        };
        let failed = this.slot.poll(cx, &mut ctx);
        this.start_failed(failed);
        if this.slot.room(1).is_some()
            && let Some(job) = this.queue.pop_front()
        {
            this.slot.accept(job, &this.launcher, None);
        }
        let mut ctx = Ctx {
            launcher: &this.launcher,
            queue: &mut this.queue,
            counters: &this.counters,
        };
        let failed = this.slot.flush(cx, &mut ctx);
        this.start_failed(failed);
        // Answered (or abandoned): the worker's work is done. Closing lets
        // it exit on the hang-up, and reaps it.
        if this.queue.is_empty() && this.slot.is_drained() && !this.slot.is_stopped() {
            let mut ctx = Ctx {
                launcher: &this.launcher,
                queue: &mut this.queue,
                counters: &this.counters,
            };
            this.slot.close(cx, &mut ctx);
        }
        if this.slot.is_stopped() {
            this.fail_unstarted();
            return Poll::Ready(this.slot.exit());
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
