//! Waiting on many tasks: `as_completed`, `wait` in its three modes, `on_done` callbacks, and `FuturesUnordered`.
//!
//! Run it with `cargo run --release --example waiting`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use procpool::{Pool, WaitFor};

/// A task that takes `ms` milliseconds and returns it.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A task that fails after `ms` milliseconds.
fn nap_then_fail(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("gave up after {ms} ms")
}

fn main() -> Result<(), procpool::Error> {
    // In a worker process this serves tasks and never returns.
    procpool::init(procpool::tasks![nap, nap_then_fail]);
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let pool = Pool::builder().workers(4).build().await?;
    let t0 = Instant::now();
    let since = |t: Instant| t.elapsed().as_millis();

    println!("as_completed, tasks of 400, 100, 300, 200 ms, in completion order:");
    let handles = [400, 100, 300, 200].map(|ms| pool.submit(nap, ms));
    let mut done = procpool::as_completed(handles);
    let t = Instant::now();
    while let Some((i, result)) = done.next().await {
        println!("  task {i} -> {:?} at {} ms", result?, since(t));
    }

    for mode in [
        WaitFor::FirstCompleted,
        WaitFor::FirstError,
        WaitFor::AllCompleted,
    ] {
        // Task 1 fails after 150 ms; the others succeed.
        let handles = vec![
            pool.submit(nap, 300),
            pool.submit(nap_then_fail, 150),
            pool.submit(nap, 50),
            pool.submit(nap, 600),
        ];
        let t = Instant::now();
        let waited = procpool::wait(handles, mode).await;
        println!("wait({mode:?}) returned after {} ms:", since(t));
        for (i, result) in &waited.done {
            match result {
                Ok(value) => println!("  done    task {i}: {value}"),
                Err(err) => println!("  done    task {i}: error: {err}"),
            }
        }
        let pending: Vec<usize> = waited.pending.iter().map(|(i, _)| *i).collect();
        if !pending.is_empty() {
            println!("  pending tasks {pending:?}: dropped, which cancels them");
        }
        drop(waited.pending); // running ones: their workers are killed and replaced
    }

    // Callbacks: fire-and-forget tasks that report back through a closure.
    let fired = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    for ms in (10..=100).step_by(10) {
        let (fired, total) = (fired.clone(), total.clone());
        pool.submit(nap, ms)
            .on_done(move |result| {
                total.fetch_add(result.map_or(0, |ms| ms as usize), Ordering::SeqCst);
                fired.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
    }
    while fired.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "on_done: all 10 callbacks fired within {} ms; the results add up to {}",
        since(t),
        total.load(Ordering::SeqCst)
    );

    // The same as `as_completed`, with `FuturesUnordered` from `futures`.
    // `as_completed` and `wait` take a fixed batch of handles and identify a
    // result by its position. `FuturesUnordered` is the general tool: each
    // future can carry its own context (here, its input), and you can push
    // new work while draining it, e.g. to keep a bounded number of tasks in
    // flight. For a stream of inputs, `pool.map_unordered` does that for you.
    let submit = |ms| {
        let handle = pool.submit(nap, ms);
        async move { (ms, handle.await) }
    };
    let mut in_flight: FuturesUnordered<_> = [250, 50, 150].map(submit).into_iter().collect();
    let t = Instant::now();
    println!("FuturesUnordered:");
    while let Some((input, result)) = in_flight.next().await {
        println!("  nap({input}) -> {:?} at {} ms", result?, since(t));
        if input == 50 {
            println!("  (pushing nap(20) while draining)");
            in_flight.push(submit(20));
        }
    }

    // `failed` counts the two panics; `respawns` the workers killed to cancel
    // the running tasks among the pending ones dropped above.
    println!("{:?}, all in {} ms", pool.stats(), since(t0));
    pool.shutdown().await;
    Ok(())
}
