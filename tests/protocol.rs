//! Garbage on the pipe, oversized frames, foreign programs, other builds and
//! other protocol versions are typed errors; the pool recovers.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            garbage_from_a_task_fails_that_task_and_the_pool_recovers,
            an_oversized_frame_is_refused_without_allocating,
            a_frame_of_unknown_kind_is_a_protocol_error,
            a_worker_with_other_tasks_is_refused,
            a_worker_with_another_protocol_version_is_refused,
            a_program_that_exits_is_refused,
            a_program_that_never_answers_is_refused,
            a_worker_that_forgot_init_cannot_start_a_pool,
        ],
        |_| {},
    );
}

async fn expect_protocol_error(bytes: Vec<u8>) {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_frame_size(1 << 20)
        .build()
        .await
        .unwrap();
    let victim = pool.submit(pid, ()).await.unwrap();
    let err = pool.submit(scribble, bytes).await.unwrap_err();
    assert!(err.is_protocol(), "{err}");
    assert_eq!(err.worker_pid(), Some(victim));
    assert!(err.task_name().unwrap().ends_with("scribble"));
    assert!(
        wait_gone(victim, Duration::from_secs(2)),
        "the broken worker is killed"
    );
    assert_eq!(pool.submit(square, 12).await.unwrap(), 144, "and replaced");
}

async fn garbage_from_a_task_fails_that_task_and_the_pool_recovers() {
    expect_protocol_error(b"this is not a frame, just text on the protocol socket".to_vec()).await;
}

async fn an_oversized_frame_is_refused_without_allocating() {
    let mut frame = (1u64 << 50).to_le_bytes().to_vec();
    frame.extend_from_slice(&[2; 32]);
    expect_protocol_error(frame).await;
}

async fn a_frame_of_unknown_kind_is_a_protocol_error() {
    let mut frame = 4u64.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0x77, 1, 2, 3]);
    expect_protocol_error(frame).await;
}

async fn a_worker_with_other_tasks_is_refused() {
    let err = procpool::Pool::builder()
        .workers(2)
        .env(ALT_REGISTRY, "1")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string().contains("registered different tasks"),
        "{err}"
    );
}

async fn a_worker_with_another_protocol_version_is_refused() {
    let err = procpool::Pool::builder()
        .workers(1)
        .env(FAKE_WORKER, "99")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(err.to_string().contains("protocol version 99"), "{err}");
}

async fn a_program_that_exits_is_refused() {
    let err = procpool::Pool::builder()
        .workers(2)
        .worker_program("/bin/true")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string()
            .contains("exited with code 0 before its handshake"),
        "{err}"
    );
    let err = procpool::Pool::builder()
        .workers(1)
        .worker_program("/nonexistent/program")
        .build()
        .await
        .unwrap_err();
    assert!(
        err.is_spawn() && err.to_string().contains("/nonexistent/program"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

async fn a_program_that_never_answers_is_refused() {
    let err = procpool::Pool::builder()
        .workers(1)
        .worker_program("/bin/sleep")
        .worker_args(["30"])
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string().contains("did not complete its handshake"),
        "{err}"
    );
}

async fn a_worker_that_forgot_init_cannot_start_a_pool() {
    // The worker's main skips init and tries to build a pool of its own; the
    // builder refuses (exit code 42 in this test program) instead of starting
    // workers without end.
    let err = procpool::Pool::builder()
        .workers(1)
        .env(SKIP_INIT, "1")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exited with code 42"), "{err}");
}
