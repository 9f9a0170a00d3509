//! The user's handle on a running pool.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Repr};
use crate::launch::Containment;
use crate::map::MapStream;
use crate::pool::builder::PoolBuilder;
use crate::pool::dispatcher::Command;
use crate::pool::job::{Job, Placement, Ticket};
use crate::pool::stats::{Counters, Stats};
use crate::task::handle::TaskHandle;
use crate::wire::{frame, request};

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
}

/// What a pool handle needs to know of the builder's settings.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) max_frame: u64,
    pub(crate) containment: Containment,
}

impl Pool {
    /// A builder with default settings; see [`PoolBuilder`].
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
                config,
                runtime: tokio::runtime::Handle::current(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `f(args)` in a worker process; the handle resolves to its result.
    ///
    /// The arguments are encoded now, and the task is queued at once: it runs
    /// whether or not the handle is polled, unless the handle is dropped first
    /// (see [`TaskHandle`] on cancellation). For a function of several
    /// arguments, pass them as a tuple.
    ///
    /// ```no_run
    /// fn product(a: u64, b: u64, c: u64) -> u64 { a * b * c }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// assert_eq!(pool.submit(product, (2, 3, 4)).await?, 24);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The handle resolves to an error if `f` was not registered with
    /// [`init`](crate::init) ([`Error::is_unregistered`]), the arguments cannot
    /// be serialized ([`Error::is_codec`]; known before the handle is first
    /// polled), the pool is shut down ([`Error::is_shutdown`]), the task
    /// panics ([`Error::is_panic`]) or its worker dies ([`Error::is_worker_died`]).
    pub fn submit<M, F: Task<M>>(&self, f: F, args: F::Args) -> TaskHandle<F::Output> {
        assert_fn_item::<F>();
        let _ = f;
        let task = std::any::type_name::<F>();
        // The pool-wide timeout's timer needs the runtime; a submit from a
        // plain thread gets the pool's.
        let _runtime = self.inner.runtime.enter();
        TaskHandle::new(
            task,
            self.enqueue::<F, F::Args>(task, &args),
            self.inner.config.task_timeout,
        )
    }

    fn enqueue<F: 'static, A: serde::Serialize>(
        &self,
        task: &'static str,
        args: &A,
    ) -> Result<Ticket, Error> {
        let frame = request::encode(self.task_index::<F>()?, args)?;
        self.enqueue_frame(task, frame)
    }

    /// The index requests use for `F`.
    pub(crate) fn task_index<F: 'static>(&self) -> Result<u32, Error> {
        self.inner.registry.index_of::<F>()
    }

    /// Queues an encoded request frame.
    pub(crate) fn enqueue_frame(
        &self,
        task: &'static str,
        frame: Vec<u8>,
    ) -> Result<Ticket, Error> {
        if self.inner.closed.load(Relaxed) {
            return Err(Error::new(Repr::ShutDown));
        }
        let bytes = frame::body_len_of(&frame);
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
        self.inner
            .commands
            .send(Command::Submit(Job {
                task,
                frame,
                reply,
                retries_left: self.inner.config.retries,
                failed_deliveries: 0,
                crashed_workers: 0,
                placed: placed.clone(),
            }))
            .map_err(|_| Error::new(Repr::ShutDown))?;
        Ok(Ticket {
            answer: receiver,
            placed,
        })
    }

    /// Applies `f` to every item of `input`, yielding the results in input
    /// order as a [`Stream`](futures::Stream).
    ///
    /// Input is pulled lazily, so it may be endless; small items travel in
    /// chunks (see [`MapStream`] for chunking, the window, and what a crash
    /// mid-chunk does). For a function of several arguments, the items are
    /// tuples (see also [`starmap`](Pool::starmap)).
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
    /// stream yields that one error and ends.
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

    /// [`starmap`](Pool::starmap) in completion order.
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
    /// to fill chunks.
    pub fn map_stream<'a, M, F, S>(&self, f: F, input: S) -> MapStream<'a, F::Output>
    where
        F: Task<M>,
        S: futures::Stream<Item = F::Args> + Send + 'a,
    {
        self.stream_of(f, input, true)
    }

    /// [`map_stream`](Pool::map_stream) in completion order.
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
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown, which carries on in the
    /// background.
    pub async fn shutdown(&self) {
        self.stop(Command::Shutdown).await;
    }

    /// Stops at once: queued tasks never run and running ones are killed
    /// with their workers; every outstanding handle resolves to
    /// [`Error::is_shutdown`]. Returns once the workers are reaped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown, which carries on in the
    /// background.
    pub async fn shutdown_now(&self) {
        self.stop(Command::ShutdownNow).await;
    }

    async fn stop(&self, command: fn(oneshot::Sender<()>) -> Command) {
        self.inner.closed.store(true, Relaxed);
        let (done, finished) = oneshot::channel();
        if self.inner.commands.send(command(done)).is_ok() {
            // An error means the dispatcher is already gone: also done.
            let _ = finished.await;
        }
    }

    /// How this pool makes the processes a task starts die with it: never
    /// [`Containment::Auto`], but what `Auto` resolved to.
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

    /// What the pool is doing right now.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(self.inner.config.workers)
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
