//! The host: every shared object lives in the process that created its
//! [`Manager`](super::Manager) (the pool's process), in one table of this
//! process keyed by random ids. Handles here use an object directly;
//! handles in workers reach it through calls their worker's connection
//! carries ([`Peer`](super::peer::Peer)), routed here by the pool.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::peer::Outbox;
use super::state::{Answer, Kind, Outcome, Parked, State};
use super::wire::{Failure, Op, Reply, Request};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change to an object is made whole before anything that can
    // panic runs (update functions run under `catch_unwind`), so a
    // poisoned lock still guards a consistent object.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the answer to a waiting caller goes.
pub(crate) enum To {
    /// A caller in this process, awaiting it.
    Here(oneshot::Sender<Reply>),
    /// A thread of a task in a worker, blocked on its call `call`.
    Worker { out: Arc<Outbox>, call: u64 },
}

impl Answer for To {
    fn answer(self, reply: Reply) -> Result<(), Reply> {
        match self {
            To::Here(sender) => sender.send(reply),
            To::Worker { out, call } => out.push(call, reply),
        }
    }

    fn is_gone(&self) -> bool {
        match self {
            To::Here(sender) => sender.is_closed(),
            To::Worker { out, .. } => out.is_gone(),
        }
    }
}

/// One manager: whether it is still there, and the objects it made.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    closed: AtomicBool,
    objects: Mutex<Vec<u64>>,
    /// What keeps it open, while anything here holds it.
    keep: Mutex<Weak<Keep>>,
}

/// A hold on a manager that keeps it open: the `Manager` and every handle
/// in this process have one. The last one to go ends it.
#[derive(Debug)]
pub(crate) struct Keep(Arc<Shared>);

impl Keep {
    /// A new manager, and the first hold on it.
    pub(crate) fn open() -> Arc<Keep> {
        let shared = Arc::new(Shared::default());
        let keep = Arc::new(Keep(shared.clone()));
        *lock(&shared.keep) = Arc::downgrade(&keep);
        keep
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// One shared object.
pub(crate) struct Object {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    manager: Arc<Shared>,
    state: Mutex<State<To>>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

struct Table {
    objects: Mutex<HashMap<u64, Arc<Object>>>,
    next_object: AtomicU64,
    /// Keys object ids: a task that knows one object's id cannot guess
    /// another's (ids are capabilities, not a counter).
    ids: RandomState,
    next_parked: AtomicU64,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    objects: Mutex::default(),
    next_object: AtomicU64::new(1),
    ids: RandomState::new(),
    next_parked: AtomicU64::new(1),
});

/// The object with id `id`, if its manager is still there.
pub(crate) fn find(id: u64) -> Option<Arc<Object>> {
    lock(&TABLE.objects).get(&id).cloned()
}

impl Shared {
    /// Makes an object of `manager`'s holding `state`.
    pub(crate) fn create(self: &Arc<Shared>, state: State<To>) -> Arc<Object> {
        let serial = TABLE.next_object.fetch_add(1, Relaxed);
        let id = TABLE.ids.hash_one(serial).max(1);
        let object = Arc::new(Object {
            id,
            kind: state.kind(),
            manager: self.clone(),
            state: Mutex::new(state),
        });
        let mut objects = lock(&self.objects);
        if !self.closed.load(Relaxed) {
            // A closed manager's objects stay out of the table: every call
            // on them is `Gone`.
            lock(&TABLE.objects).insert(id, object.clone());
            objects.push(id);
        }
        object
    }

    /// Ends the manager: its objects leave the table, and every call on
    /// them, waiting or to come, fails with [`Failure::Gone`].
    pub(crate) fn shutdown(&self) {
        let ids = {
            let mut objects = lock(&self.objects);
            self.closed.store(true, Relaxed);
            std::mem::take(&mut *objects)
        };
        let gone: Vec<Arc<Object>> = {
            let mut table = lock(&TABLE.objects);
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for object in gone {
            object.with_state(|state| state.fail_all(&Failure::Gone));
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

/// What serving a request came to.
pub(crate) enum Served {
    Now(Reply),
    /// The caller waits in the object's line as number `id`.
    Parked(u64),
}

impl Object {
    /// A hold on its manager, if it is still open.
    pub(crate) fn keep(&self) -> Option<Arc<Keep>> {
        lock(&self.manager.keep).upgrade()
    }

    /// Runs `f` on the state, then serves whoever it let go.
    fn with_state<R>(&self, f: impl FnOnce(&mut State<To>) -> R) -> R {
        let mut state = lock(&self.state);
        let out = f(&mut state);
        state.grant();
        out
    }

    /// Applies `request` from connection `peer` (0: this process); if the
    /// caller must wait, `to` says where its answer will go.
    pub(crate) fn serve(
        &self,
        request: &Request<'_>,
        peer: u64,
        to: impl FnOnce() -> To,
    ) -> Served {
        if self.manager.is_closed() {
            return Served::Now(Err(Failure::Gone));
        }
        if request.kind != self.kind as u8 {
            return Served::Now(Err(Failure::Misuse(format!(
                "a call for another kind of object (kind {}) on a {:?}: a handle decoded as the \
                 wrong type",
                request.kind, self.kind
            ))));
        }
        self.with_state(|state| match state.apply(request, peer) {
            Outcome::Reply(reply) => Served::Now(reply),
            Outcome::Wait(waiting) => {
                let id = TABLE.next_parked.fetch_add(1, Relaxed);
                let to = to();
                state.park(waiting, Parked { id, peer, to });
                Served::Parked(id)
            }
        })
    }

    /// Caller `id` waited `after` in vain: it leaves the line with a
    /// [`Failure::TimedOut`], unless it was served meanwhile.
    pub(crate) fn expire(&self, id: u64, after: Duration) {
        let parked = lock(&self.state).unpark(id);
        if let Some(parked) = parked {
            let _ = parked.to.answer(Err(Failure::TimedOut(after)));
        }
    }

    /// Undoes what `op` granted a caller here that left before seeing it.
    pub(crate) fn give_back(&self, op: Op, granted: Vec<u8>) {
        self.with_state(|state| state.give_back(op, granted));
    }

    /// Connection `peer` is gone (its worker died or was let go): see
    /// [`State::peer_gone`].
    pub(crate) fn peer_gone(&self, peer: u64, why: &str) {
        self.with_state(|state| state.peer_gone(peer, why));
    }
}
