//! When the pool's process is killed with SIGKILL (no destructor runs), its
//! workers notice the hang-up on their socket and exit within a second, and
//! take their tasks' processes with them, even those that left the worker's
//! process group or session.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            workers_exit_when_their_pool_process_is_killed,
            a_killed_pool_process_takes_daemons_started_by_tasks_along,
            a_worker_busy_after_many_short_tasks_exits_too,
        ],
        roles,
    );
}

fn roles(role: &str) {
    if role == "parent_of_escapees" {
        return parent_of_escapees();
    }
    if role == "parent_after_short_tasks" {
        return parent_after_short_tasks();
    }
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
    let (mut parent, line) = start_role("parent");
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

/// Starts a task whose processes try to escape, says where their pids are,
/// and waits to be killed.
fn parent_of_escapees() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Some(pool) = cgroup_pool(1).await else {
            println!("NOCGROUP");
            return;
        };
        let dir = marker("parent-escapees");
        let _running = pool.submit(spawn_escapees, (dir.clone(), "sleep".to_string()));
        escapees(&dir).await;
        println!("READY {dir}");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

async fn a_killed_pool_process_takes_daemons_started_by_tasks_along() {
    let (mut parent, line) = start_role("parent_of_escapees");
    if line.contains("NOCGROUP") {
        parent.wait().unwrap();
        return; // cgroup_pool said why, and insists on it as root
    }
    let dir = line.trim().strip_prefix("READY ").expect(&line).to_string();
    let pids = escapees(&dir).await;
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(3)),
            "process {pid}, started by a task, outlived the pool's process"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    // The dead pool could not remove its cgroup directory; the next pool
    // started under the same cgroup does.
    let namespace = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").unwrap().ino()
    };
    let stale = format!("procpool-{namespace}-{}-", parent.id());
    let pool = cgroup_pool(1).await.expect("worked a moment ago");
    let cgroup_root = "/sys/fs/cgroup/unified";
    if std::path::Path::new(cgroup_root).exists() {
        let left: Vec<_> = std::fs::read_dir(cgroup_root)
            .unwrap()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&stale))
            .collect();
        assert!(left.is_empty(), "stale cgroup directories: {left:?}");
    }
    pool.shutdown().await;
}

/// Runs many tiny tasks (so the worker starts tasks without arming its
/// reader thread), then a long one, and waits to be killed.
fn parent_after_short_tasks() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(1).await;
        run_many_short_tasks(&pool).await;
        let worker = pool.submit(pid, ()).await.unwrap();
        let _busy = pool.submit(sleep_ms, 60_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
        println!("PIDS {worker}");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

async fn a_worker_busy_after_many_short_tasks_exits_too() {
    let (mut parent, line) = start_role("parent_after_short_tasks");
    let worker: u32 = line
        .trim()
        .strip_prefix("PIDS ")
        .expect(&line)
        .parse()
        .unwrap();
    assert!(is_alive(worker));
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    assert!(
        wait_gone(worker, Duration::from_secs(1)),
        "worker {worker} outlived its pool by over a second"
    );
}
