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
/// `handles`: Python's `concurrent.futures.as_completed`.
///
/// The stream ends after the last task; an empty input gives an empty
/// stream. Each handle's [`timeout`](TaskHandle::timeout) still applies.
/// Dropping the stream drops the handles still in it, which cancels their
/// tasks.
///
/// # Cancel safety
///
/// [`StreamExt::next`](futures::StreamExt::next) on the stream is cancel
/// safe: a result is removed from the stream only when `next()` returns it.
///
/// # Examples
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

impl<T: DeserializeOwned + 'static> Future for Indexed<T> {
    type Output = (usize, Result<T, Error>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|result| (index, result))
    }
}

/// When [`wait`] returns.
///
/// Whatever the choice, `wait` also returns once every task has completed,
/// and at once for an empty input.
///
/// # Examples
///
/// ```no_run
/// use procpool::WaitFor;
///
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let handles: Vec<_> = (0..4).map(|x| pool.submit(square, x)).collect();
/// // The first answer is enough (the others are cancelled when dropped).
/// let waited = procpool::wait(handles, WaitFor::FirstCompleted).await;
/// let (position, result) = &waited.done[0];
/// println!("task {position} finished first: {result:?}");
/// # }
/// ```
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
///
/// The positions are those in the input of this one call to `wait`: to wait
/// again on `pending`, keep the positions yourself, as below.
///
/// # Examples
///
/// ```no_run
/// use procpool::WaitFor;
///
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let mut pending: Vec<(usize, _)> =
///     (0..10).map(|x| (x as usize, pool.submit(square, x))).collect();
/// while !pending.is_empty() {
///     let (positions, handles): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
///     let waited = procpool::wait(handles, WaitFor::FirstCompleted).await;
///     for (i, result) in waited.done {
///         println!("task {}: {result:?}", positions[i]);
///     }
///     pending = waited.pending.into_iter().map(|(i, handle)| (positions[i], handle)).collect();
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Waited<T> {
    /// Completed tasks, in the order they completed.
    pub done: Vec<(usize, Result<T, Error>)>,
    /// Tasks not yet completed; drop them to cancel, or wait again.
    pub pending: Vec<(usize, TaskHandle<T>)>,
}

/// Waits on several tasks until `until` is satisfied: Python's
/// `concurrent.futures.wait`, without its timeout (put one around this
/// call).
///
/// Completed tasks are returned with their results in
/// [`done`](Waited::done), the others' handles in
/// [`pending`](Waited::pending): they keep running, and dropping them
/// cancels them. Tasks that complete together all land in `done`, so
/// `FirstCompleted` can return more than one. An empty input returns at
/// once.
///
/// Each time it is woken, it polls every handle still pending, so it suits
/// tens or hundreds of tasks; for many thousands, [`as_completed`] scales
/// better.
///
/// # Errors
///
/// `wait` itself does not fail; each task's error is in its entry of `done`.
///
/// # Examples
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
/// Not cancel safe: dropping the future (for example under
/// `tokio::time::timeout`) drops the handles it holds, cancelling their
/// tasks, and loses the results of those that had completed. To wait with a
/// limit and keep the tasks, use [`as_completed`] with a timeout on each
/// `next()`.
pub async fn wait<T, I>(handles: I, until: WaitFor) -> Waited<T>
where
    T: DeserializeOwned + 'static,
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
