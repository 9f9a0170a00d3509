//! What `pool.insights()` shows after a run of mixed tasks: short ones, long
//! ones and a panicking one (whose error carries its worker-side backtrace).
//!
//! Run it with `cargo run --release --example insights`.

use std::time::Duration;

use procpool::Pool;

/// A short task: a few microseconds of arithmetic.
fn checksum(seed: u64) -> u64 {
    (0..1_000).fold(seed, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// A long task: sleeps (as I/O or a slow library call would).
fn slow(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A task with a bug.
fn parse_port(text: String) -> u16 {
    text.parse().expect("a port number")
}

fn main() -> Result<(), procpool::Error> {
    // In a worker process this serves tasks and never returns.
    procpool::init(procpool::tasks![checksum, slow, parse_port]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let pool = Pool::builder()
        .workers(2)
        .capture_backtraces(true)
        .build()
        .await?;

    // 2,000 short tasks with 8 long ones among them, all submitted at once:
    // the short ones queue behind the long ones for a while.
    let short: Vec<_> = (0..2_000).map(|i| pool.submit(checksum, i)).collect();
    let long: Vec<_> = (0..8).map(|i| pool.submit(slow, 20 + 10 * i)).collect();
    let buggy = pool.submit(parse_port, "eighty".to_string());
    futures::future::try_join_all(short).await?;
    futures::future::try_join_all(long).await?;
    let err = buggy.await.unwrap_err();
    println!("the panicking task's error:\n{err}\n");

    let insights = pool.insights().await;
    println!("{insights}");
    let tasks: u64 = insights.workers.iter().map(|w| w.tasks).sum();
    assert_eq!(tasks, 2_009, "every result awaited is counted");
    pool.shutdown().await;
    Ok(())
}
