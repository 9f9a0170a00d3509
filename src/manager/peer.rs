//! A worker's connection, as the manager sees it: the calls its tasks
//! make, answered at once into the connection's control frames, or later
//! (a lock granted, an item come) through its [`Outbox`]; and, when the
//! worker is let go, what it leaves: its waiting calls are dropped and a
//! lock it held is released as poisoned.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures::task::AtomicWaker;

use super::host::{self, Served, To, lock};
use super::wire::{self, Reply};
use crate::wire::call;

static NEXT_PEER: AtomicU64 = AtomicU64::new(1);

/// The most calls of one worker that may wait at once (for a lock, an
/// item, room). A task's thread makes one call at a time, so only a
/// worker writing calls by hand gets near it; past it, a call fails at
/// once instead of holding its item at the host without bound.
const MAX_WAITING: usize = 4096;

/// Replies to a worker's waiting calls, made by whoever served them
/// (another worker's call, a caller here, a timer), until the pool's slot
/// takes them to write.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Whole `REPLY` frames; `None` once the worker is let go.
    frames: Mutex<Option<Vec<u8>>>,
    waker: AtomicWaker,
    /// Its calls waiting in some object's line.
    waiting: AtomicUsize,
    /// The largest frame body its worker reads.
    max_frame: u64,
}

impl Outbox {
    /// Queues the reply to call `call`; gives it back if the worker is gone.
    pub(crate) fn push(&self, call: u64, reply: Reply) -> Result<(), Reply> {
        let mut frames = lock(&self.frames);
        let Some(frames) = frames.as_mut() else {
            return Err(reply);
        };
        let fits = frame(call, &reply, self.max_frame);
        frames.extend_from_slice(fits.as_ref().unwrap_or_else(|refused| refused));
        self.waiting.fetch_sub(1, Relaxed);
        self.waker.wake();
        // Not sent (the caller was told why): what it granted goes back.
        fits.map(drop).map_err(|_| reply)
    }

    pub(crate) fn is_gone(&self) -> bool {
        lock(&self.frames).is_none()
    }
}

/// One worker connection's part in the manager.
#[derive(Debug)]
pub(crate) struct Peer {
    id: u64,
    pid: u32,
    out: Arc<Outbox>,
    /// Objects it may be waiting on or holding (queues and locks).
    touched: HashSet<u64>,
}

impl Peer {
    /// The part of worker `pid`, which reads frames of at most `max_frame`
    /// bytes.
    pub(crate) fn new(pid: u32, max_frame: u64) -> Peer {
        Peer {
            id: NEXT_PEER.fetch_add(1, Relaxed),
            pid,
            out: Arc::new(Outbox {
                frames: Mutex::new(Some(Vec::new())),
                waker: AtomicWaker::new(),
                waiting: AtomicUsize::new(0),
                max_frame,
            }),
            touched: HashSet::new(),
        }
    }

    /// Serves the worker's call `call` with arguments `args`: the whole
    /// `REPLY` frame, or `None` if the answer comes later (through
    /// [`take`](Self::take)). `Err` if the call is garbage: the worker is
    /// not following the protocol.
    pub(crate) fn serve(&mut self, call: u64, args: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let request = wire::parse(args)?;
        let max_frame = self.out.max_frame;
        let Some(object) = host::find(request.object) else {
            return Ok(Some(small_frame(call, &Err(wire::Failure::Gone))));
        };
        let may_wait = request.op.may_wait();
        if may_wait {
            // Counted before it can wait, since it may be answered (and
            // uncounted) before `serve` returns.
            if self.out.waiting.fetch_add(1, Relaxed) >= MAX_WAITING {
                self.out.waiting.fetch_sub(1, Relaxed);
                let refused =
                    format!("more than {MAX_WAITING} calls of one worker waiting at once");
                return Ok(Some(small_frame(
                    call,
                    &Err(wire::Failure::Misuse(refused)),
                )));
            }
            self.touched.insert(object.id);
        }
        let out = &self.out;
        match object.serve(&request, self.id, || To::Worker {
            out: out.clone(),
            call,
        }) {
            Served::Now(reply) => {
                if may_wait {
                    self.out.waiting.fetch_sub(1, Relaxed);
                }
                Ok(Some(frame(call, &reply, max_frame).unwrap_or_else(
                    |refused| {
                        // Not sent: what it granted (an item) goes back.
                        if let Ok(granted) = reply {
                            object.give_back(request.op, granted);
                        }
                        refused
                    },
                )))
            }
            Served::Parked(parked) => {
                if let Some(after) = request.timeout {
                    // The host keeps the time, so the line never holds a
                    // caller that gave up (a lock granted to nobody).
                    let id = object.id;
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        if let Some(object) = host::find(id) {
                            object.expire(parked, after);
                        }
                    });
                }
                Ok(None)
            }
        }
    }

    /// The replies that came for its waiting calls, if any; arranges for
    /// the task of `cx` to be woken when more come.
    pub(crate) fn take(&self, cx: &mut Context<'_>) -> Option<Vec<u8>> {
        self.out.waker.register(cx.waker());
        let mut frames = lock(&self.out.frames);
        let frames = frames.as_mut()?;
        (!frames.is_empty()).then(|| std::mem::take(frames))
    }
}

/// The `REPLY` frame of `reply` to call `call`; `Err` with a refusal in its
/// place if it is over `max_frame`, which its worker would take for a
/// broken connection and die of.
fn frame(call: u64, reply: &Reply, max_frame: u64) -> Result<Vec<u8>, Vec<u8>> {
    let whole = small_frame(call, reply);
    let len = crate::wire::frame::body_len_of(&whole);
    if len <= max_frame {
        return Ok(whole);
    }
    let refused = format!(
        "an answer of {len} bytes, over the pool's maximum frame of {max_frame} \
         (PoolBuilder::max_frame_size): ask for less at a time, or raise it"
    );
    Err(small_frame(call, &Err(wire::Failure::Misuse(refused))))
}

/// The `REPLY` frame of a reply known to be small.
fn small_frame(call: u64, reply: &Reply) -> Vec<u8> {
    call::reply(call, Ok(&wire::reply(reply)))
}

impl Drop for Peer {
    fn drop(&mut self) {
        *lock(&self.out.frames) = None;
        let why = format!(
            "worker {} died or was let go while holding the lock: what it guards may be \
             half-updated; check it, then call `clear_poison`",
            self.pid
        );
        for id in &self.touched {
            if let Some(object) = host::find(*id) {
                object.peer_gone(self.id, &why);
            }
        }
    }
}
