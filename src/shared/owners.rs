//! What the pool does when one of its children dies: the locks it held are
//! poisoned and its leases end, in every writable region of this process.
//!
//! Pid reuse cannot make this poison a live process's lock: it runs from the
//! reap itself, after the dead child (and its process group) was killed and
//! *before* `waitid` reaps it, while the zombie still holds its pid. So
//! every word naming that pid was written by the dead child (or a `fork()`
//! copy of it, which writes the same identity and was killed with it); no
//! other process can have that pid until the reap, which comes after.

use super::region;
use super::{lease, word};

/// `pid`, a child of this process, has died and is not reaped yet.
pub(crate) fn died(pid: u32) {
    let regions = region::live();
    for region in regions
        .iter()
        .filter(|region| region.is_home() && region.is_writable())
    {
        word::poison_if_held_by(region, pid);
        lease::reclaim(region, pid);
    }
    // The handles taken here drop now, outside the table's lock.
    drop(regions);
}
