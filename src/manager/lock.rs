//! [`Lock`]: a lock held by the manager, Python's `Manager().Lock()`,
//! whose holder's death releases it as poisoned.

use super::call::{Call, Route, decode};
use super::state::Kind;
use super::wire::Op;
use crate::codec;
use crate::error::Error;

/// A lock held by the manager, for tasks (on any host) and the pool's
/// process to take turns: a handle that is a serde value and `Clone`
/// (every clone is the same lock).
///
/// [`acquire`](Lock::acquire) waits for it, in the order callers came,
/// and gives a [`LockGuard`] that releases it when dropped. If a worker
/// dies holding it (a crash, a kill, a cancelled task), the lock is
/// released as **poisoned**: what it guarded may be half-updated, so
/// every `acquire` fails with [`Error::is_poisoned`] until someone who
/// checked calls [`clear_poison`](Lock::clear_poison). (Python's manager
/// lock stays held for ever.) It is not reentrant: a holder that
/// acquires it again waits for itself (give that call a
/// [`timeout`](Call::timeout)).
///
/// # Examples
///
/// ```no_run
/// use procpool::manager::{Lock, Value};
///
/// fn transfer(lock: Lock, balance: Value<i64>) {
///     let _held = lock.acquire().wait().unwrap();
///     let now = balance.load().wait().unwrap();
///     balance.store(now - 10).wait().unwrap();
/// } // released here
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// // procpool::init(procpool::tasks![transfer]) in main
/// let manager = procpool::Manager::new();
/// let (lock, balance) = (manager.lock(), manager.value(100i64));
/// pool.submit(transfer, (lock, balance.clone())).await?;
/// assert_eq!(balance.load().await?, 90);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(crate) route: Route,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("id", &self.route.id())
            .finish()
    }
}

impl serde::Serialize for Lock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.route.serialize(Kind::Lock, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Lock {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Route::deserialize(deserializer, Kind::Lock).map(|route| Lock { route })
    }
}

/// The lock, held: released when dropped.
#[must_use = "the lock is released as soon as its guard is dropped"]
pub struct LockGuard {
    route: Route,
    token: u64,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.route.id())
            .finish_non_exhaustive()
    }
}

fn guard(route: &Route, granted: Vec<u8>) -> Result<LockGuard, Error> {
    Ok(LockGuard {
        route: route.clone(),
        token: codec::decode(&granted)?,
    })
}

impl Lock {
    /// Waits for the lock and takes it.
    ///
    /// # Errors
    ///
    /// [`Error::is_poisoned`] if a holder died holding it;
    /// [`Error::is_timeout`](crate::Error::is_timeout) if a
    /// [`timeout`](Call::timeout) passed first;
    /// [`Error::is_shutdown`](crate::Error::is_shutdown) if the manager is gone.
    ///
    /// # Cancel safety
    ///
    /// Dropping the awaited call before it resolves leaves the lock as it
    /// was: if it was granted meanwhile, it is released.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let lock = procpool::Manager::new().lock();
    /// let held = lock.acquire().await?;
    /// let again = lock.acquire().timeout(std::time::Duration::from_millis(10)).wait();
    /// assert!(again.unwrap_err().is_timeout());
    /// drop(held);
    /// lock.acquire().await?;
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn acquire(&self) -> Call<LockGuard> {
        self.route
            .call(Kind::Lock, Op::Acquire, 0, Ok(Vec::new()), guard)
    }

    /// Clears the poison a holder's death left, so that it can be acquired
    /// again (do it once what it guards is checked or repaired).
    ///
    /// # Errors
    ///
    /// [`Error::is_shutdown`](crate::Error::is_shutdown) if the manager is gone.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(lock: procpool::manager::Lock) -> Result<(), procpool::Error> {
    /// match lock.acquire().await {
    ///     Err(err) if err.is_poisoned() => {
    ///         // repair what the lock guards, then:
    ///         lock.clear_poison().await?;
    ///     }
    ///     other => drop(other?),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn clear_poison(&self) -> Call<()> {
        self.route
            .call(Kind::Lock, Op::ClearPoison, 0, Ok(Vec::new()), decode)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Never waits: a release is answered at once (in a worker, after a
        // round trip). If it fails, the manager is gone, or the holder's
        // worker is, which releases it anyway.
        let release =
            self.route
                .call::<()>(Kind::Lock, Op::Release, self.token, Ok(Vec::new()), decode);
        let _ = release.wait();
    }
}
