//! Chaos soak: 10,000 quick tasks, submitted from several tokio tasks, while
//! another tokio task SIGKILLs random workers from outside every 20–50 ms.
//! Every handle resolves — to its correct value, or to "the worker died of
//! SIGKILL" — none hangs, nothing else goes wrong, no task runs twice (a task
//! is at most once), the counters add up, the pool serves normally
//! afterwards, and no process is left behind. With retries on, every one of
//! the 10,000 succeeds.
//!
//! Deterministic up to timing: the task mix, the kill intervals and the choice
//! of victim come from one seed (set `PROCPOOL_CHAOS_SEED` to replay another).
//!
//! A third test replays one thing the soak can run into by chance: a
//! replacement worker SIGKILLed while it is still starting up, at a moment
//! when no other worker is live.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use common::*;

fn main() {
    run(
        tests![
            every_handle_resolves_while_workers_are_sigkilled_at_random,
            with_retries_every_task_succeeds_while_workers_are_sigkilled,
            a_worker_killed_while_starting_does_not_fail_queued_tasks,
        ],
        |_| {},
    );
}

const TASKS: u64 = 10_000;
const SUBMITTERS: u64 = 8;
const WORKERS: usize = 2;
/// Handles each submitter keeps outstanding, so submission goes on all
/// through the soak instead of queueing everything up front.
const WINDOW: usize = 64;
const FINAL_BATCH: u64 = 100;
/// Enough that a task is practically never killed this many times in a row.
const RETRIES: u32 = 5;
const DEFAULT_SEED: u64 = 0x0C4A_05C4_A05C_4A05;

fn seed() -> u64 {
    std::env::var("PROCPOOL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// What one submitter saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    died: u64,
    /// Anything other than the right value or a SIGKILL death.
    unexpected: Vec<String>,
}

/// Submits every `SUBMITTERS`-th task from `first`, keeping `WINDOW` in
/// flight, and checks each outcome. Each task records its runs in `runs`.
async fn submit_and_check(pool: procpool::Pool, first: u64, seed: u64, runs: String) -> Tally {
    let mut rng = XorShift::new(seed.wrapping_add(first + 1));
    let mut tally = Tally::default();
    let mut outstanding = FuturesUnordered::new();
    let mut ids = (first..TASKS).step_by(SUBMITTERS as usize);
    loop {
        while outstanding.len() < WINDOW {
            let Some(i) = ids.next() else { break };
            // Half are instant; the rest sleep 0-2 ms.
            let micros = if rng.next_u64().is_multiple_of(2) {
                0
            } else {
                rng.between(0, 2_000)
            };
            let handle = pool.submit(square_once, (i, micros, runs.clone()));
            outstanding.push(async move { (i, handle.await) });
        }
        let Some((i, outcome)) = outstanding.next().await else {
            break;
        };
        match outcome {
            Ok(value) if value == i * i => tally.ok += 1,
            Ok(value) => tally
                .unexpected
                .push(format!("task {i}: wrong value {value}")),
            Err(err) if err.is_worker_died() && err.signal() == Some(libc::SIGKILL) => {
                tally.died += 1
            }
            Err(err) => tally.unexpected.push(format!(
                "task {i}: {err} (worker_died={}, spawn={}, protocol={}, shutdown={}, signal={:?})",
                err.is_worker_died(),
                err.is_spawn(),
                err.is_protocol(),
                err.is_shutdown(),
                err.signal()
            )),
        }
    }
    tally
}

/// SIGKILLs a random child of this process (all of them are workers, some
/// perhaps still starting) every 20-50 ms until told to stop; returns the
/// pids it killed.
async fn kill_workers_at_random(seed: u64, stop: Arc<AtomicBool>) -> Vec<u32> {
    let mut rng = XorShift::new(seed);
    let mut killed = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.between(20, 50))).await;
        let mut victims: Vec<u32> = children_of(std::process::id())
            .into_iter()
            .filter(|&(_, state)| state != 'Z')
            .map(|(pid, _)| pid)
            .collect();
        victims.sort_unstable();
        if victims.is_empty() {
            continue;
        }
        let victim = victims[(rng.next_u64() % victims.len() as u64) as usize];
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(victim as i32, libc::SIGKILL) } == 0 {
            killed.push(victim);
        }
    }
    killed
}

/// Whether `pid` is gone entirely: dead and reaped (a zombie still counts).
fn is_reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes a directory when dropped, even if the test fails first.
struct RemoveDirOnDrop(String);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The files in `dir`: how many tasks ran, and which ran more than once.
fn read_runs(dir: &str) -> (u64, Vec<u64>) {
    let mut ran = 0;
    let mut twice = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        match name.strip_suffix(".again") {
            Some(id) => twice.push(id.parse().unwrap()),
            None => ran += 1,
        }
    }
    twice.sort_unstable();
    (ran, twice)
}

async fn every_handle_resolves_while_workers_are_sigkilled_at_random() {
    soak(0).await;
}

async fn with_retries_every_task_succeeds_while_workers_are_sigkilled() {
    soak(RETRIES).await;
}

/// The soak, with `retries` for tasks whose worker dies.
async fn soak(retries: u32) {
    let seed = seed();
    println!("chaos seed {seed} (PROCPOOL_CHAOS_SEED to replay another), retries {retries}");
    let pool = procpool::Pool::builder()
        .workers(WORKERS)
        .retries(retries)
        .stderr(procpool::Redirect::Null)
        .build()
        .await
        .expect("pool starts");
    let runs = marker("chaos-runs");
    std::fs::create_dir(&runs).unwrap();
    let _cleanup = RemoveDirOnDrop(runs.clone());
    let began = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let killer = tokio::spawn(kill_workers_at_random(seed, stop.clone()));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|first| tokio::spawn(submit_and_check(pool.clone(), first, seed, runs.clone())))
        .collect();
    let tallies = within(
        Duration::from_secs(60),
        "the chaos soak (some task handle never resolved)",
        futures::future::join_all(submitters),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let killed = within(Duration::from_secs(5), "the killer", killer)
        .await
        .unwrap();
    let soak_time = began.elapsed();

    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally.expect("a submitter panicked");
        total.ok += tally.ok;
        total.died += tally.died;
        total.unexpected.extend(tally.unexpected);
    }
    let stats = pool.stats();
    println!(
        "soak: {TASKS} tasks in {soak_time:.2?}: {} ok, {} died of SIGKILL, {} unexpected; \
         {} kills, {} respawns, {} retried",
        total.ok,
        total.died,
        total.unexpected.len(),
        killed.len(),
        stats.respawns,
        stats.retried
    );
    assert!(
        total.unexpected.is_empty(),
        "{} tasks ended otherwise than with their value or a SIGKILL death; first ones:\n{}",
        total.unexpected.len(),
        total.unexpected[..total.unexpected.len().min(10)].join("\n")
    );
    assert_eq!(total.ok + total.died, TASKS, "every handle resolved");
    assert!(
        killed.len() >= 10,
        "the chaos happened: {} kills",
        killed.len()
    );
    if retries == 0 {
        assert!(total.died > 0, "some kill hit a running task");
    } else {
        assert_eq!(total.died, 0, "with retries, every task succeeds");
        assert!(stats.retried > 0, "some task was retried");
    }
    assert_eq!(
        (stats.completed, stats.failed),
        (total.ok, total.died),
        "the pool's counters match what the callers saw"
    );

    // Let the last victims be noticed and reaped, and their slots refilled,
    // so that the final batch meets only healthy workers.
    within(Duration::from_secs(10), "the pool recovering", async {
        while !killed.iter().all(|&pid| is_reaped(pid)) || pool.stats().alive < WORKERS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let batch: Vec<_> = (TASKS..TASKS + FINAL_BATCH)
        .map(|i| pool.submit(square_once, (i, 0, runs.clone())))
        .collect();
    let results = within(
        Duration::from_secs(10),
        "the final batch",
        futures::future::join_all(batch),
    )
    .await;
    for (i, result) in (TASKS..).zip(results) {
        assert_eq!(
            result.unwrap_or_else(|err| panic!("final task {i} failed: {err}")),
            i * i
        );
    }

    let stats = pool.stats();
    assert_eq!(
        stats.completed + stats.failed,
        TASKS + FINAL_BATCH,
        "completed + failed == submitted ({stats:?})"
    );
    assert_eq!(stats.failed, total.died, "the final batch all succeeded");
    within(Duration::from_secs(10), "shutdown", pool.shutdown()).await;

    let (ran, twice) = read_runs(&runs);
    assert!(
        ran >= total.ok + FINAL_BATCH,
        "every task that returned a value ran: {ran} runs recorded"
    );
    // A retried task may have run before its worker died; otherwise a task
    // runs at most once.
    if retries == 0 {
        assert!(
            twice.is_empty(),
            "{} tasks ran twice without retries (at most once is promised), e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(10)]
        );
    }
}

/// The soak can SIGKILL a replacement worker before its handshake, at a
/// moment when no other worker is live. That is one failed start, caused from
/// outside, not "no worker can be started": a task waiting in the queue must
/// wait for the next replacement and run, not fail with a spawn error.
///
/// The kill races the replacement's start-up, so the scenario is played a few
/// times; when the kill lands after the handshake instead, the queued task may
/// legitimately die with the replacement.
async fn a_worker_killed_while_starting_does_not_fail_queued_tasks() {
    const ROUNDS: usize = 5;
    let me = std::process::id();
    for round in 0..ROUNDS {
        let pool = procpool::Pool::builder()
            .workers(1)
            .max_in_flight_per_worker(1)
            .stderr(procpool::Redirect::Null)
            .build()
            .await
            .expect("pool starts");
        let started = marker("starting");
        let running = pool.submit(touch_then_sleep, (started.clone(), 10_000));
        let first = wait_for_pid_file(&started).await;
        // With pipelining off, this one waits in the pool's queue.
        let queued = pool.submit(square, 9);
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(first as i32, libc::SIGKILL) };
        // Catch the replacement as soon as it exists, before its handshake.
        let deadline = Instant::now() + Duration::from_secs(5);
        let replacement = loop {
            let found = children_of(me)
                .into_iter()
                .find(|&(pid, state)| pid != first && state != 'Z');
            if let Some((pid, _)) = found {
                break pid;
            }
            assert!(Instant::now() < deadline, "no replacement was started");
            std::thread::sleep(Duration::from_micros(100));
        };
        // SAFETY: as above.
        unsafe { libc::kill(replacement as i32, libc::SIGKILL) };
        let err = within(Duration::from_secs(5), "the running task", running)
            .await
            .unwrap_err();
        assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
        let outcome = within(Duration::from_secs(10), "the queued task", queued).await;
        let _ = std::fs::remove_file(&started);
        match outcome {
            Ok(value) => assert_eq!(value, 81),
            // The replacement had said hello and been sent the task.
            Err(err) if err.is_worker_died() && err.worker_pid() == Some(replacement) => {}
            Err(err) => panic!(
                "round {round}: a queued task failed because one replacement worker \
                 ({replacement}) was SIGKILLed while starting (is_spawn={}): {err}",
                err.is_spawn()
            ),
        }
        // If the replacement lived long enough to answer `queued`, the pool
        // may not have seen it die yet and may send it this task too (lost
        // with it, as documented); a second try then reaches a live worker.
        let mut next = within(
            Duration::from_secs(10),
            "the next task",
            pool.submit(square, 4),
        )
        .await;
        if next
            .as_ref()
            .is_err_and(|err| err.worker_pid() == Some(replacement))
        {
            next = within(
                Duration::from_secs(10),
                "the next task",
                pool.submit(square, 4),
            )
            .await;
        }
        assert_eq!(next.unwrap(), 16, "the pool serves");
        within(Duration::from_secs(10), "shutdown", pool.shutdown()).await;
    }
}
