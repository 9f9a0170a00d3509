//! A worker connection's part in channels, as the hub sees it: where the
//! hub's frames for that worker go ([`Peer`]), the pool's handle that
//! routes the worker's channel frames and releases what it held when it is
//! gone ([`Connection`]), and how it died ([`Death`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;

use futures::task::AtomicWaker;

use super::hub::{self, Shared};
use crate::error::{Error, Exit, Repr};
use crate::wire::channel::{self as frames, Role};
use crate::wire::conn::Body;
use crate::wire::frame::Parts;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a worker died, as its channels' receivers are told.
#[derive(Clone, Debug)]
pub(crate) struct Death {
    pub(crate) pid: u32,
    pub(crate) exit: Exit,
    /// The task it was running, if it had started one.
    pub(crate) task: Option<&'static str>,
    /// The pool stopped it: that task was cancelled or timed out.
    pub(crate) stopped: bool,
}

impl Death {
    pub(crate) fn error(&self, ty: &'static str) -> Error {
        Error::new(Repr::PeerDied {
            ty,
            pid: self.pid,
            task: self.task,
            exit: self.exit,
            stopped: self.stopped,
        })
    }
}

/// A worker's connection as the hub sees it: where frames for the worker
/// go (the pool writes them between its requests).
pub(crate) struct Peer {
    pub(super) id: u64,
    /// Largest piece its connection takes.
    piece: usize,
    outbox: Mutex<Vec<u8>>,
    /// Wakes the pool's dispatcher to write the outbox.
    waker: AtomicWaker,
}

impl Peer {
    fn post(&self, frame: impl FnOnce(&mut Vec<u8>)) {
        frame(&mut lock(&self.outbox));
        self.waker.wake();
    }

    pub(super) fn send_message(&self, id: u64, bytes: &[u8]) {
        self.post(|out| frames::pieces(out, frames::DATA, id, bytes, self.piece));
    }

    pub(super) fn send_fault(&self, id: u64, death: &Death) {
        let fault = frames::fault(death.pid, death.exit, death.stopped, death.task);
        self.post(|out| {
            frames::push_piece(out, frames::DATA, id, frames::LAST | frames::FAULT, &fault)
        });
    }

    pub(super) fn send_credit(&self, id: u64, n: u32) {
        self.post(|out| out.extend(frames::control(frames::CREDIT, id, &n.to_le_bytes())));
    }

    pub(super) fn send_closed(&self, id: u64, gone: Role) {
        self.post(|out| out.extend(frames::control(frames::CLOSED, id, &[gone as u8])));
    }
}

/// The pool's handle on one worker connection's part in channels: it routes
/// the worker's channel frames to the hub and takes the hub's frames for
/// the worker. Dropping it (the worker is gone) releases everything the
/// worker held, telling receivers of its death if one was recorded.
pub(crate) struct Connection {
    peer: Arc<Peer>,
    death: Option<Death>,
    /// The channel its last frame was for: a stream of messages looks it
    /// up in the hub once.
    last: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer.id)
            .field("death", &self.death)
            .finish()
    }
}

impl Connection {
    /// A connection whose frames may be up to `max_frame` body bytes.
    pub(crate) fn new(max_frame: u64) -> Connection {
        Connection {
            peer: Arc::new(Peer {
                id: hub::next_peer_id(),
                piece: frames::piece_for(max_frame),
                outbox: Mutex::default(),
                waker: AtomicWaker::new(),
            }),
            death: None,
            last: None,
        }
    }

    /// Routes a channel frame the worker sent; `Err` says how it broke
    /// the protocol.
    pub(crate) fn route(&mut self, body: Body) -> Result<(), String> {
        let (kind, id) = {
            let parts = Parts::of(body.bytes())?;
            (parts.kind, parts.id)
        };
        let cached = self
            .last
            .as_ref()
            .filter(|last| last.id == id && !last.forgotten.load(Relaxed));
        if cached.is_none() {
            self.last = hub::find(id);
        }
        match &self.last {
            Some(shared) if kind == frames::SEND => shared.on_send(&self.peer, body),
            Some(shared) => shared.on_frame(&self.peer, Parts::of(body.bytes())?),
            // Gone once nobody held it: a goodbye or a message given back
            // after that is late, not wrong.
            None if matches!(kind, frames::CLOSE | frames::RETURN) => Ok(()),
            None => Err(format!(
                "a frame of kind 0x{kind:02x} for channel {id}, which does not exist"
            )),
        }
    }

    /// Frames the hub has for the worker, if any; wakes `cx` when more come.
    pub(crate) fn take_outgoing(&self, cx: &mut Context<'_>) -> Option<Vec<u8>> {
        self.peer.waker.register(cx.waker());
        let mut outbox = lock(&self.peer.outbox);
        (!outbox.is_empty()).then(|| std::mem::take(&mut *outbox))
    }

    /// Records how the worker died, for its channels' receivers.
    pub(crate) fn died(&mut self, death: Death) {
        self.death = Some(death);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for shared in hub::all() {
            shared.lose(&self.peer, self.death.as_ref());
        }
    }
}
