//! What a slot needs of the outside world to fill itself: a way to start a
//! worker ([`Launch`]) and a handle on the process it got ([`WorkerProcess`]).
//!
//! The pool runs real processes through [`WorkerSpec`] and [`Child`]; the
//! slot's tests run a tokio task at the other end of a `tokio::io::duplex`
//! instead, so every transition can be driven and timed without a process.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use crate::error::{Error, Exit};
use crate::launch::child::Child;
use crate::launch::local::{self, Started, WorkerSpec};
use crate::wire::conn::Transport;

/// Starts workers for a pool's slots.
pub(crate) trait Launch: Debug + Send + Sync + Unpin + 'static {
    /// The pool's end of a worker's connection.
    type Io: Transport + Debug + Send + 'static;
    /// The worker itself.
    type Process: WorkerProcess;

    /// Starts a worker in the background; it is ready to serve (it said
    /// hello, and ran the initializer) when the handle completes `Ok`.
    fn start(&self) -> Starting<Self>;

    /// The largest frame body its workers may send.
    fn max_frame(&self) -> u64;

    /// The address-space limit its workers run under, if any: a worker
    /// that exits with [`EXIT_OUT_OF_MEMORY`](crate::worker::EXIT_OUT_OF_MEMORY)
    /// under it ran out of memory.
    fn memory_limit(&self) -> Option<u64>;

    /// How long its workers give a cancelled running task to stop by itself.
    fn cancel_grace(&self) -> Duration;

    /// Kills every worker it ever started and has not reaped yet, and reaps
    /// them, blocking briefly: the pool is gone, maybe with its runtime.
    fn kill_all(&self);
}

/// A worker on its way up.
pub(crate) type Starting<L> =
    JoinHandle<Result<Launched<<L as Launch>::Io, <L as Launch>::Process>, Error>>;

/// A worker ready to serve.
#[derive(Debug)]
pub(crate) struct Launched<Io, P> {
    pub(crate) process: P,
    pub(crate) io: Io,
    /// The id its next request gets (ids before it went to the initializer).
    pub(crate) first_id: u64,
    /// How often to ask it for a sign of life (see
    /// [`Launcher::keepalive`](crate::Launcher::keepalive)); `None` for a
    /// local worker, whose death the pool sees directly.
    pub(crate) keepalive: Option<std::time::Duration>,
    /// From spawning it to its being ready (`WorkerInsights::startup`).
    pub(crate) startup: Duration,
}

/// A running worker process: the only way a slot signals or waits for it.
pub(crate) trait WorkerProcess: Debug + Send + 'static {
    fn pid(&self) -> u32;

    /// Kills the worker and everything it started; harmless once it is dead.
    fn kill(&self);

    /// Its resident memory in bytes, if it can be read.
    fn resident_bytes(&self) -> Option<u64>;

    /// `Ready` once the process has exited, whatever its socket says (a
    /// process it forked may hold that open). Cheap enough for every poll.
    fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// Waits for the worker to exit, killing it if it has not within
    /// `grace`, reaps it, and says how it ended.
    fn wait_or_kill(self, grace: Duration) -> impl Future<Output = Exit> + Send + 'static;

    /// Kills the worker and reaps it.
    fn kill_and_wait(self) -> impl Future<Output = Exit> + Send + 'static;
}

/// Starts a real worker and waits for it to be ready, timing that.
pub(crate) async fn start_local(
    spec: &Arc<WorkerSpec>,
) -> Result<Launched<UnixStream, Child>, Error> {
    let spawned = Instant::now();
    let Started {
        child,
        data,
        first_id,
        keepalive,
    } = local::start(spec).await?;
    Ok(Launched {
        process: child,
        io: data,
        first_id,
        keepalive,
        startup: spawned.elapsed(),
    })
}

/// Real workers: the program re-executed, over a socketpair.
impl Launch for Arc<WorkerSpec> {
    type Io = UnixStream;
    type Process = Child;

    fn start(&self) -> Starting<Self> {
        let spec = self.clone();
        tokio::spawn(async move { start_local(&spec).await })
    }

    fn max_frame(&self) -> u64 {
        self.max_frame
    }

    fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    fn cancel_grace(&self) -> Duration {
        self.cancel_grace
    }

    fn kill_all(&self) {
        self.ledger.kill_all();
    }
}

impl WorkerProcess for Child {
    fn pid(&self) -> u32 {
        Child::pid(self)
    }

    fn kill(&self) {
        Child::kill(self);
    }

    fn resident_bytes(&self) -> Option<u64> {
        Child::resident_bytes(self)
    }

    fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Child::poll_exited(self, cx)
    }

    fn wait_or_kill(self, grace: Duration) -> impl Future<Output = Exit> + Send + 'static {
        Child::wait_or_kill(self, grace)
    }

    fn kill_and_wait(self) -> impl Future<Output = Exit> + Send + 'static {
        Child::kill_and_wait(self)
    }
}
