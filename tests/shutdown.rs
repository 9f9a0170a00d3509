//! `shutdown()` lets work finish and leaves no process behind; dropping the
//! last `Pool` kills the workers at once and resolves every handle.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn main() {
    run(
        tests![
            shutdown_finishes_queued_and_running_work,
            submit_after_shutdown_is_an_error,
            shutdown_timeout_kills_a_stuck_task_and_returns,
            a_map_over_endless_input_ends_after_shutdown,
            drop_kills_running_workers_and_resolves_handles,
            a_clone_keeps_the_pool_alive,
            dropping_the_runtime_leaves_nothing_on_stderr,
            building_on_a_runtime_without_drivers_is_an_error,
            detaching_outside_a_runtime_shares_one_thread,
        ],
        roles,
    );
}

/// A program that drops its runtime, pool and all, mid-work.
fn roles(role: &str) {
    assert_eq!(role, "drop_runtime");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(2).await;
        for _ in 0..200 {
            pool.submit(square, 3).await.unwrap();
        }
        pool.submit(sleep_ms, 5_000).detach();
        // A task answered but not yet read when the runtime goes.
        pool.submit(square, 4).detach();
        std::mem::forget(pool);
    });
    drop(runtime);
    println!("runtime dropped");
}

async fn dropping_the_runtime_leaves_nothing_on_stderr() {
    let output = run_role("drop_runtime", |_| {}).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        stderr.trim().is_empty(),
        "workers wrote to stderr: {stderr}"
    );
}

async fn building_on_a_runtime_without_drivers_is_an_error() {
    // A plain thread: no runtime context leaks in from the test's own.
    let outcome = std::thread::spawn(|| {
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let no_io = bare.block_on(procpool::Pool::builder().workers(1).build());
        let timers_only = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let no_io_with_time = timers_only.block_on(procpool::Pool::builder().workers(1).build());
        let io_only = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let no_time = io_only.block_on(procpool::Pool::builder().workers(1).build());
        let outside = futures::executor::block_on(procpool::Pool::builder().workers(1).build());
        [no_io, no_io_with_time, no_time, outside].map(|built| match built {
            Ok(pool) => panic!("built {pool:?}"),
            Err(err) => err,
        })
    })
    .join()
    .unwrap();
    let [no_io, no_io_with_time, no_time, outside] = outcome;
    for (err, says) in [
        (no_io, "I/O driver"),
        (no_io_with_time, "I/O driver"),
        (no_time, "time driver"),
        (outside, "inside a tokio runtime"),
    ] {
        assert!(err.is_spawn() && err.to_string().contains(says), "{err}");
    }
}

async fn detaching_outside_a_runtime_shares_one_thread() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pool = pool(2).await;
    let done = Arc::new(AtomicUsize::new(0));
    let threads = |()| std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = threads(());
    let counter = done.clone();
    let submitter = pool.clone();
    let during = tokio::task::spawn_blocking(move || {
        let pool = submitter;
        for i in 0..500u64 {
            let counter = counter.clone();
            pool.submit(square, i)
                .on_done(move |result| {
                    assert_eq!(result.unwrap(), i * i);
                    counter.fetch_add(1, Ordering::SeqCst);
                })
                .detach();
        }
        threads(())
    })
    .await
    .unwrap();
    within(Duration::from_secs(20), "500 detached tasks", async {
        while done.load(Ordering::SeqCst) < 500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // One for spawn_blocking, one shared by the detached tasks.
    assert!(during <= before + 2, "{before} threads became {during}");
}

async fn shutdown_finishes_queued_and_running_work() {
    let pool = pool(2).await;
    let handles: Vec<_> = (0..10).map(|_| pool.submit(sleep_ms, 30)).collect();
    let shutdown = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    for handle in handles {
        handle
            .await
            .expect("queued work still runs during shutdown");
    }
    shutdown.await.unwrap();
    // shutdown() returns after the workers are reaped.
    assert_eq!(children_of(std::process::id()), vec![]);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.alive, stats.queued), (10, 0, 0));
}

async fn shutdown_timeout_kills_a_stuck_task_and_returns() {
    let pool = pool(2).await;
    let started = marker("stuck");
    let stuck = pool.submit(spin_forever, started.clone());
    let stuck_worker = wait_for_pid_file(&started).await;
    let quick: Vec<_> = (0..20).map(|x| pool.submit(square, x)).collect();
    let drained = within(
        Duration::from_secs(10),
        "shutdown_timeout",
        pool.shutdown_timeout(Duration::from_millis(300)),
    )
    .await;
    assert!(!drained, "the stuck task cannot finish");
    // Every task resolved: the quick ones with their values, the stuck one
    // killed with its worker.
    for (x, handle) in quick.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), (x * x) as u64);
    }
    let err = stuck.await.unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    assert!(!is_alive(stuck_worker));
    assert_eq!(children_of(std::process::id()), vec![]);
    // Nothing left to wait for: it drains in time.
    let calm = common::pool(1).await;
    let handle = calm.submit(sleep_ms, 10);
    assert!(calm.shutdown_timeout(Duration::from_secs(10)).await);
    handle.await.unwrap();
    let _ = std::fs::remove_file(started);
}

async fn submit_after_shutdown_is_an_error() {
    let pool = pool(1).await;
    pool.shutdown().await;
    let err = pool.submit(square, 2).await.unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    assert!(err.to_string().contains("shut down"), "{err}");
    pool.shutdown().await; // twice is fine
}

async fn drop_kills_running_workers_and_resolves_handles() {
    let pool = pool(2).await;
    let markers = [marker("drop-a"), marker("drop-b")];
    let running: Vec<_> = markers
        .iter()
        .map(|m| pool.submit(touch_then_sleep, (m.clone(), 30_000)))
        .collect();
    let queued = pool.submit(square, 3);
    let mut pids = Vec::new();
    for m in &markers {
        pids.push(wait_for_pid_file(m).await);
    }
    let started = Instant::now();
    drop(pool);
    for handle in running {
        assert!(handle.await.unwrap_err().is_shutdown());
    }
    assert!(queued.await.unwrap_err().is_shutdown());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "handles resolve at once"
    );
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(1)),
            "worker {pid} was killed"
        );
    }
    assert_eq!(
        wait_for_no_children(Duration::from_secs(1)),
        vec![],
        "no zombies"
    );
    for m in markers {
        let _ = std::fs::remove_file(m);
    }
}

async fn a_clone_keeps_the_pool_alive() {
    let pool = pool(1).await;
    let clone = pool.clone();
    drop(pool);
    assert_eq!(clone.submit(square, 4).await.unwrap(), 16);
}

async fn a_map_over_endless_input_ends_after_shutdown() {
    use futures::StreamExt;
    let pool = pool(1).await;
    pool.shutdown().await;
    // Endless input: the stream must not pull it for ever, yielding errors.
    let results: Vec<_> = pool.map(square, 0u64..).take(1000).collect().await;
    assert!(!results.is_empty());
    assert!(
        results.len() < 1000,
        "it ended by itself: {} results",
        results.len()
    );
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err().is_shutdown())
    );
}
