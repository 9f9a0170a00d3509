//! When the pool's process is killed with SIGKILL (no destructor runs), its
//! workers notice the hang-up on their socket and exit within a second.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![workers_exit_when_their_pool_process_is_killed],
        roles,
    );
}

fn roles(role: &str) {
    assert_eq!(role, "parent");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(2).await;
        // Two slow tasks at once: one on each worker.
        let a = pool.submit(sleep_ms, 100);
        let b = pool.submit(sleep_ms, 100);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        // One of them busy when the kill comes.
        let _busy = pool.submit(sleep_ms, 60_000);
        println!("PIDS {a} {b}");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

async fn workers_exit_when_their_pool_process_is_killed() {
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "parent")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<u32> = line
        .trim()
        .strip_prefix("PIDS ")
        .expect(&line)
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
    assert!(pids.iter().all(|&pid| is_alive(pid)));
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(1)),
            "worker {pid} outlived its pool by over a second"
        );
    }
}
