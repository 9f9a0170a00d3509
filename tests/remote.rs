//! Workers started through launcher commands — a real sshd and a real Slurm
//! `srun` when `PROCPOOL_TEST_SSH` / `PROCPOOL_TEST_SRUN` hold their
//! prefixes (`../shared/ci/launchers.sh` sets both up and exports them),
//! and local commands that give the worker pipes — behave like local ones:
//! results byte-exact, crashes, cancels and timeouts that end the remote
//! processes, a killed launcher, and start-up failures as typed errors that
//! name the launcher. The "remote" host is this one, so its processes are
//! found in /proc by a marker in their command line.

mod common;

use std::time::{Duration, Instant};

use common::*;
use procpool::{Launcher, Pool};

const SSH: &str = "PROCPOOL_TEST_SSH";
const SRUN: &str = "PROCPOOL_TEST_SRUN";

macro_rules! through {
    ($($name:ident = $test:ident($kind:ident);)*) => {
        mod each {
            use super::*;
            $(
                pub async fn $name() {
                    super::$test(Kind::$kind).await
                }
            )*
        }
    };
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ssh,
    Srun,
    /// `sh -c '"$@" | cat'`: the worker writes to a pipe, on this machine.
    Pipes,
}

through! {
    ssh_payload = payload(Ssh);
    ssh_pool_killed = pool_killed(Ssh);
    srun_pool_killed = pool_killed(Srun);
    ssh_crash = crash(Ssh);
    ssh_cancel = cancel(Ssh);
    ssh_timeout = timeout(Ssh);
    ssh_launcher_killed = launcher_killed(Ssh);
    ssh_print = print(Ssh);
    srun_payload = payload(Srun);
    srun_crash = crash(Srun);
    srun_cancel = cancel(Srun);
    srun_timeout = timeout(Srun);
    srun_launcher_killed = launcher_killed(Srun);
    srun_print = print(Srun);
    pipes_payload = payload(Pipes);
    pipes_crash = crash(Pipes);
    pipes_cancel = cancel(Pipes);
    pipes_timeout = timeout(Pipes);
    pipes_launcher_killed = launcher_killed(Pipes);
    pipes_print = print(Pipes);
}

fn main() {
    use each::*;
    run_unless(
        tests![
            ssh_payload,
            ssh_crash,
            ssh_cancel,
            ssh_timeout,
            ssh_launcher_killed,
            ssh_print,
            ssh_start_failures_are_typed_and_bounded,
            ssh_pool_killed,
            ssh_preset_reaches_the_host,
            srun_payload,
            srun_crash,
            srun_cancel,
            srun_timeout,
            srun_launcher_killed,
            srun_print,
            srun_start_failures_are_typed_and_bounded,
            srun_pool_killed,
            pipes_payload,
            pipes_crash,
            pipes_cancel,
            pipes_timeout,
            pipes_launcher_killed,
            pipes_print,
            shell_noise_is_reported_as_such,
            a_missing_program_is_reported_with_the_launcher,
            a_hung_link_is_found_by_the_keepalive,
            a_busy_link_both_ways_is_no_hung_link,
            cgroup_containment_is_refused_for_launchers,
        ],
        roles,
        |name| {
            let var = if name.starts_with("ssh_") {
                SSH
            } else if name.starts_with("srun_") {
                SRUN
            } else {
                return None;
            };
            std::env::var_os(var).is_none().then(|| {
                format!(
                    "{var} is not set (run `/work/shared/ci/launchers.sh cargo test --test \
                     remote`, as root with apt, to test through a real sshd and Slurm)"
                )
            })
        },
    );
}

/// The launcher for `kind`, from its environment variable.
fn launcher(kind: Kind) -> Launcher {
    let words = |var: &str| -> Vec<String> {
        let prefix = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
        prefix.split_whitespace().map(String::from).collect()
    };
    match kind {
        Kind::Ssh => Launcher::command(words(SSH)).quote_for_shell(),
        Kind::Srun => Launcher::command(words(SRUN)),
        Kind::Pipes => Launcher::command(["sh", "-c", r#""$@" | cat"#, "sh"]),
    }
    // A SIGKILLed srun leaves its step running: the worker ends when the
    // pings stop (3 intervals).
    .keepalive(Some(Duration::from_secs(1)))
}

/// A word in the workers' command lines, unique to one pool, so that its
/// processes on the "remote" side can be found in /proc.
fn tag() -> String {
    format!(
        "procpool-remote-test-{}-{}",
        std::process::id(),
        marker("tag").rsplit('-').next().unwrap()
    )
}

/// The pids of the processes whose command line holds `tag`, other than
/// launchers (whose command line holds the worker's).
fn tagged(tag: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let words: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        // The worker has the tag as an argument of its own; a launcher or a
        // shell has it inside a longer word, or after the program's path.
        let is_worker = words.last().is_some_and(|w| w.is_empty())
            && words
                .iter()
                .rev()
                .nth(1)
                .is_some_and(|w| *w == tag.as_bytes())
            && !words[0].ends_with(b"ssh")
            && !words[0].ends_with(b"srun")
            && !words[0].ends_with(b"sh")
            && !words[0].ends_with(b"env");
        if is_worker && is_alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// No process tagged `tag` is left, here or on the "remote" side, within
/// 10 s of the pool's shutdown.
async fn assert_nothing_left(tag: &str) {
    assert_eq!(
        wait_untagged(tag, Duration::from_secs(10)).await,
        Vec::<u32>::new()
    );
}

async fn wait_untagged(tag: &str, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = tagged(tag);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pool_through(kind: Kind, workers: usize, tag: &str) -> Pool {
    Pool::builder()
        .launcher(launcher(kind))
        .workers(workers)
        .worker_args([tag])
        .handshake_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap_or_else(|err| panic!("a pool through {kind:?} starts: {err}"))
}

/// 16 MiB each way, byte-exact, and many small tasks over several workers
/// that all came up through the launcher, at the same time.
async fn payload(kind: Kind) {
    let tag = tag();
    let started = Instant::now();
    let pool = pool_through(kind, 4, &tag).await;
    let took = started.elapsed();
    let remote = tagged(&tag);
    assert_eq!(
        remote.len(),
        4,
        "four workers on the other side: {remote:?}"
    );
    println!("{kind:?}: 4 workers started in {took:?}");
    let mut rng = XorShift::new(16);
    let blob: Vec<u8> = (0..16 << 20).map(|_| rng.next_u64() as u8).collect();
    let back = pool.submit(echo, Blob(blob.clone())).await.unwrap();
    assert!(back.0 == blob, "16 MiB came back byte-exact");
    let squares: Vec<u64> = futures::StreamExt::collect::<Vec<_>>(pool.map(square, 0..2000u64))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(squares, (0..2000u64).map(|x| x * x).collect::<Vec<_>>());
    let pids: std::collections::HashSet<u32> =
        futures::future::join_all((0..16).map(|_| pool.submit(sleep_ms, 50)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert!(pids.len() > 1, "tasks spread over the workers: {pids:?}");
    assert!(
        pids.iter().all(|pid| remote.contains(pid)),
        "tasks ran on the other side"
    );
    pool.shutdown().await;
    assert_nothing_left(&tag).await;
}

/// A crash fails its task only; the worker is replaced there.
async fn crash(kind: Kind) {
    let tag = tag();
    let pool = pool_through(kind, 2, &tag).await;
    let err = pool.submit(aborts, ()).await.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(pool.submit(square, 12).await.unwrap(), 144);
    for _ in 0..3 {
        assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    }
    drop(pool);
    assert_nothing_left(&tag).await;
}

/// Cancelling a running task ends it and what it started, on the other side.
async fn cancel(kind: Kind) {
    let tag = tag();
    let pool = pool_through(kind, 1, &tag).await;
    let path = marker("sleeper");
    let handle = pool.submit(spawn_sleeper, path.clone());
    let (worker, grandchild) = within(Duration::from_secs(20), "the task starts", async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Some((w, g)) = text.split_once(' ')
            {
                return (w.parse::<u32>().unwrap(), g.parse::<u32>().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(tagged(&tag).contains(&worker));
    drop(handle);
    let gone = tokio::task::spawn_blocking(move || {
        wait_gone(worker, Duration::from_secs(5)) && wait_gone(grandchild, Duration::from_secs(5))
    });
    assert!(
        gone.await.unwrap(),
        "the remote worker and its child are gone"
    );
    // The slot fills again.
    assert_eq!(pool.submit(square, 5).await.unwrap(), 25);
    pool.shutdown().await;
    let _ = std::fs::remove_file(&path);
    assert_nothing_left(&tag).await;
}

/// A timeout ends the remote task, and the pool goes on.
async fn timeout(kind: Kind) {
    let tag = tag();
    let pool = pool_through(kind, 1, &tag).await;
    let path = marker("timeout");
    let started = Instant::now();
    let err = pool
        .submit(touch_then_sleep, (path.clone(), 30_000))
        .timeout(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let worker: u32 = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let gone = tokio::task::spawn_blocking(move || wait_gone(worker, Duration::from_secs(5)));
    assert!(gone.await.unwrap(), "the timed-out worker is gone");
    assert_eq!(pool.submit(square, 6).await.unwrap(), 36);
    pool.shutdown().await;
    let _ = std::fs::remove_file(&path);
    assert_nothing_left(&tag).await;
}

/// SIGKILL to a launcher mid-task fails that worker's task only; the remote
/// worker ends (its stdin ends), and the pool starts another.
async fn launcher_killed(kind: Kind) {
    let tag = tag();
    let pool = pool_through(kind, 2, &tag).await;
    let paths = [marker("killed"), marker("killed")];
    let mut busy: Vec<_> = paths
        .iter()
        .map(|path| Box::pin(pool.submit(touch_then_sleep, (path.clone(), 30_000))))
        .collect();
    let workers = [
        wait_for_pid_file(&paths[0]).await,
        wait_for_pid_file(&paths[1]).await,
    ];
    assert_ne!(workers[0], workers[1], "one task per worker");
    // Our children are the launchers (which worker each serves cannot be
    // told through sshd, so either may go).
    let launchers: Vec<u32> = children_of(std::process::id())
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(launchers.len(), 2, "one launcher per worker: {launchers:?}");
    // SAFETY: kill takes plain integers; the pid is our unreaped child.
    unsafe { libc::kill(launchers[0] as i32, libc::SIGKILL) };
    let (outcome, _, rest) = within(
        Duration::from_secs(20),
        "the killed worker's task resolves",
        futures::future::select_all(busy.drain(..)),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    let mut survivor = rest.into_iter().next().unwrap();
    let still_running = tokio::time::timeout(Duration::from_millis(500), &mut survivor).await;
    assert!(still_running.is_err(), "the other worker's task runs on");
    let gone = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while workers.iter().all(|&w| is_alive(w)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        workers.iter().filter(|&&w| !is_alive(w)).count()
    });
    assert_eq!(
        gone.await.unwrap(),
        1,
        "the killed launcher's worker ended with its stdin"
    );
    drop(survivor);
    // Replaced (both: the cancel ended the survivor's worker): two new
    // workers serve again, once each has come up.
    within(Duration::from_secs(30), "two workers serve again", async {
        let mut pids = std::collections::HashSet::new();
        while pids.len() < 2 {
            for pid in futures::future::join_all((0..4).map(|_| pool.submit(sleep_ms, 100))).await {
                pids.insert(pid.unwrap());
            }
        }
        assert!(pids.iter().all(|pid| !workers.contains(pid)), "new workers");
    })
    .await;
    pool.shutdown().await;
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    assert_nothing_left(&tag).await;
}

/// A task's `println!` does not corrupt the stream, and channels run over
/// it both ways, with their flow control.
async fn print(kind: Kind) {
    let tag = tag();
    let pool = pool_through(kind, 1, &tag).await;
    for i in 0..20 {
        pool.submit(print_line, format!("printed by a remote task {i}"))
            .await
            .unwrap();
    }
    assert_eq!(pool.submit(square, 7).await.unwrap(), 49);
    let (tx, rx) = procpool::channel::<u64>(16);
    let task = pool.submit(produce, (5_000, tx));
    let got: Vec<u64> = within(
        Duration::from_secs(30),
        "the stream",
        futures::StreamExt::collect(futures::StreamExt::map(rx, Result::unwrap)),
    )
    .await;
    assert!(got.into_iter().eq(0..5_000), "in order, all of them");
    assert_eq!(task.await.unwrap(), 5_000);
    let (tx, rx) = procpool::channel::<u64>(4);
    let task = pool.submit(consume, rx);
    for i in 0..2_000 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    assert_eq!(task.await.unwrap(), (0..2_000).sum::<u64>());
    pool.shutdown().await;
    assert_nothing_left(&tag).await;
}

async fn ssh_start_failures_are_typed_and_bounded() {
    let words: Vec<String> = std::env::var(SSH)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    // Nothing listens on port 1; a key that does not exist is refused.
    let port_at = words.iter().position(|w| w == "-p").expect("ssh -p PORT") + 1;
    let mut unreachable = words.clone();
    unreachable[port_at] = "1".into();
    let key_at = words.iter().position(|w| w == "-i").expect("ssh -i KEY") + 1;
    let mut refused = words.clone();
    refused[key_at] = "/nonexistent-key".into();
    refused.insert(1, "IdentitiesOnly=yes".into());
    refused.insert(1, "-o".into());
    for (what, words, expect) in [
        ("unreachable", unreachable, "could not connect"),
        ("refused", refused, "Permission denied"),
    ] {
        let err = start_failure(Launcher::command(words).quote_for_shell(), |b| b).await;
        let text = err.to_string();
        assert!(text.contains("ssh"), "{what}: names the launcher: {text}");
        assert!(text.contains(expect), "{what}: says why: {text}");
    }
    start_failures_common(Kind::Ssh).await;
}

async fn srun_start_failures_are_typed_and_bounded() {
    start_failures_common(Kind::Srun).await;
}

/// A program missing there, and a different build there.
async fn start_failures_common(kind: Kind) {
    let err = start_failure(launcher(kind).program("/nonexistent/worker"), |b| b).await;
    let text = err.to_string();
    assert!(text.contains("not found"), "{text}");
    assert!(text.contains("/nonexistent/worker"), "{text}");
    let err = start_failure(launcher(kind), |b| b.env(ALT_REGISTRY, "1")).await;
    let text = err.to_string();
    assert!(text.contains("different tasks"), "{text}");
    assert!(text.contains("same build"), "{text}");
}

async fn start_failure(
    launcher: Launcher,
    configure: impl FnOnce(procpool::PoolBuilder) -> procpool::PoolBuilder,
) -> procpool::Error {
    let started = Instant::now();
    let built = configure(
        Pool::builder()
            .launcher(launcher)
            .workers(2)
            .stderr(procpool::Redirect::Null)
            .handshake_timeout(Duration::from_secs(20)),
    )
    .build()
    .await;
    let err = built.expect_err("the start fails");
    assert!(err.is_spawn(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "within bounded time: {:?}",
        started.elapsed()
    );
    err
}

/// A shell that prints before the worker starts (an rc file's `echo`) is
/// named as the problem, with what it printed.
async fn shell_noise_is_reported_as_such() {
    let launcher = Launcher::command(["sh", "-c", r#"echo "Welcome to node7"; exec "$@""#, "sh"]);
    let err = start_failure(launcher, |b| b).await;
    let text = err.to_string();
    assert!(text.contains("printed \"Welcome to node7"), "{text}");
    assert!(text.contains("rc file"), "{text}");
}

async fn a_missing_program_is_reported_with_the_launcher() {
    let launcher = Launcher::command(["sh", "-c", r#"exec "$@""#, "sh"]).program("/nonexistent/w");
    let err = start_failure(launcher, |b| b).await;
    let text = err.to_string();
    assert!(text.contains("`sh -c"), "names the launcher: {text}");
    assert!(text.contains("not found"), "{text}");
}

async fn cgroup_containment_is_refused_for_launchers() {
    let err = Pool::builder()
        .launcher(launcher(Kind::Pipes))
        .containment(procpool::Containment::Cgroup)
        .build()
        .await
        .expect_err("refused");
    assert!(
        err.is_spawn() && err.to_string().contains("Containment::Cgroup"),
        "{err}"
    );
}

/// One worker through pipes, checked by a keepalive every `every`.
async fn one_piped_worker_with_keepalive(every: Duration) -> Pool {
    Pool::builder()
        .launcher(launcher(Kind::Pipes).keepalive(Some(every)))
        .workers(1)
        .build()
        .await
        .unwrap()
}

/// A link with nothing answering behind it (here: the worker stopped, as a
/// frozen host would be) is found by the keepalive and given up; the pool
/// goes on with a new worker.
async fn a_hung_link_is_found_by_the_keepalive() {
    let pool = one_piped_worker_with_keepalive(Duration::from_millis(500)).await;
    let path = marker("hung");
    let busy = pool.submit(touch_then_sleep, (path.clone(), 30_000));
    let worker = wait_for_pid_file(&path).await;
    // SAFETY: kill takes plain integers; the worker runs our task.
    unsafe { libc::kill(worker as i32, libc::SIGSTOP) };
    let started = Instant::now();
    let err = within(Duration::from_secs(10), "the hung link is found", busy)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hung"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // Let it go: it finds its stdin ended, and ends.
    // SAFETY: as above.
    unsafe { libc::kill(worker as i32, libc::SIGCONT) };
    let gone = tokio::task::spawn_blocking(move || wait_gone(worker, Duration::from_secs(5)));
    assert!(
        gone.await.unwrap(),
        "the stopped worker ends once it runs again"
    );
    assert_eq!(pool.submit(square, 4).await.unwrap(), 16);
    pool.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

/// Large echo calls (the pool's replies pile up, and it stops reading)
/// while large channel messages flow to the same task: busy both ways,
/// never silent for the keepalive's two intervals.
async fn a_busy_link_both_ways_is_no_hung_link() {
    const BLOBS: u64 = 48;
    const BLOB: usize = 4 << 20;
    let pool = one_piped_worker_with_keepalive(Duration::from_millis(300)).await;
    let (tx, rx) = procpool::channel::<Blob>(2);
    let task = pool.submit(echo_while_receiving, (rx, 4, 6, 8 << 20));
    for i in 0..BLOBS {
        within(
            Duration::from_secs(20),
            "a send",
            tx.send(Blob(vec![i as u8; BLOB])),
        )
        .await
        .unwrap();
    }
    drop(tx);
    let (intact, received) = within(Duration::from_secs(30), "the task", task)
        .await
        .unwrap();
    assert_eq!(intact, 24);
    assert_eq!(received, BLOBS * BLOB as u64);
    assert_eq!(pool.stats().respawns, 0);
    pool.shutdown().await;
}

/// A pool process that runs two busy workers through the launcher named in
/// the role (`parent <ssh|srun> <tag>`), says so, and waits to be killed.
fn roles(role: &str) {
    let mut words = role.split(' ');
    assert_eq!(words.next(), Some("parent"));
    let kind = match words.next() {
        Some("ssh") => Kind::Ssh,
        _ => Kind::Srun,
    };
    let tag = words.next().unwrap().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool_through(kind, 2, &tag).await;
        let paths = [marker("parent"), marker("parent")];
        let busy: Vec<_> = paths
            .iter()
            .map(|path| pool.submit(touch_then_sleep, (path.clone(), 60_000)))
            .collect();
        for path in &paths {
            wait_for_pid_file(path).await;
            let _ = std::fs::remove_file(path);
        }
        println!("busy");
        futures::future::join_all(busy).await;
    });
}

/// The pool's process SIGKILLed: its busy remote workers are gone within a
/// couple of seconds (their stdin ends with the launchers' socket).
async fn pool_killed(kind: Kind) {
    let tag = tag();
    let name = if matches!(kind, Kind::Ssh) {
        "ssh"
    } else {
        "srun"
    };
    let role = format!("parent {name} {tag}");
    let (mut parent, line) = tokio::task::spawn_blocking(move || start_role(&role))
        .await
        .unwrap();
    assert_eq!(line, "busy\n");
    assert_eq!(tagged(&tag).len(), 2, "two busy workers on the other side");
    parent.kill().unwrap();
    parent.wait().unwrap();
    let killed = Instant::now();
    let left = wait_untagged(&tag, Duration::from_secs(3)).await;
    assert_eq!(
        left,
        Vec::<u32>::new(),
        "remote workers outlived their pool"
    );
    println!(
        "{kind:?}: remote workers gone {:?} after the pool's SIGKILL",
        killed.elapsed()
    );
}

/// `Launcher::ssh(host)` with the test sshd's options as `ssh_args`: the
/// preset's own command line (`-T -o BatchMode=yes … -- HOST`) works.
async fn ssh_preset_reaches_the_host() {
    let words: Vec<String> = std::env::var(SSH)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let (host, options) = words[1..].split_last().expect("ssh OPTIONS HOST");
    let tag = tag();
    let pool = Pool::builder()
        .launcher(Launcher::ssh(host).ssh_args(options))
        .workers(2)
        .worker_args(["an argument with spaces and 'quotes'", tag.as_str()])
        .build()
        .await
        .unwrap();
    assert_eq!(pool.submit(square, 9).await.unwrap(), 81);
    // The worker's argv came through the remote shell word for word.
    let workers = tagged(&tag);
    assert_eq!(workers.len(), 2, "both workers");
    for pid in workers {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        assert_eq!(
            argv[argv.len() - 3],
            b"an argument with spaces and 'quotes'",
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    pool.shutdown().await;
    assert_nothing_left(&tag).await;
}
