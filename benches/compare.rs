//! Side-by-side figures for issue 5: procpool against the floor it is built
//! on, and against rayon for CPU scaling. Python's pools are measured by
//! `bench/python_pools.py`; `bench/compare.py` runs both and prints the table.
//!
//! Workloads (2 workers; every result is checked):
//!
//! * **W1 latency**: one no-op submitted and awaited, 2,000 times in a row
//!   after 200 warm-up calls: median and p99 µs. Floor: ping-pong of an
//!   8-byte frame.
//!   "W1 block_on": the same calls from `runtime.block_on` on the main thread,
//!   as the README's example calls the pool (a loop of awaits inside one
//!   `block_on`); its ratio is to the same floor.
//! * **W2 throughput**: 100,000 no-ops submitted at once, then awaited in
//!   order: tasks/s. Floor: 100,000 8-byte frames echoed pipelined: msgs/s,
//!   batched (many frames per write, as the pool may do) and unbatched (one
//!   write per frame on both sides).
//!   "W2 map": `pool.map` over the same input, default settings: items/s.
//! * **W3 payload**: a 16 MiB buffer echoed, 20 round trips after 2 warm-up:
//!   MB/s (10^6 B, payload counted once per trip), as a `procpool::Bytes`, a
//!   plain `Vec<u8>`, and a `serde_bytes` field of a struct. Floors: the same
//!   echo over a raw socketpair and over raw pipes.
//! * **W3b shared memory**: 64 tasks (all submitted at once) each read a
//!   16 MiB table, one byte per 4 KiB page, sent by value each time
//!   (`serde_bytes`) and as one `SharedBytes` made for the run (its creation
//!   timed too): ms end to end, and the ratio. Then a `SharedValue<u64>`
//!   incremented with `fetch_add` by 2 workers at once: increments/s.
//! * **W4 CPU scaling**: 64 tasks of an integer kernel (~20 ms each,
//!   calibrated here) with 1 and 2 workers; efficiency T1/(2×T2); rayon with 1
//!   and 2 threads as the in-process reference.
//! * **W5 start-up**: build a pool of 2 and get the first result: ms (median
//!   of 5 fresh pools per rep). Floor: start two bare children and get one
//!   answer from each.
//!   "W5 process": `procpool::spawn` of a no-op, start to result: ms (median
//!   of 5 per rep). Floor: start one bare child and get one answer.
//!
//! * **W6 channels**: a task sends 1,000,000 `u64`s to the parent over a
//!   `procpool::channel(1024)`, and 256 messages of 1 MiB (`serde_bytes`)
//!   over a `channel(16)`: msgs/s and MB/s, each message received and
//!   checked. Floor: a child writing the same frames to a socketpair, one
//!   write each, read by the parent.
//!
//! * **W7 manager**: 2 tasks on 2 workers each write 20,000 keys into one
//!   `Manager` dict (`insert(..).wait()`, one round trip each) at the same
//!   time: writes/s over both, and µs per write as each task sees it.
//!   Python: 2 processes writing through one `Manager().dict()` proxy each
//!   (`bench/python_pools.py`).
//!
//! The floor is the channel the pool uses with no pool logic: a Unix
//! socketpair (4 MiB buffers) to this same executable, re-executed in a tiny
//! echo mode, driven from tokio in the parent. The child's end of the socket is
//! its stdin, so no `pre_exec` hook is needed to pass it on.
//!
//! Run:
//!
//! ```text
//! cargo bench --bench compare                         # 5 reps of everything
//! cargo bench --bench compare -- --quick              # smaller counts, 1 rep
//! cargo bench --bench compare -- --reps 3 --only W1,W3 --json out.json
//! cargo bench --bench compare -- --w4-iters 15000000  # skip W4 calibration
//! python3 bench/compare.py                            # this, Python, one table
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use procpool::manager::Dict;
use procpool::shared::{SharedBytes, SharedValue};
use procpool::{Launcher, Manager, Pool, Sender};
use rayon::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;

#[path = "common/floor.rs"]
mod floor;

use floor::{Echo, PipeEcho, SocketEcho, frame};

#[path = "common/tasks.rs"]
mod tasks;

use tasks::{Blob, echo, noop};

// ---- tasks ---------------------------------------------------------------

/// The W4 kernel: xorshift64 with a multiply-accumulate, exactly as
/// `kernel` in `bench/python_pools.py` (all arithmetic mod 2^64).
fn kernel(seed: u64, iters: u64) -> u64 {
    let mut x = seed | 1;
    let mut acc = 0u64;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    acc
}

/// W3 the way a newcomer writes it: a plain `Vec<u8>` (which serde alone
/// would send byte by byte).
fn echo_vec(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// W3 with the out-of-band buffer type.
fn echo_bytes(bytes: procpool::Bytes) -> procpool::Bytes {
    bytes
}

/// W6: sends `0..n` to the parent.
fn stream_u64(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        out.blocking_send(i).expect("W6: the parent reads");
    }
    n
}

/// W6: sends `count` blobs of `bytes` bytes to the parent (each a new
/// buffer, as a producer of fresh data would send them).
fn stream_blobs(count: u64, bytes: u64, out: Sender<Blob>) -> u64 {
    let source = vec![7u8; bytes as usize];
    for _ in 0..count {
        out.blocking_send(Blob(source.clone()))
            .expect("W6: the parent reads");
    }
    count
}

/// W7: writes keys `from..from + n` into `dict`, one call each: seconds.
fn write_keys(from: u64, n: u64, dict: Dict<u64, u64>) -> f64 {
    let start = Instant::now();
    for key in from..from + n {
        dict.insert(key, key)
            .wait()
            .expect("W7: the manager is alive");
    }
    start.elapsed().as_secs_f64()
}

/// W7: writes keys `from..from + n` into `dict`, every call sent ahead
/// and the answers waited for after: seconds.
fn write_keys_ahead(from: u64, n: u64, dict: Dict<u64, u64>) -> f64 {
    let start = Instant::now();
    let sent: Vec<_> = (from..from + n)
        .map(|key| dict.insert(key, key).send())
        .collect();
    for insert in sent {
        insert.wait().expect("W7: the manager is alive");
    }
    start.elapsed().as_secs_f64()
}

/// W3b: what a task reads of its table: one byte per page, summed.
fn page_sum(table: &[u8]) -> u64 {
    table.iter().step_by(4096).map(|&b| u64::from(b)).sum()
}

/// W3b: the table sent by value.
fn pages_by_value(table: Blob) -> u64 {
    page_sum(&table.0)
}

/// W3b: the table in shared memory.
fn pages_shared(table: SharedBytes) -> u64 {
    page_sum(&table)
}

/// W3b: `n` atomic increments.
fn count_to(counter: SharedValue<u64>, n: u64) -> u64 {
    for _ in 0..n {
        counter.fetch_add(1);
    }
    n
}

// ---- constants -----------------------------------------------------------

const WORKERS: usize = 2;
const PAYLOAD_BYTES: usize = 16 << 20;
/// Frames per write call in the pipelined floor (16 bytes each).
const PIPELINE_BATCH: u64 = 1024;
/// W6's large messages: 1 MiB.
const W6_BLOB: u64 = 1 << 20;
const W4_TARGET_TASK: Duration = Duration::from_millis(20);
/// `kernel(KERNEL_CHECK_SEED, KERNEL_CHECK_ITERS)` is printed so that
/// `bench/compare.py` can check that Python's kernel computes the same.
const KERNEL_CHECK_SEED: u64 = 12345;
const KERNEL_CHECK_ITERS: u64 = 100_000;
/// W3b: tasks per run, each reading the whole table.
const W3B_TASKS: usize = 64;
const ALL_WORKLOADS: [&str; 8] = ["W1", "W2", "W3", "W3b", "W4", "W5", "W6", "W7"];

fn main() {
    // procspawn's children are this executable too: in one, this runs the
    // function it was sent and exits; elsewhere it returns at once.
    procspawn::init();
    // Workers are this executable again: they serve tasks here and never return.
    procpool::init(procpool::tasks![
        noop,
        echo,
        echo_vec,
        echo_bytes,
        kernel,
        stream_u64,
        stream_blobs,
        write_keys,
        write_keys_ahead,
        pages_by_value,
        pages_shared,
        count_to
    ]);
    floor::serve_if_child();
    let cfg = Config::from_args();
    println!(
        "procpool compare: workers={WORKERS}, reps={}, quick={}, workloads={}",
        cfg.reps,
        cfg.quick,
        cfg.only.iter().copied().collect::<Vec<_>>().join(",")
    );
    let runtime = Runtime::new().expect("a tokio runtime");
    let mut results = Results::default();
    for workload in ALL_WORKLOADS.iter().filter(|w| cfg.only.contains(*w)) {
        println!("[{workload}]");
        match *workload {
            "W1" => {
                w1_latency(&cfg, &runtime, &mut results);
                peer::w1_latency(&cfg, &mut results);
            }
            "W2" => {
                w2_throughput(&cfg, &runtime, &mut results);
                peer::w2_throughput(&cfg, &mut results);
            }
            "W3" => {
                w3_payload(&cfg, &runtime, &mut results);
                peer::w3_payload(&cfg, &mut results);
            }
            "W3b" => w3b_shared(&cfg, &runtime, &mut results),
            "W4" => w4_scaling(&cfg, &runtime, &mut results),
            "W5" => w5_startup(&cfg, &runtime, &mut results),
            "W6" => w6_channels(&cfg, &runtime, &mut results),
            "W7" => w7_manager(&cfg, &runtime, &mut results),
            _ => unreachable!(),
        }
    }
    println!();
    results.print_table();
    if let Some(path) = &cfg.json {
        std::fs::write(path, results.to_json()).expect("write the --json file");
        println!(
            "\nwrote {} results to {}",
            results.rows.len(),
            path.display()
        );
    }
}

/// The launchers to measure W1, W2 map and W5 through besides local workers: ssh
/// and srun, when `PROCPOOL_TEST_SSH` / `PROCPOOL_TEST_SRUN` hold their
/// command prefixes (`../shared/ci/launchers.sh` sets both).
fn remote_launchers() -> Vec<(RemoteRows, Launcher)> {
    let mut found = Vec::new();
    for (rows, var) in [
        (SSH_ROWS, "PROCPOOL_TEST_SSH"),
        (SRUN_ROWS, "PROCPOOL_TEST_SRUN"),
    ] {
        let Ok(prefix) = std::env::var(var) else {
            continue;
        };
        let launcher = Launcher::command(prefix.split_whitespace());
        let shell = var == "PROCPOOL_TEST_SSH";
        found.push((
            rows,
            if shell {
                launcher.quote_for_shell()
            } else {
                launcher
            },
        ));
    }
    found
}

/// The result names of one launcher's figures.
#[derive(Clone, Copy)]
struct RemoteRows {
    w1_median: &'static str,
    w1_p99: &'static str,
    w2_map: &'static str,
    w5: &'static str,
}

const SSH_ROWS: RemoteRows = RemoteRows {
    w1_median: "W1 ssh median us",
    w1_p99: "W1 ssh p99 us",
    w2_map: "W2 ssh map items/s",
    w5: "W5 ssh startup ms",
};
const SRUN_ROWS: RemoteRows = RemoteRows {
    w1_median: "W1 srun median us",
    w1_p99: "W1 srun p99 us",
    w2_map: "W2 srun map items/s",
    w5: "W5 srun startup ms",
};

async fn start_remote_pool(workers: usize, launcher: Launcher) -> Pool {
    Pool::builder()
        .launcher(launcher)
        .workers(workers)
        .build()
        .await
        .expect("a procpool pool through a launcher")
}

async fn start_pool(workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .build()
        .await
        .expect("a procpool pool")
}

// ---- W1 latency ----------------------------------------------------------

fn w1_latency(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let task_cfg = cfg.clone();
    // Both sides are driven from a spawned task, as a request handler in an
    // async service would call them (not from `block_on` on the main thread,
    // which adds a cross-thread wake-up to every hop: that is "W1 block_on",
    // below).
    let (ours, floor) = runtime
        .block_on(runtime.spawn(async move {
            let cfg = task_cfg;
            let (mut ours, mut floor) = (Samples::default(), Samples::default());
            let pool = start_pool(WORKERS).await;
            let mut echo = SocketEcho::start("echo");
            for _ in 0..cfg.reps {
                ours.push_latencies(w1_procpool_once(&pool, &cfg).await);
                floor.push_latencies(w1_floor_once(&mut echo, &cfg).await);
            }
            echo.close().await;
            pool.shutdown().await;
            (ours, floor)
        }))
        .expect("the W1 task");
    // Afterwards, on a pool of its own built from `block_on` too, as in the
    // README; the spawned-task measurement above is left exactly as it was,
    // so that W1 stays comparable with earlier runs.
    let pool = runtime.block_on(start_pool(WORKERS));
    let mut main_thread = Samples::default();
    for _ in 0..cfg.reps {
        main_thread.push_latencies(w1_block_on_once(runtime, &pool, cfg));
    }
    runtime.block_on(pool.shutdown());
    for (imp, s) in [("procpool", &ours), ("floor", &floor)] {
        results.add(imp, "W1 median us", "us", &s.medians);
        results.add(imp, "W1 p99 us", "us", &s.p99s);
    }
    results.add(
        "procpool",
        "W1 block_on median us",
        "us",
        &main_thread.medians,
    );
    results.add("procpool", "W1 block_on p99 us", "us", &main_thread.p99s);
    // Through each launcher there is, from a spawned task as above.
    for (rows, launcher) in remote_launchers() {
        let task_cfg = cfg.clone();
        let remote = runtime
            .block_on(runtime.spawn(async move {
                let mut samples = Samples::default();
                let pool = start_remote_pool(WORKERS, launcher).await;
                for _ in 0..task_cfg.reps {
                    samples.push_latencies(w1_procpool_once(&pool, &task_cfg).await);
                }
                pool.shutdown().await;
                samples
            }))
            .expect("the remote W1 task");
        results.add("procpool", rows.w1_median, "us", &remote.medians);
        results.add("procpool", rows.w1_p99, "us", &remote.p99s);
    }
}

/// One rep called as the README's example calls the pool: a loop of
/// awaits inside one `block_on` on the main thread. That thread is not one
/// of the runtime's, so every hop to and from the dispatcher is a
/// cross-thread wake-up; this is what a new user measures first. Latencies
/// in µs.
fn w1_block_on_once(runtime: &Runtime, pool: &Pool, cfg: &Config) -> Vec<f64> {
    runtime.block_on(async {
        for i in 0..cfg.sizes.w1_warmup {
            let back = pool.submit(noop, i).await;
            assert_eq!(back.expect("W1 block_on warm-up"), i);
        }
        let mut latencies = Vec::with_capacity(cfg.sizes.w1_calls as usize);
        for i in 0..cfg.sizes.w1_calls {
            let start = Instant::now();
            let back = pool.submit(noop, i).await;
            latencies.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(
                back.expect("W1 block_on no-op"),
                i,
                "W1 block_on: wrong result"
            );
        }
        latencies
    })
}

/// One rep: warm-up, then each call timed on its own; latencies in µs.
async fn w1_procpool_once(pool: &Pool, cfg: &Config) -> Vec<f64> {
    for i in 0..cfg.sizes.w1_warmup {
        assert_eq!(pool.submit(noop, i).await.expect("W1 warm-up"), i);
    }
    let mut latencies = Vec::with_capacity(cfg.sizes.w1_calls as usize);
    for i in 0..cfg.sizes.w1_calls {
        let start = Instant::now();
        let back = pool.submit(noop, i).await.expect("W1 no-op");
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(back, i, "W1: wrong result");
    }
    latencies
}

async fn w1_floor_once(echo: &mut SocketEcho, cfg: &Config) -> Vec<f64> {
    for i in 0..cfg.sizes.w1_warmup {
        assert_eq!(echo.ping(i).await, i);
    }
    let mut latencies = Vec::with_capacity(cfg.sizes.w1_calls as usize);
    for i in 0..cfg.sizes.w1_calls {
        let start = Instant::now();
        let back = echo.ping(i).await;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(back, i, "W1 floor: wrong echo");
    }
    latencies
}

// ---- W2 throughput -------------------------------------------------------

fn w2_throughput(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let n = cfg.sizes.w2_tasks;
    let (mut submit, mut map) = (Vec::new(), Vec::new());
    let (mut batched, mut unbatched) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let pool = start_pool(WORKERS).await;
        let mut echo = SocketEcho::start("echo");
        let mut echo_each = SocketEcho::start("each");
        w2_submit_once(&pool, n.min(1000)).await; // warm-up
        for _ in 0..cfg.reps {
            submit.push(w2_submit_once(&pool, n).await);
            map.push(w2_map_once(&pool, n).await);
            batched.push(echo.pipelined(n, PIPELINE_BATCH).await);
            unbatched.push(echo_each.pipelined(n, 1).await);
        }
        echo.close().await;
        echo_each.close().await;
        pool.shutdown().await;
    });
    results.add("procpool", "W2 submit tasks/s", "tasks/s", &submit);
    results.add("procpool", "W2 map items/s", "items/s", &map);
    results.add("floor", "W2 submit tasks/s", "msgs/s", &batched);
    results.add("floor", "W2 unbatched msgs/s", "msgs/s", &unbatched);
    // `map` over 2 workers through each launcher there is.
    for (rows, launcher) in remote_launchers() {
        let remote = runtime.block_on(async {
            let pool = start_remote_pool(WORKERS, launcher).await;
            let mut rates = Vec::new();
            for _ in 0..cfg.reps {
                rates.push(w2_map_once(&pool, n).await);
            }
            pool.shutdown().await;
            rates
        });
        results.add("procpool", rows.w2_map, "items/s", &remote);
    }
}

/// Submits `n` no-ops at once, then awaits them in order: tasks/s.
async fn w2_submit_once(pool: &Pool, n: u64) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| pool.submit(noop, i)).collect();
    for (i, handle) in (0..n).zip(handles) {
        assert_eq!(handle.await.expect("W2 no-op"), i, "W2: wrong result");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `pool.map` over the same no-ops with default settings (automatic chunk
/// size, default window), collected in order: items/s.
async fn w2_map_once(pool: &Pool, n: u64) -> f64 {
    let start = Instant::now();
    let got: Vec<u64> = pool.map(noop, 0..n).try_collect().await.expect("W2 map");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert!(got.into_iter().eq(0..n), "W2 map: wrong results");
    rate
}

// ---- W3 payload ----------------------------------------------------------

fn w3_payload(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let payload = pseudo_random_bytes(PAYLOAD_BYTES);
    let (mut ours, mut vecs, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut socket, mut pipes) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let pool = start_pool(WORKERS).await;
        let mut socket_echo = SocketEcho::start("echo");
        let mut pipe_echo = PipeEcho::start();
        for _ in 0..cfg.reps {
            ours.push(w3_procpool_once(&pool, echo, &payload, cfg).await);
            vecs.push(w3_procpool_once(&pool, echo_vec, &payload, cfg).await);
            bytes.push(w3_procpool_once(&pool, echo_bytes, &payload, cfg).await);
            socket.push(w3_floor_once(&mut socket_echo, &payload, cfg).await);
            pipes.push(w3_floor_once(&mut pipe_echo, &payload, cfg).await);
        }
        socket_echo.close().await;
        pipe_echo.close().await;
        pool.shutdown().await;
    });
    results.add("procpool", "W3 echo 16MiB MB/s", "MB/s", &ours);
    results.add("procpool", "W3 echo Vec<u8> 16MiB MB/s", "MB/s", &vecs);
    results.add("procpool", "W3 echo Bytes 16MiB MB/s", "MB/s", &bytes);
    results.add("floor", "W3 echo 16MiB MB/s", "MB/s", &socket);
    results.add("floor-pipes", "W3 echo 16MiB MB/s", "MB/s", &pipes);
}

/// The buffer goes back and forth by value: what comes back is sent again,
/// so the caller copies nothing between trips.
async fn w3_procpool_once<T, M, F>(pool: &Pool, task: F, payload: &[u8], cfg: &Config) -> f64
where
    F: procpool::Task<M, Args = T, Output = T> + Copy,
    T: From<Vec<u8>>
        + AsRef<[u8]>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let mut blob = T::from(payload.to_vec());
    for _ in 0..cfg.sizes.w3_warmup {
        blob = pool.submit(task, blob).await.expect("W3 warm-up");
    }
    assert!(blob.as_ref() == payload, "W3: echo differs from input");
    let start = Instant::now();
    for _ in 0..cfg.sizes.w3_trips {
        blob = pool.submit(task, blob).await.expect("W3 echo");
    }
    let rate = megabytes_per_second(payload.len() * cfg.sizes.w3_trips, start.elapsed());
    assert!(blob.as_ref() == payload, "W3: echo differs from input");
    rate
}

/// The frame is built once, outside the timing: the floor moves bytes only.
async fn w3_floor_once<R, W>(echo: &mut Echo<R, W>, payload: &[u8], cfg: &Config) -> f64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = frame(payload);
    for _ in 0..cfg.sizes.w3_warmup {
        assert!(
            echo.round_trip(&frame).await == payload,
            "W3 floor: bad echo"
        );
    }
    let start = Instant::now();
    for _ in 0..cfg.sizes.w3_trips {
        assert_eq!(echo.round_trip(&frame).await.len(), payload.len());
    }
    let rate = megabytes_per_second(payload.len() * cfg.sizes.w3_trips, start.elapsed());
    assert!(echo.last_echo() == payload, "W3 floor: bad echo");
    rate
}

fn megabytes_per_second(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

// ---- W3b shared memory ---------------------------------------------------

fn w3b_shared(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let table = pseudo_random_bytes(PAYLOAD_BYTES);
    let (mut by_value, mut shared, mut speedup, mut counts) = (vec![], vec![], vec![], vec![]);
    runtime.block_on(async {
        let pool = start_pool(WORKERS).await;
        for _ in 0..cfg.reps {
            let copied = w3b_by_value_once(&pool, &table).await;
            let mapped = w3b_shared_once(&pool, &table).await;
            by_value.push(copied);
            shared.push(mapped);
            speedup.push(copied / mapped);
            counts.push(w3b_counter_once(&pool, cfg.sizes.w3b_increments).await);
        }
        pool.shutdown().await;
    });
    let row = "W3b 64 tasks x 16MiB table ms";
    results.add("procpool", row, "ms", &shared);
    results.add("procpool by value", row, "ms", &by_value);
    results.add("procpool", "W3b shared / by value speedup", "x", &speedup);
    results.add("procpool", "W3b counter incr/s", "incr/s", &counts);
}

/// 64 tasks, each sent its own copy of the table: ms.
async fn w3b_by_value_once(pool: &Pool, table: &[u8]) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..W3B_TASKS)
        .map(|_| pool.submit(pages_by_value, Blob(table.to_vec())))
        .collect();
    w3b_check(tasks, table, start).await
}

/// 64 tasks sharing one sealed table, made inside the timing: ms.
async fn w3b_shared_once(pool: &Pool, table: &[u8]) -> f64 {
    let start = Instant::now();
    let shared = SharedBytes::new(table).expect("W3b: a shared table");
    let tasks: Vec<_> = (0..W3B_TASKS)
        .map(|_| pool.submit(pages_shared, shared.clone()))
        .collect();
    w3b_check(tasks, table, start).await
}

async fn w3b_check(tasks: Vec<procpool::TaskHandle<u64>>, table: &[u8], start: Instant) -> f64 {
    let expected = page_sum(table);
    for task in tasks {
        assert_eq!(task.await.expect("W3b task"), expected, "W3b: wrong sum");
    }
    start.elapsed().as_secs_f64() * 1e3
}

/// 2 workers increment one shared counter `n` times each: increments/s.
async fn w3b_counter_once(pool: &Pool, n: u64) -> f64 {
    let counter = SharedValue::new(0u64).expect("W3b: a shared counter");
    let start = Instant::now();
    let (a, b) = (
        pool.submit(count_to, (counter.clone(), n)),
        pool.submit(count_to, (counter.clone(), n)),
    );
    a.await.expect("W3b counter");
    b.await.expect("W3b counter");
    let rate = (2 * n) as f64 / start.elapsed().as_secs_f64();
    assert_eq!(counter.load(), 2 * n, "W3b: increments lost");
    rate
}

// ---- procspawn, the nearest Rust peer ------------------------------------

/// W1–W3 through `procspawn::Pool` (1.0.2): the same tasks, called its way
/// (blocking `spawn` + `join` from the main thread), same counts.
mod peer {
    use super::*;

    const NAME: &str = "procspawn";

    fn start() -> procspawn::Pool {
        procspawn::Pool::new(WORKERS).expect("a procspawn pool")
    }

    fn call<A, R>(pool: &procspawn::Pool, args: A, f: fn(A) -> R) -> R
    where
        A: serde::Serialize + serde::de::DeserializeOwned,
        R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        pool.spawn(args, f).join().expect("a procspawn call")
    }

    pub(super) fn w1_latency(cfg: &Config, results: &mut Results) {
        let pool = start();
        let mut samples = Samples::default();
        for _ in 0..cfg.reps {
            for i in 0..cfg.sizes.w1_warmup {
                assert_eq!(call(&pool, i, noop), i);
            }
            let latencies = (0..cfg.sizes.w1_calls)
                .map(|i| {
                    let start = Instant::now();
                    let back = call(&pool, i, noop);
                    let micros = start.elapsed().as_secs_f64() * 1e6;
                    assert_eq!(back, i, "W1 procspawn: wrong result");
                    micros
                })
                .collect();
            samples.push_latencies(latencies);
        }
        pool.shutdown();
        results.add(NAME, "W1 median us", "us", &samples.medians);
        results.add(NAME, "W1 p99 us", "us", &samples.p99s);
    }

    /// Each call in flight holds two IPC channels (four descriptors), so
    /// 100,000 at once run out of descriptors (`spawn` panics): at most
    /// [`IN_FLIGHT`] are submitted ahead.
    pub(super) fn w2_throughput(cfg: &Config, results: &mut Results) {
        const IN_FLIGHT: usize = 256;
        let n = cfg.sizes.w2_tasks;
        let pool = start();
        let mut rates = Vec::new();
        for _ in 0..cfg.reps {
            let start = Instant::now();
            let mut handles = std::collections::VecDeque::with_capacity(IN_FLIGHT);
            for i in 0..n {
                if handles.len() == IN_FLIGHT {
                    let (j, handle): (u64, procspawn::JoinHandle<u64>) =
                        handles.pop_front().expect("full");
                    assert_eq!(handle.join().expect("W2 procspawn"), j);
                }
                handles.push_back((i, pool.spawn(i, noop)));
            }
            for (i, handle) in handles {
                assert_eq!(handle.join().expect("W2 procspawn"), i);
            }
            rates.push(n as f64 / start.elapsed().as_secs_f64());
        }
        pool.shutdown();
        results.add(NAME, "W2 submit tasks/s", "tasks/s", &rates);
    }

    /// With the `serde_bytes` payload: procspawn's fastest way for bytes.
    pub(super) fn w3_payload(cfg: &Config, results: &mut Results) {
        let payload = pseudo_random_bytes(PAYLOAD_BYTES);
        let pool = start();
        let mut rates = Vec::new();
        for _ in 0..cfg.reps {
            let mut blob = Blob(payload.clone());
            for _ in 0..cfg.sizes.w3_warmup {
                blob = call(&pool, blob, echo);
            }
            let start = Instant::now();
            for _ in 0..cfg.sizes.w3_trips {
                blob = call(&pool, blob, echo);
            }
            rates.push(megabytes_per_second(
                payload.len() * cfg.sizes.w3_trips,
                start.elapsed(),
            ));
            assert!(blob.0 == payload, "W3 procspawn: echo differs from input");
        }
        pool.shutdown();
        results.add(NAME, "W3 echo 16MiB MB/s", "MB/s", &rates);
    }
}

// ---- W4 CPU scaling ------------------------------------------------------

fn w4_scaling(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let check = kernel(KERNEL_CHECK_SEED, KERNEL_CHECK_ITERS);
    println!("W4 kernel check: kernel({KERNEL_CHECK_SEED}, {KERNEL_CHECK_ITERS}) = {check}");
    let iters = match cfg.w4_iters {
        Some(iters) => {
            println!("W4: --w4-iters {iters} (given)");
            iters
        }
        None => calibrate_w4_iters(),
    };
    let seeds: Vec<u64> = (1..=cfg.sizes.w4_tasks).collect();
    println!("W4: {} tasks x {iters} iterations", seeds.len());
    let expected: Vec<u64> = seeds.iter().map(|&seed| kernel(seed, iters)).collect();

    let threads = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a rayon pool")
    };
    let (rayon1, rayon2) = (threads(1), threads(2));
    let (pool1, pool2) = runtime.block_on(async { (start_pool(1).await, start_pool(2).await) });
    let ms = |elapsed: Duration, got: Vec<u64>, who: &str| {
        assert!(
            got == expected,
            "W4: {who} results differ from the serial run"
        );
        elapsed.as_secs_f64() * 1e3
    };
    let mut w = W4Times::default();
    // The four runs alternate within each rep so that they see similar conditions.
    for _ in 0..cfg.reps {
        let (t, got) = runtime.block_on(w4_procpool_once(&pool1, &seeds, iters));
        w.pool1.push(ms(t, got, "procpool, 1 worker"));
        let (t, got) = runtime.block_on(w4_procpool_once(&pool2, &seeds, iters));
        w.pool2.push(ms(t, got, "procpool, 2 workers"));
        let (t, got) = w4_rayon_once(&rayon1, &seeds, iters);
        w.rayon1.push(ms(t, got, "rayon, 1 thread"));
        let (t, got) = w4_rayon_once(&rayon2, &seeds, iters);
        w.rayon2.push(ms(t, got, "rayon, 2 threads"));
    }
    runtime.block_on(async { futures::join!(pool1.shutdown(), pool2.shutdown()) });
    w.report(results);
}

#[derive(Default)]
struct W4Times {
    pool1: Vec<f64>,
    pool2: Vec<f64>,
    rayon1: Vec<f64>,
    rayon2: Vec<f64>,
}

impl W4Times {
    fn report(&self, results: &mut Results) {
        let efficiency = |t1: &[f64], t2: &[f64]| -> Vec<f64> {
            t1.iter().zip(t2).map(|(t1, t2)| t1 / (2.0 * t2)).collect()
        };
        let to_rayon: Vec<f64> = self
            .pool2
            .iter()
            .zip(&self.rayon2)
            .map(|(p, r)| p / r)
            .collect();
        for (imp, t1, t2) in [
            ("procpool", &self.pool1, &self.pool2),
            ("rayon", &self.rayon1, &self.rayon2),
        ] {
            results.add(imp, "W4 T1 ms", "ms", t1);
            results.add(imp, "W4 T2 ms", "ms", t2);
            results.add(imp, "W4 efficiency T1/(2*T2)", "ratio", &efficiency(t1, t2));
        }
        results.add("procpool", "W4 T2 / rayon T2", "ratio", &to_rayon);
    }
}

/// Iterations for ~20 ms per task, from the best of three timed probes.
fn calibrate_w4_iters() -> u64 {
    let probe = 1_000_000;
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(kernel(std::hint::black_box(1), std::hint::black_box(probe)));
            start.elapsed()
        })
        .min()
        .expect("three probes");
    let iters = (probe as f64 * W4_TARGET_TASK.as_secs_f64() / best.as_secs_f64()).round() as u64;
    println!(
        "W4 calibration: kernel(1, {probe}) took {:.2} ms -> --w4-iters {iters} (~{} ms/task)",
        best.as_secs_f64() * 1e3,
        W4_TARGET_TASK.as_millis()
    );
    iters.max(1)
}

/// Submits every task, then awaits all in order.
async fn w4_procpool_once(pool: &Pool, seeds: &[u64], iters: u64) -> (Duration, Vec<u64>) {
    let start = Instant::now();
    let handles: Vec<_> = seeds
        .iter()
        .map(|&seed| pool.submit(kernel, (seed, iters)))
        .collect();
    let mut got = Vec::with_capacity(handles.len());
    for handle in handles {
        got.push(handle.await.expect("W4 kernel"));
    }
    (start.elapsed(), got)
}

fn w4_rayon_once(threads: &rayon::ThreadPool, seeds: &[u64], iters: u64) -> (Duration, Vec<u64>) {
    let start = Instant::now();
    let got = threads.install(|| seeds.par_iter().map(|&seed| kernel(seed, iters)).collect());
    (start.elapsed(), got)
}

// ---- W5 start-up ---------------------------------------------------------

fn w5_startup(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let (mut process, mut one_child) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..cfg.reps {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (mut c, mut d) = (Vec::new(), Vec::new());
            for i in 0..cfg.sizes.w5_repeats {
                a.push(w5_procpool_once(i as u64).await);
                b.push(w5_floor_once(i as u64).await);
                c.push(w5_process_once(i as u64).await);
                d.push(w5_one_child_once(i as u64).await);
            }
            ours.push(median(&mut a));
            floor.push(median(&mut b));
            process.push(median(&mut c));
            one_child.push(median(&mut d));
        }
    });
    results.add("procpool", "W5 startup ms", "ms", &ours);
    results.add("floor", "W5 startup ms", "ms", &floor);
    results.add("procpool", "W5 process ms", "ms", &process);
    results.add("floor", "W5 process ms", "ms", &one_child);
    // Through each launcher: fewer starts (an ssh start is ~0.5 s).
    for (rows, launcher) in remote_launchers() {
        let mut remote = Vec::new();
        runtime.block_on(async {
            for _ in 0..cfg.reps {
                let mut starts = Vec::new();
                for i in 0..cfg.sizes.w5_repeats.min(5) {
                    let start = Instant::now();
                    let pool = start_remote_pool(WORKERS, launcher.clone()).await;
                    let back = pool.submit(noop, i as u64).await.expect("W5 remote no-op");
                    starts.push(start.elapsed().as_secs_f64() * 1e3);
                    pool.shutdown().await;
                    assert_eq!(back, i as u64, "W5 remote: wrong result");
                }
                remote.push(median(&mut starts));
            }
        });
        results.add("procpool", rows.w5, "ms", &remote);
    }
}

/// `procpool::spawn` of a no-op up to its result, in ms; the reap (in the
/// background) is waited for untimed, so runs do not overlap.
async fn w5_process_once(i: u64) -> f64 {
    let start = Instant::now();
    let mut process = procpool::spawn(noop, i);
    let back = (&mut process).await.expect("W5 process no-op");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(back, i, "W5 process: wrong result");
    let pid = process.pid().expect("it ran");
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    ms
}

/// One bare child started and one 8-byte answer from it, in ms.
async fn w5_one_child_once(i: u64) -> f64 {
    let start = Instant::now();
    let mut child = SocketEcho::start("once");
    let x = child.ping(i).await;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(x, i, "W5 one child: wrong answer");
    child.close().await;
    ms
}

/// A fresh pool of 2 up to its first result, in ms; shut down untimed.
async fn w5_procpool_once(i: u64) -> f64 {
    let start = Instant::now();
    let pool = start_pool(WORKERS).await;
    let back = pool.submit(noop, i).await.expect("W5 no-op");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    pool.shutdown().await;
    assert_eq!(back, i, "W5: wrong result");
    ms
}

/// Two bare children started, one 8-byte answer from each, in ms.
async fn w5_floor_once(i: u64) -> f64 {
    let start = Instant::now();
    let mut children = [SocketEcho::start("once"), SocketEcho::start("once")];
    let [a, b] = &mut children;
    let (x, y) = futures::join!(a.ping(i), b.ping(i + 1));
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!((x, y), (i, i + 1), "W5 floor: wrong answers");
    for child in children {
        child.close().await;
    }
    ms
}

// ---- W6 channels -----------------------------------------------------------

fn w6_channels(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let (n, count) = (cfg.sizes.w6_small, cfg.sizes.w6_blobs);
    let (mut small, mut small_floor) = (Vec::new(), Vec::new());
    let (mut big, mut big_floor) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let pool = start_pool(1).await;
        let mut floor = SocketEcho::start("stream");
        for _ in 0..cfg.reps {
            small.push(n as f64 / w6_small_once(&pool, n).await);
            small_floor.push(n as f64 / floor.stream(n, 8).await);
            let bytes = (count * W6_BLOB) as f64;
            big.push(bytes / 1e6 / w6_blobs_once(&pool, count).await);
            big_floor.push(bytes / 1e6 / floor.stream(count, W6_BLOB).await);
        }
        floor.close().await;
        pool.shutdown().await;
    });
    results.add("procpool", "W6 channel u64 msgs/s", "msgs/s", &small);
    results.add("floor", "W6 channel u64 msgs/s", "msgs/s", &small_floor);
    results.add("procpool", "W6 channel 1MiB MB/s", "MB/s", &big);
    results.add("floor", "W6 channel 1MiB MB/s", "MB/s", &big_floor);
}

/// A task streams `n` `u64`s to the parent, which reads them all: seconds.
async fn w6_small_once(pool: &Pool, n: u64) -> f64 {
    let (tx, rx) = procpool::channel(1024);
    let start = Instant::now();
    let task = pool.submit(stream_u64, (n, tx));
    let mut expected = 0;
    while let Ok(i) = rx.recv().await {
        assert_eq!(i, expected, "W6: out of order");
        expected += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(task.await.expect("W6 small"), n);
    assert_eq!(expected, n, "W6: messages lost");
    seconds
}

/// A task streams `count` 1 MiB blobs to the parent: seconds.
async fn w6_blobs_once(pool: &Pool, count: u64) -> f64 {
    let (tx, rx) = procpool::channel::<Blob>(16);
    let start = Instant::now();
    let task = pool.submit(stream_blobs, (count, W6_BLOB, tx));
    let mut got = 0;
    while let Ok(blob) = rx.recv().await {
        assert_eq!(blob.0.len() as u64, W6_BLOB, "W6: a blob cut short");
        got += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(task.await.expect("W6 blobs"), count);
    assert_eq!(got, count, "W6: blobs lost");
    seconds
}

// ---- W7 manager ------------------------------------------------------------

fn w7_manager(cfg: &Config, runtime: &Runtime, results: &mut Results) {
    let n = cfg.sizes.w7_writes;
    let (mut rates, mut micros, mut ahead) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        let pool = start_pool(WORKERS).await;
        for _ in 0..cfg.reps {
            let (rate, seconds) =
                w7_once(n, |from, dict| pool.submit(write_keys, (from, n, dict))).await;
            rates.push(rate);
            micros.push(seconds.iter().sum::<f64>() / (WORKERS as u64 * n) as f64 * 1e6);
            let ahead_once = w7_once(n, |from, dict| {
                pool.submit(write_keys_ahead, (from, n, dict))
            });
            ahead.push(ahead_once.await.0);
        }
        pool.shutdown().await;
    });
    results.add("procpool", "W7 manager writes/s", "writes/s", &rates);
    results.add("procpool", "W7 manager write us", "us", &micros);
    results.add(
        "procpool sent ahead",
        "W7 manager writes/s",
        "writes/s",
        &ahead,
    );
}

/// One W7 run: `WORKERS` tasks, started by `submit(first key, dict)`,
/// writing `n` keys each into a fresh dict: writes/s over all, and each
/// task's seconds.
async fn w7_once(
    n: u64,
    submit: impl Fn(u64, Dict<u64, u64>) -> procpool::TaskHandle<f64>,
) -> (f64, Vec<f64>) {
    let manager = Manager::new();
    let dict = manager.dict::<u64, u64>();
    let start = Instant::now();
    let tasks: Vec<_> = (0..WORKERS as u64)
        .map(|w| submit(w * n, dict.clone()))
        .collect();
    let mut seconds = Vec::new();
    for task in tasks {
        seconds.push(task.await.expect("W7 writes"));
    }
    let wall = start.elapsed().as_secs_f64();
    let writes = WORKERS as u64 * n;
    assert_eq!(dict.len().await.expect("W7 len"), writes, "W7: writes lost");
    (writes as f64 / wall, seconds)
}

// ---- configuration -------------------------------------------------------

#[derive(Clone)]
struct Config {
    reps: usize,
    quick: bool,
    json: Option<PathBuf>,
    only: BTreeSet<&'static str>,
    w4_iters: Option<u64>,
    sizes: Sizes,
}

/// Counts per workload; `--quick` uses the same smaller ones as
/// `bench/python_pools.py --quick`.
#[derive(Clone)]
struct Sizes {
    w1_warmup: u64,
    w1_calls: u64,
    w2_tasks: u64,
    w3_warmup: usize,
    w3_trips: usize,
    w4_tasks: u64,
    w5_repeats: usize,
    w6_small: u64,
    w6_blobs: u64,
    w7_writes: u64,
    w3b_increments: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                w1_warmup: 50,
                w1_calls: 500,
                w2_tasks: 20_000,
                w3_warmup: 1,
                w3_trips: 5,
                w4_tasks: 16,
                w5_repeats: 3,
                w6_small: 50_000,
                w6_blobs: 32,
                w7_writes: 2_000,
                w3b_increments: 200_000,
            }
        } else {
            Sizes {
                w1_warmup: 200,
                w1_calls: 2_000,
                w2_tasks: 100_000,
                w3_warmup: 2,
                w3_trips: 20,
                w4_tasks: 64,
                w5_repeats: 5,
                w6_small: 1_000_000,
                w6_blobs: 256,
                w7_writes: 20_000,
                w3b_increments: 2_000_000,
            }
        }
    }
}

const USAGE: &str = "\
usage: cargo bench --bench compare -- [--reps N] [--quick] [--json PATH]
                                      [--only W1,W2,...] [--w4-iters N]
  --reps N        repeat each measurement N times (default 5; 1 with --quick)
  --quick         smaller counts for a smoke run
  --json PATH     write [{impl, workload, unit, median, min, max, reps}, ...]
  --only LIST     comma-separated workloads out of W1,W2,W3,W4,W5,W6,W7
  --only LIST     comma-separated workloads out of W1,W2,W3,W3b,W4,W5,W6
  --w4-iters N    kernel iterations per W4 task (default: calibrated to ~20 ms)
Unknown arguments (cargo passes --bench) are ignored.";

impl Config {
    fn from_args() -> Config {
        let mut reps = None;
        let mut quick = false;
        let mut json = None;
        let mut only: BTreeSet<&'static str> = ALL_WORKLOADS.into_iter().collect();
        let mut w4_iters = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_string(), Some(value.to_string()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .unwrap_or_else(|| usage_error(&format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--reps" => reps = Some(parse_positive(&flag, &value())),
                "--quick" => quick = true,
                "--json" => json = Some(PathBuf::from(value())),
                "--only" => only = parse_only(&value()),
                "--w4-iters" => w4_iters = Some(parse_positive(&flag, &value()) as u64),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--bench" => {}
                other => eprintln!("compare: ignoring unknown argument {other:?}"),
            }
        }
        Config {
            reps: reps.unwrap_or(if quick { 1 } else { 5 }),
            quick,
            json,
            only,
            w4_iters,
            sizes: Sizes::new(quick),
        }
    }
}

fn parse_positive(flag: &str, value: &str) -> usize {
    match value.parse() {
        Ok(n) if n > 0 => n,
        _ => usage_error(&format!("{flag} wants a positive integer, not {value:?}")),
    }
}

fn parse_only(list: &str) -> BTreeSet<&'static str> {
    list.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            ALL_WORKLOADS
                .into_iter()
                .find(|known| known.eq_ignore_ascii_case(w))
                .unwrap_or_else(|| usage_error(&format!("unknown workload {w:?} in --only")))
        })
        .collect()
}

fn usage_error(message: &str) -> ! {
    eprintln!("compare: {message}\n{USAGE}");
    std::process::exit(2);
}

// ---- results -------------------------------------------------------------

/// Per-rep W1 figures.
#[derive(Default)]
struct Samples {
    medians: Vec<f64>,
    p99s: Vec<f64>,
}

impl Samples {
    fn push_latencies(&mut self, mut latencies: Vec<f64>) {
        self.medians.push(median(&mut latencies));
        self.p99s.push(percentile(&latencies, 99.0));
    }
}

/// Median; sorts `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values, as in `bench/python_pools.py`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1)]
}

struct Row {
    imp: &'static str,
    workload: &'static str,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
    reps: usize,
}

#[derive(Default)]
struct Results {
    rows: Vec<Row>,
}

impl Results {
    fn add(
        &mut self,
        imp: &'static str,
        workload: &'static str,
        unit: &'static str,
        samples: &[f64],
    ) {
        let mut sorted = samples.to_vec();
        let row = Row {
            imp,
            workload,
            unit,
            median: median(&mut sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            reps: sorted.len(),
        };
        println!(
            "  {imp:<22} {workload:<26} median {:>12} {unit}",
            fmt(row.median)
        );
        self.rows.push(row);
    }

    fn print_table(&self) {
        println!(
            "{:<12} {:<26} {:>12} {:>12} {:>12} {:<8} {:>4}",
            "impl", "workload", "median", "min", "max", "unit", "reps"
        );
        for r in &self.rows {
            println!(
                "{:<12} {:<26} {:>12} {:>12} {:>12} {:<8} {:>4}",
                r.imp,
                r.workload,
                fmt(r.median),
                fmt(r.min),
                fmt(r.max),
                r.unit,
                r.reps
            );
        }
    }

    fn to_json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, r) in self.rows.iter().enumerate() {
            let sep = if i + 1 < self.rows.len() { "," } else { "" };
            let _ = writeln!(
                out,
                "  {{\"impl\": \"{}\", \"workload\": \"{}\", \"unit\": \"{}\", \"median\": {}, \
                 \"min\": {}, \"max\": {}, \"reps\": {}}}{sep}",
                r.imp,
                r.workload,
                r.unit,
                json_number(r.median),
                json_number(r.min),
                json_number(r.max),
                r.reps
            );
        }
        out.push_str("]\n");
        out
    }
}

fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        let digits = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Incompressible-looking bytes, quickly (xorshift64).
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
