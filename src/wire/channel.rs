//! Channel frames: the messages of [`crate::channel`] endpoints held by a
//! worker, and the credit that bounds them. The frame's id is the channel's.
//!
//! The pool's process holds every channel; a worker only relays what its
//! endpoints do. A worker's endpoint announces itself (`OPEN`) the first
//! time one of its role arrives in the worker and says goodbye (`CLOSE`)
//! when the last is dropped, so the pool knows who may still send or
//! receive. A sender writes a message only with credit (`WANT` asks for
//! it, `CREDIT` grants it); a receiver asks for each message it waits for
//! (`WANT`), so nothing is pushed at a worker that did not ask. A message
//! over [`PIECE`] bytes travels in pieces, each a frame of its own, so
//! small frames (answers, other channels) are not stuck behind it; only the
//! last piece makes it a message.
//!
//! A worker whose last endpoint of a channel is gone forgets it once the
//! pool says it will send nothing more for it (`FORGET`, answered by
//! `FORGOTTEN` after everything else the pool had for it): a long-lived
//! worker that sees a million channels does not keep a million entries.
//! Credit granted before the `FORGET` is void on both sides.

use super::frame;
use crate::error::Exit;

// Kinds, worker → pool.
pub(crate) const OPEN: u8 = 0x40;
pub(crate) const CLOSE: u8 = 0x41;
pub(crate) const SEND: u8 = 0x42;
pub(crate) const WANT: u8 = 0x43;
pub(crate) const RETURN: u8 = 0x44;
pub(crate) const FORGET: u8 = 0x45;
/// Whether `kind` is a channel frame a worker sends.
pub(crate) fn from_worker(kind: u8) -> bool {
    matches!(kind, OPEN | CLOSE | SEND | WANT | RETURN | FORGET)
}

// Kinds, pool → worker.
pub(crate) const CREDIT: u8 = 0x48;
pub(crate) const DATA: u8 = 0x49;
pub(crate) const CLOSED: u8 = 0x4A;
pub(crate) const FORGOTTEN: u8 = 0x4B;

/// The largest piece of a message in one frame: 1 MiB, and room for an
/// encoding's few header bytes on top, so that a 1 MiB buffer sent as a
/// message is one piece, which the receiver takes as it was read. (At
/// exactly 1 MiB it was a full piece and a runt of 5 bytes, and putting
/// the two together cost a copy of the whole message. W6 did not get
/// faster for it, in a noisy run: its sender, which copies twice, is the
/// slower end.)
pub(crate) const PIECE: usize = (1 << 20) + (4 << 10);

/// Which end of a channel an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Role {
    Sender = 0,
    Receiver = 1,
}

impl Role {
    pub(crate) fn from_byte(byte: u8) -> Result<Role, String> {
        match byte {
            0 => Ok(Role::Sender),
            1 => Ok(Role::Receiver),
            _ => Err(format!(
                "a channel role {byte}, neither sender nor receiver"
            )),
        }
    }
}

/// A piece's flags: this piece ends the message.
pub(crate) const LAST: u8 = 1;
/// A `DATA` flag: not a message but the text of an error (a sender that
/// died), delivered in its place.
pub(crate) const FAULT: u8 = 2;

/// A whole frame of `kind` for channel `id` with `payload` (`OPEN`,
/// `CLOSE`, `WANT`, `CREDIT`, `CLOSED`).
pub(crate) fn control(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + frame::PREFIX_LEN + payload.len());
    frame::begin(&mut out, kind, id);
    out.extend_from_slice(payload);
    frame::end(&mut out);
    out
}

/// `WANT` payload: `n` more messages, to send (a sender's credit) or to
/// receive (a receiver's demand).
pub(crate) fn want(id: u64, role: Role, n: u32) -> Vec<u8> {
    let mut payload = [0; 5];
    payload[0] = role as u8;
    payload[1..].copy_from_slice(&n.to_le_bytes());
    control(WANT, id, &payload)
}

/// Reads a `WANT` payload.
pub(crate) fn parse_want(payload: &[u8]) -> Result<(Role, u32), String> {
    match payload {
        [role, n @ ..] if n.len() == 4 => Ok((
            Role::from_byte(*role)?,
            u32::from_le_bytes(n.try_into().expect("4 bytes")),
        )),
        _ => Err(format!("a channel WANT of {} bytes", payload.len())),
    }
}

/// Reads a `CREDIT` payload.
pub(crate) fn parse_credit(payload: &[u8]) -> Result<u32, String> {
    let n: [u8; 4] = payload
        .try_into()
        .map_err(|_| format!("a channel CREDIT of {} bytes", payload.len()))?;
    Ok(u32::from_le_bytes(n))
}

/// Reads the single role byte of `OPEN`, `CLOSE` and `CLOSED`.
pub(crate) fn parse_role(payload: &[u8]) -> Result<Role, String> {
    match payload {
        [role] => Role::from_byte(*role),
        _ => Err(format!("a channel role of {} bytes", payload.len())),
    }
}

/// Appends one piece frame to `out`.
pub(crate) fn push_piece(out: &mut Vec<u8>, kind: u8, id: u64, flags: u8, bytes: &[u8]) {
    out.extend_from_slice(&piece_head(kind, id, flags, bytes.len()));
    out.extend_from_slice(bytes);
}

/// A message given back (`RETURN`), as piece frames of at most `piece`
/// bytes each, together in one buffer: written in one go, so that no
/// other frame (another message given back, from another thread) goes
/// between them. A message that came in pieces goes back in pieces; in
/// one frame it could be over the pool's frame limit. `fault`: the item is
/// the news of a dead sender (a `FAULT` piece's bytes), given back too.
pub(crate) fn give_back(id: u64, message: &[u8], piece: usize, fault: bool) -> Vec<u8> {
    let last = if fault { LAST | FAULT } else { LAST };
    let mut out = Vec::with_capacity(message.len() + PIECE_HEAD_LEN);
    let mut chunks = message.chunks(piece.max(1)).peekable();
    if chunks.peek().is_none() {
        push_piece(&mut out, RETURN, id, last, &[]);
    }
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() { last } else { 0 };
        push_piece(&mut out, RETURN, id, flags, chunk);
    }
    out
}

/// Bytes of a piece frame before its `len` bytes of message.
pub(crate) const PIECE_HEAD_LEN: usize = frame::HEADER_LEN + frame::PREFIX_LEN + 1;

/// The start of a piece frame whose `len` bytes of message follow (written
/// from where they are, not copied).
pub(crate) fn piece_head(kind: u8, id: u64, flags: u8, len: usize) -> [u8; PIECE_HEAD_LEN] {
    let mut head = [0; PIECE_HEAD_LEN];
    let body_len = (frame::PREFIX_LEN + 1 + len) as u64;
    head[..frame::HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
    head[frame::HEADER_LEN] = kind;
    head[frame::HEADER_LEN + 1..PIECE_HEAD_LEN - 1].copy_from_slice(&id.to_le_bytes());
    head[PIECE_HEAD_LEN - 1] = flags;
    head
}

/// Reads a piece's flags and bytes.
pub(crate) fn parse_piece(payload: &[u8]) -> Result<(u8, &[u8]), String> {
    let (&flags, bytes) = payload
        .split_first()
        .ok_or("a channel piece with no flags")?;
    if flags & !(LAST | FAULT) != 0 {
        return Err(format!("a channel piece with unknown flags 0x{flags:02x}"));
    }
    Ok((flags, bytes))
}

/// A `FAULT` piece's bytes: the pid of the sender's worker that died, how
/// (`0` code, `1` signal, `2` unknown, with bit `0x80` if the pool stopped
/// it, then an `i32`), and the task it was running (UTF-8, empty if none).
pub(crate) fn fault(pid: u32, exit: Exit, stopped: bool, task: Option<&str>) -> Vec<u8> {
    let (tag, value) = match exit {
        Exit::Code(code) => (0u8, code),
        Exit::Signal(sig) => (1, sig),
        Exit::Unknown => (2, 0),
    };
    let tag = if stopped { tag | STOPPED } else { tag };
    let mut out = Vec::with_capacity(9 + task.map_or(0, str::len));
    out.extend_from_slice(&pid.to_le_bytes());
    out.push(tag);
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(task.unwrap_or_default().as_bytes());
    out
}

/// A fault's exit tag bit: the pool stopped the worker (its task was
/// cancelled or timed out).
const STOPPED: u8 = 0x80;

/// Reads a `FAULT` piece: pid, exit, whether the pool stopped the worker,
/// and the task's name (empty: none).
pub(crate) fn parse_fault(bytes: &[u8]) -> Result<(u32, Exit, bool, &str), String> {
    let garbage = || format!("a channel fault of {} bytes", bytes.len());
    let (pid, rest) = bytes.split_first_chunk::<4>().ok_or_else(garbage)?;
    let (&tag, rest) = rest.split_first().ok_or_else(garbage)?;
    let (value, task) = rest.split_first_chunk::<4>().ok_or_else(garbage)?;
    let value = i32::from_le_bytes(*value);
    let stopped = tag & STOPPED != 0;
    let exit = match tag & !STOPPED {
        0 => Exit::Code(value),
        1 => Exit::Signal(value),
        2 => Exit::Unknown,
        _ => return Err(garbage()),
    };
    let task = std::str::from_utf8(task).map_err(|_| garbage())?;
    Ok((u32::from_le_bytes(*pid), exit, stopped, task))
}

/// The largest piece that fits a frame limit of `max_frame` body bytes.
pub(crate) fn piece_for(max_frame: u64) -> usize {
    let room = usize::try_from(max_frame).unwrap_or(usize::MAX);
    PIECE.min(room.saturating_sub(frame::PREFIX_LEN + 1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{HEADER_LEN, Parts};

    #[test]
    fn control_payloads_read_back_and_garbage_is_refused() {
        let frame = want(3, Role::Receiver, 7);
        let parts = Parts::of(&frame[HEADER_LEN..]).unwrap();
        assert_eq!((parts.kind, parts.id), (WANT, 3));
        assert_eq!(parse_want(parts.payload), Ok((Role::Receiver, 7)));
        assert!(parse_want(&[0, 1]).is_err());
        assert!(parse_want(&[9, 0, 0, 0, 0]).is_err());
        assert_eq!(parse_credit(&5u32.to_le_bytes()), Ok(5));
        assert!(parse_credit(&[1]).is_err());
        assert_eq!(parse_role(&[0]), Ok(Role::Sender));
        assert!(parse_role(&[]).is_err());
        assert!(parse_piece(&[]).is_err());
        assert!(parse_piece(&[0x80]).is_err());
        assert_eq!(piece_for(1 << 40), PIECE);
        let fault = fault(42, Exit::Signal(9), true, Some("app::work"));
        assert_eq!(
            parse_fault(&fault),
            Ok((42, Exit::Signal(9), true, "app::work"))
        );
        assert!(parse_fault(&fault[..6]).is_err());
        assert_eq!(piece_for(64), 64 - 10);
    }
}
