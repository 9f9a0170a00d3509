//! Starting one worker process on this machine and checking that it speaks
//! our protocol.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::cgroup::PoolCgroup;
use super::child::{Child, Ledger};
use super::marker::{self, Marker, Via};
use super::options::Redirect;
use super::remote::{self, Opening, Tail};
use crate::error::{Error, Exit, Repr};
use crate::wire::answer::Response;
use crate::wire::frame::{self, Parts};
use crate::wire::hello::{self, Hello};
use crate::wire::request::Request;

/// Everything needed to start a worker; shared by all of a pool's slots.
#[derive(Debug)]
pub(crate) struct WorkerSpec {
    /// How a launcher starts the worker elsewhere; `None`: `program`, here.
    pub(crate) command: Option<RemoteCommand>,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) stdout: Redirect,
    pub(crate) stderr: Redirect,
    pub(crate) max_frame: u64,
    pub(crate) socket_buffer: usize,
    pub(crate) handshake_timeout: Duration,
    /// What a worker sends of its `tracing` events (see `hello::Start`).
    pub(crate) log_level: u8,
    /// The address-space limit each worker sets on itself, in bytes.
    pub(crate) memory_limit: Option<u64>,
    /// How long a cancelled running task may take to stop by itself.
    pub(crate) cancel_grace: Duration,
    pub(crate) fingerprint: u64,
    pub(crate) initializer: Option<Initializer>,
    /// Where workers get a cgroup each; `None`: process groups only.
    pub(crate) cgroup: Option<Arc<PoolCgroup>>,
    pub(crate) ledger: Arc<Ledger>,
}

/// A worker's start through a [`Launcher`](crate::Launcher) command.
#[derive(Debug)]
pub(crate) struct RemoteCommand {
    /// The whole command: the prefix, then the worker's own command line.
    pub(crate) argv: Vec<OsString>,
    /// The launcher as messages name it (`ssh node7`).
    pub(crate) name: String,
    /// See [`Launcher::keepalive`](crate::Launcher::keepalive).
    pub(crate) keepalive: Option<Duration>,
}

/// A task every worker runs once, before it serves anything.
#[derive(Clone, Debug)]
pub(crate) struct Initializer {
    pub(crate) task: &'static str,
    pub(crate) request: Request,
}

/// A worker that has said hello.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) child: Child,
    pub(crate) data: UnixStream,
    /// The id its next request gets (the initializer's went out already).
    pub(crate) first_id: u64,
    /// How often to ask it for a sign of life (remote workers only).
    pub(crate) keepalive: Option<Duration>,
}

/// The id of an initializer's request: the first a worker gets.
const INITIALIZER_ID: u64 = 1;

/// How long a worker that hung up during the handshake gets to exit before we
/// read its status anyway.
const HANDSHAKE_EXIT_WAIT: Duration = Duration::from_millis(500);

/// Starts a worker and waits for its handshake.
///
/// # Errors
///
/// A spawn error if the program cannot be started, exits or stays silent
/// instead of saying hello, or is a different build (protocol version or task
/// registry differ). The child is killed and reaped before the error returns.
pub(crate) async fn start(spec: &Arc<WorkerSpec>) -> Result<Started, Error> {
    let io_err = |what: &str, err| Error::spawn(what.to_string(), Some(err));
    let (data, child_data) =
        socket_pair(spec.socket_buffer).map_err(|e| io_err("socketpair", e))?;

    // The connection becomes the worker's stdin and nothing else is
    // inherited, so std can start it with posix_spawn: no fork of this
    // (possibly large, multi-threaded) process, whose cost grows with its
    // memory. A launcher gets it as its stdout too.
    let mut command = match &spec.command {
        None => {
            let marker = Marker {
                max_frame: spec.max_frame,
                via: Via::Socket {
                    pool_pid: std::process::id(),
                },
            };
            let mut command = Command::new(&spec.program);
            command
                .args(&spec.args)
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .env(marker::ENV_MARKER, marker.to_string())
                .stdin(Stdio::from(OwnedFd::from(child_data)))
                .stdout(spec.stdout.stdio())
                .stderr(spec.stderr.stdio());
            command
        }
        Some(remote) => remote::command(remote, OwnedFd::from(child_data))
            .map_err(|e| io_err("cannot share the socket with the launcher", e))?,
    };
    // Its own process group, so one signal reaches whatever a task starts
    // (and the terminal's job control signals do not); for a launcher,
    // whatever it starts here (an ssh ProxyCommand).
    command.process_group(0);
    let what = match &spec.command {
        None => spec.program.display().to_string(),
        Some(remote) => format!("the launcher `{}`", remote.name),
    };
    let mut spawned = command
        .spawn()
        .map_err(|e| io_err(&format!("cannot run {what}"), e))?;
    // The command owns the child's end of the data socket: close it here, or
    // the worker's exit would never read as end-of-stream.
    drop(command);
    let tail = spawned
        .stderr
        .take()
        .map(|pipe| Tail::relay(pipe, spec.stderr));
    let pid = spawned.id();
    // Not std's to wait for: the child is reaped through `Child` alone.
    drop(spawned);
    let Some(mut child) = Child::track(pid, &spec.ledger, spec.command.is_some()) else {
        // The pool is gone (maybe with its runtime, so no await here would
        // complete); the child was killed and reaped.
        return Err(Error::new(Repr::ShutDown));
    };
    // Into its cgroup before it runs anything of the user's: it waits for
    // `START`, sent below.
    if let Some(cgroup) = &spec.cgroup
        && let Err(err) = child.contain(cgroup.clone()).await
    {
        child.kill_and_wait().await;
        return Err(io_err("cannot move the worker into its cgroup", err));
    }
    let mut data = match data
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(data))
    {
        Ok(data) => data,
        Err(err) => {
            child.kill_and_wait().await;
            return Err(io_err("socket setup", err));
        }
    };
    // If this fails, the worker is already gone (or was never one of ours);
    // the handshake below reports how it ended.
    let start = hello::Start {
        log_level: spec.log_level,
        memory_limit: spec.memory_limit.unwrap_or(0),
        cancel_grace_nanos: u64::try_from(spec.cancel_grace.as_nanos()).unwrap_or(u64::MAX),
    };
    let _ = data.write_all(&start.encode()).await;

    // A worker that exits without reading what it was sent (`START`)
    // resets the connection instead of closing it: the same thing. One
    // through a launcher first writes the stdio magic.
    let mut opening = None;
    let read_hello = async {
        if spec.command.is_some() {
            match remote::opening(&mut data).await? {
                Opening::Magic => {}
                Opening::Ended => return Ok(None),
                other => {
                    opening = Some(other);
                    return Ok(None);
                }
            }
        }
        frame::read_async(&mut data, 64).await
    };
    let hello = tokio::time::timeout(spec.handshake_timeout, read_hello)
        .await
        .map(|read| match read {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
            other => other,
        });
    // A local worker by its pid; a remote one by its launcher (whose pid
    // means nothing on the worker's host).
    let who = match &spec.command {
        None => format!("worker {pid}"),
        Some(remote) => format!(
            "the worker started by `{}` (launcher pid {pid})",
            remote.name
        ),
    };
    let keepalive = spec.command.as_ref().and_then(|remote| remote.keepalive);
    let noise = match opening {
        Some(Opening::Noise(text)) => Some(text),
        _ => None,
    };
    let problem = if let Some(text) = noise {
        format!(
            "{who}: the remote shell printed \"{text}\" before the worker started; a shell \
             rc file (.bashrc, .profile) that prints for non-interactive shells corrupts the \
             stream: make it print only when interactive (or the program there does not call \
             procpool::init first)"
        )
    } else {
        match hello {
            Ok(Ok(Some(body))) => match Hello::parse(&body) {
                Some(hello) if hello.version != frame::PROTOCOL_VERSION => format!(
                    "{who} speaks protocol version {}, the pool {}; point worker_program \
                 at a binary built against this procpool",
                    hello.version,
                    frame::PROTOCOL_VERSION
                ),
                Some(hello) if hello.fingerprint != spec.fingerprint => format!(
                    "{who} registered different tasks (fingerprint {:016x}, the pool {:016x}); \
                 the worker program must call procpool::init with the same tasks![...] list, \
                 in the same order{}",
                    hello.fingerprint,
                    spec.fingerprint,
                    if spec.command.is_some() {
                        " (is the program there the same build as this one?)"
                    } else {
                        ""
                    }
                ),
                Some(_) => match &spec.initializer {
                    None => {
                        return Ok(Started {
                            child,
                            data,
                            first_id: 1,
                            keepalive,
                        });
                    }
                    Some(init) => {
                        let run = initialize(&mut data, init, pid, spec.max_frame);
                        match tokio::time::timeout(spec.handshake_timeout, run).await {
                            Ok(Ok(())) => {
                                return Ok(Started {
                                    child,
                                    data,
                                    first_id: INITIALIZER_ID + 1,
                                    keepalive,
                                });
                            }
                            Ok(Err(None)) => {
                                let exit = exit_status(&mut child).await.0;
                                format!("initializer `{}` ended {who}: it {exit}", init.task)
                            }
                            Ok(Err(Some(problem))) => problem,
                            Err(_) => format!(
                                "initializer `{}` did not finish within {:?}, the handshake timeout \
                             (raise it with PoolBuilder::handshake_timeout)",
                                init.task, spec.handshake_timeout
                            ),
                        }
                    }
                },
                None => format!("{who} sent something other than a procpool handshake"),
            },
            Ok(Ok(None)) => {
                let exit = exit_status(&mut child).await;
                let by_signal = matches!(exit.1, Some(Exit::Signal(_)));
                match &spec.command {
                    None => {
                        // A program that exits by itself before saying hello is
                        // most likely not serving tasks; one killed by a signal
                        // was just unlucky.
                        let hint = if by_signal {
                            ""
                        } else {
                            "; does its `main` call `procpool::init(procpool::tasks![...])` first?"
                        };
                        format!(
                            "{who} ({}) {} before its handshake{hint}",
                            spec.program.display(),
                            exit.0
                        )
                    }
                    Some(remote) => {
                        let code = match exit.1 {
                            Some(Exit::Code(code)) => Some(code),
                            _ => None,
                        };
                        format!(
                            "{who}: the launcher {} before the worker's handshake{}{}",
                            exit.0,
                            remote::exit_hint(remote, code),
                            quoted(tail.as_ref()).await
                        )
                    }
                }
            }
            Ok(Err(err)) => format!("{who}: handshake failed: {err}"),
            Err(_) => match &spec.command {
                None => format!(
                    "{who} ({}) did not complete its handshake within {:?}; does its `main` \
                 call `procpool::init` first?",
                    spec.program.display(),
                    spec.handshake_timeout
                ),
                Some(_) => format!(
                    "{who} did not complete its handshake within {:?} (raise it with \
                 handshake_timeout if starting there is slow){}",
                    spec.handshake_timeout,
                    quoted(tail.as_ref()).await
                ),
            },
        }
    };
    child.kill_and_wait().await;
    Err(Error::spawn(problem, None))
}

/// Runs the initializer on a fresh worker. `Err(None)`: the worker hung up.
async fn initialize(
    data: &mut UnixStream,
    init: &Initializer,
    pid: u32,
    max_frame: u64,
) -> Result<(), Option<String>> {
    let task = init.task;
    let failed = |what: String| {
        Some(format!(
            "initializer `{task}` failed in worker {pid}: {what}"
        ))
    };
    let mut request = init.request.clone();
    frame::set_id(&mut request.frame, INITIALIZER_ID);
    for piece in request.pieces() {
        data.write_all(piece).await.map_err(|_| None)?;
    }
    let body = frame::read_async(data, max_frame)
        .await
        .map_err(|err| failed(err.to_string()))?
        .ok_or(None)?;
    let body = frame::drop_attachments(body).map_err(failed)?;
    let parsed = Parts::of(&body).and_then(|parts| match parts.id {
        INITIALIZER_ID => Response::parse(parts),
        id => Err(format!("an answer to request {id} instead")),
    });
    match parsed {
        Ok(Response::Ok { .. }) => Ok(()),
        Ok(Response::Panic((message, location))) => {
            let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
            Err(failed(format!("it panicked{at}: {message}")))
        }
        Ok(Response::Failed(message)) => Err(failed(message.to_string())),
        Ok(Response::Skipped) => Err(failed("it was skipped".into())),
        Ok(Response::TooLarge { bytes }) => Err(failed(format!(
            "its result encodes to {bytes} bytes, over the maximum frame size of {max_frame}"
        ))),
        Err(garbage) => Err(failed(garbage)),
    }
}

/// How a worker that hung up ended, described for an error message, and
/// how it exited (`None`: it has not, yet).
async fn exit_status(child: &mut Child) -> ExitSeen {
    if child.exited_within(HANDSHAKE_EXIT_WAIT).await {
        let exit = child.reap().await;
        ExitSeen(exit.to_string(), Some(exit))
    } else {
        ExitSeen("closed its socket".to_string(), None)
    }
}

/// [`exit_status`]'s answer.
struct ExitSeen(String, Option<Exit>);

/// `; it said: …` with the end of a launcher's stderr, if it wrote any.
async fn quoted(tail: Option<&Tail>) -> String {
    let Some(tail) = tail.cloned() else {
        return String::new();
    };
    // (It may wait a moment for the launcher's last words.)
    let words = tokio::task::spawn_blocking(move || tail.last_words())
        .await
        .unwrap_or_default();
    match words {
        words if words.is_empty() => String::new(),
        words => format!("; it said: {words}"),
    }
}

/// A connected pair of Unix stream sockets (close-on-exec), with send and
/// receive buffers raised towards `buffer_bytes`.
///
/// Large buffers are what make a socketpair ~3x faster than a pipe for big
/// payloads (DESIGN.md, Transport); the kernel caps them at `net.core.wmem_max`
/// / `rmem_max`, which is fine: this is a hint, not a requirement.
fn socket_pair(
    buffer_bytes: usize,
) -> std::io::Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
)> {
    use rustix::net::sockopt;
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    for socket in [&a, &b] {
        sockopt::set_socket_send_buffer_size(socket, buffer_bytes)?;
        sockopt::set_socket_recv_buffer_size(socket, buffer_bytes)?;
    }
    Ok((a, b))
}
