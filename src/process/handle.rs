//! The caller's side of one [`Process`]: a future of its function's result,
//! its pid, its exit status, and `kill`.

use std::fmt;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::builder::ProcessBuilder;
use crate::error::{Error, Exit, Repr};
use crate::pool::job::{Placement, Ticket};
use crate::task::TaskHandle;

/// One registered function running in a fresh process of its own: Python's
/// `multiprocessing.Process`, as a future of the function's result.
///
/// Start one with [`spawn`](crate::spawn) or [`Process::builder`]. The
/// process starts at once, whether or not the handle is polled; awaiting
/// the handle gives the function's return value, or an [`Error`] that says
/// why there is none, exactly as a [`Pool`](crate::Pool)'s task does (it is
/// the same machinery, with one worker that is never replaced):
///
/// | what happens | the result | [`exitcode`](Process::exitcode) |
/// |---|---|---|
/// | the function returns | `Ok(value)` | `0` |
/// | it panics | [`Error::is_panic`], with message and location | `1` |
/// | the process dies (abort, SIGSEGV, `exit(n)`, OOM, `kill -9` from outside) | [`Error::is_worker_died`] with [`exit_code`](Error::exit_code) or [`signal`](Error::signal) | `n`, or minus the signal |
/// | [`kill`](Process::kill) | [`Error::is_cancelled`], with the pid | `-9` (SIGKILL) |
/// | [`timeout`](Process::timeout) expires | [`Error::is_timeout`] | `None` |
/// | it could not start (not registered, unencodable arguments, no runtime, handshake failed) | [`Error::is_unregistered`], [`Error::is_codec`], [`Error::is_spawn`] … | `None` |
///
/// The exit code follows Python's `exitcode`: `0` when the function
/// returned and `1` when it panicked (an uncaught exception in Python),
/// because after it answers, the process is ended by procpool (as an idle
/// pool worker is), and the status of that ending says nothing about the
/// function. When the process died, it is the status its reaping found.
///
/// # Dropping, killing, detaching
///
/// Dropping the handle before it completes ends the process as cancelling
/// a running pool task ends its worker: the process kills everything it
/// started (its cgroup where there is one, its children, its process group;
/// see [`Containment`](crate::Containment)) and itself at once, and is
/// SIGKILLed 500 ms later if it could not act on that (stopped, hung). It
/// is reaped in the background on the runtime. [`kill`](Process::kill) does
/// the same but keeps the handle, which then resolves once the process is
/// reaped.
/// [`detach`](Process::detach) lets it run to completion with nobody
/// waiting. Whatever happens, the process is reaped: no zombie; and if the
/// program itself is killed, even by SIGKILL, the process notices its
/// socket hang up and ends at once, with what it started: no orphan.
///
/// # Cancel safety
///
/// Awaiting a `Process` by reference (`&mut process`) in a `select!` is
/// cancel safe: the process keeps running while the handle lives, and a
/// later poll returns its result. Awaiting it by value in a branch that
/// loses drops it, which kills the process.
///
/// # Examples
///
/// ```no_run
/// fn count_primes(below: u64) -> usize {
///     (2..below).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count()
/// }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![count_primes]);
///     tokio::runtime::Runtime::new()?.block_on(async {
///         let mut process = procpool::spawn(count_primes, 100_000);
///         let primes = (&mut process).await?;
///         assert_eq!(primes, 9_592);
///         assert_eq!(process.exitcode(), Some(0));
///         Ok(())
///     })
/// }
/// ```
#[must_use = "dropping a Process kills it; await it or call .detach()"]
pub struct Process<R> {
    task: &'static str,
    /// The function's answer; `None` once [`kill`](Process::kill) let go of
    /// it, which is what cancels it.
    answer: Option<TaskHandle<R>>,
    /// An outcome `kill` found already there.
    early: Option<Result<R, Error>>,
    /// Completes once the process is reaped, with how it ended if it died;
    /// `None` if it never started.
    driver: Option<JoinHandle<Option<Exit>>>,
    placed: Placement,
    exit: Option<Exit>,
}

impl Process<()> {
    /// Settings for processes to start: the per-worker settings of
    /// [`Pool::builder`](crate::Pool::builder) (program, arguments,
    /// environment, stdio, containment, …). The same as
    /// [`ProcessBuilder::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn render(page: u32) -> Vec<u8> { Vec::new() }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pdf = procpool::Process::builder()
    ///     .env("OMP_NUM_THREADS", "1")
    ///     .stdout(procpool::Redirect::Null)
    ///     .spawn(render, 1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }
}

impl<R> Process<R> {
    pub(super) fn new(
        task: &'static str,
        started: Result<(Ticket, JoinHandle<Option<Exit>>), Error>,
        placed: Placement,
    ) -> Process<R> {
        let (submitted, driver) = match started {
            Ok((ticket, driver)) => (Ok(ticket), Some(driver)),
            Err(err) => (Err(err), None),
        };
        Process {
            task,
            answer: Some(TaskHandle::new(task, submitted, None)),
            early: None,
            driver,
            placed,
            exit: None,
        }
    }

    /// The process's pid, once it has started (completed its handshake) —
    /// and still after it ended; `None` before, and for a process that
    /// could not start.
    ///
    /// Use it for logs, or to signal the process yourself while the handle
    /// has not resolved (until then it is not reaped, so the pid is still
    /// its own). Once the handle has resolved, the process is reaped (or
    /// about to be), and the pid may belong to another process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn work(x: u64) -> u64 { x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let mut process = procpool::spawn(work, 1);
    /// let value = (&mut process).await?;
    /// println!("process {:?} returned {value}", process.pid());
    /// # Ok(()) }
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.placed.pid()
    }

    /// Gives the process `limit` from now to finish; past that, it is
    /// killed as if the handle were dropped, and the handle resolves to
    /// [`Error::is_timeout`]. The limit is checked when the handle is
    /// polled (awaited, or [detached](Process::detach)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo() {
    /// let result = procpool::spawn(slow, 1).timeout(Duration::from_secs(5)).await;
    /// if let Err(err) = result {
    ///     assert!(err.is_timeout());
    /// }
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime (the timer needs one).
    #[track_caller]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.answer = self.answer.map(|answer| answer.timeout(limit));
        self
    }

    /// Lets the process run to completion without anyone waiting for it;
    /// it is still reaped when it ends (or killed, if the program's runtime
    /// shuts down first). Its result is dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn write_report(path: String) {}
    /// # async fn demo() {
    /// procpool::spawn(write_report, "report.txt".to_string()).detach();
    /// # }
    /// ```
    pub fn detach(self) {
        if let Some(answer) = self.answer {
            answer.detach();
        }
    }

    /// The function's name (its Rust path, e.g. `my_app::render`), for
    /// logs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn render(page: u32) -> Vec<u8> { Vec::new() }
    /// # async fn demo() {
    /// let process = procpool::spawn(render, 1);
    /// assert!(process.task_name().ends_with("::render"));
    /// # }
    /// ```
    pub fn task_name(&self) -> &'static str {
        self.task
    }

    /// How the process ended, once the handle has resolved, as Python's
    /// `Process.exitcode` says it: the exit code, or minus the number of
    /// the signal that killed it. `0` if the function returned, `1` if it
    /// panicked (see [`Process`] for why).
    ///
    /// `None` before the handle resolved, and for a process that never ran
    /// the function (it could not start, was killed before it started, or
    /// timed out) or whose status could not be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn quit(code: i32) { std::process::exit(code) }
    /// # async fn demo() {
    /// let mut process = procpool::spawn(quit, 3);
    /// let err = (&mut process).await.unwrap_err();
    /// assert_eq!(err.exit_code(), Some(3));
    /// assert_eq!(process.exitcode(), Some(3));
    /// # }
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        match self.exit? {
            Exit::Code(code) => Some(code),
            Exit::Signal(signal) => Some(-signal),
            Exit::Unknown => None,
        }
    }

    /// How the process ended, once the handle has resolved, as a
    /// [`std::process::ExitStatus`] (its `code()`, or `signal()` from
    /// [`ExitStatusExt`]); the same
    /// information as [`exitcode`](Process::exitcode), and `None` in the
    /// same cases.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::os::unix::process::ExitStatusExt;
    ///
    /// # fn crash() { std::process::abort() }
    /// # async fn demo() {
    /// let mut process = procpool::spawn(crash, ());
    /// let _ = (&mut process).await;
    /// let status = process.exit_status().unwrap();
    /// assert_eq!(status.signal(), Some(libc::SIGABRT));
    /// # }
    /// ```
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        match self.exit? {
            Exit::Code(code) => Some(std::process::ExitStatus::from_raw((code & 0xff) << 8)),
            Exit::Signal(signal) => Some(std::process::ExitStatus::from_raw(signal)),
            Exit::Unknown => None,
        }
    }
}

/// How a process that produced `outcome` counts as having ended (see the
/// table on [`Process`]); `ran`: it had started.
fn exit_of<R>(outcome: &Result<R, Error>, ran: bool) -> Option<Exit> {
    match outcome {
        _ if !ran => None,
        Ok(_) => Some(Exit::Code(0)),
        Err(err) => match err.exit() {
            Some(exit) => Some(exit),
            // Returned, but the result would not decode here.
            None if err.is_codec() => Some(Exit::Code(0)),
            None if err.is_panic() || err.is_too_large() || err.worker_pid().is_some() => {
                (!err.is_timeout() && !err.is_cancelled() && !err.is_protocol())
                    .then_some(Exit::Code(1))
            }
            None => None,
        },
    }
}

impl<R: DeserializeOwned + 'static> Process<R> {
    /// Kills the process, as Python's `Process.kill()`, and keeps the
    /// handle: the process is ended as dropping the handle ends it (it is
    /// told to, and kills everything it started — its process group, its
    /// children that left it, its cgroup — and itself at once; if it cannot
    /// act on that, being stopped or hung, it is SIGKILLed 500 ms later).
    /// Harmless once the handle has resolved, or a second time.
    ///
    /// The handle then resolves, once the process is reaped, to an error
    /// with [`Error::is_cancelled`] and the process's
    /// [`worker_pid`](Error::worker_pid) (`None` if it had not started yet,
    /// in which case it never will); [`exitcode`](Process::exitcode) is then
    /// how it ended, `-9` (SIGKILL) when it was running. If its result had
    /// already arrived, the handle gives that instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn spin() -> u64 { loop {} }
    /// # async fn demo() {
    /// let mut runaway = procpool::spawn(spin, ());
    /// tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    /// runaway.kill();
    /// let err = (&mut runaway).await.unwrap_err();
    /// assert!(err.is_cancelled());
    /// assert_eq!(runaway.exitcode(), Some(-libc::SIGKILL));
    /// # }
    /// ```
    pub fn kill(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if let Poll::Ready(outcome) = Pin::new(&mut answer).poll(&mut cx) {
            self.early = Some(outcome);
        }
        // Dropping `answer` cancels the task: the pool's own path.
    }
}

impl<R: DeserializeOwned + 'static> Future for Process<R> {
    type Output = Result<R, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outcome = match (this.early.take(), &mut this.answer) {
            (Some(outcome), _) => outcome,
            (None, Some(answer)) => ready!(Pin::new(answer).poll(cx)),
            // Killed: resolved once the process is reaped.
            (None, None) => {
                if let Some(driver) = &mut this.driver {
                    this.exit = ready!(Pin::new(driver).poll(cx)).ok().flatten();
                    this.driver = None;
                }
                return Poll::Ready(Err(Error::new(Repr::ProcessKilled {
                    task: this.task,
                    pid: this.placed.pid(),
                })));
            }
        };
        this.exit = exit_of(&outcome, this.placed.pid().is_some());
        let task = this.task;
        Poll::Ready(match outcome {
            // A pool's message would speak of replacing the worker (one
            // out of memory says only what happened, and is kept).
            Err(err) if err.is_worker_died() && !err.is_out_of_memory() => {
                Err(match err.worker_pid() {
                    Some(pid) => Error::new(Repr::ProcessDied {
                        task,
                        pid,
                        exit: err.exit().unwrap_or(Exit::Unknown),
                    }),
                    None => err,
                })
            }
            outcome => outcome,
        })
    }
}

/// Nothing in a `Process` is pinned structurally: an early outcome is only
/// moved out, never polled.
impl<R> Unpin for Process<R> {}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("task", &self.task)
            .field("pid", &self.pid())
            .field("exitcode", &self.exitcode())
            .finish()
    }
}
