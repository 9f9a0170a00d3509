//! The quickstart's computation on workers started by a launcher command
//! (ssh, srun, ...), read from `PROCPOOL_LAUNCHER`, with what it costs:
//! start-up, and one small task's round trip, beside local workers.
//!
//! ```text
//! PROCPOOL_LAUNCHER="ssh node7" cargo run --release --example remote
//! PROCPOOL_LAUNCHER="srun --quiet -u -N1 -n1" cargo run --release --example remote
//! ```
//!
//! The command is split on whitespace; a prefix starting with `ssh` has the
//! worker's command quoted for the remote shell. Without the variable, it
//! runs on local workers and says so. The same build of this example must
//! be at the same path on the other host.

use std::time::{Duration, Instant};

use procpool::{Launcher, Pool};

/// Counts the primes in `[start, end)` by trial division (the quickstart's
/// task), with the host it ran on.
fn count_primes(start: u64, end: u64) -> (u64, String) {
    let is_prime = |n: u64| {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    (
        (start..end).filter(|&n| is_prime(n)).count() as u64,
        format!("{} (pid {})", host.trim(), std::process::id()),
    )
}

/// The smallest task: for the round trip.
fn nothing(x: u64) -> u64 {
    x
}

const LIMIT: u64 = 2_000_000;
const CHUNKS: u64 = 16;
const WORKERS: usize = 2;
const ROUND_TRIPS: u32 = 2000;

fn main() -> Result<(), procpool::Error> {
    // In a worker process (here or there) this serves tasks and never returns.
    procpool::init(procpool::tasks![count_primes, nothing]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let launcher = match std::env::var("PROCPOOL_LAUNCHER") {
        Ok(prefix) if !prefix.trim().is_empty() => {
            let words: Vec<&str> = prefix.split_whitespace().collect();
            let launcher = Launcher::command(words.iter().copied());
            if words[0] == "ssh" {
                launcher.quote_for_shell()
            } else {
                launcher
            }
        }
        _ => {
            println!(
                "note: PROCPOOL_LAUNCHER is not set, so the workers are local; set it to a \
                 command prefix such as \"ssh HOST\" or \"srun --quiet -u -N1 -n1\""
            );
            Launcher::local()
        }
    };
    let mut results = Vec::new();
    if !launcher.is_local() {
        results.push(("local", measure(Launcher::local()).await?));
    }
    let name = if launcher.is_local() {
        "local"
    } else {
        "launcher"
    };
    results.push((name, measure(launcher.clone()).await?));
    for (name, (startup, round_trip)) in &results {
        println!(
            "{name:>8}: {WORKERS} workers up in {startup:.1?}; one task's round trip {round_trip:.1?}"
        );
    }

    let pool = Pool::builder()
        .launcher(launcher)
        .workers(WORKERS)
        .build()
        .await?;
    let started = Instant::now();
    let chunk = LIMIT / CHUNKS;
    let handles: Vec<_> = (0..CHUNKS)
        .map(|i| pool.submit(count_primes, (i * chunk, (i + 1) * chunk)))
        .collect();
    let mut total = 0;
    let mut hosts = std::collections::BTreeSet::new();
    for handle in handles {
        let (count, host) = handle.await?;
        total += count;
        hosts.insert(host);
    }
    println!(
        "{total} primes below {LIMIT} in {:.2?}, counted by {}",
        started.elapsed(),
        hosts.into_iter().collect::<Vec<_>>().join(", ")
    );
    pool.shutdown().await;
    Ok(())
}

/// How long `WORKERS` workers take to start through `launcher`, and the
/// mean round trip of one small task, one at a time.
async fn measure(launcher: Launcher) -> Result<(Duration, Duration), procpool::Error> {
    let started = Instant::now();
    let pool = Pool::builder()
        .launcher(launcher)
        .workers(WORKERS)
        .build()
        .await?;
    let startup = started.elapsed();
    for i in 0..100 {
        pool.submit(nothing, i).await?;
    }
    let started = Instant::now();
    for i in 0..u64::from(ROUND_TRIPS) {
        pool.submit(nothing, i).await?;
    }
    let round_trip = started.elapsed() / ROUND_TRIPS;
    pool.shutdown().await;
    Ok((startup, round_trip))
}
