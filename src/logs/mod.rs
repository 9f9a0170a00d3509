//! Log records from workers: `tracing` events emitted inside tasks reach
//! the pool's process, where they are emitted again, under the target
//! `procpool::worker`, with the worker's pid, the task and the event's own
//! target as fields. Opt in with
//! [`PoolBuilder::forward_logs`](crate::PoolBuilder::forward_logs).
//!
//! A worker asked for records installs a small subscriber of its own
//! ([`forward`]) that writes each event at or above the level asked for as
//! a `LOG` frame on its connection, through the queue channel messages
//! use: a task that logs in a tight loop is slowed down when that queue is
//! full, never growing memory. Spans are not carried (an event's span
//! context is lost on the way).

mod emit;
mod forward;

pub(crate) use emit::emit;
pub(crate) use forward::forward_from_worker;
