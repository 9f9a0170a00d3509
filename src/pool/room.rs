//! Backpressure: room in the pool's queue under
//! [`PoolBuilder::max_queued`](crate::PoolBuilder::max_queued).
//!
//! The room is a semaphore of `max_queued` permits. A task takes one before
//! it enters the queue and gives it back as it leaves the queue for a worker
//! (the dispatcher drops it in `assign`), so the limit counts exactly the
//! tasks waiting for a worker, as piscina's `maxQueue` does. Tasks sent
//! ahead to a worker are bounded by `max_in_flight_per_worker` already, and
//! a task requeued after its worker died takes no new permit: it was
//! admitted once, and must not be refused (or wait) for the pool's own
//! failure.
//!
//! Without a limit there is no semaphore at all: `submit` costs one branch
//! more than before.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};

use crate::error::{Error, Repr};
use crate::pool::Pool;
use crate::pool::dispatcher::Command;
use crate::pool::job::Job;
use crate::registry::{Task, assert_fn_item};
use crate::task::handle::TaskHandle;

impl Pool {
    /// Like [`submit`](Pool::submit), but fails at once instead of waiting
    /// when the pool's queue is at
    /// [`max_queued`](crate::PoolBuilder::max_queued): piscina's `maxQueue`, for
    /// a service that sheds load rather than queue it.
    ///
    /// Without a `max_queued` limit it is `Ok(pool.submit(f, args))`.
    ///
    /// # Errors
    ///
    /// [`Error::is_queue_full`](crate::Error::is_queue_full) if there is no room; nothing was queued.
    /// Every other failure (not registered, not encodable, shut down, and
    /// what happens in the worker) comes from the handle, as for `submit`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().max_queued(1_000).build().await?;
    /// match pool.try_submit(square, 7) {
    ///     Ok(handle) => assert_eq!(handle.await?, 49),
    ///     Err(err) if err.is_queue_full() => eprintln!("overloaded: answer 503"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_submit<M, F: Task<M>>(
        &self,
        f: F,
        args: F::Args,
    ) -> Result<TaskHandle<F::Output>, Error> {
        assert_fn_item::<F>();
        let _ = f;
        let room = match self.room() {
            None => None,
            Some((room, max)) => {
                Some(room.clone().try_acquire_owned().map_err(|err| match err {
                    TryAcquireError::Closed => Error::new(Repr::ShutDown),
                    TryAcquireError::NoPermits => Error::new(Repr::QueueFull {
                        task: std::any::type_name::<F>(),
                        max,
                    }),
                })?)
            }
        };
        Ok(self.handle_for::<F, F::Args, F::Output>(args, Room::Taken(room)))
    }

    /// Waits until the pool's queue has room for one more task (see
    /// [`max_queued`](crate::PoolBuilder::max_queued)), and holds that room for
    /// the [`Reservation`]'s [`submit`](Reservation::submit).
    ///
    /// This is how a producer that submits faster than the workers run is
    /// slowed to their pace with flat memory: nothing is encoded or held
    /// while it waits. Waiters are served in the order they started
    /// waiting. Without a `max_queued` limit it is ready at once.
    ///
    /// # Errors
    ///
    /// [`Error::is_shutdown`](crate::Error::is_shutdown) once the pool is shut down (also for a call
    /// waiting when the shutdown begins).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes takes no room
    /// (its place in line is lost). Dropping the [`Reservation`] gives its
    /// room back.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder().max_queued(10_000).build().await?;
    /// for x in 0..10_000_000u64 {
    ///     // Waits whenever 10,000 tasks are queued: memory stays flat.
    ///     pool.reserve().await?.submit(square, x).detach();
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn reserve(&self) -> Result<Reservation, Error> {
        let room = match self.room() {
            None => None,
            Some((room, _)) => Some(
                room.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::new(Repr::ShutDown))?,
            ),
        };
        Ok(Reservation::new(self.clone(), room))
    }
}

/// How a submit gets its room in the queue.
#[derive(Debug)]
pub(crate) enum Room {
    /// Take room if there is some, else queue the task once there is
    /// (`submit`).
    WaitIfFull,
    /// Room already taken (`try_submit`, a [`Reservation`]); `None`: no limit.
    Taken(Option<OwnedSemaphorePermit>),
}

/// Room for one task in a pool's queue, held until it is used by
/// [`submit`](Reservation::submit) or dropped; from [`Pool::reserve`].
///
/// # Examples
///
/// ```no_run
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let reservation = pool.reserve().await?; // waits while the queue is full
/// let handle = reservation.submit(square, 12);
/// assert_eq!(handle.await?, 144);
/// # Ok(()) }
/// ```
#[must_use = "a Reservation holds room in the queue until it is used or dropped"]
pub struct Reservation {
    pool: Pool,
    room: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    pub(crate) fn new(pool: Pool, room: Option<OwnedSemaphorePermit>) -> Reservation {
        Reservation { pool, room }
    }

    /// Submits `f(args)` into the room held: exactly [`Pool::submit`], but
    /// it never waits, since the room is there already.
    ///
    /// # Errors
    ///
    /// As for [`Pool::submit`]: the handle resolves to the error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// let pool = &pool;
    /// let squares: Vec<_> = futures::future::try_join_all(
    ///     (0..4).map(|x| async move { pool.reserve().await?.submit(square, x).await }),
    /// )
    /// .await?;
    /// assert_eq!(squares, [0, 1, 4, 9]);
    /// # Ok(()) }
    /// ```
    pub fn submit<M, F: Task<M>>(self, f: F, args: F::Args) -> TaskHandle<F::Output> {
        assert_fn_item::<F>();
        let _ = f;
        let Reservation { pool, room } = self;
        pool.handle_for::<F, F::Args, F::Output>(args, Room::Taken(room))
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("limited", &self.room.is_some())
            .finish_non_exhaustive()
    }
}

/// Queues `job` once there is room, from a task on the pool's runtime, so
/// that `submit` stays synchronous and its handle a plain future that needs
/// no polling to make progress. The waiters are served in order (tokio's
/// semaphore is fair). A caller that gives up meanwhile (drops its handle,
/// or times out) ends the wait: its task was never queued.
pub(crate) fn queue_when_room(
    runtime: &tokio::runtime::Handle,
    room: Arc<Semaphore>,
    commands: mpsc::UnboundedSender<Command>,
    mut job: Job,
) {
    runtime.spawn(async move {
        let taken = {
            let mut acquire = pin!(room.acquire_owned());
            std::future::poll_fn(|cx| {
                if job.reply.poll_closed(cx).is_ready() {
                    return Poll::Ready(None);
                }
                acquire.as_mut().poll(cx).map(Some)
            })
            .await
        };
        match taken {
            None => {} // the caller gave up
            Some(Ok(taken)) => {
                job.room = Some(taken);
                if let Err(mpsc::error::SendError(Command::Submit(job))) =
                    commands.send(Command::Submit(job))
                {
                    job.finish(Err(Error::new(Repr::ShutDown)));
                }
            }
            // Closed by a shutdown.
            Some(Err(_)) => job.finish(Err(Error::new(Repr::ShutDown))),
        }
    });
}
