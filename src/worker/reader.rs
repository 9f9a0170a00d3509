//! The worker's reader thread: it owns the read half of the connection and
//! routes every frame by kind — requests to the task thread's inbox,
//! cancels to the kill logic, replies to the thread waiting on its call —
//! and ends the worker (and everything its tasks started) the moment the
//! pool hangs up, even mid-task.

use std::collections::{BTreeSet, VecDeque};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::link::Link;
use super::teardown::{fail, teardown};
use crate::wire::call;
use crate::wire::frame::{self, CANCEL, CHUNK, Parts, REPLY, REQUEST};

/// Requests waiting for the task thread, and what it is doing.
#[derive(Default)]
struct State {
    /// Request bodies received and not started, with their ids.
    queue: VecDeque<(u64, Vec<u8>)>,
    /// Ids in `queue` whose caller stopped waiting.
    cancelled: BTreeSet<u64>,
    /// The request being run.
    running: Option<u64>,
    /// The last request id received (ids only grow).
    last_id: u64,
    /// A body buffer the task thread is done with, for the next read.
    spare: Option<Vec<u8>>,
}

/// What the reader and the task thread share: one lock, taken twice per
/// task, so "is it running?" and "start it" cannot interleave.
#[derive(Default)]
pub(super) struct Inbox {
    state: Mutex<State>,
    ready: Condvar,
}

/// A request the task thread took from the inbox.
pub(super) struct Next {
    pub(super) id: u64,
    pub(super) body: Vec<u8>,
    /// Cancelled before it started: answer `SKIPPED` without running it.
    pub(super) skip: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a request is there, and marks it running (unless it is
    /// to be skipped).
    pub(super) fn next(&self) -> Next {
        let mut state = self.lock();
        loop {
            if let Some((id, body)) = state.queue.pop_front() {
                let skip = state.cancelled.remove(&id);
                if !skip {
                    state.running = Some(id);
                }
                return Next { id, body, skip };
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The task thread is done with a request (its answer not yet sent:
    /// a cancel arriving now is for a finished task, and is ignored).
    pub(super) fn done(&self, body: Vec<u8>) {
        let mut state = self.lock();
        state.running = None;
        state.spare = Some(body);
    }

    fn push(&self, id: u64, body: &mut Vec<u8>) -> Result<(), String> {
        let mut state = self.lock();
        if id <= state.last_id {
            return Err(format!(
                "request {id} came after request {}: ids must grow",
                state.last_id
            ));
        }
        state.last_id = id;
        let next_buffer = state.spare.take().unwrap_or_default();
        state
            .queue
            .push_back((id, std::mem::replace(body, next_buffer)));
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    fn cancel(&self, id: u64) -> Result<(), String> {
        let mut state = self.lock();
        if state.running == Some(id) {
            // Holding the lock: the task thread cannot start the next one.
            teardown();
        }
        if state.queue.iter().any(|(queued, _)| *queued == id) {
            state.cancelled.insert(id);
        } else if id > state.last_id {
            return Err(format!("a cancel of request {id}, which never came"));
        }
        // Otherwise it finished already: nothing to do.
        Ok(())
    }
}

/// Reads and routes frames until the pool hangs up; then, or on anything
/// that is not our protocol, ends the worker.
pub(super) fn run(socket: UnixStream, max_frame: u64, inbox: &Inbox, link: &Link) -> ! {
    let mut reader = BufReader::with_capacity(64 * 1024, socket);
    let mut body = Vec::new();
    loop {
        match frame::read_blocking(&mut reader, &mut body, max_frame) {
            Ok(true) => {}
            // The pool is gone (shut down, dropped, or dead): so are we.
            Ok(false) => teardown(),
            Err(err) if is_hang_up(&err) => teardown(),
            Err(err) => fail(&format!("reading from the pool: {err}")),
        }
        if let Err(problem) = route(&mut body, inbox, link) {
            fail(&format!("the pool sent {problem}"));
        }
    }
}

fn route(body: &mut Vec<u8>, inbox: &Inbox, link: &Link) -> Result<(), String> {
    let parts = Parts::of(body)?;
    match parts.kind {
        REQUEST | CHUNK => inbox.push(parts.id, body),
        CANCEL if parts.payload.is_empty() => inbox.cancel(parts.id),
        REPLY => {
            let outcome = call::parse_reply(parts.payload)?.map(<[u8]>::to_vec);
            link.deliver(parts.id, outcome)
        }
        kind => Err(format!(
            "a frame of unknown kind 0x{kind:02x} ({} bytes)",
            body.len()
        )),
    }
}

pub(super) fn is_hang_up(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(err.kind(), ConnectionReset | BrokenPipe | UnexpectedEof)
}
