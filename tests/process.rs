//! `procpool::spawn`: one function in a fresh one-shot process, through the
//! pool's own machinery. Its result, its failures as typed errors with the
//! exit status, `kill`, drop and `detach`, and that nothing it started
//! outlives it — not even when this program is SIGKILLed.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            a_process_returns_its_result,
            a_panic_is_a_typed_error_with_exitcode_1,
            an_abort_is_a_typed_error_with_the_signal,
            a_segfault_is_a_typed_error_with_the_signal,
            exit_3_inside_is_exit_code_3,
            kill_stops_a_runaway_and_resolves_with_its_pid,
            kill_before_the_start_never_runs_it,
            dropping_the_handle_kills_the_process,
            a_detached_process_runs_to_completion_and_is_reaped,
            processes_a_killed_process_started_die_with_it,
            processes_left_behind_by_a_returning_function_die,
            kill_reaches_children_that_left_the_group_without_a_cgroup,
            a_process_calls_the_parent_as_a_pool_task_does,
            an_unregistered_function_is_a_typed_error,
            the_builder_passes_the_environment,
            a_process_past_its_memory_cap_is_out_of_memory,
            outside_a_runtime_it_is_a_typed_error,
            a_process_handle_is_send_sync_and_debug,
            a_sigkilled_parent_takes_its_process_and_grandchildren_along,
        ],
        roles,
    );
}

fn roles(role: &str) {
    assert_eq!(role, "parent_of_process");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = marker("process-parent");
        let mut process =
            cgroup_builder().spawn(spawn_escapees, (dir.clone(), "sleep".to_string()));
        tokio::select! {
            _ = escapees(&dir) => {}
            result = &mut process => {
                println!("NOCGROUP {:?}", result.map(|_| ()));
                return;
            }
        }
        let pid = process.pid().expect("it runs, so it started");
        println!("READY {dir} {pid}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(process);
    });
}

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("resolves promptly")
}

async fn a_process_returns_its_result() {
    let mut process = procpool::spawn(square, 7);
    assert_eq!(process.exitcode(), None, "not resolved yet");
    assert_eq!(within(&mut process).await.unwrap(), 49);
    assert_eq!(process.exitcode(), Some(0));
    assert!(process.exit_status().unwrap().success());
    let pid = process.pid().expect("it ran");
    assert_ne!(pid, std::process::id());
    let mut other = procpool::spawn(common::pid, ());
    assert_eq!(within(&mut other).await.unwrap(), other.pid().unwrap());
    assert_ne!(other.pid(), Some(pid), "each process is fresh");
    assert!(wait_gone(pid, LIMIT), "and is reaped once done");
}

async fn a_process_past_its_memory_cap_is_out_of_memory() {
    const CAP: u64 = 768 << 20;
    let process = procpool::Process::builder()
        .max_memory(CAP)
        .stderr(procpool::Redirect::Null)
        .spawn(allocate_mib, 4096);
    let mut process = process;
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");
    assert_eq!(process.exitcode(), Some(71), "the cap's own exit code");
    assert!(err.to_string().contains(&CAP.to_string()), "{err}");
    // Under the cap, it runs as ever.
    let fine = procpool::Process::builder()
        .max_memory(CAP)
        .spawn(allocate_mib, 16);
    assert_eq!(within(fine).await.unwrap(), 16);
}

async fn a_panic_is_a_typed_error_with_exitcode_1() {
    let mut process = procpool::spawn(panics, "boom".to_string());
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.panic_message(), Some("boom"));
    assert_eq!(err.worker_pid(), process.pid());
    assert_eq!(process.exitcode(), Some(1));
}

async fn an_abort_is_a_typed_error_with_the_signal() {
    let mut process = procpool::Process::builder()
        .stderr(procpool::Redirect::Null)
        .spawn(aborts, ());
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(err.signal(), Some(libc::SIGABRT));
    assert_eq!(err.worker_pid(), process.pid());
    assert_eq!(process.exitcode(), Some(-libc::SIGABRT));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(process.exit_status().unwrap().signal(), Some(libc::SIGABRT));
}

async fn a_segfault_is_a_typed_error_with_the_signal() {
    let mut process = procpool::Process::builder()
        .stderr(procpool::Redirect::Null)
        .spawn(segfaults, ());
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(err.signal(), Some(libc::SIGSEGV));
    assert_eq!(process.exitcode(), Some(-libc::SIGSEGV));
}

async fn exit_3_inside_is_exit_code_3() {
    let mut process = procpool::spawn(exits, 3);
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(process.exitcode(), Some(3));
    assert_eq!(process.exit_status().unwrap().code(), Some(3));
}

async fn kill_stops_a_runaway_and_resolves_with_its_pid() {
    let started = marker("runaway");
    let mut process = procpool::spawn(spin_forever, started.clone());
    let pid = wait_for_pid_file(&started).await;
    assert_eq!(process.pid(), Some(pid));
    process.kill();
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.worker_pid(), Some(pid));
    assert_eq!(process.exitcode(), Some(-libc::SIGKILL));
    assert!(!is_alive(pid), "reaped by the time it resolved");
    process.kill(); // harmless once it is gone
    let _ = std::fs::remove_file(started);
}

async fn kill_before_the_start_never_runs_it() {
    let finished = marker("never");
    let mut process = procpool::spawn(sleep_then_touch, (0, finished.clone()));
    process.kill();
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.worker_pid(), process.pid());
    if process.pid().is_none() {
        // Never started (the usual case): no status, and it never ran.
        assert_eq!(process.exitcode(), None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!std::path::Path::new(&finished).exists());
    }
    let _ = std::fs::remove_file(finished);
}

async fn dropping_the_handle_kills_the_process() {
    let started = marker("dropped");
    let process = procpool::spawn(touch_then_sleep, (started.clone(), 60_000));
    let pid = wait_for_pid_file(&started).await;
    drop(process);
    assert!(wait_gone(pid, LIMIT), "the process outlived its handle");
    let _ = std::fs::remove_file(started);
}

async fn a_detached_process_runs_to_completion_and_is_reaped() {
    let started = marker("detached-start");
    let finished = marker("detached-end");
    procpool::spawn(touch_then_sleep, (started.clone(), 200)).detach();
    let pid = wait_for_pid_file(&started).await;
    procpool::spawn(sleep_then_touch, (300, finished.clone())).detach();
    let finisher = wait_for_pid_file(&finished).await;
    assert!(wait_gone(pid, LIMIT) && wait_gone(finisher, LIMIT));
    for path in [started, finished] {
        let _ = std::fs::remove_file(path);
    }
}

/// A builder that insists on a cgroup, or `None` (and a note) where this
/// machine cannot give one to a non-root user; as root it must.
fn cgroup_builder() -> procpool::ProcessBuilder {
    procpool::Process::builder()
        .stderr(procpool::Redirect::Null)
        .containment(procpool::Containment::Cgroup)
}

async fn processes_a_killed_process_started_die_with_it() {
    let dir = marker("process-escapees");
    let mut process = cgroup_builder().spawn(spawn_escapees, (dir.clone(), "sleep".to_string()));
    let pids = tokio::select! {
        pids = escapees(&dir) => pids,
        result = &mut process => return skip_without_cgroup(result.map(|_| ())),
    };
    process.kill();
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    for pid in pids {
        assert!(wait_gone(pid, LIMIT), "process {pid} outlived its process");
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn processes_left_behind_by_a_returning_function_die() {
    let dir = marker("process-leftovers");
    let mut process = cgroup_builder().spawn(spawn_escapees, (dir.clone(), "return".to_string()));
    let result = within(&mut process).await;
    if result.is_err() {
        return skip_without_cgroup(result.map(|_| ()));
    }
    assert_eq!(result.unwrap(), process.pid().unwrap());
    for pid in escapees(&dir).await {
        assert!(wait_gone(pid, LIMIT), "process {pid} outlived its process");
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn kill_reaches_children_that_left_the_group_without_a_cgroup() {
    // kill() is the pool's cancel: the process ends itself, and kills its
    // own children first, even those in a process group of their own.
    let dir = marker("process-group-escapees");
    let mut process = procpool::Process::builder()
        .containment(procpool::Containment::ProcessGroup)
        .spawn(spawn_escapees, (dir.clone(), "sleep".to_string()));
    let [in_group, own_group, daemon]: [u32; 3] = escapees(&dir).await.try_into().unwrap();
    process.kill();
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(process.exitcode(), Some(-libc::SIGKILL));
    for pid in [in_group, own_group] {
        assert!(wait_gone(pid, LIMIT), "process {pid} outlived its process");
    }
    // A daemon is beyond a process group's reach (Containment says so).
    // SAFETY: kill takes plain integers; the daemon is our descendant (we
    // are a subreaper), unreaped, so the pid is still its own.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    assert!(wait_gone(daemon, LIMIT));
    let _ = std::fs::remove_dir_all(dir);
}

/// A process that could not get its cgroup: fine only where we are not root.
fn skip_without_cgroup(result: Result<(), procpool::Error>) {
    let err = result.expect_err("it was meant to keep running");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        panic!("as root, cgroup containment must work: {err}");
    }
    assert!(err.is_spawn(), "{err}");
    println!("skipped: no cgroup here ({err})");
}

async fn a_process_calls_the_parent_as_a_pool_task_does() {
    // Calls are frames the worker starts: they reach the parent only if the
    // process is driven by the pool's own routing.
    let intact = within(procpool::spawn(echo_calls, (4, 50, 1_000)))
        .await
        .unwrap();
    assert_eq!(intact, 200);
}

async fn an_unregistered_function_is_a_typed_error() {
    let mut process = procpool::spawn(not_registered, 1);
    let err = within(&mut process).await.unwrap_err();
    assert!(err.is_unregistered(), "{err}");
    assert_eq!((process.pid(), process.exitcode()), (None, None));
}

async fn the_builder_passes_the_environment() {
    let builder = procpool::Process::builder().env("PROCPOOL_TEST_PROCESS_ENV", "set");
    let name = "PROCPOOL_TEST_PROCESS_ENV".to_string();
    assert_eq!(
        within(builder.spawn(read_env, name.clone())).await.unwrap(),
        Some("set".to_string())
    );
    // The builder is reusable, and the parent's environment is untouched.
    assert_eq!(within(procpool::spawn(read_env, name)).await.unwrap(), None);
}

async fn a_sigkilled_parent_takes_its_process_and_grandchildren_along() {
    let (mut parent, line) = start_role("parent_of_process");
    if line.starts_with("NOCGROUP") {
        parent.wait().unwrap();
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } != 0,
            "as root a cgroup must work: {line}"
        );
        println!("skipped: {line}");
        return;
    }
    let mut words = line.trim().strip_prefix("READY ").expect(&line).split(' ');
    let dir = words.next().unwrap().to_string();
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let mut pids = escapees(&dir).await;
    pids.push(pid);
    assert!(pids.iter().all(|&pid| is_alive(pid)));
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid, LIMIT),
            "process {pid} outlived the SIGKILLed parent"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn outside_a_runtime_it_is_a_typed_error() {
    let err = std::thread::spawn(|| futures::executor::block_on(procpool::spawn(square, 2)))
        .join()
        .unwrap()
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string()
            .contains("procpool::spawn must run inside a tokio runtime")
    );
}

async fn a_process_handle_is_send_sync_and_debug() {
    fn send_sync_static<T: Send + Sync + 'static>(_: &T) {}
    let process = procpool::spawn(square, 3);
    send_sync_static(&process);
    assert!(format!("{process:?}").contains("square"));
    assert_eq!(within(process).await.unwrap(), 9);
}
