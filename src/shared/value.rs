//! [`SharedValue`]: one atomic integer in shared memory (Python's `Value`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::array::SharedArray;
use super::atomic::AtomicElement;
use crate::error::Error;

/// One integer in shared memory, changed atomically from any process:
/// Python's `multiprocessing.Value` for counters, where every `+=` is one
/// atomic instruction instead of a lock round trip. A one-element
/// [`SharedArray`]; for a value that changes in several steps, use a
/// [`SharedLock`](super::SharedLock).
///
/// # Examples
///
/// ```no_run
/// use procpool::shared::SharedValue;
///
/// fn count(hits: SharedValue<u64>, n: u64) {
///     for _ in 0..n {
///         hits.fetch_add(1);
///     }
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let hits = SharedValue::new(0u64)?;
/// let a = pool.submit(count, (hits.clone(), 1000));
/// let b = pool.submit(count, (hits.clone(), 1000));
/// a.await?;
/// b.await?;
/// assert_eq!(hits.load(), 2000);
/// # Ok(()) }
/// ```
pub struct SharedValue<T> {
    cell: SharedArray<T>,
}

impl<T: AtomicElement> SharedValue<T> {
    /// A new shared value holding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::is_shared_memory`](crate::Error::is_shared_memory) if the
    /// region cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(7i32)?;
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new(value: T) -> Result<SharedValue<T>, Error> {
        Ok(SharedValue {
            cell: SharedArray::from_slice(&[value])?,
        })
    }

    /// The value, read atomically.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(procpool::shared::SharedValue::new(1u8)?.load(), 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn load(&self) -> T {
        self.cell.load(0)
    }

    /// Sets the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(1u8)?;
    /// v.store(2);
    /// assert_eq!(v.load(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn store(&self, value: T) {
        self.cell.store(0, value)
    }

    /// Sets the value, returning the old one.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(1u8)?;
    /// assert_eq!(v.swap(3), 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn swap(&self, value: T) -> T {
        self.cell.swap(0, value)
    }

    /// Adds `value` (wrapping), returning the old value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(1u64)?;
    /// assert_eq!(v.fetch_add(2), 1);
    /// assert_eq!(v.load(), 3);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn fetch_add(&self, value: T) -> T {
        self.cell.fetch_add(0, value)
    }

    /// Subtracts `value` (wrapping), returning the old value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(1i64)?;
    /// v.fetch_sub(2);
    /// assert_eq!(v.load(), -1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn fetch_sub(&self, value: T) -> T {
        self.cell.fetch_sub(0, value)
    }

    /// Sets the value to `new` if it is `current`: `Ok(current)` if it
    /// was, `Err(what it is)` if not.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = procpool::shared::SharedValue::new(0u32)?;
    /// assert_eq!(v.compare_exchange(0, 5), Ok(0));
    /// assert_eq!(v.compare_exchange(0, 6), Err(5));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        self.cell.compare_exchange(0, current, new)
    }
}

impl<T> Clone for SharedValue<T> {
    fn clone(&self) -> Self {
        SharedValue {
            cell: self.cell.clone(),
        }
    }
}

impl<T> std::fmt::Debug for SharedValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedValue").field(&self.cell).finish()
    }
}

impl<T> Serialize for SharedValue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cell.serialize(serializer)
    }
}

impl<'de, T: AtomicElement> Deserialize<'de> for SharedValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cell = SharedArray::<T>::deserialize(deserializer)?;
        if cell.len() != 1 {
            return Err(serde::de::Error::custom(
                "a shared array where a SharedValue was expected",
            ));
        }
        Ok(SharedValue { cell })
    }
}
