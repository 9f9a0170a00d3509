//! A worker's side of the channels its tasks were given: for each, how many
//! of its endpoints this process holds, the credit it may send on, and the
//! messages that came for its receivers. Every operation blocks the calling
//! thread (a task is plain blocking code); the worker's reader routes the
//! pool's channel frames here ([`route`]) and wakes whoever waits.
//!
//! No frame is written while the table's lock is held: a write may wait for
//! the pool to read, and the pool may be waiting for this worker to read,
//! which the reader does only after taking the lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::hub::{MAX_MESSAGE, WINDOW};
use crate::error::{Error, Repr};
use crate::registry::Registry;
use crate::wire::channel::{self as frames, Role};
use crate::wire::frame::Parts;
use crate::worker::link::Link;

/// Channels this worker holds endpoints of, by id.
struct Table {
    channels: Mutex<HashMap<u64, Channel>>,
    /// Signalled whenever a frame for any channel arrives.
    changed: Condvar,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    channels: Mutex::default(),
    changed: Condvar::new(),
});

/// Held by `open` and `close` from their change to the table until their
/// frames are written, so the pool reads `OPEN`, `CLOSE` and `FORGET` in
/// the order the table changed: two threads dropping a channel's last
/// sender and last receiver must not write `CLOSE(receiver), FORGET`
/// before `CLOSE(sender)` (the pool would take the `FORGET` for one from
/// a worker still holding a sender). Not the table's lock, which the
/// reader takes: a write under this one may wait for the pool, never for
/// the reader.
static MEMBERSHIP: Mutex<()> = Mutex::new(());

fn membership() -> MutexGuard<'static, ()> {
    MEMBERSHIP.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The worker's registry, to name the task a dead sender was running.
static REGISTRY: OnceLock<&'static Registry> = OnceLock::new();

/// Lets fault reports name tasks by this worker's registry.
pub(crate) fn install(registry: &'static Registry) {
    let _ = REGISTRY.set(registry);
}

#[derive(Default)]
struct Channel {
    ty: &'static str,
    /// Endpoints of each role held in this process (index: `Role as usize`).
    held: [usize; 2],
    /// Messages this worker may still send.
    credit: u32,
    /// Credit was asked for and not granted yet.
    asked: bool,
    /// Messages (`Ok`), or news of a dead sender (`Err`, a `FAULT`'s
    /// bytes), for this worker's receivers: kept as they came, so that
    /// either can be given back.
    inbox: VecDeque<Result<Vec<u8>, Vec<u8>>>,
    /// The message whose pieces are arriving.
    partial: Vec<u8>,
    /// Messages asked for and not arrived.
    wanted: u32,
    /// Threads waiting in `recv`.
    receiving: u32,
    senders_gone: bool,
    receivers_gone: bool,
    /// A thread is writing a message in pieces; others wait to send.
    sending_pieces: bool,
    /// `FORGET`s sent and not yet answered: while any is, a grant that
    /// comes is void (the pool sent it before it read the `FORGET`).
    forgets: u32,
}

fn table() -> MutexGuard<'static, HashMap<u64, Channel>> {
    TABLE
        .channels
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn wait(
    guard: MutexGuard<'static, HashMap<u64, Channel>>,
    deadline: Option<Instant>,
) -> (MutexGuard<'static, HashMap<u64, Channel>>, bool) {
    match deadline {
        None => (
            TABLE
                .changed
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
            false,
        ),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let (guard, timeout) = TABLE
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner);
            (guard, timeout.timed_out())
        }
    }
}

fn link() -> Result<&'static Link, Error> {
    Link::get().ok_or_else(|| {
        Error::new(Repr::Endpoint(
            "a channel endpoint was used in a worker that is not serving".into(),
        ))
    })
}

/// Sends a whole frame; a pool that is gone ends this process soon, so
/// the error says only that.
fn post(frame: &[&[u8]]) -> Result<(), Error> {
    link()?.send(frame).map_err(Error::from)
}

/// One more endpoint of `role` on channel `id` in this process; the first
/// announces the worker to the pool.
pub(crate) fn open(id: u64, role: Role, ty: &'static str) -> Result<(), Error> {
    link()?;
    let _in_order = membership();
    let first = {
        let mut channels = table();
        let channel = channels.entry(id).or_default();
        if !ty.is_empty() {
            channel.ty = ty;
        }
        channel.held[role as usize] += 1;
        channel.held[role as usize] == 1
    };
    if first {
        post(&[&frames::control(frames::OPEN, id, &[role as u8])])?;
    }
    Ok(())
}

/// One endpoint of `role` fewer; the last says goodbye, handing back what
/// came for receivers and was not taken.
pub(crate) fn close(id: u64, role: Role) {
    let _in_order = membership();
    let (returned, forget) = {
        let mut channels = table();
        let Some(channel) = channels.get_mut(&id) else {
            return;
        };
        channel.held[role as usize] -= 1;
        if channel.held[role as usize] > 0 {
            return;
        }
        let returned = match role {
            Role::Sender => {
                // What credit it has, and a grant on its way, stay for a
                // sender it may hold later while it holds a receiver (the
                // pool keeps them too).
                Vec::new()
            }
            Role::Receiver => {
                channel.wanted = 0;
                // The news of a dead sender too: it is an item like a
                // message, for the next receiver.
                std::mem::take(&mut channel.inbox).into_iter().collect()
            }
        };
        // Nothing of it held here any more: forget it once the pool has
        // sent what it had for it. The credit goes (the pool drops it
        // when it reads the FORGET).
        let forget = channel.held == [0, 0];
        if forget {
            channel.forgets += 1;
            channel.credit = 0;
            channel.asked = false;
        }
        (returned, forget)
    };
    // Given back oldest first: the pool puts each behind the last this
    // worker gave back (and what is still on its way here goes behind
    // these when it comes), all ahead of what it never sent here.
    if let Ok(link) = link() {
        for item in &returned {
            let _ = link.send(&[&return_frames(id, item, link)]);
        }
    }
    let _ = post(&[&frames::control(frames::CLOSE, id, &[role as u8])]);
    if forget {
        let _ = post(&[&frames::control(frames::FORGET, id, &[])]);
    }
}

/// Sends one encoded message, waiting for credit if it has none.
pub(crate) fn send(id: u64, message: &[u8]) -> Result<(), Error> {
    let link = link()?;
    if message.len() > MAX_MESSAGE {
        return Err(Error::new(Repr::Endpoint(format!(
            "a channel message of {} bytes, over the limit of {MAX_MESSAGE} bytes; send it in \
             parts",
            message.len()
        ))));
    }
    let mut channels = table();
    loop {
        let channel = channels
            .get_mut(&id)
            .expect("a held channel is in the table");
        if channel.receivers_gone {
            return Err(Error::new(Repr::Closed {
                ty: channel.ty,
                senders_gone: false,
            }));
        }
        if channel.sending_pieces {
            // Another thread's message is going out in pieces: the pool
            // reassembles one message per channel at a time.
            channels = TABLE
                .changed
                .wait(channels)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        if channel.credit > 0 {
            channel.credit -= 1;
            // Ask ahead, so a steady sender does not stall on each grant.
            let ask = !channel.asked && channel.credit < WINDOW / 2;
            channel.asked |= ask;
            let in_pieces = !is_small(link, message);
            channel.sending_pieces = in_pieces;
            drop(channels);
            if ask {
                link.send_soon(&[&frames::want(id, Role::Sender, WINDOW)])?;
            }
            let sent = write_pieces(link, id, message);
            if in_pieces {
                if let Some(channel) = table().get_mut(&id) {
                    channel.sending_pieces = false;
                }
                TABLE.changed.notify_all();
            }
            return sent;
        }
        if !channel.asked {
            channel.asked = true;
            drop(channels);
            post(&[&frames::want(id, Role::Sender, WINDOW)])?;
            channels = table();
            continue;
        }
        let _waiting = link.waiting();
        channels = wait(channels, None).0;
    }
}

/// Writes `message` as `SEND` pieces, each a whole frame: other threads'
/// frames (answers, other channels) may go between them.
fn write_pieces(link: &'static Link, id: u64, message: &[u8]) -> Result<(), Error> {
    if is_small(link, message) {
        let head = frames::piece_head(frames::SEND, id, frames::LAST, message.len());
        return link.send_soon(&[&head, message]).map_err(Error::from);
    }
    let mut chunks = message.chunks(link.piece()).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            frames::LAST
        } else {
            0
        };
        post(&[
            &frames::piece_head(frames::SEND, id, flags, chunk.len()),
            chunk,
        ])?;
    }
    Ok(())
}

/// Messages up to this size are copied behind their header and written in
/// one go (with others, by the writer thread); larger ones are written from
/// where they are, a piece at a time.
const SMALL: usize = 64 << 10;

fn is_small(link: &Link, message: &[u8]) -> bool {
    message.len() <= SMALL.min(link.piece())
}

/// The next message for a receiver of channel `id`, waiting at most
/// `timeout` (for ever if `None`).
pub(crate) fn recv(id: u64, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let link = link()?;
    let mut channels = table();
    let mut registered = false;
    let outcome = loop {
        let channel = channels
            .get_mut(&id)
            .expect("a held channel is in the table");
        if let Some(item) = channel.inbox.pop_front() {
            break taken(channel.ty, item);
        }
        if channel.senders_gone {
            break Err(Error::new(Repr::Closed {
                ty: channel.ty,
                senders_gone: true,
            }));
        }
        if !registered {
            channel.receiving += 1;
            registered = true;
        }
        if channel.wanted < channel.receiving {
            channel.wanted += 1;
            drop(channels);
            let asked = post(&[&frames::want(id, Role::Receiver, 1)]);
            channels = table();
            if let Err(err) = asked {
                break Err(err);
            }
            continue;
        }
        let _waiting = link.waiting();
        let (guard, timed_out) = wait(channels, deadline);
        channels = guard;
        if timed_out {
            let channel = channels.get_mut(&id).expect("held");
            if let Some(item) = channel.inbox.pop_front() {
                break taken(channel.ty, item);
            }
            break Err(Error::new(Repr::RecvTimeout {
                after: timeout.unwrap_or_default(),
            }));
        }
    };
    if registered && let Some(channel) = channels.get_mut(&id) {
        channel.receiving -= 1;
    }
    outcome
}

/// Takes a channel frame from the pool; `Err` if it is not one this worker
/// could have been sent.
pub(crate) fn route(parts: Parts<'_>) -> Result<(), String> {
    let mut channels = table();
    let Some(channel) = channels.get_mut(&parts.id) else {
        return Err(format!(
            "a frame of kind 0x{:02x} for channel {}, which this worker never held",
            parts.kind, parts.id
        ));
    };
    let mut give_back = None;
    match parts.kind {
        frames::CREDIT => {
            let granted = frames::parse_credit(parts.payload)?;
            // Sent before the pool read our FORGET: void there too.
            if channel.forgets == 0 {
                channel.credit = channel.credit.saturating_add(granted);
                channel.asked = false;
            }
        }
        frames::FORGOTTEN => {
            channel.forgets = channel
                .forgets
                .checked_sub(1)
                .ok_or_else(|| format!("a FORGOTTEN of channel {} nobody asked for", parts.id))?;
            // Everything the pool had for it came before this: if nothing
            // holds it again since, it is gone.
            if channel.forgets == 0 && channel.held == [0, 0] {
                channels.remove(&parts.id);
            }
        }
        frames::CLOSED => match frames::parse_role(parts.payload)? {
            Role::Sender => channel.senders_gone = true,
            Role::Receiver => channel.receivers_gone = true,
        },
        frames::DATA => {
            let (flags, bytes) = frames::parse_piece(parts.payload)?;
            channel.partial.extend_from_slice(bytes);
            if flags & frames::LAST != 0 {
                let message = std::mem::take(&mut channel.partial);
                channel.wanted = channel.wanted.saturating_sub(1);
                let item = if flags & frames::FAULT != 0 {
                    fault_error(channel.ty, &message)?;
                    Err(message)
                } else {
                    Ok(message)
                };
                if channel.held[Role::Receiver as usize] == 0 {
                    // Asked for by a receiver since dropped: back it goes.
                    give_back = Some(item);
                } else {
                    channel.inbox.push_back(item);
                }
            }
        }
        kind => return Err(format!("a channel frame of unknown kind 0x{kind:02x}")),
    }
    drop(channels);
    TABLE.changed.notify_all();
    if let Some(item) = give_back
        && let Ok(link) = link()
    {
        // (Bounded: only what was sent to this worker comes back.)
        let _ = link.send_from_reader(&[&return_frames(parts.id, &item, link)]);
    }
    Ok(())
}

/// How many channels this process has entries for: for tests (a worker
/// forgets the ones it no longer holds).
pub fn channels_known() -> usize {
    table().len()
}

/// The `RETURN` frames that give an item of the inbox back to the pool.
fn return_frames(id: u64, item: &Result<Vec<u8>, Vec<u8>>, link: &Link) -> Vec<u8> {
    let (bytes, fault) = match item {
        Ok(message) => (message, false),
        Err(news) => (news, true),
    };
    frames::give_back(id, bytes, link.piece(), fault)
}

/// What a receiver gets for an item of the inbox.
fn taken(ty: &'static str, item: Result<Vec<u8>, Vec<u8>>) -> Result<Vec<u8>, Error> {
    item.map_err(|fault| {
        // Checked when it came.
        fault_error(ty, &fault).unwrap_or_else(|garbage| Error::new(Repr::Endpoint(garbage)))
    })
}

fn fault_error(ty: &'static str, bytes: &[u8]) -> Result<Error, String> {
    let (pid, exit, stopped, task) = frames::parse_fault(bytes)?;
    let task = REGISTRY.get().and_then(|registry| registry.name_like(task));
    Ok(Error::new(Repr::PeerDied {
        ty,
        pid,
        task,
        exit,
        stopped,
    }))
}
