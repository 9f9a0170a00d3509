//! [`Queue`] (Python's `multiprocessing.Queue`) and [`Duplex`] (one end of
//! Python's `Pipe()`): a sender and a receiver held together.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Receiver, Sender, channel};
use crate::error::Error;

/// A bounded queue that many tasks and the pool's process put to and get
/// from at once: Python's `multiprocessing.Queue`, typed and bounded.
///
/// Each handle both puts and gets; clone it (or pass it to tasks, where it
/// arrives as the same type) for more. Every item is delivered once, to
/// one getter. It never closes while a handle exists, so a getter that
/// should stop needs a sign: a sentinel item, or a
/// [`get_timeout`](Queue::get_timeout).
///
/// * In the pool's process: [`put`](Queue::put)`.await`,
///   [`get`](Queue::get)`.await`.
/// * Inside a task: [`blocking_put`](Queue::blocking_put),
///   [`blocking_get`](Queue::blocking_get), [`get_timeout`](Queue::get_timeout).
///
/// Unlike Python's queue, a process killed mid-`put` cannot corrupt it
/// (only whole items are delivered), and a `get` never hangs on a dead
/// peer. An item is taken at most once: one that a worker had taken and
/// died with is gone, as in Python; one it had only asked for goes to the
/// next getter.
///
/// # Examples
///
/// ```no_run
/// use procpool::Queue;
///
/// /// Puts the even numbers below `n` on the queue, then `None`.
/// fn evens(n: u64, queue: Queue<Option<u64>>) {
///     for i in (0..n).filter(|i| i % 2 == 0) {
///         queue.blocking_put(Some(i)).unwrap();
///     }
///     queue.blocking_put(None).unwrap();
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let queue = Queue::new(16);
/// let producer = pool.submit(evens, (100, queue.clone()));
/// let mut got = Vec::new();
/// while let Some(n) = queue.get().await? {
///     got.push(n);
/// }
/// producer.await?;
/// assert_eq!(got.len(), 50);
/// # Ok(()) }
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Queue<T> {
    sender: Sender<T>,
    receiver: Receiver<T>,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` items (at least 1) before `put`
    /// waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = procpool::Queue::<String>::new(100);
    /// # drop(queue);
    /// ```
    pub fn new(capacity: usize) -> Queue<T> {
        let (sender, receiver) = channel(capacity);
        Queue { sender, receiver }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Queue<T> {
        Queue {
            sender: self.sender.clone(),
            receiver: self.receiver.duplicate(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Puts `item` on the queue, waiting while it is full.
    ///
    /// # Errors
    ///
    /// [`is_codec`](Error::is_codec) if `item` does not serialize.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits for room, nothing was put.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Queue::new(4);
    /// queue.put(1u8).await?;
    /// assert_eq!(queue.get().await?, 1);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub async fn put(&self, item: T) -> Result<(), Error> {
        self.sender.send(item).await
    }

    /// Takes the next item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`is_peer_died`](Error::is_peer_died) if a worker holding the queue
    /// died part-way through a put (more may follow);
    /// [`is_codec`](Error::is_codec) for an item that does not decode.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, no item is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Queue::new(4);
    /// queue.put("job".to_string()).await?;
    /// assert_eq!(queue.get().await?, "job");
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub async fn get(&self) -> Result<T, Error> {
        self.receiver.recv().await
    }

    /// Puts `item`, blocking this thread while the queue is full: the form
    /// to use inside a task.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), and as
    /// [`Sender::blocking_send`] on a thread of an async runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn report(queue: procpool::Queue<String>) {
    ///     queue.blocking_put("done".to_string()).unwrap();
    /// }
    /// ```
    pub fn blocking_put(&self, item: T) -> Result<(), Error> {
        self.sender.blocking_send(item)
    }

    /// Takes the next item, blocking this thread until one comes.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), and as [`Receiver::blocking_recv`] on a
    /// thread of an async runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn worker(jobs: procpool::Queue<Option<u64>>) -> u64 {
    ///     let mut done = 0;
    ///     while let Ok(Some(_job)) = jobs.blocking_get() {
    ///         done += 1;
    ///     }
    ///     done
    /// }
    /// ```
    pub fn blocking_get(&self) -> Result<T, Error> {
        self.receiver.blocking_recv()
    }

    /// Takes the next item if there is one now: `Ok(None)` if the queue is
    /// empty (Python's `get_nowait`). Works anywhere, without waiting.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let queue = procpool::Queue::new(2);
    /// assert_eq!(queue.try_get()?, None);
    /// queue.put(3u8).await?;
    /// assert_eq!(queue.try_get()?, Some(3));
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn try_get(&self) -> Result<Option<T>, Error> {
        self.receiver.try_recv()
    }

    /// Takes the next item, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`is_timeout`](Error::is_timeout) if none came in time; otherwise as
    /// [`blocking_get`](Queue::blocking_get).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let queue = procpool::Queue::<u8>::new(1);
    /// assert!(queue.get_timeout(Duration::from_millis(5)).unwrap_err().is_timeout());
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.receiver.recv_timeout(timeout)
    }
}

/// One end of a [`pipe`]: sends `S`, receives `R`. Python's `Pipe()`
/// connection, typed, with each direction bounded and independent, so two
/// sides sending large messages to each other at once cannot deadlock.
///
/// # Examples
///
/// ```no_run
/// use procpool::Duplex;
///
/// /// Answers each number with its double until the pool hangs up.
/// fn doubler(end: Duplex<u64, u64>) {
///     while let Ok(n) = end.receiver().blocking_recv() {
///         end.sender().blocking_send(2 * n).unwrap();
///     }
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let (here, there) = procpool::pipe(8);
/// let task = pool.submit(doubler, there);
/// here.sender().send(21).await?;
/// assert_eq!(here.receiver().recv().await?, 42);
/// drop(here);
/// task.await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Duplex<S, R> {
    sender: Sender<S>,
    receiver: Receiver<R>,
}

impl<S, R> Duplex<S, R> {
    /// The sending half.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (a, b) = procpool::pipe::<u8, u8>(1);
    /// a.sender().send(1).await?;
    /// assert_eq!(b.receiver().recv().await?, 1);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn sender(&self) -> &Sender<S> {
        &self.sender
    }

    /// The receiving half.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (a, b) = procpool::pipe::<u8, String>(1);
    /// b.sender().send("hi".into()).await?;
    /// assert_eq!(a.receiver().recv().await?, "hi");
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn receiver(&self) -> &Receiver<R> {
        &self.receiver
    }

    /// The two halves, apart.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = procpool::pipe::<u8, u8>(1);
    /// let (tx, rx) = a.split();
    /// # drop((tx, rx));
    /// ```
    pub fn split(self) -> (Sender<S>, Receiver<R>) {
        (self.sender, self.receiver)
    }
}

/// A two-way pipe: two [`Duplex`] ends, each sending what the other
/// receives, each direction holding up to `capacity` messages.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let (left, right) = procpool::pipe::<String, u64>(4);
/// left.sender().send("ping".into()).await?;
/// right.sender().send(1).await?;
/// assert_eq!(right.receiver().recv().await?, "ping");
/// assert_eq!(left.receiver().recv().await?, 1);
/// # Ok::<(), procpool::Error>(()) }).unwrap();
/// ```
pub fn pipe<A, B>(capacity: usize) -> (Duplex<A, B>, Duplex<B, A>) {
    let (a_to_b, b_from_a) = channel(capacity);
    let (b_to_a, a_from_b) = channel(capacity);
    (
        Duplex {
            sender: a_to_b,
            receiver: a_from_b,
        },
        Duplex {
            sender: b_to_a,
            receiver: b_from_a,
        },
    )
}
