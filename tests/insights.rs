//! `Pool::insights` agrees with what callers have seen: after `n` results
//! its workers say they ran `n` tasks and its windows hold `n` samples; a
//! `map` counts chunks; panics are timed; a replaced worker's place says
//! so; a task held behind another shows its wait.

mod common;

use std::time::Duration;

use common::*;
use futures::TryStreamExt;

fn main() {
    run(
        tests![
            insights_count_every_result_awaited,
            a_map_counts_its_chunks_as_tasks,
            panics_are_timed_and_replaced_workers_counted,
            a_task_held_behind_another_shows_its_queue_wait,
            a_recycled_workers_successor_says_so,
            a_flood_of_asks_is_answered_and_tasks_go_on,
            insights_after_shutdown_are_empty,
        ],
        |_| {},
    );
}

fn tasks_run(insights: &procpool::Insights) -> u64 {
    insights.workers.iter().map(|w| w.tasks).sum()
}

async fn insights_count_every_result_awaited() {
    let pool = pool(2).await;
    let fresh = pool.insights().await;
    assert_eq!(fresh.workers.len(), 2, "{fresh}");
    assert_eq!((tasks_run(&fresh), fresh.run_time.count), (0, 0));
    for worker in &fresh.workers {
        assert!(worker.startup > Duration::ZERO, "{fresh}");
        assert!(is_alive(worker.pid));
    }
    for n in 1..=300u64 {
        assert_eq!(pool.submit(square, n).await.unwrap(), n * n);
        let insights = pool.insights().await;
        assert_eq!(tasks_run(&insights), n, "after {n} results:\n{insights}");
        assert_eq!(insights.run_time.count as u64, n, "{insights}");
        assert_eq!(insights.queue_wait.count as u64, n, "{insights}");
        assert_eq!(
            insights.workers.iter().map(|w| w.in_flight).sum::<usize>(),
            0
        );
    }
    // Submitted all at once, awaited together: the same holds.
    let handles: Vec<_> = (0..500u64).map(|x| pool.submit(square, x)).collect();
    futures::future::try_join_all(handles).await.unwrap();
    let insights = pool.insights().await;
    assert_eq!(tasks_run(&insights), 800, "{insights}");
    assert_eq!(insights.run_time.count, 800);
    let run = insights.run_time;
    assert!(
        run.p50 <= run.p90 && run.p90 <= run.p99 && run.p99 <= run.max,
        "{run:?}"
    );
    for worker in &insights.workers {
        assert!(worker.busy <= worker.uptime, "{insights}");
        assert_eq!(worker.idle, worker.uptime - worker.busy);
        assert_eq!((worker.replaced, worker.recycled), (0, 0));
    }
    let text = insights.to_string();
    assert!(
        text.contains("run time") && text.contains("queue wait"),
        "{text}"
    );
    assert_eq!(pool.stats().completed, 800);
    pool.shutdown().await;
}

async fn a_map_counts_its_chunks_as_tasks() {
    let pool = pool(2).await;
    let squares: Vec<u64> = pool.map(square, 0..10_000u64).try_collect().await.unwrap();
    assert_eq!(squares.len(), 10_000);
    let insights = pool.insights().await;
    let chunks = pool.stats().completed;
    assert!((1..10_000).contains(&chunks), "{chunks} chunks");
    assert_eq!(tasks_run(&insights), chunks, "{insights}");
    assert_eq!(insights.run_time.count as u64, chunks);
    pool.shutdown().await;
}

async fn panics_are_timed_and_replaced_workers_counted() {
    let pool = pool(1).await;
    let first = pool.submit(pid, ()).await.unwrap();
    let err = pool.submit(sleep_then_panic, 30).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    let insights = pool.insights().await;
    assert_eq!(
        tasks_run(&insights),
        2,
        "a panic counts as run:\n{insights}"
    );
    assert_eq!(insights.run_time.count, 2, "and is timed");
    assert!(
        insights.run_time.max >= Duration::from_millis(30),
        "{insights}"
    );
    assert!(
        insights.workers[0].busy >= Duration::from_millis(30),
        "{insights}"
    );
    // A crash: the place's next worker says one was replaced before it.
    assert!(pool.submit(aborts, ()).await.unwrap_err().is_worker_died());
    let second = pool.submit(pid, ()).await.unwrap();
    assert_ne!(second, first);
    let insights = pool.insights().await;
    assert_eq!(insights.workers.len(), 1, "{insights}");
    let worker = &insights.workers[0];
    assert_eq!(
        (worker.pid, worker.replaced, worker.tasks),
        (second, 1, 1),
        "{insights}"
    );
    // The window is the pool's: the dead worker's tasks are still in it
    // (the crash is not: it has no run time).
    assert_eq!(insights.run_time.count, 3, "{insights}");
    pool.shutdown().await;
}

async fn a_task_held_behind_another_shows_its_queue_wait() {
    // One worker, whose task times are not known yet, takes one task at a
    // time: the second waits in the queue for the first's 200 ms.
    let pool = pool(1).await;
    let slow = pool.submit(sleep_ms, 200);
    let quick = pool.submit(square, 3);
    assert_eq!(quick.await.unwrap(), 9);
    slow.await.unwrap();
    let insights = pool.insights().await;
    assert_eq!(insights.queue_wait.count, 2, "{insights}");
    assert!(
        insights.queue_wait.max >= Duration::from_millis(150),
        "{insights}"
    );
    assert!(
        insights.run_time.max >= Duration::from_millis(200),
        "{insights}"
    );
    pool.shutdown().await;
}

async fn a_recycled_workers_successor_says_so() {
    // Recycled after 2 tasks; the one recycling takes nothing new, so
    // tasks 3 and 4 run on its successor and task 5 on the third worker.
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_tasks_per_worker(2)
        .build()
        .await
        .unwrap();
    let mut pids = Vec::new();
    for _ in 0..5 {
        pids.push(pool.submit(pid, ()).await.unwrap());
    }
    let insights = pool.insights().await;
    assert_eq!(insights.workers.len(), 1, "{insights}");
    let worker = &insights.workers[0];
    assert_eq!(worker.pid, pids[4], "{insights}");
    assert_eq!(
        (worker.recycled, worker.replaced, worker.tasks),
        (2, 0, 1),
        "{pids:?}\n{insights}"
    );
    assert_eq!(insights.run_time.count, 5);
    pool.shutdown().await;
}

async fn a_flood_of_asks_is_answered_and_tasks_go_on() {
    // 20,000 asks beside 2,000 tasks: all resolve, and the tasks with
    // them (asks that arrive together share one report).
    let pool = pool(2).await;
    let tasks: Vec<_> = (0..2_000u64).map(|x| pool.submit(square, x)).collect();
    let asks: Vec<_> = (0..20_000).map(|_| pool.insights()).collect();
    let (results, reports) = within(
        Duration::from_secs(60),
        "tasks beside a flood of insights",
        futures::future::join(
            futures::future::try_join_all(tasks),
            futures::future::join_all(asks),
        ),
    )
    .await;
    assert_eq!(results.unwrap().len(), 2_000);
    assert!(reports.iter().all(|r| r.workers.len() == 2));
    assert_eq!(tasks_run(&pool.insights().await), 2_000);
    pool.shutdown().await;
}

async fn insights_after_shutdown_are_empty() {
    let pool = pool(1).await;
    pool.submit(square, 2).await.unwrap();
    pool.shutdown().await;
    assert_eq!(pool.insights().await, procpool::Insights::default());
}
