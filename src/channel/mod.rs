//! Typed channels between the pool's process and running tasks: Python's
//! `multiprocessing` `Queue` and `Pipe`, bounded and async.
//!
//! [`channel`] makes a [`Sender`] and a [`Receiver`]; [`Queue`] is a
//! many-to-many queue; [`pipe`] makes two [`Duplex`] ends. Endpoints are
//! serde values: pass them to [`Pool::submit`](crate::Pool::submit) as
//! ordinary arguments, and the task gets endpoints of the same channel.
//! In the pool's process they are async (`send().await`, a [`Stream`],
//! a [`Sink`]); inside a task, blocking (`blocking_send`, `blocking_recv`,
//! `recv_timeout`, `iter`).
//!
//! # How it works
//!
//! Every channel lives in the process that created it: the hub holds its
//! buffer and knows every holder of each side. A task's endpoints talk to
//! it over their worker's connection to the pool, multiplexed with the
//! pool's requests and answers (no socket or fd per channel); a message
//! between two tasks goes through the hub. Flow control is by credit: a
//! worker sends only what the hub granted, granted only while the buffer
//! has room, and receives only what it asked for, so memory stays bounded
//! however much is sent, and a full channel holds up neither answers nor
//! other channels. Messages over 1 MiB travel in pieces, so small frames
//! are not stuck behind them; only whole messages are delivered.
//!
//! A channel ends for its receivers when every sender, in every process,
//! is gone (and all sent was received); for its senders, when every
//! receiver is. A worker that dies while holding a sender counts as gone,
//! and its receivers get an [`Error::is_peer_died`](crate::Error::is_peer_died)
//! item that says which worker, how it died, and what it ran.
//!
//! # Limits
//!
//! * Endpoints travel from the pool's process into tasks, as arguments of
//!   `submit` (not in `map` items, and not back out in results).
//! * A message from the pool's process to a task is sent when the task
//!   asks for it: about one round trip per message in that direction.
//!
//! [`Stream`]: futures::Stream
//! [`Sink`]: futures::Sink

pub(crate) mod block;
mod end;
pub(crate) mod hub;
pub(crate) mod peer;
mod queue;
mod receiver;
pub(crate) mod remote;
mod sender;
#[cfg(test)]
mod tests;

pub(crate) use end::{Holds, carry};
pub use queue::{Duplex, Queue, pipe};
pub use receiver::Receiver;
pub use sender::Sender;

use crate::wire::channel::Role;
use end::{End, Local};
use hub::Shared;

/// A channel holding up to `capacity` messages (at least 1): a [`Sender`]
/// (clone it for more) and a [`Receiver`].
///
/// # Examples
///
/// ```no_run
/// fn count_to(n: u64, out: procpool::Sender<u64>) {
///     for i in 1..=n {
///         out.blocking_send(i).unwrap();
///     }
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let (tx, rx) = procpool::channel(8);
/// let task = pool.submit(count_to, (3, tx));
/// let mut sum = 0;
/// while let Ok(i) = rx.recv().await {
///     sum += i;
/// }
/// task.await?;
/// assert_eq!(sum, 6);
/// # Ok(()) }
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Shared::create(capacity, std::any::type_name::<T>());
    let sender = End::Local(Local::new(shared.clone(), Role::Sender));
    let receiver = End::Local(Local::new(shared, Role::Receiver));
    (Sender::new(sender), Receiver::new(receiver))
}
