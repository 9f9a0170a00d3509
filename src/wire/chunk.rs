//! `CHUNK`: many small tasks in one frame, and the per-item outcomes in
//! its answer. The pool writes chunks ([`ChunkBuilder`]) and reads their
//! answers ([`next_item`]); the worker reads chunks ([`items`]) and writes
//! the answers ([`ItemWriter`]).

use super::frame::{self, CHUNK, HEADER_LEN, PREFIX_LEN};
use crate::codec::attach;
use crate::error::{Error, Repr};

/// Per-item outcomes inside the answer to a `CHUNK`.
pub(crate) const ITEM_OK: u8 = 0;
pub(crate) const ITEM_PANIC: u8 = 1;
pub(crate) const ITEM_FAILED: u8 = 2;

/// Where a chunk's task index sits in its frame.
const INDEX_AT: usize = HEADER_LEN + PREFIX_LEN;
/// Where a chunk's item count sits in its frame.
const COUNT_AT: usize = INDEX_AT + 4;
/// Bytes of an item's tag and length in a chunk's answer.
const ITEM_HEAD: usize = 1 + 4;

/// Builds a `CHUNK` frame item by item.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    index: u32,
    frame: Vec<u8>,
    lens: Vec<u32>,
}

impl ChunkBuilder {
    pub(crate) fn new(index: u32) -> ChunkBuilder {
        let mut builder = ChunkBuilder {
            index,
            frame: Vec::with_capacity(256),
            lens: Vec::new(),
        };
        builder.reset();
        builder
    }

    fn reset(&mut self) {
        frame::begin(&mut self.frame, CHUNK, 0);
        self.frame.extend_from_slice(&self.index.to_le_bytes());
        self.frame.extend_from_slice(&[0; 4]); // the count, set by `take`
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Encoded bytes so far.
    pub(crate) fn bytes(&self) -> usize {
        // Each item also costs its 4-byte length at the end: zero-byte
        // arguments (`()`) must still fill a chunk.
        self.frame.len() + 4 * self.lens.len()
    }

    /// Appends one item's arguments; on an encode error nothing is appended.
    /// Its buffers go inside the encoding: a chunk carries no attachments.
    pub(crate) fn push<A: serde::Serialize + 'static>(&mut self, args: &A) -> Result<(), Error> {
        let before = self.frame.len();
        let encoded = attach::encode_inline(args, &mut self.frame).and_then(|()| {
            u32::try_from(self.frame.len() - before).map_err(|_| {
                Error::new(Repr::Encode {
                    ty: std::any::type_name::<A>(),
                    message: "over 4 GiB; submit values this large one at a time".into(),
                })
            })
        });
        match encoded {
            Ok(len) => {
                self.lens.push(len);
                Ok(())
            }
            Err(err) => {
                self.frame.truncate(before);
                Err(err)
            }
        }
    }

    /// Appends an item already encoded (taken from another chunk).
    pub(crate) fn push_encoded(&mut self, item: &[u8]) {
        self.frame.extend_from_slice(item);
        self.lens
            .push(u32::try_from(item.len()).expect("came from a chunk"));
    }

    /// The complete frame. The builder is left empty, ready for the next chunk.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let count = u32::try_from(self.lens.len()).expect("fewer than 2^32 items");
        self.frame[COUNT_AT..COUNT_AT + 4].copy_from_slice(&count.to_le_bytes());
        for len in self.lens.drain(..) {
            self.frame.extend_from_slice(&len.to_le_bytes());
        }
        frame::end(&mut self.frame);
        let frame = std::mem::take(&mut self.frame);
        self.reset();
        frame
    }
}

/// The items of a complete `CHUNK` frame we built.
pub(crate) fn items_of_frame(frame: &[u8]) -> Result<Vec<&[u8]>, String> {
    items(frame.get(COUNT_AT..).ok_or("a truncated chunk frame")?)
}

/// The items of a `CHUNK`, given its payload after the task index.
pub(crate) fn items(rest: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (count, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("a chunk without a count")?;
    let count = u32::from_le_bytes(*count) as usize;
    let lens_at = rest
        .len()
        .checked_sub(count.checked_mul(4).ok_or("absurd item count")?)
        .ok_or("a chunk shorter than its item count")?;
    let (mut items, lens) = rest.split_at(lens_at);
    let mut out = Vec::with_capacity(count);
    for len in lens.chunks_exact(4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if len > items.len() {
            return Err("a chunk item longer than the chunk".into());
        }
        let (item, tail) = items.split_at(len);
        out.push(item);
        items = tail;
    }
    if items.is_empty() {
        Ok(out)
    } else {
        Err("bytes left over after a chunk's items".into())
    }
}

/// Writes one item's outcome into a chunk's answer: [`begin`](Self::begin)
/// before the item's bytes are appended, [`end`](Self::end) after.
#[derive(Debug)]
pub(crate) struct ItemWriter {
    at: usize,
}

impl ItemWriter {
    pub(crate) fn begin(out: &mut Vec<u8>) -> ItemWriter {
        let at = out.len();
        out.extend_from_slice(&[0; ITEM_HEAD]);
        ItemWriter { at }
    }

    /// Tags the item; `Err` if what was appended is over 4 GiB.
    pub(crate) fn end(self, out: &mut [u8], tag: u8) -> Result<(), String> {
        let len = u32::try_from(out.len() - self.at - ITEM_HEAD)
            .map_err(|_| "a result in a chunk is over 4 GiB; submit it on its own".to_string())?;
        out[self.at] = tag;
        out[self.at + 1..self.at + ITEM_HEAD].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// One item's outcome in the answer to a `CHUNK`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Item<'a> {
    pub(crate) tag: u8,
    pub(crate) bytes: &'a [u8],
}

/// Reads the next item outcome from a chunk answer's result at `*pos`.
pub(crate) fn next_item<'a>(result: &'a [u8], pos: &mut usize) -> Result<Item<'a>, String> {
    let rest = result.get(*pos..).unwrap_or_default();
    let Some(([tag, len @ ..], rest)) = rest.split_first_chunk::<ITEM_HEAD>() else {
        return Err("a chunk answer with fewer items than were sent".into());
    };
    let len = u32::from_le_bytes(*len) as usize;
    let bytes = rest
        .get(..len)
        .ok_or("a chunk answer item longer than the answer")?;
    *pos += ITEM_HEAD + len;
    Ok(Item { tag: *tag, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::Parts;

    #[test]
    fn chunk_frames_split_back_into_their_items() {
        let mut builder = ChunkBuilder::new(9);
        for item in [1u64, 300, 70_000] {
            builder.push(&item).unwrap();
        }
        assert_eq!(builder.len(), 3);
        let frame = builder.take();
        assert_eq!(builder.len(), 0, "ready for the next chunk");
        let parts = Parts::of(&frame[HEADER_LEN..]).unwrap();
        assert_eq!(parts.kind, CHUNK);
        let (index, rest) = crate::wire::request::split(parts.payload).unwrap();
        assert_eq!(index, 9);
        let values: Vec<u64> = items(rest)
            .unwrap()
            .iter()
            .map(|item| attach::decode(item, Vec::new()).unwrap())
            .collect();
        assert_eq!(values, [1, 300, 70_000]);
        assert_eq!(items_of_frame(&frame).unwrap().len(), 3);
        // A second chunk from the same builder is whole too.
        builder.push(&5u64).unwrap();
        let frame = builder.take();
        assert_eq!(items_of_frame(&frame).unwrap().len(), 1);
        assert!(items(&[9, 0, 0, 0, 1]).is_err());
        assert!(items(&[1, 0, 0, 0, 7, 7, 9, 0, 0, 0]).is_err());
    }

    #[test]
    fn chunk_answers_are_read_item_by_item() {
        let mut out = Vec::new();
        let item = ItemWriter::begin(&mut out);
        out.push(42);
        item.end(&mut out, ITEM_OK).unwrap();
        let item = ItemWriter::begin(&mut out);
        item.end(&mut out, ITEM_PANIC).unwrap();
        let mut pos = 0;
        assert_eq!(
            next_item(&out, &mut pos).unwrap(),
            Item {
                tag: ITEM_OK,
                bytes: &[42]
            }
        );
        assert_eq!(next_item(&out, &mut pos).unwrap().tag, ITEM_PANIC);
        assert!(next_item(&out, &mut pos).is_err());
        assert!(next_item(&[0, 9, 0, 0, 0, 1], &mut 0).is_err());
    }
}
