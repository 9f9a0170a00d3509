//! Backpressure: `max_queued` bounds the pool's queue; `try_submit` refuses
//! beyond it, `submit` and `reserve` wait, and a producer far faster than the
//! workers runs at their pace with flat memory.

mod common;

use std::time::Duration;

use futures::FutureExt;

use common::*;

fn main() {
    run(
        tests![
            try_submit_refuses_beyond_max_queued_and_submit_waits,
            a_shutdown_ends_the_wait_for_room,
            a_cancelled_waiting_submit_is_never_queued,
            millions_of_submissions_from_a_fast_producer_keep_memory_flat,
        ],
        |_| {},
    );
}

/// One worker, busy with a task that runs until it is cancelled, and its
/// pid once it has started (so it has left the queue).
async fn busy_pool(max_queued: usize) -> (procpool::Pool, procpool::TaskHandle<u32>) {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_in_flight_per_worker(1)
        .max_queued(max_queued)
        .build()
        .await
        .expect("pool starts");
    let started = marker("busy");
    let busy = pool.submit(touch_then_sleep, (started.clone(), 60_000));
    wait_for_pid_file(&started).await;
    (pool, busy)
}

async fn try_submit_refuses_beyond_max_queued_and_submit_waits() {
    let (pool, busy) = busy_pool(2).await;
    let first = pool.try_submit(square, 1).expect("room for the first");
    let second = pool.try_submit(square, 2).expect("room for the second");
    let err = pool.try_submit(square, 3).map(drop).unwrap_err();
    assert!(err.is_queue_full(), "{err}");
    assert!(err.to_string().contains("max_queued"), "{err}");
    assert!(err.task_name().unwrap().ends_with("::square"));

    // `submit` cannot refuse: its task waits for room, outside the queue.
    let waiting = pool.submit(square, 4);
    let mut reserve = Box::pin(pool.reserve());
    assert!((&mut reserve).now_or_never().is_none(), "no room yet");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.stats().queued, 2, "the cap holds");

    // The worker frees up: everything queued and waiting runs, in order.
    drop(busy);
    let reservation = within(Duration::from_secs(10), "reserve", reserve)
        .await
        .unwrap();
    let late = reservation.submit(square, 5);
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(second.await.unwrap(), 4);
    assert_eq!(waiting.await.unwrap(), 16);
    assert_eq!(late.await.unwrap(), 25);
    pool.shutdown().await;
}

async fn a_shutdown_ends_the_wait_for_room() {
    let (pool, busy) = busy_pool(1).await;
    let queued = pool.submit(square, 1);
    let waiting = pool.submit(square, 2);
    let reserving = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.reserve().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(Duration::from_secs(10), "shutdown_now", pool.shutdown_now()).await;
    for err in [
        busy.await.unwrap_err(),
        queued.await.unwrap_err(),
        waiting.await.unwrap_err(),
        reserving.await.unwrap().unwrap_err(),
    ] {
        assert!(err.is_shutdown(), "{err}");
    }
}

async fn a_cancelled_waiting_submit_is_never_queued() {
    let (pool, busy) = busy_pool(1).await;
    let queued = pool.submit(square, 1);
    let ran = marker("never");
    // Waits for room, and is dropped while it waits.
    drop(pool.submit(touch_then_sleep, (ran.clone(), 0)));
    drop(busy);
    assert_eq!(queued.await.unwrap(), 1);
    // The queue is free: a task submitted now runs next, and the dropped
    // one never did.
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    pool.shutdown().await;
    assert!(std::fs::metadata(&ran).is_err(), "the cancelled task ran");
}

/// How many tasks the producer submits (`PROCPOOL_TEST_FLOOD` overrides it,
/// e.g. `PROCPOOL_TEST_FLOOD=10000000` for the 10M). Each is one
/// request to a worker (`submit`, not a batched `map`), about 4 µs of the
/// pool's and a worker's time on a 2-core machine: 4M take ~16 s there, 10M
/// ~40 s, too long for the suite; the memory bound does not depend on the
/// count.
fn flood() -> u64 {
    std::env::var("PROCPOOL_TEST_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000_000)
}

async fn millions_of_submissions_from_a_fast_producer_keep_memory_flat() {
    let pool = procpool::Pool::builder()
        .workers(2)
        .max_queued(1_000)
        .build()
        .await
        .expect("pool starts");
    // Warm up (allocator arenas, runtime), then measure from here.
    for x in 0..10_000 {
        pool.reserve().await.unwrap().submit(square, x).detach();
    }
    let reset = reset_peak_rss();
    let before = peak_rss_kib();
    let flood = flood();
    let started = std::time::Instant::now();
    for x in 0..flood {
        pool.reserve().await.unwrap().submit(square, x).detach();
        // The queue never holds more than the cap.
        if x % 100_000 == 0 {
            assert!(pool.stats().queued <= 1_000);
        }
    }
    pool.shutdown().await;
    let growth_mib = peak_rss_kib().saturating_sub(before) / 1024;
    let stats = pool.stats();
    println!(
        "{flood} submissions in {:?}; peak RSS +{growth_mib} MiB (reset: {reset})",
        started.elapsed()
    );
    assert_eq!(stats.completed, flood + 10_000);
    assert_eq!(stats.failed, 0);
    // Unbounded, the queue alone would hold every job (~150 bytes each,
    // ~600 MiB for 4M). Bounded, it holds 1,000.
    assert!(growth_mib < 32, "parent peak RSS grew by {growth_mib} MiB");
}
