//! Queues, as the seeds use them: a producer process puts the even numbers
//! of 0..100 on a queue and the parent reads until it is empty (the seeds'
//! `get_even`); then a producer/consumer pipeline through the pool, with
//! the parent putting work on one queue and several tasks taking from it.
//!
//! Run it with `cargo run --release --example queue`.

use procpool::{Pool, Queue, Sender};

/// Puts the even numbers below `n` on `queue`.
fn get_even(n: u64, queue: Queue<u64>) {
    for i in (0..n).filter(|i| i % 2 == 0) {
        queue
            .blocking_put(i)
            .expect("the queue is open while we hold it");
    }
}

/// Takes numbers from `jobs` until a `None`, sending each one's square
/// and the worker's pid to `results`; returns how many it took.
fn square_jobs(jobs: Queue<Option<u64>>, results: Sender<(u64, u64, u32)>) -> u64 {
    let mut taken = 0;
    while let Some(n) = jobs.blocking_get().expect("the parent holds the queue") {
        results
            .blocking_send((n, n * n, std::process::id()))
            .expect("the parent reads results");
        taken += 1;
    }
    taken
}

fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![get_even, square_jobs]);
    tokio::runtime::Runtime::new()?.block_on(async {
        // 1. The seeds' get_even: a process fills the queue, we empty it.
        let queue = Queue::new(100);
        procpool::spawn(get_even, (100, queue.clone())).await?;
        let mut evens = Vec::new();
        // The producer is done: read until a get finds nothing.
        while let Some(n) = queue.try_get()? {
            evens.push(n);
        }
        println!("evens: {evens:?}");
        assert_eq!(evens, (0..100).filter(|i| i % 2 == 0).collect::<Vec<_>>());

        // 2. A pipeline: we put jobs, four tasks take them.
        let pool = Pool::builder().workers(4).build().await?;
        let jobs = Queue::new(16);
        let (results, squares) = procpool::channel(16);
        let consumers: Vec<_> = (0..4)
            .map(|_| pool.submit(square_jobs, (jobs.clone(), results.clone())))
            .collect();
        drop(results); // the tasks hold the senders now
        let feed = async {
            for n in 0..1_000 {
                jobs.put(Some(n)).await?;
            }
            for _ in &consumers {
                jobs.put(None).await?; // one stop sign each
            }
            Ok::<_, procpool::Error>(())
        };
        let collect = async {
            let mut total = 0u64;
            let mut pids = std::collections::BTreeSet::new();
            while let Ok((_, square, pid)) = squares.recv().await {
                total += square;
                pids.insert(pid);
            }
            (total, pids)
        };
        let (fed, (total, pids)) = futures::join!(feed, collect);
        fed?;
        let taken = futures::future::try_join_all(consumers).await?;
        println!("taken per task: {taken:?}, by {} workers", pids.len());
        assert_eq!(total, (0..1_000u64).map(|n| n * n).sum());
        println!("sum of squares below 1,000: {total}");
        pool.shutdown().await;
        Ok(())
    })
}
