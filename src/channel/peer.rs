//! A worker connection's part in channels, as the hub sees it: where the
//! hub's frames for that worker go ([`Peer`]), the pool's handle that
//! routes the worker's channel frames and releases what it held when it is
//! gone ([`Connection`]), and how it died ([`Death`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;

use futures::task::AtomicWaker;

use super::hub::{self, Message, Shared};
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
    /// Its `FAULT` piece's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        frames::fault(self.pid, self.exit, self.stopped, self.task)
    }

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
    outbox: Mutex<Outgoing>,
    /// Wakes the pool's dispatcher to write the outbox.
    waker: AtomicWaker,
}

/// What the hub has for one worker, not yet handed to its connection.
///
/// A message of several pieces goes out one piece per turn, taking turns
/// with other such channels, and every other frame goes before the next
/// piece: a 1 GiB message to one task does not hold up a small one to
/// another (or a credit grant) for the whole gigabyte. Within a channel
/// the order stays as sent — a message, the news that its senders are
/// gone, or a fault behind a message under way waits for it, since the
/// worker reassembles one message per channel at a time.
#[derive(Default)]
struct Outgoing {
    /// Whole frames that may go at once, in order.
    frames: Vec<u8>,
    /// Channels with a message of several pieces under way, in turn.
    streams: VecDeque<Stream>,
}

/// One channel's frames behind a message of several pieces.
struct Stream {
    id: u64,
    queue: VecDeque<Pending>,
    /// `FORGOTTEN`s waiting in `queue`: credit granted after one was sent
    /// must not overtake it (the worker voids a grant that comes before
    /// it), so while any waits, credit waits in line too.
    forgetting: u32,
}

enum Pending {
    /// Whole frames.
    Frames(Vec<u8>),
    /// A `FORGOTTEN` (see `Stream::forgetting`).
    Forgotten(Vec<u8>),
    /// A message, of which `sent` bytes have gone in pieces.
    Message { message: Message, sent: usize },
}

impl Outgoing {
    fn stream(&mut self, id: u64) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|stream| stream.id == id)
    }

    /// Where a frame about channel `id` goes: behind its message under
    /// way, or with the frames that go at once.
    fn ordered(&mut self, id: u64, frame: impl FnOnce(&mut Vec<u8>)) {
        match self.stream(id) {
            Some(stream) => {
                let mut bytes = Vec::new();
                frame(&mut bytes);
                stream.queue.push_back(Pending::Frames(bytes));
            }
            None => frame(&mut self.frames),
        }
    }

    /// Queues `message` for channel `id`: as one frame if it fits in a
    /// `piece` and its channel has nothing under way; else in pieces.
    fn push_message(&mut self, id: u64, message: Message, piece: usize) {
        let len = message.bytes().len();
        match self.stream(id) {
            None if len <= piece => frames::push_piece(
                &mut self.frames,
                frames::DATA,
                id,
                frames::LAST,
                message.bytes(),
            ),
            Some(stream) => stream
                .queue
                .push_back(Pending::Message { message, sent: 0 }),
            None => self.streams.push_back(Stream {
                id,
                queue: VecDeque::from([Pending::Message { message, sent: 0 }]),
                forgetting: 0,
            }),
        }
    }

    /// Takes the frames that may go at once, and pieces of at most `piece`
    /// bytes of the messages under way, one channel at a time, while fewer
    /// than `budget` bytes of pieces are taken.
    fn take(&mut self, piece: usize, budget: usize) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.frames);
        let mut taken = 0;
        while taken < budget
            && let Some(mut stream) = self.streams.pop_front()
        {
            match stream.queue.front_mut() {
                Some(Pending::Message { message, sent }) => {
                    let bytes = &message.bytes()[*sent..];
                    let chunk = bytes.len().min(piece);
                    let flags = if chunk == bytes.len() {
                        frames::LAST
                    } else {
                        0
                    };
                    frames::push_piece(&mut out, frames::DATA, stream.id, flags, &bytes[..chunk]);
                    *sent += chunk;
                    taken += chunk.max(1);
                    if flags == frames::LAST {
                        stream.queue.pop_front();
                    }
                }
                Some(Pending::Frames(_) | Pending::Forgotten(_)) | None => {}
            }
            // Frames behind the last message need no turn of their own.
            while let Some(Pending::Frames(bytes) | Pending::Forgotten(bytes)) =
                stream.queue.front()
            {
                out.extend_from_slice(bytes);
                if let Some(Pending::Forgotten(_)) = stream.queue.pop_front() {
                    stream.forgetting -= 1;
                }
            }
            if !stream.queue.is_empty() {
                self.streams.push_back(stream);
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.streams.is_empty()
    }
}

impl Peer {
    fn post(&self, frame: impl FnOnce(&mut Outgoing)) {
        frame(&mut lock(&self.outbox));
        self.waker.wake();
    }

    pub(super) fn send_message(&self, id: u64, message: Message) {
        let piece = self.piece;
        self.post(|out| out.push_message(id, message, piece));
    }

    pub(super) fn send_fault(&self, id: u64, death: &Death) {
        let fault = death.encode();
        self.post(|out| {
            out.ordered(id, |out| {
                frames::push_piece(out, frames::DATA, id, frames::LAST | frames::FAULT, &fault)
            })
        });
    }

    pub(super) fn send_credit(&self, id: u64, n: u32) {
        // Credit is for the worker's senders: it need not wait for messages
        // to its receivers — unless a FORGOTTEN waits behind one, which a
        // grant made after it must not overtake.
        let credit = frames::control(frames::CREDIT, id, &n.to_le_bytes());
        self.post(|out| match out.stream(id) {
            Some(stream) if stream.forgetting > 0 => {
                stream.queue.push_back(Pending::Frames(credit));
            }
            _ => out.frames.extend(credit),
        });
    }

    /// The answer to a `FORGET`: after every frame for channel `id`.
    pub(super) fn send_forgotten(&self, id: u64) {
        let forgotten = frames::control(frames::FORGOTTEN, id, &[]);
        self.post(|out| match out.stream(id) {
            Some(stream) => {
                stream.forgetting += 1;
                stream.queue.push_back(Pending::Forgotten(forgotten));
            }
            None => out.frames.extend(forgotten),
        });
    }

    pub(super) fn send_closed(&self, id: u64, gone: Role) {
        self.post(|out| {
            out.ordered(id, |out| {
                out.extend(frames::control(frames::CLOSED, id, &[gone as u8]))
            })
        });
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
            None if kind == frames::FORGET => {
                self.peer.send_forgotten(id);
                Ok(())
            }
            None => Err(format!(
                "a frame of kind 0x{kind:02x} for channel {id}, which does not exist"
            )),
        }
    }

    /// Frames the hub has for the worker, if any: everything that may go at
    /// once, and pieces of messages under way up to about `budget` bytes;
    /// and whether pieces are still to go after those. Wakes `cx` when
    /// more come.
    pub(crate) fn take_outgoing(
        &self,
        cx: &mut Context<'_>,
        budget: usize,
    ) -> (Option<Vec<u8>>, bool) {
        self.peer.waker.register(cx.waker());
        let mut outbox = lock(&self.peer.outbox);
        let frames = (!outbox.is_empty()).then(|| outbox.take(self.peer.piece, budget));
        (frames, !outbox.streams.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::HEADER_LEN;

    /// (channel, kind, flags of a piece, bytes) of each frame in `bytes`.
    fn frames_in(mut bytes: &[u8]) -> Vec<(u64, u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u64::from_le_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
            let parts = Parts::of(&bytes[HEADER_LEN..HEADER_LEN + len]).unwrap();
            let (flags, payload) = match parts.kind {
                frames::DATA => frames::parse_piece(parts.payload).unwrap(),
                _ => (0, parts.payload),
            };
            out.push((parts.id, parts.kind, flags, payload.to_vec()));
            bytes = &bytes[HEADER_LEN + len..];
        }
        out
    }

    fn send(out: &mut Outgoing, id: u64, bytes: &[u8], piece: usize) {
        out.push_message(id, Message::from(bytes.to_vec()), piece);
    }

    #[test]
    fn an_empty_message_is_one_last_piece() {
        let mut out = Outgoing::default();
        send(&mut out, 1, &[], 10);
        assert_eq!(
            frames_in(&out.take(10, 10)),
            [(1, frames::DATA, frames::LAST, vec![])]
        );
    }

    #[test]
    fn a_message_over_a_piece_goes_in_pieces_that_join_up() {
        let big: Vec<u8> = (0..25).collect();
        let mut out = Outgoing::default();
        send(&mut out, 9, &big, 10);
        let got = frames_in(&out.take(10, usize::MAX));
        let flags: Vec<u8> = got.iter().map(|frame| frame.2).collect();
        assert_eq!(flags, [0, 0, frames::LAST]);
        let joined: Vec<u8> = got.into_iter().flat_map(|frame| frame.3).collect();
        assert_eq!(joined, big);
        assert!(out.is_empty());
    }

    #[test]
    fn other_frames_go_between_the_pieces_of_a_large_message() {
        let mut out = Outgoing::default();
        send(&mut out, 1, &[1; 25], 10);
        send(&mut out, 2, b"small", 10);
        out.ordered(1, |out| {
            out.extend(frames::control(frames::CLOSED, 1, &[Role::Sender as u8]))
        });
        out.frames
            .extend(frames::control(frames::CREDIT, 3, &5u32.to_le_bytes()));

        let turn = |out: &mut Outgoing| -> Vec<(u64, u8)> {
            frames_in(&out.take(10, 10))
                .into_iter()
                .map(|(id, kind, ..)| (id, kind))
                .collect()
        };
        let (data, closed, credit) = (frames::DATA, frames::CLOSED, frames::CREDIT);
        assert_eq!(turn(&mut out), [(2, data), (3, credit), (1, data)]);
        assert_eq!(turn(&mut out), [(1, data)]);
        send(&mut out, 2, b"again", 10);
        // The news that channel 1's senders are gone waits for its message.
        assert_eq!(turn(&mut out), [(2, data), (1, data), (1, closed)]);
        assert!(out.is_empty());
    }

    #[test]
    fn credit_does_not_overtake_a_forgotten_waiting_behind_a_message() {
        let peer = Peer {
            id: 1,
            piece: 10,
            outbox: Mutex::default(),
            waker: AtomicWaker::new(),
        };
        peer.send_message(1, Message::from(vec![1; 25]));
        peer.send_credit(1, 3);
        peer.send_forgotten(1);
        peer.send_credit(1, 5);
        let mut kinds = Vec::new();
        while !lock(&peer.outbox).is_empty() {
            let bytes = lock(&peer.outbox).take(10, 10);
            kinds.extend(frames_in(&bytes).into_iter().map(|(_, kind, ..)| kind));
        }
        let (data, credit, forgotten) = (frames::DATA, frames::CREDIT, frames::FORGOTTEN);
        // The first grant may go at once; the second waits its turn.
        assert_eq!(kinds, [credit, data, data, data, forgotten, credit]);
        // Once the FORGOTTEN is gone, credit goes at once again.
        peer.send_message(1, Message::from(vec![1; 25]));
        peer.send_credit(1, 7);
        let first = frames_in(&lock(&peer.outbox).take(10, 10));
        assert_eq!(first[0].1, credit);
    }

    #[test]
    fn large_messages_on_two_channels_take_turns_and_each_keeps_its_order() {
        let mut out = Outgoing::default();
        send(&mut out, 1, &[1; 20], 10);
        send(&mut out, 2, &[2; 20], 10);
        // Small, but behind channel 1's message under way.
        send(&mut out, 1, b"after", 10);
        let mut order = Vec::new();
        while !out.is_empty() {
            for (id, _, flags, bytes) in frames_in(&out.take(10, 10)) {
                order.push((id, flags == frames::LAST, bytes.len()));
            }
        }
        assert_eq!(
            order,
            [
                (1, false, 10),
                (2, false, 10),
                (1, true, 10),
                (2, true, 10),
                (1, true, 5)
            ]
        );
    }
}
