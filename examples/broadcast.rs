//! A 256 MiB read-only table shared by every task of a pool: each worker reads all of it in place, and the machine holds it once (the workers' PSS shows it).
//!
//! Run it with `cargo run --release --example broadcast` (Linux: it reads /proc/self/smaps_rollup).

use std::time::Instant;

use procpool::Pool;
use procpool::shared::{SharedSlice, SharedValue};

const MIB: usize = 1 << 20;

/// Sums the whole table (every page read in place), and says who did it
/// and what that process's memory looks like while every worker maps it
/// (`gate` counts who has arrived and who has measured).
fn sum(table: SharedSlice<u64>, gate: SharedValue<u32>, workers: u32) -> (u32, u64, Memory) {
    let total = table.iter().fold(0u64, |acc, &x| acc.wrapping_add(x));
    gate.fetch_add(1);
    wait_until(&gate, workers);
    let memory = Memory::of_self();
    gate.fetch_add(1);
    wait_until(&gate, 2 * workers + 1); // the pool's process measured too
    (std::process::id(), total, memory)
}

/// Waits (10 s at most) until `gate` reaches `n`.
fn wait_until(gate: &SharedValue<u32>, n: u32) {
    let started = Instant::now();
    while gate.load() < n && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// From `/proc/self/smaps_rollup`, in MiB: resident (counted whole in every
/// process that maps a page) and proportional (a shared page split between
/// the processes mapping it).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Memory {
    rss: u64,
    pss: u64,
}

impl Memory {
    fn of_self() -> Memory {
        let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024)
        };
        Memory {
            rss: field("Rss:"),
            pss: field("Pss:"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![sum]);
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(2);
    // One task per worker at a time, so all of them run at once.
    let pool = Pool::builder()
        .workers(workers)
        .max_in_flight_per_worker(1)
        .build()
        .await?;

    let started = Instant::now();
    let table = SharedSlice::<u64>::with_len(256 * MIB / 8, |values| {
        for (i, x) in values.iter_mut().enumerate() {
            *x = i as u64;
        }
    })?;
    println!("filled and sealed 256 MiB in {:?}", started.elapsed());
    let expected = table.iter().fold(0u64, |acc, &x| acc.wrapping_add(x));

    let started = Instant::now();
    let tasks = workers as u32;
    let gate = SharedValue::new(0u32)?;
    let handles: Vec<_> = (0..tasks)
        .map(|_| pool.submit(sum, (table.clone(), gate.clone(), tasks)))
        .collect();
    // Measured while every worker maps the table, then they may go on.
    while gate.load() < 2 * tasks && started.elapsed().as_secs() < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let me = Memory::of_self();
    gate.fetch_add(1);
    let mut per_worker = std::collections::BTreeMap::new();
    for handle in handles {
        let (pid, total, memory) = handle.await?;
        assert_eq!(total, expected, "every task read the same table");
        per_worker.insert(pid, memory);
    }
    println!(
        "{tasks} tasks each read all 256 MiB in place in {:?} ({} workers)",
        started.elapsed(),
        per_worker.len()
    );
    println!("process      RSS MiB  PSS MiB");
    println!("pool         {:>7}  {:>7}", me.rss, me.pss);
    for (pid, memory) in &per_worker {
        println!("worker {pid:<6}{:>7}  {:>7}", memory.rss, memory.pss);
    }
    let pss: u64 = me.pss + per_worker.values().map(|m| m.pss).sum::<u64>();
    let rss: u64 = me.rss + per_worker.values().map(|m| m.rss).sum::<u64>();
    println!(
        "total        {rss:>7}  {pss:>7}   (RSS counts the table in every process; PSS splits \
         it, so the machine holds it once)"
    );
    pool.shutdown().await;
    Ok(())
}
