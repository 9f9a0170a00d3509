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
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::{Error, Repr};
use crate::pool::insights::{Insights, Recent};
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
    /// Keep exactly this many workers from now on (`Pool::resize`).
    Resize(usize),
    /// Say what each worker and recent tasks did (`Pool::insights`).
    Insights(oneshot::Sender<Insights>),
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
    /// How many workers to keep, and to grow to under load.
    pub(crate) size: Size,
}

/// The pool's size: fixed (`min == max`), or elastic between the two.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size {
    /// Workers kept even when idle (at least 1).
    pub(crate) min: usize,
    /// Workers started at most while tasks wait for one.
    pub(crate) max: usize,
    /// How long a worker beyond `min` may be idle before it is let go.
    pub(crate) idle_timeout: Duration,
}

/// Idle checks per idle timeout: a worker is let go after between
/// `IDLE_CHECKS` and `IDLE_CHECKS + 1` quarters of it without a task.
const IDLE_CHECKS: u32 = 4;

/// Ticks every quarter of the idle timeout (at least every millisecond).
fn idle_interval(size: Size) -> Interval {
    let period = (size.idle_timeout / IDLE_CHECKS).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
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
    /// Ticks for an elastic pool's idle checks; `None` for a fixed one,
    /// which pays nothing for elasticity.
    idle_checks: Option<Interval>,
    /// Recent run times and queue waits (`Pool::insights`).
    recent: Recent,
    /// Who asked for insights since the last round: answered together,
    /// with one report, so a flood of asks costs one sort per round.
    asking: Vec<oneshot::Sender<Insights>>,
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
        let idle_checks =
            (settings.size.max > settings.size.min).then(|| idle_interval(settings.size));
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
            idle_checks,
            recent: Recent::default(),
            asking: Vec::new(),
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
                Poll::Ready(Some(Command::Insights(reply))) => self.asking.push(reply),
                Poll::Ready(Some(Command::Resize(n))) => {
                    let n = n.max(1);
                    self.settings.size.min = n;
                    self.settings.size.max = n;
                    self.idle_checks = None;
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
                recent: &mut self.recent,
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

    /// Tells those who asked what each live worker and the recent tasks
    /// did. Answers are counted as they are delivered, in an earlier round
    /// than the ask, so every result a caller has seen is in it.
    fn answer_insights(&mut self) {
        if self.asking.is_empty() {
            return;
        }
        let insights = Insights {
            workers: self.slots.iter().filter_map(Slot::insights).collect(),
            run_time: self.recent.run_time.distribution(),
            queue_wait: self.recent.queue_wait.distribution(),
            queued: self.queue.len(),
        };
        for reply in self.asking.drain(..) {
            let _ = reply.send(insights.clone());
        }
    }

    /// Hands queued tasks to the least loaded workers with room.
    fn assign(&mut self) {
        // Read once per round, and only if a task goes: the tasks handed
        // out together share it as the end of their queue wait.
        let mut now = None;
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
            if let Some(submitted) = job.submitted.take() {
                let now = *now.get_or_insert_with(std::time::Instant::now);
                let waited = now.saturating_duration_since(submitted).as_nanos();
                let waited = u64::try_from(waited).unwrap_or(u64::MAX);
                self.recent.queue_wait.record(waited);
                if let Some(span) = &job.span {
                    // Shown with every later event inside it: "finished".
                    span.record("queue_wait_us", waited / 1_000);
                }
            }
            slot.accept(job, &self.launcher, self.settings.recycle);
        }
    }

    /// An elastic (or resized) pool's size: starts workers while tasks wait
    /// and fewer than `max` are there (and up to `min` in any case), and
    /// lets idle ones go while more than `max` are (after a resize). A
    /// fixed pool at its size skips it all.
    fn fit(&mut self, cx: &mut Context<'_>) {
        let Size { min, max, .. } = self.settings.size;
        if self.draining.is_some() || (min == max && self.slots.len() == max) {
            return;
        }
        let active = self.slots.iter().filter(|slot| !slot.is_retiring()).count();
        let starting = self.slots.iter().filter(|slot| slot.is_starting()).count();
        // One more worker for each task that waits, less those starting
        // (each will take one).
        let target = (active + self.queue.len().saturating_sub(starting)).clamp(min, max);
        if active < target {
            for _ in active..target {
                self.slots.push(Slot::starting(self.launcher.start()));
            }
            // Poll the new slots, so that their starts wake us.
            cx.waker().wake_by_ref();
        }
        let mut excess = active.saturating_sub(max);
        let surplus: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let slot = &self.slots[i];
                let go =
                    excess > 0 && !slot.is_retiring() && (slot.is_idle() || slot.is_starting());
                excess -= usize::from(go);
                go
            })
            .collect();
        self.close_slots(cx, &surplus);
        self.slots.retain(|slot| !slot.is_stopped());
    }

    /// An elastic pool's idle check, a quarter of the idle timeout apart:
    /// a worker beyond `min` found idle (with nothing sent to it in
    /// between) by more than `IDLE_CHECKS` checks in a row is let go.
    fn poll_idle(&mut self, cx: &mut Context<'_>) {
        let Some(ticks) = &mut self.idle_checks else {
            return;
        };
        if ticks.poll_tick(cx).is_pending() || self.draining.is_some() {
            return;
        }
        while ticks.poll_tick(cx).is_ready() {} // registers for the next tick
        let min = self.settings.size.min;
        let mut active = self.slots.iter().filter(|slot| !slot.is_retiring()).count();
        let mut idle = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.is_retiring() && slot.idle_check() > IDLE_CHECKS && active > min {
                idle.push(i);
                active -= 1;
            }
        }
        self.close_slots(cx, &idle);
    }

    /// Tells the workers of these slots to exit (or abandons their start);
    /// each slot leaves the pool once its worker is reaped (see `fit`).
    fn close_slots(&mut self, cx: &mut Context<'_>, which: &[usize]) {
        for &i in which {
            let mut ctx = Ctx {
                launcher: &self.launcher,
                recycle: self.settings.recycle,
                queue: &mut self.queue,
                counters: &self.counters,
                recent: &mut self.recent,
            };
            self.slots[i].close(cx, &mut ctx);
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
        let (mut alive, mut busy, mut workers) = (0, 0, 0);
        for slot in &self.slots {
            workers += usize::from(!slot.is_retiring());
            if let Some(in_flight) = slot.live_load() {
                alive += 1;
                busy += usize::from(in_flight > 0);
            }
        }
        if self.draining.is_none() {
            // After a shutdown, the size it had (`Stats::workers`).
            self.counters.workers.store(workers, Relaxed);
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
                recent: &mut self.recent,
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
        this.answer_insights();
        this.poll_slots(cx);
        this.assign();
        this.fit(cx);
        this.poll_idle(cx);
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
