//! The task thread: runs requests one at a time, in the order they came,
//! and answers each before it starts the next.

use std::io::{self, Write};
use std::time::Instant;

use super::link::Link;
use super::panic;
use super::reader::{Inbox, Next};
use crate::codec::attach::Attachment;
use crate::registry::{Arrived, Registry};
use crate::sys;
use crate::wire::answer::{self, PanicReport};
use crate::wire::chunk::{self, ItemWriter};
use crate::wire::frame::{self, CHUNK, Parts};
use crate::wire::request;

/// Serves requests from `inbox` until writing an answer fails (the pool is
/// gone; the reader ends the process about then too).
pub(super) fn serve(registry: &Registry, inbox: &Inbox, link: &Link, max_frame: u64) -> io::Error {
    panic::capture_on_this_thread();
    let mut out = Vec::new();
    loop {
        let Next {
            id,
            body,
            attachments,
            skip,
        } = inbox.next();
        let (ran, mut attached) = if skip {
            answer::skipped(&mut out, id);
            (None, Vec::new())
        } else {
            let (nanos, attached) = run_one(registry, id, &body, attachments, &mut out);
            (Some(nanos), attached)
        };
        inbox.done(body, ran);
        let bytes = frame::body_len_of(&out);
        if bytes > max_frame {
            // The pool would take it for garbage and kill us; say instead.
            answer::too_large(&mut out, id, bytes);
            attached.clear();
        }
        // A task's `print!` without a newline should not wait for the next one.
        let _ = io::stdout().flush();
        // One write per answer, before the next task starts: if that task
        // crashes the worker, the answers to all earlier ones have already
        // left, so the pool knows exactly which task was running.
        let mut pieces = Vec::with_capacity(1 + attached.len());
        pieces.push(&out[..]);
        pieces.extend(attached.iter().map(|attachment| attachment.as_bytes()));
        if let Err(err) = link.send(&pieces) {
            return err;
        }
    }
}

/// Runs request `id`, leaves its answer frame in `out`, and returns how
/// long it ran, in ns, and the answer's attachments, which go right after
/// it.
fn run_one(
    registry: &Registry,
    id: u64,
    body: &[u8],
    attachments: Vec<Vec<u8>>,
    out: &mut Vec<u8>,
) -> (u64, Vec<Attachment>) {
    // The reader routed it here by kind and id, so the prefix is there.
    let parts = Parts::of(body).expect("a routed request has a kind and id");
    let Some((index, rest)) = request::split(parts.payload) else {
        answer::failed(out, id, "a request too short for its task index");
        return (0, Vec::new());
    };
    answer::begin_ok(out, id);
    let began = Instant::now();
    let outcome = if parts.kind == CHUNK {
        run_chunk(registry, index, rest, out)
    } else {
        run_caught(registry, index, rest, Arrived::Request(attachments), out)
    };
    let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let attached = match outcome {
        Outcome::Done(attached) => {
            answer::end_ok(out, nanos);
            frame::attach(out, attached.iter().map(|a| a.as_bytes().len()));
            attached
        }
        Outcome::Failed(message) => {
            answer::failed(out, id, &message);
            Vec::new()
        }
        Outcome::Panicked(report) => {
            answer::panicked(out, id, &report);
            Vec::new()
        }
    };
    (nanos, attached)
}

/// What running one task produced.
enum Outcome {
    /// The encoded result was appended; its attachments.
    Done(Vec<Attachment>),
    /// The task could not be run (bad arguments, unencodable result).
    Failed(String),
    /// The task panicked.
    Panicked(PanicReport),
}

/// Runs task `index` on encoded `args`, catching a panic; on success the
/// encoded result is appended to `out`, otherwise `out` is left as it was.
fn run_caught(
    registry: &Registry,
    index: u32,
    args: &[u8],
    arrived: Arrived,
    out: &mut Vec<u8>,
) -> Outcome {
    let mark = out.len();
    let outcome = panic::catch(|| registry.invoke(index, args, arrived, out));
    if sys::IS_FORK_COPY.load(std::sync::atomic::Ordering::Relaxed) {
        // A copy the task made with fork() and let return (or panic): it
        // holds our socket, and must not answer anything. It touches nothing
        // shared on the way out (a lock another thread held at the fork
        // would never be released in the copy).
        sys::exit_now(0);
    }
    let outcome = match outcome {
        Ok(Ok(attached)) => return Outcome::Done(attached),
        Ok(Err(message)) => Outcome::Failed(message),
        Err(report) => Outcome::Panicked(report),
    };
    out.truncate(mark);
    outcome
}

/// Runs every item of a chunk, each on its own: a panic fails only its item.
fn run_chunk(registry: &Registry, index: u32, rest: &[u8], out: &mut Vec<u8>) -> Outcome {
    let items = match chunk::items(rest) {
        Ok(items) => items,
        Err(message) => return Outcome::Failed(format!("malformed chunk: {message}")),
    };
    for item in items {
        let writer = ItemWriter::begin(out);
        let tag = match run_caught(registry, index, item, Arrived::Item, out) {
            Outcome::Done(_) => chunk::ITEM_OK,
            Outcome::Failed(message) => {
                out.extend_from_slice(message.as_bytes());
                chunk::ITEM_FAILED
            }
            Outcome::Panicked(report) => {
                answer::encode_report(&report, out);
                chunk::ITEM_PANIC
            }
        };
        if let Err(message) = writer.end(out, tag) {
            return Outcome::Failed(message);
        }
    }
    Outcome::Done(Vec::new())
}
