//! The futex words in a writable region's header, and how processes wait on
//! them: shared futexes (not `FUTEX_PRIVATE_FLAG`, whose key is the
//! process's own address space), so a wake in one process reaches a waiter
//! in another that maps the same page.
//!
//! A lock word holds [`FREE`], its owner's [`me`](super::region::me) (with
//! [`WAITERS`] set once someone may sleep on it), or [`POISONED`]. The pool
//! poisons the words a dead worker owned before it reaps the worker (see
//! `owners`), so a waiter never sleeps on a word whose owner is gone for more
//! than the pool takes to notice the death.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

use rustix::thread::futex;

use super::region::Region;

pub(crate) const FREE: u32 = 0;
/// Someone may be waiting: the unlock must wake.
pub(crate) const WAITERS: u32 = 1 << 31;
/// The owner died holding it (pids stay below 2^22, so no owner looks so).
pub(crate) const POISONED: u32 = u32::MAX;

/// How long one futex sleep lasts at most: waiters look again after it, so
/// a wake that went missing (a garbage write by a hostile task, a waiter
/// that was cancelled) delays, never hangs.
const NAP: Duration = Duration::from_millis(100);
/// The async form's sleep, on a blocking-pool thread: short, so a cancelled
/// wait gives its thread back soon.
const ASYNC_NAP: Duration = Duration::from_millis(20);

/// Byte offsets of a writable region's header words.
pub(crate) const LOCK: usize = 0;
/// Bumped whenever a lease ends: what blocked lease requests wait on.
pub(crate) const LEASES_CHANGED: usize = 4;
/// Who poisoned [`LOCK`]: the dead owner's pid.
pub(crate) const POISONER: usize = 8;

pub(crate) fn word(region: &Region, offset: usize) -> &AtomicU32 {
    &region.map.atomics::<AtomicU32>(offset, 1)[0]
}

/// One attempt at a lock word.
pub(crate) enum Step {
    Taken,
    /// The owner (a pid) died holding it.
    Poisoned(u32),
    /// Held: wait while the word still reads this.
    Wait(u32),
}

/// Takes the lock word at `offset` for `me` if it is free; otherwise marks
/// it as waited on and says what to wait for.
pub(crate) fn try_lock(region: &Region, me: u32, waiting: bool) -> Step {
    let lock = word(region, LOCK);
    loop {
        let seen = lock.load(Relaxed);
        if seen == POISONED {
            return Step::Poisoned(word(region, POISONER).load(Acquire));
        }
        if seen == FREE {
            // A waiter that takes it keeps WAITERS: others may sleep still.
            let mine = if waiting { me | WAITERS } else { me };
            if lock.compare_exchange(FREE, mine, Acquire, Relaxed).is_ok() {
                return Step::Taken;
            }
            continue;
        }
        if !waiting {
            return Step::Wait(seen);
        }
        if seen & WAITERS == 0
            && lock
                .compare_exchange(seen, seen | WAITERS, Relaxed, Relaxed)
                .is_err()
        {
            continue;
        }
        return Step::Wait(seen | WAITERS);
    }
}

/// Gives the lock word back, waking whoever waits.
pub(crate) fn unlock(region: &Region) {
    let lock = word(region, LOCK);
    let released = lock.fetch_update(Release, Relaxed, |seen| (seen != POISONED).then_some(FREE));
    if released.is_ok_and(|old| old & WAITERS != 0) {
        let _ = futex::wake(lock, futex::Flags::empty(), u32::MAX);
    }
}

/// `dead` has died (it is a zombie the pool has not reaped, so no other
/// process has its pid): poisons the lock word if it held it.
pub(crate) fn poison_if_held_by(region: &Region, dead: u32) {
    let lock = word(region, LOCK);
    let mut seen = lock.load(Relaxed);
    while seen != FREE && seen != POISONED && seen & !WAITERS == dead {
        word(region, POISONER).store(dead, Relaxed);
        match lock.compare_exchange(seen, POISONED, Release, Relaxed) {
            Ok(_) => {
                let _ = futex::wake(lock, futex::Flags::empty(), u32::MAX);
                return;
            }
            Err(now) => seen = now,
        }
    }
}

/// Wakes everyone sleeping on the word at `offset`.
pub(crate) fn wake_all(region: &Region, offset: usize) {
    let _ = futex::wake(word(region, offset), futex::Flags::empty(), u32::MAX);
}

/// Sleeps while the word at `offset` reads `seen` (at most [`NAP`]).
pub(crate) fn wait(region: &Region, offset: usize, seen: u32) {
    nap(region, offset, seen, NAP);
}

/// Waits, without blocking the async runtime, while the word at `offset`
/// reads `seen` (at most a short nap; the caller looks again).
pub(crate) async fn wait_async(region: &Arc<Region>, offset: usize, seen: u32) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Polled by another executor: no blocking pool to nap on; a short
        // nap here, on its thread, is the best it can get.
        return nap(region, offset, seen, ASYNC_NAP);
    };
    let shared = region.clone();
    let napped = runtime.spawn_blocking(move || nap(&shared, offset, seen, ASYNC_NAP));
    if napped.await.is_err() {
        // The runtime is shutting down: nap here rather than spin.
        nap(region, offset, seen, ASYNC_NAP);
    }
}

fn nap(region: &Region, offset: usize, seen: u32, nap: Duration) {
    let timeout = rustix::thread::futex::Timespec {
        tv_sec: 0,
        tv_nsec: nap.subsec_nanos() as _,
    };
    // EAGAIN (it changed), EINTR, ETIMEDOUT: all mean look again.
    let _ = futex::wait(
        word(region, offset),
        futex::Flags::empty(),
        seen,
        Some(&timeout),
    );
}
