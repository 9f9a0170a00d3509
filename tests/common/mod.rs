//! Shared by the integration tests: the tasks they run, the runner (each
//! test binary is `harness = false`, so its `main` can call `procpool::init`
//! before anything else, as a worker must, and then hands its tests to
//! `libtest-mimic`), and process accounting to prove nothing is left behind.

#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::{Deserialize, Serialize};

mod manager;
pub use manager::*;

// ---- tasks ---------------------------------------------------------------

pub fn square(x: u64) -> u64 {
    x * x
}

pub fn product(a: u64, b: u64, c: u64) -> u64 {
    a * b * c
}

pub fn pid() -> u32 {
    std::process::id()
}

pub fn greet(name: String, times: usize) -> String {
    format!("hello, {name}! ").repeat(times)
}

/// Sleeps, then returns the worker's pid.
pub fn sleep_ms(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Sleeps, then creates `path`: proof that the task ran to the end.
pub fn sleep_then_touch(ms: u64, path: String) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::process::id()
}

/// Writes its pid to `path` at once, then sleeps: proof that it started.
pub fn touch_then_sleep(path: String, ms: u64) -> u32 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Starts `sleep 30` as a child, writes "worker_pid grandchild_pid" to
/// `path`, then sleeps: for proving that cancellation reaches grandchildren.
pub fn spawn_sleeper(path: String) -> u32 {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(&path, format!("{} {}", std::process::id(), child.id())).unwrap();
    child.wait().unwrap();
    std::process::id()
}

/// `sleep_ms` returning its argument, for lists of u64 tasks.
pub fn sleep_ms_u64(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

static GREETING: std::sync::Mutex<(String, u32)> = std::sync::Mutex::new((String::new(), 0));

/// An initializer: records a greeting and counts its runs in this worker.
pub fn set_greeting(greeting: String) {
    let mut state = GREETING.lock().unwrap();
    state.0 = greeting;
    state.1 += 1;
}

/// What `set_greeting` left in this worker.
pub fn greeting_and_count() -> (String, u32) {
    GREETING.lock().unwrap().clone()
}

/// Aborts its worker if `flag` does not exist yet (creating it), else
/// returns 2: a task that succeeds on its second run.
pub fn abort_first_time(flag: String) -> u64 {
    if std::fs::metadata(&flag).is_err() {
        std::fs::write(&flag, b"ran").unwrap();
        std::process::abort();
    }
    2
}

pub fn parse_or_panic(text: String) -> u64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

pub fn abort_on_1234(x: u64) -> u64 {
    if x == 1234 {
        std::process::abort();
    }
    x
}

pub fn panics(message: String) -> u64 {
    panic!("{message}")
}

/// Sleeps, then panics: a panic with a known run time.
pub fn sleep_then_panic(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("after {ms} ms")
}

/// Panics with a payload that is not a string.
pub fn panics_with_a_number() -> u64 {
    std::panic::panic_any(42u32)
}

pub fn aborts() -> u64 {
    std::process::abort()
}

pub fn segfaults() -> u64 {
    // SAFETY: resetting a signal's disposition and raising it have no
    // memory-safety preconditions; the crash is the point. (Rust's own SIGSEGV
    // handler, there to report stack overflows, would swallow a raised signal.)
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV's default action ends the process")
}

pub fn exits(code: i32) -> u64 {
    std::process::exit(code)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

pub fn echo(blob: Blob) -> Blob {
    blob
}

pub fn print_line(line: String) -> u32 {
    println!("{line}");
    std::process::id()
}

/// Writes `bytes` raw to every socket the worker holds, the pool's data
/// socket among them: garbage on the pipe, from inside a task.
pub fn scribble(bytes: Vec<u8>) -> u64 {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        // SAFETY: the fd is open (listed just now); ManuallyDrop keeps the
        // File from closing a socket that the worker owns.
        let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let _ = file.write_all(&bytes);
    }
    0
}

/// Sends `calls` echo calls of `bytes` bytes each from each of `threads`
/// threads at once, through the pool and back; returns how many came back
/// intact (frames from concurrent senders must stay whole).
pub fn echo_calls(threads: u32, calls: u32, bytes: u64) -> u32 {
    let intact: u32 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut intact = 0;
                    for c in 0..calls {
                        let fill = (t * 31 + c) as u8;
                        let sent = vec![fill; (bytes as usize) + (c as usize % 7)];
                        let back = procpool::__private::echo_through_pool(&sent).unwrap();
                        intact += u32::from(back == sent);
                    }
                    intact
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    intact
}

static BACKGROUND_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static BACKGROUND_BAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The (worker, sleeper) pids `spawn_sleeper` wrote to `path`, once it has.
pub async fn sleeper_pids(path: &str) -> (u32, u32) {
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some((worker, sleeper)) = text.split_once(' ')
        {
            return (worker.parse().unwrap(), sleeper.parse().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs 20,000 tiny tasks one per request, so that the workers start
/// their next tasks without arming their reader threads.
pub async fn run_many_short_tasks(pool: &procpool::Pool) {
    use futures::TryStreamExt;
    let squares: Vec<u64> = pool
        .map(square, 0..20_000u64)
        .chunk_size(1)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(squares.len(), 20_000);
}

/// Starts `threads` threads that outlive this task, each echoing `bytes`
/// bytes through the pool for ever, and returns at once.
pub fn start_background_callers(threads: u32, bytes: u64) -> u32 {
    use std::sync::atomic::Ordering::Relaxed;
    for t in 0..threads {
        std::thread::spawn(move || {
            for c in 0u64.. {
                let sent = vec![(t as u8).wrapping_add(c as u8); bytes as usize + c as usize % 5];
                match procpool::__private::echo_through_pool(&sent) {
                    Ok(back) if back == sent => {}
                    _ => {
                        BACKGROUND_BAD.fetch_add(1, Relaxed);
                    }
                }
                BACKGROUND_CALLS.fetch_add(1, Relaxed);
            }
        });
    }
    std::process::id()
}

/// Waits up to `limit_ms` for background callers to complete `more` calls;
/// returns the ms it took (`limit_ms + 1`: they did not), and the bad
/// replies so far.
pub fn wait_for_background_calls(more: u64, limit_ms: u64) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let start = std::time::Instant::now();
    let base = BACKGROUND_CALLS.load(Relaxed);
    while BACKGROUND_CALLS.load(Relaxed) < base + more {
        if start.elapsed() > Duration::from_millis(limit_ms) {
            return (limit_ms + 1, BACKGROUND_BAD.load(Relaxed));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    (
        start.elapsed().as_millis() as u64,
        BACKGROUND_BAD.load(Relaxed),
    )
}

/// Writes an echo CALL of `bytes` bytes to the worker's socket without
/// waiting for the reply, then aborts: the worker dies owed that reply.
pub fn call_then_abort(bytes: u64) -> u64 {
    let mut frame = (1 + 8 + 1 + bytes).to_le_bytes().to_vec();
    frame.push(0x30); // CALL
    frame.extend_from_slice(&1_000_000u64.to_le_bytes());
    frame.push(0); // the echo service
    frame.resize(frame.len() + bytes as usize, 0xAB);
    scribble(frame);
    std::process::abort()
}

/// A result of `bytes` bytes.
pub fn big_result(bytes: u64) -> Blob {
    Blob(vec![7; bytes as usize])
}

/// Builds a tokio runtime inside the task and runs a future on it: only
/// possible on a thread that is not already inside one.
pub fn runs_own_runtime(x: u64) -> u64 {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async move { x + 1 })
}

/// A value whose serialization always fails.
#[derive(Debug)]
pub struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be serialized",
        ))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

pub fn takes_unencodable(_: Unencodable) -> u64 {
    0
}

/// Starts three `sleep 600`s that try to outlive the worker in three ways
/// and writes their pids to `dir/in_group`, `dir/own_group` and
/// `dir/daemon`: one in the worker's process group, one in a process group
/// of its own, and a daemon (a double fork into a new session, reparented
/// away from the worker). Then `then`: "return" (its pid), "sleep" (60 s),
/// "abort" or "exit".
pub fn spawn_escapees(dir: String, then: String) -> u32 {
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let in_group = Command::new("sleep").arg("600").spawn().unwrap();
    let own_group = Command::new("sleep")
        .arg("600")
        .process_group(0)
        .spawn()
        .unwrap();
    // `setsid` makes a new session, and the shell backgrounds `sleep` and
    // exits: the sleep is orphaned, in a session of its own.
    let daemon = dir.join("daemon");
    let status = Command::new("setsid")
        .args([
            "sh",
            "-c",
            "sleep 600 & echo $! > \"$0\"",
            &daemon.to_string_lossy(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.join("in_group"), in_group.id().to_string()).unwrap();
    std::fs::write(dir.join("own_group"), own_group.id().to_string()).unwrap();
    // Left running on purpose: the point is what kills them.
    std::mem::forget((in_group, own_group));
    match then.as_str() {
        "return" => {}
        "sleep" => std::thread::sleep(Duration::from_secs(60)),
        "abort" => std::process::abort(),
        "exit" => std::process::exit(3),
        other => panic!("unknown then: {other}"),
    }
    std::process::id()
}

/// Forks without exec; the copy sleeps `secs` holding the worker's sockets,
/// and the worker aborts at once.
pub fn fork_then_abort(secs: u32) -> u64 {
    // SAFETY: after fork in a multi-threaded process the child calls only
    // async-signal-safe functions (sleep, _exit).
    unsafe {
        if libc::fork() == 0 {
            libc::sleep(secs);
            libc::_exit(0);
        }
    }
    std::process::abort()
}

/// Moves the worker into its parent's (the pool's) process group, then
/// sleeps `ms`: a task that tries to make the worker's kill reach the pool.
pub fn join_parent_group(ms: u64) -> u32 {
    // SAFETY: getppid, getpgid and setpgid take and return plain integers.
    let ret = unsafe { libc::setpgid(0, libc::getpgid(libc::getppid())) };
    assert_eq!(ret, 0, "setpgid: {}", std::io::Error::last_os_error());
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Stops its own worker with SIGSTOP (as SIGTTOU would), then returns.
pub fn stop_self() -> u32 {
    // SAFETY: raise(2) has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
    std::process::id()
}

/// Turns terminal echo off, as `stty -echo </dev/tty` does; returns what
/// happened.
pub fn echo_off() -> String {
    let tty = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(tty) => tty,
        Err(err) => return format!("no terminal: {err}"),
    };
    use std::os::fd::AsRawFd;
    // SAFETY: tcgetattr/tcsetattr read and write the termios struct we own,
    // on an fd open for the whole block.
    unsafe {
        let mut termios = std::mem::zeroed::<libc::termios>();
        if libc::tcgetattr(tty.as_raw_fd(), &mut termios) != 0 {
            return format!("tcgetattr: {}", std::io::Error::last_os_error());
        }
        termios.c_lflag &= !libc::ECHO;
        if libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, &termios) != 0 {
            return format!("tcsetattr: {}", std::io::Error::last_os_error());
        }
    }
    "echo is off".to_string()
}

/// Catches one panic, then re-raises another with `resume_unwind`.
pub fn panic_caught_then_resumed() -> u64 {
    let _ = std::panic::catch_unwind(|| panic!("the first panic, caught"));
    std::panic::resume_unwind(Box::new("the second panic, resumed"))
}

/// Forks, and both copies return: the copy must not answer for the worker.
pub fn fork_copy_returns() -> u32 {
    // SAFETY: fork has no memory-safety preconditions; the copy only returns
    // (into procpool's worker code, which must end it before anything else).
    unsafe { libc::fork() };
    std::process::id()
}

/// Has a child in a session of its own attach to the worker with ptrace
/// (hiding the worker's exit from its parent while it is traced), then
/// exits with code 3.
pub fn traced_then_exit() -> u64 {
    // SAFETY: after fork the copy calls only async-signal-safe functions.
    unsafe {
        let worker = libc::getpid();
        if libc::fork() == 0 {
            libc::setsid();
            libc::ptrace(libc::PTRACE_SEIZE, worker, 0, 0);
            libc::sleep(60);
            libc::_exit(0);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    std::process::exit(3)
}

/// An initializer that sleeps a minute if `path` exists.
pub fn sleep_if_exists(path: String) {
    if std::path::Path::new(&path).exists() {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// An initializer: caps this worker's address space at what it uses now
/// plus `headroom` bytes, so that receiving a larger request kills it.
pub fn cap_address_space(headroom: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let used_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let limit = used_kib * 1024 + headroom;
    let cap = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) }, 0);
}

/// Writes its pid to `path`, then spins for ever: a runaway task that only
/// a kill stops.
pub fn spin_forever(path: String) -> u64 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// The value of environment variable `name` in the worker.
pub fn read_env(name: String) -> Option<String> {
    std::env::var(name).ok()
}

pub fn len_of(text: String) -> usize {
    text.len()
}

// ---- channel tasks -------------------------------------------------------

use procpool::{Duplex, Queue, Receiver, Sender};

/// Sends `0..n` on `out`; returns how many it sent.
pub fn produce(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        out.blocking_send(i).unwrap();
    }
    n
}

/// Sums what comes until every sender is gone.
pub fn consume(input: Receiver<u64>) -> u64 {
    input.iter().map(Result::unwrap).sum()
}

/// Sends `count` messages of `bytes` bytes, each filled with its index.
pub fn send_blobs(count: u32, bytes: u64, out: Sender<Vec<u8>>) -> u32 {
    for i in 0..count {
        out.blocking_send(vec![i as u8; bytes as usize]).unwrap();
    }
    count
}

/// Sends `n` small messages, then starts one of `bytes` on another thread
/// and aborts the process after `ms`, part-way through it.
pub fn send_then_die_mid_message(n: u64, bytes: u64, ms: u64, out: Sender<Vec<u8>>) {
    for i in 0..n {
        out.blocking_send(vec![i as u8; 8]).unwrap();
    }
    let big = out.clone();
    std::thread::spawn(move || big.blocking_send(vec![0xAB; bytes as usize]));
    std::thread::sleep(Duration::from_millis(ms));
    std::process::abort();
}

/// Echoes every message back until the other end is gone, while sending
/// `extra` messages of its own of the same size at once (both directions
/// full); returns how many it echoed.
pub fn echo_pipe(end: Duplex<Vec<u8>, Vec<u8>>, extra: u32, bytes: u64) -> u32 {
    let (tx, rx) = end.split();
    let sender = tx.clone();
    let extra = std::thread::spawn(move || {
        for i in 0..extra {
            sender.blocking_send(vec![i as u8; bytes as usize]).unwrap();
        }
    });
    let mut echoed = 0;
    for message in rx.iter() {
        tx.blocking_send(message.unwrap()).unwrap();
        echoed += 1;
    }
    extra.join().unwrap();
    echoed
}

/// Takes jobs from `jobs` until a `None`, answering each on `done` with
/// `(job, pid)`; returns how many it took.
pub fn queue_worker(jobs: Queue<Option<u64>>, done: Sender<(u64, u32)>) -> u64 {
    let mut taken = 0;
    while let Some(job) = jobs.blocking_get().unwrap() {
        done.blocking_send((job, std::process::id())).unwrap();
        taken += 1;
    }
    taken
}

/// Tries to send after the receiver is gone: the error's text.
pub fn send_until_closed(out: Sender<u64>) -> String {
    for i in 0.. {
        if let Err(err) = out.blocking_send(i) {
            assert!(err.is_closed(), "{err}");
            return err.to_string();
        }
    }
    unreachable!()
}

/// Sends one message of `bytes` bytes: the send's error text, if any.
pub fn send_one_of(bytes: u64, out: Sender<Vec<u8>>) -> Result<(), String> {
    out.blocking_send(vec![3u8; bytes as usize])
        .map_err(|err| err.to_string())
}

/// Sends 1, then sleeps `ms` holding its sender.
pub fn send_one_then_hang(ms: u64, out: Sender<u64>) -> u64 {
    out.blocking_send(1).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    1
}

/// Logs one warning of `bytes` bytes.
pub fn log_huge(bytes: u64) -> u64 {
    tracing::warn!("{}", "x".repeat(bytes as usize));
    bytes
}

/// Waits for one item at most `ms`; `None` if it timed out.
pub fn get_within(ms: u64, queue: Queue<u64>) -> Option<u64> {
    match queue.get_timeout(Duration::from_millis(ms)) {
        Ok(n) => Some(n),
        Err(err) if err.is_timeout() => None,
        Err(err) => panic!("{err}"),
    }
}

/// Asks `queue` for an item and gives up at once (the ask stays), says so
/// on `ready`, waits `ms` (the item the parent puts then arrives meanwhile)
/// and lets go of the queue with the item unread: it is given back.
pub fn give_back_unread(queue: Queue<Blob>, ready: Sender<u64>, ms: u64) -> u32 {
    let err = queue.get_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    ready.blocking_send(1).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    drop(queue);
    std::process::id()
}

/// Asks `queue` for an item and gives up at once (the ask stays), says so
/// on `ready`, and lets go of the queue as soon as `go` says, while the
/// (large) item it asked for is still arriving.
pub fn give_back_when_told(queue: Queue<Blob>, ready: Sender<u64>, go: Receiver<u64>) -> u32 {
    let err = queue.get_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    ready.blocking_send(1).unwrap();
    go.blocking_recv().unwrap();
    drop(queue);
    std::process::id()
}

/// Holds `queue` (a sender of it), sending nothing, and aborts its worker.
pub fn hold_sender_then_abort(queue: Queue<Blob>) -> u64 {
    let _queue = queue;
    std::process::abort()
}

/// Makes `echo_calls(threads, calls, bytes)` while receiving every blob
/// on `input`: (intact echoes, bytes received).
pub fn echo_while_receiving(
    input: Receiver<Blob>,
    threads: u32,
    calls: u32,
    bytes: u64,
) -> (u32, u64) {
    let echoes = std::thread::spawn(move || echo_calls(threads, calls, bytes));
    let received = input.iter().map(|blob| blob.unwrap().0.len() as u64).sum();
    (echoes.join().unwrap(), received)
}

/// `give_back_when_told` with two asks standing: two threads each ask
/// `queue` for an item at the same time and give up.
pub fn two_asks_then_give_back_when_told(
    queue: Queue<Blob>,
    ready: Sender<u64>,
    go: Receiver<u64>,
) -> u32 {
    // Both wait at once (each asks for one more than are asked for).
    let both = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                both.wait();
                let err = queue.get_timeout(Duration::from_millis(300)).unwrap_err();
                assert!(err.is_timeout(), "{err}");
            });
        }
    });
    ready.blocking_send(1).unwrap();
    go.blocking_recv().unwrap();
    drop(queue);
    std::process::id()
}

/// Takes large items from `queue` until a `None`, giving up and asking
/// again every `ms` (each ask left standing gets an item it may give
/// back), answering each on `done` with its first 8 bytes; returns how
/// many it took.
pub fn impatient_large_getter(queue: Queue<Option<Blob>>, ms: u64, done: Sender<u64>) -> u64 {
    let mut taken = 0;
    loop {
        match queue.get_timeout(Duration::from_millis(ms)) {
            Ok(Some(blob)) => {
                let id = u64::from_le_bytes(blob.0[..8].try_into().unwrap());
                assert!(
                    blob.0[8..].iter().all(|&b| b == id as u8),
                    "item {id} mixed up"
                );
                done.blocking_send(id).unwrap();
                taken += 1;
            }
            Ok(None) => return taken,
            Err(err) if err.is_timeout() => {}
            Err(err) => panic!("{err}"),
        }
    }
}

/// Puts one small item on `queue`.
pub fn put_small(queue: Queue<Blob>) -> u32 {
    queue.blocking_put(Blob(vec![1; 8])).unwrap();
    std::process::id()
}

/// How many channels this worker keeps an entry for.
pub fn channels_known() -> u64 {
    procpool::__private::channels_known() as u64
}

/// Receives one message and drops its receiver.
pub fn recv_one(input: Receiver<u64>) -> u64 {
    input.blocking_recv().unwrap()
}

/// Asks for a large message, then for a small one on another channel, and
/// says whether the large one was still arriving when the small one came
/// (its size, if it was; 0 if it had come first).
pub fn small_behind_large(large: Receiver<Blob>, small: Receiver<u64>) -> u64 {
    // Posts the ask for the large message, which then stays asked.
    let timed_out = large.recv_timeout(Duration::from_millis(1));
    assert!(timed_out.unwrap_err().is_timeout());
    assert_eq!(small.blocking_recv().unwrap(), 1);
    match large.try_recv().unwrap() {
        Some(_) => 0,
        None => large.blocking_recv().unwrap().0.len() as u64,
    }
}

// ---- log tasks -----------------------------------------------------------

/// Emits `n` info events (and debug ones, below the forwarded level);
/// returns its pid.
pub fn log_lines(n: u64) -> u32 {
    for i in 0..n {
        tracing::info!(i, "line");
        tracing::debug!(i, "detail");
    }
    tracing::warn!(target: "custom::target", "last");
    std::process::id()
}

/// Logs `n` info records through the `log` crate (and debug ones, below
/// the forwarded level); returns its pid.
pub fn log_records(n: u64) -> u32 {
    for i in 0..n {
        log::info!(target: "some::crate", "record {i}");
        log::debug!("detail {i}");
    }
    std::process::id()
}

pub mod shared;
pub use shared::*;

pub fn tasks() -> procpool::Registry {
    procpool::tasks![
        count_up,
        lock_add,
        hold_lock,
        wait_for_lock,
        hold_lease,
        try_lease,
        sum_table,
        hold_table,
        attack_table,
        table_seen,
        square,
        add_one,
        add_one_unless_13,
        update_string,
        count_rounds,
        burst_until_killed,
        get_after_shutdown,
        update_unlucky,
        big_round_trip,
        raw_manager_call,
        acquire_then_abort,
        try_lock,
        take_within,
        put_n,
        flood,
        fetch_adds_ahead,
        inserts_dropped_unwaited,
        acquire_sent_then_dropped,
        send_ahead_until_killed,
        wait_from_threads,
        extend_both,
        fetch_adds_sent_then_return,
        spawn_sender_and_return,
        send_ahead_then_len,
        items_of_big,
        get_big_sent_ahead,
        get_big_item,
        regions_and_fds,
        leak_shared_mib,
        extend_edges,
        puts_sent_ahead,
        stash_table,
        sum_stashed,
        sleep_then_get,
        channels_known,
        log_records,
        small_behind_large,
        product,
        pid,
        greet,
        sleep_ms,
        sleep_then_touch,
        touch_then_sleep,
        panics,
        panics_with_a_number,
        sleep_then_panic,
        aborts,
        segfaults,
        exits,
        echo,
        print_line,
        scribble,
        takes_unencodable,
        spawn_sleeper,
        allocate_until_killed,
        overflow_stack,
        close_stdio,
        write_stdout,
        spawn_child_then_panic,
        parse_or_panic,
        abort_on_1234,
        sleep_ms_u64,
        set_greeting,
        greeting_and_count,
        abort_first_time,
        square_once,
        record_then_abort,
        spawn_escapees,
        fork_then_abort,
        join_parent_group,
        stop_self,
        echo_off,
        panic_caught_then_resumed,
        len_of,
        fork_copy_returns,
        traced_then_exit,
        sleep_if_exists,
        cap_address_space,
        echo_calls,
        runs_own_runtime,
        big_result,
        start_background_callers,
        wait_for_background_calls,
        call_then_abort,
        produce,
        consume,
        send_blobs,
        send_then_die_mid_message,
        echo_pipe,
        queue_worker,
        send_until_closed,
        get_within,
        log_lines,
        send_one_of,
        log_huge,
        send_one_then_hang,
        recv_one,
        spin_forever,
        read_env,
        allocate_mib,
        leak_mib,
        start_big,
        reserve_bytes,
        vm_size_and_rss_kib,
        until_cancelled,
        ignores_cancel,
        touch_then_wait_for,
        give_back_unread,
        give_back_when_told,
        put_small,
        hold_sender_then_abort,
        echo_while_receiving,
        two_asks_then_give_back_when_told,
        impatient_large_getter,
        reverse_frames,
        cubes,
        reverse_bytes,
        reverse_vec,
        pattern_vec,
        checksum_vec,
        bytes_over_a_channel,
        checksum_after_first_abort,
        killed_while_answering,
    ]
}

/// Out-of-band buffers nested in a struct, as tasks take and return them.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Frames {
    pub name: String,
    pub pixels: procpool::Bytes,
    pub samples: procpool::Buffer<f32>,
    pub more: Vec<procpool::Bytes>,
    pub maybe: Option<procpool::Buffer<u64>>,
}

/// Reverses every buffer in `frames`: what comes back proves what arrived.
pub fn reverse_frames(frames: Frames) -> Frames {
    let reversed = |bytes: procpool::Bytes| {
        let mut bytes = bytes.into_vec();
        bytes.reverse();
        procpool::Bytes::from(bytes)
    };
    Frames {
        name: frames.name.chars().rev().collect(),
        pixels: reversed(frames.pixels),
        samples: frames.samples.iter().rev().copied().collect(),
        more: frames.more.into_iter().map(reversed).collect(),
        maybe: frames.maybe.map(|m| m.iter().rev().copied().collect()),
    }
}

/// The seeds' benchmark task: the cubes of `0..n`, as a typed buffer.
pub fn cubes(n: u64) -> procpool::Buffer<u64> {
    (0..n).map(|i| i * i * i).collect()
}

/// Reverses a buffer in place (the task owns it: no copy).
pub fn reverse_bytes(bytes: procpool::Bytes) -> procpool::Bytes {
    let mut bytes = bytes.into_vec();
    bytes.reverse();
    bytes.into()
}

/// Reverses a plain `Vec<u8>`.
pub fn reverse_vec(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

/// `n` bytes of a pattern [`checksum_vec`] can check.
pub fn pattern_vec(n: u64) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A checksum of `bytes` that notices order: `pattern_vec(n)` gives
/// `pattern_checksum(n)`.
pub fn checksum_vec(bytes: Vec<u8>) -> u64 {
    bytes.iter().enumerate().fold(0u64, |sum, (i, &b)| {
        sum.wrapping_mul(31).wrapping_add(b as u64 ^ i as u64)
    })
}

/// Aborts its worker the first time (`flag` does not exist yet), then
/// returns the checksum of `bytes`: the retry must get the same bytes.
pub fn checksum_after_first_abort(flag: String, bytes: procpool::Bytes) -> u64 {
    abort_first_time(flag);
    checksum_vec(bytes.into_vec())
}

/// Returns `bytes` bytes, and SIGKILLs its own worker 20 ms into sending
/// them: the pool sees a death part-way through an attachment.
pub fn killed_while_answering(bytes: u64) -> Vec<u8> {
    let result = vec![1u8; bytes as usize];
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: kill(2) with our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    });
    result
}

/// Sends `count` buffers of `bytes` bytes to the parent over `out`.
pub fn bytes_over_a_channel(count: u32, bytes: u64, out: procpool::Sender<procpool::Bytes>) -> u32 {
    for i in 0..count {
        let buffer: procpool::Bytes = (0..bytes).map(|j| (i as u64 + j) as u8).collect();
        out.blocking_send(buffer).unwrap();
    }
    count
}

/// A function deliberately left out of `tasks()`.
pub fn not_registered(x: u64) -> u64 {
    x
}

// ---- runner --------------------------------------------------------------

pub type TestFn = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// Lists test functions for [`run`].
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|| Box::pin($name()) as ::std::pin::Pin<Box<dyn ::std::future::Future<Output = ()>>>) as $crate::common::TestFn)),*]
    };
}

/// The `main` of a test binary: serve as a worker if we are one, play a role
/// if a test asked for one, otherwise hand the tests to `libtest-mimic`, which
/// takes libtest's arguments (filters, `--exact`, `--skip`, `--list`,
/// `--ignored`, `--format`, ...) and prints libtest's output, so `cargo test`
/// and `cargo nextest` drive these binaries like any others. Each test runs on
/// a fresh multi-thread runtime and fails if any process is left after it.
pub fn run(tests: &[(&str, TestFn)], roles: fn(&str)) {
    run_unless(tests, roles, |_| None)
}

/// [`run`], with the tests for which `skip` gives a reason marked ignored
/// (libtest's `ignored`, visible in the summary), the reason printed once
/// per test: a test that cannot run here says so rather than passing.
pub fn run_unless(tests: &[(&str, TestFn)], roles: fn(&str), skip: fn(&str) -> Option<String>) {
    if let Ok(version) = std::env::var(FAKE_WORKER) {
        fake_worker(version.parse().unwrap());
    }
    if std::env::var_os(SKIP_INIT).is_some() {
        // A program that forgot `init`: building a pool must refuse.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let built = runtime.block_on(procpool::Pool::builder().workers(1).build());
        std::process::exit(if built.is_err_and(|e| e.is_spawn()) {
            42
        } else {
            1
        });
    }
    // Before the harness parses anything: the pool re-executes this binary as
    // its workers, and in a worker `init` serves tasks and never returns.
    if std::env::var_os(ALT_REGISTRY).is_some() {
        procpool::init(procpool::tasks![square]);
    } else if std::env::var_os(INIT_IN_RUNTIME).is_some() {
        // As `#[tokio::main] async fn main() { procpool::init(..) }` does.
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { procpool::init(tasks()) });
    } else {
        procpool::init(tasks());
    }
    if let Ok(role) = std::env::var(ROLE) {
        roles(&role);
        return;
    }
    let mut args = libtest_mimic::Arguments::from_args();
    // One test at a time unless `--test-threads` says otherwise: the check
    // after each test counts every child of this process (every descendant,
    // as a subreaper), so a test running beside it would have its workers
    // blamed on it. libtest would default to one thread per core (and read
    // RUST_TEST_THREADS, which libtest-mimic does not); nextest runs each test
    // in a process of its own, so it gets its parallelism anyway.
    match args.test_threads {
        None => args.test_threads = Some(1),
        Some(n) if n > 1 && !args.list => eprintln!(
            "warning: --test-threads={n}: the leftover-process check after each \
             test sees the other tests' processes too, and may fail the wrong test"
        ),
        Some(_) => {}
    }
    become_subreaper();
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            let reason = skip(name);
            if let Some(reason) = &reason {
                eprintln!("skipped: {name}: {reason}");
            }
            libtest_mimic::Trial::test(name, move || run_one(test))
                .with_ignored_flag(reason.is_some())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Runs one test on a fresh 2-thread runtime, then waits for every process
/// it started to be gone: a panic or a leftover process fails it.
fn run_one(test: TestFn) -> Result<(), libtest_mimic::Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(AssertUnwindSafe(test()).catch_unwind());
    drop(runtime);
    let leftovers = wait_for_no_children(Duration::from_secs(3));
    let leftovers = (!leftovers.is_empty()).then(|| {
        kill_leftovers(&leftovers);
        format!("processes left behind: {leftovers:?}")
    });
    match (outcome, leftovers) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(leftovers)) => Err(leftovers.into()),
        (Err(panic), None) => Err(format!("test panicked: {}", panic_text(panic.as_ref())).into()),
        (Err(panic), Some(leftovers)) => Err(format!(
            "test panicked: {}\nand {leftovers}",
            panic_text(panic.as_ref())
        )
        .into()),
    }
}

/// SIGKILLs the processes a failed test left behind (and whatever they hand
/// us as they die), so that they are blamed on that test alone, not on the
/// next one's check, and hold no pipe of the runner's open.
fn kill_leftovers(leftovers: &[(u32, char, String)]) {
    let mut left: Vec<u32> = leftovers.iter().map(|&(pid, ..)| pid).collect();
    for _ in 0..3 {
        for &pid in &left {
            // SAFETY: kill takes plain integers. Each pid is our child, not yet
            // reaped, so it cannot have been reused by a stranger.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        left = wait_for_no_children(Duration::from_secs(1))
            .into_iter()
            .map(|(pid, ..)| pid)
            .collect();
        if left.is_empty() {
            return;
        }
    }
}

/// Environment variable that makes a test binary play a role (see `run`).
pub const ROLE: &str = "PROCPOOL_TEST_ROLE";
/// Makes a test binary register a different task list.
pub const ALT_REGISTRY: &str = "PROCPOOL_TEST_ALT_REGISTRY";
/// Makes a test binary call `init` inside a tokio runtime.
pub const INIT_IN_RUNTIME: &str = "PROCPOOL_TEST_INIT_IN_RUNTIME";
/// Makes a test binary skip `init` and try to build a pool.
pub const SKIP_INIT: &str = "PROCPOOL_TEST_SKIP_INIT";
/// Makes a test binary answer a pool's handshake with this protocol version.
pub const FAKE_WORKER: &str = "PROCPOOL_TEST_FAKE_WORKER";

/// Says hello with protocol `version` on the socket a pool gave us, then
/// lingers until the pool hangs up.
fn fake_worker(version: u32) -> ! {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    assert!(
        std::env::var_os("PROCPOOL_WORKER").is_some(),
        "started by a pool"
    );
    // SAFETY: the pool made our stdin its socket; nothing else uses fd 0 here.
    let mut socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) };
    let mut body = vec![0x10];
    body.extend_from_slice(&0u64.to_le_bytes()); // id
    body.extend_from_slice(b"procpool");
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&std::process::id().to_le_bytes());
    let mut frame = (body.len() as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    socket.write_all(&frame).unwrap();
    let _ = socket.read(&mut [0; 16]);
    std::process::exit(0);
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

// ---- process accounting --------------------------------------------------

/// The children of `parent` as (pid, state letter), zombies included.
/// Peak resident set size of this process so far, in KiB (VmHWM).
pub fn peak_rss_kib() -> u64 {
    vm_hwm_kib("/proc/self/status")
}

/// Resets the peak RSS to the current RSS (Linux 4.0+); `false` if refused,
/// in which case VmHWM is the peak over the whole run.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak RSS of process `pid` so far, in KiB.
pub fn peak_rss_kib_of(pid: u32) -> u64 {
    vm_hwm_kib(&format!("/proc/{pid}/status"))
}

fn vm_hwm_kib(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in a status file")
}

/// Starts this program in `role` and reads the first line it prints.
pub fn start_role(role: &str) -> (std::process::Child, String) {
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(parent.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (parent, line)
}

pub fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may hold spaces and parens.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split(' ');
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == parent {
            found.push((pid, state));
        }
    }
    found
}

/// Makes this process the reaper of its orphaned descendants, so that a
/// process that escaped its worker (a double-forked daemon, a `setsid` child
/// whose worker died) becomes our child instead of init's, and the check
/// after each test sees it.
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) reads only its integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(
        ret,
        0,
        "PR_SET_CHILD_SUBREAPER: {}",
        std::io::Error::last_os_error()
    );
}

/// Waits up to `limit` for this process to have no live children (every
/// descendant, since we are a subreaper); returns those left, with their
/// command lines. Dead orphans handed to us are reaped on the way: the pools
/// are gone by now, so no zombie here is a worker someone else will reap.
pub fn wait_for_no_children(limit: Duration) -> Vec<(u32, char, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let mut left = Vec::new();
        for (pid, state) in children_of(std::process::id()) {
            if state == 'Z' {
                // SAFETY: waitpid writes only to the status int we pass.
                unsafe { libc::waitpid(pid as i32, &mut 0, libc::WNOHANG) };
            } else {
                let command = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                    .unwrap_or_default();
                left.push((pid, state, command.trim().to_string()));
            }
        }
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process with this pid exists (a zombie counts as gone).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `limit` for `pid` to be gone.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

pub async fn pool(workers: usize) -> procpool::Pool {
    procpool::Pool::builder()
        .workers(workers)
        .build()
        .await
        .expect("pool starts")
}

/// Runs this test program again in `role` (see `run`), set up further by
/// `configure`, and collects its output, off the async threads.
pub async fn run_role(
    role: &'static str,
    configure: fn(&mut std::process::Command),
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.env(ROLE, role);
        configure(&mut command);
        command.output().unwrap()
    })
    .await
    .unwrap()
}

/// The pids `spawn_escapees` wrote to `dir`, waiting for them to appear.
pub async fn escapees(dir: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for name in ["in_group", "own_group", "daemon"] {
        let path = format!("{dir}/{name}");
        pids.push(wait_for_pid_file(&path).await);
    }
    pids
}

/// Whether cgroup containment can be had here; when it cannot, a test that
/// needs it says so and passes only if we are not root (as root on Linux
/// 5.14+ with cgroup v2 mounted, as in CI, it must work).
pub async fn cgroup_pool(workers: usize) -> Option<procpool::Pool> {
    let built = procpool::Pool::builder()
        .workers(workers)
        .stderr(procpool::Redirect::Null)
        .containment(procpool::Containment::Cgroup)
        .build()
        .await;
    match built {
        Ok(pool) => Some(pool),
        // SAFETY: geteuid has no preconditions.
        Err(err) if unsafe { libc::geteuid() } != 0 => {
            println!("skipped: no cgroup for the workers here ({err})");
            None
        }
        Err(err) => panic!("as root, cgroup containment must work: {err}"),
    }
}

/// A fresh path in the temp dir for marker files.
pub fn marker(tag: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("procpool-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path.to_string_lossy().into_owned()
}

/// Polls for the pid a `touch_then_sleep` task writes when it starts.
pub async fn wait_for_pid_file(path: &str) -> u32 {
    for _ in 0..2000 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the task never started");
}

// ---- fault-injection tasks (tests/chaos.rs, tests/faults.rs) -------------

/// Caps this worker's address space at `limit` bytes (RLIMIT_AS, so the
/// machine is safe), then allocates and touches 8 MiB blocks until an
/// allocation fails, which aborts the process. Never returns normally.
pub fn allocate_until_killed(limit: u64) -> u64 {
    let cap = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) };
    assert_eq!(ret, 0, "setrlimit: {}", std::io::Error::last_os_error());
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 8 << 20];
        // Write to every page, so the memory is really there.
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(std::hint::black_box(block));
        // More than the limit: allocation has stopped failing somehow.
        if blocks.len() as u64 * (8 << 20) > limit * 2 {
            return blocks.len() as u64;
        }
    }
}

/// Recurses without end, 16 KiB of stack a level: a stack overflow.
pub fn overflow_stack(depth: u64) -> u64 {
    let mut frame = [0u8; 16 * 1024];
    frame[(depth as usize) % frame.len()] = depth as u8;
    std::hint::black_box(&mut frame);
    // Never true, but the compiler cannot know: keeps the recursion honest
    // and not a tail call.
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    overflow_stack(depth + 1) + u64::from(frame[(depth as usize * 7) % frame.len()])
}

/// Closes the worker's stdin, stdout and stderr, then returns its pid.
pub fn close_stdio() -> u32 {
    // SAFETY: closing fds 0-2 has no memory-safety preconditions; std's
    // stdio handles treat a closed descriptor as a sink.
    unsafe {
        libc::close(0);
        libc::close(1);
        libc::close(2);
    }
    std::process::id()
}

/// Writes `bytes` bytes of text to stdout; returns how many it wrote.
pub fn write_stdout(bytes: u64) -> u64 {
    use std::io::Write;
    let line = [b'x'; 1023]
        .iter()
        .chain(b"\n")
        .copied()
        .collect::<Vec<u8>>();
    let mut out = std::io::stdout().lock();
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(line.len());
        out.write_all(&line[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
    bytes
}

/// Starts `sleep 30` as a child, then panics with the child's pid in the
/// message ("spawned <pid>").
// The child is never waited for: it is left running on purpose, for the
// worker's exit (which kills its process group) to end.
#[allow(clippy::zombie_processes)]
pub fn spawn_child_then_panic() -> u64 {
    let child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    panic!("spawned {}", child.id())
}

/// Awaits `future`, failing the test with `what` if it takes longer than
/// `limit`: a hang becomes a clear failure instead of a stuck run.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("hang: {what} did not finish within {limit:?}"),
    }
}

/// A tiny seeded PRNG (xorshift64*), so the fault tests need no `rand` and
/// replay the same choices for the same seed.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Mix the seed so that nearby seeds give unrelated streams; never zero.
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

/// Records its run, sleeps `micros` microseconds, then returns `x * x`.
///
/// The record is the file `dir/x`, made with `create_new`; a second run of the
/// same `x` finds it there and makes `dir/x.again` instead: proof that a task
/// ran twice, even if nobody was left waiting for its second result.
pub fn square_once(x: u64, micros: u64, dir: String) -> u64 {
    let path = std::path::Path::new(&dir).join(x.to_string());
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::File::create(path.with_extension("again"));
        }
        Err(err) => panic!("{}: {err}", path.display()),
    }
    if micros > 0 {
        std::thread::sleep(Duration::from_micros(micros));
    }
    x * x
}

/// Writes its pid to `path`, then waits (up to a minute) for `release` to
/// exist: a task that holds its worker until the test lets it go.
pub fn touch_then_wait_for(path: String, release: String) -> u32 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    for _ in 0..60_000 {
        if std::path::Path::new(&release).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::process::id()
}

// ---- graceful cancellation (tests/cancel.rs) ------------------------------

/// Writes its pid to `started`, then waits (up to a minute) for its
/// cancellation; when it comes, writes "clean" to `done` and returns.
pub fn until_cancelled(started: String, done: String) -> u32 {
    std::fs::write(&started, std::process::id().to_string()).unwrap();
    for _ in 0..60_000 {
        if procpool::cancelled() {
            std::fs::write(&done, "clean").unwrap();
            return std::process::id();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("never cancelled");
}

/// Like `until_cancelled`, but after writing `seen` it keeps running: a
/// task that ignores its cancellation.
pub fn ignores_cancel(started: String, seen: String) -> u32 {
    std::fs::write(&started, std::process::id().to_string()).unwrap();
    while !procpool::cancelled() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::write(&seen, "seen").unwrap();
    std::thread::sleep(Duration::from_secs(600));
    std::process::id()
}

// ---- memory tasks (tests/memory.rs) --------------------------------------

/// Allocates `mib` MiB in 1 MiB blocks, touching every page, and frees them:
/// returns `mib`, or dies trying under a memory cap.
pub fn allocate_mib(mib: u64) -> u64 {
    let blocks = touched_blocks(mib);
    blocks.len() as u64
}

/// Allocates and touches `mib` MiB and never frees them: a leak.
pub fn leak_mib(mib: u64) -> u32 {
    std::mem::forget(touched_blocks(mib));
    std::process::id()
}

fn touched_blocks(mib: u64) -> Vec<Vec<u8>> {
    (0..mib)
        .map(|_| {
            let mut block = vec![0u8; 1 << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(block)
        })
        .collect()
}

/// Reserves `bytes` in one allocation (untouched): its length, or an
/// allocation failure.
pub fn reserve_bytes(bytes: u64) -> u64 {
    let block: Vec<u8> = Vec::with_capacity(bytes as usize);
    std::hint::black_box(&block);
    block.capacity() as u64
}

/// This worker's address space and resident set, in KiB.
pub fn vm_size_and_rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmSize:"), field("VmRSS:"))
}

/// An initializer that leaks `mib` MiB: a worker born big.
pub fn start_big(mib: u64) {
    leak_mib(mib);
}

/// Appends a line to `path`, then aborts: a crash whose every run is counted.
pub fn record_then_abort(path: String) -> u64 {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .unwrap();
    file.write_all(b"ran\n").unwrap();
    drop(file);
    std::process::abort()
}
