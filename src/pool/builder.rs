//! Configuring and starting a pool.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::Error;
use crate::launch::cgroup::PoolCgroup;
use crate::launch::child::Ledger;
use crate::launch::spawn::{self, Initializer, WorkerSpec};
use crate::launch::{Containment, Redirect};
use crate::pool::Pool;
use crate::pool::dispatcher::{Dispatcher, Settings};
use crate::pool::pool::Config;
use crate::pool::stats::Counters;
use crate::registry;
use crate::registry::Task;
use crate::wire::{frame, request};

/// Settings for a [`Pool`]; start from [`Pool::builder`], finish with
/// [`build`](PoolBuilder::build).
///
/// ```no_run
/// # async fn demo() -> Result<(), procpool::Error> {
/// use procpool::{Pool, Redirect};
///
/// let pool = Pool::builder()
///     .workers(4)
///     .stderr(Redirect::Null)
///     .env("RUST_LOG", "warn")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a PoolBuilder does nothing until .build().await"]
pub struct PoolBuilder {
    workers: Option<usize>,
    program: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdout: Redirect,
    stderr: Redirect,
    max_frame: u64,
    max_in_flight: usize,
    socket_buffer: usize,
    handshake_timeout: Duration,
    task_timeout: Option<Duration>,
    max_tasks_per_worker: Option<u64>,
    retries: u32,
    initializer: Option<Result<Initializer, Error>>,
    containment: Containment,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder::new()
    }
}

impl PoolBuilder {
    /// The defaults, as each setter documents them.
    pub fn new() -> PoolBuilder {
        PoolBuilder {
            workers: None,
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            stdout: Redirect::Inherit,
            stderr: Redirect::Inherit,
            max_frame: 1 << 30,
            max_in_flight: 64,
            socket_buffer: 4 << 20,
            handshake_timeout: Duration::from_secs(10),
            task_timeout: None,
            max_tasks_per_worker: None,
            retries: 0,
            initializer: None,
            containment: Containment::Auto,
        }
    }

    /// How many worker processes to keep running.
    ///
    /// The default is [`std::thread::available_parallelism`] (1 if unknown).
    /// Zero is treated as one.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// The program to run as a worker.
    ///
    /// By default a worker is this same executable, started again (on Linux
    /// through `/proc/self/exe`, so a binary replaced on disk by a deploy
    /// cannot mismatch). Set a program when the current executable cannot
    /// serve, e.g. a test harness that runs tests before anything else: the
    /// program's `main` must call [`init`](crate::init) with the same
    /// `tasks![...]` list, which the handshake checks.
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Arguments for the worker program. The default is none.
    pub fn worker_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for the workers, on top of the pool
    /// process's own environment (which they inherit).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Where the workers' standard output goes. The default is
    /// [`Redirect::Inherit`]: a task's `println!` shows up where the pool's does.
    pub fn stdout(mut self, redirect: Redirect) -> Self {
        self.stdout = redirect;
        self
    }

    /// Where the workers' standard error goes. The default is
    /// [`Redirect::Inherit`].
    pub fn stderr(mut self, redirect: Redirect) -> Self {
        self.stderr = redirect;
        self
    }

    /// The largest frame (one encoded argument set or result, plus a few
    /// bytes) the pool accepts from a worker, and a worker from the pool.
    ///
    /// A worker that announces a larger frame is treated as broken (its task
    /// fails with [`Error::is_protocol`](crate::Error::is_protocol)) instead of
    /// making the pool allocate whatever a corrupt length says. The default is
    /// 1 GiB; there is no upper limit beyond memory.
    pub fn max_frame_size(mut self, bytes: u64) -> Self {
        self.max_frame = bytes.max(64);
        self
    }

    /// The most tasks sent ahead to one worker.
    ///
    /// Within this cap the pool adapts: a worker is sent about a millisecond
    /// of work beyond the task it is running (by the run times it reports), so
    /// tiny tasks go many to a system call while long ones stay in the pool's
    /// queue, where any free worker can take them. The default is 64; 1 turns
    /// pipelining off.
    pub fn max_in_flight_per_worker(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// A time limit for every task, counted from its submission; see
    /// [`TaskHandle::timeout`](crate::TaskHandle::timeout), which overrides it
    /// per task. The default is no limit.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Replaces each worker after it has been sent `n` tasks (a chunk of a
    /// [`map`](crate::Pool::map) counts as one), like Python's
    /// `max_tasks_per_child`: a remedy for tasks that leak memory or other
    /// resources.
    ///
    /// The replacement is started as soon as the worker receives its last
    /// task, so it is usually ready when that task finishes, and the other
    /// workers keep serving meanwhile. The default is no limit.
    pub fn max_tasks_per_worker(mut self, n: u64) -> Self {
        self.max_tasks_per_worker = Some(n.max(1));
        self
    }

    /// Runs a task again, up to `n` times, when the worker running it dies
    /// (is killed, crashes, runs out of memory) before it returns.
    ///
    /// Only for tasks that are safe to run twice: a task that died half-way
    /// may have had effects. Panics are not retried (the worker survives
    /// them, and a panic usually repeats). The default is 0: a task is run at
    /// most once.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// A registered task that every worker runs once, before it serves
    /// anything (to load a model, open a connection, set a limit…); its
    /// result is discarded.
    ///
    /// If it fails — panics, errs, crashes or takes longer than the
    /// [handshake timeout](PoolBuilder::handshake_timeout) — [`build`] fails
    /// with an [`Error::is_spawn`](crate::Error::is_spawn) error naming it.
    /// If it fails later, when a worker is replaced, the replacement is
    /// retried with backoff and queued tasks fail if no worker is left; the
    /// pool never respawns in a tight loop.
    ///
    /// [`build`]: PoolBuilder::build
    ///
    /// ```no_run
    /// # fn connect(url: String) {}
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .initializer(connect, "postgres://localhost".to_string())
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn initializer<M, F: Task<M>>(mut self, f: F, args: F::Args) -> Self {
        crate::registry::assert_fn_item::<F>();
        let _ = f;
        let task = std::any::type_name::<F>();
        self.initializer = Some(
            registry::global()
                .and_then(|registry| registry.index_of::<F>())
                .and_then(|index| request::encode(index, &args))
                .map(|frame| Initializer { task, frame }),
        );
        self
    }

    /// How the processes a task starts are made to die with it; see
    /// [`Containment`] for what each choice guarantees. The default is
    /// [`Containment::Auto`]: a cgroup per worker where this process may
    /// create one, else the worker's process group.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .containment(procpool::Containment::ProcessGroup)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn containment(mut self, containment: Containment) -> Self {
        self.containment = containment;
        self
    }

    /// How long a new worker has to start and complete its handshake.
    /// The default is 10 seconds.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Starts the workers and waits until every one has completed its
    /// handshake.
    ///
    /// # Errors
    ///
    /// * [`Error::is_unregistered`](crate::Error::is_unregistered) if
    ///   [`init`](crate::init) was not called;
    /// * [`Error::is_spawn`](crate::Error::is_spawn) if a worker cannot be
    ///   started, exits, or is a different build (protocol version or task list
    ///   differ), or if this process is itself a worker whose `main` did not
    ///   call `init` before building a pool (which would otherwise start
    ///   workers without end).
    ///
    /// Workers already started are killed and reaped before the error returns.
    ///
    /// Polled outside a tokio runtime, or on one without its I/O or time
    /// driver, it fails with an [`Error::is_spawn`](crate::Error::is_spawn)
    /// error that says so, before any worker starts (in a program built with
    /// `panic = "abort"`, tokio's own panic aborts it instead).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the workers started so far.
    pub async fn build(self) -> Result<Pool, Error> {
        check_runtime()?;
        if crate::launch::marker::is_unclaimed_worker() {
            return Err(Error::spawn(
                "this process was started as a procpool worker, but its `main` built a pool \
                 without calling `procpool::init(procpool::tasks![...])` first; call init first \
                 thing in main",
                None,
            ));
        }
        let registry = registry::global()?;
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let program = match self.program {
            Some(program) => program,
            None => current_exe()?,
        };
        // Creating it sweeps stale directories, which can wait: off the
        // async threads.
        let create = || async {
            tokio::task::spawn_blocking(PoolCgroup::create)
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())))
                .map(Arc::new)
        };
        let cgroup = match self.containment {
            Containment::ProcessGroup => None,
            Containment::Auto => create().await.ok(),
            Containment::Cgroup => Some(create().await.map_err(|err| {
                Error::spawn(
                    "Containment::Cgroup was asked for, but no cgroup can be created for the \
                     workers (this needs cgroup v2 with cgroup.kill, Linux 5.14, and write access \
                     to this process's cgroup: root, or a delegated subtree)",
                    Some(err),
                )
            })?),
        };
        let containment = match cgroup {
            Some(_) => Containment::Cgroup,
            None => Containment::ProcessGroup,
        };
        let spec = Arc::new(WorkerSpec {
            program,
            args: self.args,
            env: self.env,
            stdout: self.stdout,
            stderr: self.stderr,
            max_frame: self.max_frame,
            socket_buffer: self.socket_buffer,
            handshake_timeout: self.handshake_timeout,
            fingerprint: registry.fingerprint(),
            initializer: match self.initializer.transpose()? {
                Some(init) if frame::body_len_of(&init.frame) > self.max_frame => {
                    return Err(Error::new(crate::error::Repr::TooLarge {
                        task: init.task,
                        bytes: frame::body_len_of(&init.frame),
                        max: self.max_frame,
                    }));
                }
                init => init,
            },
            cgroup,
            ledger: Arc::new(Ledger::new()),
        });
        // Handshakes overlap; if any fails, the others are killed and reaped.
        let results = futures::future::join_all((0..workers).map(|_| spawn::spawn(&spec))).await;
        let mut started = Vec::with_capacity(workers);
        let mut failure = None;
        for result in results {
            match result {
                Ok(spawned) => started.push(spawned),
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        if let Some(err) = failure {
            for spawned in started {
                spawned.child.kill_and_wait().await;
            }
            return Err(err);
        }
        let max_frame = spec.max_frame;
        let counters = Arc::new(Counters::default());
        let settings = Settings {
            max_depth: self.max_in_flight,
            max_tasks_per_worker: self.max_tasks_per_worker,
        };
        let (commands, inbox) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher::new(inbox, started, spec, counters.clone(), settings);
        tokio::spawn(dispatcher);
        Ok(Pool::from_parts(
            commands,
            counters,
            registry,
            Config {
                workers,
                task_timeout: self.task_timeout,
                retries: self.retries,
                max_frame,
                containment,
            },
        ))
    }
}

/// The pool needs tokio's I/O driver (sockets, pidfds) and timers
/// (handshake, backoff, timeouts). tokio panics when either is missing and
/// offers no way to ask, so ask by trying, with the panic message silenced:
/// a typed error before any worker starts, instead of a panic halfway.
/// (Under `panic = "abort"` the probe cannot catch, and aborts as tokio
/// would have.)
fn check_runtime() -> Result<(), Error> {
    let missing = |what: &str| {
        Error::spawn(
            format!(
                "the tokio runtime has no {what}; build it with `enable_all()` (or `enable_io()` \
                 and `enable_time()`)"
            ),
            None,
        )
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::spawn(
            "PoolBuilder::build must run inside a tokio runtime (it starts tasks there)",
            None,
        ));
    }
    let (probe, _peer) = std::os::unix::net::UnixStream::pair()
        .map_err(|err| Error::spawn("socketpair", Some(err)))?;
    probe
        .set_nonblocking(true)
        .map_err(|err| Error::spawn("socketpair", Some(err)))?;
    let io = quietly(move || tokio::net::UnixStream::from_std(probe).is_ok());
    let time = quietly(|| drop(tokio::time::sleep(Duration::ZERO)));
    if !matches!(io, Ok(true)) {
        Err(missing("I/O driver"))
    } else if time.is_err() {
        Err(missing("time driver"))
    } else {
        Ok(())
    }
}

thread_local! {
    static PROBING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `probe`, catching a panic without printing it. The panic hook is
/// wrapped once, for good, so that it stays silent only on this thread and
/// only during a probe: swapping the process's hook for each probe would
/// race with other threads (theirs, or another `build()`).
fn quietly<R>(probe: impl FnOnce() -> R + std::panic::UnwindSafe) -> std::thread::Result<R> {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PROBING.with(|probing| probing.get()) {
                previous(info);
            }
        }));
    });
    PROBING.with(|probing| probing.set(true));
    let outcome = std::panic::catch_unwind(probe);
    PROBING.with(|probing| probing.set(false));
    outcome
}

fn current_exe() -> Result<PathBuf, Error> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe()
        .map_err(|err| Error::spawn("cannot find the current executable", Some(err)))
}
