//! `CALL` and `REPLY`: a request that a worker starts (from any of its
//! threads, while a task runs), answered by the pool. The call's id is the
//! worker's own numbering; the reply repeats it.
//!
//! This is the routing point channel, manager and log frames plug into: a
//! call names a [`Service`] in its first payload byte.

use super::frame::{self, CALL, REPLY};

/// What a call asks of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Service {
    /// Sends the bytes back: a round trip through the pool's routing, for
    /// tests and diagnostics.
    Echo = 0,
    /// A call on a shared object of a [`Manager`](crate::Manager): the
    /// request and reply of [`manager::wire`](crate::manager::wire).
    Manager = 1,
}

impl Service {
    fn from_byte(byte: u8) -> Option<Service> {
        match byte {
            0 => Some(Service::Echo),
            1 => Some(Service::Manager),
            _ => None,
        }
    }
}

/// The first bytes of a `CALL` frame to `service` with id `id`, whose
/// `len` payload bytes follow (written separately, so a large payload is
/// not copied).
pub(crate) fn call_head(id: u64, service: Service, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + frame::PREFIX_LEN + 1);
    frame::begin(&mut out, CALL, id);
    out.push(service as u8);
    let body_len = (out.len() - frame::HEADER_LEN + len) as u64;
    out[..frame::HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
    out
}

/// A call's payload: the service it names and its arguments.
pub(crate) fn parse_call(payload: &[u8]) -> Result<(Service, &[u8]), String> {
    let (&service, args) = payload.split_first().ok_or("a call naming no service")?;
    let service = Service::from_byte(service)
        .ok_or_else(|| format!("a call to unknown service {service}"))?;
    Ok((service, args))
}

const REPLY_OK: u8 = 0;
const REPLY_ERR: u8 = 1;

/// The whole `REPLY` frame to call `id`.
pub(crate) fn reply(id: u64, outcome: Result<&[u8], &str>) -> Vec<u8> {
    let mut frame = Vec::new();
    frame::begin(&mut frame, REPLY, id);
    match outcome {
        Ok(bytes) => {
            frame.push(REPLY_OK);
            frame.extend_from_slice(bytes);
        }
        Err(message) => {
            frame.push(REPLY_ERR);
            frame.extend_from_slice(message.as_bytes());
        }
    }
    frame::end(&mut frame);
    frame
}

/// A reply's payload: the service's answer, or its error text. `Err` if the
/// payload is garbage.
pub(crate) fn parse_reply(payload: &[u8]) -> Result<Result<&[u8], String>, String> {
    match payload.split_first() {
        Some((&REPLY_OK, bytes)) => Ok(Ok(bytes)),
        Some((&REPLY_ERR, text)) => Ok(Err(String::from_utf8_lossy(text).into_owned())),
        _ => Err("a reply with no outcome".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{HEADER_LEN, Parts};

    #[test]
    fn calls_and_replies_read_back_as_written() {
        let mut call = call_head(5, Service::Echo, 3);
        call.extend_from_slice(b"abc");
        let parts = Parts::of(&call[HEADER_LEN..]).unwrap();
        assert_eq!(frame::body_len_of(&call) as usize, call.len() - HEADER_LEN);
        assert_eq!((parts.kind, parts.id), (CALL, 5));
        assert_eq!(parse_call(parts.payload), Ok((Service::Echo, &b"abc"[..])));
        assert!(parse_call(&[]).is_err());
        assert!(parse_call(&[0xEE]).is_err());

        let out = [reply(5, Ok(b"abc")), reply(6, Err("no"))].concat();
        let first = Parts::of(&out[HEADER_LEN..HEADER_LEN + 13]).unwrap();
        assert_eq!((first.kind, first.id), (REPLY, 5));
        assert_eq!(parse_reply(first.payload), Ok(Ok(&b"abc"[..])));
        let second = Parts::of(&out[2 * HEADER_LEN + 13..]).unwrap();
        assert_eq!(parse_reply(second.payload), Ok(Err("no".to_string())));
        assert!(parse_reply(&[]).is_err());
    }
}
