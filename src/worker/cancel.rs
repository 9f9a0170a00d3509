//! Cancelling a running task gracefully: with a grace period
//! (`PoolBuilder::cancel_grace`), a cancel first raises a flag the task can
//! check ([`cancelled`]); the worker ends itself only if the task is still
//! running when the grace period is over. Without one, a cancel ends the
//! worker at once, as it always has.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Raised by a cancel of the running task; lowered when it is done.
static CANCELLED: AtomicBool = AtomicBool::new(false);
/// The grace period in ns, from the pool's `START`; 0: none.
static GRACE_NANOS: AtomicU64 = AtomicU64::new(0);

/// Whether the task running in this worker has been cancelled (its handle
/// dropped, or timed out) and is being given a grace period to stop
/// cleanly (see [`PoolBuilder::cancel_grace`](crate::PoolBuilder::cancel_grace)).
///
/// A long task that can stop early checks it now and then (it is one
/// atomic load), cleans up (removes temporary files, finishes a
/// transaction, kills what it started), and returns: its result is
/// discarded and the worker lives on. A task that does not return within
/// the grace period is killed with its worker, as without one.
///
/// It is always `false` outside a worker, in a pool without a grace
/// period (a cancel kills at once there), and once the next task starts.
///
/// # Examples
///
/// ```no_run
/// fn crunch(rows: u64) -> u64 {
///     let mut done = 0;
///     for row in 0..rows {
///         if procpool::cancelled() {
///             // Leave things tidy; the caller is gone.
///             break;
///         }
///         done = row; // ... one row's work ...
///     }
///     done
/// }
/// # fn main() { assert!(!procpool::cancelled()); }
/// ```
pub fn cancelled() -> bool {
    CANCELLED.load(Relaxed)
}

/// Sets the grace period this worker gives a cancelled task (from `START`).
pub(super) fn set_grace(nanos: u64) {
    GRACE_NANOS.store(nanos, Relaxed);
}

/// The running task `id` was cancelled: `false` if the worker must end now
/// (no grace period, or the timer cannot be started); otherwise the task is
/// told, and `end_if_still_running(id)` runs when the grace period is over.
pub(super) fn ask(id: u64, end_if_still_running: fn(u64)) -> bool {
    let nanos = GRACE_NANOS.load(Relaxed);
    if nanos == 0 {
        return false;
    }
    CANCELLED.store(true, Relaxed);
    std::thread::Builder::new()
        .name("procpool-grace".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_nanos(nanos));
            end_if_still_running(id);
        })
        .is_ok()
}

/// The task that was running is done: the flag is for it alone.
pub(super) fn task_done() {
    if CANCELLED.load(Relaxed) {
        CANCELLED.store(false, Relaxed);
    }
}
