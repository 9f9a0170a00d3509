//! Writable shared arrays: [`SharedArray`] (Python's `Array`), with atomic
//! element operations and exclusive range leases ([`Lease`]).

use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::{Arc, PoisonError};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::atomic::AtomicElement;
use super::lease::{self, Refused};
use super::region::{Kind, Region};
use super::word::{self, LEASES_CHANGED};
use crate::channel::block::refuse_in_runtime;
use crate::error::{Error, Repr};

/// Where the elements start: the first page is the header (lock word,
/// lease table).
pub(crate) const HEADER: usize = 4096;

/// A fixed-length array of plain values (`T:` [`bytemuck::Pod`]) in
/// writable shared memory, seen by the pool's process and every task it is
/// sent to: Python's `multiprocessing.Array`, without its lock-or-not
/// guesswork.
///
/// Two ways in, and no other:
/// - **atomic element operations** for the integer types
///   ([`AtomicElement`]): [`load`](SharedArray::load),
///   [`store`](SharedArray::store), [`fetch_add`](SharedArray::fetch_add),
///   [`compare_exchange`](SharedArray::compare_exchange)…, for counters and
///   accumulators, from any number of processes at once;
/// - **range leases** for bulk reads and writes of any `Pod` type: a
///   [`Lease`] is a `&mut [T]` over a range that no other lease, in any
///   process, overlaps while it lives. [`try_lease`](SharedArray::try_lease)
///   fails at once on an overlap, [`blocking_lease`](SharedArray::blocking_lease)
///   (in a task) and [`lease`](SharedArray::lease) (async, in the pool's
///   process) wait for it to end. A worker that dies holding leases has them
///   ended by the pool (what it wrote stays written).
///
/// The region's size is sealed, so no process can truncate it under the
/// others. Cloning is cheap; sending one to a task sends a small handle, and
/// the worker maps the region once. Remote workers cannot take one
/// ([`Error::is_not_local`](crate::Error::is_not_local)).
///
/// # Examples
///
/// ```no_run
/// use procpool::shared::SharedArray;
///
/// fn fill(out: SharedArray<f32>, part: usize) {
///     // Waits while another lease overlaps; errors only on a runtime thread.
///     let mut rows = out.blocking_lease(part * 100..(part + 1) * 100).unwrap();
///     rows.fill(part as f32);
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let out = SharedArray::<f32>::new(400)?;
/// let parts = (0..4).map(|part| (out.clone(), part));
/// # use futures::StreamExt;
/// let done: Vec<_> = pool.starmap(fill, parts).collect().await;
/// assert_eq!(out.lease(..).await?[399], 3.0);
/// # Ok(()) }
/// ```
pub struct SharedArray<T> {
    region: Arc<Region>,
    len: usize,
    _values: PhantomData<fn() -> T>,
}

impl<T: Pod> SharedArray<T> {
    /// A new array of `len` zeroed values.
    ///
    /// # Errors
    ///
    /// [`Error::is_shared_memory`](crate::Error::is_shared_memory) if the
    /// region cannot be created.
    ///
    /// # Panics
    ///
    /// If `T` is zero-sized or `len` values overflow `usize`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u64>::new(8)?;
    /// assert_eq!(a.len(), 8);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<SharedArray<T>, Error> {
        Self::create(len, |_| {})
    }

    /// A new array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`new`](SharedArray::new).
    ///
    /// # Panics
    ///
    /// If `T` is zero-sized.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::from_slice(&[1i64, 2, 3])?;
    /// assert_eq!(a.load(2), 3);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<SharedArray<T>, Error> {
        Self::create(values.len(), |data| data.copy_from_slice(values))
    }

    fn create(len: usize, fill: impl FnOnce(&mut [T])) -> Result<SharedArray<T>, Error> {
        assert!(size_of::<T>() > 0, "SharedArray of a zero-sized type");
        let bytes = len
            .checked_mul(size_of::<T>())
            .and_then(|bytes| bytes.checked_add(HEADER))
            .expect("SharedArray length overflows");
        let region = Region::create(bytes, Kind::Writable, |raw| {
            fill(bytemuck::cast_slice_mut(&mut raw[HEADER..]));
        })?;
        Ok(SharedArray {
            region,
            len,
            _values: PhantomData,
        })
    }

    /// How many values it holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u8>::new(0)?;
    /// assert!(a.is_empty() && a.len() == 0);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no values.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!procpool::shared::SharedArray::<u8>::new(1)?.is_empty());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Leases `range` if no other lease overlaps it now.
    ///
    /// # Errors
    ///
    /// [`Error::is_leased`](crate::Error::is_leased) if a lease in any
    /// process (this one included) overlaps `range`, or is being taken over
    /// it at this very moment, or all 64 lease slots of the array are taken.
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds or decreasing, as slice indexing does.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u32>::new(10)?;
    /// let mut left = a.try_lease(..5)?;
    /// assert!(a.try_lease(4..6).unwrap_err().is_leased());
    /// left[0] = 7;
    /// drop(left);
    /// assert_eq!(a.try_lease(..)?[0], 7);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn try_lease(&self, range: impl RangeBounds<usize>) -> Result<Lease<'_, T>, Error> {
        let elements = self.elements(range);
        self.take(elements).map_err(refusal)
    }

    /// Leases `range`, waiting while another lease overlaps it. For tasks
    /// (and plain threads); in the pool's process, use
    /// [`lease`](SharedArray::lease).
    ///
    /// A wait ends when the overlapping lease does: its holder drops it, or
    /// dies (the pool ends a dead worker's leases).
    ///
    /// # Errors
    ///
    /// An error if called on a thread that runs an async runtime (it would
    /// stall it; use [`lease`](SharedArray::lease) there).
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds or decreasing.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u32>::new(4)?;
    /// a.blocking_lease(1..3)?.copy_from_slice(&[5, 6]);
    /// assert_eq!(&a.blocking_lease(..)?[..], &[0, 5, 6, 0]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn blocking_lease(&self, range: impl RangeBounds<usize>) -> Result<Lease<'_, T>, Error> {
        let elements = self.elements(range);
        refuse_in_runtime("SharedArray::blocking_lease", "lease(..).await")?;
        loop {
            let seen = lease::generation(&self.region);
            match self.take(elements.clone()) {
                Ok(lease) => return Ok(lease),
                Err(_) => word::wait(&self.region, LEASES_CHANGED, seen),
            }
        }
    }

    /// Leases `range`, waiting without blocking the async runtime while
    /// another lease overlaps it.
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds or decreasing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it is ready takes no lease.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), procpool::Error> {
    /// let a = procpool::shared::SharedArray::<u8>::new(3)?;
    /// a.lease(..).await?.fill(1);
    /// assert_eq!(a.load(2), 1);
    /// # Ok(()) }
    /// ```
    pub async fn lease(&self, range: impl RangeBounds<usize>) -> Result<Lease<'_, T>, Error> {
        let elements = self.elements(range);
        loop {
            let seen = lease::generation(&self.region);
            match self.take(elements.clone()) {
                Ok(lease) => return Ok(lease),
                Err(_) => word::wait_async(&self.region, LEASES_CHANGED, seen).await,
            }
        }
    }

    #[track_caller]
    fn elements(&self, range: impl RangeBounds<usize>) -> Range<usize> {
        let start = match range.start_bound() {
            Bound::Included(&at) => at,
            Bound::Excluded(&at) => at.checked_add(1).expect("lease range overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&at) => at.checked_add(1).expect("lease range overflows"),
            Bound::Excluded(&at) => at,
            Bound::Unbounded => self.len,
        };
        assert!(
            start <= end && end <= self.len,
            "lease range {start}..{end} out of bounds for a SharedArray of length {}",
            self.len
        );
        start..end
    }

    fn take(&self, elements: Range<usize>) -> Result<Lease<'_, T>, Refused> {
        let size = size_of::<T>();
        let bytes = HEADER + elements.start * size..HEADER + elements.end * size;
        let slot = lease::try_take(&self.region, bytes.clone())?;
        let values = self.region.map.exclusive::<T>(bytes.start, elements.len());
        Ok(Lease {
            region: &self.region,
            slot,
            bytes,
            values,
        })
    }
}

fn refusal(refused: Refused) -> Error {
    Error::new(match refused {
        Refused::Overlap { holder } => Repr::Leased {
            holder: Some(holder),
        },
        Refused::Full => Repr::Leased { holder: None },
    })
}

impl<T: AtomicElement> SharedArray<T> {
    /// Runs an atomic operation on element `index`'s bytes, unless this
    /// process leases them (the `&mut` of that lease would be aliased).
    #[track_caller]
    fn atomic<R>(&self, index: usize, op: impl FnOnce(&crate::sys::Mapping, usize) -> R) -> R {
        assert!(
            index < self.len,
            "index {index} out of bounds for a SharedArray of length {}",
            self.len
        );
        let offset = HEADER + index * size_of::<T>();
        let here = self
            .region
            .leased_here
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            !lease::leased_here(&here, offset),
            "element {index} of a SharedArray is leased by this process: use the lease"
        );
        // Held through the operation: a lease taken meanwhile in this process
        // waits for it before its `&mut` exists.
        let out = op(&self.region.map, offset);
        drop(here);
        out
    }

    /// Element `index`, read atomically.
    ///
    /// # Panics
    ///
    /// If `index` is out of bounds, or this process holds a lease over it
    /// (read it through the lease).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::from_slice(&[4u8, 5])?;
    /// assert_eq!(a.load(1), 5);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn load(&self, index: usize) -> T {
        self.atomic(index, T::load)
    }

    /// Sets element `index` atomically.
    ///
    /// # Panics
    ///
    /// As [`load`](SharedArray::load).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<i32>::new(1)?;
    /// a.store(0, -3);
    /// assert_eq!(a.load(0), -3);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn store(&self, index: usize, value: T) {
        self.atomic(index, |map, at| T::store(map, at, value))
    }

    /// Sets element `index` to `value`, returning what it was.
    ///
    /// # Panics
    ///
    /// As [`load`](SharedArray::load).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u16>::new(1)?;
    /// assert_eq!(a.swap(0, 9), 0);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn swap(&self, index: usize, value: T) -> T {
        self.atomic(index, |map, at| T::swap(map, at, value))
    }

    /// Adds `value` to element `index` (wrapping on overflow), returning
    /// what it was: one atomic step, exact under any contention.
    ///
    /// # Panics
    ///
    /// As [`load`](SharedArray::load).
    ///
    /// # Examples
    ///
    /// ```
    /// let hits = procpool::shared::SharedArray::<u64>::new(1)?;
    /// hits.fetch_add(0, 2);
    /// assert_eq!(hits.fetch_add(0, 1), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_add(&self, index: usize, value: T) -> T {
        self.atomic(index, |map, at| T::fetch_add(map, at, value))
    }

    /// Subtracts `value` from element `index` (wrapping), returning what it
    /// was.
    ///
    /// # Panics
    ///
    /// As [`load`](SharedArray::load).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::from_slice(&[5i64])?;
    /// a.fetch_sub(0, 7);
    /// assert_eq!(a.load(0), -2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_sub(&self, index: usize, value: T) -> T {
        self.atomic(index, |map, at| T::fetch_sub(map, at, value))
    }

    /// Sets element `index` to `new` if it is `current`: `Ok(current)` if
    /// it was, `Err(what it is)` if not.
    ///
    /// # Panics
    ///
    /// As [`load`](SharedArray::load).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procpool::shared::SharedArray::<u32>::new(1)?;
    /// assert_eq!(a.compare_exchange(0, 0, 1), Ok(0));
    /// assert_eq!(a.compare_exchange(0, 0, 2), Err(1));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange(&self, index: usize, current: T, new: T) -> Result<T, T> {
        self.atomic(index, |map, at| T::compare_exchange(map, at, current, new))
    }
}

/// An exclusive lease on a range of a [`SharedArray`]: a `&mut [T]` that no
/// other lease, in any process, overlaps until it is dropped.
///
/// # Examples
///
/// ```
/// let a = procpool::shared::SharedArray::<f64>::new(4)?;
/// let mut lease = a.try_lease(2..)?;
/// lease[0] = 1.5;
/// assert_eq!(lease.len(), 2);
/// # Ok::<(), procpool::Error>(())
/// ```
pub struct Lease<'a, T> {
    region: &'a Region,
    slot: usize,
    bytes: Range<usize>,
    values: &'a mut [T],
}

impl<T> std::ops::Deref for Lease<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.values
    }
}

impl<T> std::ops::DerefMut for Lease<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.values
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        lease::give_back(self.region, self.slot, &self.bytes);
    }
}

impl<T> std::fmt::Debug for Lease<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = size_of::<T>().max(1);
        let start = (self.bytes.start - HEADER) / size;
        f.debug_struct("Lease")
            .field("range", &(start..start + self.values.len()))
            .finish()
    }
}

impl<T> Clone for SharedArray<T> {
    fn clone(&self) -> Self {
        SharedArray {
            region: self.region.clone(),
            len: self.len,
            _values: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArray")
            .field("region", &self.region.id)
            .field("len", &self.len)
            .finish()
    }
}

impl<T> Serialize for SharedArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(true, serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, true)?;
        let data = region.map.len().checked_sub(HEADER);
        match data {
            Some(data) if size_of::<T>() > 0 && data.is_multiple_of(size_of::<T>()) => {
                Ok(SharedArray {
                    len: data / size_of::<T>(),
                    region,
                    _values: PhantomData,
                })
            }
            _ => Err(serde::de::Error::custom(format!(
                "a shared region of {} bytes is not an array of {}",
                region.map.len(),
                std::any::type_name::<T>()
            ))),
        }
    }
}
