//! Criterion benchmarks: procpool against the floor it is built on.
//!
//! The floor is the same channel the pool uses, without the pool (see
//! `benches/common/floor.rs`). Run with `cargo bench --bench round_trip`; `bench/compare.sh`
//! puts these side by side with Python's pools.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use procpool::Pool;
use tokio::runtime::Runtime;

#[path = "common/floor.rs"]
mod floor;

use floor::{SocketEcho, frame};

#[path = "common/tasks.rs"]
mod tasks;

use tasks::{Blob, echo, noop};

fn main() {
    procpool::init(procpool::tasks![noop, echo]);
    floor::serve_if_child();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let runtime = Runtime::new().expect("a tokio runtime");
    latency(&mut c, &runtime);
    throughput(&mut c, &runtime);
    payload(&mut c, &runtime);
    c.final_summary();
}

/// W1: one tiny task, submitted and awaited, one at a time.
fn latency(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("W1 latency");
    let pool = runtime
        .block_on(Pool::builder().workers(2).build())
        .expect("pool");
    group.bench_function("procpool submit+await", |b| {
        b.to_async(runtime)
            .iter(|| async { pool.submit(noop, 7).await.unwrap() })
    });
    let mut floor = runtime.block_on(async { SocketEcho::start("echo") });
    group.bench_function("floor socketpair ping-pong", |b| {
        b.iter(|| runtime.block_on(floor.ping(7)))
    });
    runtime.block_on(floor.close());
    group.finish();
    runtime.block_on(pool.shutdown());
}

/// W2: many tiny tasks in flight at once.
fn throughput(c: &mut Criterion, runtime: &Runtime) {
    const N: u64 = 10_000;
    let mut group = c.benchmark_group("W2 throughput");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    let pool = runtime
        .block_on(Pool::builder().workers(2).build())
        .expect("pool");
    group.bench_function(
        BenchmarkId::new("procpool submit all, await in order", N),
        |b| {
            b.to_async(runtime).iter(|| async {
                let handles: Vec<_> = (0..N).map(|i| pool.submit(noop, i)).collect();
                for (i, handle) in handles.into_iter().enumerate() {
                    assert_eq!(handle.await.unwrap(), i as u64);
                }
            })
        },
    );
    group.finish();
    runtime.block_on(pool.shutdown());
}

/// W3: a 16 MiB byte buffer there and back.
fn payload(c: &mut Criterion, runtime: &Runtime) {
    const SIZE: usize = 16 << 20;
    let mut group = c.benchmark_group("W3 payload echo");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(10);
    let data = vec![0x5au8; SIZE];
    let pool = runtime
        .block_on(Pool::builder().workers(2).build())
        .expect("pool");
    group.bench_function("procpool 16 MiB echo", |b| {
        b.to_async(runtime).iter(|| async {
            let back = pool.submit(echo, Blob(data.clone())).await.unwrap();
            assert_eq!(back.0.len(), SIZE);
        })
    });
    let mut floor = runtime.block_on(async { SocketEcho::start("echo") });
    let request = frame(&data);
    group.bench_function("floor socketpair 16 MiB echo", |b| {
        b.iter(|| runtime.block_on(async { floor.round_trip(&request).await.len() }))
    });
    runtime.block_on(floor.close());
    group.finish();
    runtime.block_on(pool.shutdown());
}
