//! Configuring and starting a pool.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::Error;
use crate::launch::local::Initializer;
use crate::launch::{Containment, Redirect, WorkerOptions, cgroup_for, create_cgroup};
use crate::pool::Pool;
use crate::pool::dispatcher::{Dispatcher, Settings, Size};
use crate::pool::pool::Config;
use crate::pool::slot::{Recycle, start_local};
use crate::pool::stats::Counters;
use crate::registry;
use crate::registry::Task;
use crate::wire::hello::Backtraces;
use crate::wire::request;

/// Settings for a [`Pool`]; start from [`Pool::builder`], finish with
/// [`build`](PoolBuilder::build).
///
/// Every setter takes and returns the builder by value, so calls chain; each
/// one's documentation states its default. A builder is `Clone`, so one
/// configuration can start several pools.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use procpool::{Pool, Redirect};
///
/// # async fn demo() -> Result<(), procpool::Error> {
/// let pool = Pool::builder()
///     .workers(4)
///     .task_timeout(Duration::from_secs(30))
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
    /// How each worker is started: shared with [`ProcessBuilder`](crate::ProcessBuilder).
    pub(super) launch: WorkerOptions,
    max_in_flight: usize,
    task_timeout: Option<Duration>,
    max_tasks_per_worker: Option<u64>,
    retries: u32,
    initializer: Option<Result<Initializer, Error>>,
    pub(super) max_queued: Option<usize>,
    pub(super) memory_growth: Option<u64>,
    pub(super) min_workers: Option<usize>,
    pub(super) max_workers: Option<usize>,
    pub(super) idle_timeout: Duration,
}

/// How long a worker beyond `min_workers` may be idle before an elastic
/// pool lets it go, unless `idle_timeout` says otherwise.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder::new()
    }
}

impl PoolBuilder {
    /// A builder with every setting at its default, as each setter documents
    /// it; the same as [`Pool::builder`] and [`PoolBuilder::default`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::PoolBuilder;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = PoolBuilder::new().workers(2).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn new() -> PoolBuilder {
        PoolBuilder {
            workers: None,
            launch: WorkerOptions::default(),
            max_in_flight: 64,
            task_timeout: None,
            max_tasks_per_worker: None,
            retries: 0,
            initializer: None,
            max_queued: None,
            memory_growth: None,
            min_workers: None,
            max_workers: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// How many worker processes to keep running.
    ///
    /// The pool starts this many in [`build`](PoolBuilder::build) and
    /// replaces any that die; the number does not change while the pool
    /// runs. It also sets the default [`window`](crate::MapStream::window) of
    /// a [`map`](crate::Pool::map) (four chunks per worker).
    ///
    /// The default is [`std::thread::available_parallelism`] (1 if that is
    /// unknown), read when `build` runs. `workers(0)` is silently treated as
    /// `workers(1)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // One worker per core, keeping one core for the async side.
    /// let cores = std::thread::available_parallelism().map_or(1, usize::from);
    /// let pool = procpool::Pool::builder()
    ///     .workers(cores.saturating_sub(1))
    ///     .build()
    ///     .await?;
    /// assert!(pool.stats().workers >= 1); // 0 would have become 1
    /// # Ok(()) }
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// The program to run as a worker.
    ///
    /// The default is this same executable, started again (on Linux through
    /// `/proc/self/exe`, so a binary replaced on disk by a deploy cannot
    /// mismatch; elsewhere [`std::env::current_exe`]). Set a program when the
    /// current executable cannot serve, e.g. a test harness that runs tests
    /// before anything else: the program's `main` must call
    /// [`init`](crate::init) with the same `tasks![...]` list, in the same
    /// order, which the handshake checks.
    ///
    /// The path is used as [`std::process::Command::new`] uses it: a bare
    /// name without a `/` is looked up in `PATH`.
    ///
    /// # Errors
    ///
    /// Nothing is checked here; [`build`](PoolBuilder::build) fails with
    /// [`Error::is_spawn`](crate::Error::is_spawn) if the program cannot be
    /// started or does not complete the handshake (for example because it is
    /// another build, or its `main` does not call `init`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // A small binary of the same crate whose `main` is just
    /// // `procpool::init(tasks![...])` with the same list.
    /// let pool = procpool::Pool::builder()
    ///     .worker_program("/usr/local/libexec/my-app-worker")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.launch.program = Some(program.into());
        self
    }

    /// Command-line arguments for every worker process.
    ///
    /// A worker is the same program as the pool unless
    /// [`worker_program`](PoolBuilder::worker_program) says otherwise; its
    /// `main` calls [`init`](crate::init) first and never gets further, so
    /// the arguments matter to a separate worker program, or to tools such as
    /// `ps`. Each call replaces the arguments of an earlier one (it does not
    /// append).
    ///
    /// The default is no arguments.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .worker_program("/usr/local/libexec/my-app-worker")
    ///     .worker_args(["--role", "worker"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn worker_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.launch.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for the workers, on top of the pool
    /// process's own environment (which they inherit).
    ///
    /// Calls add up; for the same key twice, the later value wins. A variable
    /// cannot be removed from the inherited environment this way. The pool
    /// also sets `PROCPOOL_WORKER` for each worker (its launch marker); a
    /// value given here for that name is overridden.
    ///
    /// The default is no extra variables: workers see exactly the pool
    /// process's environment (as it is when each worker starts).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Parallelism comes from the pool: keep native libraries single-threaded.
    /// let pool = procpool::Pool::builder()
    ///     .env("OMP_NUM_THREADS", "1")
    ///     .env("RUST_LOG", "warn")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.launch.env.push((key.into(), value.into()));
        self
    }

    /// Where the workers' standard output goes.
    ///
    /// The default is [`Redirect::Inherit`]: a task's `println!` shows up
    /// where the pool's does. Output never disturbs the protocol, which has a
    /// socket of its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::Redirect;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // A chatty native library: drop what its tasks print.
    /// let pool = procpool::Pool::builder().stdout(Redirect::Null).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn stdout(mut self, redirect: Redirect) -> Self {
        self.launch.stdout = redirect;
        self
    }

    /// Where the workers' standard error goes.
    ///
    /// The default is [`Redirect::Inherit`]. With [`Redirect::Null`], what a
    /// dying worker itself prints is lost too: Rust's report of a stack
    /// overflow, a panic on a thread a task started, or why a worker could
    /// not start serving. (A task's own panic is not printed either way: its
    /// message reaches the caller in the [`Error`].)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::Redirect;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .stdout(Redirect::Null)
    ///     .stderr(Redirect::Null)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn stderr(mut self, redirect: Redirect) -> Self {
        self.launch.stderr = redirect;
        self
    }

    /// The largest frame, in bytes, that the pool sends to a worker or
    /// accepts from one: one task's encoded arguments or result plus a few
    /// bytes, or a whole [`map`](crate::Pool::map) chunk.
    ///
    /// * Arguments that encode to more fail at submit with
    ///   [`Error::is_too_large`](crate::Error::is_too_large), and nothing is
    ///   sent. A `map` chunk over the limit is split, so only an item too
    ///   large by itself fails.
    /// * A worker that announces a larger frame is treated as broken instead
    ///   of making the pool allocate whatever a corrupt length says: its task
    ///   fails with [`Error::is_protocol`](crate::Error::is_protocol) and the
    ///   worker is replaced. This includes an honest result that is simply
    ///   larger than the limit, so set it above your largest result.
    ///
    /// The default is 1 GiB; there is no upper limit beyond memory. Values
    /// below 64 bytes are silently raised to 64.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn len_of(text: String) -> usize { text.len() }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().max_frame_size(16 << 20).build().await?;
    /// let err = pool.submit(len_of, "a".repeat(32 << 20)).await.unwrap_err();
    /// assert!(err.is_too_large());
    /// # Ok(()) }
    /// ```
    pub fn max_frame_size(mut self, bytes: u64) -> Self {
        self.launch.max_frame = bytes.max(64);
        self
    }

    /// The most tasks in flight to one worker at a time: the one it is
    /// running plus those sent ahead.
    ///
    /// Within this cap the pool adapts: a worker is sent about a millisecond
    /// of work beyond the task it is running (by the run times it reports;
    /// nothing ahead until it has reported one), so tiny tasks go many to a
    /// system call while long ones stay in the pool's queue, where any free
    /// worker can take them. A task sent ahead waits for its worker even if
    /// another becomes free.
    ///
    /// The default is 64; 1 turns pipelining off. `0` is silently treated as
    /// `1`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Tasks of very uneven length: never queue one behind another on a
    /// // busy worker.
    /// let pool = procpool::Pool::builder().max_in_flight_per_worker(1).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn max_in_flight_per_worker(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// A time limit for every task submitted with
    /// [`submit`](crate::Pool::submit), counted from its submission (so it
    /// includes time spent queued). Past it the task is cancelled (its worker
    /// is killed and replaced if it is running) and its handle resolves to
    /// [`Error::is_timeout`](crate::Error::is_timeout).
    ///
    /// [`TaskHandle::timeout`](crate::TaskHandle::timeout) replaces it for
    /// one task. It does not apply to [`map`](crate::Pool::map) and its
    /// relatives, nor to the [initializer](PoolBuilder::initializer) (which
    /// the [handshake timeout](PoolBuilder::handshake_timeout) bounds).
    ///
    /// The pool enforces the limit itself: a task past it is stopped (its
    /// worker killed and replaced if it had started it) whether or not its
    /// handle is being polled, and the handle resolves to
    /// [`Error::is_timeout`](crate::Error::is_timeout). A zero limit fails a
    /// task at once, unless its result is already there when the handle is
    /// first polled.
    ///
    /// The default is no limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .task_timeout(Duration::from_secs(30))
    ///     .build()
    ///     .await?;
    /// match pool.submit(slow, 1).await {
    ///     Err(err) if err.is_timeout() => eprintln!("gave up: {err}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
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
    /// workers keep serving meanwhile. The
    /// [initializer](PoolBuilder::initializer) is not counted, and runs again
    /// in each replacement. [`Stats::recycled`](crate::Stats::recycled)
    /// counts the replacements.
    ///
    /// The default is no limit: a worker serves until it dies or the pool
    /// stops. `0` is silently treated as `1`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // A native library leaks a little per call: start afresh every 1,000.
    /// let pool = procpool::Pool::builder().max_tasks_per_worker(1_000).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn max_tasks_per_worker(mut self, n: u64) -> Self {
        self.max_tasks_per_worker = Some(n.max(1));
        self
    }

    /// Runs a task again, up to `n` times, when the worker running it dies
    /// (is killed, crashes, runs out of memory) before it returns.
    ///
    /// Only for tasks that are safe to run twice: a task that died half-way
    /// may have had effects. Panics are not retried (the worker survives
    /// them, and a panic usually repeats), nor are protocol errors,
    /// cancellations and timeouts. Other tasks sent ahead to the dying
    /// worker are requeued anyway, without using up a retry. When a retried
    /// task crashes a worker again, the replacement starts only after a
    /// backoff (50 ms, doubling up to 5 s), so a task that always crashes
    /// cannot make the pool respawn in a tight loop. Each rerun is counted in
    /// [`Stats::retried`](crate::Stats::retried); once none is left, the task
    /// fails with [`Error::is_worker_died`](crate::Error::is_worker_died)
    /// (or [`is_out_of_memory`](crate::Error::is_out_of_memory) if the last
    /// death was one), whose message names every death's cause and
    /// [`worker_deaths`](crate::Error::worker_deaths) counts them.
    ///
    /// [`crash_limit`](PoolBuilder::crash_limit)`(n + 1)` is the same
    /// setting, counted in deaths; the later call wins.
    ///
    /// The setting applies to [`submit`](crate::Pool::submit) and to each
    /// chunk of a [`map`](crate::Pool::map): a chunk is retried whole, and
    /// once its retries are used up it is rerun item by item, as it is
    /// without retries.
    ///
    /// The default is 0: a task is run at most once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn resize(path: String) -> bool { true }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Resizing an image again is harmless; losing it to the OOM killer is not.
    /// let pool = procpool::Pool::builder().retries(2).build().await?;
    /// let done = pool.submit(resize, "photo.jpg".to_string()).await?;
    /// # Ok(()) }
    /// ```
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Fails a task for good once `n` workers have died running it (Dask's
    /// `allowed-failures`, HyperQueue's crash limit); until then it is run
    /// again after each death. The error names every death's cause (the
    /// last 16), oldest first, and
    /// [`Error::worker_deaths`](crate::Error::worker_deaths) counts them.
    ///
    /// Only deaths while the task was running count: a worker that dies
    /// with the task merely sent ahead to it sends the task back to the
    /// queue at no cost (and one whose delivery kills three workers in a
    /// row fails anyway, as undeliverable). This is
    /// [`retries`](PoolBuilder::retries)`(n - 1)` under the name that
    /// counts deaths; everything said there applies (which failures are
    /// retried, the backoff, `map` chunks), and the later call wins.
    ///
    /// The default is 1: a task fails with the first death. `0` is
    /// silently treated as `1`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn render(scene: String) -> Vec<u8> { Vec::new() }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // A flaky native renderer: three tries, then report all three crashes.
    /// let pool = procpool::Pool::builder().crash_limit(3).build().await?;
    /// match pool.submit(render, "scene.json".to_string()).await {
    ///     Err(err) if err.worker_deaths() == 3 => eprintln!("gave up: {err}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn crash_limit(mut self, n: u32) -> Self {
        self.retries = n.max(1) - 1;
        self
    }

    /// A registered task that every worker runs once, before it serves
    /// anything (to load a model, open a connection, set a limit…); its
    /// result is discarded. It runs again in every replacement worker
    /// (after a crash, a cancellation, or
    /// [recycling](PoolBuilder::max_tasks_per_worker)), so it should be
    /// safe to repeat. State it sets up lives in the worker process, for
    /// example in a `static` that later tasks read.
    ///
    /// `f` must be listed in the [`tasks!`](crate::tasks) passed to
    /// [`init`](crate::init), which must have run before this call: the
    /// function is looked up, and `args` encoded, here. A second call
    /// replaces the first. The default is no initializer.
    ///
    /// # Errors
    ///
    /// Nothing fails here; [`build`] reports the problems:
    ///
    /// * [`Error::is_unregistered`](crate::Error::is_unregistered) if `f` is
    ///   not registered (or `init` had not been called);
    /// * [`Error::is_codec`](crate::Error::is_codec) if `args` cannot be
    ///   serialized, [`Error::is_too_large`](crate::Error::is_too_large) if
    ///   they are over [`max_frame_size`](PoolBuilder::max_frame_size);
    /// * [`Error::is_spawn`](crate::Error::is_spawn), naming it, if it fails
    ///   in a worker: panics, errs, crashes the worker or takes longer than
    ///   the [handshake timeout](PoolBuilder::handshake_timeout).
    ///
    /// If it fails later, when a worker is replaced, the replacement is
    /// retried with backoff, and queued tasks fail with `is_spawn` once no
    /// worker is left; the pool never respawns in a tight loop.
    ///
    /// [`build`]: PoolBuilder::build
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::OnceLock;
    ///
    /// static SERVER: OnceLock<String> = OnceLock::new();
    ///
    /// fn connect(url: String) {
    ///     // Runs once in each worker, before its first task.
    ///     SERVER.set(url).expect("an initializer runs once per worker");
    /// }
    ///
    /// fn query(id: u64) -> String {
    ///     format!("{id} from {}", SERVER.get().expect("set by connect"))
    /// }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init(procpool::tasks![connect, query]);
    ///     tokio::runtime::Runtime::new()?.block_on(async {
    ///         let pool = procpool::Pool::builder()
    ///             .initializer(connect, "postgres://localhost".to_string())
    ///             .build()
    ///             .await?;
    ///         println!("{}", pool.submit(query, 7).await?);
    ///         Ok(())
    ///     })
    /// }
    /// ```
    pub fn initializer<M, F: Task<M>>(mut self, f: F, args: F::Args) -> Self {
        crate::registry::assert_fn_item::<F>();
        let _ = f;
        let task = std::any::type_name::<F>();
        self.initializer = Some(
            registry::global()
                .and_then(|registry| registry.index_of::<F>())
                .and_then(|index| request::encode(index, args))
                .map(|request| Initializer { task, request }),
        );
        self
    }

    /// Where workers run and how they are started there: on this machine
    /// (the default, [`Launcher::local`](crate::Launcher::local)), or through
    /// a command such as `ssh HOST` or `srun` (see [`Launcher`](crate::Launcher)
    /// for what crosses hosts and what does not).
    ///
    /// # Errors
    ///
    /// Nothing is checked here. With a launcher command, [`build`](PoolBuilder::build) fails with
    /// [`Error::is_spawn`](crate::Error::is_spawn), naming the launcher, if
    /// it cannot be run, exits (host unreachable, authentication refused,
    /// program missing there), a remote shell prints something first, the
    /// program there is a different build, or the handshake does not complete
    /// within the [handshake timeout](Self::handshake_timeout); and at once
    /// with [`Containment::Cgroup`](crate::Containment::Cgroup).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::{Launcher, Pool};
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Inside a Slurm allocation: one worker per task slot, placed by Slurm.
    /// let pool = Pool::builder().launcher(Launcher::srun()).workers(16).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn launcher(mut self, launcher: crate::Launcher) -> Self {
        self.launch.launcher = launcher;
        self
    }

    /// How the processes a task starts are made to die with it; see
    /// [`Containment`] for what each choice guarantees, and
    /// [`Pool::containment`] for what `Auto` chose.
    ///
    /// The default is [`Containment::Auto`]: a cgroup per worker where this
    /// process may create one, else the worker's process group.
    ///
    /// # Errors
    ///
    /// With [`Containment::Cgroup`], [`build`](PoolBuilder::build) fails
    /// with [`Error::is_spawn`](crate::Error::is_spawn) when no cgroup can be
    /// created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Pools started often, whose tasks start no processes: skip the
    /// // cgroup move, which costs up to a millisecond per worker start.
    /// let pool = procpool::Pool::builder()
    ///     .containment(procpool::Containment::ProcessGroup)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn containment(mut self, containment: Containment) -> Self {
        self.launch.containment = containment;
        self
    }

    /// How long a new worker has to start and complete its handshake; the
    /// [initializer](PoolBuilder::initializer), if any, then gets as long
    /// again to finish.
    ///
    /// It bounds every worker start: those in [`build`](PoolBuilder::build),
    /// which fails with [`Error::is_spawn`](crate::Error::is_spawn) when a
    /// worker is late, and each replacement later. There is no lower limit: a
    /// zero or tiny timeout makes every start fail.
    ///
    /// The default is 10 seconds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn load_model(path: String) {}
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Loading the model takes a while on a cold disk.
    /// let pool = procpool::Pool::builder()
    ///     .initializer(load_model, "model.bin".to_string())
    ///     .handshake_timeout(Duration::from_secs(60))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.launch.handshake_timeout = timeout;
        self
    }

    /// Sends the `tracing` events and `log` records that tasks emit at
    /// `level` or more severe to this process, where they are emitted again
    /// as `tracing` events under the target `procpool::worker`, with fields
    /// `worker` (its pid), `task` (the task's name), `task_id` and `origin`
    /// (the event's own target). The default is to send none.
    ///
    /// Inside a worker, a global subscriber (or `log` logger) of the
    /// program's own, set before `procpool::init`, takes precedence, and
    /// nothing of that kind is sent.
    /// A task that logs faster than this process takes the records in is
    /// slowed down rather than buffering without bound. Spans are not
    /// carried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(n: u64) -> u64 {
    ///     tracing::info!(n, "working");
    ///     n * 2
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // With a subscriber installed in this process (e.g. tracing-subscriber's fmt),
    /// // the line shows up as: INFO procpool::worker: working n=21 worker=… task="app::work" …
    /// let pool = procpool::Pool::builder()
    ///     .forward_logs(tracing::Level::INFO)
    ///     .build()
    ///     .await?;
    /// assert_eq!(pool.submit(work, 21).await?, 42);
    /// # Ok(()) }
    /// ```
    pub fn forward_logs(mut self, level: tracing::Level) -> Self {
        self.launch.log_level = Some(level);
        self
    }

    /// Whether a task's panic carries the backtrace of the worker thread
    /// that panicked, as [`Error::backtrace`](crate::Error::backtrace)
    /// and in the error's `Display` (`true`), or never does (`false`).
    ///
    /// The default follows the workers' environment as std's
    /// [`Backtrace::capture`](std::backtrace::Backtrace::capture) does:
    /// `RUST_LIB_BACKTRACE`, else `RUST_BACKTRACE`, set to anything but `0`
    /// (workers inherit this process's environment, plus
    /// [`env`](PoolBuilder::env)). The backtrace is taken in the worker's
    /// panic hook, so tasks that do not panic pay nothing either way; a
    /// panic with it on costs the stack walk and symbol lookup, about a
    /// millisecond or more the first time. It is cut to the frames from
    /// the `panic!` to the task's function; symbols need debug info
    /// (`debug = 1` or more, or `"line-tables-only"`, in release builds).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn parse_port(text: String) -> u16 {
    ///     text.parse().expect("a port number")
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().capture_backtraces(true).build().await?;
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// assert!(err.backtrace().unwrap().contains("parse_port"));
    /// # Ok(()) }
    /// ```
    pub fn capture_backtraces(mut self, capture: bool) -> Self {
        self.launch.backtraces = Backtraces::from(capture);
        self
    }

    /// Starts the workers and waits until every one has completed its
    /// handshake (and run the [initializer](PoolBuilder::initializer)).
    ///
    /// The workers start at the same time, so this takes about as long as
    /// the slowest one. The pool's background work runs on the tokio runtime
    /// this is awaited on, which must outlive the pool.
    ///
    /// # Errors
    ///
    /// * [`Error::is_unregistered`](crate::Error::is_unregistered) if
    ///   [`init`](crate::init) was not called, or the initializer is not
    ///   registered;
    /// * [`Error::is_codec`](crate::Error::is_codec) or
    ///   [`Error::is_too_large`](crate::Error::is_too_large) if the
    ///   initializer's arguments cannot be encoded or are too large;
    /// * [`Error::is_spawn`](crate::Error::is_spawn) if a worker cannot be
    ///   started, exits, is late (see
    ///   [`handshake_timeout`](PoolBuilder::handshake_timeout)), or is a
    ///   different build (protocol version or task list differ); if the
    ///   initializer fails; if [`Containment::Cgroup`] was asked for and no
    ///   cgroup can be made; or if this process is itself a worker whose
    ///   `main` did not call `init` before building a pool (which would
    ///   otherwise start workers without end).
    ///
    /// Workers already started are killed and reaped before the error returns.
    ///
    /// Polled outside a tokio runtime, or on one without its I/O or time
    /// driver, it fails with an [`Error::is_spawn`](crate::Error::is_spawn)
    /// error that says so, before any worker starts.
    ///
    /// # Panics
    ///
    /// Never by itself. It finds out whether the runtime has its I/O and
    /// time drivers by trying them and catching tokio's panic, so in a
    /// program built with `panic = "abort"` a runtime without them aborts
    /// the process instead of returning the error above.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, but nothing leaks: dropping the future before it
    /// completes kills the workers started so far (they are reaped in the
    /// background) and no pool is made. Build again to retry.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// #[tokio::main]
    /// async fn main() {
    ///     procpool::init(procpool::tasks![square]);
    ///     let pool = match procpool::Pool::builder().workers(2).build().await {
    ///         Ok(pool) => pool,
    ///         Err(err) if err.is_spawn() => {
    ///             eprintln!("cannot start the workers: {err}");
    ///             std::process::exit(1);
    ///         }
    ///         Err(err) => panic!("{err}"),
    ///     };
    ///     assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    /// }
    /// ```
    pub async fn build(self) -> Result<Pool, Error> {
        check_can_start("PoolBuilder::build")?;
        let registry = registry::global()?;
        let base = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let workers = self.min_workers.unwrap_or(base);
        let size = Size {
            min: workers,
            max: self.max_workers.unwrap_or(workers).max(workers),
            idle_timeout: self.idle_timeout,
        };
        let max_frame = self.launch.max_frame;
        let initializer = match self.initializer.transpose()? {
            Some(init) if init.request.body_len() > max_frame => {
                return Err(Error::new(crate::error::Repr::TooLarge {
                    task: init.task,
                    bytes: init.request.body_len(),
                    max: max_frame,
                }));
            }
            init => init,
        };
        let cgroup = cgroup_for(self.launch.containment()?, create_cgroup).await?;
        let containment = match cgroup {
            Some(_) => Containment::Cgroup,
            None => Containment::ProcessGroup,
        };
        let remote = self
            .launch
            .launcher
            .prefix()
            .map(|prefix| prefix.describe());
        let spec = Arc::new(
            self.launch
                .into_spec(registry.fingerprint(), initializer, cgroup)?,
        );
        // Handshakes overlap; if any fails, the others are killed and reaped.
        let results = futures::future::join_all((0..workers).map(|_| start_local(&spec))).await;
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
                spawned.process.kill_and_wait().await;
            }
            return Err(err);
        }
        let counters = Arc::new(Counters::default());
        counters
            .workers
            .store(workers, std::sync::atomic::Ordering::Relaxed);
        let settings = Settings {
            max_depth: self.max_in_flight,
            recycle: Recycle {
                max_tasks: self.max_tasks_per_worker,
                memory_growth: self.memory_growth,
            },
            size,
        };
        let (commands, inbox) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher::new(inbox, started, spec, counters.clone(), settings);
        tokio::spawn(dispatcher);
        Ok(Pool::from_parts(
            commands,
            counters,
            registry,
            Config {
                task_timeout: self.task_timeout,
                retries: self.retries,
                max_frame,
                containment,
                max_queued: self.max_queued,
                remote,
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
/// Whether `what` (`PoolBuilder::build`, `procpool::spawn`) may start
/// workers here: inside a tokio runtime with its drivers (see
/// [`check_runtime`]), and not in a worker whose `main` skipped `init`
/// (which would start workers without end).
pub(crate) fn check_can_start(what: &str) -> Result<(), Error> {
    check_runtime(what)?;
    if crate::launch::marker::is_unclaimed_worker() {
        return Err(Error::spawn(
            format!(
                "this process was started as a procpool worker, but its `main` called {what} \
                 without calling `procpool::init(procpool::tasks![...])` first; call init first \
                 thing in main"
            ),
            None,
        ));
    }
    Ok(())
}

fn check_runtime(what: &str) -> Result<(), Error> {
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
            format!("{what} must run inside a tokio runtime (it starts tasks there)"),
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
