//! The one error type every fallible procpool operation returns.

mod repr;

use crate::manager::wire::Failure;
use std::fmt;
use std::io;
use std::sync::Arc;

pub(crate) use repr::{Crash, Exit, Repr};

/// Why a task, or the pool itself, failed.
///
/// `Error` is opaque, like tokio's `JoinError`: ask it what happened with the
/// `is_*` predicates and the accessors ([`panic_message`](Error::panic_message),
/// [`exit_code`](Error::exit_code), [`signal`](Error::signal), …). Its `Display`
/// says what happened and what to do about it.
///
/// Every task submitted to a [`Pool`](crate::Pool) resolves to its value or to one
/// of these errors; none is lost and none hangs.
///
/// Cloning is cheap (an `Arc` inside) and keeps everything, the
/// [`source`](std::error::Error::source) included: one failure can be the
/// answer for several tasks (the items of one chunk).
///
/// `Error` is `Send + Sync + 'static` and implements [`std::error::Error`],
/// so `?` turns it into `Box<dyn Error>`, `anyhow::Error` and the like; an
/// [`io::Error`] converts into it with `?` as well.
///
/// # Examples
///
/// ```no_run
/// fn parse_port(text: String) -> u16 {
///     text.parse().expect("a port number")
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// match pool.submit(parse_port, "http".to_string()).await {
///     Ok(port) => println!("port {port}"),
///     Err(err) if err.is_panic() => {
///         // A bug in the task; the worker is fine and keeps serving.
///         eprintln!("parse_port panicked: {}", err.panic_message().unwrap_or_default());
///     }
///     Err(err) if err.is_worker_died() || err.is_timeout() => {
///         // The worker is gone (and replaced): the task may be worth another try.
///         eprintln!("{err}");
///     }
///     Err(err) => return Err(err), // shut down, not registered, ...
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Error {
    repr: Arc<Repr>,
}

impl Error {
    pub(crate) fn new(repr: Repr) -> Error {
        Error {
            repr: Arc::new(repr),
        }
    }

    pub(crate) fn spawn(message: impl Into<String>, source: Option<io::Error>) -> Error {
        Error::new(Repr::Spawn {
            message: message.into(),
            source,
        })
    }

    pub(crate) fn protocol(
        pid: u32,
        task: Option<&'static str>,
        message: impl Into<String>,
    ) -> Error {
        Error::new(Repr::Protocol {
            pid,
            task,
            message: message.into(),
        })
    }

    /// The error for a task whose worker died under it, the last of
    /// `total` to (`recent` holds the last few, oldest first; never empty).
    pub(crate) fn crashed(task: &'static str, total: u32, mut recent: Vec<Crash>) -> Error {
        if total > 1 {
            return Error::new(Repr::Crashed {
                task,
                total,
                recent,
            });
        }
        let Crash {
            pid,
            exit,
            out_of_memory_at,
        } = recent.pop().expect("the death that ended it");
        Error::new(match out_of_memory_at {
            Some(limit) => Repr::OutOfMemory { task, pid, limit },
            None => Repr::WorkerDied { task, pid, exit },
        })
    }

    /// The last death of a worker that ended the task, if one did.
    fn last_crash(&self) -> Option<&Crash> {
        match &*self.repr {
            Repr::Crashed { recent, .. } => recent.last(),
            _ => None,
        }
    }

    /// How the worker ended, for an error that a worker's death caused.
    pub(crate) fn exit(&self) -> Option<Exit> {
        match *self.repr {
            Repr::WorkerDied { exit, .. }
            | Repr::ProcessDied { exit, .. }
            | Repr::Undeliverable { exit, .. } => Some(exit),
            // Only the cap makes a worker exit so.
            Repr::OutOfMemory { .. } => Some(Exit::Code(crate::worker::EXIT_OUT_OF_MEMORY)),
            _ => self.last_crash().map(|crash| crash.exit),
        }
    }

    /// How many workers died running the task, one after another: 1 for a
    /// plain [`is_worker_died`](Error::is_worker_died) or
    /// [`is_out_of_memory`](Error::is_out_of_memory), more when it was
    /// retried ([`PoolBuilder::crash_limit`](crate::PoolBuilder::crash_limit));
    /// 0 for every other error. The message names each death's cause (the
    /// last 16 of them).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn crash(_: ()) -> u64 { std::process::abort() }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().crash_limit(3).build().await?;
    /// let err = pool.submit(crash, ()).await.unwrap_err();
    /// assert_eq!(err.worker_deaths(), 3);
    /// eprintln!("{err}"); // "... 3 workers died running it ...: worker 7 was killed by signal 6 ..."
    /// # Ok(()) }
    /// ```
    pub fn worker_deaths(&self) -> u32 {
        match &*self.repr {
            Repr::Crashed { total, .. } => *total,
            Repr::WorkerDied { .. } | Repr::OutOfMemory { .. } => 1,
            _ => 0,
        }
    }

    /// The task panicked; the worker caught the panic and lives on.
    ///
    /// [`panic_message`](Error::panic_message),
    /// [`panic_location`](Error::panic_location) and
    /// [`worker_pid`](Error::worker_pid) say more. In a [`map`](crate::Pool::map),
    /// only the item that panicked fails. A task whose panic is not caught
    /// because the program is built with `panic = "abort"` kills its worker
    /// instead: that is [`is_worker_died`](Error::is_worker_died), with
    /// SIGABRT.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn parse_port(text: String) -> u16 {
    ///     text.parse().expect("a port number")
    /// }
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// assert!(err.is_panic());
    /// assert!(err.panic_message().unwrap().starts_with("a port number"));
    /// # }
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(*self.repr, Repr::Panicked { .. })
            || self.manager_failure_is(|f| matches!(f, Failure::Panicked { .. }))
    }

    /// The worker process running the task died (abort, segfault, `exit`, a
    /// signal from outside). The pool has replaced it.
    ///
    /// Also true for a task that was sent to several workers in turn, each of
    /// which died before the task started: the pool stops trying after three;
    /// and for a [`Process`](crate::Process) that died before its function
    /// returned (nothing replaces it).
    ///
    /// [`exit_code`](Error::exit_code) or [`signal`](Error::signal) says how
    /// the worker ended. With [`PoolBuilder::retries`](crate::PoolBuilder::retries),
    /// this error comes only once the retries are used up.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn crash(_: ()) -> u64 {
    ///     std::process::abort() // as a bug in native code might
    /// }
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(crash, ()).await.unwrap_err();
    /// assert!(err.is_worker_died());
    /// assert_eq!(err.signal(), Some(libc::SIGABRT));
    /// # }
    /// ```
    pub fn is_worker_died(&self) -> bool {
        matches!(
            *self.repr,
            Repr::WorkerDied { .. }
                | Repr::ProcessDied { .. }
                | Repr::Undeliverable { .. }
                | Repr::OutOfMemory { .. }
                | Repr::Crashed { .. }
        )
    }

    /// The task ran out of memory under the pool's per-worker limit
    /// ([`PoolBuilder::max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker)):
    /// an allocation failed at the limit, which the error's message states,
    /// and the worker died of it. The pool has replaced the worker.
    ///
    /// It is also [`is_worker_died`](Error::is_worker_died) (so
    /// [`retries`](crate::PoolBuilder::retries) apply), but with neither an
    /// [`exit_code`](Error::exit_code) nor a [`signal`](Error::signal): how
    /// the worker ended is the pool's mechanism, not the task's doing. A
    /// worker killed by the kernel's OOM killer without such a limit is
    /// not this, but `is_worker_died` with SIGKILL: the kernel does not say
    /// why it sent the signal.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn load(mib: usize) -> usize {
    ///     vec![1u8; mib << 20].len()
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .max_memory_per_worker(1 << 30)
    ///     .build()
    ///     .await?;
    /// let err = pool.submit(load, 4096).await.unwrap_err();
    /// assert!(err.is_out_of_memory());
    /// assert!(err.to_string().contains("1073741824 bytes"));
    /// # Ok(()) }
    /// ```
    pub fn is_out_of_memory(&self) -> bool {
        matches!(*self.repr, Repr::OutOfMemory { .. })
            || self
                .last_crash()
                .is_some_and(|crash| crash.out_of_memory_at.is_some())
    }

    /// The task's encoded arguments, or its result, are larger than the
    /// pool's maximum frame size
    /// ([`PoolBuilder::max_frame_size`](crate::PoolBuilder::max_frame_size)),
    /// so they were not sent. Arguments are checked at submit (in a
    /// [`map`](crate::Pool::map), only the item too large by itself fails);
    /// a result is checked by the worker, which lives on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn len_of(text: String) -> usize { text.len() }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().max_frame_size(1 << 20).build().await?;
    /// let err = pool.submit(len_of, "a".repeat(2 << 20)).await.unwrap_err();
    /// assert!(err.is_too_large());
    /// # Ok(()) }
    /// ```
    pub fn is_too_large(&self) -> bool {
        matches!(
            *self.repr,
            Repr::TooLarge { .. } | Repr::ResultTooLarge { .. }
        )
    }

    /// The task was cancelled before it produced a result.
    ///
    /// A dropped [`TaskHandle`](crate::TaskHandle) is gone, so no one sees
    /// its error: this is what an [`on_done`](crate::TaskHandle::on_done)
    /// callback receives when its [`OnDone`](crate::OnDone) is dropped. A
    /// task that ran out of time is [`is_timeout`](Error::is_timeout)
    /// instead. A [`Process`](crate::Process) resolves to it after
    /// [`kill`](crate::Process::kill), with the process's
    /// [`worker_pid`](Error::worker_pid).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo(pool: procpool::Pool) {
    /// let watched = pool.submit(slow, 1).on_done(|result| {
    ///     assert!(result.unwrap_err().is_cancelled());
    /// });
    /// drop(watched); // cancels the task; the callback runs now
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(
            *self.repr,
            Repr::Cancelled { .. } | Repr::ProcessKilled { .. }
        )
    }

    /// The task ran past its timeout
    /// ([`TaskHandle::timeout`](crate::TaskHandle::timeout) or
    /// [`PoolBuilder::task_timeout`](crate::PoolBuilder::task_timeout)). It
    /// was cancelled: if it was running, its worker was killed and replaced.
    ///
    /// [`worker_pid`](Error::worker_pid) is the worker the task had been
    /// sent to, or `None` if it was still queued and never ran.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo(pool: procpool::Pool) {
    /// let result = pool.submit(slow, 1).timeout(Duration::from_millis(100)).await;
    /// if let Err(err) = result {
    ///     assert!(err.is_timeout());
    ///     match err.worker_pid() {
    ///         Some(pid) => eprintln!("timed out on worker {pid}"),
    ///         None => eprintln!("timed out in the queue"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(*self.repr, Repr::TimedOut { .. } | Repr::RecvTimeout { .. })
            || self.manager_failure_is(|f| matches!(f, Failure::TimedOut(_)))
    }

    /// A [channel](crate::channel())'s other side is gone: on a receive,
    /// every sender has been dropped and every message sent was received
    /// (the end of the stream); on a send, every receiver has been dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() {
    /// let (tx, rx) = procpool::channel::<u64>(4);
    /// drop(rx);
    /// let err = tx.send(1).await.unwrap_err();
    /// assert!(err.is_closed());
    /// # }
    /// # futures::executor::block_on(demo());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(*self.repr, Repr::Closed { .. })
    }

    /// A worker holding a sender of the [channel](crate::channel()) died (it
    /// crashed, was killed, or its task was cancelled); a message it was
    /// part-way through sending was dropped, never delivered in part.
    /// [`worker_pid`](Error::worker_pid), [`exit_code`](Error::exit_code),
    /// [`signal`](Error::signal) and [`task_name`](Error::task_name) say
    /// which worker, how, and what it was running. The receiver goes on:
    /// other senders' messages still come.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// # async fn demo(mut rx: procpool::Receiver<u64>) {
    /// while let Some(item) = rx.next().await {
    ///     match item {
    ///         Ok(n) => println!("{n}"),
    ///         Err(err) if err.is_peer_died() => eprintln!("a producer died: {err}"),
    ///         Err(err) => eprintln!("{err}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_peer_died(&self) -> bool {
        matches!(*self.repr, Repr::PeerDied { .. })
    }

    /// The pool was shut down (or dropped) before the task could complete:
    /// the task was submitted after [`shutdown`](crate::Pool::shutdown)
    /// began, or [`shutdown_now`](crate::Pool::shutdown_now) or dropping the
    /// last [`Pool`](crate::Pool) ended it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) {
    /// pool.shutdown().await;
    /// let err = pool.submit(square, 2).await.unwrap_err();
    /// assert!(err.is_shutdown());
    /// # }
    /// ```
    pub fn is_shutdown(&self) -> bool {
        matches!(*self.repr, Repr::ShutDown) || self.manager_failure_is(|f| *f == Failure::Gone)
    }

    /// A lock's holder died holding it, so what it guards may be
    /// half-updated:
    ///
    /// * a [manager `Lock`](crate::manager::Lock) (its holder's worker
    ///   crashed, was killed, or its task was cancelled): every acquire fails
    ///   with this until [`clear_poison`](crate::manager::Lock::clear_poison)
    ///   is called;
    /// * a [`SharedLock`](crate::shared::SharedLock): poisoned for good, and
    ///   every waiter and later `lock()` gets this;
    ///   [`worker_pid`](Error::worker_pid) names the dead process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(lock: procpool::manager::Lock, shared: procpool::shared::SharedLock<u64>) -> Result<(), procpool::Error> {
    /// if let Err(err) = lock.acquire().await {
    ///     assert!(err.is_poisoned());
    ///     lock.clear_poison().await?; // once what it guards is repaired
    /// }
    /// match shared.lock().await {
    ///     Ok(value) => println!("{}", *value),
    ///     Err(err) if err.is_poisoned() => eprintln!("holder died: {err}"),
    ///     Err(err) => eprintln!("{err}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_poisoned(&self) -> bool {
        matches!(*self.repr, Repr::Poisoned { .. })
            || self.manager_failure_is(|f| matches!(f, Failure::Poisoned(_)))
    }

    fn manager_failure_is(&self, is: impl FnOnce(&Failure) -> bool) -> bool {
        match &*self.repr {
            Repr::Manager { failure, .. } => is(failure),
            _ => false,
        }
    }

    /// [`Pool::try_submit`](crate::Pool::try_submit) found no room: as many
    /// tasks as [`PoolBuilder::max_queued`](crate::PoolBuilder::max_queued)
    /// allows are already waiting for a worker. Nothing was queued; try
    /// again later, shed the request, or wait for room with
    /// [`Pool::reserve`](crate::Pool::reserve).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// match pool.try_submit(square, 3) {
    ///     Ok(handle) => println!("{}", handle.await?),
    ///     Err(err) if err.is_queue_full() => eprintln!("busy, try later: {err}"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_queue_full(&self) -> bool {
        matches!(*self.repr, Repr::QueueFull { .. })
    }

    /// The function was not registered with [`init`](crate::init) (it is not
    /// in the [`tasks!`](crate::tasks) list, or it is a closure), or `init`
    /// was never called. The message names the function and the fix.
    ///
    /// Known at submit, before anything is sent; for a
    /// [`map`](crate::Pool::map), the stream yields this one error and ends.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// fn cube(x: u64) -> u64 { x * x * x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init(procpool::tasks![square]); // cube is missing
    ///     tokio::runtime::Runtime::new()?.block_on(async {
    ///         let pool = procpool::Pool::builder().build().await?;
    ///         let err = pool.submit(cube, 3).await.unwrap_err();
    ///         assert!(err.is_unregistered());
    ///         assert!(err.to_string().contains("tasks!"));
    ///         Ok(())
    ///     })
    /// }
    /// ```
    pub fn is_unregistered(&self) -> bool {
        matches!(*self.repr, Repr::Unregistered { .. } | Repr::NotInitialized)
    }

    /// Arguments or a result could not be serialized or deserialized.
    ///
    /// That happens at submit, when the arguments do not encode (nothing is
    /// sent); in the worker, when it cannot decode the arguments or encode
    /// the result ([`worker_pid`](Error::worker_pid) is then set, and the
    /// worker lives on); or in the caller, when the result does not decode
    /// (usually a pool and worker built from different code).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::ffi::OsStr;
    /// use std::os::unix::ffi::OsStrExt;
    /// use std::path::PathBuf;
    ///
    /// # fn file_size(path: PathBuf) -> u64 { 0 }
    /// # async fn demo(pool: procpool::Pool) {
    /// // serde refuses paths that are not UTF-8.
    /// let path = PathBuf::from(OsStr::from_bytes(b"/tmp/\xff"));
    /// let err = pool.submit(file_size, path).await.unwrap_err();
    /// assert!(err.is_codec());
    /// # }
    /// ```
    pub fn is_codec(&self) -> bool {
        matches!(
            *self.repr,
            Repr::Encode { .. } | Repr::Decode { .. } | Repr::Remote { .. }
        ) || self.manager_failure_is(|f| matches!(f, Failure::Decode(_)))
    }

    /// A worker process could not be started, or failed its handshake or
    /// its [initializer](crate::PoolBuilder::initializer).
    ///
    /// Mostly an error of [`PoolBuilder::build`](crate::PoolBuilder::build).
    /// Later, tasks fail with it when no worker is running and none can be
    /// started (every slot has failed to start several times in a row).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let err = procpool::Pool::builder()
    ///     .worker_program("/nonexistent/program")
    ///     .build()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_spawn());
    /// # }
    /// ```
    pub fn is_spawn(&self) -> bool {
        matches!(*self.repr, Repr::Spawn { .. })
    }

    /// A shared memory region could not be created (out of memory, a memfd
    /// limit) or mapped in a worker (see [`procpool::shared`](crate::shared)).
    ///
    /// # Examples
    ///
    /// ```
    /// if let Err(err) = procpool::shared::SharedBytes::new(&[1, 2, 3]) {
    ///     assert!(err.is_shared_memory());
    /// }
    /// ```
    pub fn is_shared_memory(&self) -> bool {
        matches!(*self.repr, Repr::Shared(_))
    }

    /// [`SharedArray::try_lease`](crate::shared::SharedArray::try_lease)
    /// found the range overlapping another lease (in any process), or every
    /// lease slot taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u8>::new(4)?;
    /// let _held = a.try_lease(..2)?;
    /// assert!(a.try_lease(1..).unwrap_err().is_leased());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn is_leased(&self) -> bool {
        matches!(*self.repr, Repr::Leased { .. })
    }

    /// A task carrying a [shared memory](crate::shared) handle was
    /// submitted to a pool or process whose workers are remote (started
    /// through [`Launcher::ssh`](crate::Launcher::ssh),
    /// [`srun`](crate::Launcher::srun) or [`command`](crate::Launcher::command)):
    /// they cannot map this machine's memory. Nothing was sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn sum(t: procpool::shared::SharedBytes) -> u64 { t.len() as u64 }
    /// # async fn demo(remote: procpool::Pool) -> Result<(), procpool::Error> {
    /// let table = procpool::shared::SharedBytes::new(&[0; 1024])?;
    /// let err = remote.submit(sum, table).await.unwrap_err();
    /// assert!(err.is_not_local());
    /// # Ok(()) }
    /// ```
    pub fn is_not_local(&self) -> bool {
        matches!(*self.repr, Repr::NotLocal { .. })
    }

    /// A worker broke the wire protocol: garbage on its socket, an oversized
    /// frame, or a handshake from a different build. The worker was replaced.
    ///
    /// The usual cause is a task (or a library it calls) writing to the
    /// worker's protocol socket. A result larger than
    /// [`max_frame_size`](crate::PoolBuilder::max_frame_size) is reported this
    /// way too. Protocol errors are not [retried](crate::PoolBuilder::retries).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) {
    /// if let Err(err) = pool.submit(square, 3).await {
    ///     if err.is_protocol() {
    ///         eprintln!("worker {:?} misbehaved: {err}", err.worker_pid());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_protocol(&self) -> bool {
        matches!(*self.repr, Repr::Protocol { .. })
    }

    /// The panic message, if the task panicked ([`is_panic`](Error::is_panic)).
    ///
    /// For a panic whose payload is not a string (`std::panic::panic_any`),
    /// it is `"a panic with a non-string payload"`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn parse_port(text: String) -> u16 {
    ///     text.parse().expect("a port number")
    /// }
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// // `expect` adds the error: "a port number: ParseIntError { .. }"
    /// assert!(err.panic_message().unwrap().starts_with("a port number"));
    /// # }
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { report, .. } => Some(&report.message),
            Repr::Manager {
                failure: Failure::Panicked { message, .. },
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// Where the task panicked (`file:line:column`), if it did and it was known.
    ///
    /// It is not known for a panic re-raised with
    /// [`std::panic::resume_unwind`], which skips the panic hook that records it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn parse_port(text: String) -> u16 { text.parse().expect("a port number") }
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// if let Some(location) = err.panic_location() {
    ///     eprintln!("panicked at {location}"); // e.g. "src/main.rs:2:17"
    /// }
    /// # }
    /// ```
    pub fn panic_location(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { report, .. } => report.location.as_deref(),
            _ => None,
        }
    }

    /// The backtrace of the worker thread that panicked, if the task
    /// panicked ([`is_panic`](Error::is_panic)) and backtraces were on in
    /// the worker: [`PoolBuilder::capture_backtraces`](crate::PoolBuilder::capture_backtraces),
    /// or `RUST_LIB_BACKTRACE` / `RUST_BACKTRACE` in its environment. It
    /// is std's text, one frame per numbered line with its `at file:line`
    /// below, cut to the frames from the `panic!` to the task's function.
    /// The error's `Display` shows it after the message.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn parse_port(text: String) -> u16 { text.parse().expect("a port number") }
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// match err.backtrace() {
    ///     Some(backtrace) => eprintln!("panicked at:\n{backtrace}"),
    ///     None => eprintln!("run with RUST_BACKTRACE=1 for a backtrace"),
    /// }
    /// # }
    /// ```
    pub fn backtrace(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { report, .. } => report.backtrace.as_deref(),
            _ => None,
        }
    }

    /// The exit code of a worker that died by calling `exit`, if
    /// [`is_worker_died`](Error::is_worker_died). `None` for a worker killed
    /// by a signal, and for every other error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn quit(code: i32) {
    ///     std::process::exit(code) // as a misbehaving library might
    /// }
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(quit, 3).await.unwrap_err();
    /// assert!(err.is_worker_died());
    /// assert_eq!(err.exit_code(), Some(3));
    /// assert_eq!(err.signal(), None);
    /// # }
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        match *self.repr {
            Repr::WorkerDied {
                exit: Exit::Code(code),
                ..
            }
            | Repr::ProcessDied {
                exit: Exit::Code(code),
                ..
            }
            | Repr::Undeliverable {
                exit: Exit::Code(code),
                ..
            }
            | Repr::PeerDied {
                exit: Exit::Code(code),
                ..
            } => Some(code),
            _ => match self.last_crash()? {
                Crash {
                    exit: Exit::Code(code),
                    out_of_memory_at: None,
                    ..
                } => Some(*code),
                _ => None,
            },
        }
    }

    /// The number of the signal that killed the worker, if
    /// [`is_worker_died`](Error::is_worker_died) and a signal did: SIGABRT
    /// for `abort()`, a panic under `panic = "abort"` or a stack overflow;
    /// SIGSEGV for a segfault; SIGKILL for `kill -9` or the OOM killer.
    /// The error's `Display` names it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn crash(_: ()) -> u64 { std::process::abort() }
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(crash, ()).await.unwrap_err();
    /// match err.signal() {
    ///     Some(libc::SIGKILL) => eprintln!("killed, perhaps out of memory"),
    ///     Some(signal) => eprintln!("crashed with signal {signal}"),
    ///     None => eprintln!("{err}"),
    /// }
    /// # }
    /// ```
    pub fn signal(&self) -> Option<i32> {
        match *self.repr {
            Repr::WorkerDied {
                exit: Exit::Signal(sig),
                ..
            }
            | Repr::ProcessDied {
                exit: Exit::Signal(sig),
                ..
            }
            | Repr::Undeliverable {
                exit: Exit::Signal(sig),
                ..
            }
            | Repr::PeerDied {
                exit: Exit::Signal(sig),
                ..
            } => Some(sig),
            _ => match self.last_crash()? {
                Crash {
                    exit: Exit::Signal(sig),
                    out_of_memory_at: None,
                    ..
                } => Some(*sig),
                _ => None,
            },
        }
    }

    /// The pid of the worker involved, where one was: the one that
    /// panicked, died, broke the protocol or could not run the task, or, for
    /// a timeout or a cancellation, the one the task had been sent to (killed
    /// if it had started the task; `None` if it was still queued). `None`
    /// for errors that involve no worker.
    ///
    /// Use it for logs only: a worker that died has been reaped, so its pid
    /// may already belong to another process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn parse_port(text: String) -> u16 { text.parse().expect("a port number") }
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// eprintln!("worker {} panicked", err.worker_pid().unwrap());
    /// # }
    /// ```
    pub fn worker_pid(&self) -> Option<u32> {
        match *self.repr {
            Repr::Panicked { pid, .. }
            | Repr::WorkerDied { pid, .. }
            | Repr::OutOfMemory { pid, .. }
            | Repr::ProcessDied { pid, .. }
            | Repr::Undeliverable { pid, .. }
            | Repr::Remote { pid, .. }
            | Repr::ResultTooLarge { pid, .. }
            | Repr::PeerDied { pid, .. }
            | Repr::Poisoned { pid }
            | Repr::Protocol { pid, .. } => Some(pid),
            Repr::Cancelled { pid, .. }
            | Repr::ProcessKilled { pid, .. }
            | Repr::TimedOut { pid, .. } => pid,
            _ => self.last_crash().map(|crash| crash.pid),
        }
    }

    /// The name of the task involved (its Rust path, e.g. `my_app::square`),
    /// as [`TaskHandle::task_name`](crate::TaskHandle::task_name) gives it.
    ///
    /// `None` for errors that are not about one task (start-up, shutdown,
    /// I/O), and for arguments or a result that failed to encode or decode
    /// in this process ([`is_codec`](Error::is_codec) at submit, or on the
    /// way back), which name the type instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn parse_port(text: String) -> u16 { text.parse().expect("a port number") }
    /// # async fn demo(pool: procpool::Pool) {
    /// let err = pool.submit(parse_port, "http".to_string()).await.unwrap_err();
    /// assert!(err.task_name().unwrap().ends_with("::parse_port"));
    /// # }
    /// ```
    pub fn task_name(&self) -> Option<&'static str> {
        match *self.repr {
            Repr::Panicked { task, .. }
            | Repr::WorkerDied { task, .. }
            | Repr::OutOfMemory { task, .. }
            | Repr::Crashed { task, .. }
            | Repr::ProcessDied { task, .. }
            | Repr::Cancelled { task, .. }
            | Repr::ProcessKilled { task, .. }
            | Repr::TimedOut { task, .. }
            | Repr::Remote { task, .. }
            | Repr::TooLarge { task, .. }
            | Repr::ResultTooLarge { task, .. }
            | Repr::Undeliverable { task, .. }
            | Repr::QueueFull { task, .. }
            | Repr::Unregistered { task } => Some(task),
            Repr::Protocol { task, .. } | Repr::PeerDied { task, .. } => task,
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Display text is what a user needs in `unwrap()` output; the variant
        // is there for the curious.
        f.debug_struct("Error")
            .field("repr", &self.repr)
            .field("message", &format_args!("{self}"))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.repr {
            Repr::Spawn {
                source: Some(source),
                ..
            } => Some(source),
            Repr::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::new(Repr::Io(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_clone_keeps_the_source() {
        let err = Error::spawn("socketpair", Some(io::Error::other("no fds left")));
        let copy = err.clone();
        assert_eq!(copy.to_string(), err.to_string());
        let source = copy.source().expect("the I/O error is kept");
        assert_eq!(source.to_string(), "no fds left");
        assert!(copy.is_spawn());
    }
}
