//! The background task that owns the workers.
//!
//! One future, polled by tokio, holds every piece of mutable pool state: the
//! queue, each worker's socket and requests in flight, the children. Nothing
//! is shared with the submitting tasks but a channel in and a oneshot per task
//! out, so there is no lock on the hot path and no state to get out of sync.
//!
//! Each worker is pipelined: it holds up to `capacity()` requests, so it never
//! waits a round trip between tasks. The depth adapts to how long its tasks
//! take (about a millisecond of queued work), so short tasks are batched many
//! per system call while long ones are not stuck behind each other on one
//! worker while another is idle.
//!
//! What happens to one worker, and to the tasks it holds when it dies, is
//! the [`slot`](crate::pool::slot)'s; the dispatcher keeps the queue, chooses
//! where tasks go, and orchestrates shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Repr};
use crate::pool::job::Job;
use crate::pool::slot::{Ctx, Launch, Launched, Recycle, Slot, StartFailed};
use crate::pool::stats::Counters;

/// What a pool handle asks of the dispatcher.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Job),
    /// Finish everything queued, stop the workers, then answer.
    Shutdown(oneshot::Sender<()>),
    /// Fail everything queued, kill the workers, then answer.
    ShutdownNow(oneshot::Sender<()>),
}

/// Failed starts in a row, in every slot, before queued tasks are failed.
const GIVE_UP_AFTER: u32 = 3;

/// How a dispatcher treats its workers; from the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Most requests sent ahead to one worker.
    pub(crate) max_depth: usize,
    /// When to replace a healthy worker.
    pub(crate) recycle: Recycle,
}

/// Generic over how workers are started (real processes, or the slot
/// tests' mock), monomorphised: the pool runs `Dispatcher<Arc<WorkerSpec>>`.
#[derive(Debug)]
pub(crate) struct Dispatcher<L: Launch> {
    commands: mpsc::UnboundedReceiver<Command>,
    queue: VecDeque<Job>,
    slots: Vec<Slot<L>>,
    launcher: L,
    counters: Arc<Counters>,
    settings: Settings,
    /// `Some` once a shutdown was asked for: who to tell when it is done.
    draining: Option<Vec<oneshot::Sender<()>>>,
}

impl<L: Launch> Dispatcher<L> {
    pub(crate) fn new(
        commands: mpsc::UnboundedReceiver<Command>,
        workers: Vec<Launched<L::Io, L::Process>>,
        launcher: L,
        counters: Arc<Counters>,
        settings: Settings,
    ) -> Dispatcher<L> {
        let max_frame = launcher.max_frame();
        let slots = workers
            .into_iter()
            .map(|launched| Slot::live(launched, max_frame))
            .collect();
        Dispatcher {
            commands,
            queue: VecDeque::new(),
            slots,
            launcher,
            counters,
            settings: Settings {
                max_depth: settings.max_depth.max(1),
                ..settings
            },
            draining: None,
        }
    }

    /// Takes in new commands. `false` once every `Pool` handle is gone and
    /// no one awaits a shutdown: then the workers are killed (see `Drop`).
    fn take_commands(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(Command::Submit(job))) => {
                    if self.draining.is_some() {
                        job.finish(Err(Error::new(Repr::ShutDown)));
                    } else {
                        self.queue.push_back(job);
                    }
                }
                Poll::Ready(Some(Command::Shutdown(done))) => {
                    self.draining.get_or_insert_with(Vec::new).push(done)
                }
                Poll::Ready(Some(Command::ShutdownNow(done))) => {
                    self.draining.get_or_insert_with(Vec::new).push(done);
                    self.abandon_all();
                }
                // Every handle is gone. A shutdown carries on only while
                // someone still awaits it; an abandoned one must not keep
                // workers alive with nobody left to stop them.
                Poll::Ready(None) => {
                    let Some(waiters) = &mut self.draining else {
                        return false;
                    };
                    waiters.retain_mut(|waiter| waiter.poll_closed(cx).is_pending());
                    return !waiters.is_empty();
                }
                Poll::Pending => return true,
            }
        }
    }

    /// Drives every slot until it waits on something.
    fn poll_slots(&mut self, cx: &mut Context<'_>) {
        self.for_each_slot(cx, Slot::poll);
    }

    /// Runs `step` on every slot with what it needs of the pool, and acts
    /// on a failed start it reports.
    fn for_each_slot(
        &mut self,
        cx: &mut Context<'_>,
        step: fn(&mut Slot<L>, &mut Context<'_>, &mut Ctx<'_, L>) -> Option<StartFailed>,
    ) {
        for i in 0..self.slots.len() {
            let mut ctx = Ctx {
                launcher: &self.launcher,
                recycle: self.settings.recycle,
                queue: &mut self.queue,
                counters: &self.counters,
            };
            if let Some(failed) = step(&mut self.slots[i], cx, &mut ctx) {
                self.start_failed(failed);
            }
        }
    }

    /// A replacement could not be started (its slot backs off). If no worker
    /// is left, queued tasks fail with the reason rather than wait for a
    /// recovery that may not come.
    ///
    /// One failed start is often transient (a worker killed from outside
    /// before its handshake), so queued tasks fail only once every slot has
    /// failed to start `GIVE_UP_AFTER` times in a row with no worker live:
    /// by then the cause is the program, not bad luck.
    fn start_failed(&mut self, StartFailed(err): StartFailed) {
        let hopeless = self
            .slots
            .iter()
            .all(|slot| slot.failures() >= GIVE_UP_AFTER && slot.live_load().is_none());
        if hopeless {
            let reason = err.to_string();
            for job in self.queue.drain(..) {
                job.finish(Err(Error::spawn(
                    format!("no worker is running and none could be started: {reason}"),
                    None,
                )));
            }
        }
    }

    /// Hands queued tasks to the least loaded workers with room.
    fn assign(&mut self) {
        while let Some(job) = self.queue.front() {
            if job.is_cancelled() {
                self.queue.pop_front();
                self.counters.cancelled.fetch_add(1, Relaxed);
                continue;
            }
            let max_depth = self.settings.max_depth;
            let target = self
                .slots
                .iter_mut()
                .filter_map(|slot| Some((slot.room(max_depth)?, slot)))
                .min_by_key(|&(load, _)| load);
            let Some((_, slot)) = target else { break };
            let mut job = self.queue.pop_front().expect("front exists");
            // Out of the queue: its room under `max_queued` is free again.
            drop(job.room.take());
            slot.accept(job, &self.launcher, self.settings.recycle);
        }
    }

    /// Writes what was assigned and passes on cancellations (see
    /// [`Slot::flush`]).
    fn flush(&mut self, cx: &mut Context<'_>) {
        self.for_each_slot(cx, Slot::flush);
    }

    /// `shutdown_now`: fails everything queued or in flight with a shutdown
    /// error and kills every worker. Reaping happens as slots close.
    fn abandon_all(&mut self) {
        for job in self.queue.drain(..) {
            job.finish(Err(Error::new(Repr::ShutDown)));
        }
        for slot in &mut self.slots {
            slot.abandon();
        }
    }

    fn publish_counters(&self) {
        let (mut alive, mut busy) = (0, 0);
        for slot in &self.slots {
            if let Some(in_flight) = slot.live_load() {
                alive += 1;
                busy += usize::from(in_flight > 0);
            }
        }
        self.counters.alive.store(alive, Relaxed);
        self.counters.busy.store(busy, Relaxed);
        self.counters.queued.store(self.queue.len(), Relaxed);
    }

    /// Nothing queued, nothing running, nothing that could come back.
    fn is_drained(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(Slot::is_drained)
    }

    /// Tells every worker to exit; `Ready` once all are reaped.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for slot in &mut self.slots {
            let mut ctx = Ctx {
                launcher: &self.launcher,
                recycle: self.settings.recycle,
                queue: &mut self.queue,
                counters: &self.counters,
            };
            slot.close(cx, &mut ctx);
        }
        if self.slots.iter().all(Slot::is_stopped) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<L: Launch> Future for Dispatcher<L> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.take_commands(cx) {
            return Poll::Ready(()); // every Pool was dropped: Drop kills the workers
        }
        this.poll_slots(cx);
        this.assign();
        this.flush(cx);
        this.publish_counters();
        if this.draining.is_some() && this.is_drained() && this.poll_close(cx).is_ready() {
            this.publish_counters();
            for done in this.draining.take().into_iter().flatten() {
                let _ = done.send(());
            }
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<L: Launch> Drop for Dispatcher<L> {
    /// The pool is gone without a shutdown (or the runtime is): kill every
    /// worker now, fail what was outstanding, and reap.
    fn drop(&mut self) {
        for job in self.queue.drain(..) {
            job.finish(Err(Error::new(Repr::ShutDown)));
        }
        for slot in &mut self.slots {
            slot.discard();
        }
        self.launcher.kill_all();
    }
}
