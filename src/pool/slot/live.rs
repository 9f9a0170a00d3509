//! A live worker: its process, the pool's end of its connection, and what
//! its frames mean (answers to deliver, calls to reply to, faults).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::launch::{Launch, Launched, Starting, WorkerProcess};
use super::settle::Remains;
use super::{CANCEL_GRACE, CONTROL_BACKLOG_LIMIT, EXIT_GRACE, Recycle, STALL_LIMIT, State};
use crate::channel::peer::Connection;
use crate::error::{Error, Repr};
use crate::pool::insights::{Recent, WorkerInsights};
use crate::pool::job::{Job, Reply};
use crate::pool::stats::Counters;
use crate::shared::Releases;
use crate::wire::answer::{self, Response};
use crate::wire::call::{self, Service};
use crate::wire::conn::{Body, Conn, InFlight};
use crate::wire::frame::{self, CALL, LOG, OK, PING, PONG, Parts};
use crate::wire::{channel, log};
use crate::{logs, manager};

/// Roughly how much work, in time, a worker may have queued behind its
/// running task.
const PIPELINE_BUDGET_NANOS: u64 = 1_000_000;
/// Depth before a worker's task times are known: none sent ahead, since a
/// task queued behind a long one on a busy worker cannot move to an idle one.
const INITIAL_DEPTH: usize = 1;

/// A live worker process and the pool's end of its sockets.
#[derive(Debug)]
pub(crate) struct LiveWorker<L: Launch> {
    pub(super) pid: u32,
    process: L::Process,
    pub(super) conn: Conn<L::Io>,
    /// Its part in channels: their frames, both ways.
    channels: Connection,
    /// Its part in managers: replies to its calls that waited.
    manager: manager::peer::Peer,
    /// Shared memory regions this process let go, for it to unmap.
    releases: Releases,
    /// Moving average of the run time the worker reports per task.
    task_nanos: Option<u64>,
    /// Requests sent to it, for recycling after `max_tasks_per_worker` (and
    /// for telling an idle spell apart from a busy one).
    pub(super) assigned: u64,
    /// Answers it sent (every kind), and how many it had sent when its
    /// memory was last checked: one check per batch of answers.
    pub(super) answered: u64,
    growth_checked_at: u64,
    /// Its resident memory before its first task, in bytes, when the pool
    /// recycles on memory growth (`None`: not measured).
    resident_at_start: Option<u64>,
    /// Its replacement, started while it finishes its last tasks.
    pub(super) successor: Option<Starting<L>>,
    /// Killed after a failed write; its remaining answers are being read.
    doomed: bool,
    /// When the pool kills it itself, if it has not acted on the cancel of
    /// its running task by then.
    kill_at: Option<Pin<Box<Sleep>>>,
    /// Armed while a frame is part-way in and no byte has come since:
    /// when it fires, the worker is taken for stopped mid-write.
    stall: Option<Pin<Box<Sleep>>>,
    /// A remote worker's sign-of-life check; `None` for a local one.
    keepalive: Option<Keepalive>,
    /// What `Pool::insights` says of it: how long it took to start, when
    /// it was ready, the run times its tasks reported, and how many ran.
    startup: Duration,
    ready_at: std::time::Instant,
    busy_nanos: u64,
    ran: u64,
}

/// Asks a remote worker for a sign of life every `every` (a `PING`, which it
/// answers with a `PONG`; it also sends one unasked every `every`, so a
/// `PING` stuck behind a large request going out is no false alarm), and
/// gives it up when nothing at all came from it for twice as long: a hung
/// link (a dead host, a network partition) is found, not waited on. The
/// pings also tell the worker that the pool is there, which it checks on
/// its side (see `worker::stdio`). Off the local
/// hot path: a local worker has none, and a remote one reads the clock once
/// per read that returned bytes.
#[derive(Debug)]
struct Keepalive {
    every: Duration,
    timer: Pin<Box<Sleep>>,
    last_heard: Instant,
}

/// Most pieces of channel messages written to a worker per poll.
const PIECES_PER_POLL: usize = 16;

/// Why a live worker is being let go.
#[derive(Debug)]
pub(crate) enum Fault {
    /// It closed its socket: it exited or crashed.
    Hangup,
    /// Its process exited (its socket may still be held open by a process
    /// it forked).
    Exited,
    /// Reading or writing its socket failed.
    Io,
    /// It sent something that is not our protocol.
    Protocol(String),
}

impl<L: Launch> LiveWorker<L> {
    pub(super) fn new(launched: Launched<L::Io, L::Process>, max_frame: u64) -> LiveWorker<L> {
        let pid = launched.process.pid();
        tracing::debug!(target: "procpool", worker = pid, "worker started");
        LiveWorker {
            pid,
            process: launched.process,
            conn: Conn::new(launched.io, max_frame, launched.first_id),
            channels: Connection::new(max_frame),
            manager: manager::peer::Peer::new(pid, max_frame),
            releases: Releases::listen(),
            task_nanos: None,
            assigned: 0,
            answered: 0,
            growth_checked_at: 0,
            resident_at_start: None,
            successor: None,
            doomed: false,
            kill_at: None,
            stall: None,
            keepalive: launched.keepalive.map(|every| Keepalive {
                every,
                timer: Box::pin(tokio::time::sleep(every)),
                last_heard: Instant::now(),
            }),
            startup: launched.startup,
            ready_at: std::time::Instant::now(),
            busy_nanos: 0,
            ran: 0,
        }
    }

    /// What it has done since it was ready; `replaced` and `recycled` are
    /// its slot's.
    pub(super) fn insights(&self, replaced: u64, recycled: u64) -> WorkerInsights {
        let uptime = self.ready_at.elapsed();
        let busy = Duration::from_nanos(self.busy_nanos);
        WorkerInsights {
            pid: self.pid,
            startup: self.startup,
            uptime,
            busy,
            idle: uptime.saturating_sub(busy),
            tasks: self.ran,
            in_flight: self.conn.in_flight(),
            replaced,
            recycled,
        }
    }

    /// Reads and routes what the worker sends. `failures`: its slot's count
    /// of deaths in a row, which a task run to completion resets.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        counters: &Counters,
        recent: &mut Recent,
        failures: &mut u32,
    ) -> Result<(), Fault> {
        loop {
            while self.conn.control_backlog() < CONTROL_BACKLOG_LIMIT
                && let Some(body) = self.conn.next_body().map_err(Fault::Protocol)?
            {
                self.route(body, counters, recent, failures)?;
            }
            if self.conn.control_backlog() >= CONTROL_BACKLOG_LIMIT {
                // Replies pile up unread: stop reading until they are
                // written (`flush` wakes us then) — unless the worker died
                // and never will read them.
                if self.process.poll_exited(cx).is_pending() {
                    // A frame of its left part-way in our buffer is ours to
                    // finish reading, not the worker's stall: the clock
                    // starts again when we read again. (A hung link is
                    // still found: while we do not read, the worker
                    // reading what we write is its sign of life; `flush`.)
                    self.stall = None;
                    return self.check_keepalive(cx).map_err(Fault::Protocol);
                }
                self.conn.discard_control();
                continue;
            }
            match self.conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return Err(Fault::Hangup),
                Poll::Ready(Ok(_)) => {
                    // Progress. (Not "a different number of bytes waiting":
                    // frames of one size, read in chunks of one size, leave
                    // the same remainder again and again, and an old clock
                    // then fired on a worker that was writing all along.)
                    self.stall = None;
                    if let Some(keepalive) = &mut self.keepalive {
                        keepalive.last_heard = Instant::now();
                    }
                    continue;
                }
                Poll::Ready(Err(_)) => return Err(Fault::Io),
                Poll::Pending => {}
            }
            if self.process.poll_exited(cx).is_pending() {
                self.check_keepalive(cx).map_err(Fault::Protocol)?;
                return self.check_stall(cx).map_err(Fault::Protocol);
            }
            // Dead, though something it forked may hold its socket open:
            // take the answers it sent before it died, and let it go.
            self.kill_leftovers();
            self.conn.read_sent().map_err(|_| Fault::Io)?;
            while let Some(body) = self.conn.next_body().map_err(Fault::Protocol)? {
                self.route(body, counters, recent, failures)?;
            }
            return Err(Fault::Exited);
        }
    }

    /// Sends one frame from the worker where it belongs, by kind.
    fn route(
        &mut self,
        body: Body,
        counters: &Counters,
        recent: &mut Recent,
        failures: &mut u32,
    ) -> Result<(), Fault> {
        let parts = Parts::of(body.bytes()).map_err(Fault::Protocol)?;
        if !body.attachments.is_empty() && parts.kind != OK {
            return Err(Fault::Protocol(format!(
                "attachments on a frame of kind 0x{:02x}, which takes none",
                parts.kind
            )));
        }
        if Response::is_answer(parts.kind) {
            let verdict = self.verdict(parts)?;
            return self.answer(verdict, body, counters, recent, failures);
        }
        match parts.kind {
            CALL => {
                let (service, args) = call::parse_call(parts.payload).map_err(Fault::Protocol)?;
                match service {
                    Service::Echo => self.conn.queue_control(&call::reply(parts.id, Ok(args))),
                    Service::Manager => {
                        let reply = self
                            .manager
                            .serve(parts.id, args)
                            .map_err(Fault::Protocol)?;
                        if let Some(reply) = reply {
                            self.conn.queue_control_owned(reply);
                        }
                    }
                }
                Ok(())
            }
            PONG => Ok(()), // heard: that is all it is for
            LOG => {
                let (level, origin, message) =
                    log::parse(parts.payload).map_err(Fault::Protocol)?;
                let task = self.conn.task_of(parts.id);
                // Sent while it ran, so inside its span: the running task
                // is the oldest one written.
                let running = self.conn.head().filter(|head| head.id == parts.id);
                let _entered = running.and_then(|head| head.job.enter());
                logs::emit(self.pid, task, parts.id, level, origin, message);
                Ok(())
            }
            kind if channel::from_worker(kind) => {
                self.channels.route(body).map_err(Fault::Protocol)
            }
            kind => Err(Fault::Protocol(format!(
                "a frame of unknown kind 0x{kind:02x} and {} bytes",
                body.bytes().len()
            ))),
        }
    }

    /// What an answer says of the task it names, which must be the oldest
    /// unanswered one, or the worker is not following the protocol.
    ///
    /// A frame that fails here leaves that task unanswered, so when the
    /// worker is let go it fails with the protocol error.
    fn verdict(&self, parts: Parts<'_>) -> Result<Verdict, Fault> {
        let Some(head) = self.conn.head().filter(|head| head.id == parts.id) else {
            return Err(Fault::Protocol(match self.conn.head() {
                Some(head) => format!(
                    "an answer to request {} where request {} was due",
                    parts.id, head.id
                ),
                None => format!("an answer to request {}, with none unanswered", parts.id),
            }));
        };
        let (task, pid) = (head.job.task, self.pid);
        Ok(match Response::parse(parts).map_err(Fault::Protocol)? {
            Response::Ok { nanos } => Verdict::Done(nanos),
            Response::Skipped => Verdict::Skipped,
            Response::Panic { nanos, report } => {
                Verdict::Failed(Repr::Panicked { task, report, pid }, Some(nanos))
            }
            Response::Failed(message) => Verdict::Failed(
                Repr::Remote {
                    task,
                    pid,
                    message: message.to_string(),
                },
                None,
            ),
            Response::TooLarge { bytes } => Verdict::Failed(
                Repr::ResultTooLarge {
                    task,
                    bytes,
                    max: self.conn.max_frame(),
                    pid,
                },
                None,
            ),
        })
    }

    /// Delivers the verdict on the oldest unanswered task (checked by
    /// [`verdict`](Self::verdict)); a successful result stays in `body`.
    fn answer(
        &mut self,
        verdict: Verdict,
        body: Body,
        counters: &Counters,
        recent: &mut Recent,
        failures: &mut u32,
    ) -> Result<(), Fault> {
        let pid = self.pid;
        let entry = self.conn.pop_answered().expect("the head was checked");
        self.answered += 1;
        if self.conn.in_flight() == 0 {
            // Idle now, before its caller can see the answer and read the
            // stats (which the dispatcher refreshes only after its poll):
            // one who just awaited the last result must not read `busy: 1`.
            let _ = counters
                .busy
                .fetch_update(Relaxed, Relaxed, |busy| busy.checked_sub(1));
        }
        let mut job = entry.job;
        // Its span ends with this answer, after the events below.
        let span = job.span.take();
        let _entered = span.as_deref().map(tracing::Span::enter);
        // Counted before the caller can see the answer (`Pool::insights`).
        let ran = match &verdict {
            Verdict::Done(nanos) | Verdict::Failed(_, Some(nanos)) => Some(*nanos),
            Verdict::Failed(_, None) => Some(0),
            Verdict::Skipped => None,
        };
        if let Some(nanos) = ran {
            self.ran += 1;
            self.busy_nanos = self.busy_nanos.saturating_add(nanos);
        }
        match verdict {
            Verdict::Done(nanos) => {
                recent.run_time.record(nanos);
                self.record(nanos);
                *failures = 0;
                tracing::debug!(target: "procpool", task = job.task, worker = pid,
                    run_us = nanos / 1_000, "task finished");
                // Also a task whose cancel came too late, or that returned
                // in its grace period: it returned a value (nobody may be
                // waiting for it).
                counters.completed.fetch_add(1, Relaxed);
                job.finish(Ok(Reply {
                    payload_at: body.start + answer::RESULT_AT,
                    body: body.buf,
                    attachments: body.attachments,
                    nanos,
                    pid,
                }));
            }
            // Only a request we asked it to cancel may be skipped; a skip
            // nobody asked for is someone else's frame (a task writing to
            // the protocol socket).
            Verdict::Skipped if entry.cancel_sent => {
                counters.cancelled.fetch_add(1, Relaxed);
            }
            Verdict::Skipped => {
                counters.failed.fetch_add(1, Relaxed);
                let garbage = "a skip of a request that was not cancelled";
                let task = job.task;
                job.finish(Err(Error::protocol(pid, Some(task), garbage)));
                return Err(Fault::Protocol(garbage.into()));
            }
            Verdict::Failed(failure, nanos) => {
                if let Some(nanos) = nanos {
                    recent.run_time.record(nanos);
                }
                counters.failed.fetch_add(1, Relaxed);
                let error = Error::new(failure);
                tracing::debug!(target: "procpool", task = job.task, worker = pid,
                    %error, "task failed");
                job.finish(Err(error));
            }
        }
        Ok(())
    }

    /// Writes what was assigned and passes on cancellations (last, so that
    /// every task in flight is watched). `true` if the worker cannot be
    /// written to: it was killed, and its answers are to be read to the end
    /// of the stream.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        if self.doomed {
            return false;
        }
        if let Some(replies) = self.manager.take(cx) {
            self.conn.queue_control_owned(replies);
        }
        if let Some(unmaps) = self.releases.take(cx) {
            self.conn.queue_control_owned(unmaps);
        }
        let mut more_pieces = self.take_channel_frames(cx);
        let backlog = self.conn.control_backlog();
        let paused = backlog >= CONTROL_BACKLOG_LIMIT;
        let mut flushed = self.conn.poll_flush(cx);
        // A message in pieces: the next piece once the last one is written,
        // a few per poll (then the dispatcher's other work gets a turn).
        let mut pieces = 1;
        while more_pieces && matches!(flushed, Poll::Ready(Ok(()))) {
            if pieces == PIECES_PER_POLL {
                cx.waker().wake_by_ref();
                break;
            }
            more_pieces = self.take_channel_frames(cx);
            flushed = self.conn.poll_flush(cx);
            pieces += 1;
        }
        if flushed.is_ready() {
            self.conn.cancel_abandoned(cx);
            if self.conn.control_backlog() > 0 {
                flushed = self.conn.poll_flush(cx);
            }
        }
        if matches!(flushed, Poll::Ready(Err(_))) {
            self.doom();
            return true;
        }
        if paused && self.conn.control_backlog() < backlog {
            if let Some(keepalive) = &mut self.keepalive {
                // Not read while paused, it shows it is there by reading.
                keepalive.last_heard = Instant::now();
            }
            if self.conn.control_backlog() < CONTROL_BACKLOG_LIMIT {
                // Reading stopped for this backlog: go on now.
                cx.waker().wake_by_ref();
            }
        }
        false
    }

    /// Queues what the channels have for the worker: every whole frame, and
    /// pieces of messages under way while less than a piece is queued (so
    /// frames that come meanwhile wait behind one piece at most); `true`
    /// if pieces are still to go.
    fn take_channel_frames(&mut self, cx: &mut Context<'_>) -> bool {
        let budget = channel::PIECE.saturating_sub(self.conn.control_backlog());
        let (frames, more_pieces) = self.channels.take_outgoing(cx, budget);
        if let Some(frames) = frames {
            self.conn.queue_control_owned(frames);
        }
        more_pieces
    }

    /// Takes `job` behind those in flight; after `recycle.max_tasks` of
    /// them, starts its replacement, which takes over once they are done.
    pub(super) fn accept(&mut self, job: Job, launcher: &L, recycle: Recycle) {
        if self.assigned == 0 && recycle.memory_growth.is_some() {
            // Growth counts from here: after start-up and the initializer,
            // so a worker that is born big (a model loaded) is not taken
            // for a leaking one and recycled after every task (Celery
            // #4125), as a threshold on its absolute size would.
            self.resident_at_start = self.process.resident_bytes();
        }
        job.placed.set(self.pid);
        if let Some(span) = &job.span {
            span.record("worker", self.pid);
            span.in_scope(|| {
                tracing::trace!(target: "procpool", task = job.task, worker = self.pid,
                    "task assigned");
            });
        }
        self.conn.push(job);
        self.assigned += 1;
        if recycle.max_tasks == Some(self.assigned) && self.successor.is_none() {
            // Start the replacement now, while this one finishes.
            self.successor = Some(launcher.start());
        }
    }

    /// After new answers: if its resident memory has grown by more than
    /// `growth` bytes since before its first task, starts its replacement,
    /// which takes over once the tasks it holds are done. It gets no new
    /// ones meanwhile (see [`capacity`](Self::capacity)); queued tasks wait
    /// in the pool's queue for any worker, so none is stranded on it.
    pub(super) fn check_growth(&mut self, launcher: &L, growth: u64) {
        if self.successor.is_some() || self.answered == self.growth_checked_at {
            return;
        }
        self.growth_checked_at = self.answered;
        let (Some(start), Some(now)) = (self.resident_at_start, self.process.resident_bytes())
        else {
            return;
        };
        if now.saturating_sub(start) > growth {
            self.successor = Some(launcher.start());
        }
    }

    /// `Err` with a description if a frame has been part-way in, with no
    /// new bytes, for [`STALL_LIMIT`]; otherwise arranges to be woken then.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let waiting = self.conn.incomplete_bytes();
        if waiting == 0 {
            self.stall = None;
            return Ok(());
        }
        let sleep = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(STALL_LIMIT)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(()) => Err(format!(
                "a frame stopped arriving part-way ({waiting} bytes of it, then nothing for \
                 {STALL_LIMIT:?}): a garbage length, or a worker stopped mid-write"
            )),
        }
    }

    /// Sends a `PING` every keepalive interval; `Err` if nothing came from
    /// the worker for two of them (see [`Keepalive`]).
    fn check_keepalive(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let Some(keepalive) = &mut self.keepalive else {
            return Ok(());
        };
        while keepalive.timer.as_mut().poll(cx).is_ready() {
            let silent = keepalive.last_heard.elapsed();
            if silent >= 2 * keepalive.every {
                return Err(format!(
                    "nothing came from the worker for {silent:?}, though it was asked for a \
                     sign of life every {:?}: the link to it is hung (see Launcher::keepalive)",
                    keepalive.every
                ));
            }
            if !self.doomed {
                self.conn.queue_control(&frame::empty(PING, 0));
                // Written by the slot's next flush.
                cx.waker().wake_by_ref();
            }
            let next = Instant::now() + keepalive.every;
            keepalive.timer.as_mut().reset(next);
        }
        Ok(())
    }

    /// Kills the worker (if it is not dead already) and stops sending it
    /// anything; reading goes on until its end of stream.
    fn doom(&mut self) {
        self.process.kill();
        self.doomed = true;
        // Nothing more is written to it, so owed replies must not hold up
        // reading what it sent.
        self.conn.discard_control();
    }

    /// Kills what an exited worker left behind (whatever else holds its
    /// socket among them).
    fn kill_leftovers(&self) {
        self.process.kill();
    }

    /// Kills the worker if the running task was cancelled more than
    /// `grace` (the task's own, `PoolBuilder::cancel_grace`) plus
    /// [`CANCEL_GRACE`] (the worker's, to act on it) ago and it is still
    /// there.
    pub(super) fn enforce_cancel(&mut self, cx: &mut Context<'_>, grace: Duration) {
        let head_cancelled = self.conn.head().is_some_and(|head| head.cancel_sent);
        if !head_cancelled {
            // The cancelled task was answered or skipped: the worker takes
            // work again (see `capacity`), and tasks queued meanwhile must
            // not wait for some other event to be assigned.
            if self.kill_at.take().is_some() {
                cx.waker().wake_by_ref();
            }
            return;
        }
        let kill_at = self.kill_at.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(
                Instant::now() + grace.saturating_add(CANCEL_GRACE),
            ))
        });
        if kill_at.as_mut().poll(cx).is_ready() && !self.doomed {
            self.doom();
        }
    }

    /// How many requests it should hold: about a millisecond of work beyond
    /// the running task, judged by the run times it reported.
    pub(super) fn capacity(&self, max_depth: usize) -> usize {
        if self.successor.is_some() || self.doomed || self.kill_at.is_some() {
            return 0; // being recycled or killed: no new work
        }
        match self.task_nanos {
            None => INITIAL_DEPTH.min(max_depth),
            Some(nanos) => {
                let depth = 1 + PIPELINE_BUDGET_NANOS / nanos.max(1);
                usize::try_from(depth).unwrap_or(usize::MAX).min(max_depth)
            }
        }
    }

    fn record(&mut self, nanos: u64) {
        self.task_nanos = Some(match self.task_nanos {
            None => nanos,
            Some(avg) => (avg * 7 + nanos) / 8,
        });
    }

    /// Lets the worker go after a fault: its sockets close (so if it is still
    /// alive it kills itself), and a task reaps it, killing its group if it
    /// lingers.
    pub(super) fn retire(self, fault: Fault) -> State<L> {
        let LiveWorker {
            pid,
            process,
            conn,
            channels,
            successor,
            ..
        } = self;
        if let Some(successor) = successor {
            successor.abort(); // a started one is killed and reaped as it drops
        }
        let (unanswered, head_started) = conn.into_unanswered();
        let protocol_fault = match fault {
            Fault::Protocol(message) => Some(message),
            Fault::Hangup | Fault::Exited | Fault::Io => None,
        };
        if protocol_fault.is_some() {
            process.kill();
        }
        State::Reaping {
            reaper: tokio::spawn(process.wait_or_kill(EXIT_GRACE)),
            remains: Remains {
                pid,
                unanswered,
                head_started,
                protocol_fault,
                channels,
            },
        }
    }

    /// Closes its sockets (it exits on the hang-up) and reaps it, in the
    /// background; `kill` first kills it and everything it started.
    pub(super) fn close(self, kill: bool) -> JoinHandle<()> {
        let LiveWorker {
            process, successor, ..
        } = self;
        if let Some(successor) = successor {
            successor.abort();
        }
        if kill {
            process.kill();
        }
        tokio::spawn(async move {
            process.wait_or_kill(EXIT_GRACE).await;
        })
    }

    /// Everything in flight, for failing it (the worker is being killed).
    pub(super) fn take_unanswered(&mut self) -> VecDeque<InFlight> {
        self.conn.take_in_flight()
    }
}

/// What an answer says of its task, read before the answer's buffer is
/// handed on.
#[derive(Debug)]
enum Verdict {
    /// It returned; the result is in the answer, which took this long.
    Done(u64),
    /// It was cancelled before it started.
    Skipped,
    /// It panicked, could not run, or its result was too large; a panic
    /// says how long it ran first.
    Failed(Repr, Option<u64>),
}
