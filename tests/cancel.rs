//! Dropping a handle cancels its task for real: queued work never runs, and
//! running work stops because its worker (and everything the task started)
//! is killed and replaced. Timeouts are cancellation on a timer.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            dropping_a_running_task_kills_its_worker,
            a_cancelled_queued_task_never_runs,
            a_cancelled_pipelined_task_is_skipped_not_killed,
            tokio_timeout_stops_the_work,
            handle_timeout_is_a_typed_error,
            pool_default_timeout_applies,
            losing_a_select_cancels,
            a_detached_task_runs_to_completion,
            cancelling_one_task_leaves_the_others_alone,
            cancelling_kills_processes_the_task_started,
            a_long_task_after_many_short_ones_is_still_killed,
            a_cancel_right_behind_its_request_is_acted_on_by_the_worker,
            a_task_that_handles_the_token_ends_cleanly_within_the_grace,
            a_task_that_ignores_the_token_is_killed_after_the_grace,
            without_a_grace_the_token_is_never_raised,
        ],
        |_| {},
    );
}

const SLOW: u64 = 400;

/// Waits long enough that a task that was not stopped would have finished.
async fn outlast_slow_task() {
    tokio::time::sleep(Duration::from_millis(SLOW + 300)).await;
}

async fn dropping_a_running_task_kills_its_worker() {
    let pool = pool(1).await;
    let started = marker("started");
    let handle = pool.submit(touch_then_sleep, (started.clone(), 30_000));
    let victim = wait_for_pid_file(&started).await;
    drop(handle);
    assert!(
        wait_gone(victim, Duration::from_secs(1)),
        "the worker running it is killed"
    );
    let next = pool.submit(pid, ()).await.unwrap();
    assert_ne!(next, victim, "a replacement serves");
    let stats = pool.stats();
    assert_eq!(
        (stats.failed, stats.respawns),
        (0, 1),
        "a cancellation is not a failure"
    );
    let _ = std::fs::remove_file(started);
}

async fn a_cancelled_queued_task_never_runs() {
    let pool = pool(1).await;
    let busy = pool.submit(sleep_ms, 200);
    let finished = marker("queued");
    let queued = pool.submit(sleep_then_touch, (0, finished.clone()));
    drop(queued);
    let worker = busy.await.unwrap();
    outlast_slow_task().await;
    assert!(!Path::new(&finished).exists(), "the cancelled task ran");
    assert_eq!(
        pool.submit(pid, ()).await.unwrap(),
        worker,
        "no worker was killed for it"
    );
}

async fn a_cancelled_pipelined_task_is_skipped_not_killed() {
    // With pipelining off the second task waits in the pool; with it on (the
    // default), it may already sit in the worker's socket. Either way it must
    // not run, and its worker must not be killed.
    for depth in [1, 64] {
        let pool = procpool::Pool::builder()
            .workers(1)
            .max_in_flight_per_worker(depth)
            .build()
            .await
            .unwrap();
        // Teach the pool these tasks are quick, so it pipelines.
        for _ in 0..20 {
            pool.submit(square, 1).await.unwrap();
        }
        let first = pool.submit(sleep_ms, 150);
        let finished = marker("pipelined");
        let second = pool.submit(sleep_then_touch, (0, finished.clone()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(second);
        let worker = first.await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !Path::new(&finished).exists(),
            "depth {depth}: the cancelled task ran"
        );
        assert_eq!(
            pool.submit(pid, ()).await.unwrap(),
            worker,
            "depth {depth}: worker kept"
        );
        assert_eq!(pool.stats().respawns, 0);
    }
}

async fn tokio_timeout_stops_the_work() {
    let pool = pool(1).await;
    let finished = marker("tokio-timeout");
    let outcome = tokio::time::timeout(
        Duration::from_millis(100),
        pool.submit(sleep_then_touch, (SLOW, finished.clone())),
    )
    .await;
    assert!(outcome.is_err(), "timed out");
    outlast_slow_task().await;
    assert!(
        !Path::new(&finished).exists(),
        "the work went on after the timeout"
    );
}

async fn handle_timeout_is_a_typed_error() {
    let pool = pool(1).await;
    let worker = pool.submit(pid, ()).await.unwrap();
    let finished = marker("handle-timeout");
    let err = pool
        .submit(sleep_then_touch, (SLOW, finished.clone()))
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("100ms"), "{err}");
    assert_eq!(err.worker_pid(), Some(worker), "names the worker: {err}");
    assert!(
        wait_gone(worker, Duration::from_secs(2)),
        "which was killed"
    );
    // A task that never reached a worker names none.
    let busy = pool.submit(sleep_ms, 300);
    let err = pool
        .submit(square, 2)
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.worker_pid().is_none(), "{err}");
    drop(busy);
    outlast_slow_task().await;
    assert!(!Path::new(&finished).exists());
    // Fast work within the limit is unaffected.
    assert_eq!(
        pool.submit(square, 3)
            .timeout(Duration::from_secs(5))
            .await
            .unwrap(),
        9
    );
}

async fn pool_default_timeout_applies() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert!(pool.submit(sleep_ms, SLOW).await.unwrap_err().is_timeout());
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    // A per-task limit replaces the default.
    pool.submit(sleep_ms, 200)
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
}

async fn losing_a_select_cancels() {
    let pool = pool(1).await;
    let finished = marker("select");
    tokio::select! {
        _ = pool.submit(sleep_then_touch, (SLOW, finished.clone())) => panic!("the slow task won"),
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    outlast_slow_task().await;
    assert!(!Path::new(&finished).exists());
}

async fn a_detached_task_runs_to_completion() {
    let pool = pool(1).await;
    let finished = marker("detached");
    pool.submit(sleep_then_touch, (50, finished.clone()))
        .detach();
    for _ in 0..200 {
        if Path::new(&finished).exists() {
            let _ = std::fs::remove_file(finished);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the detached task did not run");
}

async fn cancelling_one_task_leaves_the_others_alone() {
    let pool = pool(2).await;
    let keep: Vec<_> = (0..20u64).map(|i| pool.submit(square, i)).collect();
    let started = marker("one-of-many");
    let doomed = pool.submit(touch_then_sleep, (started.clone(), 30_000));
    let more: Vec<_> = (20..40u64).map(|i| pool.submit(square, i)).collect();
    wait_for_pid_file(&started).await;
    drop(doomed);
    for (i, handle) in keep.into_iter().chain(more).enumerate() {
        assert_eq!(handle.await.unwrap(), (i * i) as u64);
    }
    let _ = std::fs::remove_file(started);
}

async fn cancelling_kills_processes_the_task_started() {
    let pool = pool(1).await;
    let path = marker("grandchild");
    let handle = pool.submit(spawn_sleeper, path.clone());
    let pids = sleeper_pids(&path).await;
    drop(handle);
    assert!(wait_gone(pids.0, Duration::from_secs(1)), "worker killed");
    assert!(
        wait_gone(pids.1, Duration::from_secs(1)),
        "the task's own child killed too"
    );
    let _ = std::fs::remove_file(path);
}

async fn a_long_task_after_many_short_ones_is_still_killed() {
    // Short tasks make a worker start tasks without arming its reader
    // thread (it arms itself once one runs long): a cancel must still
    // reach a long one, and kill what it started.
    let pool = pool(1).await;
    run_many_short_tasks(&pool).await;
    let path = marker("after-short");
    let handle = pool.submit(spawn_sleeper, path.clone());
    let pids = sleeper_pids(&path).await;
    let dropped = std::time::Instant::now();
    drop(handle);
    assert!(wait_gone(pids.0, Duration::from_secs(1)), "worker killed");
    assert!(wait_gone(pids.1, Duration::from_secs(1)), "its child too");
    assert!(
        dropped.elapsed() < Duration::from_millis(400),
        "by the worker itself, not the pool's 500 ms grace: {:?}",
        dropped.elapsed()
    );
    let _ = std::fs::remove_file(path);
}

async fn a_cancel_right_behind_its_request_is_acted_on_by_the_worker() {
    // A cancel that arrives in the same read as its request (the handle
    // dropped microseconds after submit) must be seen before the task runs,
    // or at once if it started: not left for the pool to kill after 500 ms.
    let pool = pool(1).await;
    for round in 0..40u64 {
        tokio::time::sleep(Duration::from_millis(20)).await; // the worker idles
        let path = marker("right-behind");
        let handle = pool.submit(spawn_sleeper, path.clone());
        let until = std::time::Instant::now() + Duration::from_micros(round % 4 * 20);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        let dropped = std::time::Instant::now();
        drop(handle);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(text) = std::fs::read_to_string(&path) {
            let worker: u32 = text.split(' ').next().unwrap().parse().unwrap();
            assert!(wait_gone(worker, Duration::from_secs(2)), "round {round}");
            assert!(
                dropped.elapsed() < Duration::from_millis(400),
                "round {round}: the worker ran a task it had the cancel for ({:?})",
                dropped.elapsed()
            );
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(pool.submit(square, round).await.unwrap(), round * round);
    }
}

async fn grace_pool(grace: Duration) -> procpool::Pool {
    procpool::Pool::builder()
        .workers(1)
        .max_in_flight_per_worker(1)
        .cancel_grace(grace)
        .build()
        .await
        .expect("pool starts")
}

async fn a_task_that_handles_the_token_ends_cleanly_within_the_grace() {
    assert!(!procpool::cancelled(), "never raised outside a worker");
    let pool = grace_pool(Duration::from_secs(30)).await;
    // Cancelled by dropping its handle.
    let (started, done) = (marker("grace-started"), marker("grace-done"));
    let handle = pool.submit(until_cancelled, (started.clone(), done.clone()));
    let worker = wait_for_pid_file(&started).await;
    drop(handle);
    assert_eq!(wait_for_pid_file_text(&done).await, "clean");
    // The worker lived through it and serves the next task.
    assert_eq!(pool.submit(pid, ()).await.unwrap(), worker);
    // Cancelled by its timeout: the handle says so at once.
    let (started, done) = (marker("grace-started"), marker("grace-done"));
    let err = pool
        .submit(until_cancelled, (started.clone(), done.clone()))
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(wait_for_pid_file_text(&done).await, "clean");
    assert_eq!(pool.submit(pid, ()).await.unwrap(), worker);
    let stats = pool.stats();
    assert_eq!((stats.respawns, stats.failed), (0, 0), "{stats:?}");
    pool.shutdown().await;
}

async fn a_task_that_ignores_the_token_is_killed_after_the_grace() {
    let pool = grace_pool(Duration::from_millis(300)).await;
    let (started, seen) = (marker("ignore-started"), marker("ignore-seen"));
    let handle = pool.submit(ignores_cancel, (started.clone(), seen.clone()));
    let worker = wait_for_pid_file(&started).await;
    drop(handle);
    // Asked first: it saw the token while alive...
    assert_eq!(wait_for_pid_file_text(&seen).await, "seen");
    // ...then killed, and replaced.
    assert!(wait_gone(worker, Duration::from_secs(10)), "still alive");
    let next = within(
        Duration::from_secs(10),
        "the replacement",
        pool.submit(pid, ()),
    )
    .await
    .unwrap();
    assert_ne!(next, worker);
    assert_eq!(pool.stats().respawns, 1);
    pool.shutdown().await;
}

async fn without_a_grace_the_token_is_never_raised() {
    let pool = pool(1).await;
    let (started, seen) = (marker("nograce-started"), marker("nograce-seen"));
    let handle = pool.submit(ignores_cancel, (started.clone(), seen.clone()));
    let worker = wait_for_pid_file(&started).await;
    drop(handle);
    assert!(wait_gone(worker, Duration::from_secs(10)), "still alive");
    assert!(!Path::new(&seen).exists(), "killed at once, never asked");
    pool.shutdown().await;
}

/// Waits for `path` to hold some text, and returns it.
async fn wait_for_pid_file_text(path: &str) -> String {
    within(Duration::from_secs(20), path, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && !text.is_empty()
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}
