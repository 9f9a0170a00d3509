//! What a worker keeps mapped of the pool's regions once no handle to them
//! is left in it: the next task that brings the same region (a table sent
//! to every task) finds it mapped, instead of mapping and populating its
//! pages again (1.3 ms per 16 MiB on this VM, then 0.5 ms to unmap: most
//! of W3b before this cache).
//!
//! A kept mapping goes when the pool's process lets its region go (its
//! `UNMAP` frame, see [`released`](super::released)), or when newer ones
//! push it out: a worker keeps at most [`MAX_KEPT`] regions and
//! [`MAX_KEPT_BYTES`], and under an address-space limit
//! ([`max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker),
//! which counts mappings) at most a quarter of it, so a pool that holds a
//! hundred big regions does not make every worker map all of them, and a
//! task's own allocations keep most of the limit. Least recently used
//! goes first. Mappings in use by a handle are not counted: they are
//! mapped anyway.

use std::collections::VecDeque;

use crate::sys::Mapping;

/// Most regions a worker keeps mapped with no handle to them.
pub(crate) const MAX_KEPT: usize = 8;
/// Most bytes a worker keeps mapped with no handle to them.
pub(crate) const MAX_KEPT_BYTES: usize = 1 << 30;

/// A mapping of a region no handle in this process uses.
pub(super) struct Kept {
    pub(super) id: u64,
    pub(super) map: Mapping,
}

/// The kept mappings, least recently used first.
#[derive(Default)]
pub(super) struct Shelf {
    kept: VecDeque<Kept>,
}

impl Shelf {
    /// Keeps `kept` (in place of an older mapping of the same region);
    /// returns what no longer fits, to be unmapped by the caller (outside
    /// the table's lock).
    pub(super) fn keep(&mut self, kept: Kept) -> Vec<Kept> {
        let mut out: Vec<Kept> = self.take(kept.id).into_iter().collect();
        self.kept.push_back(kept);
        let budget = byte_budget();
        let mut bytes: usize = self.kept.iter().map(|kept| kept.map.len()).sum();
        while self.kept.len() > MAX_KEPT || bytes > budget {
            let oldest = self.kept.pop_front().expect("over budget, so not empty");
            bytes -= oldest.map.len();
            out.push(oldest);
        }
        out
    }

    /// The kept mapping of region `id`, if there is one; it is no longer
    /// kept.
    pub(super) fn take(&mut self, id: u64) -> Option<Kept> {
        let at = self.kept.iter().position(|kept| kept.id == id)?;
        self.kept.remove(at)
    }
}

/// What kept mappings may add up to: [`MAX_KEPT_BYTES`], or a quarter of
/// this process's address-space limit if that is less.
fn byte_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::As).current;
    let quarter = limit.map_or(usize::MAX, |bytes| {
        usize::try_from(bytes / 4).unwrap_or(usize::MAX)
    });
    MAX_KEPT_BYTES.min(quarter)
}
