//! A request handler offloading CPU work to a pool: a missed deadline and a disconnected client really stop that work.
//!
//! Run it with `cargo run --release --example cancel_timeout` (Linux: it watches the workers in /proc).

use std::time::{Duration, Instant};

use procpool::Pool;

/// Burns the CPU for `secs` seconds (at most 30, so a bug cannot hang
/// anything for long) and returns its pid and a hash. Like most real CPU
/// work, it never checks whether anyone still wants the answer.
fn spin(secs: f64) -> (u32, u64) {
    let (started, limit) = (Instant::now(), Duration::from_secs_f64(secs.min(30.0)));
    let mut x = 1u64;
    while started.elapsed() < limit {
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
    }
    (std::process::id(), x)
}

/// The "service": handles one request by offloading its work to the pool,
/// within the request's deadline. Dropping this future cancels the work.
/// (`tokio::time::timeout(deadline, pool.submit(..))` would do the same, as
/// it drops the handle; `.timeout` also makes the error say so.)
async fn handle(pool: Pool, work_secs: f64, deadline: Duration) -> Result<String, procpool::Error> {
    let (pid, hash) = pool.submit(spin, work_secs).timeout(deadline).await?;
    Ok(format!("{hash:016x} from worker {pid}"))
}

/// The pool's workers (this process's children), and the one on a CPU, if any.
fn workers() -> (Vec<u32>, Option<u32>) {
    let (me, mut pids, mut running) = (std::process::id(), Vec::new(), None);
    for entry in std::fs::read_dir("/proc").expect("Linux /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": split after the ')', as comm may hold spaces.
        let mut fields = stat[stat.rfind(')').map_or(0, |i| i + 1)..].split_whitespace();
        let state = fields.next();
        if fields.next().and_then(|ppid| ppid.parse().ok()) == Some(me) {
            pids.push(pid);
            running = running.or((state == Some("R")).then_some(pid));
        }
    }
    pids.sort_unstable();
    (pids, running)
}

/// Polls `done` every millisecond; the time since `start` when it held.
async fn until(start: Instant, done: impl Fn() -> bool) -> Duration {
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "gave up waiting");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a worker process this serves tasks and never returns.
    procpool::init(procpool::tasks![spin]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().workers(2).build().await?;
    println!("pool ready, workers {:?}", workers().0);

    let started = Instant::now();
    let reply = handle(pool.clone(), 0.2, Duration::from_secs(2)).await?;
    println!(
        "normal request (0.2 s of work, 2 s deadline): {reply} in {:.0?}",
        started.elapsed()
    );

    // (a) Work that outlives its deadline; (b) a client that hangs up after
    // 0.5 s, modelled by aborting the spawned handler. Both have 30 s of work.
    for case in ["(a) deadline 1 s", "(b) client leaves after 0.5 s"] {
        let deadline = if case.starts_with("(a)") { 1 } else { 60 };
        let request = tokio::spawn(handle(pool.clone(), 30.0, Duration::from_secs(deadline)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = workers().1.expect("a worker running the request");
        println!("{case}: request with 30 s of work is running on worker {pid}");
        let respawns = pool.stats().respawns;
        if case.starts_with("(b)") {
            tokio::time::sleep(Duration::from_millis(200)).await;
            request.abort(); // drops the handler future, and with it the task handle
        }
        let outcome = match request.await {
            Ok(Ok(reply)) => format!("unexpected reply {reply}"),
            Ok(Err(err)) => format!("handler returned error: {err}"),
            Err(err) if err.is_cancelled() => {
                "handler dropped mid-way (its JoinHandle aborted)".into()
            }
            Err(err) => format!("handler task failed: {err}"),
        };
        let dropped = Instant::now();
        println!("    {outcome}");

        // The proof: the worker process is gone, it was replaced, no worker is
        // left burning a CPU, and the next request is served at once.
        let gone = until(dropped, || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
        until(dropped, || pool.stats().respawns > respawns).await;
        until(dropped, || workers().1.is_none()).await;
        println!(
            "    /proc/{pid} gone {gone:.1?} later; respawns {respawns} -> {}; no worker on a CPU; workers now {:?}",
            pool.stats().respawns,
            workers().0
        );
        let started = Instant::now();
        let reply = handle(pool.clone(), 0.01, Duration::from_secs(2)).await?;
        assert!(
            !reply.ends_with(&format!(" {pid}")),
            "served by the killed worker"
        );
        println!("    next request: {reply} in {:.0?}", started.elapsed());
    }
    println!("{:?}", pool.stats());
    pool.shutdown().await;
    Ok(())
}
