//! Configuring and starting one-shot processes: [`ProcessBuilder`] and
//! [`spawn`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

use super::driver::Driver;
use super::handle::Process;
use crate::error::{Error, Exit, Repr};
use crate::launch::cgroup::PoolCgroup;
use crate::launch::{Containment, Redirect, WorkerOptions, cgroup_for, create_cgroup};
use crate::pool::builder::check_can_start;
use crate::pool::job::{Encoded, Job, Placement, Ticket, check_local, encode_request};
use crate::registry::{self, Task, assert_fn_item};
use crate::wire::hello::Backtraces;

/// Runs `f(args)` in a fresh process of its own, started at once, with
/// every setting at its default; the handle is a future of the result. The
/// same as `ProcessBuilder::new().spawn(f, args)`, and Python's
/// `Process(target=f, args=args).start()`.
///
/// `f` must be listed in the [`tasks!`](crate::tasks) passed to
/// [`init`](crate::init): the process is this executable, started again,
/// and it serves `f` as a pool's worker would.
///
/// # Errors
///
/// None here: the handle resolves to the error, as described on
/// [`Process`] and [`ProcessBuilder::spawn`].
///
/// # Examples
///
/// ```no_run
/// fn product(a: u64, b: u64, c: u64) -> u64 {
///     a * b * c
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![product]);
///     assert_eq!(procpool::spawn(product, (2, 3, 4)).await?, 24);
///     Ok(())
/// }
/// ```
pub fn spawn<M, F: Task<M>>(f: F, args: F::Args) -> Process<F::Output> {
    ProcessBuilder::new().spawn(f, args)
}

/// Settings for one-shot processes; start from [`Process::builder`] (or
/// [`ProcessBuilder::new`]), finish with [`spawn`](ProcessBuilder::spawn).
///
/// The settings are those of a [`Pool`](crate::Pool)'s workers, kept in the
/// same place, so each means what the [`PoolBuilder`](crate::PoolBuilder)
/// setter of the same name says (each setter here links to it). Every setter
/// takes and returns the builder by value; `spawn` takes it by reference,
/// so one builder starts any number of processes.
///
/// # Examples
///
/// ```no_run
/// use procpool::{Process, Redirect};
///
/// # fn render(page: u32) -> Vec<u8> { Vec::new() }
/// # async fn demo() -> Result<(), procpool::Error> {
/// let renderer = Process::builder()
///     .env("OMP_NUM_THREADS", "1")
///     .stderr(Redirect::Null);
/// let pages = futures::future::try_join_all((1..=3).map(|page| renderer.spawn(render, page))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a ProcessBuilder does nothing until .spawn(f, args)"]
pub struct ProcessBuilder {
    launch: WorkerOptions,
}

impl ProcessBuilder {
    /// A builder with every setting at its default, as each setter says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::ProcessBuilder::new().spawn(work, 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn new() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// The program to run; the default is this same executable. See
    /// [`PoolBuilder::worker_program`](crate::PoolBuilder::worker_program).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .worker_program("/usr/local/libexec/my-app-worker")
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.launch.program = Some(program.into());
        self
    }

    /// Command-line arguments for the process; the default is none. See
    /// [`PoolBuilder::worker_args`](crate::PoolBuilder::worker_args).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .worker_args(["--role", "worker"])
    ///     .spawn(work, 1)
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

    /// Sets an environment variable for the process, on top of this
    /// process's environment; the default is none. See
    /// [`PoolBuilder::env`](crate::PoolBuilder::env).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .env("RUST_LOG", "warn")
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.launch.env.push((key.into(), value.into()));
        self
    }

    /// Where the process's standard output goes; the default is
    /// [`Redirect::Inherit`]. See
    /// [`PoolBuilder::stdout`](crate::PoolBuilder::stdout).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .stdout(procpool::Redirect::Null)
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn stdout(mut self, redirect: Redirect) -> Self {
        self.launch.stdout = redirect;
        self
    }

    /// Where the process's standard error goes; the default is
    /// [`Redirect::Inherit`]. See
    /// [`PoolBuilder::stderr`](crate::PoolBuilder::stderr).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .stderr(procpool::Redirect::Null)
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn stderr(mut self, redirect: Redirect) -> Self {
        self.launch.stderr = redirect;
        self
    }

    /// The largest frame, in bytes, sent to or accepted from the process
    /// (its arguments or its result, plus a few bytes); the default is
    /// 1 GiB. See
    /// [`PoolBuilder::max_frame_size`](crate::PoolBuilder::max_frame_size).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn len_of(text: String) -> usize { text.len() }
    /// # async fn demo() {
    /// let err = procpool::Process::builder()
    ///     .max_frame_size(16 << 20)
    ///     .spawn(len_of, "a".repeat(32 << 20))
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_too_large());
    /// # }
    /// ```
    pub fn max_frame_size(mut self, bytes: u64) -> Self {
        self.launch.max_frame = bytes.max(64);
        self
    }

    /// How long the process has to start and complete its handshake; the
    /// default is 10 seconds. See
    /// [`PoolBuilder::handshake_timeout`](crate::PoolBuilder::handshake_timeout).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .handshake_timeout(Duration::from_secs(60))
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.launch.handshake_timeout = timeout;
        self
    }

    /// Sends the `tracing` events and `log` records the function emits at `level` or more
    /// severe to this process, as
    /// [`PoolBuilder::forward_logs`](crate::PoolBuilder::forward_logs)
    /// does for a pool's workers; the default is to send none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(x: u64) -> u64 {
    ///     tracing::info!(x, "working");
    ///     x
    /// }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .forward_logs(tracing::Level::INFO)
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn forward_logs(mut self, level: tracing::Level) -> Self {
        self.launch.log_level = Some(level);
        self
    }

    /// Whether a panic of the function carries the process's backtrace, as
    /// [`PoolBuilder::capture_backtraces`](crate::PoolBuilder::capture_backtraces)
    /// says for a pool's workers (the default follows `RUST_LIB_BACKTRACE` /
    /// `RUST_BACKTRACE` in the process's environment).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn check(x: u64) -> u64 {
    ///     assert!(x < 10, "{x} is too big");
    ///     x
    /// }
    /// # async fn demo() {
    /// let err = procpool::Process::builder()
    ///     .capture_backtraces(true)
    ///     .spawn(check, 11)
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.backtrace().unwrap().contains("check"));
    /// # }
    /// ```
    pub fn capture_backtraces(mut self, capture: bool) -> Self {
        self.launch.backtraces = Backtraces::from(capture);
        self
    }

    /// Caps the process's address space at `bytes`, as
    /// [`PoolBuilder::max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker)
    /// does for a pool's workers (read there what is counted, and how a
    /// failure is recognised): past it, the process ends and its result is
    /// an error with [`is_out_of_memory`](crate::Error::is_out_of_memory)
    /// that names the limit. The default is no cap.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn load(mib: usize) -> usize {
    ///     vec![1u8; mib << 20].len()
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let err = procpool::Process::builder()
    ///     .max_memory(512 << 20)
    ///     .spawn(load, 4096)
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_out_of_memory(), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.launch.memory_limit = Some(bytes);
        self
    }

    /// How the processes the function starts are made to die with it; the
    /// default is [`Containment::Auto`]. See [`Containment`] and
    /// [`PoolBuilder::containment`](crate::PoolBuilder::containment).
    ///
    /// All processes of a program share one cgroup directory (each has a
    /// cgroup of its own inside it), made by the first spawn that needs it;
    /// it is left empty when the program exits, and removed by the next
    /// pool or process started under the same cgroup.
    ///
    /// # Errors
    ///
    /// With [`Containment::Cgroup`], a process fails to start with
    /// [`Error::is_spawn`] when no cgroup can be created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let value = procpool::Process::builder()
    ///     .containment(procpool::Containment::Cgroup)
    ///     .spawn(work, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn containment(mut self, containment: Containment) -> Self {
        self.launch.containment = containment;
        self
    }

    /// Where the process runs and how it is started there: on this machine
    /// (the default, [`Launcher::local`](crate::Launcher::local)), or through
    /// a command such as `ssh HOST` or `srun` (see [`Launcher`](crate::Launcher)
    /// for what crosses hosts and what does not).
    ///
    /// # Errors
    ///
    /// Nothing is checked here. With a launcher command, the process fails
    /// with [`Error::is_spawn`], naming the launcher, if it cannot be run,
    /// exits (host unreachable, authentication refused, program missing
    /// there), a remote shell prints something first, the program there is
    /// a different build, or the handshake does not complete within the
    /// [handshake timeout](Self::handshake_timeout); and at once with
    /// [`Containment::Cgroup`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::{Launcher, Process};
    ///
    /// fn hostname() -> String {
    ///     std::fs::read_to_string("/etc/hostname").unwrap_or_default()
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let there = Process::builder().launcher(Launcher::ssh("node7"));
    /// println!("ran on {}", there.spawn(hostname, ()).await?);
    /// # Ok(()) }
    /// ```
    pub fn launcher(mut self, launcher: crate::Launcher) -> Self {
        self.launch.launcher = launcher;
        self
    }

    /// Runs `f(args)` in a fresh process with these settings, started at
    /// once; see [`Process`] for the handle.
    ///
    /// The process is started on the tokio runtime this is called in, and
    /// driven there in the background: the handle need not be polled for
    /// the process to run. `f` is looked up and `args` encoded here.
    ///
    /// # Errors
    ///
    /// Nothing fails here; the handle resolves to:
    ///
    /// * [`Error::is_unregistered`] if [`init`](crate::init) was not called
    ///   or `f` is not in its [`tasks!`](crate::tasks);
    /// * [`Error::is_codec`] if `args` cannot be serialized,
    ///   [`Error::is_too_large`] if they encode to more than
    ///   [`max_frame_size`](ProcessBuilder::max_frame_size);
    /// * [`Error::is_spawn`] if called outside a tokio runtime (or one
    ///   without its I/O and time drivers), if the program cannot be
    ///   started or does not complete its handshake, or if
    ///   [`Containment::Cgroup`] was asked for and cannot be had;
    /// * the errors of a running process, in the table on [`Process`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let builder = procpool::Process::builder().env("RUST_LOG", "warn");
    /// let (a, b) = (builder.spawn(work, 1), builder.spawn(work, 2));
    /// assert_eq!(a.await? + b.await?, 3);
    /// # Ok(()) }
    /// ```
    pub fn spawn<M, F: Task<M>>(&self, f: F, args: F::Args) -> Process<F::Output> {
        assert_fn_item::<F>();
        let _ = f;
        let task = std::any::type_name::<F>();
        let placed = Placement::default();
        let started = self.start::<F, F::Args>(task, args, &placed);
        Process::new(task, started, placed)
    }

    /// Encodes the request and starts the driver, which starts the process;
    /// the driver's handle says how the process ended once it is reaped.
    fn start<F: 'static, A: serde::Serialize + 'static>(
        &self,
        task: &'static str,
        args: A,
        placed: &Placement,
    ) -> Result<(Ticket, JoinHandle<Option<Exit>>), Error> {
        let registry = registry::global()?;
        let Encoded {
            request,
            holds,
            regions,
        } = encode_request(registry.index_of::<F>()?, args)?;
        let remote = self
            .launch
            .launcher
            .prefix()
            .map(|prefix| prefix.describe());
        check_local(task, &regions, remote.as_ref())?;
        let (bytes, max) = (request.body_len(), self.launch.max_frame);
        if bytes > max {
            return Err(Error::new(Repr::TooLarge { task, bytes, max }));
        }
        check_can_start("procpool::spawn")?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            placed: placed.clone(),
            holds,
            regions,
            span: crate::pool::job::task_span(task),
            ..Job::new(task, request, reply)
        };
        let launch = self.launch.clone();
        let fingerprint = registry.fingerprint();
        let driver = tokio::spawn(async move {
            let cgroup = match launch.containment() {
                Ok(containment) => cgroup_for(containment, shared_cgroup).await,
                Err(err) => Err(err),
            };
            let spec = cgroup.and_then(|cgroup| launch.into_spec(fingerprint, None, cgroup));
            match spec {
                Ok(spec) => Driver::new(Arc::new(spec), job).await,
                Err(err) => {
                    job.finish(Err(err));
                    None
                }
            }
        });
        let ticket = Ticket {
            answer,
            placed: placed.clone(),
        };
        Ok((ticket, driver))
    }
}

/// The cgroup every process of this program gets its own cgroup in, made
/// once, by the first process that wants one.
async fn shared_cgroup() -> std::io::Result<Arc<PoolCgroup>> {
    static SHARED: OnceCell<Result<Arc<PoolCgroup>, (std::io::ErrorKind, String)>> =
        OnceCell::const_new();
    let made = SHARED
        .get_or_init(|| async {
            create_cgroup()
                .await
                .map_err(|err| (err.kind(), err.to_string()))
        })
        .await;
    made.clone()
        .map_err(|(kind, message)| std::io::Error::new(kind, message))
}
