//! Load on the example HTTP service (`examples/http_service`): many
//! concurrent clients, each sending `GET /fib/N` (N chosen so one request
//! costs ~1 ms of CPU) over keep-alive connections for a few seconds,
//! against the same route with the work on `tokio::task::spawn_blocking`
//! (the in-process alternative), in the same run. Reports requests/s and
//! p50/p99 latency of each, and their ratio.
//!
//! ```text
//! cargo bench --bench http_service              # 32 clients, 3 s per service
//! cargo bench --bench http_service -- 64 5      # clients, seconds
//! ```
//!
//! Clients, server and workers share this machine's cores: the figures are
//! for comparing the two services in one run, not absolute capacity.

#[path = "../examples/http_service/app.rs"]
mod app;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;

fn main() {
    // This binary is also the pool's workers.
    procpool::init(app::registry());
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let clients: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let n = calibrate(Duration::from_millis(1));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = procpool::Pool::builder()
            .workers(workers)
            .build()
            .await
            .expect("the pool");
        let pooled = app::router(app::App {
            pool: pool.clone(),
            timeout: Duration::from_secs(30),
        });
        let blocking = Router::new().route(
            "/fib/{n}",
            get(|Path(n): Path<u64>| async move {
                let value = tokio::task::spawn_blocking(move || app::fib(n))
                    .await
                    .expect("fib does not panic");
                format!("fib({n}) = {value}\n")
            }),
        );
        println!(
            "{clients} clients, {seconds} s each, GET /fib/{n} (~1 ms of CPU), {workers} workers"
        );
        let ours = load("procpool pool", pooled, clients, seconds, n).await;
        let theirs = load("spawn_blocking", blocking, clients, seconds, n).await;
        println!(
            "procpool / spawn_blocking: {:.2}x the requests/s, {:.2}x the p50, {:.2}x the p99",
            ours.per_second / theirs.per_second,
            ours.p50.as_secs_f64() / theirs.p50.as_secs_f64(),
            ours.p99.as_secs_f64() / theirs.p99.as_secs_f64(),
        );
        pool.shutdown().await;
    });
}

/// The `n` whose `fib(n)` takes closest to `target` here.
fn calibrate(target: Duration) -> u64 {
    let cost = |n: u64| {
        let start = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(app::fib(std::hint::black_box(n)));
        }
        start.elapsed() / 5
    };
    (15..35)
        .min_by_key(|&n| cost(n).abs_diff(target))
        .expect("a range")
}

struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Serves `router` on a free port and keeps `clients` clients busy on it
/// for `seconds`.
async fn load(name: &str, router: Router, clients: usize, seconds: u64, n: u64) -> Load {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/fib/{n}", listener.local_addr().expect("bound"));
    let server = tokio::spawn(axum::serve(listener, router).into_future());
    let client = reqwest::Client::new();
    let expected = format!("fib({n}) = {}\n", app::fib(n));
    // Warm up: connections open, workers and threads started.
    for _ in 0..clients {
        client.get(&url).send().await.expect("a warm-up request");
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let runs: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, expected) = (client.clone(), url.clone(), expected.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    let response = client.get(&url).send().await.expect("a response");
                    assert_eq!(response.status().as_u16(), 200);
                    assert_eq!(response.text().await.expect("a body"), expected);
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for run in runs {
        latencies.extend(run.await.expect("a client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.abort();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let load = Load {
        per_second: latencies.len() as f64 / elapsed,
        p50: at(0.5),
        p99: at(0.99),
    };
    println!(
        "{name:>16}: {:>8.0} requests/s, p50 {:>8.2?}, p99 {:>8.2?} ({} requests)",
        load.per_second,
        load.p50,
        load.p99,
        latencies.len()
    );
    load
}
