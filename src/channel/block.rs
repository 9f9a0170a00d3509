//! Blocking on a channel of this process from a plain thread: poll the
//! operation's future, parking the thread between wake-ups.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use super::end::misuse;
use crate::error::Error;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, or gives up at `deadline`
/// (`None` then).
pub(crate) fn on<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        match deadline {
            None => std::thread::park(),
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    return None;
                }
                std::thread::park_timeout(at - now);
            }
        }
    }
}

/// `Err` if this thread runs an async runtime, which blocking would stall
/// (and, if the other side of the channel is served by it, deadlock).
pub(crate) fn refuse_in_runtime(what: &str, instead: &str) -> Result<(), Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(misuse(&format!(
            "{what} would block a thread of the async runtime; use {instead} there"
        )));
    }
    Ok(())
}
