//! Completion callbacks: a function to run once when a task is done.

use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::task::detached::spawn_detached;
use crate::task::handle::TaskHandle;

/// A completion callback, as the boxed type [`OnDone`] stores.
///
/// [`TaskHandle::on_done`] takes any `FnOnce(Result<T, Error>) + Send +
/// 'static`, so this name is needed only where callbacks are stored or chosen
/// at run time: a `Box<Callback<T>>` is itself such a closure.
///
/// # Examples
///
/// ```no_run
/// use procpool::Callback;
///
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool, verbose: bool) {
/// let report: Box<Callback<u64>> = if verbose {
///     Box::new(|result| println!("square: {result:?}"))
/// } else {
///     Box::new(|result| {
///         if let Err(err) = result {
///             eprintln!("{err}");
///         }
///     })
/// };
/// pool.submit(square, 9).on_done(report).detach();
/// # }
/// ```
pub type Callback<T> = dyn FnOnce(Result<T, Error>) + Send;

/// A task with a callback attached, from [`TaskHandle::on_done`].
///
/// The callback runs exactly once: when the task completes (with its value or
/// its error), or — if this is dropped first — with a cancellation error,
/// since dropping it cancels the task. [`detach`](OnDone::detach) lets the
/// task finish and the callback run with nobody holding on.
///
/// Awaiting it resolves once the callback has run. A callback that panics
/// does not take anything down: the panic is caught and reported as a
/// `tracing` error event (target `procpool`).
///
/// The callback runs on the thread that completes or drops the `OnDone`:
/// the task awaiting it, the tokio task (or background thread) that
/// [`detach`](OnDone::detach) started, or the code that drops it. Keep it
/// short and non-blocking; to do async work with the result, send it into a
/// channel.
///
/// # Cancel safety
///
/// Dropping an `OnDone` before it completes cancels the task and runs the
/// callback at once, with an [`Error::is_cancelled`] error. So as a losing
/// `select!` branch it cancels; await `&mut on_done` there to keep it.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let total = Arc::new(AtomicU64::new(0));
/// for x in 0..100 {
///     let total = total.clone();
///     pool.submit(square, x)
///         .on_done(move |result| {
///             if let Ok(square) = result {
///                 total.fetch_add(square, Ordering::Relaxed);
///             }
///         })
///         .detach();
/// }
/// // Waits for the tasks; each callback runs (on a tokio task) as its
/// // task's result arrives, so the last ones may still be running here.
/// pool.shutdown().await;
/// # }
/// ```
///
/// Awaited instead of detached, it resolves after the callback has run:
///
/// ```no_run
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// pool.submit(square, 9)
///     .on_done(|result| assert_eq!(result.unwrap(), 81))
///     .await;
/// # }
/// ```
#[must_use = "dropping an OnDone cancels its task (the callback then sees the cancellation); call .detach()"]
pub struct OnDone<T> {
    handle: Option<TaskHandle<T>>,
    callback: Option<Box<Callback<T>>>,
}

impl<T> OnDone<T> {
    pub(crate) fn new(handle: TaskHandle<T>, callback: Box<Callback<T>>) -> OnDone<T> {
        OnDone {
            handle: Some(handle),
            callback: Some(callback),
        }
    }

    fn fire(&mut self, result: Result<T, Error>, task: &'static str) {
        if let Some(callback) = self.callback.take()
            && let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || callback(result)))
        {
            let message = crate::worker::panic_text(payload.as_ref());
            tracing::error!(target: "procpool", task, message, "a completion callback panicked; the panic was contained");
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> OnDone<T> {
    /// Lets the task run to completion and the callback run, without anyone
    /// waiting. Like [`TaskHandle::detach`], it runs on the current tokio
    /// runtime, or outside one on a background thread that all detached
    /// tasks share.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo(pool: procpool::Pool) {
    /// pool.submit(square, 9).on_done(|result| println!("{result:?}")).detach();
    /// # }
    /// ```
    pub fn detach(self) {
        spawn_detached(self);
    }
}

impl<T: DeserializeOwned + 'static> Future for OnDone<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(handle) = self.handle.as_mut() else {
            return Poll::Ready(());
        };
        let task = handle.task_name();
        let result = std::task::ready!(Pin::new(handle).poll(cx));
        self.handle = None;
        self.fire(result, task);
        Poll::Ready(())
    }
}

impl<T> Drop for OnDone<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let task = handle.task_name();
            let cancelled = handle.cancelled();
            drop(handle); // cancels the task
            self.fire(Err(cancelled), task);
        }
    }
}

impl<T> fmt::Debug for OnDone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnDone")
            .field("handle", &self.handle)
            .field("callback_pending", &self.callback.is_some())
            .finish()
    }
}
