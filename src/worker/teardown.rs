//! How a worker ends everything its tasks started, then itself: when the
//! pool hangs up (even mid-task), when its running task is cancelled, and
//! when serving ends.

use std::sync::OnceLock;

use rustix::process::{self, Pid, Signal};

use crate::launch::cgroup::{self, WorkerCgroup};
use crate::sys;

/// What a worker kills on its way out, learnt before any task runs.
struct Teardown {
    /// The process group it was started in (a task may move the worker out
    /// of it; killing the group the worker is in *now* could then reach the
    /// pool's own).
    group: Option<Pid>,
    cgroup: Option<WorkerCgroup>,
}

static TEARDOWN: OnceLock<Teardown> = OnceLock::new();

/// Records where this worker lives. Called once the pool has contained it
/// (moved it into its cgroup), before any task runs.
pub(super) fn prepare() {
    let _ = TEARDOWN.set(Teardown {
        group: own_group(),
        cgroup: cgroup::own_worker_cgroup(),
    });
}

/// The process group a pool started this worker in: its own, which it
/// leads. (Were it not the leader, the group would be someone else's, and
/// not ours to kill.)
fn own_group() -> Option<Pid> {
    let group = process::getpgrp();
    (group == process::getpid()).then_some(group)
}

/// This process's children, from every thread's list (any thread of a task
/// may have started one).
fn own_children() -> Vec<Pid> {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .filter_map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Kills this worker's cgroup, its children and its original process
/// group, then exits at once. Safe from any thread, holding any lock: it
/// takes none and runs no destructors.
pub(super) fn teardown() -> ! {
    if let Some(teardown) = TEARDOWN.get() {
        if let Some(cgroup) = &teardown.cgroup {
            cgroup.kill(); // ends us too, a moment later
        }
        // Children that left the group (setsid) but not yet us.
        for child in own_children() {
            let _ = process::kill_process(child, Signal::KILL);
        }
        if let Some(group) = teardown.group {
            let _ = process::kill_process_group(group, Signal::KILL);
        }
    }
    sys::exit_now(137)
}

/// Reports why this worker gives up, on stderr, without taking std's
/// stderr lock (a task may hold it), then tears down.
pub(super) fn fail(message: &str) -> ! {
    let line = format!("procpool worker {}: {message}\n", std::process::id());
    let _ = rustix::io::write(std::io::stderr(), line.as_bytes());
    teardown()
}
