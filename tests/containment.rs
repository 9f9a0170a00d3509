//! A task's processes die with it, however they try to get away — in its
//! worker's process group, in a group of their own, or as a daemon in a
//! session of its own — on every path by which a task ends early: its
//! worker crashing or exiting, a kill from outside, cancellation, timeout,
//! `shutdown_now`, dropping the pool. (The pool's process being SIGKILLed is
//! in `parent_killed.rs`.)

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            a_crashing_worker_takes_every_process_of_its_task_along,
            a_worker_that_exits_takes_every_process_of_its_task_along,
            a_worker_killed_from_outside_takes_its_tasks_processes_along,
            cancelling_kills_processes_that_left_the_group,
            a_timeout_kills_processes_that_left_the_group,
            shutdown_now_kills_processes_that_left_the_group,
            dropping_the_pool_kills_processes_that_left_the_group,
            a_task_that_forks_and_crashes_resolves_when_the_worker_dies,
            a_worker_moved_into_the_pools_group_cannot_take_the_pool_down,
            with_process_groups_a_crash_kills_the_group,
            a_fork_that_returns_from_a_task_answers_nothing,
            a_tracer_hiding_the_workers_exit_cannot_hang_its_task,
            a_pool_in_another_pid_namespace_leaves_ours_alone,
        ],
        roles,
    );
}

const GONE_WITHIN: Duration = Duration::from_secs(3);

fn assert_all_gone(pids: &[u32], after: &str) {
    for &pid in pids {
        assert!(
            wait_gone(pid, GONE_WITHIN),
            "process {pid} outlived its task ({after})"
        );
    }
}

async fn escapees_die_when_the_worker_does(then: &str) {
    let Some(pool) = cgroup_pool(1).await else {
        return;
    };
    let dir = marker("escapees");
    let err = pool
        .submit(spawn_escapees, (dir.clone(), then.to_string()))
        .await
        .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_all_gone(&escapees(&dir).await, then);
    assert_eq!(pool.submit(square, 4).await.unwrap(), 16);
    let _ = std::fs::remove_dir_all(dir);
}

async fn a_crashing_worker_takes_every_process_of_its_task_along() {
    escapees_die_when_the_worker_does("abort").await;
}

async fn a_worker_that_exits_takes_every_process_of_its_task_along() {
    escapees_die_when_the_worker_does("exit").await;
}

async fn a_worker_killed_from_outside_takes_its_tasks_processes_along() {
    let Some(pool) = cgroup_pool(1).await else {
        return;
    };
    let dir = marker("killed");
    let running = pool.submit(spawn_escapees, (dir.clone(), "sleep".to_string()));
    let pids = escapees(&dir).await;
    let worker = worker_of(pids[0]);
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    let err = running.await.unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
    assert_all_gone(&pids, "SIGKILL from outside");
    let _ = std::fs::remove_dir_all(dir);
}

/// The parent of `pid`: the worker that started it.
fn worker_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Starts the escapees on a fresh cgroup pool, ends them with `end`, and
/// checks that all three are gone.
async fn end_early<F>(what: &str, end: F)
where
    F: AsyncFnOnce(procpool::Pool, procpool::TaskHandle<u32>),
{
    let Some(pool) = cgroup_pool(1).await else {
        return;
    };
    let dir = marker(what);
    let running = pool.submit(spawn_escapees, (dir.clone(), "sleep".to_string()));
    let pids = escapees(&dir).await;
    end(pool, running).await;
    assert_all_gone(&pids, what);
    let _ = std::fs::remove_dir_all(dir);
}

async fn cancelling_kills_processes_that_left_the_group() {
    end_early("cancel", async |pool, running| {
        drop(running);
        assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
    })
    .await;
}

async fn a_timeout_kills_processes_that_left_the_group() {
    end_early("timeout", async |_pool, running| {
        let err = running
            .timeout(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
    })
    .await;
}

async fn shutdown_now_kills_processes_that_left_the_group() {
    end_early("shutdown_now", async |pool, running| {
        within(GONE_WITHIN, "shutdown_now", pool.shutdown_now()).await;
        assert!(running.await.unwrap_err().is_shutdown());
    })
    .await;
}

async fn dropping_the_pool_kills_processes_that_left_the_group() {
    end_early("drop", async |pool, running| {
        drop(pool);
        assert!(running.await.unwrap_err().is_shutdown());
    })
    .await;
}

async fn a_task_that_forks_and_crashes_resolves_when_the_worker_dies() {
    let pool = pool(1).await;
    // The fork holds the worker's socket open for a minute; the task must
    // fail when the worker dies, not when the fork lets go.
    let err = within(
        Duration::from_secs(10),
        "a task whose fork outlives its worker",
        pool.submit(fork_then_abort, 60),
    )
    .await
    .unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGABRT), "{err}");
    assert_eq!(pool.submit(square, 6).await.unwrap(), 36);
}

/// Builds a pool in a process of its own (its own process group, so a kill
/// that wrongly reaches "the pool's group" cannot reach the test runner),
/// where a task moves its worker into the pool's group; then cancels one
/// such task and shuts down after another. The pool's process must live.
fn roles(role: &str) {
    if role == "quick_pool" {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return runtime.block_on(async {
            let pool = cgroup_pool(1).await.expect("cgroups here");
            assert_eq!(pool.submit(square, 2).await.unwrap(), 4);
            println!("quick pool done");
        });
    }
    assert_eq!(role, "group_hopper");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(1).await;
        let hop = pool
            .submit(join_parent_group, 10_000)
            .timeout(Duration::from_millis(300));
        assert!(hop.await.unwrap_err().is_timeout());
        pool.submit(join_parent_group, 0).await.unwrap();
        pool.shutdown().await;
        println!("pool process survived");
    });
}

async fn a_worker_moved_into_the_pools_group_cannot_take_the_pool_down() {
    use std::os::unix::process::CommandExt;
    let output = run_role("group_hopper", |command| {
        command.process_group(0);
    })
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("pool process survived"),
        "the pool's process ended: {:?}; {stdout}",
        output.status
    );
}

async fn with_process_groups_a_crash_kills_the_group() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .stderr(procpool::Redirect::Null)
        .containment(procpool::Containment::ProcessGroup)
        .build()
        .await
        .unwrap();
    assert_eq!(pool.containment(), procpool::Containment::ProcessGroup);
    let dir = marker("pgroup");
    let err = pool
        .submit(spawn_escapees, (dir.clone(), "abort".to_string()))
        .await
        .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    let pids = escapees(&dir).await;
    assert_all_gone(&pids[..1], "a crash, in the worker's group");
    // Documented: without a cgroup, processes that left the group outlive a
    // worker that crashed. Clean them up by hand.
    for &pid in &pids[1..] {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn a_fork_that_returns_from_a_task_answers_nothing() {
    let pool = pool(1).await;
    let worker = pool.submit(fork_copy_returns, ()).await.unwrap();
    // Had the copy gone on serving, it would answer some of these in the
    // worker's place, with the wrong values.
    for x in 0..200u64 {
        assert_eq!(pool.submit(square, x).await.unwrap(), x * x);
    }
    assert_eq!(pool.submit(pid, ()).await.unwrap(), worker);
}

async fn a_tracer_hiding_the_workers_exit_cannot_hang_its_task() {
    let Some(pool) = cgroup_pool(1).await else {
        return;
    };
    let err = within(
        Duration::from_secs(10),
        "a task whose worker exits while traced",
        pool.submit(traced_then_exit, ()),
    )
    .await
    .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(pool.submit(square, 7).await.unwrap(), 49);
}

/// A pool inside a new PID namespace (a container sharing our cgroup) sees
/// our pool's pid as dead; it must not take our cgroups for stale ones.
async fn a_pool_in_another_pid_namespace_leaves_ours_alone() {
    let Some(pool) = cgroup_pool(1).await else {
        return;
    };
    let marker = marker("other-namespace");
    let running = pool.submit(touch_then_sleep, (marker.clone(), 1_500));
    let worker = wait_for_pid_file(&marker).await;
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(std::env::current_exe().unwrap())
            .env(ROLE, "quick_pool")
            .output()
    })
    .await
    .unwrap();
    match output {
        Ok(output) if output.status.success() => {
            assert!(String::from_utf8_lossy(&output.stdout).contains("quick pool done"));
        }
        other => println!("skipped the other namespace (unshare: {other:?})"),
    }
    assert_eq!(running.await.unwrap(), worker, "our task ran to its end");
    let _ = std::fs::remove_file(marker);
}
