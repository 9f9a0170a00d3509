//! `Pool::map` over two million lazily generated inputs, in order, with a live progress bar; timed against one process.
//!
//! Run it with `cargo run --release --example stream_map` (the bar shows on a terminal only).

use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use procpool::Pool;

/// Counts the divisors of `n` by trial division up to its square root:
/// deliberately naive CPU work, a few microseconds per item, growing with `n`.
fn divisors(n: u32) -> u32 {
    let mut count = 0;
    let mut d = 1;
    while d * d <= n {
        if n.is_multiple_of(d) {
            count += if d * d == n { 1 } else { 2 };
        }
        d += 1;
    }
    count
}

/// Items to map: every number in `1..=N`.
const N: u32 = 2_000_000;
/// The serial baseline runs on every `SAMPLE`th item and is extrapolated.
const SAMPLE: u32 = 8;

/// An order-sensitive checksum: it only matches if results come in input order.
fn mix(sum: u64, value: u32) -> u64 {
    sum.rotate_left(7) ^ u64::from(value)
}

fn main() -> Result<(), procpool::Error> {
    // In a worker process this serves tasks and never returns.
    procpool::init(procpool::tasks![divisors]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let pool = Pool::builder().build().await?;
    let workers = pool.stats().workers;
    let bar = ProgressBar::new(N.into()).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items, {per_sec:0}, ETA {eta}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));

    // The input is an iterator, pulled lazily a window of chunks at a time:
    // neither all N inputs nor all N results are ever held at once.
    let started = Instant::now();
    let mut results = pool.map(divisors, 1..=N);
    let (mut n, mut checksum, mut sample_checksum, mut best) = (0u32, 0, 0, (0, 0));
    while let Some(result) = results.next().await {
        let count = result?;
        n += 1;
        checksum = mix(checksum, count);
        if n.is_multiple_of(SAMPLE) {
            sample_checksum = mix(sample_checksum, count);
        }
        if count > best.0 {
            best = (count, n);
        }
        if n % 1024 == 0 {
            bar.set_position(n.into());
        }
    }
    let pool_time = started.elapsed();
    bar.finish_and_clear();
    println!(
        "pool, {workers} workers: {n} items in {pool_time:.2?} ({:.0} items/s), checksum {checksum:016x}",
        f64::from(n) / pool_time.as_secs_f64()
    );
    println!("most divisors up to {N}: {} has {}", best.1, best.0);

    // The baseline: the same function in this process, on every SAMPLE-th
    // item (spread over the whole range, as the cost grows with n), scaled up.
    let started = Instant::now();
    let serial_sample = (SAMPLE..=N)
        .step_by(SAMPLE as usize)
        .fold(0, |sum, n| mix(sum, divisors(n)));
    let sample_time = started.elapsed();
    let serial_time = sample_time * SAMPLE;
    assert_eq!(serial_sample, sample_checksum, "pool and serial disagree");
    println!(
        "one process: ~{serial_time:.2?}, extrapolated from every {SAMPLE}th item ({} items in {sample_time:.2?}; same results as the pool)",
        N / SAMPLE
    );
    println!(
        "speed-up: {:.2}x with {workers} workers",
        serial_time.as_secs_f64() / pool_time.as_secs_f64()
    );
    println!("{:?}", pool.stats());
    pool.shutdown().await;
    Ok(())
}
