//! One task's result, seen from the caller: the [`TaskHandle`] future,
//! completion callbacks ([`OnDone`]), and waiting on many at once
//! ([`wait`], [`as_completed`]).

pub(crate) mod callback;
pub(crate) mod detached;
pub(crate) mod handle;
pub(crate) mod wait;

pub use callback::{Callback, OnDone};
pub use handle::TaskHandle;
pub use wait::{WaitFor, Waited, as_completed, wait};
