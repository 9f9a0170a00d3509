//! [`SharedLock`]: a process-shared lock over a `Pod` value, poisoned when
//! its holder dies.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use bytemuck::Pod;

use std::sync::Arc;

use super::array::HEADER;
use super::region::{Kind, Region, me};
use super::word::{self, LOCK, Step};
use crate::channel::block::refuse_in_runtime;
use crate::error::{Error, Repr};

/// A lock shared by processes, guarding a plain value (`T:`
/// [`bytemuck::Pod`]; `SharedLock<()>` is a plain lock): Python's
/// `multiprocessing.Lock` and `Value(..., lock=True)`, minus its worst trap.
///
/// The lock is a futex word in shared memory holding its owner's pid.
/// **If the holder dies** (a crash, a SIGKILL, a cancelled task whose worker
/// the pool killed), the pool poisons the lock: every waiter wakes, and this
/// and every later `lock()` fail with
/// [`Error::is_poisoned`](crate::Error::is_poisoned), naming the dead
/// process, since the value may be half-updated. Python's lock stays held
/// for ever and its waiters hang.
///
/// [`lock`](SharedLock::lock) is async (for the pool's process: it never
/// blocks the runtime), [`blocking_lock`](SharedLock::blocking_lock) is for
/// tasks, [`try_lock`](SharedLock::try_lock) never waits. Not reentrant:
/// locking again while holding it waits for ever, as with `std::sync::Mutex`.
///
/// # Examples
///
/// ```no_run
/// use procpool::shared::SharedLock;
///
/// fn add(total: SharedLock<i64>, n: i64) -> Result<(), String> {
///     for _ in 0..n {
///         // An error only if a holder died: the total may be half-updated.
///         *total.blocking_lock().map_err(|err| err.to_string())? += 1;
///     }
///     Ok(())
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let total = SharedLock::new(0i64)?;
/// pool.submit(add, (total.clone(), 100)).await?.expect("no holder died");
/// assert_eq!(*total.lock().await?, 100);
/// # Ok(()) }
/// ```
pub struct SharedLock<T> {
    region: Arc<Region>,
    _value: std::marker::PhantomData<fn() -> T>,
}

impl<T: Pod> SharedLock<T> {
    /// A new, unlocked lock guarding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::is_shared_memory`](crate::Error::is_shared_memory) if the
    /// region cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = procpool::shared::SharedLock::new([0u8; 16])?;
    /// assert!(lock.try_lock()?.is_some());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new(value: T) -> Result<SharedLock<T>, Error> {
        let region = Region::create(HEADER + size_of::<T>(), Kind::Writable, |raw| {
            raw[HEADER..].copy_from_slice(bytemuck::bytes_of(&value));
        })?;
        Ok(SharedLock {
            region,
            _value: std::marker::PhantomData,
        })
    }

    fn region(&self) -> &Arc<Region> {
        &self.region
    }

    fn guard(&self) -> SharedLockGuard<'_, T> {
        SharedLockGuard {
            region: self.region(),
            value: &mut self.region().map.exclusive::<T>(HEADER, 1)[0],
        }
    }

    /// Takes the lock, waiting without blocking the async runtime while
    /// another holds it.
    ///
    /// # Errors
    ///
    /// [`Error::is_poisoned`](crate::Error::is_poisoned) if a holder died
    /// holding it, before or while this waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it is ready takes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), procpool::Error> {
    /// let lock = procpool::shared::SharedLock::new(1u32)?;
    /// *lock.lock().await? += 1;
    /// assert_eq!(*lock.lock().await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn lock(&self) -> Result<SharedLockGuard<'_, T>, Error> {
        loop {
            match word::try_lock(self.region(), me(), true) {
                Step::Taken => return Ok(self.guard()),
                Step::Poisoned(pid) => return Err(poisoned(pid)),
                Step::Wait(seen) => word::wait_async(self.region(), LOCK, seen).await,
            }
        }
    }

    /// Takes the lock, waiting while another holds it: the form for tasks.
    ///
    /// # Errors
    ///
    /// [`Error::is_poisoned`](crate::Error::is_poisoned) as for
    /// [`lock`](SharedLock::lock); an error if called on a thread that runs
    /// an async runtime (use `lock().await` there).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = procpool::shared::SharedLock::new(0u64)?;
    /// *lock.blocking_lock()? = 5;
    /// assert_eq!(*lock.blocking_lock()?, 5);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn blocking_lock(&self) -> Result<SharedLockGuard<'_, T>, Error> {
        refuse_in_runtime("SharedLock::blocking_lock", "lock().await")?;
        loop {
            match word::try_lock(self.region(), me(), true) {
                Step::Taken => return Ok(self.guard()),
                Step::Poisoned(pid) => return Err(poisoned(pid)),
                Step::Wait(seen) => word::wait(self.region(), LOCK, seen),
            }
        }
    }

    /// Takes the lock if it is free: `Ok(None)` if another holds it.
    ///
    /// # Errors
    ///
    /// [`Error::is_poisoned`](crate::Error::is_poisoned) as for
    /// [`lock`](SharedLock::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = procpool::shared::SharedLock::new(())?;
    /// let held = lock.try_lock()?;
    /// assert!(held.is_some());
    /// assert!(lock.try_lock()?.is_none());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<Option<SharedLockGuard<'_, T>>, Error> {
        match word::try_lock(self.region(), me(), false) {
            Step::Taken => Ok(Some(self.guard())),
            Step::Poisoned(pid) => Err(poisoned(pid)),
            Step::Wait(_) => Ok(None),
        }
    }
}

fn poisoned(pid: u32) -> Error {
    Error::new(Repr::Poisoned { pid })
}

/// The value a [`SharedLock`] guards, held: unlocked when dropped.
///
/// # Examples
///
/// ```
/// let lock = procpool::shared::SharedLock::new(2u8)?;
/// let mut guard = lock.blocking_lock()?;
/// *guard *= 2;
/// assert_eq!(*guard, 4);
/// # Ok::<(), procpool::Error>(())
/// ```
pub struct SharedLockGuard<'a, T> {
    region: &'a Region,
    value: &'a mut T,
}

impl<T> std::ops::Deref for SharedLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> std::ops::DerefMut for SharedLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

impl<T> Drop for SharedLockGuard<'_, T> {
    fn drop(&mut self) {
        word::unlock(self.region);
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SharedLockGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedLockGuard").field(&self.value).finish()
    }
}

impl<T> Clone for SharedLock<T> {
    fn clone(&self) -> Self {
        SharedLock {
            region: self.region.clone(),
            _value: std::marker::PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SharedLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedLock").field(&self.region.id).finish()
    }
}

impl<T> Serialize for SharedLock<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(true, serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedLock<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, true)?;
        if region.map.len() != HEADER + size_of::<T>() {
            return Err(serde::de::Error::custom(format!(
                "a shared region of {} bytes is not a SharedLock<{}>",
                region.map.len(),
                std::any::type_name::<T>()
            )));
        }
        Ok(SharedLock {
            region,
            _value: std::marker::PhantomData,
        })
    }
}
