//! The worker side: what a re-executed child does instead of the user's `main`.
//!
//! A worker runs tasks one at a time on its main thread, reading requests
//! straight from the data socket (no hand-off between threads on the hot
//! path). A second thread, the watchdog, never reads that socket: it waits for
//! the pool to hang up (then the worker kills its whole process group at once,
//! even mid-task) and for cancel messages on the control socket (then it skips
//! the named request, or kills the group if that request is running).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::codec;
use crate::launch::cgroup::{self, WorkerCgroup};
use crate::launch::marker::{ENV_MARKER, Marker};
use crate::registry::{self, Registry};
use crate::sys;
use crate::wire::frame::{self, Hello};

/// Exit code of a worker that could not start serving (EX_SOFTWARE).
const EXIT_SETUP_FAILED: i32 = 70;

/// Registers this program's tasks and, in a worker process, serves them.
///
/// Call it first thing in `main`. In the program you run, it records the tasks
/// and returns. In a worker process (the same executable, started again by a
/// [`Pool`](crate::Pool)), it never returns: it serves tasks until the pool
/// goes away and then exits, so nothing below it in `main` runs there. It is
/// the analogue of Python's `if __name__ == "__main__":` guard.
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
    // Processes that tasks start are not workers of ours.
    sys::remove_env(ENV_MARKER);
    // With no controlling terminal, a task that touches the terminal from
    // this background process group gets an error instead of a SIGTTOU or
    // SIGTTIN that would stop the worker.
    sys::detach_terminal();
    let registry = registry::global().expect("installed above");
    let outcome = Endpoints::take(marker).and_then(|endpoints| {
        // The pool moved us into our cgroup before it sent the control
        // socket, so by now we know where we live.
        sys::watch_forks()?;
        let _ = TEARDOWN.set(Teardown {
            group: own_group(),
            cgroup: cgroup::own_worker_cgroup(),
        });
        serve(registry, endpoints)
    });
    match outcome {
        Ok(()) => {}
        // The pool went away abruptly (its process or runtime ended): not
        // worth a line on the user's terminal.
        Err(err) if is_hang_up(&err) => {}
        Err(err) => {
            eprintln!("procpool worker {}: {err}", std::process::id());
            let _ = io::stdout().flush();
            std::process::exit(EXIT_SETUP_FAILED);
        }
    }
    // Whatever the reason we stop, take the processes our tasks started with us.
    let _ = io::stdout().flush();
    teardown()
}

fn is_hang_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

/// How this worker ends everything its tasks started, then itself.
struct Teardown {
    /// The process group it was started in (a task may move the worker out
    /// of it; killing the group the worker is in *now* could then reach the
    /// pool's own).
    group: Option<rustix::process::Pid>,
    cgroup: Option<WorkerCgroup>,
}

/// The process group a pool started this worker in: its own, which it
/// leads. (Were it not the leader, the group would be someone else's, and
/// not ours to kill.)
fn own_group() -> Option<rustix::process::Pid> {
    let group = rustix::process::getpgrp();
    (group == rustix::process::getpid()).then_some(group)
}

static TEARDOWN: OnceLock<Teardown> = OnceLock::new();

/// This process's children, from every thread's list (any thread of a task
/// may have started one).
fn own_children() -> Vec<rustix::process::Pid> {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .filter_map(rustix::process::Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Kills this worker's cgroup, its children and its original process group,
/// then exits: used when the pool is gone, a running task is cancelled, or
/// serving ends.
fn teardown() -> ! {
    if let Some(teardown) = TEARDOWN.get() {
        if let Some(cgroup) = &teardown.cgroup {
            cgroup.kill(); // ends us too, a moment later
        }
        // Children that left the group (setsid) but not yet us.
        for child in own_children() {
            let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
        }
        if let Some(group) = teardown.group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
    sys::exit_now(137)
}

struct Endpoints {
    data: UnixStream,
    control: UnixStream,
    max_frame: u64,
}

impl Endpoints {
    /// The worker's end of the data socket is its stdin (so the pool can
    /// start it with `posix_spawn`, which cannot place other fds); the control
    /// socket follows on it as an fd in a message. Stdin then becomes
    /// `/dev/null`, so tasks cannot read the protocol.
    fn take(marker: Marker) -> io::Result<Endpoints> {
        let max_frame = marker.max_frame;
        let data = sys::take_stdin_socket()?;
        let control = sys::receive_fd(&data)?;
        Ok(Endpoints {
            data,
            control: sys::adopt_socket(control)?,
            max_frame,
        })
    }
}

/// Which request runs now, which were started, and which were cancelled before
/// they started. Shared by the task thread and the watchdog under one mutex,
/// taken twice per task, so "is it running?" and "start it" cannot interleave.
#[derive(Default)]
struct Progress {
    started: u64,
    running: Option<u64>,
    cancelled: BTreeSet<u64>,
}

type Shared = Arc<Mutex<Progress>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Progress> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve(registry: &Registry, endpoints: Endpoints) -> io::Result<()> {
    let Endpoints {
        data,
        control,
        max_frame,
    } = endpoints;
    let shared = Shared::default();
    install_panic_hook();
    let watchdog_shared = shared.clone();
    let data_fd = data.as_raw_fd();
    std::thread::Builder::new()
        .name("procpool-watchdog".into())
        .spawn(move || watchdog(control, data_fd, &watchdog_shared))?;

    let mut writer = data.try_clone()?;
    writer.write_all(
        &Hello {
            version: frame::PROTOCOL_VERSION,
            fingerprint: registry.fingerprint(),
            pid: std::process::id(),
        }
        .encode(),
    )?;

    let mut reader = BufReader::with_capacity(64 * 1024, data);
    let mut body = Vec::new();
    let mut out = Vec::new();
    let mut seq = 0u64;
    while frame::read_blocking(&mut reader, &mut body, max_frame)? {
        seq += 1;
        run_one(registry, &shared, seq, &body, &mut out)?;
        // One write per answer, before the next task starts: if that task
        // crashes the worker, the answers to all earlier ones have already
        // left, so the pool knows exactly which task was running.
        writer.write_all(&out)?;
    }
    Ok(())
}

/// Runs request `seq` (or skips it if it was cancelled) and leaves the
/// response frame in `out`.
fn run_one(
    registry: &Registry,
    shared: &Shared,
    seq: u64,
    body: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (kind, index, rest) = match body {
        [
            kind @ (frame::REQUEST | frame::CHUNK),
            a,
            b,
            c,
            d,
            rest @ ..,
        ] => (*kind, u32::from_le_bytes([*a, *b, *c, *d]), rest),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the pool sent a frame that is not a request",
            ));
        }
    };
    {
        let mut progress = lock(shared);
        progress.started = seq;
        let skip = progress.cancelled.remove(&seq);
        // Cancels for earlier requests can no longer matter.
        progress.cancelled = progress.cancelled.split_off(&seq);
        if skip {
            frame::start_answer(out, frame::SKIPPED, seq);
            frame::finish(out);
            return Ok(());
        }
        progress.running = Some(seq);
    }

    frame::start_answer(out, frame::OK, seq);
    out.extend_from_slice(&[0; 8]); // the run time, filled in below
    let began = Instant::now();
    let outcome = if kind == frame::CHUNK {
        run_chunk(registry, index, rest, out)
    } else {
        run_caught(registry, index, rest, out)
    };
    let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
    lock(shared).running = None;
    // A task's `print!` without a newline should not wait for the next one.
    let _ = io::stdout().flush();

    match outcome {
        Outcome::Done => {
            frame::set_ok_nanos(out, nanos);
        }
        Outcome::Failed(message) => {
            frame::start_answer(out, frame::FAILED, seq);
            out.extend_from_slice(message.as_bytes());
        }
        Outcome::Panicked(report) => {
            frame::start_answer(out, frame::PANIC, seq);
            encode_report(&report, out);
        }
    }
    frame::finish(out);
    Ok(())
}

/// What running one task produced.
enum Outcome {
    /// The encoded result was appended.
    Done,
    /// The task could not be run (bad arguments, unencodable result).
    Failed(String),
    /// The task panicked: message and location.
    Panicked((String, Option<String>)),
}

/// Runs task `index` on encoded `args`, catching a panic; on success the
/// encoded result is appended to `out`, otherwise `out` is left as it was.
fn run_caught(registry: &Registry, index: u32, args: &[u8], out: &mut Vec<u8>) -> Outcome {
    let mark = out.len();
    // A panic caught inside an earlier task must not lend its report here.
    LAST_PANIC.with(|last| last.borrow_mut().take());
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| registry.invoke(index, args, out)));
    if sys::IS_FORK_COPY.load(std::sync::atomic::Ordering::Relaxed) {
        // A copy the task made with fork() and let return (or panic): it
        // holds our socket and our queue of requests, and must not answer
        // them. It touches nothing shared on the way out (a lock another
        // thread held at the fork would never be released in the copy).
        sys::exit_now(0);
    }
    let outcome = match outcome {
        Ok(Ok(())) => return Outcome::Done,
        Ok(Err(message)) => Outcome::Failed(message),
        Err(payload) => {
            // The hook's record has the location, but it may belong to an
            // earlier panic that the task caught: `resume_unwind` re-raises
            // without calling the hook. Trust it only if it is this payload's.
            let message = panic_text(payload.as_ref());
            let recorded = LAST_PANIC.with(|last| last.borrow_mut().take());
            Outcome::Panicked(match recorded {
                Some((recorded, location)) if recorded == message => (message, location),
                _ => (message, None),
            })
        }
    };
    out.truncate(mark);
    outcome
}

/// Runs every item of a chunk, each on its own: a panic fails only its item.
fn run_chunk(registry: &Registry, index: u32, rest: &[u8], out: &mut Vec<u8>) -> Outcome {
    let items = match frame::chunk_items(rest) {
        Ok(items) => items,
        Err(message) => return Outcome::Failed(format!("malformed chunk: {message}")),
    };
    for item in items {
        let tag_at = out.len();
        out.extend_from_slice(&[0; 5]);
        let tag = match run_caught(registry, index, item, out) {
            Outcome::Done => frame::ITEM_OK,
            Outcome::Failed(message) => {
                out.extend_from_slice(message.as_bytes());
                frame::ITEM_FAILED
            }
            Outcome::Panicked(report) => {
                encode_report(&report, out);
                frame::ITEM_PANIC
            }
        };
        let Ok(len) = u32::try_from(out.len() - tag_at - 5) else {
            return Outcome::Failed(
                "a result in a chunk is over 4 GiB; submit it on its own".into(),
            );
        };
        out[tag_at] = tag;
        out[tag_at + 1..tag_at + 5].copy_from_slice(&len.to_le_bytes());
    }
    Outcome::Done
}

fn encode_report(report: &(String, Option<String>), out: &mut Vec<u8>) {
    let mark = out.len();
    if codec::encode_into(report, out).is_err() {
        out.truncate(mark);
        let fallback = (
            "a panic whose message could not be encoded".to_string(),
            None::<String>,
        );
        codec::encode_into(&fallback, out).expect("a plain string encodes");
    }
}

fn watchdog(mut control: UnixStream, data_fd: RawFd, shared: &Shared) {
    let mut pending = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        match sys::watch(control.as_raw_fd(), data_fd) {
            Ok(sys::Wake::Idle) => continue,
            Ok(sys::Wake::Control) => {}
            Ok(sys::Wake::PoolGone) | Err(_) => teardown(),
        }
        let n = match control.read(&mut chunk) {
            Ok(0) | Err(_) => teardown(),
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        let whole = pending.len() / 8 * 8;
        for seq in pending[..whole].chunks_exact(8) {
            let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
            let mut progress = lock(shared);
            if progress.running == Some(seq) {
                // Holding the lock: the task thread cannot start the next request.
                teardown();
            }
            if seq > progress.started {
                progress.cancelled.insert(seq);
            }
        }
        pending.drain(..whole);
    }
}

thread_local! {
    static IS_TASK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Panics on the task thread become data for the caller instead of text on
/// stderr; panics on any other thread keep the default report.
fn install_panic_hook() {
    IS_TASK_THREAD.with(|flag| flag.set(true));
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if IS_TASK_THREAD.with(|flag| flag.get()) {
            let message = panic_text(info.payload());
            let location = info.location().map(|location| location.to_string());
            LAST_PANIC.with(|last| *last.borrow_mut() = Some((message, location)));
        } else {
            previous(info);
        }
    }));
}

/// A panic payload as text: the `&str` or `String` that `panic!` makes.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}
