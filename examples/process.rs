//! `procpool::spawn`, Python's `multiprocessing.Process`: one function in a fresh process; join it, read its exit code, kill a runaway one.
//!
//! Run it with `cargo run --release --example process`.

use std::time::{Duration, Instant};

use procpool::Redirect;

/// Counts the primes below `n`: real work, in a process of its own.
fn count_primes(n: u64) -> usize {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count()
}

/// Ends its process with `code`, as a misbehaving library might.
fn quit(code: i32) {
    std::process::exit(code)
}

/// Never returns, and never checks whether anyone still wants it to run.
fn runaway() -> u64 {
    let mut x = 1u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn main() -> Result<(), procpool::Error> {
    // In the child processes this line runs the function and never returns.
    procpool::init(procpool::tasks![count_primes, quit, runaway]);
    tokio::runtime::Runtime::new()?.block_on(async {
        // Spawn and join: the handle is a future of the function's result.
        let started = Instant::now();
        let mut primes = procpool::spawn(count_primes, 200_000);
        let count = (&mut primes).await?;
        println!("{count} primes below 200,000, in {:?}", started.elapsed());
        println!(
            "process {:?} ended with exitcode {:?}",
            primes.pid(),
            primes.exitcode()
        );

        // Several at once; a Process is a future like any other.
        let counts = futures::future::try_join_all(
            [10_000, 20_000, 40_000].map(|n| procpool::spawn(count_primes, n)),
        )
        .await?;
        println!("primes below 10k, 20k, 40k: {counts:?}");

        // A process that exits by itself: the error says how, and so does
        // exitcode (Python's convention: the code, or minus the signal).
        let mut quitter = procpool::spawn(quit, 3);
        let err = (&mut quitter).await.unwrap_err();
        assert!(err.is_worker_died() && err.exit_code() == Some(3));
        println!("quit(3): exitcode {:?} ({err})", quitter.exitcode());

        // A runaway one, killed: it resolves once it is reaped.
        let mut spinner = procpool::Process::builder()
            .stderr(Redirect::Null)
            .spawn(runaway, ());
        if tokio::time::timeout(Duration::from_millis(300), &mut spinner)
            .await
            .is_err()
        {
            let killed_at = Instant::now();
            spinner.kill();
            let err = (&mut spinner).await.unwrap_err();
            assert!(err.is_cancelled());
            println!(
                "runaway {:?} killed and reaped in {:?}: exitcode {:?}",
                err.worker_pid(),
                killed_at.elapsed(),
                spinner.exitcode()
            );
        }
        Ok(())
    })
}
