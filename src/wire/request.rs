//! `REQUEST`: run one task. Written by the pool (encoded once, at submit
//! time), read by the worker.

use std::fmt;

use super::frame::{self, REQUEST};
use crate::codec::attach::{self, Attachment};
use crate::error::Error;

/// A request as it goes out: its frame, and the attachments written right
/// after it (see [`frame::attach`]).
#[derive(Clone, Default)]
pub(crate) struct Request {
    pub(crate) frame: Vec<u8>,
    pub(crate) attachments: Vec<Attachment>,
}

impl Request {
    /// A request whose frame has no attachments (a `map` chunk's).
    pub(crate) fn plain(frame: Vec<u8>) -> Request {
        Request {
            frame,
            attachments: Vec::new(),
        }
    }

    /// Its body length on the wire, attachments included.
    pub(crate) fn body_len(&self) -> u64 {
        frame::body_len_of(&self.frame)
    }

    /// Its bytes on the wire, length prefix included.
    pub(crate) fn wire_len(&self) -> usize {
        self.pieces().map(<[u8]>::len).sum()
    }

    /// What goes on the wire, in order.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.frame[..]).chain(self.attachments.iter().map(|a| a.as_bytes()))
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attached: Vec<usize> = self
            .attachments
            .iter()
            .map(|a| a.as_bytes().len())
            .collect();
        f.debug_struct("Request")
            .field("frame_bytes", &self.frame.len())
            .field("attachments", &attached)
            .finish()
    }
}

/// Encodes a complete request for task `index` (its id is set when a
/// worker is chosen: [`frame::set_id`]). Takes the arguments whole: their
/// large buffers become the request's attachments, uncopied.
pub(crate) fn encode<A: serde::Serialize + 'static>(index: u32, args: A) -> Result<Request, Error> {
    let mut frame = Vec::with_capacity(64);
    frame::begin(&mut frame, REQUEST, 0);
    frame.extend_from_slice(&index.to_le_bytes());
    let attachments = attach::encode(args, &mut frame)?;
    frame::end(&mut frame);
    frame::attach(&mut frame, attachments.iter().map(|a| a.as_bytes().len()));
    Ok(Request { frame, attachments })
}

/// The payload of a `REQUEST` or `CHUNK`: the task's index, then the rest
/// (the arguments, or the chunk's items). `None` if it is too short.
pub(crate) fn split(payload: &[u8]) -> Option<(u32, &[u8])> {
    let (index, rest) = payload.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*index), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{HEADER_LEN, Parts};

    #[test]
    fn a_request_reads_back_as_written() {
        let mut encoded = encode(7, (1u64, "x".to_string())).unwrap().frame;
        frame::set_id(&mut encoded, 3);
        let len = u64::from_le_bytes(encoded[..HEADER_LEN].try_into().unwrap()) as usize;
        assert_eq!(len, encoded.len() - HEADER_LEN);
        let parts = Parts::of(&encoded[HEADER_LEN..]).unwrap();
        assert_eq!((parts.kind, parts.id), (REQUEST, 3));
        let (index, args) = split(parts.payload).unwrap();
        assert_eq!(index, 7);
        let args: (u64, String) = crate::codec::decode(args).unwrap();
        assert_eq!(args, (1, "x".to_string()));
        assert_eq!(split(&[1, 2]), None);
    }
}
