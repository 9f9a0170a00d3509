//! How the pool's process tells its workers that it let a region go, so
//! that they unmap what they [kept](super::kept) of it.
//!
//! A region that was ever sent in a task's arguments is *announced* when
//! its last handle in its home process drops (jobs hold their regions
//! until answered, so by then no task can bring it again). Every live
//! worker connection in this process ([`Releases`], one per pool slot and
//! per [`Process`](crate::Process)) gets the id and writes it in an
//! `UNMAP` frame at its next flush; a worker that never mapped it ignores
//! it. Regions dropped without ever being sent cost nothing here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Context;

use futures::task::AtomicWaker;

use crate::wire::unmap;

/// Ids waiting to be written to one worker, beyond which more are not
/// queued: the worker's own bound ([`MAX_KEPT`](super::kept::MAX_KEPT))
/// still limits what it keeps, so the queue never grows without end
/// behind a worker that is not being written to.
const MAX_PENDING: usize = 1 << 16;

/// One worker connection's share of the announcements.
#[derive(Default)]
struct Inbox {
    ids: Mutex<Vec<u64>>,
    /// Set with every push, so a flush with nothing new takes no lock.
    pending: AtomicBool,
    waker: AtomicWaker,
}

static LISTENERS: Mutex<Vec<Weak<Inbox>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker connection's feed of released regions, from the moment it is
/// made: nothing sent to the worker before then could carry a region.
pub(crate) struct Releases(Arc<Inbox>);

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releases")
            .field("pending", &self.0.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Releases {
    pub(crate) fn listen() -> Releases {
        let inbox = Arc::new(Inbox::default());
        let mut listeners = lock(&LISTENERS);
        // Pruned here too, so workers coming and going without any
        // announcement do not pile up.
        listeners.retain(|listener| listener.strong_count() > 0);
        listeners.push(Arc::downgrade(&inbox));
        Releases(inbox)
    }

    /// The `UNMAP` frames for what was released since the last call, if
    /// anything was; arranges for the task of `cx` to be woken when more
    /// is.
    pub(crate) fn take(&self, cx: &mut Context<'_>) -> Option<Vec<u8>> {
        self.0.waker.register(cx.waker());
        if !self.0.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        let ids = std::mem::take(&mut *lock(&self.0.ids));
        (!ids.is_empty()).then(|| unmap::encode(&ids))
    }
}

/// Region `id`, once sent to workers, has no handle left in the pool's
/// process, and its fd there is closed.
pub(super) fn announce(id: u64) {
    let listeners: Vec<Arc<Inbox>> = {
        let mut listeners = lock(&LISTENERS);
        listeners.retain(|listener| listener.strong_count() > 0);
        listeners.iter().filter_map(Weak::upgrade).collect()
    };
    for inbox in listeners {
        {
            let mut ids = lock(&inbox.ids);
            if ids.len() < MAX_PENDING {
                ids.push(id);
            }
        }
        inbox.pending.store(true, Ordering::Release);
        inbox.waker.wake();
    }
}
