//! The pool never signals a process that is not its own, even when the pid
//! of a worker it discarded has been given to a stranger.
//!
//! The setup: with `max_tasks_per_worker(1)` a successor is started as soon
//! as the only worker takes its task; the task times out, its worker dies,
//! and the successor is discarded. Its pid is then forced onto an unrelated
//! process that leads its own process group (through
//! `/proc/sys/kernel/ns_last_pid`, which needs root), and the pool is
//! dropped or shut down. The stranger must live.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            dropping_the_pool_spares_a_stranger_with_a_discarded_workers_pid,
            shutting_down_spares_a_stranger_with_a_discarded_workers_pid,
        ],
        |_| {},
    );
}

async fn dropping_the_pool_spares_a_stranger_with_a_discarded_workers_pid() {
    stranger_survives(async |pool| drop(pool)).await;
}

async fn shutting_down_spares_a_stranger_with_a_discarded_workers_pid() {
    stranger_survives(async |pool| pool.shutdown().await).await;
}

async fn stranger_survives<F: AsyncFnOnce(procpool::Pool)>(end: F) {
    const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
    if std::fs::OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .is_err()
    {
        println!("skipped: {NS_LAST_PID} is not writable here (needs root)");
        return;
    }
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_tasks_per_worker(1)
        .build()
        .await
        .unwrap();
    let me = std::process::id();
    let first: Vec<u32> = children_of(me).into_iter().map(|(pid, _)| pid).collect();
    let task = pool
        .submit(sleep_ms, 3_000)
        .timeout(Duration::from_millis(400));
    let successor = within(Duration::from_secs(5), "the successor to start", async {
        loop {
            if let Some((pid, _)) = children_of(me)
                .into_iter()
                .find(|(pid, _)| !first.contains(pid))
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(task.await.unwrap_err().is_timeout());
    assert!(
        wait_gone(successor, Duration::from_secs(3)),
        "the discarded successor {successor} is killed"
    );
    // Reaped, too: its pid is free for the taking.
    while children_of(me).iter().any(|&(pid, _)| pid == successor) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut stranger = take_pid(successor, NS_LAST_PID);
    end(pool).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // An error here means someone else reaped it: the pool, after killing it.
    let alive = matches!(stranger.try_wait(), Ok(None));
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(
        alive,
        "the pool killed process {successor}, which was not its own"
    );
}

/// Starts `sleep 600` in a process group of its own with exactly `pid`.
fn take_pid(pid: u32, ns_last_pid: &str) -> Child {
    use std::os::unix::process::CommandExt;
    for _ in 0..100 {
        std::fs::write(ns_last_pid, (pid - 1).to_string()).unwrap();
        let mut child = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap();
        if child.id() == pid {
            return child;
        }
        // Another process or thread took the pid first: try again.
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not give pid {pid} to a stranger");
}
