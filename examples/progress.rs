//! Progress and partial results from tasks while they run: a long
//! computation in the pool reports how far it got to a progress bar in
//! this process, and a second task streams partial results, consumed here
//! as a `Stream`.
//!
//! Run it with `cargo run --release --example progress`.

use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use procpool::{Pool, Sender};

/// Sums the squares below `n`, sending the percentage done as it goes.
fn long_sum(n: u64, progress: Sender<u8>) -> u64 {
    let mut sum = 0u64;
    let mut reported = 0;
    for i in 0..n {
        sum = sum.wrapping_add(std::hint::black_box(i * i));
        let percent = (i * 100 / n) as u8;
        if percent > reported {
            reported = percent;
            // Waits (does not buffer without bound) if nobody reads.
            progress.blocking_send(percent).expect("the parent listens");
        }
    }
    sum
}

/// Finds the primes below `n`, sending each batch of 1,000 as soon as it
/// is complete; returns how many it found.
fn primes_in_batches(n: u64, batches: Sender<Vec<u64>>) -> usize {
    let mut batch = Vec::with_capacity(1_000);
    let mut found = 0;
    for k in 2..n {
        if (2..).take_while(|d| d * d <= k).all(|d| k % d != 0) {
            batch.push(k);
            found += 1;
            if batch.len() == 1_000 {
                batches.blocking_send(std::mem::take(&mut batch)).unwrap();
            }
        }
    }
    if !batch.is_empty() {
        batches.blocking_send(batch).unwrap();
    }
    found
}

fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![long_sum, primes_in_batches]);
    tokio::runtime::Runtime::new()?.block_on(async {
        let pool = Pool::builder().workers(2).build().await?;

        // 1. Percent done, to a progress bar.
        let (progress, mut percents) = procpool::channel(16);
        let sum = pool.submit(long_sum, (300_000_000, progress));
        let bar = ProgressBar::new(100).with_style(
            ProgressStyle::with_template("{bar:40} {pos:>3}% {msg}").expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        while let Some(percent) = percents.next().await {
            bar.set_position(u64::from(percent?));
        }
        // The channel ended: the task let go of its sender, so it is done.
        let sum = sum.await?;
        bar.finish_with_message(format!("sum of squares: {sum}"));

        // 2. Partial results as a stream, while the task still runs.
        let (tx, mut batches) = procpool::channel(4);
        let task = pool.submit(primes_in_batches, (200_000, tx));
        let mut seen = 0;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            seen += batch.len();
            println!(
                "a batch of {} primes, up to {} ({seen} so far)",
                batch.len(),
                batch.last().expect("batches are not empty")
            );
        }
        let found = task.await?;
        assert_eq!(found, seen, "every prime came through the channel");
        println!("{found} primes below 200,000");

        pool.shutdown().await;
        Ok(())
    })
}
