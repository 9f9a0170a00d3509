//! A worker that dies mid-task (abort, SIGSEGV, exit, SIGKILL from outside)
//! fails that task only, with how it died; the pool replaces the worker and
//! keeps serving everything else.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            abort_is_reported_as_sigabrt,
            segfault_is_reported_as_sigsegv,
            exit_code_is_reported,
            kill_from_outside_is_reported,
            crashes_fail_only_their_own_tasks,
            a_worker_killed_while_idle_is_replaced,
        ],
        |_| {},
    );
}

async fn abort_is_reported_as_sigabrt() {
    let pool = pool(1).await;
    let victim = pool.submit(pid, ()).await.unwrap();
    let err = pool.submit(aborts, ()).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(err.signal(), Some(libc::SIGABRT));
    assert_eq!(err.worker_pid(), Some(victim));
    assert!(err.to_string().contains("SIGABRT"), "{err}");
    assert!(err.task_name().unwrap().ends_with("aborts"));
    let replacement = pool.submit(pid, ()).await.unwrap();
    assert_ne!(replacement, victim);
    assert!(wait_gone(victim, Duration::from_secs(1)));
}

async fn segfault_is_reported_as_sigsegv() {
    let pool = pool(1).await;
    let err = pool.submit(segfaults, ()).await.unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGSEGV), "{err}");
    assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
}

async fn exit_code_is_reported() {
    let pool = pool(1).await;
    let err = pool.submit(exits, 3).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(err.exit_code(), Some(3));
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
}

async fn kill_from_outside_is_reported() {
    let pool = pool(1).await;
    let marker = marker("killed");
    let running = pool.submit(touch_then_sleep, (marker.clone(), 10_000));
    let victim = wait_for_pid_file(&marker).await;
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let err = running.await.unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
    assert_eq!(err.worker_pid(), Some(victim));
    assert_eq!(pool.submit(square, 6).await.unwrap(), 36);
    assert_eq!(pool.stats().respawns, 1);
    let _ = std::fs::remove_file(marker);
}

async fn crashes_fail_only_their_own_tasks() {
    let pool = pool(2).await;
    let mut crashes = Vec::new();
    let mut fine = Vec::new();
    for i in 0..60u64 {
        fine.push(pool.submit(square, i));
        if i % 15 == 0 {
            crashes.push(pool.submit(aborts, ()));
        }
    }
    for (i, handle) in fine.into_iter().enumerate() {
        assert_eq!(
            handle.await.unwrap(),
            (i * i) as u64,
            "task {i} is unaffected"
        );
    }
    for handle in crashes {
        assert_eq!(handle.await.unwrap_err().signal(), Some(libc::SIGABRT));
    }
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.failed), (60, 4));
}

async fn a_worker_killed_while_idle_is_replaced() {
    let pool = pool(1).await;
    let victim = pool.submit(pid, ()).await.unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(wait_gone(victim, Duration::from_secs(1)));
    // A task submitted before the pool has seen the death could be sent to
    // the dying worker and lost with it (its process can look dead here while
    // its last thread still holds the socket): wait for the replacement.
    while pool.stats().respawns == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let next = pool.submit(pid, ()).await.unwrap();
    assert_ne!(next, victim);
}
