//! The caller's side of one task: a future for its result.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::error::{Error, Repr};
use crate::pool::job::{Placement, Reply, Ticket};
use crate::task::callback::OnDone;
use crate::task::detached::spawn_detached;

/// A task submitted to a [`Pool`](crate::Pool): a future of its result.
///
/// The task starts when it is submitted, whether or not the handle is ever
/// polled. Awaiting the handle gives the function's return value, or an
/// [`Error`] that says why there is none.
///
/// # Cancellation
///
/// Dropping the handle before it completes cancels the task:
///
/// * a task still queued in the pool never runs;
/// * a task sent to a worker but not started is skipped by the worker;
/// * a task that is running has its worker process killed — with everything
///   in the worker's process group, so processes the task started die too —
///   and the pool starts a replacement. Other tasks are not affected. With
///   a [`cancel_grace`](crate::PoolBuilder::cancel_grace), the task is
///   asked first ([`procpool::cancelled()`](crate::cancelled)) and killed
///   only if it is still running when the grace period is over.
///
/// So `tokio::time::timeout(d, pool.submit(f, x))`, a `select!` branch that
/// loses, or a dropped request handler really stop the work. Use
/// [`detach`](TaskHandle::detach) to let a task finish without waiting for it.
///
/// A handle is `Send`, `Sync` and `'static` whatever the result type, so it
/// can be moved into another tokio task, stored, or collected by the
/// thousand; it holds no borrow of the [`Pool`](crate::Pool). Like most
/// futures, it must not be polled again once it has completed (it may
/// panic); [`FutureExt::fuse`](futures::FutureExt::fuse) makes that safe if
/// needed.
///
/// # Cancel safety
///
/// Awaiting a `TaskHandle` by reference (`&mut handle`) in a `select!` is
/// cancel safe: the task keeps running while the handle lives, and a later
/// poll returns its result. Awaiting it by value in a `select!` branch that
/// loses drops it, which cancels the task, as intended for a race.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// # fn slow(x: u64) -> u64 { x }
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let mut handle = pool.submit(slow, 1);
/// let mut ticks = tokio::time::interval(Duration::from_secs(1));
/// let value = loop {
///     tokio::select! {
///         result = &mut handle => break result?,
///         _ = ticks.tick() => println!("still running..."),
///     }
/// };
/// # Ok(()) }
/// ```
///
/// A tokio timeout drops the handle when it expires, so it stops the work
/// too (but see [`timeout`](TaskHandle::timeout), which says so in the
/// error):
///
/// ```no_run
/// use std::time::Duration;
///
/// # fn slow(x: u64) -> u64 { x }
/// # async fn demo(pool: procpool::Pool) {
/// match tokio::time::timeout(Duration::from_secs(5), pool.submit(slow, 1)).await {
///     Ok(result) => println!("{result:?}"),
///     Err(_) => println!("took too long; the worker running it was killed"),
/// }
/// # }
/// ```
#[must_use = "dropping a TaskHandle cancels its task; await it or call .detach()"]
pub struct TaskHandle<T> {
    raw: RawHandle,
    _output: PhantomData<fn() -> T>,
}

/// The part of a handle that does not depend on the result type.
struct RawHandle {
    task: &'static str,
    state: State,
    /// Where the task was sent, for the errors of a handle that gives up.
    placed: Option<Placement>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
}

enum State {
    Waiting(oneshot::Receiver<Result<Reply, Error>>),
    /// Failed at submit time (not registered, not encodable, pool shut down).
    Failed(Option<Error>),
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(
        task: &'static str,
        submitted: Result<Ticket, Error>,
        timeout: Option<Duration>,
    ) -> Self {
        let (state, placed) = match submitted {
            Ok(ticket) => (State::Waiting(ticket.answer), Some(ticket.placed)),
            Err(err) => (State::Failed(Some(err)), None),
        };
        let handle = TaskHandle {
            raw: RawHandle {
                task,
                state,
                placed,
                deadline: None,
            },
            _output: PhantomData,
        };
        match timeout {
            Some(limit) => handle.timeout(limit),
            None => handle,
        }
    }

    /// The error for a caller that gives up on this task now.
    pub(crate) fn cancelled(&self) -> Error {
        self.raw.cancelled_now()
    }

    /// The submitted function's name (its Rust path, e.g. `my_app::square`),
    /// for logs. Errors about the task carry the same name
    /// ([`Error::task_name`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) {
    /// let handle = pool.submit(square, 3);
    /// assert!(handle.task_name().ends_with("::square"));
    /// # }
    /// ```
    pub fn task_name(&self) -> &'static str {
        self.raw.task
    }

    /// Gives the task `limit` from now to finish; past that, it is cancelled as
    /// if the handle were dropped (its worker is killed and replaced if it is
    /// running) and the handle resolves to [`Error::is_timeout`].
    ///
    /// The time counts from this call, so it includes any time the task waits
    /// in the queue. A pool-wide default is set with
    /// [`PoolBuilder::task_timeout`](crate::PoolBuilder::task_timeout); this
    /// replaces it (a second call replaces the first, too).
    ///
    /// The pool enforces the limit itself, so a task past it is stopped even
    /// while nobody polls its handle (say, while its caller reads a channel
    /// the task writes to): running, its worker is killed and replaced;
    /// queued, it never runs. The handle then resolves to
    /// [`Error::is_timeout`] whenever it is polled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn slow(x: u64) -> u64 { x }
    /// # async fn demo(pool: procpool::Pool) {
    /// let result = pool.submit(slow, 1).timeout(Duration::from_secs(2)).await;
    /// if let Err(err) = &result {
    ///     assert!(err.is_timeout());
    /// }
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime (the timer needs one).
    #[track_caller]
    pub fn timeout(mut self, limit: Duration) -> Self {
        let sleep = Box::pin(tokio::time::sleep(limit));
        if let Some(placed) = &self.raw.placed {
            // The pool stops the task then even if this handle is not being
            // polled (its caller reads the task's channel, say).
            placed.set_deadline(sleep.deadline());
        }
        self.raw.deadline = Some((sleep, limit));
        self
    }

    /// Lets the task run to completion without anyone waiting for its result.
    ///
    /// Inside a tokio runtime the wait is a tokio task; outside one, every
    /// detached task (and [`OnDone`] callback) shares one background thread,
    /// so a callback that blocks there delays the others. A
    /// [`timeout`](TaskHandle::timeout) still applies. The result, or error,
    /// is dropped: attach [`on_done`](TaskHandle::on_done) first to see it.
    /// A task that failed at submit (not registered, not encodable) is simply
    /// dropped.
    ///
    /// [`Pool::shutdown`](crate::Pool::shutdown) waits for detached tasks
    /// like any other (but not for the callbacks of detached
    /// [`OnDone`]s, which run just after their tasks).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn log_line(line: String) {}
    /// # async fn demo(pool: procpool::Pool) {
    /// pool.submit(log_line, "started".to_string()).detach();
    /// # }
    /// ```
    pub fn detach(self) {
        let mut raw = self.raw;
        if !matches!(raw.state, State::Waiting(_)) {
            return;
        }
        // The receiver must outlive the task, or the pool would cancel it.
        spawn_detached(async move {
            let _ = std::future::poll_fn(|cx| raw.poll_reply(cx)).await;
        });
    }

    /// Attaches a callback that runs once, with the task's result, when it
    /// completes; see [`OnDone`] (which also says what happens if it is
    /// dropped, and to a callback that panics).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) {
    /// pool.submit(square, 9)
    ///     .on_done(|result| match result {
    ///         Ok(value) => println!("square: {value}"),
    ///         Err(err) => eprintln!("failed: {err}"),
    ///     })
    ///     .detach();
    /// # }
    /// ```
    pub fn on_done<C>(self, callback: C) -> OnDone<T>
    where
        C: FnOnce(Result<T, Error>) + Send + 'static,
    {
        OnDone::new(self, Box::new(callback))
    }
}

impl RawHandle {
    /// The worker the task was last sent to, if it was sent.
    fn placed_on(&self) -> Option<u32> {
        self.placed.as_ref().and_then(Placement::pid)
    }

    fn cancelled_now(&self) -> Error {
        Error::new(Repr::Cancelled {
            task: self.task,
            pid: self.placed_on(),
        })
    }

    /// Polls for the encoded result, enforcing the deadline.
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reply, Error>> {
        let receiver = match &mut self.state {
            State::Waiting(receiver) => receiver,
            State::Failed(err) => {
                let err = err.take();
                // Polled again after returning its error: say so again.
                return Poll::Ready(Err(err.unwrap_or_else(|| self.cancelled_now())));
            }
        };
        if let Poll::Ready(outcome) = Pin::new(receiver).poll(cx) {
            return Poll::Ready(match outcome {
                Ok(outcome) => outcome,
                // The pool let the task go at its deadline.
                Err(_) if self.placed.as_ref().is_some_and(Placement::expired) => {
                    Err(self.timed_out())
                }
                // The dispatcher is gone without answering: the pool was dropped.
                Err(_) => Err(Error::new(Repr::ShutDown)),
            });
        }
        if let Some((sleep, _)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            // Dropping the receiver is what cancels the task.
            self.state = State::Failed(None);
            return Poll::Ready(Err(self.timed_out()));
        }
        Poll::Pending
    }

    fn timed_out(&self) -> Error {
        Error::new(Repr::TimedOut {
            task: self.task,
            after: self
                .deadline
                .as_ref()
                .map(|(_, limit)| *limit)
                .unwrap_or_default(),
            pid: self.placed_on(),
        })
    }
}

impl<T: DeserializeOwned + 'static> Future for TaskHandle<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .raw
            .poll_reply(cx)
            .map(|reply| reply.and_then(Reply::decode))
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.raw.state {
            State::Waiting(_) => "pending",
            State::Failed(_) => "failed",
        };
        f.debug_struct("TaskHandle")
            .field("task", &self.raw.task)
            .field("state", &state)
            .finish()
    }
}
