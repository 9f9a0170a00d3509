//! Completion callbacks run exactly once — on success, on error, when
//! detached, when dropped (as a cancellation) — and a panicking callback is
//! contained. `wait` and `as_completed` behave like Python's.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use procpool::WaitFor;

fn main() {
    run(
        tests![
            callback_sees_success_once,
            callback_sees_errors,
            detached_callbacks_all_fire_once,
            dropping_on_done_cancels_and_reports_it,
            a_panicking_callback_is_contained,
            as_completed_yields_in_completion_order,
            wait_first_completed,
            wait_first_error_and_all_completed,
        ],
        |_| {},
    );
}

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(log: &Log) -> impl FnOnce(Result<u64, procpool::Error>) + Send + 'static {
    let log = log.clone();
    move |result| {
        let entry = match result {
            Ok(v) => format!("ok {v}"),
            Err(e) if e.is_panic() => "panic".to_string(),
            Err(e) if e.is_worker_died() => "died".to_string(),
            Err(e) if e.is_cancelled() => "cancelled".to_string(),
            Err(e) => format!("error {e}"),
        };
        log.lock().unwrap().push(entry);
    }
}

async fn callback_sees_success_once() {
    let pool = pool(1).await;
    let log = Log::default();
    pool.submit(square, 9).on_done(recorder(&log)).await;
    assert_eq!(*log.lock().unwrap(), ["ok 81"]);
}

async fn callback_sees_errors() {
    let pool = pool(1).await;
    let log = Log::default();
    pool.submit(panics, "boom".to_string())
        .on_done(recorder(&log))
        .await;
    pool.submit(aborts, ()).on_done(recorder(&log)).await;
    assert_eq!(*log.lock().unwrap(), ["panic", "died"]);
}

async fn detached_callbacks_all_fire_once() {
    let pool = pool(2).await;
    let log = Log::default();
    for i in 0..200u64 {
        pool.submit(square, i).on_done(recorder(&log)).detach();
    }
    for _ in 0..500 {
        if log.lock().unwrap().len() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut entries = log.lock().unwrap().clone();
    entries.sort();
    let mut expected: Vec<String> = (0..200u64).map(|i| format!("ok {}", i * i)).collect();
    expected.sort();
    assert_eq!(entries, expected, "each callback exactly once");
}

async fn dropping_on_done_cancels_and_reports_it() {
    let pool = pool(1).await;
    let log = Log::default();
    let started = marker("on-done-drop");
    let pending = pool
        .submit(touch_then_sleep, (started.clone(), 30_000))
        .on_done({
            let log = log.clone();
            move |result| {
                log.lock()
                    .unwrap()
                    .push(format!("{}", result.unwrap_err().is_cancelled()))
            }
        });
    let worker = wait_for_pid_file(&started).await;
    drop(pending);
    assert_eq!(*log.lock().unwrap(), ["true"]);
    assert!(
        wait_gone(worker, Duration::from_secs(1)),
        "the task was really cancelled"
    );
    let _ = std::fs::remove_file(started);
}

async fn a_panicking_callback_is_contained() {
    let pool = pool(1).await;
    pool.submit(square, 2)
        .on_done(|_| panic!("a buggy callback"))
        .await;
    pool.submit(square, 3)
        .on_done(|_| panic!("a buggy detached callback"))
        .detach();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The pool and the runtime are fine.
    assert_eq!(pool.submit(square, 4).await.unwrap(), 16);
    assert_eq!(tokio::spawn(async { 1 }).await.unwrap(), 1);
}

async fn as_completed_yields_in_completion_order() {
    let pool = pool(2).await;
    let handles = vec![
        pool.submit(sleep_ms, 300),
        pool.submit(sleep_ms, 10),
        pool.submit(sleep_ms, 100),
    ];
    let order: Vec<usize> = procpool::as_completed(handles)
        .map(|(i, r)| {
            r.unwrap();
            i
        })
        .collect()
        .await;
    assert_eq!(order, [1, 2, 0]);
}

async fn wait_first_completed() {
    let pool = pool(2).await;
    let handles = vec![pool.submit(sleep_ms, 2_000), pool.submit(sleep_ms, 10)];
    let waited = procpool::wait(handles, WaitFor::FirstCompleted).await;
    assert_eq!(waited.done.len(), 1);
    assert_eq!(waited.done[0].0, 1);
    assert_eq!(waited.pending.len(), 1);
    assert_eq!(waited.pending[0].0, 0);
    // What is pending can be waited on again.
    let rest = procpool::wait(
        waited.pending.into_iter().map(|(_, h)| h),
        WaitFor::AllCompleted,
    )
    .await;
    assert!(rest.done[0].1.is_ok());
}

async fn wait_first_error_and_all_completed() {
    let pool = pool(2).await;
    let handles = vec![
        pool.submit(square, 1),
        pool.submit(panics, "x".to_string()),
        pool.submit(sleep_ms_u64, 5_000),
    ];
    let waited = procpool::wait(handles, WaitFor::FirstError).await;
    assert!(
        waited
            .done
            .iter()
            .any(|(i, r)| *i == 1 && r.as_ref().unwrap_err().is_panic())
    );
    // The slow one is still running; the quick square may or may not have
    // been seen before the panic (they finish on two workers at once).
    let pending: Vec<usize> = waited.pending.iter().map(|(i, _)| *i).collect();
    assert!(
        pending.contains(&2),
        "the slow one is still running: {pending:?}"
    );
    assert!(!pending.contains(&1), "the panic is done: {pending:?}");
    drop(waited.pending);
    let handles: Vec<_> = (0..5u64).map(|i| pool.submit(square, i)).collect();
    let waited = procpool::wait(handles, WaitFor::AllCompleted).await;
    assert_eq!(waited.done.len(), 5);
    assert!(waited.pending.is_empty());
}
