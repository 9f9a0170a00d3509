//! [`Sender`]: the sending end of a channel.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::block;
use super::end::End;
use super::remote;
use crate::codec;
use crate::error::Error;
use crate::wire::channel::Role;

/// The sending end of a [`channel`](crate::channel()), or the sending half
/// of a [`Queue`](crate::Queue) or [`Duplex`](crate::Duplex).
///
/// Clone it for more senders; the receivers see the end of the channel
/// once every sender, wherever it is, has been dropped. Pass it to a task
/// as an ordinary argument: in the task it is the same type, used with the
/// blocking methods.
///
/// * In the pool's process (async): [`send`](Sender::send)`.await`, or
///   as a [`Sink`] (`futures::SinkExt::send`, `send_all`, `forward`).
/// * Inside a task (blocking): [`blocking_send`](Sender::blocking_send).
///   The async forms work there too, blocking the thread.
///
/// A send waits while the channel is full (its capacity, in messages), so a
/// slow receiver slows its senders instead of growing memory. A send fails
/// with [`Error::is_closed`] once every receiver is gone.
///
/// # Examples
///
/// ```no_run
/// use procpool::{Receiver, Sender};
///
/// /// A task that reports progress while it works.
/// fn crunch(items: u64, progress: Sender<u64>) -> u64 {
///     let mut sum = 0;
///     for i in 0..items {
///         sum += i * i;
///         progress.blocking_send(i).expect("the pool is listening");
///     }
///     sum
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let (tx, mut rx): (Sender<u64>, Receiver<u64>) = procpool::channel(64);
/// let task = pool.submit(crunch, (1_000, tx));
/// while let Ok(done) = rx.recv().await {
///     println!("{done} items done");
/// }
/// println!("sum: {}", task.await?);
/// # Ok(()) }
/// ```
pub struct Sender<T> {
    pub(super) end: End,
    _type: PhantomData<fn(T)>,
}

impl<T> Sender<T> {
    pub(super) fn new(end: End) -> Sender<T> {
        Sender {
            end,
            _type: PhantomData,
        }
    }
}

impl<T: Serialize> Sender<T> {
    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`is_closed`](Error::is_closed) if every receiver is gone;
    /// [`is_codec`](Error::is_codec) if `value` does not serialize.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits for room, nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = procpool::channel::<String>(1);
    /// tx.send("hello".to_string()).await?;
    /// assert_eq!(rx.recv().await?, "hello");
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub async fn send(&self, value: T) -> Result<(), Error> {
        match &self.end {
            End::Local(local) => {
                let message = encode(&value)?;
                std::future::poll_fn(|cx| local.shared.poll_room(cx)).await?;
                local.shared.push(message)
            }
            End::Remote(held) => send_from_worker(held.id, &value),
        }
    }

    /// Sends `value`, blocking this thread while the channel is full: the
    /// form to use inside a task.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send); also an error, rather than a stalled
    /// runtime, if called on a thread of an async runtime in the pool's
    /// process (use `send(..).await` there).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn produce(n: u64, out: procpool::Sender<u64>) {
    ///     for i in 0..n {
    ///         out.blocking_send(i).unwrap();
    ///     }
    /// }
    /// ```
    pub fn blocking_send(&self, value: T) -> Result<(), Error> {
        match &self.end {
            End::Remote(held) => send_from_worker(held.id, &value),
            End::Local(_) => {
                block::refuse_in_runtime("Sender::blocking_send", "send(..).await")?;
                block::on(self.send(value), None).expect("no deadline")
            }
        }
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut message = Vec::new();
    codec::encode_into(value, &mut message)?;
    Ok(message)
}

thread_local! {
    /// A worker thread's encoding buffer, kept between sends: a message is
    /// written from it, so a new one per send would only be allocated,
    /// grown by doubling, and freed.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest scratch buffer a thread keeps.
const SCRATCH_KEPT: usize = 16 << 20;

/// Encodes `value` and sends it from this worker on channel `id`.
fn send_from_worker<T: Serialize>(id: u64, value: &T) -> Result<(), Error> {
    // Taken, not borrowed: a value whose serialization sends would find
    // the cell empty, not a borrow panic.
    let mut scratch = SCRATCH.take();
    scratch.clear();
    let sent = codec::encode_into(value, &mut scratch).and_then(|()| remote::send(id, &scratch));
    if scratch.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(scratch);
    }
    sent
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        Sender::new(self.end.duplicate())
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.end.id())
            .finish()
    }
}

impl<T> Serialize for Sender<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.end.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Sender<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sender<T>, D::Error> {
        End::deserialize(deserializer, Role::Sender, std::any::type_name::<T>()).map(Sender::new)
    }
}

/// A `Sender` is a [`Sink`]: `poll_ready` waits for room, so
/// `futures::SinkExt::send_all` and `StreamExt::forward` are backpressured.
impl<T: Serialize> Sink<T> for Sender<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &self.end {
            End::Local(local) => local.shared.poll_room(cx),
            // A worker's send waits for its credit itself.
            End::Remote(_) => Poll::Ready(Ok(())),
        }
    }

    fn start_send(self: Pin<&mut Self>, value: T) -> Result<(), Error> {
        match &self.end {
            End::Local(local) => local.shared.push(encode(&value)?),
            End::Remote(held) => send_from_worker(held.id, &value),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
}
