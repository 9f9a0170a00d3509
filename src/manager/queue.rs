//! [`Queue`]: a shared FIFO queue, Python's `Manager().Queue()`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{Call, Route};
use super::handle::{encode, handle};
use super::state::Kind;
use super::wire::Op;

/// A bounded FIFO queue held by the manager: a handle that is a serde
/// value and `Clone` (every clone is the same queue).
///
/// [`put`](Queue::put) waits while it is full, [`get`](Queue::get) while
/// it is empty; give either a [`timeout`](Call::timeout). Callers are
/// served in the order they came. For a stream of messages into or out of
/// tasks, a [`channel`](crate::channel()) or [`procpool::Queue`](crate::Queue)
/// is faster (credit-based, no round trip per message); this one is for
/// state that many parties reach by name, as Python's manager queue is.
///
/// # Examples
///
/// ```no_run
/// use procpool::manager::Queue;
///
/// fn worker(jobs: Queue<Option<u64>>, done: Queue<u64>) {
///     while let Some(job) = jobs.get().wait().unwrap() {
///         done.put(job * 2).wait().unwrap();
///     }
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// // procpool::init(procpool::tasks![worker]) in main
/// let manager = procpool::Manager::new();
/// let (jobs, done) = (manager.queue(8), manager.queue(8));
/// let task = pool.submit(worker, (jobs.clone(), done.clone()));
/// jobs.put(Some(21)).await?;
/// jobs.put(None).await?;
/// assert_eq!(done.get().await?, 42);
/// task.await?;
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    pub(crate) route: Route,
    types: PhantomData<fn() -> T>,
}

handle!(Queue<T>, Kind::Queue);

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Adds `item` at the back, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// Those of every manager call: [`Error::is_shutdown`](crate::Error::is_shutdown)
    /// if the manager is gone, [`Error::is_codec`](crate::Error::is_codec)
    /// if an item does not encode or decode;
    /// [`Error::is_timeout`](crate::Error::is_timeout) if a
    /// [`timeout`](Call::timeout) passed first (nothing was added).
    ///
    /// # Cancel safety
    ///
    /// Dropping the awaited call before it resolves adds nothing, unless
    /// there was room for it first: then it was added.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Manager::new().queue::<u32>(1);
    /// queue.put(1).await?;
    /// assert!(queue.put(2).timeout(std::time::Duration::from_millis(10)).wait().unwrap_err().is_timeout());
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn put(&self, item: T) -> Call<()> {
        let fields = encode(&item).map(|item| vec![item]);
        self.call(Op::Put, 0, fields)
    }

    /// Takes the item at the front, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put).
    ///
    /// # Cancel safety
    ///
    /// Dropping the awaited call before it resolves takes nothing: an item
    /// it was granted meanwhile goes back to the front. (In a worker that
    /// dies before reading the reply, the item was taken.)
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Manager::new().queue::<u32>(4);
    /// queue.put(1).await?;
    /// assert_eq!(queue.get().await?, 1);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn get(&self) -> Call<T> {
        self.call(Op::Take, 0, Ok(Vec::new()))
    }

    /// How many items wait in it.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Manager::new().queue::<u32>(4);
    /// assert_eq!(queue.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn len(&self) -> Call<u64> {
        self.call(Op::Len, 0, Ok(Vec::new()))
    }
}
