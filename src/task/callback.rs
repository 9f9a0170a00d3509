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
    /// waiting. Like [`TaskHandle::detach`], it needs a tokio runtime or
    /// falls back to a thread of its own.
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

impl<T: DeserializeOwned> Future for OnDone<T> {
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
