//! An async process pool for tokio: run plain Rust functions in worker
//! processes and await their results.
//!
//! procpool is Python's `ProcessPoolExecutor` rebuilt for async Rust. You
//! register ordinary `fn`s; a [`Pool`] runs them in child processes (the same
//! executable, started again) and hands the results back as futures.
//!
//! ```rust,standalone_crate
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn product(a: u64, b: u64, c: u64) -> u64 {
//!     a * b * c
//! }
//!
//! fn main() -> Result<(), procpool::Error> {
//!     // In a worker process this line serves tasks and never returns.
//!     procpool::init(procpool::tasks![square, product]);
//!
//!     tokio::runtime::Runtime::new()?.block_on(async {
//!         let pool = procpool::Pool::builder().workers(2).build().await?;
//!         assert_eq!(pool.submit(square, 7).await?, 49);
//!         assert_eq!(pool.submit(product, (2, 3, 4)).await?, 24);
//!         pool.shutdown().await;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Why processes
//!
//! * **Isolation.** A segfault, `abort`, stack overflow or OOM kill in a task
//!   takes down one worker, not your service. The task's caller gets an
//!   [`Error`] saying how the worker died, and the pool starts a replacement.
//! * **Killability.** A running thread cannot be stopped; a process can.
//!   Dropping a [`TaskHandle`] really stops the CPU work.
//! * **Hygiene.** Leaky or non-thread-safe native code runs in parallel, in
//!   processes that can be thrown away.
//!
//! The cost is that arguments and results cross a socket, serialized with
//! serde (bincode), so a task must be worth more than a round trip: 9–15 µs
//! from a tokio task on the 2-core machine the README's benchmarks come from,
//! within a few µs of a raw socketpair ping-pong there. Many tiny tasks are
//! best sent through [`Pool::map`], which batches them.
//!
//! # Streams, callbacks, waiting
//!
//! * [`Pool::map`] / [`map_unordered`](Pool::map_unordered) /
//!   [`starmap`](Pool::starmap) / [`map_stream`](Pool::map_stream) apply a
//!   function to a lazy input (an iterator or a `Stream`, endless if you
//!   like) and return a [`MapStream`] of per-item results, in input or
//!   completion order. At most a window of chunks is in flight, so memory
//!   stays flat; tiny items are batched into chunks sized from measured run
//!   times, yet each item keeps its own result or error.
//! * [`TaskHandle::on_done`] attaches a callback that runs exactly once.
//! * [`as_completed`] and [`wait`] wait on many tasks, as in Python.
//!
//! # One function in a process of its own
//!
//! [`spawn`] (or [`Process::builder`]) is Python's
//! `multiprocessing.Process`: one registered function in a fresh one-shot
//! process, run by the same machinery as a pool's worker. The [`Process`]
//! handle is a future of the result, with [`pid`](Process::pid),
//! [`kill`](Process::kill) and [`exitcode`](Process::exitcode); dropping it
//! kills the process, [`detach`](Process::detach) lets it finish. Failures
//! are the pool's typed errors.
//!
//! ```rust,no_run
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), procpool::Error> {
//!     procpool::init(procpool::tasks![square]);
//!     let mut process = procpool::spawn(square, 7);
//!     assert_eq!((&mut process).await?, 49);
//!     assert_eq!(process.exitcode(), Some(0));
//!     Ok(())
//! }
//! ```
//!
//! # Channels into running tasks, and their logs
//!
//! [`channel`](channel()) makes a typed, bounded [`Sender`]/[`Receiver`];
//! [`Queue`] is Python's `multiprocessing.Queue`, [`pipe`] its `Pipe()`.
//! Endpoints are serde values: pass them to [`Pool::submit`] (or
//! [`spawn`]) as ordinary arguments. They are async in this process and
//! blocking inside tasks, multiplexed over each worker's own connection
//! with credit-based flow control (see the [`channel`](mod@channel)
//! module). [`PoolBuilder::forward_logs`] sends the `tracing` events of
//! tasks to this process's subscriber, tagged with the worker and task.
//!
//! ```rust,no_run
//! use futures::StreamExt;
//!
//! fn count_to(n: u64, out: procpool::Sender<u64>) {
//!     for i in 1..=n {
//!         out.blocking_send(i).unwrap();
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), procpool::Error> {
//!     procpool::init(procpool::tasks![count_to]);
//!     let pool = procpool::Pool::builder().workers(1).build().await?;
//!     let (tx, rx) = procpool::channel(16);
//!     let task = pool.submit(count_to, (3, tx));
//!     let got: Vec<u64> = rx.map(Result::unwrap).collect().await;
//!     assert_eq!(got, [1, 2, 3]);
//!     task.await?;
//!     Ok(())
//! }
//! ```
//!
//! # Shared state
//!
//! A [`Manager`] holds shared objects in the pool's process — a
//! [`Dict`](manager::Dict), [`List`](manager::List), [`Value`](manager::Value),
//! [`Queue`](manager::Queue) and [`Lock`](manager::Lock) — whose handles
//! are serde values passed to tasks; calls on them are applied whole where
//! the object lives, read-modify-write included (a registered `fn` run
//! there), and travel on each worker's own connection. See the
//! [`manager`] module.
//!
//! # Worker lifecycle
//!
//! [`PoolBuilder`] sets the number of workers, a per-task timeout,
//! recycling after N tasks, an initializer run once per worker (whose
//! failure fails [`build`](PoolBuilder::build) instead of looping), and
//! retries for tasks whose worker died. [`Pool::shutdown`] drains;
//! [`Pool::shutdown_now`] cancels; [`Pool::shutdown_timeout`] drains for a
//! while, then cancels; dropping the last `Pool` kills.
//!
//! For production it also bounds the queue
//! ([`max_queued`](PoolBuilder::max_queued), with [`Pool::reserve`] and
//! [`Pool::try_submit`]), caps each worker's memory
//! ([`max_memory_per_worker`](PoolBuilder::max_memory_per_worker),
//! [`Error::is_out_of_memory`]) and recycles workers that grew
//! ([`recycle_on_memory_growth`](PoolBuilder::recycle_on_memory_growth)),
//! fails a task for good after a number of crashes
//! ([`crash_limit`](PoolBuilder::crash_limit)), lets a cancelled task clean
//! up first ([`cancel_grace`](PoolBuilder::cancel_grace), [`cancelled`]),
//! and grows and shrinks with the load
//! ([`max_workers`](PoolBuilder::max_workers), [`Pool::resize`]).
//!
//! # Tasks and workers
//!
//! A task is a plain `fn` item whose arguments and result implement serde's
//! `Serialize` and `DeserializeOwned` (see [`Task`]). Every task is listed once,
//! in [`tasks!`], passed to [`init`] as the first statement of `main`. A worker
//! is your executable, re-executed with a marker in its environment: `init`
//! notices the marker, serves tasks, and exits when the pool goes away, so
//! nothing after `init` runs in a worker. Workers are never forked from the
//! tokio process (forking a threaded process can deadlock).
//!
//! Submitting an unregistered function is an error that names it; closures are
//! rejected (capturing ones at compile time). The worker's handshake checks
//! the protocol version and a fingerprint of the task list, so a worker built
//! from other code is refused at start-up rather than misbehaving later.
//!
//! # Failures
//!
//! Every submitted task resolves: to its value, to an [`Error`], or — if you
//! drop its handle — it is cancelled. In detail:
//!
//! | what happens | the task's result | the pool |
//! |---|---|---|
//! | the task panics | [`Error::is_panic`], with message, location, worker pid | worker lives on |
//! | the worker dies (abort, SIGSEGV, `exit`, `kill -9`) | [`Error::is_worker_died`] with [`exit_code`](Error::exit_code) or [`signal`](Error::signal) | worker replaced; other tasks unaffected |
//! | the worker sends garbage or an oversized frame | [`Error::is_protocol`] | worker killed and replaced |
//! | arguments cannot be serialized | [`Error::is_codec`], at submit | nothing sent |
//! | the handle is dropped | cancelled: never runs, or its worker is killed (with everything the task started, see [`Containment`]) | worker replaced |
//! | the worker does not act on a cancel within 500 ms (stopped, hung) | as above | the pool kills it |
//! | the arguments are larger than the maximum frame | [`Error::is_too_large`], at submit | nothing sent |
//! | a task allocates past [`max_memory_per_worker`](PoolBuilder::max_memory_per_worker) | [`Error::is_out_of_memory`], with the limit | worker replaced |
//! | [`try_submit`](Pool::try_submit) finds [`max_queued`](PoolBuilder::max_queued) tasks waiting | [`Error::is_queue_full`], at once | nothing queued |
//! | a `map` item panics, or crashes its worker | that item fails; its chunk's other items succeed | worker replaced if it died |
//! | [`Pool::shutdown`] | queued and running tasks finish | workers exit, then it returns |
//! | the last [`Pool`] is dropped | [`Error::is_shutdown`] | workers killed at once |
//! | the pool's process is killed | — | workers exit at once (they watch their socket), taking their tasks' processes along |
//!
//! Tasks that a dead worker had received but not started are not lost: they
//! go back to the front of the queue. A worker that keeps dying before it runs
//! anything is restarted with exponential backoff (50 ms to 5 s), never in a
//! tight loop.
//!
//! # What dies with a task
//!
//! Each worker runs in its own process group, without a controlling
//! terminal, and where this process may create one, in a cgroup v2 of its
//! own ([`Containment`]): then nothing a task starts — not even a daemon that
//! double-forked into a session of its own — outlives the task when it ends
//! early. The pool tracks each worker with a pidfd and never signals a pid
//! after reaping it, so a reused pid is never hit.
//!
//! # Workers on other machines
//!
//! [`PoolBuilder::launcher`] takes a [`Launcher`]: workers on this machine
//! (the default), or started elsewhere by `ssh HOST`, Slurm's `srun`, or any
//! command prefix that forwards stdin and stdout, which then carry the
//! protocol. The same tasks, `map`, channels, cancels and timeouts work
//! through each; start-up failures name the launcher; a hung link is found
//! by keepalive frames. See [`Launcher`] for what crosses hosts.
//!
//! # Testing code that uses a pool
//!
//! A worker must reach [`init`] before anything else. Cargo's default test
//! harness runs tests instead of your `main`, so an integration test that
//! starts a pool uses its own `main`: set `harness = false` for it in
//! `Cargo.toml` and call `init` first, as this crate's own tests do. Or point
//! [`PoolBuilder::worker_program`] at a binary that serves the same tasks.
//!
//! # Platform support
//!
//! Linux is the primary target. Other Unix systems should work, but a worker
//! there notices the death of its pool's process only by polling (within a
//! second). Windows is not supported.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(unix))]
compile_error!(
    "procpool supports Unix only (it relies on socketpairs, process groups and signals)"
);

mod buffer;
pub mod channel;
mod codec;
mod error;
mod launch;
mod logs;
pub mod manager;
mod map;
mod pool;
mod process;
mod registry;
pub mod shared;
mod sys;
mod task;
mod wire;
mod worker;

pub use buffer::{Buffer, Bytes};
pub use bytemuck::Pod;
pub use channel::{Duplex, Queue, Receiver, Sender, channel, pipe};
pub use error::Error;
pub use launch::{Containment, Launcher, Redirect};
pub use manager::Manager;
pub use map::MapStream;
pub use pool::{Distribution, Insights, Pool, PoolBuilder, Reservation, Stats, WorkerInsights};
pub use process::{Process, ProcessBuilder, spawn};
pub use registry::{Registry, Task};
pub use task::{Callback, OnDone, TaskHandle, WaitFor, Waited, as_completed, wait};
pub use worker::{cancelled, init};

/// The README's examples, compiled with the doctests so that what it shows
/// keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

/// Not part of the API: hooks for procpool's own tests, which may change
/// or go away in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::channel::remote::channels_known;
    pub use crate::manager::raw_call_through_pool;
    pub use crate::worker::echo_through_pool;
}
