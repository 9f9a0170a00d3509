//! Memory caps: a task past the hard cap (`max_memory_per_worker`) fails
//! out of memory while the others complete; the soft cap recycles a worker
//! that grew, keeps the queue moving, and does not loop on a worker that
//! was born big.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            a_task_past_the_hard_cap_fails_out_of_memory_while_others_complete,
            one_allocation_larger_than_the_cap_fails_out_of_memory,
            an_abort_under_the_cap_is_still_an_abort,
            the_soft_cap_recycles_a_leaking_worker_and_the_queue_keeps_moving,
            a_worker_born_above_the_soft_cap_is_not_recycled_in_a_loop,
        ],
        |_| {},
    );
}

/// Well above what an idle worker maps (~100-200 MiB of address space),
/// well below what this machine can give.
const HARD_CAP: u64 = 768 << 20;

async fn a_task_past_the_hard_cap_fails_out_of_memory_while_others_complete() {
    let pool = procpool::Pool::builder()
        .workers(2)
        .max_memory_per_worker(HARD_CAP)
        // Rust prints a backtrace after a failed allocation with this set,
        // which may overwrite the errno the worker checks: the exhausted
        // address space must be recognised anyway.
        .env("RUST_BACKTRACE", "1")
        .stderr(procpool::Redirect::Null)
        .build()
        .await
        .expect("pool starts");
    // Gradually, 1 MiB at a time, past the cap.
    let hog = pool.submit(allocate_mib, 4096);
    let others: Vec<_> = (0..20).map(|_| pool.submit(allocate_mib, 16)).collect();
    let err = within(Duration::from_secs(30), "the hog", hog)
        .await
        .unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");
    assert!(err.is_worker_died(), "{err}");
    assert!(err.to_string().contains(&HARD_CAP.to_string()), "{err}");
    assert!(err.task_name().unwrap().ends_with("::allocate_mib"));
    assert!(err.worker_pid().is_some());
    assert_eq!(err.signal(), None);
    for other in others {
        assert_eq!(other.await.unwrap(), 16);
    }
    let (vm_kib, rss_kib) = pool.submit(vm_size_and_rss_kib, ()).await.unwrap();
    println!(
        "an idle worker maps {} MiB, {} MiB resident",
        vm_kib >> 10,
        rss_kib >> 10
    );
    assert_eq!(pool.stats().respawns, 1, "{:?}", pool.stats());
    pool.shutdown().await;
}

async fn one_allocation_larger_than_the_cap_fails_out_of_memory() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_memory_per_worker(HARD_CAP)
        // Here errno is the only sign (most of the address space is left):
        // without a backtrace printed, it is intact.
        .env("RUST_BACKTRACE", "0")
        .stderr(procpool::Redirect::Null)
        .build()
        .await
        .expect("pool starts");
    let err = pool.submit(reserve_bytes, 2 * HARD_CAP).await.unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");
    assert_eq!(pool.submit(reserve_bytes, 1 << 20).await.unwrap(), 1 << 20);
    pool.shutdown().await;
}

async fn an_abort_under_the_cap_is_still_an_abort() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_memory_per_worker(HARD_CAP)
        .build()
        .await
        .expect("pool starts");
    let err = pool.submit(aborts, ()).await.unwrap_err();
    assert!(!err.is_out_of_memory(), "{err}");
    assert_eq!(err.signal(), Some(libc::SIGABRT), "{err}");
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    pool.shutdown().await;
}

/// The soft cap's threshold: a task leaking more than this recycles its
/// worker.
const GROWTH: u64 = 32 << 20;

async fn the_soft_cap_recycles_a_leaking_worker_and_the_queue_keeps_moving() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_in_flight_per_worker(1)
        .recycle_on_memory_growth(GROWTH)
        .build()
        .await
        .expect("pool starts");
    // Leaks and small tasks, all queued at once behind each other.
    let mut leaks = Vec::new();
    let mut small = Vec::new();
    for x in 0..5u64 {
        leaks.push(pool.submit(leak_mib, 48));
        for y in 0..10 {
            small.push(pool.submit(square, x * 10 + y));
        }
    }
    let mut pids = Vec::new();
    for leak in leaks {
        pids.push(
            within(Duration::from_secs(30), "a leak", leak)
                .await
                .unwrap(),
        );
    }
    for (i, handle) in small.into_iter().enumerate() {
        let x = i as u64;
        assert_eq!(handle.await.unwrap(), x * x);
    }
    // Each leak ran on a worker of its own: the one before it was recycled.
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{pids:?}");
    let stats = pool.stats();
    assert!(stats.recycled >= 4, "{stats:?}");
    assert_eq!(stats.respawns, 0, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    pool.shutdown().await;
}

async fn a_worker_born_above_the_soft_cap_is_not_recycled_in_a_loop() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_in_flight_per_worker(1)
        .initializer(start_big, 3 * (GROWTH >> 20))
        .recycle_on_memory_growth(GROWTH)
        .build()
        .await
        .expect("pool starts");
    let first = pool.submit(pid, ()).await.unwrap();
    for x in 0..100u64 {
        assert_eq!(pool.submit(square, x).await.unwrap(), x * x);
    }
    let (_, rss_kib) = pool.submit(vm_size_and_rss_kib, ()).await.unwrap();
    assert!(
        rss_kib << 10 > 3 * GROWTH,
        "born big: {rss_kib} KiB resident"
    );
    assert_eq!(
        pool.submit(pid, ()).await.unwrap(),
        first,
        "the same worker"
    );
    assert_eq!(pool.stats().recycled, 0, "{:?}", pool.stats());
    // It is measured all the same: a real leak on top still recycles it.
    pool.submit(leak_mib, 48).await.unwrap();
    let next = within(Duration::from_secs(10), "the replacement", async {
        loop {
            let now = pool.submit(pid, ()).await.unwrap();
            if now != first {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_ne!(next, first);
    assert_eq!(pool.stats().recycled, 1, "{:?}", pool.stats());
    pool.shutdown().await;
}
