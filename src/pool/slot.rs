//! One place in the pool, and the worker process that fills it: its
//! lifecycle (starting, live, being reaped, backing off, closing) and what
//! the pool knows about it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, Exit};
use crate::launch::child::Child;
use crate::launch::spawn::{self, Spawned, WorkerSpec};
use crate::wire::conn::{Conn, InFlight};

/// Roughly how much work, in time, a worker may have queued behind its
/// running task.
const PIPELINE_BUDGET_NANOS: u64 = 1_000_000;
/// Depth before a worker's task times are known: none sent ahead, since a
/// task queued behind a long one on a busy worker cannot move to an idle one.
const INITIAL_DEPTH: usize = 1;
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
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
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) type Starting = JoinHandle<Result<Spawned, Error>>;

/// A live worker process and the pool's end of its sockets.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) pid: u32,
    child: Child,
    pub(crate) conn: Conn<UnixStream>,
    /// Moving average of the run time the worker reports per task.
    task_nanos: Option<u64>,
    /// Requests sent to it, for recycling after `max_tasks_per_worker`.
    pub(crate) assigned: u64,
    /// Its replacement, started while it finishes its last tasks.
    pub(crate) successor: Option<Starting>,
    /// Killed after a failed write; its remaining answers are being read.
    pub(crate) doomed: bool,
    /// When the pool kills it itself, if it has not acted on the cancel of
    /// its running task by then.
    kill_at: Option<Pin<Box<Sleep>>>,
    /// Armed while a frame is part-way in: when it fires, and how many
    /// bytes were waiting when it was last reset.
    stall: Option<(Pin<Box<Sleep>>, usize)>,
}

impl Worker {
    pub(crate) fn new(spawned: Spawned, max_frame: u64) -> Worker {
        Worker {
            pid: spawned.child.pid(),
            child: spawned.child,
            conn: Conn::new(spawned.data, max_frame, spawned.first_id),
            task_nanos: None,
            assigned: 0,
            successor: None,
            doomed: false,
            kill_at: None,
            stall: None,
        }
    }

    /// `Err` with a description if a frame has been part-way in, with no
    /// new bytes, for [`STALL_LIMIT`]; otherwise arranges to be woken then.
    pub(crate) fn check_stall(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let waiting = self.conn.incomplete_bytes();
        if waiting == 0 {
            self.stall = None;
            return Ok(());
        }
        let deadline = Instant::now() + STALL_LIMIT;
        let (sleep, seen) = self
            .stall
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), waiting));
        if *seen != waiting {
            sleep.as_mut().reset(deadline);
            *seen = waiting;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(()) => Err(format!(
                "a frame stopped arriving part-way ({waiting} bytes of it, then nothing for \
                 {STALL_LIMIT:?}): a garbage length, or a worker stopped mid-write"
            )),
        }
    }

    /// Kills the worker (if it is not dead already) and stops sending it
    /// anything; reading goes on until its end of stream.
    pub(crate) fn doom(&mut self) {
        self.child.kill();
        self.doomed = true;
    }

    /// Kills what an exited worker left behind (whatever else holds its
    /// socket among them).
    pub(crate) fn kill_leftovers(&self) {
        self.child.kill();
    }

    /// `Ready` once the worker process has exited, whatever its socket says.
    pub(crate) fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.child.poll_exited(cx)
    }

    /// Kills the worker if the running task was cancelled more than
    /// [`CANCEL_GRACE`] ago and it is still there.
    pub(crate) fn enforce_cancel(&mut self, cx: &mut Context<'_>) {
        let head_cancelled = self.conn.head().is_some_and(|head| head.cancel_sent);
        if !head_cancelled {
            self.kill_at = None;
            return;
        }
        let kill_at = self.kill_at.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(Instant::now() + CANCEL_GRACE))
        });
        if kill_at.as_mut().poll(cx).is_ready() && !self.doomed {
            self.doom();
        }
    }

    /// How many requests it should hold: about a millisecond of work beyond
    /// the running task, judged by the run times it reported.
    pub(crate) fn capacity(&self, max_depth: usize) -> usize {
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

    pub(crate) fn record(&mut self, nanos: u64) {
        self.task_nanos = Some(match self.task_nanos {
            None => nanos,
            Some(avg) => (avg * 7 + nanos) / 8,
        });
    }

    /// Lets the worker go after a fault: its sockets close (so if it is still
    /// alive it kills itself), and a task reaps it, killing its group if it
    /// lingers.
    pub(crate) fn retire(self, fault: Fault) -> State {
        let Worker {
            pid,
            child,
            conn,
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
            child.kill();
        }
        State::Reaping {
            pid,
            reaper: tokio::spawn(child.wait_or_kill(EXIT_GRACE)),
            unanswered,
            head_started,
            protocol_fault,
        }
    }

    /// Closes its sockets (it exits on the hang-up) and reaps it, in the
    /// background; `kill` first kills it and everything it started.
    pub(crate) fn close(self, kill: bool) -> JoinHandle<()> {
        let Worker {
            child, successor, ..
        } = self;
        if let Some(successor) = successor {
            successor.abort();
        }
        if kill {
            child.kill();
        }
        tokio::spawn(async move {
            child.wait_or_kill(EXIT_GRACE).await;
        })
    }

    /// Everything in flight, for failing it (the worker is being killed).
    pub(crate) fn take_unanswered(&mut self) -> VecDeque<InFlight> {
        self.conn.take_in_flight()
    }
}

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

#[derive(Debug)]
pub(crate) enum State {
    Starting(Starting),
    Live(Box<Worker>),
    /// The worker is gone or going; its exit status decides what its
    /// unanswered requests become.
    Reaping {
        pid: u32,
        reaper: JoinHandle<Exit>,
        unanswered: VecDeque<InFlight>,
        head_started: bool,
        protocol_fault: Option<String>,
    },
    Backoff(Pin<Box<Sleep>>),
    /// Shutting down: the worker was told to exit and is being reaped.
    Closing(JoinHandle<()>),
    Stopped,
}

impl State {
    pub(crate) fn start(spec: &Arc<WorkerSpec>) -> State {
        State::Starting(start(spec))
    }

    pub(crate) fn backoff(failures: u32) -> State {
        State::Backoff(Box::pin(tokio::time::sleep(
            backoff(failures).unwrap_or(BACKOFF_FIRST),
        )))
    }
}

/// Starts a worker in the background.
pub(crate) fn start(spec: &Arc<WorkerSpec>) -> Starting {
    let spec = spec.clone();
    tokio::spawn(async move { spawn::spawn(&spec).await })
}

/// Stops a worker that is still starting: no task waits for it, and its
/// handshake may take long (a slow initializer, a stopped process).
pub(crate) fn abort_start(handle: Starting) -> tokio::task::JoinHandle<()> {
    handle.abort();
    tokio::spawn(async move {
        // Finished before the abort: end it here. Aborted: the start's own
        // `Child` was dropped, which kills it and reaps it in the background.
        if let Ok(Ok(spawned)) = handle.await {
            spawned.child.kill_and_wait().await;
        }
    })
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) state: State,
    /// Deaths in a row without running a task; drives the respawn backoff.
    pub(crate) failures: u32,
}

impl Slot {
    /// What to do after a death: replace at once, or after a backoff if the
    /// worker keeps dying without running anything.
    pub(crate) fn replace(&self, spec: &Arc<WorkerSpec>) -> State {
        match backoff(self.failures) {
            None => State::start(spec),
            Some(_) => State::backoff(self.failures),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), None);
        assert_eq!(backoff(1), Some(BACKOFF_FIRST));
        assert_eq!(backoff(2), Some(BACKOFF_FIRST * 2));
        assert_eq!(backoff(40), Some(BACKOFF_MAX));
    }
}
