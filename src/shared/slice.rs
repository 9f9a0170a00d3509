//! Read-only broadcast data: [`SharedSlice`] and [`SharedBytes`].

use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::region::{Kind, Region};
use crate::error::Error;

/// Read-only bytes in shared memory: see [`SharedSlice`], of which this is
/// the `u8` case.
///
/// # Examples
///
/// ```
/// let table = procpool::shared::SharedBytes::new(b"a lookup table")?;
/// assert_eq!(&table[..8], b"a lookup");
/// # Ok::<(), procpool::Error>(())
/// ```
pub type SharedBytes = SharedSlice<u8>;

/// A read-only slice of plain values (`T:` [`bytemuck::Pod`]) in shared
/// memory, placed once and read in place as `&[T]` by every task it is sent
/// to: a model, a lookup table, a matrix broadcast to a whole `map`.
///
/// It is an anonymous memfd sealed against writes and resizing before
/// anyone else sees it (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
/// F_SEAL_SEAL`): no process can change or truncate it, so reading it needs
/// no lock, and the kernel, not procpool, guarantees it. Each worker maps it
/// once (the first task that receives it), whatever number of tasks carry
/// it; the memory is counted once on the machine.
///
/// Cloning is cheap (a reference count). Sending it to a task sends a
/// 29-byte handle. The region is freed once the pool's process has dropped
/// its last handle and no task still holds one: workers keep it mapped
/// between tasks until the pool's process lets it go, then are told to
/// unmap it. Nothing has a name, so nothing is left behind, even after a
/// SIGKILL.
///
/// Sending one to a pool or process whose workers are remote
/// ([`Launcher::ssh`](crate::Launcher::ssh) and the like) fails at once:
/// shared memory exists only on this machine (see
/// [`Error::is_not_local`](crate::Error::is_not_local)).
///
/// # Examples
///
/// ```no_run
/// use procpool::shared::SharedSlice;
///
/// fn lookup(table: SharedSlice<u32>, i: usize) -> u32 {
///     table[i] // read in place: no copy, no lock
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// let table = SharedSlice::new(&[10u32, 20, 30])?;
/// assert_eq!(pool.submit(lookup, (table.clone(), 2)).await?, 30);
/// # Ok(()) }
/// ```
pub struct SharedSlice<T> {
    region: Arc<Region>,
    _values: PhantomData<fn() -> T>,
}

impl<T: Pod> SharedSlice<T> {
    /// Places a copy of `values` in a new sealed region.
    ///
    /// # Errors
    ///
    /// [`Error::is_shared_memory`](crate::Error::is_shared_memory) if the
    /// region cannot be created (out of memory, a memfd limit).
    ///
    /// # Panics
    ///
    /// If `T` is zero-sized.
    ///
    /// # Examples
    ///
    /// ```
    /// let weights = procpool::shared::SharedSlice::new(&[0.5f32, 0.25])?;
    /// assert_eq!(weights.as_slice(), &[0.5, 0.25]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new(values: &[T]) -> Result<SharedSlice<T>, Error> {
        assert!(size_of::<T>() > 0, "SharedSlice of a zero-sized type");
        Ok(SharedSlice {
            region: Region::frozen_copy(bytemuck::cast_slice(values))?,
            _values: PhantomData,
        })
    }

    /// A new sealed region of `len` values, zeroed and then filled in place
    /// by `fill` (no copy of a big table on the side), sealed once `fill`
    /// returns.
    ///
    /// # Errors
    ///
    /// As [`new`](SharedSlice::new).
    ///
    /// # Panics
    ///
    /// If `T` is zero-sized or `len` values overflow `usize`; a panic in
    /// `fill` is passed on (the region is freed).
    ///
    /// # Examples
    ///
    /// ```
    /// let squares = procpool::shared::SharedSlice::<u64>::with_len(1000, |s| {
    ///     for (i, x) in s.iter_mut().enumerate() {
    ///         *x = (i * i) as u64;
    ///     }
    /// })?;
    /// assert_eq!(squares[999], 998_001);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn with_len(len: usize, fill: impl FnOnce(&mut [T])) -> Result<SharedSlice<T>, Error> {
        assert!(size_of::<T>() > 0, "SharedSlice of a zero-sized type");
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("SharedSlice length overflows");
        let region = Region::create(bytes, Kind::Frozen, |raw| {
            fill(bytemuck::cast_slice_mut(raw));
        })?;
        Ok(SharedSlice {
            region,
            _values: PhantomData,
        })
    }

    /// The values, in place.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = procpool::shared::SharedSlice::new(&[1u16, 2, 3])?;
    /// assert_eq!(s.as_slice().iter().sum::<u16>(), 6);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn as_slice(&self) -> &[T] {
        let bytes = self.region.map.bytes();
        if bytes.is_empty() {
            return &[];
        }
        // Lengths are checked when a handle is decoded; mappings are page-aligned.
        bytemuck::cast_slice(bytes)
    }

    /// The values' bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = procpool::shared::SharedSlice::new(&[1u16])?;
    /// assert_eq!(s.as_bytes().len(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        self.region.map.bytes()
    }
}

impl<T: Pod> std::ops::Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> AsRef<[T]> for SharedSlice<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        SharedSlice {
            region: self.region.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSlice")
            .field("region", &self.region.id)
            .field("len", &(self.region.map.len() / size_of::<T>().max(1)))
            .finish()
    }
}

impl<T> Serialize for SharedSlice<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(false, serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedSlice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, false)?;
        if size_of::<T>() == 0 || !region.map.len().is_multiple_of(size_of::<T>()) {
            return Err(serde::de::Error::custom(format!(
                "a shared region of {} bytes is not a whole number of {}",
                region.map.len(),
                std::any::type_name::<T>()
            )));
        }
        Ok(SharedSlice {
            region,
            _values: PhantomData,
        })
    }
}

/// The region behind a handle, for procpool's tests.
pub(crate) fn region_id<T>(slice: &SharedSlice<T>) -> u64 {
    slice.region.id
}
