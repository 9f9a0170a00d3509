//! A region: one anonymous memfd, mapped once per process and cached by id
//! (its inode number) for as long as a handle to it lives there.
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
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock, Weak};

use rustix::fs::{MemfdFlags, SealFlags};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("id", &self.id)
            .field("len", &self.map.len())
            .finish()
    }
}

/// The regions mapped in this process, by id.
static MAPPED: LazyLock<Mutex<HashMap<u64, Weak<Region>>>> = LazyLock::new(Default::default);

fn mapped() -> std::sync::MutexGuard<'static, HashMap<u64, Weak<Region>>> {
    MAPPED.lock().unwrap_or_else(PoisonError::into_inner)
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
    mapped().values().filter_map(Weak::upgrade).collect()
}

/// What a region may become once filled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// Sealed against writes: read in place by everyone.
    Frozen,
    /// Writable, with a fixed size.
    Writable,
}

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
        let made = (|| {
            let fd = rustix::fs::memfd_create(
                "procpool-shared",
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )?;
            rustix::fs::ftruncate(&fd, len as u64)?;
            let fixed = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
            let map = match kind {
                Kind::Frozen => {
                    {
                        // Only this process has the fd yet: the fresh
                        // mapping is exclusive. It must be gone before the
                        // write seal, which a writable mapping blocks.
                        let fresh = Mapping::fresh(fd.as_fd(), len)?;
                        fill(fresh.exclusive::<u8>(0, len));
                    }
                    rustix::fs::fcntl_add_seals(&fd, fixed | SealFlags::WRITE)?;
                    Mapping::frozen(fd.as_fd(), len)?
                }
                Kind::Writable => {
                    rustix::fs::fcntl_add_seals(&fd, fixed)?;
                    let map = Mapping::writable(fd.as_fd(), len)?;
                    // Not shared yet: exclusive.
                    fill(map.exclusive::<u8>(0, len));
                    map
                }
            };
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
        });
        mapped().insert(id, Arc::downgrade(&region));
        Ok(region)
    }

    /// The region a handle names, mapped (or found mapped) here.
    fn open(wire: &Wire) -> Result<Arc<Region>, String> {
        let mut regions = mapped();
        if let Some(region) = regions.get(&wire.id).and_then(Weak::upgrade) {
            return Ok(region);
        }
        if wire.home == me() {
            return Err(format!(
                "shared region {} no longer exists in this process",
                wire.id
            ));
        }
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
        let map = opened.map_err(|err| {
            format!(
                "could not map shared region {} of process {} (through {path}): {err}; shared \
                 memory reaches only workers on this machine, started by the pool's process",
                wire.id, wire.home
            )
        })?;
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
        });
        regions.insert(wire.id, Arc::downgrade(&region));
        Ok(region)
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
    fn drop(&mut self) {
        let mut regions = mapped();
        if regions
            .get(&self.id)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            regions.remove(&self.id);
        }
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
