//! An elastic pool: it grows while tasks wait for a worker, up to
//! `max_workers`, and shrinks back to `min_workers` when idle;
//! `Pool::resize` fixes its size at run time.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            the_pool_grows_under_load_and_shrinks_when_idle,
            resize_grows_and_shrinks_a_running_pool,
        ],
        |_| {},
    );
}

/// Runs `n` tasks that each hold a worker until all `n` have started, and
/// returns their workers' pids (distinct ones: `n` of them prove `n`
/// workers at once). Hangs (and `within` fails the test) if the pool
/// cannot run `n` at once.
async fn run_side_by_side(pool: &procpool::Pool, n: usize) -> Vec<u32> {
    let release = marker("release");
    let started: Vec<String> = (0..n).map(|_| marker("side")).collect();
    let handles: Vec<_> = started
        .iter()
        .map(|path| pool.submit(touch_then_wait_for, (path.clone(), release.clone())))
        .collect();
    let mut pids = Vec::new();
    for path in &started {
        pids.push(
            within(
                Duration::from_secs(20),
                "side by side",
                wait_for_pid_file(path),
            )
            .await,
        );
    }
    std::fs::write(&release, "go").unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    for path in started {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(release);
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Waits until the pool reports `workers` workers, all alive.
async fn wait_for_size(pool: &procpool::Pool, workers: usize) {
    within(Duration::from_secs(20), "the pool's new size", async {
        loop {
            let stats = pool.stats();
            if stats.workers == workers && stats.alive == workers {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn the_pool_grows_under_load_and_shrinks_when_idle() {
    let pool = procpool::Pool::builder()
        .min_workers(1)
        .max_workers(3)
        .idle_timeout(Duration::from_millis(200))
        .max_in_flight_per_worker(1)
        .build()
        .await
        .expect("pool starts");
    assert_eq!(pool.stats().workers, 1, "starts at its minimum");
    // Three tasks that each hold a worker: the pool grows to three.
    let pids = run_side_by_side(&pool, 3).await;
    assert_eq!(pids.len(), 3, "three workers at once: {pids:?}");
    // Idle again: back to one, the others exit.
    wait_for_size(&pool, 1).await;
    let gone = pids
        .iter()
        .filter(|&&pid| wait_gone(pid, Duration::from_secs(5)))
        .count();
    assert_eq!(gone, 2, "two of {pids:?} exited");
    // Never more than the maximum, and it grows again under load.
    let again = run_side_by_side(&pool, 3).await;
    assert_eq!(again.len(), 3, "{again:?}");
    let many: Vec<_> = (0..50).map(|x| pool.submit(sleep_ms_u64, x % 3)).collect();
    for (x, handle) in many.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), x as u64 % 3);
        assert!(pool.stats().workers <= 3, "{:?}", pool.stats());
    }
    let stats = pool.stats();
    assert_eq!((stats.failed, stats.respawns), (0, 0), "{stats:?}");
    pool.shutdown().await;
}

async fn resize_grows_and_shrinks_a_running_pool() {
    let pool = common::pool(1).await;
    pool.resize(3);
    wait_for_size(&pool, 3).await;
    let pids = run_side_by_side(&pool, 3).await;
    assert_eq!(pids.len(), 3, "{pids:?}");
    pool.resize(1);
    wait_for_size(&pool, 1).await;
    assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
    // Fixed now: a task that waits does not grow it.
    let release = marker("release");
    let (first, second) = (marker("first"), marker("second"));
    let holding = pool.submit(touch_then_wait_for, (first.clone(), release.clone()));
    let waiting = pool.submit(touch_then_wait_for, (second.clone(), release.clone()));
    wait_for_pid_file(&first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stats().workers, 1, "{:?}", pool.stats());
    assert!(
        std::fs::metadata(&second).is_err(),
        "the second ran beside the first"
    );
    std::fs::write(&release, "go").unwrap();
    assert_eq!(holding.await.unwrap(), waiting.await.unwrap());
    for path in [release, first, second] {
        let _ = std::fs::remove_file(path);
    }
    pool.shutdown().await;
}
