//! procpool in one screen: spread CPU-heavy work over worker processes, and
//! see a panicking task and a crashing one reported as errors while the rest
//! completes.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::time::Instant;

use procpool::Pool;

/// Counts the primes in `[start, end)` by trial division: deliberately
/// CPU-bound. Returns the count and the pid of the process that did the work.
fn count_primes(start: u64, end: u64) -> (u64, u32) {
    let is_prime = |n: u64| {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    };
    (
        (start..end).filter(|&n| is_prime(n)).count() as u64,
        std::process::id(),
    )
}

/// A task with a bug.
fn parse_port(text: String) -> u16 {
    text.parse().expect("a port number")
}

/// A task that takes its whole process down, as a bad native library might.
fn crash(_: ()) -> u64 {
    std::process::abort()
}

const LIMIT: u64 = 4_000_000;
const CHUNKS: u64 = 16;

fn main() -> Result<(), procpool::Error> {
    // In a worker process this serves tasks and never returns.
    procpool::init(procpool::tasks![count_primes, parse_port, crash]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let started = Instant::now();
    let pool = Pool::builder().build().await?;
    println!(
        "pool of {} workers ready in {:.1?}",
        pool.stats().workers,
        started.elapsed()
    );

    // Serial baseline, in this process.
    let started = Instant::now();
    let (serial, _) = count_primes(0, LIMIT);
    let serial_time = started.elapsed();
    println!("one process:   {serial} primes below {LIMIT} in {serial_time:.2?}");

    // The same work in chunks, spread over the workers.
    let started = Instant::now();
    let step = LIMIT / CHUNKS;
    let handles: Vec<_> = (0..CHUNKS)
        .map(|i| pool.submit(count_primes, (i * step, (i + 1) * step)))
        .collect();
    // Submitted alongside: one task that panics, one that aborts its worker.
    let buggy = pool.submit(parse_port, "eighty".to_string());
    let crashing = pool.submit(crash, ());

    let mut total = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        let (count, pid) = handle.await?;
        println!(
            "  chunk {i:>2} [{:>8}, {:>8}): {count:>6} primes, worker pid {pid}",
            i as u64 * step,
            (i as u64 + 1) * step
        );
        total += count;
    }
    let pool_time = started.elapsed();
    assert_eq!(total, serial);
    println!(
        "pool:          {total} primes in {pool_time:.2?} ({:.2}x faster)",
        serial_time.as_secs_f64() / pool_time.as_secs_f64()
    );

    match buggy.await {
        Ok(port) => println!("parse_port unexpectedly returned {port}"),
        Err(err) => println!("panicking task  -> error: {err}"),
    }
    match crashing.await {
        Ok(_) => println!("crash unexpectedly returned"),
        Err(err) => println!("crashing task   -> error: {err}"),
    }
    println!(
        "the pool carries on: {:?}",
        pool.submit(count_primes, (0, 100)).await?.0
    );
    println!("{:?}", pool.stats());
    pool.shutdown().await;
    Ok(())
}
