//! One place in the pool, and the worker process that fills it: its
//! lifecycle (starting, live, being reaped, backing off, closing), what each
//! transition means for the tasks it holds, and what the pool knows about it.
//!
//! * this file: the state machine, [`Slot::poll`];
//! * [`live`]: a live worker as the pool sees it ([`LiveWorker`]), and what
//!   its frames mean;
//! * [`settle`]: what a worker's death means for the tasks it held;
//! * [`launch`]: how a worker is started and what its process is, as two
//!   traits, so the machine is tested over `tokio::io::duplex` without
//!   processes.
//!
//! The dispatcher owns the queue and chooses where tasks go; a slot gets
//! what it needs of the pool through a [`Ctx`], and tells the dispatcher of
//! a failed start ([`StartFailed`]), which decides whether to give up on
//! the queue across all slots.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Sleep;

use crate::error::{Error, Exit, Repr};
use crate::pool::insights::{Recent, WorkerInsights};
use crate::pool::job::Job;
use crate::pool::stats::Counters;

pub(crate) mod launch;
pub(crate) mod live;
pub(crate) mod settle;
#[cfg(test)]
mod tests;

pub(crate) use launch::{Launch, Launched, Starting, WorkerProcess, start_local};
use live::LiveWorker;
use settle::Remains;

const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a worker told to abandon its running task has to kill itself
/// before the pool kills it: one that is stopped (SIGSTOP, SIGTTOU) or
/// otherwise unresponsive cannot act on the message.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(500);
/// How long a frame may sit part-way received with no more bytes coming
/// before the worker is taken for broken. A worker writes each answer in one
/// go, so a frame that stops mid-way means a stopped writer or a garbage
/// length (a task writing to its socket) that would otherwise be waited on
/// for ever.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// Bytes of cancels and replies that may wait to be written to a worker
/// before the pool stops reading what it sends (its calls wait then, not
/// the pool's memory).
pub(crate) const CONTROL_BACKLOG_LIMIT: usize = 4 << 20;
/// How long a worker whose socket closed, or that was asked to exit, has
/// to exit on its own before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// When a worker is replaced by a fresh one while it is healthy.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recycle {
    /// After it was sent this many requests (`max_tasks_per_worker`).
    pub(crate) max_tasks: Option<u64>,
    /// Once its resident memory has grown by more than this many bytes
    /// since before its first task (`recycle_on_memory_growth`).
    pub(crate) memory_growth: Option<u64>,
}

/// What a slot needs of the pool while it moves: where tasks go back to,
/// the counters, and how to start a replacement.
pub(crate) struct Ctx<'a, L> {
    pub(crate) launcher: &'a L,
    /// When to recycle a healthy worker.
    pub(crate) recycle: Recycle,
    /// The pool's queue: tasks a dead worker had not started go back to
    /// its front, in their order.
    pub(crate) queue: &'a mut VecDeque<Job>,
    pub(crate) counters: &'a Counters,
    /// Where answers add their run time (`Pool::insights`).
    pub(crate) recent: &'a mut Recent,
}

/// A replacement could not be started; the slot backs off and tries again.
#[derive(Debug)]
#[must_use = "the dispatcher decides whether every slot has given up"]
pub(crate) struct StartFailed(pub(crate) Error);

#[derive(Debug)]
pub(crate) enum State<L: Launch> {
    Starting(Starting<L>),
    Live(Box<LiveWorker<L>>),
    /// The worker is gone or going; its exit status decides what its
    /// unanswered requests become.
    Reaping {
        reaper: JoinHandle<Exit>,
        remains: Remains,
    },
    Backoff(Pin<Box<Sleep>>),
    /// Shutting down: the worker was told to exit and is being reaped.
    Closing(JoinHandle<()>),
    Stopped,
}

impl<L: Launch> State<L> {
    fn backoff(failures: u32) -> State<L> {
        State::Backoff(Box::pin(tokio::time::sleep(
            backoff(failures).unwrap_or(BACKOFF_FIRST),
        )))
    }
}

#[derive(Debug)]
pub(crate) struct Slot<L: Launch> {
    state: State<L>,
    /// Deaths in a row without running a task; drives the respawn backoff.
    failures: u32,
    /// A [`Process`](crate::Process)'s slot: it is filled once, and stops
    /// instead of starting a replacement or backing off.
    one_shot: bool,
    /// How its worker ended, when a one-shot slot's worker died (learnt
    /// while reaping it).
    exit: Option<Exit>,
    /// For an elastic pool's idle check: requests its worker had been sent
    /// at the last check, and checks in a row that found it idle since.
    idle_seen: u64,
    idle_checks: u32,
    /// Workers in this place that died and were replaced, and that were
    /// recycled (`WorkerInsights`).
    replaced: u64,
    recycled: u64,
}

impl<L: Launch> Slot<L> {
    /// A slot filled by a worker started (and greeted) already.
    pub(crate) fn live(launched: Launched<L::Io, L::Process>, max_frame: u64) -> Slot<L> {
        let worker = LiveWorker::new(launched, max_frame);
        Slot::in_state(State::Live(Box::new(worker)), false)
    }

    /// A slot whose worker is on its way up (an elastic pool growing).
    pub(crate) fn starting(starting: Starting<L>) -> Slot<L> {
        Slot::in_state(State::Starting(starting), false)
    }

    fn in_state(state: State<L>, one_shot: bool) -> Slot<L> {
        Slot {
            state,
            failures: 0,
            one_shot,
            exit: None,
            idle_seen: 0,
            idle_checks: 0,
            replaced: 0,
            recycled: 0,
        }
    }

    /// A slot for one worker, on its way up, that is never replaced: a
    /// failed start or the worker's death stops the slot
    /// ([`is_stopped`](Self::is_stopped)), and [`exit`](Self::exit) says
    /// how a dead one ended.
    pub(crate) fn one_shot(starting: Starting<L>) -> Slot<L> {
        Slot::in_state(State::Starting(starting), true)
    }

    /// How a one-shot slot's worker ended, once it died and was reaped.
    pub(crate) fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// Drives the slot until it waits on something. `Some` if a start
    /// failed on the way.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        ctx: &mut Ctx<'_, L>,
    ) -> Option<StartFailed> {
        let mut failed = None;
        loop {
            let state = std::mem::replace(&mut self.state, State::Stopped);
            // `moved`: the slot entered a new state, which must be polled once
            // so that it registers for its next wake-up.
            let (next, moved) = match state {
                State::Starting(mut handle) => match Pin::new(&mut handle).poll(cx) {
                    Poll::Pending => (State::Starting(handle), false),
                    Poll::Ready(Ok(Ok(launched))) => {
                        let worker = LiveWorker::new(launched, ctx.launcher.max_frame());
                        (State::Live(Box::new(worker)), true)
                    }
                    Poll::Ready(Ok(Err(err))) => (self.start_failed(err, &mut failed), true),
                    Poll::Ready(Err(join)) => (
                        self.start_failed(Error::spawn(join.to_string(), None), &mut failed),
                        true,
                    ),
                },
                State::Live(mut worker) => {
                    match worker.poll(cx, ctx.counters, ctx.recent, &mut self.failures) {
                        Ok(()) => {
                            if let Some(growth) = ctx.recycle.memory_growth {
                                worker.check_growth(ctx.launcher, growth);
                            }
                            if worker.successor.is_some() && worker.conn.in_flight() == 0 {
                                // Recycled: its last task is done; its successor takes over.
                                let successor = worker.successor.take().expect("checked");
                                tracing::debug!(target: "procpool", worker = worker.pid,
                                    tasks = worker.answered, "worker recycled");
                                drop(worker.close(false));
                                ctx.counters.recycled.fetch_add(1, Relaxed);
                                self.recycled += 1;
                                (State::Starting(successor), true)
                            } else {
                                (State::Live(worker), false)
                            }
                        }
                        Err(fault) => (worker.retire(fault), true),
                    }
                }
                State::Reaping {
                    mut reaper,
                    remains,
                } => match Pin::new(&mut reaper).poll(cx) {
                    Poll::Pending => (State::Reaping { reaper, remains }, false),
                    Poll::Ready(exit) => {
                        let exit = exit.unwrap_or(Exit::Unknown);
                        if settle::settle(
                            remains,
                            exit,
                            ctx.launcher.memory_limit(),
                            ctx.queue,
                            ctx.counters,
                        ) {
                            self.failures += 1;
                        }
                        if self.one_shot {
                            self.exit = Some(exit);
                            (State::Stopped, false)
                        } else {
                            tracing::debug!(target: "procpool", "replacing the worker");
                            ctx.counters.respawns.fetch_add(1, Relaxed);
                            self.replaced += 1;
                            (self.replace(ctx.launcher), true)
                        }
                    }
                },
                State::Backoff(mut sleep) => match sleep.as_mut().poll(cx) {
                    Poll::Pending => (State::Backoff(sleep), false),
                    Poll::Ready(()) => (State::Starting(ctx.launcher.start()), true),
                },
                State::Closing(mut handle) => match Pin::new(&mut handle).poll(cx) {
                    Poll::Pending => (State::Closing(handle), false),
                    Poll::Ready(_) => (State::Stopped, false),
                },
                State::Stopped => (State::Stopped, false),
            };
            self.state = next;
            if !moved {
                return failed;
            }
        }
    }

    /// Writes what was assigned to a live worker and passes on
    /// cancellations (last, so that every task in flight is watched); kills
    /// a worker that ignored the cancel of its running task.
    ///
    /// A worker that cannot be written to is not let go at once: it is
    /// killed, and its answers are read until the end of the stream, since
    /// answers it sent before dying may still be unread (the read side's
    /// readiness can lag), and dropping them would report finished tasks as
    /// lost and rerun the ones behind them.
    pub(crate) fn flush(
        &mut self,
        cx: &mut Context<'_>,
        ctx: &mut Ctx<'_, L>,
    ) -> Option<StartFailed> {
        let mut failed = None;
        if let State::Live(worker) = &mut self.state
            && worker.flush(cx)
        {
            failed = self.poll(cx, ctx);
        }
        if let State::Live(worker) = &mut self.state {
            worker.enforce_cancel(cx, ctx.launcher.cancel_grace());
        }
        failed
    }

    /// A start failed: back off, longer after each failure in a row.
    fn start_failed(&mut self, err: Error, failed: &mut Option<StartFailed>) -> State<L> {
        self.failures += 1;
        tracing::warn!(target: "procpool", error = %err, failures_in_a_row = self.failures,
            "a worker failed to start");
        *failed = Some(StartFailed(err));
        if self.one_shot {
            return State::Stopped;
        }
        State::backoff(self.failures)
    }

    /// What to do after a death: replace at once, or after a backoff if the
    /// worker keeps dying without running anything.
    fn replace(&self, launcher: &L) -> State<L> {
        match backoff(self.failures) {
            None => State::Starting(launcher.start()),
            Some(_) => State::backoff(self.failures),
        }
    }

    /// Tasks in flight on a worker that takes more (it has fewer than its
    /// capacity, at most `max_depth`); `None` if there is no such worker.
    pub(crate) fn room(&self, max_depth: usize) -> Option<usize> {
        match &self.state {
            State::Live(worker) if worker.conn.in_flight() < worker.capacity(max_depth) => {
                Some(worker.conn.in_flight())
            }
            _ => None,
        }
    }

    /// Sends `job` to the live worker (which [`room`](Self::room) said has
    /// room); starts its replacement when `recycle` says so.
    pub(crate) fn accept(&mut self, job: Job, launcher: &L, recycle: Recycle) {
        let State::Live(worker) = &mut self.state else {
            unreachable!("tasks go only to a live worker with room");
        };
        worker.accept(job, launcher, recycle);
    }

    /// What its worker has done, if it is live (`Pool::insights`).
    pub(crate) fn insights(&self) -> Option<WorkerInsights> {
        match &self.state {
            State::Live(worker) => Some(worker.insights(self.replaced, self.recycled)),
            _ => None,
        }
    }

    /// Tasks in flight on its worker, if it is live.
    pub(crate) fn live_load(&self) -> Option<usize> {
        match &self.state {
            State::Live(worker) => Some(worker.conn.in_flight()),
            _ => None,
        }
    }

    /// Deaths or failed starts in a row without running a task.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Nothing in flight, nothing that could come back to the queue.
    pub(crate) fn is_drained(&self) -> bool {
        match &self.state {
            State::Live(worker) => worker.conn.in_flight() == 0,
            State::Reaping { remains, .. } => remains.unanswered.is_empty(),
            _ => true,
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// Closing or closed: no longer one of the pool's workers.
    pub(crate) fn is_retiring(&self) -> bool {
        matches!(self.state, State::Closing(_) | State::Stopped)
    }

    /// Waiting for a worker to start (or to try again).
    pub(crate) fn is_starting(&self) -> bool {
        matches!(self.state, State::Starting(_) | State::Backoff(_))
    }

    /// Whether its worker is live, holds nothing and is not being
    /// recycled: it can be let go without losing anything.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(&self.state, State::Live(worker)
            if worker.conn.in_flight() == 0 && worker.successor.is_none())
    }

    /// One idle check of an elastic pool: how many checks in a row have
    /// found its worker idle with nothing sent to it in between (0: busy,
    /// or not live).
    pub(crate) fn idle_check(&mut self) -> u32 {
        let assigned = match &self.state {
            State::Live(worker) if self.is_idle() => worker.assigned,
            _ => {
                self.idle_checks = 0;
                return 0;
            }
        };
        if self.idle_checks > 0 && assigned == self.idle_seen {
            self.idle_checks += 1;
        } else {
            self.idle_checks = 1;
        }
        self.idle_seen = assigned;
        self.idle_checks
    }

    /// `shutdown_now`: fails everything in flight with a shutdown error and
    /// kills the worker; it is reaped as the slot closes.
    pub(crate) fn abandon(&mut self) {
        self.state = match std::mem::replace(&mut self.state, State::Stopped) {
            State::Live(mut worker) => {
                for entry in worker.take_unanswered() {
                    entry.job.finish(shut_down());
                }
                State::Closing(worker.close(true))
            }
            State::Reaping { reaper, remains } => {
                for entry in remains.unanswered {
                    entry.job.finish(shut_down());
                }
                State::Closing(tokio::spawn(async move {
                    let _ = reaper.await;
                }))
            }
            State::Starting(handle) => State::Closing(abort_start::<L>(handle)),
            other => other,
        };
    }

    /// Tells the worker to exit (a shutdown whose tasks are all done); the
    /// slot is [stopped](Self::is_stopped) once it is reaped.
    pub(crate) fn close(&mut self, cx: &mut Context<'_>, ctx: &mut Ctx<'_, L>) {
        self.state = match std::mem::replace(&mut self.state, State::Stopped) {
            State::Live(worker) => State::Closing(worker.close(false)),
            State::Starting(handle) => State::Closing(abort_start::<L>(handle)),
            State::Reaping { reaper, .. } => State::Closing(tokio::spawn(async move {
                let _ = reaper.await;
            })),
            State::Backoff(_) => State::Stopped,
            other => other,
        };
        // Closing or stopped: nothing here starts a worker.
        let _ = self.poll(cx, ctx);
    }

    /// The pool is dropped: fails what is in flight with a shutdown error;
    /// the worker dies as its process is dropped.
    pub(crate) fn discard(&mut self) {
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Live(mut worker) => {
                for entry in worker.take_unanswered() {
                    entry.job.finish(shut_down());
                }
            }
            State::Reaping { remains, .. } => {
                for entry in remains.unanswered {
                    entry.job.finish(shut_down());
                }
            }
            State::Starting(handle) => handle.abort(),
            _ => {}
        }
    }
}

fn shut_down<T>() -> Result<T, Error> {
    Err(Error::new(Repr::ShutDown))
}

/// Stops a worker that is still starting: no task waits for it, and its
/// handshake may take long (a slow initializer, a stopped process).
fn abort_start<L: Launch>(handle: Starting<L>) -> JoinHandle<()> {
    handle.abort();
    tokio::spawn(async move {
        // Finished before the abort: end it here. Aborted: the start's own
        // process was dropped, which kills it and reaps it in the background.
        if let Ok(Ok(launched)) = handle.await {
            launched.process.kill_and_wait().await;
        }
    })
}

/// How long to wait before replacing a worker that died `failures` times in a
/// row without running a task; `None` means at once.
fn backoff(failures: u32) -> Option<Duration> {
    if failures == 0 {
        return None;
    }
    let factor = 1u32 << (failures - 1).min(16);
    Some(BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX))
}
