//! A submitted task on its way to a worker, paired with where its answer goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use tokio::sync::oneshot;

use crate::channel::Holds;
use crate::error::Error;

/// One task: its request frame, encoded once at submit time (and kept until the
/// answer arrives, so a task that never started can be sent to another worker
/// if its worker dies), and the channel its result goes back on. The caller
/// dropping the other end of `reply` is what cancels the task.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) task: &'static str,
    pub(crate) frame: Vec<u8>,
    pub(crate) reply: oneshot::Sender<Result<Reply, Error>>,
    /// Runs left if its worker dies under it (`PoolBuilder::retries`).
    pub(crate) retries_left: u32,
    /// Workers that died while its request was being written to them.
    pub(crate) failed_deliveries: u32,
    /// Workers that died while running it (it was retried after each).
    pub(crate) crashed_workers: u32,
    /// Where it was last sent, for the caller's timeout and cancel errors.
    pub(crate) placed: Placement,
    /// Holds on the channels whose endpoints its arguments carry, until it
    /// is answered (the worker holds its own by then). Never read: what
    /// counts is when it drops.
    pub(crate) holds: Holds,
}

/// The caller's end of a job: where its answer comes, and where it went.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) answer: oneshot::Receiver<Result<Reply, Error>>,
    pub(crate) placed: Placement,
}

/// The pid of the worker a task was last sent to, shared between the pool
/// (which writes it when it sends the task) and the caller's handle (which
/// reads it when it gives up on the task). 0: not sent yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement(Arc<AtomicU32>);

impl Placement {
    pub(crate) fn set(&self, pid: u32) {
        self.0.store(pid, Relaxed);
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.0.load(Relaxed)).filter(|&pid| pid != 0)
    }
}

/// Encodes the request to run task `index` on `args`, with holds on the
/// channels whose endpoints `args` carry (see [`Job::holds`]).
pub(crate) fn encode_request<A: serde::Serialize>(
    index: u32,
    args: &A,
) -> Result<(Vec<u8>, Holds), Error> {
    let (frame, holds) = crate::channel::carry(|| crate::wire::request::encode(index, args));
    Ok((frame?, holds))
}

impl Job {
    /// Delivers the outcome; a caller that stopped waiting is not an error.
    ///
    /// The holds on channels its arguments carried go first: once the
    /// caller sees the outcome, the task no longer keeps any channel open.
    pub(crate) fn finish(self, outcome: Result<Reply, Error>) {
        let Job { reply, holds, .. } = self;
        drop(holds);
        let _ = reply.send(outcome);
    }

    /// Whether the caller has stopped waiting (cancelled the task).
    pub(crate) fn is_cancelled(&self) -> bool {
        self.reply.is_closed()
    }
}

/// A successful result, still encoded: `body[payload_at..]`. Decoding happens
/// in the caller's task, not in the dispatcher.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    pub(crate) payload_at: usize,
    /// The run time the worker reported.
    pub(crate) nanos: u64,
    /// The worker that ran it.
    pub(crate) pid: u32,
}

impl Reply {
    pub(crate) fn payload(&self) -> &[u8] {
        &self.body[self.payload_at..]
    }
}
