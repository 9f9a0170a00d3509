//! Out-of-band byte buffers: large buffers in a value travel beside its
//! encoding, as attachments of its frame (see
//! [`frame::attach`](crate::wire::frame::attach)), instead of through the
//! codec. The sender writes them from the value's own memory; the receiver
//! reads each into an allocation of its own, which becomes the decoded
//! buffer. One kernel copy each way, none in user space (pickle protocol
//! 5's out-of-band buffers, for Rust values).
//!
//! Which buffers: every [`Buffer`](crate::Buffer) nested anywhere in the
//! value, and a whole value that is a `Vec<u8>` (recognised by its type, so
//! the natural `fn f(data: Vec<u8>) -> Vec<u8>` needs no new type; serde
//! would otherwise encode it byte by byte).
//!
//! Encoding runs with a collector installed on the thread; a buffer's
//! `Serialize` finds it, hands its bytes over and writes only their index.
//! Decoding runs with the received attachments installed; a buffer's
//! `Deserialize` takes its own by that index. With neither installed (a
//! path without attachments, such as `map` items and channel messages, or
//! another serde format altogether) a buffer is plain serde bytes.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Repr};
use crate::wire::frame::MAX_ATTACHMENTS;

/// Buffers smaller than this are copied into the encoding: below it a
/// copy costs less than a separate write and allocation.
pub(crate) const ATTACH_FROM: usize = 16 * 1024;

/// Bytes that go out beside a frame, kept alive until it is written (and
/// for as long as its request may be sent again).
pub(crate) type Attachment = Arc<dyn AsBytes>;

/// Memory an [`Attachment`] can be written from.
pub(crate) trait AsBytes: Send + Sync + 'static {
    fn as_bytes(&self) -> &[u8];
}

impl AsBytes for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

/// What a buffer being encoded on this thread does.
enum Mode {
    /// Goes out as an attachment if it is large enough.
    Collect(Vec<Attachment>),
    /// Is copied into the encoding whatever its size: the value goes in a
    /// frame that carries no attachments (a `map` chunk's item), but is
    /// read as one that could.
    Inline,
}

thread_local! {
    /// How buffers are encoded on this thread: `None` as plain serde bytes.
    static OUTGOING: RefCell<Option<Mode>> = const { RefCell::new(None) };
    /// The attachments of the value being decoded on this thread, each
    /// taken once, if attachments came with it.
    static INCOMING: RefCell<Option<Vec<Option<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// How a buffer is written inside a value encoded with attachments.
#[derive(Serialize)]
enum Outgoing<'a> {
    Inline(Raw<'a>),
    Attached(u32),
}

/// How a buffer is read inside a value decoded with attachments.
#[derive(Deserialize)]
enum Incoming {
    Inline(RawOwned),
    Attached(u32),
}

/// Bytes serialized as one block (`serialize_bytes`).
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Bytes deserialized as one block, or as a sequence (formats without
/// a bytes type, such as JSON, write them so).
struct RawOwned(Vec<u8>);

impl<'de> Deserialize<'de> for RawOwned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(bytes)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(bytes)
            }
        }
        deserializer.deserialize_byte_buf(Bytes).map(RawOwned)
    }
}

/// Serializes a buffer: as an attachment (from `owner`, not copied) if
/// attachments are being collected and it is large enough, else as bytes.
pub(crate) fn serialize<S: Serializer>(
    bytes: &[u8],
    owner: impl FnOnce() -> Attachment,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let attached = OUTGOING.with_borrow_mut(|mode| match mode.as_mut()? {
        // Past the most a frame may carry, the rest go inline.
        Mode::Collect(collected)
            if bytes.len() >= ATTACH_FROM && collected.len() < MAX_ATTACHMENTS =>
        {
            let index = collected.len() as u32;
            collected.push(owner());
            Some(Some(index))
        }
        Mode::Collect(_) | Mode::Inline => Some(None),
    });
    match attached {
        None => serializer.serialize_bytes(bytes),
        Some(None) => Outgoing::Inline(Raw(bytes)).serialize(serializer),
        Some(Some(index)) => Outgoing::Attached(index).serialize(serializer),
    }
}

/// Deserializes a buffer written by [`serialize`]: its attachment, taken
/// whole, or its bytes.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    if !INCOMING.with_borrow(Option::is_some) {
        return RawOwned::deserialize(deserializer).map(|raw| raw.0);
    }
    match Incoming::deserialize(deserializer)? {
        Incoming::Inline(raw) => Ok(raw.0),
        Incoming::Attached(index) => INCOMING
            .with_borrow_mut(|incoming| {
                incoming
                    .as_mut()?
                    .get_mut(usize::try_from(index).ok()?)?
                    .take()
            })
            .ok_or_else(|| {
                de::Error::custom(format_args!(
                    "attachment {index} is not in the frame, or was used already"
                ))
            }),
    }
}

/// Encodes `value` (its frame's payload) into `out`, with its large
/// buffers as attachments.
///
/// Takes the value whole: a `Vec<u8>` is moved into its attachment.
pub(crate) fn encode<T: Serialize + 'static>(
    value: T,
    out: &mut Vec<u8>,
) -> Result<Vec<Attachment>, Error> {
    let encoded = match into_bytes(value) {
        Ok(bytes) => encoding(Mode::Collect(Vec::new()), || {
            super::encode_into(&WholeOut(Arc::new(bytes)), out)
        }),
        Err(value) => encoding(Mode::Collect(Vec::new()), || {
            super::encode_into(&value, out)
        }),
    };
    encoded.map(|mode| match mode {
        Mode::Collect(collected) => collected,
        Mode::Inline => Vec::new(),
    })
}

/// Encodes `value` as [`encode`] does, but with every buffer inside the
/// encoding: for a frame without attachments whose reader decodes it with
/// [`decode`].
pub(crate) fn encode_inline<T: Serialize + 'static>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let encoded = match (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        Some(bytes) => encoding(Mode::Inline, || super::encode_into(&WholeRef(bytes), out)),
        None => encoding(Mode::Inline, || super::encode_into(value, out)),
    };
    encoded.map(drop)
}

/// A whole value that is a `Vec<u8>`, written as a buffer.
struct WholeOut(Attachment);

impl Serialize for WholeOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0.as_bytes(), || self.0.clone(), serializer)
    }
}

/// A whole value that is a `Vec<u8>`, borrowed, written as a buffer that
/// goes inline.
struct WholeRef<'a>(&'a [u8]);

impl Serialize for WholeRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let inline = || unreachable!("inline mode attaches nothing");
        serialize(self.0, inline, serializer)
    }
}

/// A whole value that is a `Vec<u8>`, read as a buffer.
struct WholeIn(Vec<u8>);

impl<'de> Deserialize<'de> for WholeIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(WholeIn)
    }
}

/// Decodes a whole `T` from `bytes` (a frame's payload) and `attachments`
/// (that frame's), each of which it must use.
pub(crate) fn decode<T: serde::de::DeserializeOwned + 'static>(
    bytes: &[u8],
    attachments: Vec<Vec<u8>>,
) -> Result<T, Error> {
    let previous = INCOMING.replace(Some(attachments.into_iter().map(Some).collect()));
    let decoded = if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() {
        super::decode_as::<WholeIn>(bytes, std::any::type_name::<T>())
            .map(|whole| from_bytes::<T>(whole.0))
    } else {
        super::decode::<T>(bytes)
    };
    let left = INCOMING.replace(previous).unwrap_or_default();
    let unused = left
        .iter()
        .filter(|attachment| attachment.is_some())
        .count();
    match decoded {
        Ok(_) if unused > 0 => Err(Error::new(Repr::Decode {
            ty: std::any::type_name::<T>(),
            message: format!("{unused} attachments of the frame were not part of the value"),
        })),
        decoded => decoded,
    }
}

/// Runs `encode` with buffers encoded in `mode`; returns the mode, with
/// what it collected.
fn encoding(mode: Mode, encode: impl FnOnce() -> Result<(), Error>) -> Result<Mode, Error> {
    let previous = OUTGOING.replace(Some(mode));
    let encoded = encode();
    let mode = OUTGOING.replace(previous).expect("installed above");
    encoded.map(|()| mode)
}

/// `value` as the `Vec<u8>` it is, or back if it is another type.
fn into_bytes<T: 'static>(value: T) -> Result<Vec<u8>, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        Some(bytes) => Ok(bytes.take().expect("just filled")),
        None => Err(slot.expect("not taken")),
    }
}

/// `bytes` as the `T` it is (the caller checked that `T` is `Vec<u8>`).
fn from_bytes<T: 'static>(bytes: Vec<u8>) -> T {
    let mut slot = Some(bytes);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("T is Vec<u8>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bytes;

    fn big(fill: u8) -> Bytes {
        vec![fill; ATTACH_FROM].into()
    }

    #[test]
    fn large_buffers_go_beside_the_encoding_and_small_ones_inside() {
        let value = (big(1), Bytes::from(vec![2u8; 10]), vec![big(3)]);
        let mut out = Vec::new();
        let attached = encode(value.clone(), &mut out).unwrap();
        assert_eq!(attached.len(), 2);
        assert!(
            out.len() < 100,
            "only indexes and the small one: {}",
            out.len()
        );
        let owned: Vec<Vec<u8>> = attached.iter().map(|a| a.as_bytes().to_vec()).collect();
        let back: (Bytes, Bytes, Vec<Bytes>) = decode(&out, owned).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn attachments_missing_left_over_or_taken_twice_are_errors() {
        let mut out = Vec::new();
        let attached = encode((big(1), big(2)), &mut out).unwrap();
        let owned: Vec<Vec<u8>> = attached.iter().map(|a| a.as_bytes().to_vec()).collect();
        let missing = decode::<(Bytes, Bytes)>(&out, owned[..1].to_vec()).unwrap_err();
        assert!(
            missing.to_string().contains("not in the frame"),
            "{missing}"
        );
        let mut extra = owned.clone();
        extra.push(vec![9]);
        let extra = decode::<(Bytes, Bytes)>(&out, extra).unwrap_err();
        assert!(
            extra.to_string().contains("not part of the value"),
            "{extra}"
        );
        // The same index twice (a forged encoding): the second finds it gone.
        let mut twice = Vec::new();
        encode(big(1), &mut twice).unwrap();
        let mut forged = twice.clone();
        forged.extend_from_slice(&twice);
        let err = decode::<(Bytes, Bytes)>(&forged, owned[..1].to_vec()).unwrap_err();
        assert!(err.to_string().contains("used already"), "{err}");
    }

    #[test]
    fn past_the_most_a_frame_carries_buffers_go_inline() {
        let many: Vec<Bytes> = (0..MAX_ATTACHMENTS + 3).map(|_| big(7)).collect();
        let mut out = Vec::new();
        let attached = encode(many.clone(), &mut out).unwrap();
        assert_eq!(attached.len(), MAX_ATTACHMENTS);
        let owned: Vec<Vec<u8>> = attached.iter().map(|a| a.as_bytes().to_vec()).collect();
        assert_eq!(decode::<Vec<Bytes>>(&out, owned).unwrap(), many);
    }

    #[test]
    fn a_whole_vec_of_bytes_is_moved_not_copied() {
        let bytes = vec![5u8; 1 << 20];
        let at = bytes.as_ptr();
        let mut out = Vec::new();
        let attached = encode(bytes, &mut out).unwrap();
        assert_eq!(attached[0].as_bytes().as_ptr(), at);
        let received = vec![attached[0].as_bytes().to_vec()];
        let at = received[0].as_ptr();
        let back: Vec<u8> = decode(&out, received).unwrap();
        assert_eq!(back.as_ptr(), at, "the received allocation is the value");
        // Inline, for a frame without attachments, it still reads back.
        let mut inline = Vec::new();
        encode_inline(&back, &mut inline).unwrap();
        assert_eq!(decode::<Vec<u8>>(&inline, Vec::new()).unwrap(), back);
    }
}
