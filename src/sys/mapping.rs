//! Shared mappings of the memfd regions behind [`crate::shared`]: the only
//! place that turns a mapped address into Rust references.
//!
//! Each accessor checks what its soundness rests on (seals, bounds,
//! alignment) instead of trusting its caller, except [`Mapping::exclusive`],
//! whose one contract (no other reference to those bytes in this process)
//! the lease and the lock keep; see the soundness notes in `shared/mod.rs`.

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// A `MAP_SHARED` mapping of the first `len` bytes of a memfd, unmapped on
/// drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Sealed against writes and resizing, and mapped read-only: nobody
    /// anywhere can change these bytes while the mapping lives.
    frozen: bool,
}

// SAFETY: a Mapping is an address range, valid until its drop; moving it
// between threads changes nothing. Shared access goes through `bytes`
// (frozen bytes, immutable for everyone), `atomics` (atomic types, made for
// shared access) and `exclusive` (whose caller guarantees exclusivity).
unsafe impl Send for Mapping {}
// SAFETY: as above: every way to reach the bytes from `&Mapping` is either
// immutable, atomic, or exclusive by its contract.
unsafe impl Sync for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len)
            .field("frozen", &self.frozen)
            .finish()
    }
}

/// The seals that make a region's size permanent, so no access within it
/// can fault (a shrunk file would SIGBUS every mapping past its new end).
const FIXED_SIZE: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

impl Mapping {
    /// Maps `len` bytes of `fd` read-write. Fails unless the file is sealed
    /// against shrinking and growing and holds at least `len` bytes.
    pub(crate) fn writable(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        Self::map(fd, len, FIXED_SIZE, false)
    }

    /// Maps `len` bytes of `fd` read-only. Fails unless the file is sealed
    /// against writes, shrinking and growing and holds at least `len` bytes.
    pub(crate) fn frozen(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        Self::map(fd, len, FIXED_SIZE | SealFlags::WRITE, true)
    }

    /// Maps `len` bytes of a memfd nobody else can reach yet (just created,
    /// not yet shared), read-write, to fill it before it is sealed.
    pub(crate) fn fresh(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        Self::map(fd, len, SealFlags::empty(), false)
    }

    fn map(fd: BorrowedFd<'_>, len: usize, seals: SealFlags, frozen: bool) -> io::Result<Mapping> {
        if !rustix::fs::fcntl_get_seals(fd)?.contains(seals) {
            return Err(io::Error::other("the shared memory region is not sealed"));
        }
        let size = rustix::fs::fstat(fd)?.st_size;
        if u64::try_from(size).unwrap_or(0) < len as u64 {
            return Err(io::Error::other(
                "the shared memory region is smaller than its handle says",
            ));
        }
        if len == 0 {
            let ptr = NonNull::<u64>::dangling().cast();
            return Ok(Mapping { ptr, len, frozen });
        }
        let prot = if frozen {
            ProtFlags::READ
        } else {
            ProtFlags::READ | ProtFlags::WRITE
        };
        // Populated at once: a task mapping a 16 MiB table would otherwise
        // take 4,096 page faults reading it. (It still costs ~1.3 ms per
        // 16 MiB here, which is why a worker keeps what it mapped: see
        // `shared::kept`.)
        let flags = MapFlags::SHARED | MapFlags::POPULATE;
        // SAFETY: a null hint lets the kernel pick fresh addresses, which
        // overlap no Rust object; the mapping is unmapped only in `drop`.
        // Accesses cannot fault: the file holds `len` bytes and its size is
        // sealed (checked above), except for a fresh file, which only this
        // process can reach and which it does not resize while mapped.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) }?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap at 0"))?;
        Ok(Mapping { ptr, len, frozen })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Moves the mapping out, leaving an empty one in its place (a region
    /// dropped in a worker hands its mapping to the worker's cache).
    pub(crate) fn take(&mut self) -> Mapping {
        let empty = Mapping {
            ptr: NonNull::<u64>::dangling().cast(),
            len: 0,
            frozen: self.frozen,
        };
        std::mem::replace(self, empty)
    }

    /// Whether it was mapped read-only over a sealed file.
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The bytes of a frozen mapping.
    ///
    /// # Panics
    ///
    /// If the mapping is not frozen (a bug in procpool).
    pub(crate) fn bytes(&self) -> &[u8] {
        assert!(self.frozen, "plain bytes of a writable shared region");
        // SAFETY: `len` mapped, readable bytes (or a dangling pointer for
        // none); frozen means sealed against writes and resizing, so no
        // process can change or remove them while this borrow of the
        // mapping lasts: an ordinary shared reference's promise.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// `count` atomics of type `A` at byte `offset`.
    ///
    /// # Panics
    ///
    /// If they do not fit the mapping or `offset` is misaligned for `A`,
    /// or the mapping is frozen (bugs in procpool).
    pub(crate) fn atomics<A: AtomicInt>(&self, offset: usize, count: usize) -> &[A] {
        let bytes = count.checked_mul(size_of::<A>()).expect("atomics overflow");
        assert!(!self.frozen, "atomics over read-only memory");
        assert!(offset.checked_add(bytes).is_some_and(|end| end <= self.len));
        assert!(offset.is_multiple_of(align_of::<A>()), "misaligned atomics");
        // SAFETY: in bounds, aligned (mappings are page-aligned), writable
        // memory that lives as long as `self`. `A` is one of std's atomic
        // integers (`AtomicInt` is implemented for nothing else), valid for
        // any bits, and made for concurrent access; other processes touch
        // these bytes only through the same atomic instructions.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<A>(), count) }
    }

    /// `count` values of `T` at byte `offset`, exclusively.
    ///
    /// Contract: no other reference to these bytes exists in this process
    /// until the returned one is dropped, and no cooperating process writes
    /// them meanwhile. `shared::lease` (a range lease) and `shared::lock`
    /// (the lock word) are the only callers, and hold exactly that.
    ///
    /// # Panics
    ///
    /// If they do not fit the mapping, `offset` is misaligned for `T`, or
    /// the mapping is frozen (bugs in procpool).
    #[allow(clippy::mut_from_ref)] // exclusivity is the caller's contract, above
    pub(crate) fn exclusive<T: bytemuck::Pod>(&self, offset: usize, count: usize) -> &mut [T] {
        let bytes = count.checked_mul(size_of::<T>()).expect("slice overflow");
        assert!(!self.frozen, "a mutable view of read-only memory");
        assert!(offset.checked_add(bytes).is_some_and(|end| end <= self.len));
        assert!(offset.is_multiple_of(align_of::<T>()), "misaligned slice");
        // SAFETY: in bounds, aligned, writable memory living as long as
        // `self`; `T: Pod` is valid for any bits, so whatever another
        // process wrote there is a valid `T`; exclusivity in this process
        // is the caller's contract (a lease or the lock).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset).cast::<T>(), count) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: the range was mapped by `map` and is unmapped once, here;
        // every reference into it borrows `self`, so none outlives it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// std's atomic integers: the only types [`Mapping::atomics`] hands out.
pub(crate) trait AtomicInt: Sync + 'static {}

macro_rules! atomic_ints {
    ($($atomic:ty),*) => { $(impl AtomicInt for $atomic {})* };
}

atomic_ints!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);
