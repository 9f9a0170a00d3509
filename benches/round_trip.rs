//! Criterion benchmarks: procpool against the floor it is built on.
//!
//! The floor is the same channel the pool uses, without the pool: a Unix
//! socketpair to a re-executed child that echoes length-prefixed frames, driven
//! from tokio. Run with `cargo bench --bench round_trip`; `bench/compare.sh`
//! puts these side by side with Python's pools.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use procpool::Pool;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

fn noop(x: u64) -> u64 {
    x
}

#[derive(Serialize, Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

fn echo(blob: Blob) -> Blob {
    blob
}

const FLOOR_CHILD: &str = "PROCPOOL_BENCH_FLOOR_FD";

fn main() {
    procpool::init(procpool::tasks![noop, echo]);
    if let Ok(fd) = std::env::var(FLOOR_CHILD) {
        floor_child(fd.parse().expect("an fd"));
    }
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
    let mut floor = runtime.block_on(Floor::start());
    group.bench_function("floor socketpair ping-pong", |b| {
        b.iter(|| runtime.block_on(floor.round_trip(&8u64.to_le_bytes())))
    });
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
    let mut floor = runtime.block_on(Floor::start());
    group.bench_function("floor socketpair 16 MiB echo", |b| {
        b.iter(|| runtime.block_on(floor.round_trip(&data)))
    });
    group.finish();
    runtime.block_on(pool.shutdown());
}

/// The floor: a re-executed child echoing frames over a socketpair.
struct Floor {
    child: tokio::process::Child,
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
}

impl Floor {
    async fn start() -> Floor {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        for fd in [ours.as_raw_fd(), theirs.as_raw_fd()] {
            set_buffers(fd, 4 << 20);
        }
        let child_fd = theirs.as_raw_fd();
        let mut command = tokio::process::Command::new("/proc/self/exe");
        command
            .env(FLOOR_CHILD, child_fd.to_string())
            .kill_on_drop(true);
        // SAFETY: only fcntl(2), async-signal-safe, runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(child_fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn the floor child");
        drop(theirs);
        ours.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(ours).unwrap();
        Floor {
            child,
            stream,
            buf: Vec::new(),
        }
    }

    async fn round_trip(&mut self, payload: &[u8]) {
        self.stream
            .write_all(&(payload.len() as u64).to_le_bytes())
            .await
            .unwrap();
        self.stream.write_all(payload).await.unwrap();
        let mut len = [0u8; 8];
        self.stream.read_exact(&mut len).await.unwrap();
        self.buf.resize(u64::from_le_bytes(len) as usize, 0);
        self.stream.read_exact(&mut self.buf).await.unwrap();
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn set_buffers(fd: i32, size: libc::c_int) {
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: fd is an open socket; the value is a live c_int of the given size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The floor child: echo length-prefixed frames until EOF.
fn floor_child(fd: i32) -> ! {
    // SAFETY: the parent passed us this fd, open and ours alone.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut socket = std::os::unix::net::UnixStream::from(owned);
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 8];
        if socket.read_exact(&mut len).is_err() {
            std::process::exit(0);
        }
        buf.resize(u64::from_le_bytes(len) as usize, 0);
        socket.read_exact(&mut buf).unwrap();
        socket.write_all(&len).unwrap();
        socket.write_all(&buf).unwrap();
    }
}
