//! Shared memory between the pool's process and its tasks: Python's
//! `multiprocessing.shared_memory`, `Value`, `Array` and `Lock`, without
//! names to leak or unlink and without `unsafe` in user code.
//!
//! | type | Python | access |
//! | --- | --- | --- |
//! | [`SharedBytes`], [`SharedSlice<T>`] | `shared_memory.SharedMemory` (read-only use) | `&[u8]` / `&[T]` in place, sealed |
//! | [`SharedValue<T>`] | `Value` | atomic `load`/`store`/`fetch_add`/`compare_exchange` |
//! | [`SharedArray<T>`] | `Array` | atomic element operations; exclusive range [`Lease`]s (`&mut [T]`) |
//! | [`SharedLock<T>`] | `Lock`, `Value(lock=True)` | a guard (`&mut T`); poisoned if its holder dies |
//!
//! Every handle is created in the pool's process and sent to tasks as an
//! argument (of [`Pool::submit`](crate::Pool::submit), items of
//! [`Pool::map`](crate::Pool::map) and its relatives, or
//! [`procpool::spawn`](crate::spawn)); what travels is a small handle.
//!
//! # How regions work
//!
//! Each handle names a *region*: an anonymous `memfd` (no name in any
//! filesystem, so nothing to unlink and nothing left when any process is
//! SIGKILLed: the kernel frees it with the last fd or mapping). The pool's
//! process keeps its fd; a worker decoding a handle it has not seen opens
//! `/proc/<pool pid>/fd/<fd>`, checks it got the same inode, maps it and
//! closes the fd again. Each process maps a region once and caches the
//! mapping by id (the inode number). While a task is on its way, its job
//! keeps the regions its arguments carry alive, so the caller may drop its
//! handles right after `submit`.
//!
//! The last handle in the whole system unmaps a region. In the pool's
//! process that is the last handle there (jobs included): its fd closes,
//! and if a task ever carried the region, every worker is told (an `UNMAP`
//! frame, off the hot path) and unmaps it. A worker whose tasks' handles
//! are dropped keeps the mapping meanwhile, so the next task that brings
//! the same table finds it mapped: mapping and populating 16 MiB costs
//! ~1.3 ms here and unmapping it ~0.5 ms, which per task was most of W3b
//! (64 tasks reading one 16 MiB table went from 4.9x to ~25x faster than
//! sending it by value). What a worker keeps with no handle is bounded: at
//! most 8 regions and 1 GiB, least recently used first out, and under
//! [`max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker)
//! (whose address-space limit counts mappings) at most a quarter of it. A
//! [`procpool::spawn`](crate::spawn) child is told the same way, and exits
//! after its task anyway. (Why not pass the fd by `SCM_RIGHTS` down a second
//! socket per worker? The pool would have to track, per worker, which fds it
//! has sent, and push them before each request, on the hot path of every
//! send; opening through `/proc` needs none of that, works the same for
//! `map` chunks, retries and `spawn`, and costs ordinary tasks nothing. It
//! needs `/proc` and a worker allowed to read its parent's fds: the same
//! user, not made undumpable by `prctl(PR_SET_DUMPABLE, 0)`.)
//!
//! Regions reach only workers on this machine: a task carrying a handle,
//! submitted to a pool or process whose [`Launcher`](crate::Launcher) is
//! not local, fails at once with [`Error::is_not_local`](crate::Error::is_not_local)
//! (no silent copy: a copy of a 256 MiB table per task is the thing shared
//! memory is for avoiding, so the caller decides).
//!
//! # Soundness
//!
//! All `unsafe` is in `sys/mapping.rs`; these are the arguments it rests on.
//!
//! - **`&[u8]` over a sealed region** ([`SharedSlice`]). Before a read-only
//!   region is shared it is filled through a private mapping, unmapped, then
//!   sealed with `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`
//!   and mapped `PROT_READ`. The mapping code checks those seals itself
//!   (also in a worker, on the file it opened). From then on the kernel
//!   refuses every `write`, writable `mmap` and `ftruncate` by every
//!   process, so the bytes are immutable for as long as the `&[u8]` lives:
//!   exactly what a shared reference promises. Size is sealed too, so no
//!   read can fault (a truncated file would SIGBUS every mapping).
//! - **Atomics over shared memory** ([`SharedValue`], the atomic
//!   operations of [`SharedArray`], lock words, lease tables). std's atomic
//!   integers are valid for every bit pattern and are made for concurrent
//!   access; every procpool process touches those bytes only with atomic
//!   instructions, which the hardware makes coherent across processes
//!   mapping the same physical page. Writable regions are sealed against
//!   resizing, so no access faults.
//! - **Leases make `&mut [T]` exclusive across processes.** A lease table of
//!   atomics in the region's header records every leased range; taking one
//!   publishes the range, then scans the others (`SeqCst`, so of two
//!   overlapping requests at once at least one sees the other and backs
//!   off). In one process, leased ranges are also recorded before the `&mut`
//!   exists, and the atomic element operations check them under the same
//!   lock, so no `&AtomicT` aliases a leased element (they panic instead).
//!   A [`SharedLock`]'s guard is the `&mut T` of the holder of its lock word.
//! - **What a hostile task can do.** A task is arbitrary code; with
//!   `unsafe` it can write anything into a writable region: garbage values,
//!   bogus lease entries, a lock word naming some other pid. It cannot
//!   cause undefined behaviour in the pool's process: every `T` is
//!   [`bytemuck::Pod`] (any bytes are a valid `T`), the parent never derives
//!   a pointer, a length or a discriminant from shared bytes (lengths come
//!   from the parent's own records and are checked on decode), and sizes are
//!   sealed, so nothing can fault. The worst it can do is wrong values or
//!   denial of service (a lock or lease that is never given back), the same
//!   as a task that loops for ever; it cannot write a sealed region at all.
//!
//! # Dead holders
//!
//! The pool learns when one of its children (a worker, or a
//! [`Process`](crate::Process)) dies. Before it reaps the child, while the
//! zombie still holds its pid (so no other process can have it), it poisons
//! every lock word naming that pid and ends its leases, waking all waiters.
//! So a lock whose holder died fails its next `lock()` with
//! [`Error::is_poisoned`](crate::Error::is_poisoned), and nothing waits for
//! ever. The identity in a word is the pid of the process that first mapped
//! a region, inherited by a task's `fork()` copies, which the pool kills
//! with their worker.

mod array;
mod atomic;
mod kept;
mod lease;
mod lock;
pub(crate) mod owners;
mod region;
mod released;
mod slice;
mod value;
mod word;

pub use array::{Lease, SharedArray};
pub use atomic::AtomicElement;
pub use lock::{SharedLock, SharedLockGuard};
pub use slice::{SharedBytes, SharedSlice};
pub use value::SharedValue;

pub(crate) use region::{Carried, REGION_NAME, carry, forget};
pub(crate) use released::Releases;

/// Not part of the API: the inode of a slice's region, for tests that look
/// for it in `/proc`.
#[doc(hidden)]
pub fn __region_id<T>(slice: &SharedSlice<T>) -> u64 {
    slice::region_id(slice)
}

/// Not part of the API: how many regions of other processes this process
/// has mapped so far (a kept mapping used again is not counted), for tests
/// that check a worker maps a region once.
#[doc(hidden)]
pub fn __maps_made() -> u64 {
    region::maps_made()
}
