//! How a started process knows it is a pool's worker: the launch contract
//! between [`spawn`](super::spawn), which sets the marker, and
//! [`init`](crate::init), which claims it.

use std::fmt;
use std::io;
use std::os::fd::AsFd;

/// Set in a worker's environment by the pool; see [`Marker`].
pub(crate) const ENV_MARKER: &str = "PROCPOOL_WORKER";

/// Whether this process was started by a pool as a worker (and so must not
/// start a pool of its own before `init` took it over).
pub(crate) fn is_unclaimed_worker() -> bool {
    Marker::claimed().is_some()
}

/// What a pool puts in its worker's environment: `v2,<max frame>,<pool pid>`
/// for a local worker, `v2,stdio,<max frame>,<out>,<keepalive ms>` for one
/// started through a [`Launcher`](crate::Launcher) command (`out`: `err` or
/// `null`, where the worker points its own stdout; keepalive 0: none).
///
/// An environment variable alone proves nothing (a shell may export it, a
/// worker's own child inherits it), so a local marker counts only together
/// with what no one but the pool can arrange: stdin is a socket that the
/// process the marker names created. Anything else is an ordinary start, and
/// `init` returns.
///
/// A stdio marker crosses hosts (in the command line, as `env K=V`: ssh
/// drops the environment), where no such proof exists; it counts when stdin
/// is a pipe or a socket (stdout may be anything: `srun -u` makes it a
/// terminal, in raw mode). A worker points its own stdin at `/dev/null`, so
/// a process a task starts with the default stdio is never taken for a
/// worker; one started with a piped stdin and the marker inherited would be
/// (and wait for a `START` on that pipe: documented in the README's Limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) max_frame: u64,
    pub(crate) via: Via,
}

/// How a worker reaches its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Stdin is a socket that this pool process created.
    Socket { pool_pid: u32 },
    /// Frames come on stdin and go out on stdout (pipes, forwarded by a
    /// launcher such as ssh); `quiet`: what tasks print to stdout is
    /// dropped rather than sent to stderr; `keepalive_ms`: how often the
    /// pool pings (0: never), so silence for longer means it is gone.
    Stdio { quiet: bool, keepalive_ms: u64 },
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Via::Socket { pool_pid } => write!(f, "v2,{},{pool_pid}", self.max_frame),
            Via::Stdio {
                quiet,
                keepalive_ms,
            } => {
                let out = if quiet { "null" } else { "err" };
                write!(f, "v2,stdio,{},{out},{keepalive_ms}", self.max_frame)
            }
        }
    }
}

impl Marker {
    fn parse(text: &str) -> Option<Marker> {
        let rest = text.strip_prefix("v2,")?;
        let marker = match rest.strip_prefix("stdio,") {
            Some(stdio) => {
                let mut fields = stdio.split(',');
                let max_frame = fields.next()?.parse().ok()?;
                let quiet = match fields.next()? {
                    "err" => false,
                    "null" => true,
                    _ => return None,
                };
                let keepalive_ms = fields.next()?.parse().ok()?;
                if fields.next().is_some() {
                    return None;
                }
                Marker {
                    max_frame,
                    via: Via::Stdio {
                        quiet,
                        keepalive_ms,
                    },
                }
            }
            None => {
                let (max_frame, pool_pid) = rest.split_once(',')?;
                Marker {
                    max_frame: max_frame.parse().ok()?,
                    via: Via::Socket {
                        pool_pid: pool_pid.parse().ok()?,
                    },
                }
            }
        };
        Some(marker)
    }

    /// The marker in this process's environment, if a pool made it for this
    /// very process.
    pub(crate) fn claimed() -> Option<Marker> {
        let marker = Marker::parse(std::env::var_os(ENV_MARKER)?.to_str()?)?;
        let ours = match marker.via {
            Via::Socket { pool_pid } => stdin_creator() == Some(pool_pid),
            Via::Stdio { .. } => is_stream(io::stdin().as_fd()),
        };
        ours.then_some(marker)
    }
}

/// Whether `fd` is a pipe or a socket (not a terminal, a file, `/dev/null`).
fn is_stream(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(fd).is_ok_and(|stat| {
        matches!(
            FileType::from_raw_mode(stat.st_mode),
            FileType::Fifo | FileType::Socket
        )
    })
}

/// The process that created the socket on our stdin, if stdin is one.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn stdin_creator() -> Option<u32> {
    let peer = rustix::net::sockopt::socket_peercred(io::stdin().as_fd()).ok()?;
    Some(peer.pid.as_raw_nonzero().get().unsigned_abs())
}

/// Without `SO_PEERCRED`, the next best thing: the pool is our parent.
/// (Untested: procpool is developed and tested on Linux.)
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn stdin_creator() -> Option<u32> {
    let parent = rustix::process::getppid()?;
    Some(parent.as_raw_nonzero().get().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_reject_strangers() {
        for via in [
            Via::Socket { pool_pid: 42 },
            Via::Stdio {
                quiet: false,
                keepalive_ms: 0,
            },
            Via::Stdio {
                quiet: true,
                keepalive_ms: 15_000,
            },
        ] {
            let marker = Marker {
                max_frame: 1 << 30,
                via,
            };
            assert_eq!(Marker::parse(&marker.to_string()), Some(marker));
        }
        for garbage in [
            "",
            "v2",
            "v1,1,2",
            "v2,1",
            "v2,1,2,3",
            "v2,stdio,1,out,0",
            "v2,stdio,1,err",
            "v2,x,1",
        ] {
            assert_eq!(Marker::parse(garbage), None, "{garbage}");
        }
    }
}
