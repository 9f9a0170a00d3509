//! A region: one anonymous memfd, mapped once per process and cached by id
//! (its inode number): in its home process for as long as a handle to it
//! lives there; in a worker also after that, until the home process lets it
//! go (see [`kept`](super::kept)).
//!
//! A region is created in the pool's process, which keeps its fd. A handle
//! travels as `(home pid, fd, id, len, writable)`; a worker that decodes one
//! it has not mapped yet opens `/proc/<home>/fd/<fd>`, checks that the file
//! it got is the same inode, maps it and closes the fd. The handle's encoding
//! is only allowed while a request is encoded ([`carry`]): the job then keeps
//! the region alive until its answer arrives, so the fd is open when the
//! worker opens it, even if the caller dropped its handle right after submit.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock, Weak};

use rustix::fs::{MemfdFlags, SealFlags};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::kept::{Kept, Shelf};
use super::released;
use crate::error::{Error, Repr};
use crate::sys::Mapping;

/// One region as this process sees it.
pub(crate) struct Region {
    /// The memfd's inode number: unique among live files, and a region's
    /// file lives as long as any process maps it.
    pub(crate) id: u64,
    /// The process that created it, which keeps [`Region::fd`] open.
    home: u32,
    /// In the home process only: the memfd, for workers to open.
    fd: Option<OwnedFd>,
    pub(crate) map: Mapping,
    kind: Kind,
    /// Byte ranges this process holds leases on (see `lease`): atomics on
    /// elements in them would alias a `&mut`.
    pub(crate) leased_here: RwLock<Vec<Range<usize>>>,
    /// In the home process: whether a request ever carried it, so workers
    /// may keep it mapped and are to be told when it goes.
    sent: AtomicBool,
    /// In a worker: the home process let it go while a handle here still
    /// used it (a task kept one), so its last handle unmaps it.
    released: AtomicBool,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("id", &self.id)
            .field("len", &self.map.len())
            .finish()
    }
}

/// The name every region's memfd has (`/memfd:procpool-shared` in
/// `/proc/<pid>/maps`), by which a worker's memory measure tells the
/// pool's regions from a task's own shared memory.
pub(crate) const REGION_NAME: &str = "procpool-shared";

/// The regions mapped in this process, by id.
#[derive(Default)]
struct Table {
    /// Those a handle here uses.
    live: HashMap<u64, Weak<Region>>,
    /// Other processes' regions no handle here uses any more, still mapped.
    kept: Shelf,
    /// Regions let go by their home process while their last handle here
    /// was being dropped (on another thread): that drop unmaps them.
    forgotten_dying: Vec<u64>,
}

static MAPPED: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

fn mapped() -> std::sync::MutexGuard<'static, Table> {
    MAPPED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Regions of other processes this process has mapped (opened through
/// `/proc`), ever: a kept mapping found again is not counted.
static MAPS_MADE: AtomicU64 = AtomicU64::new(0);

/// Not part of the API: how many regions of other processes this process
/// has mapped, for tests that check a worker maps a region once.
pub(crate) fn maps_made() -> u64 {
    MAPS_MADE.load(Ordering::Relaxed)
}

/// Who this process is in lock words and leases: its pid when it first
/// touched a region, inherited by a `fork()` copy of it (which the pool
/// kills with it), so a word never names a process the pool does not watch.
pub(crate) fn me() -> u32 {
    static ME: OnceLock<u32> = OnceLock::new();
    *ME.get_or_init(std::process::id)
}

/// The live regions of this process (for the pool's scan when a worker dies).
pub(crate) fn live() -> Vec<Arc<Region>> {
    mapped().live.values().filter_map(Weak::upgrade).collect()
}

/// The pool's process let regions `ids` go (an `UNMAP` frame): what this
/// worker kept of them is unmapped now, and one a handle here still uses
/// is unmapped with that handle. Ids never mapped here are ignored.
pub(crate) fn forget(ids: impl Iterator<Item = u64>) {
    let mut unmap = Vec::new();
    let mut in_use = Vec::new();
    {
        let mut table = mapped();
        for id in ids {
            unmap.extend(table.kept.take(id));
            match table.live.get(&id).map(Weak::upgrade) {
                Some(Some(region)) => {
                    region.released.store(true, Ordering::Relaxed);
                    in_use.push(region);
                }
                Some(None) => table.forgotten_dying.push(id),
                None => {}
            }
        }
    }
    // Outside the lock: unmapping takes a while, and a region taken here
    // may have lost its last other handle meanwhile (its drop locks).
    drop(unmap);
    drop(in_use);
}

/// What a region may become once filled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// Sealed against writes: read in place by everyone.
    Frozen,
    /// Writable, with a fixed size.
    Writable,
}

/// Seals every region gets: its size is permanent (the mapping code checks
/// that too), and no seal can be added later.
const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

fn io_error(what: &str, err: io::Error) -> Error {
    Error::new(Repr::Shared(format!("{what}: {err}")))
}

impl Region {
    /// A new region of `len` bytes, filled by `fill` before anyone else
    /// can see it, then sealed as `kind` says.
    pub(crate) fn create(
        len: usize,
        kind: Kind,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Arc<Region>, Error> {
        Self::make(len, kind, |fd| match kind {
            Kind::Frozen => {
                {
                    // Only this process has the fd yet: the fresh mapping
                    // is exclusive. It must be gone before the write seal,
                    // which a writable mapping blocks.
                    let fresh = Mapping::fresh(fd, len)?;
                    fill(fresh.exclusive::<u8>(0, len));
                }
                rustix::fs::fcntl_add_seals(fd, SEALS | SealFlags::WRITE)?;
                Mapping::frozen(fd, len)
            }
            Kind::Writable => {
                rustix::fs::fcntl_add_seals(fd, SEALS)?;
                let map = Mapping::writable(fd, len)?;
                // Not shared yet: exclusive.
                fill(map.exclusive::<u8>(0, len));
                Ok(map)
            }
        })
    }

    /// A new sealed region holding a copy of `bytes`, written into the file
    /// rather than through a mapping: one copy by the kernel into fresh
    /// pages, with no zeroing, page faults or unmapping on the side (16 MiB
    /// copied in 6.5 ms here, against 14 ms through a populated mapping).
    pub(crate) fn frozen_copy(bytes: &[u8]) -> Result<Arc<Region>, Error> {
        Self::make(bytes.len(), Kind::Frozen, |fd| {
            let mut written = 0;
            while written < bytes.len() {
                match rustix::io::pwrite(fd, &bytes[written..], written as u64) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => written += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            rustix::fs::fcntl_add_seals(fd, SEALS | SealFlags::WRITE)?;
            Mapping::frozen(fd, bytes.len())
        })
    }

    /// A new memfd of `len` bytes, given its contents, seals and mapping by
    /// `fill`, as a region of this process.
    fn make(
        len: usize,
        kind: Kind,
        fill: impl FnOnce(BorrowedFd<'_>) -> io::Result<Mapping>,
    ) -> Result<Arc<Region>, Error> {
        let made = (|| {
            let fd = rustix::fs::memfd_create(
                REGION_NAME,
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )?;
            rustix::fs::ftruncate(&fd, len as u64)?;
            let map = fill(fd.as_fd())?;
            let id = rustix::fs::fstat(&fd)?.st_ino;
            io::Result::Ok((fd, map, id))
        })();
        let (fd, map, id) =
            made.map_err(|err| io_error("could not create a shared memory region", err))?;
        let region = Arc::new(Region {
            id,
            home: me(),
            fd: Some(fd),
            map,
            kind,
            leased_here: RwLock::default(),
            sent: AtomicBool::new(false),
            released: AtomicBool::new(false),
        });
        mapped().live.insert(id, Arc::downgrade(&region));
        Ok(region)
    }

    /// The region a handle names, mapped (or found mapped, or kept) here.
    ///
    /// The table stays locked throughout, so an `UNMAP` for the region
    /// ([`forget`]) comes either before (then the home process has closed
    /// its fd, and opening it fails) or after (then it finds the mapping).
    fn open(wire: &Wire) -> Result<Arc<Region>, String> {
        let mut table = mapped();
        if let Some(region) = table.live.get(&wire.id).and_then(Weak::upgrade) {
            return Ok(region);
        }
        if wire.home == me() {
            return Err(format!(
                "shared region {} no longer exists in this process",
                wire.id
            ));
        }
        // A kept mapping is of the same file: its id is the inode number,
        // unique among live files, and the mapping keeps the file alive.
        // Its length and kind are checked all the same: should inode
        // numbers ever wrap around (2^32 memfds), a stale mapping may give
        // wrong bytes, but never a read past its end.
        let kept = table.kept.take(wire.id).filter(|kept| {
            kept.map.is_frozen() != wire.writable && kept.map.len() as u64 == wire.len
        });
        let map = match kept {
            Some(kept) => kept.map,
            None => {
                let map = Self::map_from_home(wire)?;
                MAPS_MADE.fetch_add(1, Ordering::Relaxed);
                map
            }
        };
        let region = Arc::new(Region {
            id: wire.id,
            home: wire.home,
            fd: None,
            map,
            kind: if wire.writable {
                Kind::Writable
            } else {
                Kind::Frozen
            },
            leased_here: RwLock::default(),
            sent: AtomicBool::new(false),
            released: AtomicBool::new(false),
        });
        table.live.insert(wire.id, Arc::downgrade(&region));
        Ok(region)
    }

    /// Maps the region a handle names, through its home process's fd.
    fn map_from_home(wire: &Wire) -> Result<Mapping, String> {
        let len = usize::try_from(wire.len).map_err(|_| "a shared region too large".to_string())?;
        let path = format!("/proc/{}/fd/{}", wire.home, wire.fd);
        let opened = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(wire.writable)
                .open(&path)?;
            let id = rustix::fs::fstat(&file)?.st_ino;
            if id != wire.id {
                return Err(io::Error::other(format!(
                    "it is another file (inode {id}, not {})",
                    wire.id
                )));
            }
            match wire.writable {
                true => Mapping::writable(file.as_fd(), len),
                false => Mapping::frozen(file.as_fd(), len),
            }
            // The fd closes here; the mapping keeps the file.
        })();
        opened.map_err(|err| {
            format!(
                "could not map shared region {} of process {} (through {path}): {err}; shared \
                 memory reaches only workers on this machine, started by the pool's process",
                wire.id, wire.home
            )
        })
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.kind == Kind::Writable
    }

    /// Whether this process created it (and so keeps its fd).
    pub(crate) fn is_home(&self) -> bool {
        self.fd.is_some()
    }

    /// Writes the region's handle; only while a request is encoded, which
    /// then carries the region (see the module docs).
    pub(crate) fn serialize<S: Serializer>(
        self: &Arc<Self>,
        writable: bool,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(fd) = &self.fd else {
            return Err(serde::ser::Error::custom(
                "a shared memory handle cannot leave the worker it was sent to (create it in \
                 the pool's process and pass it to each task)",
            ));
        };
        let carried = CARRY.with_borrow_mut(|carry| match carry {
            Some(regions) => {
                regions.push(self.clone());
                true
            }
            None => false,
        });
        if !carried {
            return Err(serde::ser::Error::custom(
                "a shared memory handle can only be sent as an argument of a task (Pool::submit, \
                 Pool::map items, procpool::spawn), not in a result or serialized by hand",
            ));
        }
        self.sent.store(true, Ordering::Relaxed);
        use std::os::fd::AsRawFd;
        Wire {
            home: self.home,
            fd: fd.as_raw_fd(),
            id: self.id,
            len: self.map.len() as u64,
            writable,
        }
        .serialize(serializer)
    }

    /// Reads a handle, mapping its region here if it is not yet.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        writable: bool,
    ) -> Result<Arc<Region>, D::Error> {
        use serde::de::Error as _;
        let wire = Wire::deserialize(deserializer)?;
        if wire.writable != writable {
            return Err(D::Error::custom(
                "a read-only shared handle where a writable one was expected, or the reverse",
            ));
        }
        let region = Region::open(&wire).map_err(D::Error::custom)?;
        if region.map.len() as u64 != wire.len {
            return Err(D::Error::custom(
                "a shared handle whose length is not its region's",
            ));
        }
        Ok(region)
    }
}

impl Drop for Region {
    /// Its last handle in this process is gone. At home, the fd closes and,
    /// if a task ever carried it, the workers are told; in a worker, the
    /// mapping is kept for the next task that brings the region, unless
    /// the home process has let it go already.
    fn drop(&mut self) {
        let mut table = mapped();
        if table
            .live
            .get(&self.id)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            table.live.remove(&self.id);
        }
        if let Some(fd) = self.fd.take() {
            drop(table);
            // Closed first: a worker told to forget it can no longer open it.
            drop(fd);
            if self.sent.load(Ordering::Relaxed) {
                released::announce(self.id);
            }
            return;
        }
        let dying = table.forgotten_dying.iter().position(|&id| id == self.id);
        let forgotten = dying.map(|at| table.forgotten_dying.swap_remove(at));
        if self.released.load(Ordering::Relaxed) || forgotten.is_some() {
            return; // unmapped with `self.map`, after the lock
        }
        let map = self.map.take();
        let unmap = table.kept.keep(Kept { id: self.id, map });
        drop(table);
        drop(unmap);
    }
}

/// A handle as it travels.
#[derive(Serialize, Deserialize)]
struct Wire {
    home: u32,
    fd: i32,
    id: u64,
    len: u64,
    writable: bool,
}

thread_local! {
    /// Regions whose handles were serialized into the request being encoded.
    static CARRY: RefCell<Option<Vec<Arc<Region>>>> = const { RefCell::new(None) };
}

/// The regions a request carries: kept alive (their fds open in this
/// process) until it is answered, so its worker can open them.
#[derive(Clone, Default)]
pub(crate) struct Carried(Vec<Arc<Region>>);

impl std::fmt::Debug for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|region| region.id))
            .finish()
    }
}

impl Carried {
    /// Whether it carries nothing (the only check an ordinary task pays).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds what `more` carries (once each).
    pub(crate) fn extend(&mut self, more: Carried) {
        for region in more.0 {
            if !self.0.iter().any(|had| had.id == region.id) {
                self.0.push(region);
            }
        }
    }
}

/// Runs `encode` (a request's encoding), collecting the regions of every
/// shared handle it serializes.
pub(crate) fn carry<R>(encode: impl FnOnce() -> R) -> (R, Carried) {
    let outer = CARRY.replace(Some(Vec::new()));
    let out = encode();
    let mut regions = CARRY.replace(outer).unwrap_or_default();
    if regions.len() > 1 {
        // A map chunk's items often all carry the same table.
        regions.sort_unstable_by_key(|region| region.id);
        regions.dedup_by_key(|region| region.id);
    }
    (out, Carried(regions))
}
