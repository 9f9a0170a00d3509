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

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Exit, Repr};
use crate::launch::spawn::{Spawned, WorkerSpec};
use crate::pool::job::{Job, Reply};
use crate::pool::slot::{self, Fault, Slot, State, Worker};
use crate::pool::stats::Counters;
use crate::wire::answer::{self, Response};
use crate::wire::call::{self, Service};
use crate::wire::conn::{Body, InFlight};
use crate::wire::frame::{CALL, Parts};

/// What a pool handle asks of the dispatcher.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Job),
    /// Finish everything queued, stop the workers, then answer.
    Shutdown(oneshot::Sender<()>),
    /// Fail everything queued, kill the workers, then answer.
    ShutdownNow(oneshot::Sender<()>),
}

/// Workers that may die while a task's request is being written to them
/// before the task fails (`Error::is_worker_died`) rather than being sent again.
const MAX_FAILED_DELIVERIES: u32 = 3;

/// Failed starts in a row, in every slot, before queued tasks are failed.
const GIVE_UP_AFTER: u32 = 3;

/// How a dispatcher treats its workers; from the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Most requests sent ahead to one worker.
    pub(crate) max_depth: usize,
    /// Replace a worker after it was sent this many requests.
    pub(crate) max_tasks_per_worker: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Dispatcher {
    commands: mpsc::UnboundedReceiver<Command>,
    queue: VecDeque<Job>,
    slots: Vec<Slot>,
    spec: Arc<WorkerSpec>,
    counters: Arc<Counters>,
    settings: Settings,
    /// `Some` once a shutdown was asked for: who to tell when it is done.
    draining: Option<Vec<oneshot::Sender<()>>>,
}

impl Dispatcher {
    pub(crate) fn new(
        commands: mpsc::UnboundedReceiver<Command>,
        workers: Vec<Spawned>,
        spec: Arc<WorkerSpec>,
        counters: Arc<Counters>,
        settings: Settings,
    ) -> Dispatcher {
        let slots = workers
            .into_iter()
            .map(|spawned| Slot {
                state: State::Live(Box::new(Worker::new(spawned, spec.max_frame))),
                failures: 0,
            })
            .collect();
        Dispatcher {
            commands,
            queue: VecDeque::new(),
            slots,
            spec,
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

    /// Drives slot `i` until it waits on something.
    fn poll_slot(&mut self, i: usize, cx: &mut Context<'_>) {
        loop {
            let state = std::mem::replace(&mut self.slots[i].state, State::Stopped);
            // `moved`: the slot entered a new state, which must be polled once
            // so that it registers for its next wake-up.
            let (next, moved) = match state {
                State::Starting(mut handle) => match Pin::new(&mut handle).poll(cx) {
                    Poll::Pending => (State::Starting(handle), false),
                    Poll::Ready(Ok(Ok(spawned))) => {
                        let worker = Worker::new(spawned, self.spec.max_frame);
                        (State::Live(Box::new(worker)), true)
                    }
                    Poll::Ready(Ok(Err(err))) => (self.spawn_failed(i, err), true),
                    Poll::Ready(Err(join)) => (
                        self.spawn_failed(i, Error::spawn(join.to_string(), None)),
                        true,
                    ),
                },
                State::Live(mut worker) => match self.poll_worker(i, &mut worker, cx) {
                    Ok(()) if worker.successor.is_some() && worker.conn.in_flight() == 0 => {
                        // Recycled: its last task is done; its successor takes over.
                        let successor = worker.successor.take().expect("checked");
                        drop(worker.close(false));
                        self.counters.recycled.fetch_add(1, Relaxed);
                        (State::Starting(successor), true)
                    }
                    Ok(()) => (State::Live(worker), false),
                    Err(fault) => (worker.retire(fault), true),
                },
                State::Reaping {
                    pid,
                    mut reaper,
                    unanswered,
                    head_started,
                    protocol_fault,
                } => match Pin::new(&mut reaper).poll(cx) {
                    Poll::Pending => {
                        let state = State::Reaping {
                            pid,
                            reaper,
                            unanswered,
                            head_started,
                            protocol_fault,
                        };
                        (state, false)
                    }
                    Poll::Ready(exit) => {
                        let exit = exit.unwrap_or(Exit::Unknown);
                        (
                            self.settle(i, pid, exit, unanswered, head_started, protocol_fault),
                            true,
                        )
                    }
                },
                State::Backoff(mut sleep) => match sleep.as_mut().poll(cx) {
                    Poll::Pending => (State::Backoff(sleep), false),
                    Poll::Ready(()) => (State::start(&self.spec), true),
                },
                State::Closing(mut handle) => match Pin::new(&mut handle).poll(cx) {
                    Poll::Pending => (State::Closing(handle), false),
                    Poll::Ready(_) => (State::Stopped, false),
                },
                State::Stopped => (State::Stopped, false),
            };
            self.slots[i].state = next;
            if !moved {
                return;
            }
        }
    }

    /// Reads and routes what a live worker sends.
    fn poll_worker(
        &mut self,
        i: usize,
        worker: &mut Worker,
        cx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        loop {
            while worker.conn.control_backlog() < slot::CONTROL_BACKLOG_LIMIT
                && let Some(body) = worker.conn.next_body().map_err(Fault::Protocol)?
            {
                self.route(i, worker, body)?;
            }
            if worker.conn.control_backlog() >= slot::CONTROL_BACKLOG_LIMIT {
                // Replies pile up unread: stop reading until they are
                // written (`flush` wakes us then).
                return Ok(());
            }
            match worker.conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return Err(Fault::Hangup),
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(_)) => return Err(Fault::Io),
                Poll::Pending => {}
            }
            if worker.poll_exited(cx).is_pending() {
                return worker.check_stall(cx).map_err(Fault::Protocol);
            }
            // Dead, though something it forked may hold its socket open:
            // take the answers it sent before it died, and let it go.
            worker.kill_leftovers();
            worker.conn.read_sent().map_err(|_| Fault::Io)?;
            while let Some(body) = worker.conn.next_body().map_err(Fault::Protocol)? {
                self.route(i, worker, body)?;
            }
            return Err(Fault::Exited);
        }
    }

    /// Sends one frame from a worker where it belongs, by kind.
    fn route(&mut self, i: usize, worker: &mut Worker, body: Body) -> Result<(), Fault> {
        let parts = Parts::of(body.bytes()).map_err(Fault::Protocol)?;
        if Response::is_answer(parts.kind) {
            return self.answer(i, worker, body);
        }
        match parts.kind {
            CALL => {
                let (service, args) = call::parse_call(parts.payload).map_err(Fault::Protocol)?;
                let reply = match service {
                    Service::Echo => call::reply(parts.id, Ok(args)),
                };
                worker.conn.queue_control(&reply);
                Ok(())
            }
            kind => Err(Fault::Protocol(format!(
                "a frame of unknown kind 0x{kind:02x} and {} bytes",
                body.bytes().len()
            ))),
        }
    }

    /// Delivers an answer to the task it names: the oldest unanswered one,
    /// or the worker is not following the protocol.
    ///
    /// A frame that fails here leaves that task unanswered, so when the
    /// worker is let go it fails with the protocol error.
    fn answer(&mut self, i: usize, worker: &mut Worker, body: Body) -> Result<(), Fault> {
        let pid = worker.pid;
        let parts = Parts::of(body.bytes()).map_err(Fault::Protocol)?;
        let due = worker.conn.head().map(|head| head.id);
        if due != Some(parts.id) {
            return Err(Fault::Protocol(match due {
                Some(due) => format!(
                    "an answer to request {} where request {due} was due",
                    parts.id
                ),
                None => format!("an answer to request {}, with none unanswered", parts.id),
            }));
        }
        let outcome = match Response::parse(parts).map_err(Fault::Protocol)? {
            Response::Ok { nanos } => Ok(nanos),
            Response::Skipped => Err(None),
            Response::TooLarge { bytes } => {
                let max = self.spec.max_frame;
                let entry = worker.conn.pop_answered().expect("the head was checked");
                self.counters.failed.fetch_add(1, Relaxed);
                let task = entry.job.task;
                let error = Repr::ResultTooLarge {
                    task,
                    bytes,
                    max,
                    pid,
                };
                entry.job.finish(Err(Error::new(error)));
                return Ok(());
            }
            Response::Panic((message, location)) => Err(Some((message, location, None))),
            Response::Failed(message) => {
                Err(Some((String::new(), None, Some(message.to_string()))))
            }
        };
        let entry = worker.conn.pop_answered().expect("the head was checked");
        let job = entry.job;
        let task = job.task;
        let failure = match outcome {
            Ok(nanos) => {
                worker.record(nanos);
                self.slots[i].failures = 0;
                self.counters.completed.fetch_add(1, Relaxed);
                job.finish(Ok(Reply {
                    payload_at: body.start + answer::RESULT_AT,
                    body: body.buf,
                    nanos,
                    pid,
                }));
                return Ok(());
            }
            // Only a request we asked it to cancel may be skipped; a skip
            // nobody asked for is someone else's frame (a task writing to
            // the protocol socket).
            Err(None) if entry.cancel_sent => {
                self.counters.cancelled.fetch_add(1, Relaxed);
                return Ok(());
            }
            Err(None) => {
                self.counters.failed.fetch_add(1, Relaxed);
                let garbage = "a skip of a request that was not cancelled";
                job.finish(Err(Error::protocol(pid, Some(task), garbage)));
                return Err(Fault::Protocol(garbage.into()));
            }
            Err(Some((_, _, Some(message)))) => Repr::Remote { task, pid, message },
            Err(Some((message, location, None))) => Repr::Panicked {
                task,
                message,
                location,
                pid,
            },
        };
        self.counters.failed.fetch_add(1, Relaxed);
        job.finish(Err(Error::new(failure)));
        Ok(())
    }

    /// A worker is gone: report the task it was running, send the ones it had
    /// not started back to the queue, and schedule a replacement.
    fn settle(
        &mut self,
        i: usize,
        pid: u32,
        exit: Exit,
        unanswered: VecDeque<InFlight>,
        head_started: bool,
        protocol_fault: Option<String>,
    ) -> State {
        let mut entries = unanswered.into_iter();
        let mut ran_something = false;
        let mut retry = None;
        if head_started && let Some(head) = entries.next() {
            ran_something = true;
            let mut job = head.job;
            if head.cancel_sent || job.is_cancelled() {
                // It died because we asked; its caller is gone.
                self.counters.cancelled.fetch_add(1, Relaxed);
            } else if protocol_fault.is_none() && job.retries_left > 0 {
                job.retries_left -= 1;
                job.crashed_workers += 1;
                // A task that has already taken down a worker before is
                // likely the cause: its deaths back off like a crash loop
                // at start-up, or `retries(u32::MAX)` would respawn hot.
                if job.crashed_workers > 1 {
                    ran_something = false;
                }
                self.counters.retried.fetch_add(1, Relaxed);
                retry = Some(job);
            } else {
                self.counters.failed.fetch_add(1, Relaxed);
                let task = job.task;
                let error = match protocol_fault {
                    Some(message) => Error::protocol(pid, Some(task), message),
                    None => Error::new(Repr::WorkerDied { task, pid, exit }),
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
                self.counters.cancelled.fetch_add(1, Relaxed);
            } else if entry.job.failed_deliveries >= MAX_FAILED_DELIVERIES {
                self.counters.failed.fetch_add(1, Relaxed);
                let task = entry.job.task;
                entry.job.finish(Err(Error::new(Repr::Undeliverable {
                    task,
                    attempts: MAX_FAILED_DELIVERIES,
                    pid,
                    exit,
                })));
            } else {
                self.queue.push_front(entry.job);
            }
        }
        if let Some(job) = retry {
            self.queue.push_front(job);
        }
        let slot = &mut self.slots[i];
        if !ran_something {
            slot.failures += 1;
        }
        self.counters.respawns.fetch_add(1, Relaxed);
        slot.replace(&self.spec)
    }

    /// A replacement could not be started. If no worker is left, queued tasks
    /// fail with the reason rather than wait for a recovery that may not come.
    ///
    /// One failed start is often transient (a worker killed from outside
    /// before its handshake), so queued tasks fail only once every slot has
    /// failed to start `GIVE_UP_AFTER` times in a row with no worker live:
    /// by then the cause is the program, not bad luck.
    fn spawn_failed(&mut self, i: usize, err: Error) -> State {
        self.slots[i].failures += 1;
        let hopeless = self
            .slots
            .iter()
            .all(|slot| slot.failures >= GIVE_UP_AFTER && !matches!(slot.state, State::Live(_)));
        if hopeless {
            let reason = err.to_string();
            for job in self.queue.drain(..) {
                job.finish(Err(Error::spawn(
                    format!("no worker is running and none could be started: {reason}"),
                    None,
                )));
            }
        }
        State::backoff(self.slots[i].failures)
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
                .filter_map(|slot| match &mut slot.state {
                    State::Live(worker) if worker.conn.in_flight() < worker.capacity(max_depth) => {
                        Some(worker)
                    }
                    _ => None,
                })
                .min_by_key(|worker| worker.conn.in_flight());
            let Some(worker) = target else { break };
            let job = self.queue.pop_front().expect("front exists");
            job.placed.set(worker.pid);
            worker.conn.push(job);
            worker.assigned += 1;
            if self.settings.max_tasks_per_worker == Some(worker.assigned) {
                // Start the replacement now, while this one finishes.
                worker.successor = Some(slot::start(&self.spec));
            }
        }
    }

    /// Writes what was assigned and passes on cancellations (last, so that
    /// every task in flight is watched).
    ///
    /// A worker that cannot be written to is not let go at once: it is
    /// killed, and its answers are read until the end of the stream, since
    /// answers it sent before dying may still be unread (the read side's
    /// readiness can lag), and dropping them would report finished tasks as
    /// lost and rerun the ones behind them.
    fn flush(&mut self, cx: &mut Context<'_>) {
        for i in 0..self.slots.len() {
            if let State::Live(worker) = &mut self.slots[i].state
                && !worker.doomed
            {
                let paused = worker.conn.control_backlog() >= slot::CONTROL_BACKLOG_LIMIT;
                let mut flushed = worker.conn.poll_flush(cx);
                if flushed.is_ready() {
                    worker.conn.cancel_abandoned(cx);
                    if worker.conn.control_backlog() > 0 {
                        flushed = worker.conn.poll_flush(cx);
                    }
                }
                if matches!(flushed, Poll::Ready(Err(_))) {
                    worker.doom();
                    self.poll_slot(i, cx);
                } else if paused && worker.conn.control_backlog() < slot::CONTROL_BACKLOG_LIMIT {
                    // Reading stopped for this backlog: go on now.
                    cx.waker().wake_by_ref();
                }
            }
            if let State::Live(worker) = &mut self.slots[i].state {
                worker.enforce_cancel(cx);
            }
        }
    }

    /// `shutdown_now`: fails everything queued or in flight with a shutdown
    /// error and kills every worker. Reaping happens as slots close.
    fn abandon_all(&mut self) {
        let gone = || Err(Error::new(Repr::ShutDown));
        for job in self.queue.drain(..) {
            job.finish(gone());
        }
        for slot in &mut self.slots {
            slot.state = match std::mem::replace(&mut slot.state, State::Stopped) {
                State::Live(mut worker) => {
                    for entry in worker.take_unanswered() {
                        entry.job.finish(gone());
                    }
                    State::Closing(worker.close(true))
                }
                State::Reaping {
                    reaper, unanswered, ..
                } => {
                    for entry in unanswered {
                        entry.job.finish(gone());
                    }
                    State::Closing(tokio::spawn(async move {
                        let _ = reaper.await;
                    }))
                }
                State::Starting(handle) => State::Closing(slot::abort_start(handle)),
                other => other,
            };
        }
    }

    fn publish_counters(&self) {
        let (mut alive, mut busy) = (0, 0);
        for slot in &self.slots {
            if let State::Live(worker) = &slot.state {
                alive += 1;
                busy += usize::from(worker.conn.in_flight() > 0);
            }
        }
        self.counters.alive.store(alive, Relaxed);
        self.counters.busy.store(busy, Relaxed);
        self.counters.queued.store(self.queue.len(), Relaxed);
    }

    /// Nothing queued, nothing running, nothing that could come back.
    fn is_drained(&self) -> bool {
        self.queue.is_empty()
            && self.slots.iter().all(|slot| match &slot.state {
                State::Live(worker) => worker.conn.in_flight() == 0,
                State::Reaping { unanswered, .. } => unanswered.is_empty(),
                _ => true,
            })
    }

    /// Tells every worker to exit; `Ready` once all are reaped.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for i in 0..self.slots.len() {
            let state = std::mem::replace(&mut self.slots[i].state, State::Stopped);
            self.slots[i].state = match state {
                State::Live(worker) => State::Closing(worker.close(false)),
                State::Starting(handle) => State::Closing(slot::abort_start(handle)),
                State::Reaping { reaper, .. } => State::Closing(tokio::spawn(async move {
                    let _ = reaper.await;
                })),
                State::Backoff(_) => State::Stopped,
                other => other,
            };
            self.poll_slot(i, cx);
        }
        if self
            .slots
            .iter()
            .all(|slot| matches!(slot.state, State::Stopped))
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Future for Dispatcher {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.take_commands(cx) {
            return Poll::Ready(()); // every Pool was dropped: Drop kills the workers
        }
        for i in 0..this.slots.len() {
            this.poll_slot(i, cx);
        }
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

impl Drop for Dispatcher {
    /// The pool is gone without a shutdown (or the runtime is): kill every
    /// worker now, fail what was outstanding, and reap.
    fn drop(&mut self) {
        let gone = || Err(Error::new(Repr::ShutDown));
        for job in self.queue.drain(..) {
            job.finish(gone());
        }
        for slot in &mut self.slots {
            match std::mem::replace(&mut slot.state, State::Stopped) {
                State::Live(worker) => {
                    for entry in worker.conn.into_unanswered().0 {
                        entry.job.finish(gone());
                    }
                }
                State::Reaping { unanswered, .. } => {
                    for entry in unanswered {
                        entry.job.finish(gone());
                    }
                }
                State::Starting(handle) => handle.abort(),
                _ => {}
            }
        }
        self.spec.ledger.kill_all();
    }
}
