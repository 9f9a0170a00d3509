//! The builder's settings for running in production: the pool's size
//! under load (elastic), backpressure, memory caps and graceful
//! cancellation. The rest of [`PoolBuilder`] is in `builder.rs`; the
//! README's "Production" section has them side by side, with their costs.

use std::time::Duration;

use crate::pool::PoolBuilder;

impl PoolBuilder {
    /// Makes the pool elastic, growing up to `n` workers while tasks wait
    /// for one: a worker is started for each task that finds every worker
    /// busy, until there are `n`. Workers beyond
    /// [`min_workers`](PoolBuilder::min_workers) that stay idle for
    /// [`idle_timeout`](PoolBuilder::idle_timeout) exit again (loky's and
    /// piscina's elastic pools). Workers are exec'd, not forked, so one
    /// starts in about a millisecond here, plus its initializer.
    ///
    /// The pool starts with `min_workers`, which defaults to
    /// [`workers`](PoolBuilder::workers) (and that to the available
    /// parallelism). A `max_workers` below the minimum is raised to it.
    /// [`Stats::workers`](crate::Stats::workers) says how many there are;
    /// [`Pool::resize`](crate::Pool::resize) fixes the size at run time.
    ///
    /// The default is no elasticity: the pool keeps `workers` workers. The
    /// cost when set: counting slots once per round of the pool's
    /// background task, and a timer tick every quarter of the idle timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // One worker when quiet, up to eight under load, back after 30 s idle.
    /// let pool = procpool::Pool::builder()
    ///     .min_workers(1)
    ///     .max_workers(8)
    ///     .idle_timeout(Duration::from_secs(30))
    ///     .build()
    ///     .await?;
    /// assert_eq!(pool.stats().workers, 1);
    /// # Ok(()) }
    /// ```
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n.max(1));
        self
    }

    /// The workers an elastic pool (see
    /// [`max_workers`](PoolBuilder::max_workers)) starts with and keeps
    /// however idle it is. The default is [`workers`](PoolBuilder::workers);
    /// `0` is silently treated as `1` (a pool always has a worker ready).
    /// Without `max_workers`, it is the same as `workers(n)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().min_workers(2).max_workers(16).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn min_workers(mut self, n: usize) -> Self {
        self.min_workers = Some(n.max(1));
        self
    }

    /// How long a worker of an elastic pool (see
    /// [`max_workers`](PoolBuilder::max_workers)) beyond its
    /// [`min_workers`](PoolBuilder::min_workers) may go without a task
    /// before it exits. It is checked every quarter of this, so a worker
    /// goes after between 1 and 1.25 times it.
    ///
    /// The default is 60 seconds. It does nothing for a fixed pool.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .max_workers(4)
    ///     .idle_timeout(Duration::from_secs(5))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most tasks that may wait in the pool's queue for a worker (tasks
    /// already sent to a worker do not count): backpressure for a producer
    /// faster than the workers, piscina's `maxQueue`.
    ///
    /// Beyond it:
    ///
    /// * [`Pool::reserve`](crate::Pool::reserve)`.await` waits for room,
    ///   holding nothing meanwhile, so a producer loop or a request handler
    ///   that awaits it runs at the workers' pace with flat memory;
    /// * [`Pool::try_submit`](crate::Pool::try_submit) fails at once with
    ///   [`Error::is_queue_full`](crate::Error::is_queue_full);
    /// * [`Pool::submit`](crate::Pool::submit), which cannot wait (it
    ///   returns the handle at once), encodes the task and queues it as soon
    ///   as there is room, in submission order; its handle resolves then as
    ///   usual. A task waiting so holds its encoded arguments, so a loop
    ///   that submits without awaiting anything still grows: use `reserve`
    ///   there.
    ///
    /// [`map`](crate::Pool::map) and its relatives are not limited by it:
    /// their window bounds them already. A task requeued because its worker
    /// died is not refused either.
    ///
    /// The default is no limit (the queue grows as needed). `0` is silently
    /// treated as `1`. The cost when set: one uncontended semaphore
    /// operation per submit and one per task sent to a worker.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().max_queued(1_000).build().await?;
    /// for x in 0..1_000_000u64 {
    ///     pool.reserve().await?.submit(square, x).detach();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn max_queued(mut self, n: usize) -> Self {
        self.max_queued = Some(n.max(1));
        self
    }

    /// A hard cap on each worker's memory: a task whose allocation would take
    /// its worker past `bytes` fails with
    /// [`Error::is_out_of_memory`](crate::Error::is_out_of_memory) (the
    /// limit in its message), its worker dies of it and is replaced, and
    /// the other tasks go on.
    ///
    /// What is counted is the worker's **address space** (`RLIMIT_AS`, set
    /// by the worker on itself, soft and hard, before anything of yours
    /// runs): all the virtual memory it has mapped, not only what is
    /// resident. That includes reservations that cost no RAM: the
    /// program's own mappings, 8 MiB of stack per thread, and glibc's
    /// per-thread malloc arenas (64 MiB of address space each). An idle
    /// worker of this crate's test programs maps about 73 MiB with 4 MiB
    /// resident, and each thread a task starts adds to that; so set the cap
    /// well above what a worker maps at rest (`VmSize` in
    /// `/proc/<pid>/status`), not at its expected RSS. Each process a task
    /// starts inherits its own copy of the limit, not a share of it.
    ///
    /// Why not a cgroup's `memory.max`, which counts resident memory for a
    /// whole tree? It needs the cgroup v2 memory controller delegated to
    /// this process; on the hybrid cgroup machines this crate is built and
    /// tested on (the memory controller on v1) there is none, and an
    /// rlimit works everywhere, with no privileges. A worker killed by the
    /// kernel's OOM killer, or by a cgroup limit set from outside, is
    /// [`is_worker_died`](crate::Error::is_worker_died) with SIGKILL: the
    /// kernel does not say why.
    ///
    /// How a failure is recognised: Rust aborts the process when an
    /// allocation fails (the hook that would let the worker act first,
    /// `std::alloc::set_alloc_error_hook`, is unstable). Under this cap the
    /// worker catches that SIGABRT, and if errno is `ENOMEM` or less than
    /// 32 MiB of address space is left, exits with code 71 instead, which
    /// the pool reports as out of memory; any other abort still dies of
    /// SIGABRT. Two limits follow: a single allocation far larger than what
    /// is left is recognised by errno alone, which Rust's backtrace
    /// printing (with `RUST_BACKTRACE` set) may overwrite, so it may then
    /// be reported as a SIGABRT; and a task that itself calls `exit(71)`
    /// under a cap is reported as out of memory. Native code that handles a
    /// failed `malloc` itself fails in its own way (an error, a null
    /// pointer) instead.
    ///
    /// The default is no cap. The cost when set: none per task.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn resize(path: String) -> bool { true }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .max_memory_per_worker(2 << 30) // 2 GiB of address space each
    ///     .build()
    ///     .await?;
    /// match pool.submit(resize, "huge.tiff".to_string()).await {
    ///     Err(err) if err.is_out_of_memory() => eprintln!("too big: {err}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn max_memory_per_worker(mut self, bytes: u64) -> Self {
        self.launch.memory_limit = Some(bytes);
        self
    }

    /// Recycles a worker whose resident memory (RSS) has grown by more than
    /// `bytes` since before its first task: loky's and Celery's
    /// `max_memory_per_child`, a remedy for leaks that a hard cap
    /// ([`max_memory_per_worker`](PoolBuilder::max_memory_per_worker))
    /// would only turn into failed tasks.
    ///
    /// The check runs after a worker answers (once per batch of answers);
    /// a worker over the threshold takes no new task, finishes those it
    /// holds, and hands over to a replacement started at once, as
    /// [`max_tasks_per_worker`](PoolBuilder::max_tasks_per_worker) does.
    /// Queued tasks are never tied to the worker being recycled: they wait
    /// in the pool's queue, where the other workers (and then the
    /// replacement) take them. [`Stats::recycled`](crate::Stats::recycled)
    /// counts the replacements.
    ///
    /// Growth, not size, is what counts: the baseline is the worker's RSS
    /// after start-up and the [initializer](PoolBuilder::initializer),
    /// just before its first task. So a worker that is born big (a model
    /// loaded by the initializer) is not recycled after every task, which
    /// an absolute threshold does to every worker born above it (Celery
    /// #4125). What counts is resident memory the task left behind,
    /// including memory freed but kept by the allocator: a task that
    /// briefly needs more than `bytes` may recycle its worker too. What is
    /// counted: anonymous pages (the heap) and shared memory a task made
    /// itself (`MAP_SHARED | MAP_ANONYMOUS`, a memfd), which the kernel
    /// cannot reclaim without swap. Not counted: children a task starts,
    /// file pages (the kernel can drop them), and the pool's
    /// [`shared`](crate::shared) regions, which the machine holds once and
    /// which a worker keeps mapped between tasks.
    ///
    /// The default is off. The cost when set: reading
    /// `/proc/<pid>/status` of the worker (a few µs; and its
    /// `/proc/<pid>/maps` while it has shared memory resident) after each
    /// batch of answers and before its first task; nothing when unset.
    /// Linux only: elsewhere nothing is measured and no worker is recycled
    /// for it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // A native library leaks: start afresh once a worker has grown by 512 MiB.
    /// let pool = procpool::Pool::builder()
    ///     .recycle_on_memory_growth(512 << 20)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn recycle_on_memory_growth(mut self, bytes: u64) -> Self {
        self.memory_growth = Some(bytes);
        self
    }

    /// Gives a running task that is cancelled (its handle dropped, or its
    /// [timeout](PoolBuilder::task_timeout) passed) up to `grace` to stop
    /// by itself before its worker is killed: Celery's soft and hard time
    /// limits.
    ///
    /// On the cancel, [`procpool::cancelled()`](crate::cancelled) turns
    /// `true` in the worker. A task that checks it, cleans up and returns
    /// within the grace period ends cleanly: its result is discarded (it
    /// counts in [`Stats::completed`](crate::Stats::completed), as a task
    /// that returned) and its worker lives on and takes the next task. A task still running when
    /// the grace period is over is killed with its worker and everything
    /// it started, as without a grace period; the pool kills a worker that
    /// cannot act on the cancel at all (stopped, hung) 500 ms after that.
    /// The caller's handle resolves at the cancel either way (to
    /// [`Error::is_timeout`](crate::Error::is_timeout) for a timeout); the
    /// worker takes no new task until the cancelled one is over.
    ///
    /// The default is zero: a cancelled running task is killed at once.
    /// Queued tasks and tasks sent ahead but not started never run, as
    /// always. The cost when set: one short-lived thread in the worker per
    /// cancel of a running task; nothing otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// fn export(rows: u64) -> u64 {
    ///     for row in 0..rows {
    ///         if procpool::cancelled() {
    ///             // remove the half-written file, then give up
    ///             return row;
    ///         }
    ///         // ... write one row ...
    ///     }
    ///     rows
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .task_timeout(Duration::from_secs(60))
    ///     .cancel_grace(Duration::from_secs(5))
    ///     .build()
    ///     .await?;
    /// let result = pool.submit(export, 1_000_000_000).await;
    /// # Ok(()) }
    /// ```
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.launch.cancel_grace = grace;
        self
    }
}
