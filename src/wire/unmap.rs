//! `UNMAP`: the pool's process let these shared memory regions go (their
//! last handle there dropped), so a worker unmaps what it kept of them
//! (see `shared::kept`). Rare and off the hot path: one frame per flush
//! that has news, for any number of regions.

use super::frame::{self, UNMAP};

/// Region ids per frame at most (64 KiB of payload).
const IDS_PER_FRAME: usize = 8192;

/// The `UNMAP` frames for `ids`, back to back.
pub(crate) fn encode(ids: &[u64]) -> Vec<u8> {
    let mut frames = Vec::new();
    let mut out = Vec::new();
    for batch in ids.chunks(IDS_PER_FRAME) {
        frame::begin(&mut out, UNMAP, 0);
        for id in batch {
            out.extend_from_slice(&id.to_le_bytes());
        }
        frame::end(&mut out);
        frames.extend_from_slice(&out);
    }
    frames
}

/// The region ids of an `UNMAP` payload; `Err` describes one that is not
/// a whole number of them.
pub(crate) fn parse(payload: &[u8]) -> Result<impl Iterator<Item = u64> + '_, String> {
    if !payload.len().is_multiple_of(8) {
        return Err(format!(
            "an UNMAP frame of {} payload bytes, not a whole number of region ids",
            payload.len()
        ));
    }
    Ok(payload
        .chunks_exact(8)
        .map(|id| u64::from_le_bytes(id.try_into().expect("8 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{HEADER_LEN, Parts};

    /// Splits back-to-back frames into their bodies.
    fn bodies(mut frames: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while let Some((header, rest)) = frames.split_first_chunk::<HEADER_LEN>() {
            let len = u64::from_le_bytes(*header) as usize;
            out.push(&rest[..len]);
            frames = &rest[len..];
        }
        out
    }

    #[test]
    fn ids_round_trip_across_frames() {
        let ids: Vec<u64> = (0..IDS_PER_FRAME as u64 + 3).map(|i| i * 977).collect();
        let frames = encode(&ids);
        let bodies = bodies(&frames);
        assert_eq!(bodies.len(), 2, "split at {IDS_PER_FRAME} ids");
        let mut back = Vec::new();
        for body in bodies {
            let parts = Parts::of(body).unwrap();
            assert_eq!((parts.kind, parts.id), (UNMAP, 0));
            back.extend(parse(parts.payload).unwrap());
        }
        assert_eq!(back, ids);
    }

    #[test]
    fn a_payload_that_is_not_whole_ids_is_an_error() {
        assert!(parse(&[0; 12]).is_err());
        assert_eq!(parse(&[]).unwrap().count(), 0);
    }
}
