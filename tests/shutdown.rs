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
            drop_kills_running_workers_and_resolves_handles,
            a_clone_keeps_the_pool_alive,
        ],
        |_| {},
    );
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
