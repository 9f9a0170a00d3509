//! A panicking task is an error carrying the panic's message, location and
//! worker pid; the worker survives and serves the next task.

mod common;

use common::*;

fn main() {
    run(
        tests![
            panic_is_data_and_the_worker_lives_on,
            panics_among_successes,
            a_resumed_panic_is_reported_with_its_own_payload,
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
