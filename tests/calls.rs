//! Calls a task makes to the pool (frames the worker starts) are answered
//! whole, whoever reads them, and never wedge a worker or its slot: not
//! from threads that outlive their task, not when the pool owes a dead
//! worker a large reply.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            threads_that_outlive_their_task_keep_getting_replies,
            a_flood_of_large_calls_does_not_deadlock_the_task_thread,
            a_worker_that_dies_owed_a_large_reply_is_replaced,
        ],
        |_| {},
    );
}

async fn threads_that_outlive_their_task_keep_getting_replies() {
    // A caller left behind by a task: later tasks (short ones, so the
    // reader thread is not armed for them) must not stop its replies.
    let pool = pool(1).await;
    pool.submit(start_background_callers, (1, 16))
        .await
        .unwrap();
    for round in 0..100 {
        let (ms, bad) = pool
            .submit(wait_for_background_calls, (3, 2_000))
            .await
            .unwrap();
        assert!(ms <= 2_000, "round {round}: the caller made no progress");
        assert_eq!(bad, 0);
        assert_eq!(pool.submit(square, round).await.unwrap(), round * round);
    }
}

async fn a_flood_of_large_calls_does_not_deadlock_the_task_thread() {
    // Eight callers of 5 MiB each fill both directions of the socket while
    // the task thread answers short tasks behind them on the one writer.
    let pool = pool(1).await;
    pool.submit(start_background_callers, (8, 5 << 20))
        .await
        .unwrap();
    for i in 0..200u64 {
        let answer = within(Duration::from_secs(20), "a square", pool.submit(square, i)).await;
        assert_eq!(answer.unwrap(), i * i);
    }
    let (ms, bad) = within(
        Duration::from_secs(20),
        "more calls",
        pool.submit(wait_for_background_calls, (8, 10_000)),
    )
    .await
    .unwrap();
    assert!(ms <= 10_000 && bad == 0, "{ms} ms, {bad} bad replies");
}

async fn a_worker_that_dies_owed_a_large_reply_is_replaced() {
    // Over 4 MiB of replies owed make the pool stop reading the worker;
    // its death must still be seen, its task failed, and the slot refilled.
    let pool = pool(1).await;
    for bytes in [1u64 << 20, 5 << 20, 16 << 20] {
        let err = within(
            Duration::from_secs(10),
            "the dead worker's task",
            pool.submit(call_then_abort, bytes),
        )
        .await
        .unwrap_err();
        assert!(err.is_worker_died() || err.is_protocol(), "{bytes}: {err}");
        let next = within(
            Duration::from_secs(10),
            "the next task",
            pool.submit(square, 4),
        )
        .await;
        assert_eq!(next.unwrap(), 16);
    }
}
