//! Waiting on many tasks: `as_completed` and `wait`, after Python's
//! `concurrent.futures` functions of the same names.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::FuturesUnordered;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::task::handle::TaskHandle;

/// Yields each task's result as it completes, with the task's position in
/// `handles`.
///
/// Dropping the stream drops the handles still in it, which cancels their
/// tasks.
///
/// ```no_run
/// use futures::StreamExt;
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let handles: Vec<_> = (0..10).map(|x| pool.submit(square, x)).collect();
/// let mut done = procpool::as_completed(handles);
/// while let Some((i, result)) = done.next().await {
///     println!("task {i}: {result:?}");
/// }
/// # }
/// ```
pub fn as_completed<T, I>(handles: I) -> impl Stream<Item = (usize, Result<T, Error>)> + Send
where
    T: DeserializeOwned + Send + 'static,
    I: IntoIterator<Item = TaskHandle<T>>,
{
    handles
        .into_iter()
        .enumerate()
        .map(|(index, handle)| Indexed { index, handle })
        .collect::<FuturesUnordered<_>>()
}

struct Indexed<T> {
    index: usize,
    handle: TaskHandle<T>,
}

impl<T: DeserializeOwned> Future for Indexed<T> {
    type Output = (usize, Result<T, Error>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|result| (index, result))
    }
}

/// When [`wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitFor {
    /// As soon as any task completes (successfully or not).
    FirstCompleted,
    /// As soon as any task fails, or when all have completed.
    FirstError,
    /// When every task has completed.
    AllCompleted,
}

/// What [`wait`] found: the tasks that completed, with their results, and
/// the handles of those still running. Both keep each task's position in
/// the input.
#[derive(Debug)]
#[non_exhaustive]
pub struct Waited<T> {
    /// Completed tasks, in the order they completed.
    pub done: Vec<(usize, Result<T, Error>)>,
    /// Tasks not yet completed; drop them to cancel, or wait again.
    pub pending: Vec<(usize, TaskHandle<T>)>,
}

/// Waits on several tasks until `until` is satisfied.
///
/// ```no_run
/// use procpool::WaitFor;
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let handles: Vec<_> = (0..10).map(|x| pool.submit(square, x)).collect();
/// let waited = procpool::wait(handles, WaitFor::FirstError).await;
/// if waited.done.iter().any(|(_, result)| result.is_err()) {
///     drop(waited.pending); // cancels the rest
/// }
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the future drops the handles it holds, cancelling their tasks.
pub async fn wait<T, I>(handles: I, until: WaitFor) -> Waited<T>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = TaskHandle<T>>,
{
    let mut pending: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
    let mut done = Vec::new();
    std::future::poll_fn(|cx| {
        for (index, slot) in pending.iter_mut().enumerate() {
            if let Some(handle) = slot
                && let Poll::Ready(result) = Pin::new(handle).poll(cx)
            {
                *slot = None;
                done.push((index, result));
            }
        }
        let all = pending.iter().all(Option::is_none);
        let finished = match until {
            WaitFor::AllCompleted => all,
            WaitFor::FirstCompleted => all || !done.is_empty(),
            WaitFor::FirstError => all || done.iter().any(|(_, result)| result.is_err()),
        };
        if finished {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let pending = pending
        .into_iter()
        .enumerate()
        .filter_map(|(index, slot)| slot.map(|handle| (index, handle)))
        .collect();
    Waited { done, pending }
}
