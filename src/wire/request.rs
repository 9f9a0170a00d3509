//! `REQUEST`: run one task. Written by the pool (encoded once, at submit
//! time), read by the worker.

use super::frame::{self, REQUEST};
use crate::codec;
use crate::error::Error;

/// Encodes a complete request frame for task `index` (its id is set when a
/// worker is chosen: [`frame::set_id`]).
pub(crate) fn encode<A: serde::Serialize>(index: u32, args: &A) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    frame::begin(&mut out, REQUEST, 0);
    out.extend_from_slice(&index.to_le_bytes());
    codec::encode_into(args, &mut out)?;
    frame::end(&mut out);
    Ok(out)
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
        let mut encoded = encode(7, &(1u64, "x".to_string())).unwrap();
        frame::set_id(&mut encoded, 3);
        let len = u64::from_le_bytes(encoded[..HEADER_LEN].try_into().unwrap()) as usize;
        assert_eq!(len, encoded.len() - HEADER_LEN);
        let parts = Parts::of(&encoded[HEADER_LEN..]).unwrap();
        assert_eq!((parts.kind, parts.id), (REQUEST, 3));
        let (index, args) = split(parts.payload).unwrap();
        assert_eq!(index, 7);
        let args: (u64, String) = codec::decode(args).unwrap();
        assert_eq!(args, (1, "x".to_string()));
        assert_eq!(split(&[1, 2]), None);
    }
}
