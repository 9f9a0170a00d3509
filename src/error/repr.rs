//! What an [`Error`] holds, and the message each kind says.

use std::fmt;
use std::io;
use std::time::Duration;

use super::Error;
use crate::manager::state::Kind;
use crate::manager::wire::Failure;
use crate::wire::answer::PanicReport;

/// How a worker process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// `exit(code)` or a return from `main`.
    Code(i32),
    /// Killed by a signal (`abort` is SIGABRT, a segfault SIGSEGV, `kill -9` SIGKILL).
    Signal(i32),
    /// The status could not be read.
    Unknown,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(sig) => write!(f, "was killed by signal {sig} ({})", signal_name(sig)),
            Exit::Unknown => f.write_str("ended with an unknown status"),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT: abort(), or a panic with panic=\"abort\", or a stack overflow",
        libc::SIGSEGV => "SIGSEGV: segmentation fault",
        libc::SIGBUS => "SIGBUS: bus error",
        libc::SIGILL => "SIGILL: illegal instruction",
        libc::SIGFPE => "SIGFPE: arithmetic fault",
        libc::SIGKILL => "SIGKILL: killed, possibly by the OOM killer or from outside",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// One death of a worker while it ran a task: which worker, how it ended,
/// and the pool's memory cap if it ran out of memory under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Crash {
    pub(crate) pid: u32,
    pub(crate) exit: Exit,
    pub(crate) out_of_memory_at: Option<u64>,
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self.pid;
        match self.out_of_memory_at {
            Some(limit) => write!(f, "worker {pid} ran out of memory at the {limit}-byte cap"),
            None => write!(f, "worker {pid} {}", self.exit),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Repr {
    /// The report says what, where, and the worker-side backtrace if it
    /// captured one.
    Panicked {
        task: &'static str,
        report: PanicReport,
        pid: u32,
    },
    WorkerDied {
        task: &'static str,
        pid: u32,
        exit: Exit,
    },
    /// The worker running it ran out of memory under the pool's limit
    /// (`PoolBuilder::max_memory_per_worker`).
    OutOfMemory {
        task: &'static str,
        pid: u32,
        limit: u64,
    },
    /// Several workers died running it, one after another (it was retried
    /// after each but the last): `total` of them, the most recent in
    /// `recent`, oldest first, the one that ended it last.
    Crashed {
        task: &'static str,
        total: u32,
        recent: Vec<Crash>,
    },
    /// A [`Process`](crate::Process) died before its function returned.
    ProcessDied {
        task: &'static str,
        pid: u32,
        exit: Exit,
    },
    /// [`Process::kill`](crate::Process::kill); `pid`: the process, if it
    /// had started.
    ProcessKilled {
        task: &'static str,
        pid: Option<u32>,
    },
    /// `pid`: the worker it had been sent to, if any (killed if it had
    /// started the task there).
    Cancelled {
        task: &'static str,
        pid: Option<u32>,
    },
    TimedOut {
        task: &'static str,
        after: Duration,
        pid: Option<u32>,
    },
    Encode {
        ty: &'static str,
        message: String,
    },
    Decode {
        ty: &'static str,
        message: String,
    },
    /// The worker could not run the task it was sent (it failed to decode the
    /// arguments or to encode the result).
    Remote {
        task: &'static str,
        pid: u32,
        message: String,
    },
    Unregistered {
        task: &'static str,
    },
    /// The encoded arguments exceed the pool's maximum frame size.
    TooLarge {
        task: &'static str,
        bytes: u64,
        max: u64,
    },
    /// The task's result exceeded the pool's maximum frame size; the worker
    /// did not send it.
    ResultTooLarge {
        task: &'static str,
        bytes: u64,
        max: u64,
        pid: u32,
    },
    /// The task was sent to worker after worker, and each died before it
    /// could start (its delivery itself seems to kill them).
    Undeliverable {
        task: &'static str,
        attempts: u32,
        pid: u32,
        exit: Exit,
    },
    /// A channel's other side is gone: every sender (nothing more will
    /// come) or every receiver (nothing sent can be received).
    Closed {
        ty: &'static str,
        senders_gone: bool,
    },
    /// A worker that held a sender of the channel died; whatever it was
    /// part-way through sending was dropped.
    PeerDied {
        ty: &'static str,
        pid: u32,
        task: Option<&'static str>,
        exit: Exit,
        /// The pool stopped it because its task was cancelled or timed out.
        stopped: bool,
    },
    /// No message came within the time a receive was given.
    RecvTimeout {
        after: Duration,
    },
    /// A channel endpoint used where it cannot work (what, and what to do).
    Endpoint(String),
    /// A shared memory region could not be created or mapped (why).
    Shared(String),
    /// A `SharedLock`'s holder, this pid, died holding it.
    Poisoned {
        pid: u32,
    },
    /// A lease was refused: it overlaps one held by `holder` (a pid);
    /// `None`: every lease slot is taken.
    Leased {
        holder: Option<u32>,
    },
    /// A task carrying shared memory, for a worker started by this launcher.
    NotLocal {
        task: &'static str,
        launcher: String,
    },
    NotInitialized,
    ShutDown,
    /// `try_submit` found the pool's queue at `PoolBuilder::max_queued`.
    QueueFull {
        task: &'static str,
        max: usize,
    },
    Spawn {
        message: String,
        source: Option<io::Error>,
    },
    Protocol {
        pid: u32,
        task: Option<&'static str>,
        message: String,
    },
    Io(io::Error),
    /// A call on a manager object failed (`what`: the kind of object).
    Manager {
        what: Kind,
        failure: Failure,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Panicked {
                task,
                report:
                    PanicReport {
                        message,
                        location,
                        backtrace,
                    },
                pid,
            } => {
                write!(f, "task `{task}` panicked in worker {pid}")?;
                if let Some(location) = location {
                    write!(f, " at {location}")?;
                }
                write!(f, ": {message}")?;
                if let Some(backtrace) = backtrace {
                    write!(f, "\nworker-side backtrace:\n{}", backtrace.trim_end())?;
                }
                Ok(())
            }
            Repr::WorkerDied { task, pid, exit } => write!(
                f,
                "worker {pid} {exit} while task `{task}` was running or about to run on it; \
                 the task was lost and the worker replaced (if the task crashed it, fix the \
                 task; if it was killed from outside, e.g. by the OOM killer, \
                 PoolBuilder::retries reruns tasks that are safe to run twice)"
            ),
            Repr::OutOfMemory { task, pid, limit } => write!(
                f,
                "task `{task}` ran out of memory in worker {pid}: an allocation failed at the \
                 pool's limit of {limit} bytes of address space per worker \
                 (PoolBuilder::max_memory_per_worker, enforced as RLIMIT_AS); the worker was \
                 replaced. Raise the limit, or make the task use less"
            ),
            Repr::Crashed {
                task,
                total,
                recent,
            } => {
                write!(
                    f,
                    "task `{task}` failed for good: {total} workers died running it, each \
                     time it was run (the crash limit, PoolBuilder::crash_limit or retries): "
                )?;
                let earlier = *total as usize - recent.len();
                if earlier > 0 {
                    write!(f, "{earlier} earlier deaths, then ")?;
                }
                for (i, crash) in recent.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{crash}")?;
                }
                f.write_str(". Something in the task kills its worker: fix it, or give it more memory if it ran out")
            }
            Repr::ProcessDied { task, pid, exit } => write!(
                f,
                "process {pid} {exit} while running `{task}` (if the function crashed it, fix \
                 the function; if it was killed from outside, e.g. by the OOM killer, spawn it \
                 again if it is safe to run twice)"
            ),
            Repr::ProcessKilled { task, pid } => match pid {
                Some(pid) => write!(
                    f,
                    "process {pid} running `{task}` was killed (Process::kill)"
                ),
                None => write!(
                    f,
                    "the process for `{task}` was killed (Process::kill) before it started; \
                     the function never ran"
                ),
            },
            Repr::Cancelled { task, pid } => {
                write!(f, "task `{task}` was cancelled")?;
                match pid {
                    Some(pid) => write!(
                        f,
                        " (it had been sent to worker {pid}, which was killed and replaced if \
                         it had started it)"
                    ),
                    None => f.write_str(" before it was sent to a worker"),
                }
            }
            Repr::TimedOut { task, after, pid } => {
                write!(f, "task `{task}` did not finish within {after:?}")?;
                match pid {
                    Some(pid) => write!(
                        f,
                        "; it had been sent to worker {pid}, which was killed and replaced if it \
                         had started it"
                    ),
                    None => f.write_str("; it was still waiting for a worker and never ran"),
                }
            }
            Repr::Encode { ty, message } => {
                write!(f, "could not serialize a value of type `{ty}`: {message}")
            }
            Repr::Decode { ty, message } => write!(
                f,
                "could not deserialize a value of type `{ty}`: {message} (are the pool and its \
                 workers built from the same source?)"
            ),
            Repr::Remote { task, pid, message } => {
                write!(f, "worker {pid} could not run task `{task}`: {message}")
            }
            Repr::Unregistered { task } if task.contains("{{closure}}") => write!(
                f,
                "`{task}` is a closure; closures cannot run in worker processes. Move its body \
                 into a named `fn` and list that fn in `procpool::tasks![...]`"
            ),
            Repr::Unregistered { task } => write!(
                f,
                "function `{task}` is not registered; add it to the `procpool::tasks![...]` \
                 list passed to `procpool::init` at the top of `main`"
            ),
            Repr::TooLarge { task, bytes, max } => write!(
                f,
                "the arguments of task `{task}` encode to {bytes} bytes, over the pool's maximum \
                 frame size of {max} bytes; it was not sent (raise the limit with \
                 PoolBuilder::max_frame_size, or pass less data per task)"
            ),
            Repr::ResultTooLarge {
                task,
                bytes,
                max,
                pid,
            } => write!(
                f,
                "the result of task `{task}` encodes to {bytes} bytes in worker {pid}, over the \
                 pool's maximum frame size of {max} bytes; it was not sent (raise the limit \
                 with PoolBuilder::max_frame_size, or return less data per task)"
            ),
            Repr::Undeliverable {
                task,
                attempts,
                pid,
                exit,
            } => write!(
                f,
                "task `{task}` was sent to {attempts} workers in turn and each died before it \
                 could start (the last, worker {pid}, {exit}); the pool stopped trying. Something \
                 about delivering it kills workers"
            ),
            Repr::Closed {
                ty,
                senders_gone: true,
            } => write!(
                f,
                "the channel of `{ty}` is closed: every sender is gone and every message sent \
                 has been received"
            ),
            Repr::Closed { ty, .. } => write!(
                f,
                "the channel of `{ty}` is closed: every receiver is gone, so nothing sent on it \
                 can be received"
            ),
            Repr::PeerDied {
                ty,
                pid,
                task,
                exit,
                stopped,
            } => {
                write!(
                    f,
                    "a sender on the channel of `{ty}` is gone: worker {pid} "
                )?;
                match (stopped, task) {
                    (true, Some(task)) => write!(
                        f,
                        "was stopped by the pool: task `{task}`, which it was running, was \
                         cancelled or timed out"
                    )?,
                    (true, None) => write!(f, "was stopped by the pool")?,
                    (false, Some(task)) => write!(f, "{exit} while running task `{task}`")?,
                    (false, None) => write!(f, "{exit}")?,
                }
                f.write_str(
                    "; what it had sent arrived, and a message it may have been part-way \
                     through sending was dropped, not delivered in part",
                )
            }
            Repr::RecvTimeout { after } => {
                write!(f, "no message arrived on the channel within {after:?}")
            }
            Repr::Endpoint(message) => f.write_str(message),
            Repr::Manager { what, failure } => manager_failure(f, *what, failure),
            Repr::Shared(message) => f.write_str(message),
            Repr::Poisoned { pid } => write!(
                f,
                "the shared lock is poisoned: process {pid} died holding it, so what it guards \
                 may be half-updated; check the value and make a new SharedLock"
            ),
            Repr::Leased { holder: Some(pid) } => write!(
                f,
                "the range overlaps a lease held by process {pid}; wait for it with \
                 `blocking_lease` (in a task) or `lease(..).await`, or lease another range"
            ),
            Repr::Leased { holder: None } => f.write_str(
                "all 64 lease slots of the shared array are taken; wait with `blocking_lease` \
                 or `lease(..).await`, or lease larger ranges",
            ),
            Repr::NotLocal { task, launcher } => write!(
                f,
                "task `{task}` carries shared memory, but its workers are started through \
                 {launcher} and cannot map this machine's memory; send the data by value, or \
                 use a local pool"
            ),
            Repr::NotInitialized => f.write_str(
                "procpool::init was not called; call `procpool::init(procpool::tasks![...])` \
                 first thing in `main` (it is also where worker processes start)",
            ),
            Repr::ShutDown => f.write_str(
                "the pool was shut down or dropped; keep a `Pool` alive (or call \
                 `shutdown().await`) until its tasks are done",
            ),
            Repr::QueueFull { task, max } => write!(
                f,
                "task `{task}` was not queued: {max} tasks are already waiting for a worker \
                 (PoolBuilder::max_queued); wait for room with `Pool::reserve().await` or \
                 `submit` (whose handle waits), shed the load, or raise the limit"
            ),
            Repr::Spawn { message, source } => {
                write!(f, "could not start a worker process: {message}")?;
                if let Some(source) = source {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
            Repr::Protocol { pid, task, message } => {
                write!(f, "worker {pid} broke the procpool protocol")?;
                if let Some(task) = task {
                    write!(f, " while running task `{task}`")?;
                }
                write!(
                    f,
                    ": {message}; the worker was replaced (does a task write to the \
                     worker's protocol socket?)"
                )
            }
            Repr::Io(err) => write!(f, "I/O error: {err}"),
        }
    }
}

fn manager_failure(f: &mut fmt::Formatter<'_>, what: Kind, failure: &Failure) -> fmt::Result {
    let what = format!("{what:?}").to_lowercase();
    match failure {
        Failure::Gone => write!(
            f,
            "the manager holding this {what} was shut down or dropped (or the pool this task \
             ran in is gone); keep the `Manager` alive while its objects are in use"
        ),
        Failure::TimedOut(after) => write!(
            f,
            "a call on a manager {what} waited {after:?} (its timeout) and did nothing"
        ),
        Failure::Panicked { task, message } => write!(
            f,
            "update function `{task}` panicked on a manager {what}, which is unchanged: \
             {message}"
        ),
        Failure::Decode(message) => write!(
            f,
            "a value of a manager {what} did not encode or decode: {message} (is every \
             handle to it of the same type?)"
        ),
        Failure::Poisoned(why) => write!(f, "the manager lock is poisoned: {why}"),
        Failure::Misuse(message) => write!(f, "a call on a manager {what} was refused: {message}"),
    }
}
