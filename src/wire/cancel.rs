//! `CANCEL`: the caller of request `id` stopped waiting. The pool writes
//! it on the data stream, after the request itself, so a worker has always
//! read a request before its cancel; the worker's reader acts on it: a
//! request not started yet is skipped, a running one ends the worker.

use super::frame::{self, CANCEL, HEADER_LEN, PREFIX_LEN};

/// The whole `CANCEL` frame for request `id`.
pub(crate) fn encode(id: u64) -> [u8; HEADER_LEN + PREFIX_LEN] {
    frame::empty(CANCEL, id)
}
