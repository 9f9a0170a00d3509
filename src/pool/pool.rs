//! The user's handle on a running pool.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};

use crate::error::{Error, Repr};
use crate::launch::Containment;
use crate::map::MapStream;
use crate::pool::builder::PoolBuilder;
use crate::pool::dispatcher::Command;
use crate::pool::insights::Insights;
use crate::pool::job::{self, Encoded, Job, Placement, Ticket};
use crate::pool::room::{self, Room};
use crate::pool::stats::{Counters, Stats};
use crate::task::handle::TaskHandle;

use crate::registry::{Registry, Task, assert_fn_item};

/// A pool of worker processes that run registered functions.
///
/// `Pool` is a cheap handle: clone it into as many tokio tasks as you like;
/// all clones drive the same workers. Build one with [`Pool::builder`].
///
/// Dropping the last handle kills every worker at once (tasks still
/// outstanding fail with [`Error::is_shutdown`]); call
/// [`shutdown`](Pool::shutdown) to let them finish first.
///
/// # Examples
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![square]);
///     tokio::runtime::Runtime::new()?.block_on(async {
///         let pool = procpool::Pool::builder().workers(2).build().await?;
///         assert_eq!(pool.submit(square, 7).await?, 49);
///         pool.shutdown().await;
///         Ok(())
///     })
/// }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    registry: &'static Registry,
    config: Config,
    /// The runtime the pool was built on, where its dispatcher runs.
    runtime: tokio::runtime::Handle,
    closed: AtomicBool,
    /// Room in the queue under `max_queued`; `None`: unbounded.
    room: Option<Arc<Semaphore>>,
}

/// What a pool handle needs to know of the builder's settings.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) max_frame: u64,
    pub(crate) containment: Containment,
    pub(crate) max_queued: Option<usize>,
    /// How workers are started, where that is not on this machine (shared
    /// memory cannot reach them).
    pub(crate) remote: Option<String>,
}

impl Pool {
    /// A builder with default settings; see [`PoolBuilder`] for each one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::Pool;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = Pool::builder().workers(4).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    pub(crate) fn from_parts(
        commands: mpsc::UnboundedSender<Command>,
        counters: Arc<Counters>,
        registry: &'static Registry,
        config: Config,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                commands,
                counters,
                registry,
                runtime: tokio::runtime::Handle::current(),
                closed: AtomicBool::new(false),
                room: config
                    .max_queued
                    .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
                config,
            }),
        }
    }

    /// Runs `f(args)` in a worker process; the handle resolves to its result.
    ///
    /// The arguments are encoded now, and the task is queued at once: it runs
    /// whether or not the handle is polled, unless the handle is dropped first
    /// (see [`TaskHandle`] on cancellation). A pool-wide
    /// [`task_timeout`](PoolBuilder::task_timeout) applies to the handle.
    /// With [`max_queued`](PoolBuilder::max_queued) set and the queue full,
    /// the task waits for room (it is queued, in submission order, as soon
    /// as there is some) and the handle resolves as usual; to slow a
    /// producer down instead, await [`reserve`](Pool::reserve) first, or
    /// refuse the work with [`try_submit`](Pool::try_submit).
    ///
    /// `args` is the function's one argument as it is, the tuple of its
    /// arguments for several, or `()` for none (see [`Task`]):
    ///
    /// | function | call |
    /// |---|---|
    /// | `fn hostname() -> String` | `pool.submit(hostname, ())` |
    /// | `fn square(x: u64) -> u64` | `pool.submit(square, 7)` (not `(7,)`) |
    /// | `fn product(a: u64, b: u64, c: u64) -> u64` | `pool.submit(product, (2, 3, 4))` |
    ///
    /// It may be called from any thread, inside a tokio runtime or not; the
    /// handle is a plain future that any executor can poll.
    ///
    /// # Errors
    ///
    /// The handle resolves to an error if `f` was not registered with
    /// [`init`](crate::init) ([`Error::is_unregistered`]), the arguments
    /// cannot be serialized ([`Error::is_codec`]) or are over
    /// [`max_frame_size`](PoolBuilder::max_frame_size)
    /// ([`Error::is_too_large`]) — all three known before the handle is
    /// first polled, and nothing is sent — or the pool is shut down
    /// ([`Error::is_shutdown`]); later, if the task panics
    /// ([`Error::is_panic`]), its worker dies ([`Error::is_worker_died`]) or
    /// breaks the protocol ([`Error::is_protocol`]), the result cannot be
    /// decoded ([`Error::is_codec`]), or it times out ([`Error::is_timeout`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn product(a: u64, b: u64, c: u64) -> u64 { a * b * c }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// assert_eq!(pool.submit(product, (2, 3, 4)).await?, 24);
    /// # Ok(()) }
    /// ```
    ///
    /// Handles are futures, so many tasks run at once when submitted first
    /// and awaited afterwards:
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let handles: Vec<_> = (0..8).map(|x| pool.submit(square, x)).collect();
    /// let squares: Vec<u64> = futures::future::try_join_all(handles).await?;
    /// assert_eq!(squares[7], 49);
    /// # Ok(()) }
    /// ```
    pub fn submit<M, F: Task<M>>(&self, f: F, args: F::Args) -> TaskHandle<F::Output> {
        assert_fn_item::<F>();
        let _ = f;
        self.handle_for::<F, F::Args, F::Output>(args, Room::WaitIfFull)
    }

    /// Room in the queue under `max_queued` (`None`: unbounded), and the
    /// limit.
    pub(crate) fn room(&self) -> Option<(&Arc<Semaphore>, usize)> {
        let room = self.inner.room.as_ref()?;
        Some((room, self.inner.config.max_queued.unwrap_or_default()))
    }

    /// The handle of a task submitted with `room` (see [`Room`]).
    pub(crate) fn handle_for<F: 'static, A: serde::Serialize + 'static, T>(
        &self,
        args: A,
        room: Room,
    ) -> TaskHandle<T> {
        let task = std::any::type_name::<F>();
        // The pool-wide timeout's timer needs the runtime; a submit from a
        // plain thread gets the pool's.
        let _runtime = self.inner.runtime.enter();
        TaskHandle::new(
            task,
            self.enqueue::<F, A>(task, args, room),
            self.inner.config.task_timeout,
        )
    }

    fn enqueue<F: 'static, A: serde::Serialize + 'static>(
        &self,
        task: &'static str,
        args: A,
        room: Room,
    ) -> Result<Ticket, Error> {
        let encoded = job::encode_request(self.task_index::<F>()?, args)?;
        let (mut job, ticket) = self.prepare(task, encoded)?;
        match room {
            Room::Taken(room) => job.room = room,
            Room::WaitIfFull => {
                if let Some(room) = &self.inner.room {
                    match room.clone().try_acquire_owned() {
                        Ok(taken) => job.room = Some(taken),
                        Err(TryAcquireError::Closed) => return Err(Error::new(Repr::ShutDown)),
                        Err(TryAcquireError::NoPermits) => {
                            room::queue_when_room(
                                &self.inner.runtime,
                                room.clone(),
                                self.inner.commands.clone(),
                                job,
                            );
                            return Ok(ticket);
                        }
                    }
                }
            }
        }
        self.send(job)?;
        Ok(ticket)
    }

    /// The index requests use for `F`.
    pub(crate) fn task_index<F: 'static>(&self) -> Result<u32, Error> {
        self.inner.registry.index_of::<F>()
    }

    /// Queues an encoded request frame, whatever `max_queued` says (a `map`
    /// is bounded by its window instead).
    pub(crate) fn enqueue_frame(
        &self,
        task: &'static str,
        encoded: Encoded,
    ) -> Result<Ticket, Error> {
        let (job, ticket) = self.prepare(task, encoded)?;
        self.send(job)?;
        Ok(ticket)
    }

    /// The job for an encoded request, and the caller's end of it; an error
    /// if it must not be sent at all.
    fn prepare(&self, task: &'static str, encoded: Encoded) -> Result<(Job, Ticket), Error> {
        if self.inner.closed.load(Relaxed) {
            return Err(Error::new(Repr::ShutDown));
        }
        let Encoded {
            request,
            holds,
            regions,
        } = encoded;
        job::check_local(task, &regions, self.inner.config.remote.as_ref())?;
        let bytes = request.body_len();
        if bytes > self.inner.config.max_frame {
            // A worker would refuse it and die; do not send it at all.
            return Err(Error::new(Repr::TooLarge {
                task,
                bytes,
                max: self.inner.config.max_frame,
            }));
        }
        let (reply, receiver) = oneshot::channel();
        let placed = Placement::default();
        let span = job::task_span(task);
        if let Some(span) = &span {
            span.in_scope(|| tracing::trace!(target: "procpool", task, "task submitted"));
        }
        let job = Job {
            span,
            retries_left: self.inner.config.retries,
            placed: placed.clone(),
            holds,
            regions,
            // One clock read per task: its queue wait starts here.
            submitted: Some(std::time::Instant::now()),
            ..Job::new(task, request, reply)
        };
        let ticket = Ticket {
            answer: receiver,
            placed,
        };
        Ok((job, ticket))
    }

    fn send(&self, job: Job) -> Result<(), Error> {
        self.inner
            .commands
            .send(Command::Submit(job))
            .map_err(|_| Error::new(Repr::ShutDown))
    }

    /// Applies `f` to every item of `input`, yielding the results in input
    /// order as a [`Stream`](futures::Stream).
    ///
    /// Input is pulled lazily, so it may be endless, and it may borrow from
    /// the caller (the stream then lives no longer than the borrow); small
    /// items travel in chunks (see [`MapStream`] for chunking, the window,
    /// and what a crash mid-chunk does). Nothing is pulled or sent until the
    /// stream is first polled. For a function of several arguments, the
    /// items are tuples (see also [`starmap`](Pool::starmap)).
    ///
    /// [`task_timeout`](PoolBuilder::task_timeout) does not apply to a map;
    /// wrap the stream (or each `next()`) in a timeout of your own if you
    /// need one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let squares: Vec<u64> = pool.map(square, 0..1000).try_collect().await?;
    /// assert_eq!(squares[999], 999 * 999);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Each item's result is its own: a panic, a crash or an encode error
    /// fails that item and the stream goes on. If `f` is not registered, the
    /// stream yields that one error and ends. Once the pool is shut down,
    /// each item still to come fails with [`Error::is_shutdown`] (input is
    /// still pulled, so with an endless input, stop at the first such error).
    pub fn map<'a, M, F, I>(&self, f: F, input: I) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        I: IntoIterator<Item = F::Args>,
        I::IntoIter: Send + 'a,
    {
        self.map_stream(f, futures::stream::iter(input))
    }

    /// Like [`map`](Pool::map), but yields each result as soon as it is
    /// ready, in completion order.
    ///
    /// A slow item then holds back nothing but itself, where with `map` it
    /// holds back every later result (up to the window). The results do not
    /// say which input they came from: have the function return what you
    /// need to match them up.
    ///
    /// # Errors
    ///
    /// As for [`map`](Pool::map): each item's error is its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// fn square_of(x: u64) -> (u64, u64) { (x, x * x) }
    ///
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let mut results = pool.map_unordered(square_of, 0..100);
    /// while let Some(result) = results.next().await {
    ///     let (x, y) = result?;
    ///     println!("{x}² = {y}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn map_unordered<'a, M, F, I>(&self, f: F, input: I) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        I: IntoIterator<Item = F::Args>,
        I::IntoIter: Send + 'a,
    {
        self.map_stream_unordered(f, futures::stream::iter(input))
    }

    /// [`map`](Pool::map) for a function of several arguments, fed with
    /// tuples: Python's `starmap`. (`map` accepts the same tuples; this name
    /// says what the call does.)
    ///
    /// # Errors
    ///
    /// As for [`map`](Pool::map): each item's error is its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// # fn product(a: u64, b: u64, c: u64) -> u64 { a * b * c }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let products: Vec<u64> = pool.starmap(product, [(1, 2, 3), (3, 4, 5)]).try_collect().await?;
    /// assert_eq!(products, [6, 60]);
    /// # Ok(()) }
    /// ```
    pub fn starmap<'a, M, F, I>(&self, f: F, input: I) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        I: IntoIterator<Item = F::Args>,
        I::IntoIter: Send + 'a,
    {
        self.map(f, input)
    }

    /// [`starmap`](Pool::starmap) in completion order; see
    /// [`map_unordered`](Pool::map_unordered).
    ///
    /// # Errors
    ///
    /// As for [`map`](Pool::map): each item's error is its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    ///
    /// fn power(base: u64, exp: u32) -> u64 { base.pow(exp) }
    ///
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let mut powers: Vec<u64> = pool
    ///     .starmap_unordered(power, [(2, 10), (3, 4), (10, 3)])
    ///     .try_collect()
    ///     .await?;
    /// powers.sort();
    /// assert_eq!(powers, [81, 1000, 1024]);
    /// # Ok(()) }
    /// ```
    pub fn starmap_unordered<'a, M, F, I>(&self, f: F, input: I) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        I: IntoIterator<Item = F::Args>,
        I::IntoIter: Send + 'a,
    {
        self.map_unordered(f, input)
    }

    /// [`map`](Pool::map) over a [`Stream`](futures::Stream) of inputs, for
    /// example items arriving on a channel. A chunk is sent as soon as the
    /// input has nothing more for the moment, so slow input is not held back
    /// to fill chunks. The input is polled only while the window has room,
    /// so a producer feeding a bounded channel is slowed down to the pool's
    /// pace.
    ///
    /// # Errors
    ///
    /// As for [`map`](Pool::map): each item's error is its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::{SinkExt, StreamExt};
    ///
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let (mut tx, rx) = futures::channel::mpsc::channel::<u64>(16);
    /// tokio::spawn(async move {
    ///     for x in 0..1_000 {
    ///         tx.send(x).await.expect("the map is running");
    ///     }
    /// });
    /// let mut squares = pool.map_stream(square, rx);
    /// while let Some(square) = squares.next().await {
    ///     println!("{}", square?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn map_stream<'a, M, F, S>(&self, f: F, input: S) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        S: futures::Stream<Item = F::Args> + Send + 'a,
    {
        self.stream_of(f, input, true)
    }

    /// [`map_stream`](Pool::map_stream) in completion order; see
    /// [`map_unordered`](Pool::map_unordered).
    ///
    /// # Errors
    ///
    /// As for [`map`](Pool::map): each item's error is its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// fn checksum(line: String) -> (String, u32) {
    ///     let sum = line.bytes().map(u32::from).sum();
    ///     (line, sum)
    /// }
    ///
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let lines = futures::stream::iter(["alpha", "beta", "gamma"]).map(String::from);
    /// let mut sums = pool.map_stream_unordered(checksum, lines);
    /// while let Some(result) = sums.next().await {
    ///     let (line, sum) = result?;
    ///     println!("{line}: {sum}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn map_stream_unordered<'a, M, F, S>(&self, f: F, input: S) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        S: futures::Stream<Item = F::Args> + Send + 'a,
    {
        self.stream_of(f, input, false)
    }

    fn stream_of<'a, M, F, S>(&self, f: F, input: S, ordered: bool) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        S: futures::Stream<Item = F::Args> + Send + 'a,
    {
        assert_fn_item::<F>();
        let _ = f;
        MapStream::new::<F, _>(self, input, ordered)
    }

    /// Lets queued and running tasks finish, then stops the workers and waits
    /// for them to exit. Tasks submitted after this starts fail with
    /// [`Error::is_shutdown`]. Every clone of the pool is shut down.
    ///
    /// There is no time limit: a task that never ends (or whose worker is
    /// stopped by SIGSTOP) holds it up. [`shutdown_timeout`](Pool::shutdown_timeout)
    /// puts one on it and falls back to [`shutdown_now`](Pool::shutdown_now),
    /// as below does by hand. Calling it again,
    /// or from several clones, is fine: each call returns once the workers
    /// are gone.
    ///
    /// # Cancel safety
    ///
    /// Nothing happens until the future is first polled. After that,
    /// dropping it does not undo the shutdown, which carries on in the
    /// background as long as a clone of the pool is alive; once the last
    /// clone is dropped too, the workers are killed as on any drop of the
    /// pool.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// if tokio::time::timeout(Duration::from_secs(30), pool.shutdown()).await.is_err() {
    ///     // Still draining after 30 s: kill what is left.
    ///     pool.shutdown_now().await;
    /// }
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.stop(Command::Shutdown).await;
    }

    /// [`shutdown`](Pool::shutdown) for at most `limit`, then
    /// [`shutdown_now`](Pool::shutdown_now): queued and running tasks get
    /// until then to finish; whatever is still queued or running after it
    /// is cancelled (running ones killed with their workers) and its handle
    /// resolves to [`Error::is_shutdown`]. Every task resolves either way,
    /// and it returns once the workers are reaped. `true` if everything
    /// finished within `limit`.
    ///
    /// # Cancel safety
    ///
    /// As for [`shutdown`](Pool::shutdown): dropping the future does not
    /// undo the shutdown, but the kill at `limit` happens only while it is
    /// polled.
    ///
    /// # Panics
    ///
    /// If polled outside a tokio runtime with a time driver (the limit's
    /// timer needs one).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo(pool: procpool::Pool) {
    /// // SIGTERM received: give running work 25 s, then stop for good.
    /// if !pool.shutdown_timeout(Duration::from_secs(25)).await {
    ///     eprintln!("some tasks were still running and were killed");
    /// }
    /// # }
    /// ```
    pub async fn shutdown_timeout(&self, limit: Duration) -> bool {
        if tokio::time::timeout(limit, self.shutdown()).await.is_ok() {
            return true;
        }
        self.shutdown_now().await;
        false
    }

    /// Stops at once: queued tasks never run and running ones are killed
    /// with their workers (and, as [`Containment`] allows, the processes they
    /// started); every outstanding handle resolves to
    /// [`Error::is_shutdown`]. Returns once the workers are reaped. It also
    /// ends a [`shutdown`](Pool::shutdown) that is still draining.
    ///
    /// # Cancel safety
    ///
    /// Nothing happens until the future is first polled. After that,
    /// dropping it does not undo the shutdown: the workers are killed
    /// anyway, and reaped in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo(pool: procpool::Pool) {
    /// let handle = pool.submit(slow, 1);
    /// pool.shutdown_now().await;
    /// assert!(handle.await.unwrap_err().is_shutdown());
    /// # }
    /// ```
    pub async fn shutdown_now(&self) {
        self.stop(Command::ShutdownNow).await;
    }

    async fn stop(&self, command: fn(oneshot::Sender<()>) -> Command) {
        self.inner.closed.store(true, Relaxed);
        if let Some(room) = &self.inner.room {
            // Whoever waits for room now fails with a shutdown error.
            room.close();
        }
        let (done, finished) = oneshot::channel();
        if self.inner.commands.send(command(done)).is_ok() {
            // An error means the dispatcher is already gone: also done.
            let _ = finished.await;
        }
    }

    /// Makes the pool keep exactly `n` workers from now on (`0` is treated
    /// as `1`), fixed: an elastic pool stops growing and shrinking.
    ///
    /// Growing starts the new workers at once. Shrinking lets idle workers
    /// go at once and busy ones as soon as they are idle: no task is
    /// cancelled or moved for it. It returns at once; the change happens
    /// in the pool's background task, and
    /// [`stats`](Pool::stats)`().workers` shows it shortly. After a
    /// shutdown it does nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pool: procpool::Pool) {
    /// // Night batch: use the whole machine; daytime: leave room for others.
    /// let cores = std::thread::available_parallelism().map_or(1, usize::from);
    /// pool.resize(cores);
    /// // ...
    /// pool.resize(1);
    /// # }
    /// ```
    pub fn resize(&self, n: usize) {
        // An error means the dispatcher is gone: nothing to resize.
        let _ = self.inner.commands.send(Command::Resize(n.max(1)));
    }

    /// How this pool makes the processes a task starts die with it: never
    /// [`Containment::Auto`], but what `Auto` resolved to.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pool: procpool::Pool) {
    /// if pool.containment() != procpool::Containment::Cgroup {
    ///     eprintln!("warning: daemons started by tasks may outlive them");
    /// }
    /// # }
    /// ```
    pub fn containment(&self) -> Containment {
        self.inner.config.containment
    }

    /// The largest request frame this pool sends (`PoolBuilder::max_frame_size`).
    pub(crate) fn max_frame(&self) -> u64 {
        self.inner.config.max_frame
    }

    /// What the pool is doing right now: a snapshot of its counters (see
    /// [`Stats`] for what each one counts).
    ///
    /// It is cheap (a few atomic loads, no message to the pool) and may lag
    /// the pool's state slightly, as the counters are published by the
    /// pool's background task after each step.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pool: procpool::Pool) {
    /// let stats = pool.stats();
    /// println!(
    ///     "{}/{} workers alive, {} busy, {} tasks queued, {} respawns",
    ///     stats.alive, stats.workers, stats.busy, stats.queued, stats.respawns,
    /// );
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// What each worker has done and how long recent tasks ran and
    /// waited: per worker its start-up time, busy and idle time and tasks
    /// run; over the last 4,096 tasks, run-time and queue-wait percentiles
    /// (see [`Insights`] for what each one measures, and its `Display` for
    /// a table).
    ///
    /// It asks the pool's background task, which answers between two of
    /// its rounds: every result already delivered to a caller is counted
    /// (after awaiting `n` results on a fresh pool whose workers all live,
    /// the workers' `tasks` add up to `n`). Collecting the data costs the
    /// pool no lock and no shared counter; a report sorts two copies of
    /// at most 4,096 samples, once for all the asks that arrived together.
    ///
    /// After a shutdown, when the background task has ended, it is an
    /// empty [`Insights`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the answer, nothing else.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// for x in 0..100 {
    ///     pool.submit(square, x).await?;
    /// }
    /// let insights = pool.insights().await;
    /// let tasks: u64 = insights.workers.iter().map(|w| w.tasks).sum();
    /// assert_eq!(tasks, 100);
    /// println!("{insights}");
    /// # Ok(()) }
    /// ```
    pub async fn insights(&self) -> Insights {
        let (reply, answer) = oneshot::channel();
        if self.inner.commands.send(Command::Insights(reply)).is_err() {
            return Insights::default();
        }
        answer.await.unwrap_or_default()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("Pool")
            .field("workers", &stats.workers)
            .field("alive", &stats.alive)
            .field("busy", &stats.busy)
            .field("queued", &stats.queued)
            .field("closed", &self.inner.closed.load(Relaxed))
            .finish()
    }
}
