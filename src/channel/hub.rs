//! The hub: every channel lives in the process that created it (the pool's
//! process), which holds its buffer and knows who may still send and
//! receive. Endpoints in this process use it directly; endpoints in
//! workers reach it through frames their worker's connection carries
//! ([`Peer`]), routed here by the pool.
//!
//! Memory is bounded by credit: the buffer takes `capacity` messages from
//! this process's senders, and a worker's sender may send only what it was
//! granted, at most [`WINDOW`] ahead, granted only while the buffer has
//! room. A worker's receiver asks for each message, so nothing is pushed at
//! a worker that is not waiting for it.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::peer::{Death, Peer};
use crate::error::{Error, Repr};
use crate::wire::channel::{self as frames, Role};
use crate::wire::conn::Body;
use crate::wire::frame::{self, Parts};

/// Credit a worker's sender may hold at once, in messages.
pub(crate) const WINDOW: u32 = 256;
/// The largest message a worker may send, in bytes.
pub(crate) const MAX_MESSAGE: usize = 1 << 30;
/// Messages a worker's receivers may ask for at once on one channel.
const MAX_DEMAND: u32 = 1 << 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Hub {
    channels: Mutex<HashMap<u64, Arc<Shared>>>,
    next_channel: AtomicU64,
    /// Keys channel ids: a task that knows its own channel's id cannot
    /// guess another's (ids are capabilities, not a counter).
    ids: RandomState,
    next_peer: AtomicU64,
}

static HUB: LazyLock<Hub> = LazyLock::new(|| Hub {
    channels: Mutex::default(),
    next_channel: AtomicU64::new(1),
    ids: RandomState::new(),
    next_peer: AtomicU64::new(1),
});

/// The channel with id `id`, if it is still held by anyone.
pub(crate) fn find(id: u64) -> Option<Arc<Shared>> {
    lock(&HUB.channels).get(&id).cloned()
}

/// Every channel held by anyone.
pub(super) fn all() -> Vec<Arc<Shared>> {
    lock(&HUB.channels).values().cloned().collect()
}

/// An id for a new worker connection.
pub(super) fn next_peer_id() -> u64 {
    HUB.next_peer.fetch_add(1, Relaxed)
}

/// One channel: its buffer and its holders.
pub(crate) struct Shared {
    pub(crate) id: u64,
    /// The message type's name, for errors.
    pub(crate) ty: &'static str,
    capacity: usize,
    state: Mutex<State>,
    /// Dropped from the hub: no endpoint is left anywhere.
    pub(super) forgotten: AtomicBool,
}

/// What a buffer holds: a message, or the news that a sender died (in
/// the order it happened, so a receiver sees it after what came before).
enum Item {
    Message(Message),
    Died(Death),
}

/// An encoded message: `buf[at..]`. A message that came in one piece is
/// the frame's own buffer, as the connection read it: not copied.
#[derive(Debug)]
pub(crate) struct Message {
    buf: Vec<u8>,
    at: usize,
}

impl Message {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.at..]
    }
}

impl From<Vec<u8>> for Message {
    fn from(buf: Vec<u8>) -> Message {
        Message { buf, at: 0 }
    }
}

/// A worker holding one side or both, and what is between it and the
/// channel.
struct Member {
    peer: Arc<Peer>,
    /// Which sides it holds (index: `Role as usize`).
    holds: [bool; 2],
    /// Credit granted to its sender and not used yet.
    credit: u32,
    /// Its sender waits for credit until there is room.
    starved: bool,
    /// A message part-way in from it.
    partial: Option<Vec<u8>>,
    /// Messages its receivers asked for and have not been sent.
    wanted: u32,
    /// Messages sent to it that it has not given back: what it may still
    /// give back (`RETURN`), so a worker cannot put in what it never got.
    unreturned: u64,
    /// A message part-way back from it (given back in pieces).
    returning: Option<Vec<u8>>,
    /// News of dead senders sent to it that it may still give back.
    faults: Vec<Death>,
    /// Where in `items` the next item it gives back goes: behind those it
    /// gave back before and that are still there (it gives back oldest
    /// first, also what arrives after its receiver closed), ahead of
    /// everything it was never sent.
    return_at: usize,
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    /// The `Message`s among `items` (what `capacity` bounds).
    messages: usize,
    /// Endpoints of each side in this process (and in requests on their
    /// way to a worker).
    local: [usize; 2],
    /// Workers holding either side (few: a linear search beats hashing).
    members: Vec<Member>,
    /// Members holding each side.
    held: [usize; 2],
    /// Tasks in this process waiting for an item, or for room.
    recv_wakers: Vec<Waker>,
    send_wakers: Vec<Waker>,
    /// Workers' receivers waiting, one entry per message asked for.
    demands: VecDeque<Arc<Peer>>,
    /// Every sender is gone and the buffer is empty: receivers were told.
    ended: bool,
    /// Every receiver is gone: senders were told.
    deserted: bool,
}

impl Shared {
    /// A new channel, held by nobody yet.
    pub(crate) fn create(capacity: usize, ty: &'static str) -> Arc<Shared> {
        let mut channels = lock(&HUB.channels);
        let id = loop {
            let id = HUB.ids.hash_one(HUB.next_channel.fetch_add(1, Relaxed));
            if id != 0 && !channels.contains_key(&id) {
                break id;
            }
        };
        let shared = Arc::new(Shared {
            id,
            ty,
            capacity: capacity.max(1),
            state: Mutex::default(),
            forgotten: AtomicBool::new(false),
        });
        channels.insert(id, shared.clone());
        shared
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// One more holder of `role` in this process.
    pub(crate) fn hold(&self, role: Role) {
        self.state().local[role as usize] += 1;
    }

    /// One holder of `role` in this process fewer.
    pub(crate) fn release(&self, role: Role) {
        let mut state = self.state();
        state.local[role as usize] -= 1;
        self.settle(&mut state);
        self.forget_if_unheld(&state);
    }

    /// Drops the channel from the hub once nobody holds either side.
    fn forget_if_unheld(&self, state: &State) {
        if !state.any(Role::Sender) && !state.any(Role::Receiver) {
            self.forgotten.store(true, Relaxed);
            lock(&HUB.channels).remove(&self.id);
        }
    }

    fn closed(&self, senders_gone: bool) -> Error {
        Error::new(Repr::Closed {
            ty: self.ty,
            senders_gone,
        })
    }

    /// The next item for a receiver in this process: a message, the death
    /// of a sender, or `Closed` once every sender is gone and all was read.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        let mut state = self.state();
        if let Some(item) = state.pop() {
            self.settle(&mut state);
            return Poll::Ready(match item {
                Item::Message(bytes) => Ok(bytes),
                Item::Died(death) => Err(death.error(self.ty)),
            });
        }
        if !state.any(Role::Sender) {
            return Poll::Ready(Err(self.closed(true)));
        }
        push_waker(&mut state.recv_wakers, cx);
        Poll::Pending
    }

    /// `Ready(Ok)` once the buffer has room for a message from this process.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut state = self.state();
        if !state.any(Role::Receiver) {
            return Poll::Ready(Err(self.closed(false)));
        }
        if state.messages < self.capacity {
            return Poll::Ready(Ok(()));
        }
        push_waker(&mut state.send_wakers, cx);
        Poll::Pending
    }

    /// Puts a message from this process in the buffer (after
    /// [`poll_room`](Self::poll_room) said there was room; a race with
    /// another sender may overfill it by one message each).
    pub(crate) fn push(&self, bytes: Vec<u8>) -> Result<(), Error> {
        let mut state = self.state();
        if !state.any(Role::Receiver) {
            return Err(self.closed(false));
        }
        state.push_back(Item::Message(Message { buf: bytes, at: 0 }));
        self.settle(&mut state);
        Ok(())
    }

    /// Acts on a frame a worker sent about this channel.
    pub(super) fn on_frame(&self, peer: &Arc<Peer>, parts: Parts<'_>) -> Result<(), String> {
        let mut state = self.state();
        match parts.kind {
            frames::OPEN => {
                let role = frames::parse_role(parts.payload)?;
                state.join(peer, role);
                // It arrived after its other side had gone.
                if role == Role::Sender && state.deserted {
                    peer.send_closed(self.id, Role::Receiver);
                }
                if role == Role::Receiver && state.ended {
                    peer.send_closed(self.id, Role::Sender);
                }
            }
            frames::CLOSE => {
                let role = frames::parse_role(parts.payload)?;
                state.leave(peer.id, role);
            }
            frames::FORGET => {
                // Sent after its last CLOSE: it holds nothing here. What it
                // was granted is void (it zeroed its own count); what it may
                // still give back keeps it known.
                if let Some(at) = state.members.iter().position(|m| m.peer.id == peer.id) {
                    let member = &mut state.members[at];
                    if member.holds != [false; 2] {
                        return Err(format!(
                            "a FORGET of channel {} while it holds an endpoint of it",
                            self.id
                        ));
                    }
                    member.credit = 0;
                    member.starved = false;
                    if member.unreturned == 0 && member.faults.is_empty() {
                        state.members.swap_remove(at);
                    }
                }
                peer.send_forgotten(self.id);
            }
            frames::SEND => unreachable!("messages go to on_send"),
            frames::WANT => match frames::parse_want(parts.payload)? {
                (role, n) if state.holding(peer.id, role).is_none() => {
                    return Err(format!(
                        "a WANT of {n} on channel {} as a {role:?} it does not hold",
                        self.id
                    ));
                }
                (Role::Sender, _) if state.deserted => {}
                (Role::Sender, _) => {
                    state.holding(peer.id, Role::Sender).expect("held").starved = true
                }
                (Role::Receiver, n) => {
                    let member = state.holding(peer.id, Role::Receiver).expect("held");
                    if member.wanted.saturating_add(n) > MAX_DEMAND {
                        return Err(format!("more than {MAX_DEMAND} receives waiting"));
                    }
                    member.wanted += n;
                    for _ in 0..n {
                        state.demands.push_back(peer.clone());
                    }
                }
            },
            frames::RETURN => {
                // A piece of a message it had asked for and no longer
                // wants: once whole, first in line again.
                let (flags, bytes) = frames::parse_piece(parts.payload)?;
                if flags & frames::FAULT != 0 {
                    // The news of a dead sender, not taken: the death it
                    // was sent for, first in line again.
                    let member = state
                        .members
                        .iter_mut()
                        .find(|member| member.peer.id == peer.id)
                        .ok_or("a fault given back by a worker never sent one")?;
                    let at = member
                        .faults
                        .iter()
                        .position(|death| death.encode() == bytes)
                        .ok_or("a fault given back that was never sent")?;
                    let death = member.faults.swap_remove(at);
                    if state.any(Role::Receiver) {
                        state.give_back(peer.id, Item::Died(death));
                    }
                    self.settle(&mut state);
                    self.forget_if_unheld(&state);
                    return Ok(());
                }
                let member = state
                    .members
                    .iter_mut()
                    .find(|member| member.peer.id == peer.id && member.unreturned > 0)
                    .ok_or_else(|| {
                        format!(
                            "a message given back on channel {} it was never sent",
                            self.id
                        )
                    })?;
                let mut buf = member.returning.take().unwrap_or_default();
                if buf.len() + bytes.len() > MAX_MESSAGE {
                    return Err(format!("a message given back over {MAX_MESSAGE} bytes"));
                }
                buf.extend_from_slice(bytes);
                if flags & frames::LAST == 0 {
                    member.returning = Some(buf);
                    return Ok(());
                }
                member.unreturned -= 1;
                if !state.deserted {
                    state.messages += 1;
                    state.give_back(peer.id, Item::Message(Message { buf, at: 0 }));
                }
            }
            kind => return Err(format!("a channel frame of unknown kind 0x{kind:02x}")),
        }
        self.settle(&mut state);
        self.forget_if_unheld(&state);
        Ok(())
    }

    /// Takes a piece of a message a worker sent (a `SEND` frame, whose
    /// buffer becomes the message if it is one whole piece).
    pub(super) fn on_send(&self, peer: &Arc<Peer>, body: Body) -> Result<(), String> {
        let (flags, len) = {
            let parts = Parts::of(body.bytes())?;
            let (flags, bytes) = frames::parse_piece(parts.payload)?;
            (flags, bytes.len())
        };
        if flags & frames::FAULT != 0 {
            return Err("a fault sent as a message".into());
        }
        let at = body.start + frame::PREFIX_LEN + 1;
        let mut state = self.state();
        let member = state
            .holding(peer.id, Role::Sender)
            .ok_or_else(|| format!("a message on channel {} it holds no sender of", self.id))?;
        let partial = match member.partial.take() {
            Some(partial) => Some(partial),
            None if member.credit > 0 => {
                member.credit -= 1;
                None
            }
            None => return Err(format!("a message on channel {} without credit", self.id)),
        };
        let whole = flags & frames::LAST != 0;
        let message = match partial {
            // The common case, a message in one piece: its frame, as read.
            None if whole => Message { buf: body.buf, at },
            partial => {
                let mut partial = partial.unwrap_or_default();
                if partial.len() + len > MAX_MESSAGE {
                    return Err(format!("a message over {MAX_MESSAGE} bytes"));
                }
                partial.extend_from_slice(&body.buf[at..]);
                Message {
                    buf: partial,
                    at: 0,
                }
            }
        };
        if !whole {
            member.partial = Some(message.buf);
        } else if !state.deserted {
            state.push_back(Item::Message(message));
        }
        self.settle(&mut state);
        Ok(())
    }

    /// Moves what can move after a change: items to workers that asked,
    /// credit to workers that wait for it, wake-ups here, and the news of
    /// a side gone to those on the other.
    fn settle(&self, state: &mut State) {
        while !state.items.is_empty()
            && let Some(peer) = state.demands.pop_front()
        {
            let item = state.pop().expect("not empty");
            let member = state
                .members
                .iter_mut()
                .find(|member| member.peer.id == peer.id);
            let member = member.expect("a demand's worker is a member");
            member.wanted -= 1;
            match item {
                Item::Message(message) => {
                    member.unreturned += 1;
                    peer.send_message(self.id, message);
                }
                Item::Died(death) => {
                    peer.send_fault(self.id, &death);
                    member.faults.push(death);
                }
            }
        }
        if state.messages < self.capacity && !state.deserted {
            let room = (self.capacity - state.messages).min(WINDOW as usize) as u32;
            // One that still has credit asked ahead of need: topped up to
            // the room there is, or left waiting until there is more.
            for member in state.members.iter_mut().filter(|member| member.starved) {
                let grant = room.saturating_sub(member.credit);
                if grant > 0 {
                    member.credit += grant;
                    member.starved = false;
                    member.peer.send_credit(self.id, grant);
                }
            }
            wake_all(&mut state.send_wakers);
        }
        if !state.items.is_empty() {
            wake_all(&mut state.recv_wakers);
        }
        if !state.any(Role::Sender) && state.items.is_empty() && !state.ended {
            state.ended = true;
            state.tell(Role::Receiver, |peer| {
                peer.send_closed(self.id, Role::Sender)
            });
            wake_all(&mut state.recv_wakers);
        }
        if !state.any(Role::Receiver) && !state.deserted {
            state.deserted = true;
            state.items.clear();
            for member in &mut state.members {
                member.return_at = 0;
            }
            state.messages = 0;
            state.tell(Role::Sender, |peer| {
                peer.send_closed(self.id, Role::Receiver)
            });
            wake_all(&mut state.send_wakers);
        }
    }

    /// A worker is gone: it holds nothing any more; if it held a sender
    /// and died, receivers are told (after what it sent before).
    pub(super) fn lose(&self, peer: &Peer, death: Option<&Death>) {
        let mut state = self.state();
        let Some(member) = state
            .members
            .iter()
            .find(|member| member.peer.id == peer.id)
        else {
            return;
        };
        let held_sender = member.holds[Role::Sender as usize];
        state.leave(peer.id, Role::Sender);
        state.leave(peer.id, Role::Receiver);
        state.members.retain(|member| member.peer.id != peer.id);
        if held_sender
            && let Some(death) = death
            && state.any(Role::Receiver)
        {
            state.push_back(Item::Died(death.clone()));
        }
        self.settle(&mut state);
        self.forget_if_unheld(&state);
    }
}

impl State {
    /// Whether anyone, here or in a worker, holds `role`.
    fn any(&self, role: Role) -> bool {
        self.local[role as usize] > 0 || self.held[role as usize] > 0
    }

    /// The member `peer`, if it holds `role`.
    fn holding(&mut self, peer: u64, role: Role) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|member| member.peer.id == peer && member.holds[role as usize])
    }

    /// Runs `act` for each worker holding `role`.
    fn tell(&self, role: Role, act: impl Fn(&Peer)) {
        for member in self
            .members
            .iter()
            .filter(|member| member.holds[role as usize])
        {
            act(&member.peer);
        }
    }

    /// A worker now holds `role`.
    fn join(&mut self, peer: &Arc<Peer>, role: Role) {
        let at = match self
            .members
            .iter()
            .position(|member| member.peer.id == peer.id)
        {
            Some(at) => at,
            None => {
                self.members.push(Member {
                    peer: peer.clone(),
                    holds: [false; 2],
                    credit: 0,
                    starved: false,
                    partial: None,
                    wanted: 0,
                    unreturned: 0,
                    returning: None,
                    faults: Vec::new(),
                    return_at: 0,
                });
                self.members.len() - 1
            }
        };
        let holds = &mut self.members[at].holds[role as usize];
        if !*holds {
            *holds = true;
            self.held[role as usize] += 1;
        }
    }

    /// A worker stops holding `role`: what it was owed or owed us goes.
    fn leave(&mut self, peer: u64, role: Role) {
        let Some(at) = self
            .members
            .iter()
            .position(|member| member.peer.id == peer)
        else {
            return;
        };
        let member = &mut self.members[at];
        if member.holds[role as usize] {
            member.holds[role as usize] = false;
            self.held[role as usize] -= 1;
        }
        match role {
            Role::Sender => {
                // Its credit, and a request for more, stay: the worker
                // keeps both for a sender it may hold later, and a grant
                // may be on its way. (The worker's count of its credit is
                // never more than ours.)
                // Only whole messages are delivered.
                member.partial = None;
            }
            Role::Receiver => {
                member.wanted = 0;
                self.demands.retain(|waiting| waiting.id != peer);
            }
        }
        // One that may still give messages back, send on credit it was
        // granted, or wait for a grant, stays known until it is gone
        // (`lose`).
        let member = &self.members[at];
        let owed = member.unreturned > 0
            || !member.faults.is_empty()
            || member.credit > 0
            || member.starved;
        if member.holds == [false; 2] && !owed {
            self.members.swap_remove(at);
        }
    }

    fn push_back(&mut self, item: Item) {
        if matches!(item, Item::Message(_)) {
            self.messages += 1;
        }
        self.items.push_back(item);
    }

    /// Puts back an item `peer` had been sent: behind what it gave back
    /// before (see `Member::return_at`), so its items keep their order.
    fn give_back(&mut self, peer: u64, item: Item) {
        let Some(member) = self
            .members
            .iter_mut()
            .find(|member| member.peer.id == peer)
        else {
            self.items.push_front(item);
            return;
        };
        let at = member.return_at.min(self.items.len());
        member.return_at = at + 1;
        self.items.insert(at, item);
        for other in self
            .members
            .iter_mut()
            .filter(|other| other.peer.id != peer)
        {
            if other.return_at > at {
                other.return_at += 1;
            }
        }
    }

    fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        for member in &mut self.members {
            member.return_at = member.return_at.saturating_sub(1);
        }
        if matches!(item, Item::Message(_)) {
            self.messages -= 1;
        }
        Some(item)
    }
}

fn push_waker(wakers: &mut Vec<Waker>, cx: &mut Context<'_>) {
    if !wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}
