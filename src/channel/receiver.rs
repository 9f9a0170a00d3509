//! [`Receiver`]: the receiving end of a channel.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::block;
use super::end::End;
use super::hub::Message;
use super::remote;
use crate::codec;
use crate::error::{Error, Repr};
use crate::wire::channel::Role;

/// The receiving end of a [`channel`](crate::channel()), or the receiving
/// half of a [`Queue`](crate::Queue) or [`Duplex`](crate::Duplex).
///
/// * In the pool's process (async): [`recv`](Receiver::recv)`.await`, or
///   as a [`Stream`] of `Result<T, Error>` that ends when every sender is
///   gone and every message was received.
/// * Inside a task (blocking): [`blocking_recv`](Receiver::blocking_recv),
///   [`recv_timeout`](Receiver::recv_timeout), [`iter`](Receiver::iter).
///
/// Only whole messages arrive: a sender that dies part-way through a
/// message delivers nothing of it, and the receiver gets an error that
/// says so ([`Error::is_peer_died`]) in its place, then goes on with the
/// other senders' messages. A message that does not decode as `T` is an
/// error ([`Error::is_codec`]) in its place too.
///
/// # Examples
///
/// ```no_run
/// use futures::StreamExt;
///
/// fn squares(n: u64, out: procpool::Sender<u64>) {
///     for i in 0..n {
///         out.blocking_send(i * i).unwrap();
///     }
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let (tx, rx) = procpool::channel(16);
/// let task = pool.submit(squares, (10, tx));
/// let got: Vec<u64> = rx.map(Result::unwrap).collect().await;
/// assert_eq!(got[3], 9);
/// task.await?;
/// # Ok(()) }
/// ```
pub struct Receiver<T> {
    pub(super) end: End,
    _type: PhantomData<fn() -> T>,
}

impl<T> Receiver<T> {
    pub(super) fn new(end: End) -> Receiver<T> {
        Receiver {
            end,
            _type: PhantomData,
        }
    }

    /// Another receiver of the same channel (for a [`Queue`](crate::Queue)).
    pub(super) fn duplicate(&self) -> Receiver<T> {
        Receiver::new(self.end.duplicate())
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// The next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`is_closed`](Error::is_closed) once every sender is gone and every
    /// message was received (the end); [`is_peer_died`](Error::is_peer_died)
    /// for a sender that died (more may follow); [`is_codec`](Error::is_codec)
    /// for a message that does not decode.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, no message is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = procpool::channel::<u32>(4);
    /// tx.send(7).await?;
    /// drop(tx);
    /// assert_eq!(rx.recv().await?, 7);
    /// assert!(rx.recv().await.unwrap_err().is_closed());
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub async fn recv(&self) -> Result<T, Error> {
        let message = match &self.end {
            End::Local(local) => std::future::poll_fn(|cx| local.shared.poll_recv(cx)).await,
            End::Remote(held) => remote::recv(held.id, None).map(Message::from),
        };
        decode(message?)
    }

    /// The next message, blocking this thread until one comes: the form
    /// to use inside a task.
    ///
    /// # Errors
    ///
    /// As [`recv`](Receiver::recv); also an error, rather than a stalled
    /// runtime, if called on a thread of an async runtime in the pool's
    /// process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn total(numbers: procpool::Receiver<u64>) -> u64 {
    ///     let mut sum = 0;
    ///     while let Ok(n) = numbers.blocking_recv() {
    ///         sum += n;
    ///     }
    ///     sum
    /// }
    /// ```
    pub fn blocking_recv(&self) -> Result<T, Error> {
        self.blocking(None)
    }

    /// The next message, waiting at most `timeout` for it.
    ///
    /// # Errors
    ///
    /// [`is_timeout`](Error::is_timeout) if none came in time; otherwise as
    /// [`blocking_recv`](Receiver::blocking_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_tx, rx) = procpool::channel::<u8>(1);
    /// let err = rx.recv_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.blocking(Some(timeout))
    }

    /// The next message if one is there now, without waiting: `Ok(None)`
    /// if none is (Python's `get_nowait`). Works in the pool's process
    /// (async or not) and in tasks.
    ///
    /// # Errors
    ///
    /// As [`recv`](Receiver::recv): [`is_closed`](Error::is_closed) once
    /// every sender is gone and every message was received.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = procpool::channel::<u8>(2);
    /// assert_eq!(rx.try_recv()?, None);
    /// tx.send(5).await?;
    /// assert_eq!(rx.try_recv()?, Some(5));
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn try_recv(&self) -> Result<Option<T>, Error> {
        let message = match &self.end {
            End::Remote(held) => match remote::recv(held.id, Some(Duration::ZERO)) {
                Err(err) if err.is_timeout() => return Ok(None),
                message => message.map(Message::from),
            },
            End::Local(local) => {
                let waker = futures::task::noop_waker();
                match local.shared.poll_recv(&mut Context::from_waker(&waker)) {
                    Poll::Pending => return Ok(None),
                    Poll::Ready(message) => message,
                }
            }
        };
        decode(message?).map(Some)
    }

    fn blocking(&self, timeout: Option<Duration>) -> Result<T, Error> {
        let message = match &self.end {
            End::Remote(held) => remote::recv(held.id, timeout).map(Message::from),
            End::Local(local) => {
                block::refuse_in_runtime("Receiver::blocking_recv", "recv().await")?;
                let next = std::future::poll_fn(|cx| local.shared.poll_recv(cx));
                let deadline = timeout.map(|timeout| Instant::now() + timeout);
                block::on(next, deadline).unwrap_or_else(|| {
                    Err(Error::new(Repr::RecvTimeout {
                        after: timeout.unwrap_or_default(),
                    }))
                })
            }
        };
        decode(message?)
    }

    /// The messages as a blocking iterator of `Result<T, Error>`, ending
    /// when the channel does (every sender gone, every message received).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn longest(lines: procpool::Receiver<String>) -> usize {
    ///     lines.iter().filter_map(Result::ok).map(|line| line.len()).max().unwrap_or(0)
    /// }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<T, Error>> + '_ {
        std::iter::from_fn(|| match self.blocking_recv() {
            Err(err) if err.is_closed() => None,
            item => Some(item),
        })
    }
}

fn decode<T: DeserializeOwned>(message: Message) -> Result<T, Error> {
    codec::decode(message.bytes())
}

/// A `Receiver` is a [`Stream`] of its messages, which ends when every
/// sender is gone and every message was received.
impl<T: DeserializeOwned> Stream for Receiver<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        let message = match &self.end {
            End::Local(local) => match local.shared.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(message) => message,
            },
            End::Remote(held) => remote::recv(held.id, None).map(Message::from),
        };
        Poll::Ready(match message {
            Err(err) if err.is_closed() => None,
            message => Some(message.and_then(decode)),
        })
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.end.id())
            .finish()
    }
}

impl<T> Serialize for Receiver<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.end.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Receiver<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Receiver<T>, D::Error> {
        End::deserialize(deserializer, Role::Receiver, std::any::type_name::<T>())
            .map(Receiver::new)
    }
}
