//! The worker side: what a re-executed child does instead of the user's `main`.
//!
//! A worker has two threads of its own:
//!
//! * the **task thread** ([`serve`]) runs requests one at a time and
//!   answers each before starting the next. It is the thread that called
//!   [`init`], unless `init` was called inside a tokio runtime (then a fresh
//!   thread, so that tasks may start runtimes of their own);
//! * the **reader** reads the connection while a task runs (the task thread
//!   reads it itself when idle, so a request reaches its task with no
//!   hand-off; see [`reader`]). Whoever reads routes each frame by kind:
//!   requests to the task thread, cancels to the kill logic, replies to the
//!   thread waiting on a call. When the pool hangs up the worker ends with
//!   everything its tasks started at once, even mid-task ([`teardown`]).
//!
//! Any thread sends through the [`link`], whole frames only.

mod cancel;
pub(crate) mod link;
mod outbox;
mod panic;
mod reader;
mod serve;
mod stdio;
mod teardown;

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

pub use cancel::cancelled;
pub use link::echo_through_pool;
pub(crate) use panic::panic_text;
pub(crate) use reader::running_task;

use crate::launch::marker::{Marker, Via};
use crate::registry::{self, Registry};
use crate::sys;
use crate::wire::frame;
use crate::wire::hello::{Hello, Start};
use crate::wire::log;

/// Exit code of a worker that could not start serving (EX_SOFTWARE).
const EXIT_SETUP_FAILED: i32 = 70;

/// Exit code of a worker under the pool's address-space limit
/// (`PoolBuilder::max_memory_per_worker`) whose allocation failed
/// (EX_OSERR): Rust aborts then, and the worker's SIGABRT handler turns
/// that abort into this code, so that the pool can tell "out of memory"
/// from any other abort.
pub(crate) const EXIT_OUT_OF_MEMORY: i32 = 71;

/// Registers this program's tasks and, in a worker process, serves them.
///
/// Call it first thing in `main`. In the program you run, it records the tasks
/// and returns. In a worker process (the same executable, started again by a
/// [`Pool`](crate::Pool)), it never returns: it serves tasks until the pool
/// goes away and then exits, so nothing below it in `main` runs there. It is
/// the analogue of Python's `if __name__ == "__main__":` guard.
///
/// It may be called before any runtime exists or inside one (as in
/// `#[tokio::main] async fn main`); either way tasks run on a thread with no
/// runtime of its own, so a task may build one. It changes nothing in the
/// process environment.
///
/// # Examples
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() {
///     procpool::init(procpool::tasks![square]);
///     // ... build a Pool and submit work ...
/// }
/// ```
///
/// The same inside `#[tokio::main]`:
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
///
/// #[tokio::main]
/// async fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![square]);
///     let pool = procpool::Pool::builder().workers(2).build().await?;
///     assert_eq!(pool.submit(square, 7).await?, 49);
///     Ok(())
/// }
/// ```
///
/// # Panics
///
/// If called twice in one process.
#[track_caller]
pub fn init(registry: Registry) {
    let marker = Marker::claimed();
    assert!(
        registry::install(registry),
        "procpool::init was called twice; call it once, first thing in main"
    );
    let Some(marker) = marker else {
        return;
    };
    // With no controlling terminal, a task that touches the terminal from
    // this background process group gets an error instead of a SIGTTOU or
    // SIGTTIN that would stop the worker.
    sys::detach_terminal();
    let registry = registry::global().expect("installed above");
    let err = match connect(registry, marker) {
        Ok(socket) if tokio::runtime::Handle::try_current().is_ok() => {
            // Called inside a runtime: this thread is the runtime's, and a
            // task run here could not start a runtime of its own.
            let task_thread = std::thread::Builder::new()
                .name("procpool-tasks".into())
                .stack_size(main_thread_stack())
                .spawn(move || serve(registry, marker, socket));
            match task_thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| io::Error::other("the task thread ended by a panic")),
                Err(err) => err,
            }
        }
        Ok(socket) => serve(registry, marker, socket),
        Err(err) => err,
    };
    if !reader::is_hang_up(&err) {
        // (A hang-up means the pool went away abruptly: not worth a line.)
        eprintln!("procpool worker {}: {err}", std::process::id());
        let _ = io::stdout().flush();
        std::process::exit(EXIT_SETUP_FAILED);
    }
    teardown::teardown()
}

/// Takes the connection from stdin (and stdout, through a launcher), waits
/// for the pool's `START` (it contains us first), and says hello.
///
/// Stdin is the connection so that the pool can start us with
/// `posix_spawn`, which places no other fds; it becomes `/dev/null`, so
/// tasks cannot read the protocol.
fn connect(registry: &Registry, marker: Marker) -> io::Result<UnixStream> {
    let mut socket = match marker.via {
        Via::Socket { .. } => take_stdin_socket()?,
        Via::Stdio {
            quiet,
            keepalive_ms,
        } => stdio::take(quiet, keepalive_ms)?,
    };
    let (mut body, mut attachments) = (Vec::new(), Vec::new());
    if !frame::read_blocking(&mut socket, &mut body, &mut attachments, marker.max_frame)? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let Some(start) = Start::parse(&body) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the pool's first frame is not START",
        ));
    };
    if let Some(level) = log::level_of(start.log_level) {
        crate::logs::forward_from_worker(level);
    }
    cancel::set_grace(start.cancel_grace_nanos);
    if start.memory_limit > 0 {
        limit_memory(start.memory_limit)?;
    }
    // By now the pool has moved us into our cgroup: learn where we live
    // before any user code runs.
    sys::watch_forks()?;
    teardown::prepare();
    socket.write_all(
        &Hello {
            version: frame::PROTOCOL_VERSION,
            fingerprint: registry.fingerprint(),
            pid: std::process::id(),
        }
        .encode(),
    )?;
    Ok(socket)
}

/// Starts the reader and serves tasks on this thread; returns why serving
/// stopped.
fn serve(registry: &'static Registry, marker: Marker, socket: UnixStream) -> io::Error {
    let write_half = match socket.try_clone() {
        Ok(write_half) => write_half,
        Err(err) => return err,
    };
    let link = link::Link::install(write_half, marker.max_frame);
    if let Via::Stdio { keepalive_ms, .. } = marker.via
        && keepalive_ms > 0
        && let Err(err) = stdio::heartbeat(link, keepalive_ms)
    {
        return err;
    }
    crate::channel::remote::install(registry);
    let inbox: &'static reader::Inbox = match reader::Inbox::new(socket, marker.max_frame, link) {
        Ok(inbox) => Box::leak(Box::new(inbox)),
        Err(err) => return err,
    };
    reader::install(inbox);
    // Serve only once the reader thread runs: a thread sets itself up when
    // it starts (std maps its signal stack then), and user code must not
    // run before that — an initializer that caps the address space
    // (setrlimit) made the reader's start fail and abort the worker, now
    // and then (found as a 1-in-12 flake in tests/protocol.rs).
    let (running, started) = std::sync::mpsc::sync_channel::<()>(1);
    let reader = std::thread::Builder::new()
        .name("procpool-reader".into())
        .spawn(move || {
            let _ = running.send(());
            reader::run(inbox)
        });
    if let Err(err) = reader {
        return err;
    }
    let _ = started.recv();
    serve::serve(registry, inbox, link, marker.max_frame)
}

/// Caps this worker's address space at `bytes` (soft and hard limit, so a
/// task cannot raise it again), before anything of the user's runs, and
/// makes an allocation failure under it exit with [`EXIT_OUT_OF_MEMORY`].
///
/// Rust's default allocation-error handler prints a line and aborts; the
/// hook that would let us act first (`std::alloc::set_alloc_error_hook`) is
/// unstable, so the abort itself is caught (see
/// [`sys::exit_on_out_of_memory_abort`]).
fn limit_memory(bytes: u64) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )?;
    sys::exit_on_out_of_memory_abort(EXIT_OUT_OF_MEMORY)
}

/// Takes the socket a worker was given as its stdin, and points stdin at
/// `/dev/null` instead.
fn take_stdin_socket() -> io::Result<UnixStream> {
    let socket = rustix::io::fcntl_dupfd_cloexec(io::stdin(), 3)?;
    let mode = rustix::fs::fstat(&socket)?.st_mode;
    if rustix::fs::FileType::from_raw_mode(mode) != rustix::fs::FileType::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "stdin is not a socket",
        ));
    }
    rustix::stdio::dup2_stdin(std::fs::File::open("/dev/null")?)?;
    Ok(UnixStream::from(socket))
}

/// The stack the main thread would have: `RLIMIT_STACK`, or 8 MiB when
/// that is unlimited.
fn main_thread_stack() -> usize {
    const DEFAULT: usize = 8 << 20;
    rustix::process::getrlimit(rustix::process::Resource::Stack)
        .current
        .and_then(|bytes| usize::try_from(bytes).ok())
        .unwrap_or(DEFAULT)
        .max(DEFAULT)
}
