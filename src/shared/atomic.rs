//! The element types with atomic operations: the integers that have a std
//! atomic twin of the same size and alignment.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

use crate::sys::Mapping;

/// An integer type whose elements of a [`SharedArray`](super::SharedArray)
/// or [`SharedValue`](super::SharedValue) can be read and changed
/// atomically, from any process at once: `u8`–`u64`, `i8`–`i64`, `usize`,
/// `isize`. Sealed: implemented for those types only.
///
/// # Examples
///
/// ```
/// fn total<T: procpool::shared::AtomicElement + Into<u64>>(
///     counters: &procpool::shared::SharedArray<T>,
/// ) -> u64 {
///     (0..counters.len()).map(|i| counters.load(i).into()).sum()
/// }
/// let counters = procpool::shared::SharedArray::<u32>::new(3)?;
/// counters.fetch_add(1, 5);
/// assert_eq!(total(&counters), 5);
/// # Ok::<(), procpool::Error>(())
/// ```
pub trait AtomicElement: bytemuck::Pod + private::Sealed {}

pub(crate) mod private {
    use super::Mapping;

    /// The operations, on the element's atomic twin (all `SeqCst`: shared
    /// counters are rarely hot enough for weaker orderings to pay, and
    /// `SeqCst` is what a reader expects).
    #[allow(unreachable_pub, private_interfaces)]
    pub trait Sealed: Sized {
        fn load(map: &Mapping, offset: usize) -> Self;
        fn store(map: &Mapping, offset: usize, value: Self);
        fn swap(map: &Mapping, offset: usize, value: Self) -> Self;
        fn fetch_add(map: &Mapping, offset: usize, value: Self) -> Self;
        fn fetch_sub(map: &Mapping, offset: usize, value: Self) -> Self;
        fn compare_exchange(
            map: &Mapping,
            offset: usize,
            current: Self,
            new: Self,
        ) -> Result<Self, Self>;
    }
}

macro_rules! atomic_elements {
    ($($int:ty => $atomic:ty),* $(,)?) => {$(
        impl AtomicElement for $int {}

        #[allow(private_interfaces)]
        impl private::Sealed for $int {
            fn load(map: &Mapping, offset: usize) -> Self {
                map.atomics::<$atomic>(offset, 1)[0].load(SeqCst)
            }
            fn store(map: &Mapping, offset: usize, value: Self) {
                map.atomics::<$atomic>(offset, 1)[0].store(value, SeqCst)
            }
            fn swap(map: &Mapping, offset: usize, value: Self) -> Self {
                map.atomics::<$atomic>(offset, 1)[0].swap(value, SeqCst)
            }
            fn fetch_add(map: &Mapping, offset: usize, value: Self) -> Self {
                map.atomics::<$atomic>(offset, 1)[0].fetch_add(value, SeqCst)
            }
            fn fetch_sub(map: &Mapping, offset: usize, value: Self) -> Self {
                map.atomics::<$atomic>(offset, 1)[0].fetch_sub(value, SeqCst)
            }
            fn compare_exchange(
                map: &Mapping,
                offset: usize,
                current: Self,
                new: Self,
            ) -> Result<Self, Self> {
                map.atomics::<$atomic>(offset, 1)[0].compare_exchange(current, new, SeqCst, SeqCst)
            }
        }
    )*};
}

atomic_elements!(
    u8 => AtomicU8,
    u16 => AtomicU16,
    u32 => AtomicU32,
    u64 => AtomicU64,
    usize => AtomicUsize,
    i8 => AtomicI8,
    i16 => AtomicI16,
    i32 => AtomicI32,
    i64 => AtomicI64,
    isize => AtomicIsize,
);
