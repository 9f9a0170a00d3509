//! A submitted task on its way to a worker, paired with where its answer goes.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::Waker;
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::time::Instant;
use tracing::Span;
use tracing::span::Entered;

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::channel::Holds;
use crate::codec::attach;
use crate::error::{Crash, Error};
use crate::shared::Carried;
use crate::wire::request::Request;

/// How many of the deaths a task caused its error names, at most (with
/// `retries(u32::MAX)` it could be killing workers for ever).
pub(crate) const RECENT_CRASHES: usize = 16;

/// The deaths of the workers that ran a task.
#[derive(Debug, Default)]
pub(crate) struct Crashes {
    /// How many died.
    pub(crate) total: u32,
    /// How the last [`RECENT_CRASHES`] of them ended, oldest first: the
    /// final error names each.
    pub(crate) recent: Vec<Crash>,
}

/// One task: its request frame, encoded once at submit time (and kept until the
/// answer arrives, so a task that never started can be sent to another worker
/// if its worker dies), and the channel its result goes back on. The caller
/// dropping the other end of `reply` is what cancels the task.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) task: &'static str,
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Result<Reply, Error>>,
    /// Runs left if its worker dies under it (`PoolBuilder::retries`).
    pub(crate) retries_left: u32,
    /// Workers that died while its request was being written to them.
    pub(crate) failed_deliveries: u32,
    /// The workers that died while running it (it was retried after each);
    /// `None` (one word, no allocation: a job is moved through the queue)
    /// until one dies.
    pub(crate) crashes: Option<Box<Crashes>>,
    /// Where it was last sent, for the caller's timeout and cancel errors.
    pub(crate) placed: Placement,
    /// Holds on the channels whose endpoints its arguments carry, until it
    /// is answered (the worker holds its own by then). Never read: what
    /// counts is when it drops.
    pub(crate) holds: Holds,
    /// The shared memory regions its arguments carry, kept alive (their fds
    /// open here) until it is answered, so its worker can open them.
    pub(crate) regions: Carried,
    /// Its place under `PoolBuilder::max_queued`, given back when it
    /// leaves the pool's queue for a worker (`None`: no limit, or a `map`
    /// chunk, which its window bounds instead).
    pub(crate) room: Option<OwnedSemaphorePermit>,
    /// When it was submitted, for its queue wait (`Pool::insights`): taken
    /// when it is first handed to a worker, so a retry does not count
    /// twice. `None` for a one-off `Process`, which has no queue.
    pub(crate) submitted: Option<std::time::Instant>,
    /// Its `task` span, from submit until it is answered (see
    /// [`task_span`]); `None`, one word and no allocation, when no
    /// subscriber wants it.
    pub(crate) span: Option<Box<Span>>,
}

/// A task's span: target `procpool`, level DEBUG, name `task`, with the
/// task's name, a process-wide `id`, the `worker` it was last sent to and
/// its `queue_wait_us` (recorded when it is sent, the first time). The pool enters it around its own events for the
/// task (submitted, assigned, finished, failed, its worker's death) and
/// around the records forwarded from its worker while it runs.
///
/// With no subscriber, or one that does not want it, this costs what a
/// disabled `tracing` callsite costs (an atomic load or two) and the id
/// counter is not touched: submitters share nothing new.
pub(crate) fn task_span(task: &'static str) -> Option<Box<Span>> {
    let span = tracing::debug_span!(target: "procpool", "task", task,
        id = tracing::field::Empty, worker = tracing::field::Empty,
        queue_wait_us = tracing::field::Empty);
    if span.is_disabled() {
        return None;
    }
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    span.record("id", NEXT_ID.fetch_add(1, Relaxed));
    Some(Box::new(span))
}

/// The caller's end of a job: where its answer comes, and where it went.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) answer: oneshot::Receiver<Result<Reply, Error>>,
    pub(crate) placed: Placement,
}

/// What the pool and the caller's handle share about a task: the pid of
/// the worker it was last sent to (the pool writes it when it sends the
/// task; the handle reads it when it gives up), and the handle's deadline,
/// which the pool enforces itself, so a task past it is stopped even while
/// nobody polls its handle (say, while the caller reads the task's channel).
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// 0: not sent yet.
    pid: AtomicU32,
    /// When the caller gives up, in ns after [`EPOCH`], plus one (0: never).
    deadline: AtomicU64,
    /// The pool's dispatcher, woken when a deadline is set.
    watcher: AtomicWaker,
}

/// What deadlines count from (tokio's clock, so paused time applies).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Placement {
    pub(crate) fn set(&self, pid: u32) {
        self.0.pid.store(pid, Relaxed);
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.0.pid.load(Relaxed)).filter(|&pid| pid != 0)
    }

    /// The caller gives up at `at`: the pool cancels the task then.
    pub(crate) fn set_deadline(&self, at: Instant) {
        let nanos = at.saturating_duration_since(*EPOCH).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.0.deadline.store(nanos, Relaxed);
        self.0.watcher.wake();
    }

    /// The caller's deadline, if it set one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.0.deadline.load(Relaxed) {
            0 => None,
            nanos => Some(*EPOCH + Duration::from_nanos(nanos - 1)),
        }
    }

    /// Whether the caller's deadline has passed (no clock read without one).
    pub(crate) fn expired(&self) -> bool {
        self.deadline().is_some_and(|at| at <= Instant::now())
    }

    /// Wakes `waker` when a deadline is set later.
    pub(crate) fn watch(&self, waker: &Waker) {
        self.0.watcher.register(waker);
    }
}

/// A request, encoded, with what its arguments carry.
pub(crate) struct Encoded {
    pub(crate) request: Request,
    /// Holds on the channels whose endpoints it carries ([`Job::holds`]).
    pub(crate) holds: Holds,
    /// The shared memory regions it carries ([`Job::regions`]).
    pub(crate) regions: Carried,
}

/// Encodes the request to run task `index` on `args`.
pub(crate) fn encode_request<A: serde::Serialize + 'static>(
    index: u32,
    args: A,
) -> Result<Encoded, Error> {
    let ((request, holds), regions) = crate::shared::carry(|| {
        crate::channel::carry(|| crate::wire::request::encode(index, args))
    });
    Ok(Encoded {
        request: request?,
        holds,
        regions,
    })
}

/// The error for a task whose arguments carry shared memory, bound for
/// workers started through the launcher `remote` (`None`: local workers,
/// no error). The one check an ordinary task pays is `regions.is_empty()`.
pub(crate) fn check_local(
    task: &'static str,
    regions: &Carried,
    remote: Option<&String>,
) -> Result<(), Error> {
    match remote {
        Some(launcher) if !regions.is_empty() => Err(Error::new(crate::error::Repr::NotLocal {
            task,
            launcher: launcher.clone(),
        })),
        _ => Ok(()),
    }
}

impl Job {
    /// A job for `request`, answered on `reply`, with nothing else set: no
    /// retries, no channel holds, no queue room, no submit time.
    pub(crate) fn new(
        task: &'static str,
        request: Request,
        reply: oneshot::Sender<Result<Reply, Error>>,
    ) -> Job {
        Job {
            task,
            request,
            reply,
            retries_left: 0,
            failed_deliveries: 0,
            crashes: None,
            placed: Placement::default(),
            holds: Holds::default(),
            regions: Carried::default(),
            room: None,
            submitted: None,
            span: None,
        }
    }

    /// Enters its span, if it has one, until the guard drops.
    pub(crate) fn enter(&self) -> Option<Entered<'_>> {
        self.span.as_deref().map(Span::enter)
    }

    /// Delivers the outcome; a caller that stopped waiting is not an error.
    ///
    /// The holds on channels its arguments carried go first: once the
    /// caller sees the outcome, the task no longer keeps any channel open.
    pub(crate) fn finish(self, outcome: Result<Reply, Error>) {
        let Job {
            reply,
            holds,
            regions,
            ..
        } = self;
        drop((holds, regions));
        let _ = reply.send(outcome);
    }

    /// Records that the worker running it died so.
    pub(crate) fn record_crash(&mut self, crash: Crash) {
        let crashes = self.crashes.get_or_insert_with(Box::default);
        crashes.total = crashes.total.saturating_add(1);
        if crashes.recent.len() == RECENT_CRASHES {
            crashes.recent.remove(0);
        }
        crashes.recent.push(crash);
    }

    /// How many workers died running it.
    pub(crate) fn crashed_workers(&self) -> u32 {
        self.crashes.as_ref().map_or(0, |crashes| crashes.total)
    }

    /// Whether the caller has stopped waiting (cancelled the task), or will
    /// have by its deadline, which has passed.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.reply.is_closed() || self.placed.expired()
    }
}

/// A successful result, still encoded: `body[payload_at..]` and the
/// attachments of its frame. Decoding happens in the caller's task, not in
/// the dispatcher.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    pub(crate) payload_at: usize,
    pub(crate) attachments: Vec<Vec<u8>>,
    /// The run time the worker reported.
    pub(crate) nanos: u64,
    /// The worker that ran it.
    pub(crate) pid: u32,
}

impl Reply {
    pub(crate) fn payload(&self) -> &[u8] {
        &self.body[self.payload_at..]
    }

    /// The result, decoded.
    pub(crate) fn decode<T: serde::de::DeserializeOwned + 'static>(self) -> Result<T, Error> {
        attach::decode(&self.body[self.payload_at..], self.attachments)
    }
}
