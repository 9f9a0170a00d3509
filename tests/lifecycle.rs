//! Worker lifecycle: recycling after N tasks, an initializer per worker (and
//! a clear build error when it fails), `shutdown_now`, and retries for tasks
//! whose worker died.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;

fn main() {
    run(
        tests![
            workers_are_recycled_after_n_tasks,
            the_stats_agree_with_the_results_awaited,
            the_initializer_runs_once_in_every_worker,
            a_failing_initializer_fails_build_and_names_itself,
            an_initializer_that_crashes_fails_build,
            shutdown_now_kills_running_work_and_resolves_everything,
            retries_rerun_a_task_whose_worker_died,
            without_retries_the_death_is_reported,
            shutdown_does_not_wait_for_a_worker_still_starting,
            a_task_that_kills_every_worker_backs_off_between_retries,
            the_crash_limit_fails_a_task_that_kills_every_worker_it_touches,
            init_inside_a_runtime_serves_tasks_that_start_runtimes,
        ],
        |_| {},
    );
}

async fn the_stats_agree_with_the_results_awaited() {
    // The counters were refreshed after the answer was delivered, so a
    // caller that had just awaited its last result could read `busy: 1`.
    let pool = pool(2).await;
    for i in 0..300u64 {
        assert_eq!(pool.submit(square, i).await.unwrap(), i * i);
        let stats = pool.stats();
        assert_eq!(stats.busy, 0, "after result {i}: {stats:?}");
        assert_eq!(stats.completed, i + 1, "after result {i}: {stats:?}");
    }
}

async fn workers_are_recycled_after_n_tasks() {
    let pool = procpool::Pool::builder()
        .workers(2)
        .max_tasks_per_worker(10)
        .build()
        .await
        .unwrap();
    let handles: Vec<_> = (0..100).map(|_| pool.submit(pid, ())).collect();
    let pids: Vec<u32> = futures::future::try_join_all(handles).await.unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert!(
        distinct.len() >= 10,
        "100 tasks at 10 per worker need at least 10 workers, saw {}",
        distinct.len()
    );
    let mut per_pid = std::collections::HashMap::new();
    for pid in &pids {
        *per_pid.entry(pid).or_insert(0) += 1;
    }
    assert!(
        per_pid.values().all(|&n| n <= 10),
        "no worker ran more than 10: {per_pid:?}"
    );
    let stats = pool.stats();
    assert!(stats.recycled >= 8, "{stats:?}");
    assert_eq!(
        (stats.failed, stats.respawns),
        (0, 0),
        "recycling is not failure: {stats:?}"
    );
    // map chunks count as tasks too, and keep flowing across recycling.
    let squares: Vec<u64> = pool.map(square, 0..20_000u64).try_collect().await.unwrap();
    assert_eq!(squares.len(), 20_000);
}

async fn the_initializer_runs_once_in_every_worker() {
    let pool = procpool::Pool::builder()
        .workers(2)
        .max_tasks_per_worker(5)
        .initializer(set_greeting, "initialized".to_string())
        .build()
        .await
        .unwrap();
    let handles: Vec<_> = (0..20)
        .map(|_| pool.submit(greeting_and_count, ()))
        .collect();
    for handle in handles {
        let (greeting, runs) = handle.await.unwrap();
        assert_eq!(
            greeting, "initialized",
            "every worker, replacements included, was initialized"
        );
        assert_eq!(runs, 1, "the initializer ran once per worker");
    }
}

async fn a_failing_initializer_fails_build_and_names_itself() {
    let started = Instant::now();
    let err = procpool::Pool::builder()
        .workers(2)
        .initializer(panics, "no database".to_string())
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("initializer") && text.contains("panics") && text.contains("no database"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no respawn loop"
    );
    // An unregistered initializer is refused too.
    let err = procpool::Pool::builder()
        .initializer(not_registered, 1)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_unregistered(), "{err}");
}

async fn an_initializer_that_crashes_fails_build() {
    let err = procpool::Pool::builder()
        .workers(1)
        .initializer(exits, 7)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(err.to_string().contains("exited with code 7"), "{err}");
}

async fn shutdown_now_kills_running_work_and_resolves_everything() {
    let pool = pool(2).await;
    let started = [marker("now-a"), marker("now-b")];
    let running: Vec<_> = started
        .iter()
        .map(|m| pool.submit(touch_then_sleep, (m.clone(), 30_000)))
        .collect();
    let finished = marker("now-queued");
    let queued = pool.submit(sleep_then_touch, (0, finished.clone()));
    let mut pids = Vec::new();
    for m in &started {
        pids.push(wait_for_pid_file(m).await);
    }
    let begun = Instant::now();
    pool.shutdown_now().await;
    assert!(begun.elapsed() < Duration::from_secs(2));
    for handle in running {
        assert!(handle.await.unwrap_err().is_shutdown());
    }
    assert!(queued.await.unwrap_err().is_shutdown());
    for pid in pids {
        assert!(!is_alive(pid), "worker {pid} was killed and reaped");
    }
    assert!(!Path::new(&finished).exists(), "queued work never ran");
    assert!(pool.submit(square, 1).await.unwrap_err().is_shutdown());
    assert_eq!(children_of(std::process::id()), vec![]);
    for m in started {
        let _ = std::fs::remove_file(m);
    }
}

async fn retries_rerun_a_task_whose_worker_died() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .retries(2)
        .build()
        .await
        .unwrap();
    let flag = marker("retry");
    // Dies the first time (no flag yet), succeeds the second.
    assert_eq!(
        pool.submit(abort_first_time, flag.clone()).await.unwrap(),
        2
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.retried, stats.failed, stats.respawns),
        (1, 0, 1),
        "{stats:?}"
    );
    // A task that always crashes fails after its retries.
    let err = pool.submit(aborts, ()).await.unwrap_err();
    assert!(err.is_worker_died());
    assert_eq!(err.worker_deaths(), 3);
    assert_eq!(pool.stats().retried, 3);
    // Panics are not retried.
    assert!(
        pool.submit(panics, "once".to_string())
            .await
            .unwrap_err()
            .is_panic()
    );
    assert_eq!(pool.stats().retried, 3);
    let _ = std::fs::remove_file(flag);
}

async fn without_retries_the_death_is_reported() {
    let pool = pool(1).await;
    let flag = marker("no-retry");
    assert!(
        pool.submit(abort_first_time, flag.clone())
            .await
            .unwrap_err()
            .is_worker_died()
    );
    let _ = std::fs::remove_file(flag);
}

async fn shutdown_does_not_wait_for_a_worker_still_starting() {
    for now in [true, false] {
        let slow = marker("slow-start");
        let pool = procpool::Pool::builder()
            .workers(1)
            .initializer(sleep_if_exists, slow.clone())
            .build()
            .await
            .unwrap();
        // From now on a worker takes a minute to start: kill the first one.
        std::fs::write(&slow, b"").unwrap();
        let victim = pool.submit(pid, ()).await.unwrap();
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
        while pool.stats().respawns == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let began = Instant::now();
        if now {
            within(Duration::from_secs(5), "shutdown_now", pool.shutdown_now()).await;
        } else {
            within(Duration::from_secs(5), "shutdown", pool.shutdown()).await;
        }
        assert!(began.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_file(slow);
    }
}

async fn a_task_that_kills_every_worker_backs_off_between_retries() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .stderr(procpool::Redirect::Null)
        .retries(u32::MAX)
        .build()
        .await
        .unwrap();
    let crasher = pool.submit(aborts, ());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // With backoff doubling from 50 ms: a handful. Without it, hundreds.
    let respawns = pool.stats().respawns;
    assert!(
        respawns <= 20,
        "{respawns} respawns in 1.5 s: a hot crash loop"
    );
    assert!(respawns >= 2, "it was retried: {respawns}");
    drop(crasher);
    within(Duration::from_secs(10), "shutdown", pool.shutdown()).await;
}

async fn the_crash_limit_fails_a_task_that_kills_every_worker_it_touches() {
    let pool = procpool::Pool::builder()
        .workers(2)
        .crash_limit(3)
        .max_memory_per_worker(768 << 20)
        .stderr(procpool::Redirect::Null)
        .build()
        .await
        .unwrap();
    let runs = marker("crash-limit");
    let killer = pool.submit(record_then_abort, runs.clone());
    let others: Vec<_> = (0..50).map(|x| pool.submit(square, x)).collect();
    let err = within(Duration::from_secs(30), "the killer", killer)
        .await
        .unwrap_err();
    // Run three times, each on a worker that died of it; then no more.
    let ran = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(ran.lines().count(), 3, "{ran}");
    assert!(err.is_worker_died(), "{err}");
    assert!(!err.is_out_of_memory(), "{err}");
    assert_eq!(err.worker_deaths(), 3);
    assert_eq!(err.signal(), Some(libc::SIGABRT));
    let text = err.to_string();
    assert_eq!(text.matches("killed by signal 6").count(), 3, "{text}");
    assert!(text.contains("crash_limit"), "{text}");
    for (x, other) in others.into_iter().enumerate() {
        assert_eq!(other.await.unwrap(), (x * x) as u64);
    }
    // Each death's cause is its own: an out-of-memory death says so.
    let err = pool.submit(allocate_mib, 4096).await.unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");
    assert_eq!(err.worker_deaths(), 3);
    assert_eq!(
        err.to_string().matches("ran out of memory").count(),
        3,
        "{err}"
    );
    assert_eq!(err.signal(), None);
    let stats = pool.stats();
    assert_eq!((stats.retried, stats.failed), (4, 2), "{stats:?}");
    pool.shutdown().await;
    let _ = std::fs::remove_file(runs);
}

async fn init_inside_a_runtime_serves_tasks_that_start_runtimes() {
    // Workers whose `main` calls `init` inside `block_on`, as
    // `#[tokio::main]` does: tasks still run on a thread of their own,
    // outside that runtime, so they may build one.
    let pool = procpool::Pool::builder()
        .workers(1)
        .env(INIT_IN_RUNTIME, "1")
        .build()
        .await
        .unwrap();
    assert_eq!(pool.submit(runs_own_runtime, 41).await.unwrap(), 42);
    assert_eq!(pool.submit(square, 12).await.unwrap(), 144);
    let err = pool.submit(panics, "inside".to_string()).await.unwrap_err();
    assert_eq!(
        err.panic_message(),
        Some("inside"),
        "panics are still captured"
    );
    pool.shutdown().await;
}
