//! The seeds' parallel-versus-serial benchmark: 100,000 tasks, each
//! returning the cubes of `0..1000`. As a `Vec<u64>`, serde writes each
//! result element by element (a varint each), and the pool spends more time
//! encoding than the loop spends computing; as a `procpool::Buffer<u64>`
//! the 8 KB result is one block.
//!
//! ```text
//! cargo run --release --example cubes
//! ```

use std::time::Instant;

use futures::TryStreamExt;
use procpool::{Buffer, Pool};

const TASKS: u64 = 100_000;
const CUBES: u64 = 1_000;

fn cubes_vec(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i * i).collect()
}

fn cubes_buffer(n: u64) -> Buffer<u64> {
    (0..n).map(|i| i * i * i).collect()
}

fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![cubes_vec, cubes_buffer]);
    let tasks = std::env::var("CUBES_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(TASKS);
    // Every way keeps all the results, as the seeds' program does.
    let started = Instant::now();
    let results: Vec<Vec<u64>> = (0..tasks).map(|_| cubes_vec(CUBES)).collect();
    let serial_time = started.elapsed();
    let serial: u64 = results.iter().map(|c| c[999]).sum();
    drop(results);
    println!("serial loop:                  {serial_time:>10.2?}");
    tokio::runtime::Runtime::new()?.block_on(async {
        let pool = Pool::builder().build().await?;
        let inputs = || (0..tasks).map(|_| CUBES);

        let started = Instant::now();
        let results: Vec<Vec<u64>> = pool.map(cubes_vec, inputs()).try_collect().await?;
        let vec_time = started.elapsed();
        assert_eq!(results.iter().map(|c| c[999]).sum::<u64>(), serial);
        drop(results);
        println!(
            "pool, Vec<u64> results:       {vec_time:>10.2?} ({:.1}x the loop)",
            vec_time.as_secs_f64() / serial_time.as_secs_f64()
        );

        let started = Instant::now();
        let results: Vec<Buffer<u64>> = pool.map(cubes_buffer, inputs()).try_collect().await?;
        let buffer_time = started.elapsed();
        assert_eq!(results.iter().map(|c| c[999]).sum::<u64>(), serial);
        println!(
            "pool, Buffer<u64> results:    {buffer_time:>10.2?} ({:.1}x the loop)",
            buffer_time.as_secs_f64() / serial_time.as_secs_f64()
        );
        pool.shutdown().await;
        Ok(())
    })
}
