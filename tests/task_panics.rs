//! A panicking task is an error carrying the panic's message, location and
//! worker pid (and its backtrace, when asked for); the worker survives and
//! serves the next task.

mod common;

use common::*;
use futures::StreamExt;

fn main() {
    run(
        tests![
            panic_is_data_and_the_worker_lives_on,
            panics_among_successes,
            a_resumed_panic_is_reported_with_its_own_payload,
            a_panic_with_a_non_string_payload_says_so,
            backtraces_come_when_asked_through_submit_and_map,
            backtraces_follow_the_workers_environment,
            a_process_panic_carries_its_backtrace_when_asked,
        ],
        |_| {},
    );
}

async fn panic_is_data_and_the_worker_lives_on() {
    let pool = pool(1).await;
    let before = pool.submit(pid, ()).await.unwrap();
    let err = pool
        .submit(panics, "the answer is not 42".to_string())
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.panic_message(), Some("the answer is not 42"));
    let location = err.panic_location().expect("a location");
    assert!(location.contains("common/mod.rs"), "{location}");
    assert_eq!(err.worker_pid(), Some(before));
    assert!(
        err.task_name().unwrap().ends_with("panics"),
        "{:?}",
        err.task_name()
    );
    let text = err.to_string();
    assert!(
        text.contains("panicked") && text.contains("the answer is not 42"),
        "{text}"
    );
    // Same worker, still serving.
    assert_eq!(pool.submit(pid, ()).await.unwrap(), before);
    assert_eq!(pool.stats().respawns, 0);
}

async fn panics_among_successes() {
    let pool = pool(2).await;
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            if i % 10 == 3 {
                either(pool.submit(panics, format!("item {i}")))
            } else {
                either(pool.submit(square, i))
            }
        })
        .collect();
    for (i, result) in futures::future::join_all(handles)
        .await
        .into_iter()
        .enumerate()
    {
        let i = i as u64;
        match result {
            Ok(v) => assert_eq!(v, i * i),
            Err(err) => {
                assert_eq!(i % 10, 3, "only the panicking items fail: {err}");
                assert_eq!(err.panic_message(), Some(format!("item {i}").as_str()));
            }
        }
    }
    assert_eq!(pool.stats().failed, 10);
}

fn either(handle: procpool::TaskHandle<u64>) -> procpool::TaskHandle<u64> {
    handle
}

async fn a_resumed_panic_is_reported_with_its_own_payload() {
    let pool = pool(1).await;
    let err = pool
        .submit(panic_caught_then_resumed, ())
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    // `resume_unwind` skips the panic hook: the report must come from its
    // payload, not from the caught panic before it.
    assert_eq!(err.panic_message(), Some("the second panic, resumed"));
    // And a later task's panic is its own, too.
    let err = pool.submit(panics, "third".to_string()).await.unwrap_err();
    assert_eq!(err.panic_message(), Some("third"));
}

async fn a_panic_with_a_non_string_payload_says_so() {
    let pool = pool(1).await;
    let err = pool.submit(panics_with_a_number, ()).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(
        err.panic_message(),
        Some("a panic with a non-string payload")
    );
    assert!(
        err.panic_location().unwrap().contains("common/mod.rs"),
        "{err}"
    );
}

/// A pool of one whose workers' backtrace settings are `configure`'s.
async fn pool_with(
    configure: fn(procpool::PoolBuilder) -> procpool::PoolBuilder,
) -> procpool::Pool {
    configure(procpool::Pool::builder().workers(1))
        .build()
        .await
        .expect("pool starts")
}

/// The backtrace of `panics` through `submit`, and of `parse_or_panic`'s
/// item through `map`, if the pool's workers took them.
async fn backtraces_of(pool: &procpool::Pool) -> (Option<String>, Option<String>) {
    let err = pool.submit(panics, "boom".to_string()).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    let submitted = err.backtrace().map(str::to_string);
    let items: Vec<_> = pool
        .map(parse_or_panic, ["1", "x", "3"].map(String::from))
        .collect()
        .await;
    assert_eq!(items[0].as_ref().ok(), Some(&1));
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.panic_message(), Some("not a number: x"));
    (submitted, err.backtrace().map(str::to_string))
}

async fn backtraces_come_when_asked_through_submit_and_map() {
    let pool = pool_with(|b| b.capture_backtraces(true).env("RUST_LIB_BACKTRACE", "0")).await;
    let (submitted, mapped) = backtraces_of(&pool).await;
    let submitted = submitted.expect("capture_backtraces(true) wins over the environment");
    // Cut to the task's own frames: it starts at the panic, ends in the task.
    assert!(submitted.contains("common::panics"), "{submitted}");
    for worker_frame in [
        "procpool::worker::serve",
        "std::panicking::begin_panic",
        "catch_unwind",
    ] {
        assert!(
            !submitted.contains(worker_frame),
            "{worker_frame} in:\n{submitted}"
        );
    }
    let mapped = mapped.expect("a map item's panic carries one too");
    assert!(mapped.contains("common::parse_or_panic"), "{mapped}");
    // Shown by Display and Debug, after the message.
    let err = pool.submit(panics, "shown".to_string()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(": shown\nworker-side backtrace:\n"), "{text}");
    assert!(format!("{err:?}").contains("common::panics"), "{err:?}");
    // The worker lives on and serves.
    assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
}

async fn backtraces_follow_the_workers_environment() {
    let on = pool_with(|b| b.env("RUST_LIB_BACKTRACE", "1")).await;
    let (submitted, mapped) = backtraces_of(&on).await;
    assert!(submitted.unwrap().contains("common::panics"));
    assert!(mapped.unwrap().contains("common::parse_or_panic"));
    // RUST_LIB_BACKTRACE=0 turns them off whatever RUST_BACKTRACE says.
    let off = pool_with(|b| b.env("RUST_BACKTRACE", "1").env("RUST_LIB_BACKTRACE", "0")).await;
    assert_eq!(backtraces_of(&off).await, (None, None));
    let err = off.submit(panics, "plain".to_string()).await.unwrap_err();
    assert!(!err.to_string().contains("backtrace"), "{err}");
    // And the builder's `false` wins over the environment.
    let never = pool_with(|b| b.env("RUST_LIB_BACKTRACE", "1").capture_backtraces(false)).await;
    assert_eq!(backtraces_of(&never).await, (None, None));
}

async fn a_process_panic_carries_its_backtrace_when_asked() {
    let err = procpool::Process::builder()
        .capture_backtraces(true)
        .spawn(panics, "in a process".to_string())
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert!(err.backtrace().unwrap().contains("common::panics"), "{err}");
    let err = procpool::Process::builder()
        .env("RUST_LIB_BACKTRACE", "0")
        .spawn(panics, "in a process".to_string())
        .await
        .unwrap_err();
    assert_eq!(err.backtrace(), None, "{err}");
}
