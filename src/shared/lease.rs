//! Range leases: the table in a writable region's header that makes a
//! leased `&mut [T]` exclusive across processes.
//!
//! The table has [`SLOTS`] slots, each an owner word and a byte range, all
//! atomics. Taking a lease is lock-free, Dekker-style: claim a free slot,
//! publish the range in it, then scan every other slot (all `SeqCst`). Of two
//! processes asking for overlapping ranges at once, the one that published
//! second sees the first in its scan, so both cannot succeed (both may fail:
//! then each backs off and, in the blocking forms, tries again). A slot whose
//! range is not published yet is skipped: its owner scans after publishing,
//! and will see us.
//!
//! Within one process, the table excludes overlapping leases too; besides,
//! the process records its leased ranges in [`Region::leased_here`] before
//! handing out the `&mut`, and the atomic element operations look there
//! first, so no `&AtomicT` ever aliases a leased element in this process.

use std::ops::Range;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::region::{Region, me};
use super::word::{self, LEASES_CHANGED};

/// How many leases a region can have at once.
pub(crate) const SLOTS: usize = 64;
/// Where the table starts in the header.
const TABLE: usize = 64;

/// Owner word states (high half; the low half is the owner's pid).
const CLAIMED: u64 = 1 << 32;
const PUBLISHED: u64 = 2 << 32;
const HELD: u64 = 3 << 32;
const STATE: u64 = 0xFFFF_FFFF << 32;

/// Why a lease was not granted.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Overlaps the lease of this process (a pid).
    Overlap { holder: u32 },
    /// Every slot is taken.
    Full,
}

fn slot(region: &Region, index: usize) -> &[AtomicU64] {
    region.map.atomics::<AtomicU64>(TABLE + index * 24, 3)
}

/// Tries to lease bytes `range` for this process; `Ok(slot)` on success.
pub(crate) fn try_take(region: &Region, range: Range<usize>) -> Result<usize, Refused> {
    let me = u64::from(me());
    let (start, end) = (range.start as u64, range.end as u64);
    let mine = (0..SLOTS)
        .find(|&at| {
            slot(region, at)[0]
                .compare_exchange(0, me | CLAIMED, SeqCst, SeqCst)
                .is_ok()
        })
        .ok_or(Refused::Full)?;
    let own = slot(region, mine);
    own[1].store(start, SeqCst);
    own[2].store(end, SeqCst);
    own[0].store(me | PUBLISHED, SeqCst);
    for other in (0..SLOTS).filter(|&at| at != mine) {
        let theirs = slot(region, other);
        let owner = theirs[0].load(SeqCst);
        if owner & STATE != PUBLISHED && owner & STATE != HELD {
            continue;
        }
        let (their_start, their_end) = (theirs[1].load(SeqCst), theirs[2].load(SeqCst));
        if their_start < end && start < their_end {
            release(region, mine);
            return Err(Refused::Overlap {
                holder: owner as u32,
            });
        }
    }
    // Recorded here before the `&mut` exists (see the module docs).
    let mut here = region
        .leased_here
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    here.push(range);
    drop(here);
    own[0].store(me | HELD, SeqCst);
    Ok(mine)
}

/// Ends the lease in `slot` (taken by [`try_take`] for `range`).
pub(crate) fn give_back(region: &Region, at: usize, range: &Range<usize>) {
    let mut here = region
        .leased_here
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(pos) = here.iter().position(|held| held == range) {
        here.swap_remove(pos);
    }
    drop(here);
    release(region, at);
}

fn release(region: &Region, at: usize) {
    slot(region, at)[0].store(0, SeqCst);
    changed(region);
}

fn changed(region: &Region) {
    word::word(region, LEASES_CHANGED).fetch_add(1, SeqCst);
    word::wake_all(region, LEASES_CHANGED);
}

/// What a blocked request waits on: read it before trying, and wait while
/// it still reads the same.
pub(crate) fn generation(region: &Region) -> u32 {
    word::word(region, LEASES_CHANGED).load(SeqCst)
}

/// `dead` has died unreaped: its leases end (what it wrote stays).
pub(crate) fn reclaim(region: &Region, dead: u32) {
    let mut any = false;
    for at in 0..SLOTS {
        let owner = &slot(region, at)[0];
        let seen = owner.load(SeqCst);
        if seen != 0
            && seen as u32 == dead
            && owner.compare_exchange(seen, 0, SeqCst, SeqCst).is_ok()
        {
            any = true;
        }
    }
    if any {
        changed(region);
    }
}

/// Whether `offset` (a byte) is leased in this process.
pub(crate) fn leased_here(here: &[Range<usize>], offset: usize) -> bool {
    here.iter().any(|range| range.contains(&offset))
}
