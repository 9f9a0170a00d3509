//! Submitting work: results come back right, from many tokio tasks at once,
//! for functions of any arity and payloads of any size; misuse is an error
//! that says what to do.

mod common;

use std::collections::HashSet;

use common::*;

fn main() {
    run(
        tests![
            one_and_several_arguments,
            concurrent_submits_from_many_tasks,
            work_is_spread_over_the_workers,
            large_payloads_round_trip,
            unregistered_function_is_a_clear_error,
            unencodable_arguments_fail_at_submit,
            pool_is_clone_send_sync_and_debug,
            a_plain_thread_can_submit_to_a_pool_with_a_timeout,
        ],
        |_| {},
    );
}

async fn one_and_several_arguments() {
    let pool = pool(2).await;
    assert_eq!(pool.submit(square, 7).await.unwrap(), 49);
    assert_eq!(pool.submit(product, (2, 3, 4)).await.unwrap(), 24);
    assert_eq!(
        pool.submit(greet, ("procpool".to_string(), 2))
            .await
            .unwrap(),
        "hello, procpool! hello, procpool! "
    );
    assert_ne!(pool.submit(pid, ()).await.unwrap(), std::process::id());
}

async fn concurrent_submits_from_many_tasks() {
    let pool = pool(2).await;
    let mut joins = Vec::new();
    for t in 0..32u64 {
        let pool = pool.clone();
        joins.push(tokio::spawn(async move {
            let handles: Vec<_> = (0..200u64)
                .map(|i| pool.submit(square, t * 1000 + i))
                .collect();
            for (i, handle) in handles.into_iter().enumerate() {
                let x = t * 1000 + i as u64;
                assert_eq!(handle.await.unwrap(), x * x);
            }
        }));
    }
    for join in joins {
        join.await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.completed, 32 * 200);
    assert_eq!(stats.failed, 0);
}

async fn work_is_spread_over_the_workers() {
    let pool = pool(2).await;
    // Slow enough that one worker cannot take them all.
    let handles: Vec<_> = (0..6).map(|_| pool.submit(sleep_ms, 100)).collect();
    let pids: HashSet<u32> = futures::future::try_join_all(handles)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 2, "both workers ran tasks: {pids:?}");
}

async fn large_payloads_round_trip() {
    let pool = pool(2).await;
    for size in [0usize, 1, 65_535, 65_536, 1 << 20, 16 << 20] {
        let blob = Blob((0..size).map(|i| (i * 31 % 251) as u8).collect());
        let back = pool.submit(echo, blob.clone()).await.unwrap();
        assert!(back == blob, "a {size}-byte payload came back changed");
    }
}

async fn unregistered_function_is_a_clear_error() {
    let pool = pool(1).await;
    let err = pool.submit(not_registered, 1).await.unwrap_err();
    assert!(err.is_unregistered(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("not_registered") && text.contains("tasks!"),
        "{text}"
    );
    let closure = |x: u64| x + 1;
    let err = pool.submit(closure, 1).await.unwrap_err();
    assert!(
        err.is_unregistered() && err.to_string().contains("closure"),
        "{err}"
    );
    // The pool is fine afterwards.
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
}

async fn unencodable_arguments_fail_at_submit() {
    let pool = pool(1).await;
    let handle = pool.submit(takes_unencodable, Unencodable);
    let stats = pool.stats();
    let err = handle.await.unwrap_err();
    assert!(err.is_codec(), "{err}");
    assert!(
        err.to_string().contains("refuses to be serialized"),
        "{err}"
    );
    assert_eq!(
        stats.completed + stats.failed,
        0,
        "nothing reached a worker"
    );
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
}

async fn pool_is_clone_send_sync_and_debug() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<procpool::Pool>();
    let pool = pool(2).await;
    let text = format!("{pool:?}");
    assert!(text.contains("workers: 2"), "{text}");
    let handle = pool.submit(square, 2);
    fn assert_send<T: Send + 'static>(_: &T) {}
    assert_send(&handle);
    assert_eq!(handle.await.unwrap(), 4);
}

async fn a_plain_thread_can_submit_to_a_pool_with_a_timeout() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .task_timeout(std::time::Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    // The pool-wide timeout needs a timer: the pool lends its runtime's.
    let submitter = pool.clone();
    let value =
        std::thread::spawn(move || futures::executor::block_on(submitter.submit(square, 3)))
            .join()
            .unwrap();
    assert_eq!(value.unwrap(), 9);
}
