//! A worker that cannot act — stopped by SIGSTOP, or by SIGTTOU/SIGTTIN for
//! touching the terminal from a background process group — cannot hang the
//! pool: cancelling or timing out its task kills it from outside, a
//! shutdown reaps it, and workers have no controlling terminal to be stopped
//! by in the first place.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            a_stopped_worker_is_killed_when_its_task_times_out,
            a_stopped_idle_worker_does_not_hang_shutdown,
            a_task_touching_the_terminal_is_not_stopped,
            dropping_the_pool_after_an_abandoned_shutdown_kills_the_workers,
        ],
        roles,
    );
}

const LIMIT: Duration = Duration::from_secs(10);

async fn a_stopped_worker_is_killed_when_its_task_times_out() {
    let pool = pool(1).await;
    let victim = pool.submit(pid, ()).await.unwrap();
    let err = pool
        .submit(stop_self, ())
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        wait_gone(victim, LIMIT),
        "the stopped worker {victim} was never killed"
    );
    let next = within(LIMIT, "a task after the stop", pool.submit(pid, ())).await;
    assert_ne!(next.unwrap(), victim);
    within(LIMIT, "shutdown", pool.shutdown()).await;
    let stats = pool.stats();
    assert_eq!(
        (stats.alive, stats.busy, stats.cancelled),
        (0, 0, 1),
        "{stats:?}"
    );
}

async fn a_stopped_idle_worker_does_not_hang_shutdown() {
    let pool = pool(1).await;
    let victim = pool.submit(pid, ()).await.unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(victim as i32, libc::SIGSTOP) };
    within(LIMIT, "shutdown with a stopped worker", pool.shutdown()).await;
    assert!(wait_gone(victim, LIMIT));
}

async fn dropping_the_pool_after_an_abandoned_shutdown_kills_the_workers() {
    let pool = pool(1).await;
    let marker = marker("abandoned");
    pool.submit(touch_then_sleep, (marker.clone(), 60_000))
        .detach();
    let worker = wait_for_pid_file(&marker).await;
    // The shutdown waits for the minute-long task; give up on it.
    let abandoned = tokio::time::timeout(Duration::from_millis(100), pool.shutdown()).await;
    assert!(
        abandoned.is_err(),
        "the shutdown waits for the running task"
    );
    drop(pool);
    assert!(
        wait_gone(worker, LIMIT),
        "worker {worker} outlived every handle on its pool"
    );
    let _ = std::fs::remove_file(marker);
}

/// Plays a program run from a terminal: a session leader with a pty as its
/// controlling terminal, in the foreground, whose pool's workers are in
/// background process groups. A task turns echo off on `/dev/tty`, as
/// `stty -echo </dev/tty` does; from a background group with a terminal that
/// raises SIGTTOU and stops the worker.
fn roles(role: &str) {
    assert_eq!(role, "terminal");
    // SAFETY: plain libc calls on integers and on the pty name string the
    // C library returns (copied before the next call).
    let slave = unsafe {
        assert!(libc::setsid() > 0, "setsid");
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0 && libc::grantpt(master) == 0 && libc::unlockpt(master) == 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
        // A session leader opening a terminal without O_NOCTTY acquires it
        // as its controlling terminal, with its group in the foreground.
        let slave = libc::open(name.as_ptr(), libc::O_RDWR);
        assert!(slave >= 0, "open pty slave");
        slave
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(1).await;
        let outcome = within(
            LIMIT,
            "a task touching the terminal",
            pool.submit(echo_off, ()),
        )
        .await
        .unwrap();
        println!("task: {outcome}");
        pool.shutdown().await;
    });
    // SAFETY: closing our own fd.
    unsafe { libc::close(slave) };
}

async fn a_task_touching_the_terminal_is_not_stopped() {
    let output = run_role("terminal", |_| {}).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}: {stdout}", output.status);
    // No controlling terminal in the worker: /dev/tty cannot be opened.
    assert!(stdout.contains("task: no terminal"), "{stdout}");
}
