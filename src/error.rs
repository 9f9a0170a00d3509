//! The one error type every fallible procpool operation returns.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

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
#[derive(Clone)]
pub struct Error {
    repr: Arc<Repr>,
}

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

#[derive(Debug)]
pub(crate) enum Repr {
    Panicked {
        task: &'static str,
        message: String,
        location: Option<String>,
        pid: u32,
    },
    WorkerDied {
        task: &'static str,
        pid: u32,
        exit: Exit,
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
    /// The task was sent to worker after worker, and each died before it
    /// could start (its delivery itself seems to kill them).
    Undeliverable {
        task: &'static str,
        attempts: u32,
        pid: u32,
        exit: Exit,
    },
    NotInitialized,
    ShutDown,
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

    /// The task panicked; the worker caught the panic and lives on.
    pub fn is_panic(&self) -> bool {
        matches!(*self.repr, Repr::Panicked { .. })
    }

    /// The worker process running the task died (abort, segfault, `exit`, a
    /// signal from outside). The pool has replaced it.
    ///
    /// Also true for a task that was sent to several workers in turn, each of
    /// which died before the task started: the pool stops trying after three.
    pub fn is_worker_died(&self) -> bool {
        matches!(
            *self.repr,
            Repr::WorkerDied { .. } | Repr::Undeliverable { .. }
        )
    }

    /// The task's encoded arguments are larger than the pool's maximum frame
    /// size ([`PoolBuilder::max_frame_size`](crate::PoolBuilder::max_frame_size)),
    /// so it was not sent. Known at submit.
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
        matches!(*self.repr, Repr::TooLarge { .. })
    }

    /// The task was cancelled before it produced a result.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.repr, Repr::Cancelled { .. })
    }

    /// The task ran past its timeout; its worker was killed and replaced.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.repr, Repr::TimedOut { .. })
    }

    /// The pool was shut down (or dropped) before the task could complete.
    pub fn is_shutdown(&self) -> bool {
        matches!(*self.repr, Repr::ShutDown)
    }

    /// The function was not registered with [`init`](crate::init).
    pub fn is_unregistered(&self) -> bool {
        matches!(*self.repr, Repr::Unregistered { .. } | Repr::NotInitialized)
    }

    /// Arguments or a result could not be serialized or deserialized.
    pub fn is_codec(&self) -> bool {
        matches!(
            *self.repr,
            Repr::Encode { .. } | Repr::Decode { .. } | Repr::Remote { .. }
        )
    }

    /// A worker process could not be started, or failed its handshake.
    pub fn is_spawn(&self) -> bool {
        matches!(*self.repr, Repr::Spawn { .. })
    }

    /// A worker broke the wire protocol: garbage on its socket, an oversized
    /// frame, or a handshake from a different build. The worker was replaced.
    pub fn is_protocol(&self) -> bool {
        matches!(*self.repr, Repr::Protocol { .. })
    }

    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Where the task panicked (`file:line:column`), if it did and it was known.
    pub fn panic_location(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { location, .. } => location.as_deref(),
            _ => None,
        }
    }

    /// The exit code of a worker that died by calling `exit`.
    pub fn exit_code(&self) -> Option<i32> {
        match *self.repr {
            Repr::WorkerDied {
                exit: Exit::Code(code),
                ..
            }
            | Repr::Undeliverable {
                exit: Exit::Code(code),
                ..
            } => Some(code),
            _ => None,
        }
    }

    /// The signal that killed the worker, if one did.
    pub fn signal(&self) -> Option<i32> {
        match *self.repr {
            Repr::WorkerDied {
                exit: Exit::Signal(sig),
                ..
            }
            | Repr::Undeliverable {
                exit: Exit::Signal(sig),
                ..
            } => Some(sig),
            _ => None,
        }
    }

    /// The pid of the worker involved, where one was: the one that
    /// panicked, died or broke the protocol, or, for a timeout or a
    /// cancellation, the one the task had been sent to (killed if it had
    /// started the task).
    pub fn worker_pid(&self) -> Option<u32> {
        match *self.repr {
            Repr::Panicked { pid, .. }
            | Repr::WorkerDied { pid, .. }
            | Repr::Undeliverable { pid, .. }
            | Repr::Remote { pid, .. }
            | Repr::Protocol { pid, .. } => Some(pid),
            Repr::Cancelled { pid, .. } | Repr::TimedOut { pid, .. } => pid,
            _ => None,
        }
    }

    /// The name of the task involved (its Rust path, e.g. `my_app::square`).
    pub fn task_name(&self) -> Option<&'static str> {
        match *self.repr {
            Repr::Panicked { task, .. }
            | Repr::WorkerDied { task, .. }
            | Repr::Cancelled { task, .. }
            | Repr::TimedOut { task, .. }
            | Repr::Remote { task, .. }
            | Repr::TooLarge { task, .. }
            | Repr::Undeliverable { task, .. }
            | Repr::Unregistered { task } => Some(task),
            Repr::Protocol { task, .. } => task,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Panicked {
                task,
                message,
                location,
                pid,
            } => {
                write!(f, "task `{task}` panicked in worker {pid}")?;
                if let Some(location) = location {
                    write!(f, " at {location}")?;
                }
                write!(f, ": {message}")
            }
            Repr::WorkerDied { task, pid, exit } => write!(
                f,
                "worker {pid} {exit} while task `{task}` was running or about to run on it; \
                 the task was lost and the worker replaced (if the task crashed it, fix the \
                 task; if it was killed from outside, e.g. by the OOM killer, \
                 PoolBuilder::retries reruns tasks that are safe to run twice)"
            ),
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
            Repr::NotInitialized => f.write_str(
                "procpool::init was not called; call `procpool::init(procpool::tasks![...])` \
                 first thing in `main` (it is also where worker processes start)",
            ),
            Repr::ShutDown => f.write_str(
                "the pool was shut down or dropped; keep a `Pool` alive (or call \
                 `shutdown().await`) until its tasks are done",
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
