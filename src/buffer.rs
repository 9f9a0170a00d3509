//! [`Buffer`]: bulk data that goes to and from tasks without being copied
//! through the codec.

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::attach::{self, AsBytes, Attachment};

/// A buffer of plain numbers (or bytes, [`Bytes`]) that a task takes or
/// returns without a copy through the codec: its memory is written to the
/// worker's socket as it is, and read on the other side into the buffer
/// the receiver gets. Nest it anywhere in an argument or result (a field of
/// a struct, an item of a tuple or `Vec`).
///
/// `T` is any [`Pod`] type: integers, floats, and `#[repr(C)]` structs of
/// them (derive `bytemuck::Pod` for your own). The elements travel as their
/// memory, so both ends must agree on `T`'s layout, as they do: a pool's
/// workers run the same executable.
///
/// Cloning is cheap (the memory is shared and immutable); a task that
/// wants to change the data takes it with [`into_vec`](Buffer::into_vec),
/// which does not copy a `Buffer<u8>` the task holds alone.
///
/// # How much it saves
///
/// Serde writes a `Vec<T>` element by element (each `u64` as a varint), so
/// a 16 MiB `Vec<u8>` inside a struct moves at a few hundred MB/s, and a
/// result of 1,000 `u64`s costs more to encode than to compute. A
/// `Buffer` moves at the speed of the socket: see the README's "Big data"
/// table. Buffers under 16 KiB are copied into the encoding (cheaper than a
/// separate write at that size); a whole argument or result that is a plain
/// `Vec<u8>` is sent the same way without this type.
///
/// Where attachments are not used — the items of [`Pool::map`](crate::Pool::map),
/// channel messages, or another serde format such as JSON — a buffer is
/// ordinary serde bytes: still one block, not byte by byte, but copied.
///
/// # Examples
///
/// ```
/// use procpool::{Buffer, Bytes, Pool};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Image { width: u32, pixels: Bytes }
///
/// fn invert(mut image: Image) -> Image {
///     let mut pixels = image.pixels.into_vec(); // no copy: the task owns it
///     pixels.iter_mut().for_each(|p| *p = 255 - *p);
///     image.pixels = pixels.into();
///     image
/// }
///
/// fn cubes(n: u64) -> Buffer<u64> {
///     (0..n).map(|i| i * i * i).collect()
/// }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![invert, cubes]);
///     tokio::runtime::Runtime::new().unwrap().block_on(async {
///         let pool = Pool::builder().workers(1).build().await?;
///         let image = Image { width: 2, pixels: vec![0u8, 10, 200, 255].into() };
///         let inverted = pool.submit(invert, image).await?;
///         assert_eq!(&inverted.pixels[..], &[255, 245, 55, 0]);
///         let cubed = pool.submit(cubes, 1_000).await?;
///         assert_eq!(cubed[10], 1_000);
///         pool.shutdown().await;
///         Ok(())
///     })
/// }
/// ```
pub struct Buffer<T: Pod = u8> {
    storage: Arc<Storage<T>>,
}

/// A buffer of bytes: [`Buffer<u8>`](Buffer).
pub type Bytes = Buffer<u8>;

/// Where a buffer's elements live.
enum Storage<T> {
    /// Elements made by this process (or received as bytes and copied to
    /// fix their alignment).
    Typed(Vec<T>),
    /// Received bytes, aligned for `T` and a whole number of them: read in
    /// place.
    Received(Vec<u8>),
}

impl<T: Pod> Buffer<T> {
    /// An empty buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// let empty = procpool::Buffer::<f32>::new();
    /// assert!(empty.is_empty());
    /// ```
    pub fn new() -> Buffer<T> {
        Buffer::from(Vec::new())
    }

    /// The elements as a vector, without a copy when this is the only
    /// handle on a buffer this process made, or on a received `Buffer<u8>`;
    /// otherwise they are copied.
    ///
    /// # Examples
    ///
    /// ```
    /// let buffer = procpool::Buffer::from(vec![1u32, 2, 3]);
    /// let mut numbers = buffer.into_vec();
    /// numbers.push(4);
    /// assert_eq!(numbers, [1, 2, 3, 4]);
    /// ```
    pub fn into_vec(self) -> Vec<T> {
        match Arc::try_unwrap(self.storage) {
            Ok(Storage::Typed(elements)) => elements,
            Ok(storage) => storage.elements().to_vec(),
            Err(shared) => shared.elements().to_vec(),
        }
    }

    /// The elements' memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let buffer = procpool::Buffer::from(vec![1u16, 2]);
    /// assert_eq!(buffer.as_bytes().len(), 4);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// A buffer of received bytes: in place if they are aligned for `T`
    /// (the allocator's alignment covers every primitive), copied if not.
    fn from_received<E: serde::de::Error>(bytes: Vec<u8>) -> Result<Buffer<T>, E> {
        let size = size_of::<T>();
        if size == 0 || !bytes.len().is_multiple_of(size) {
            return Err(E::custom(format_args!(
                "a buffer of {} bytes is not a whole number of {} ({size} bytes each)",
                bytes.len(),
                std::any::type_name::<T>(),
            )));
        }
        let storage = if TypeId::of::<T>() == TypeId::of::<u8>() {
            let mut slot = Some(bytes);
            let elements = (&mut slot as &mut dyn Any)
                .downcast_mut::<Option<Vec<T>>>()
                .and_then(Option::take)
                .expect("T is u8");
            Storage::Typed(elements)
        } else if bytemuck::try_cast_slice::<u8, T>(&bytes).is_ok() {
            Storage::Received(bytes)
        } else {
            Storage::Typed(bytemuck::allocation::pod_collect_to_vec(&bytes))
        };
        Ok(Buffer {
            storage: Arc::new(storage),
        })
    }
}

impl<T: Pod> Storage<T> {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Typed(elements) => bytemuck::cast_slice(elements),
            Storage::Received(bytes) => bytes,
        }
    }

    fn elements(&self) -> &[T] {
        match self {
            Storage::Typed(elements) => elements,
            // Checked when it was received.
            Storage::Received(bytes) => bytemuck::cast_slice(bytes),
        }
    }
}

/// A buffer's storage is what its attachment is written from.
impl<T: Pod + Send + Sync> AsBytes for Storage<T> {
    fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }
}

impl<T: Pod> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.storage.elements()
    }
}

impl<T: Pod> AsRef<[T]> for Buffer<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: Pod> Clone for Buffer<T> {
    /// Another handle on the same memory: no copy.
    fn clone(&self) -> Buffer<T> {
        Buffer {
            storage: Arc::clone(&self.storage),
        }
    }
}

impl<T: Pod> Default for Buffer<T> {
    fn default() -> Buffer<T> {
        Buffer::new()
    }
}

impl<T: Pod> From<Vec<T>> for Buffer<T> {
    /// Takes the vector as it is: no copy.
    fn from(elements: Vec<T>) -> Buffer<T> {
        Buffer {
            storage: Arc::new(Storage::Typed(elements)),
        }
    }
}

impl<T: Pod> From<&[T]> for Buffer<T> {
    fn from(elements: &[T]) -> Buffer<T> {
        Buffer::from(elements.to_vec())
    }
}

impl<T: Pod> From<Buffer<T>> for Vec<T> {
    fn from(buffer: Buffer<T>) -> Vec<T> {
        buffer.into_vec()
    }
}

impl<T: Pod> FromIterator<T> for Buffer<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Buffer<T> {
        Buffer::from(iter.into_iter().collect::<Vec<T>>())
    }
}

impl<T: Pod + PartialEq> PartialEq for Buffer<T> {
    fn eq(&self, other: &Buffer<T>) -> bool {
        self[..] == other[..]
    }
}

impl<T: Pod + Eq> Eq for Buffer<T> {}

impl<T: Pod + fmt::Debug> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let mut list = f.debug_list();
        list.entries(self.iter().take(SHOWN));
        if self.len() > SHOWN {
            list.entry(&format_args!("… {} more", self.len() - SHOWN));
        }
        list.finish()
    }
}

impl<T: Pod + Send + Sync> Serialize for Buffer<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let owner = || Arc::clone(&self.storage) as Attachment;
        attach::serialize(self.as_bytes(), owner, serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Buffer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        attach::deserialize(deserializer).and_then(Buffer::from_received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_serde_sees_bytes() {
        let buffer = Buffer::from(vec![1u16, 258]);
        let mut encoded = Vec::new();
        crate::codec::encode_into(&buffer, &mut encoded).unwrap();
        let back: Buffer<u16> = crate::codec::decode(&encoded).unwrap();
        assert_eq!(&back[..], &[1, 258]);
        let bytes: serde_bytes_like::Bytes = crate::codec::decode(&encoded).unwrap();
        assert_eq!(bytes.0, [1, 0, 2, 1]);
    }

    #[test]
    fn a_length_that_is_not_whole_elements_is_an_error() {
        let mut encoded = Vec::new();
        crate::codec::encode_into(&Buffer::from(vec![1u8, 2, 3]), &mut encoded).unwrap();
        let err = crate::codec::decode::<Buffer<u16>>(&encoded).unwrap_err();
        assert!(err.to_string().contains("whole number of u16"), "{err}");
    }

    #[test]
    fn into_vec_takes_the_memory_when_alone() {
        let elements = vec![5u64; 100];
        let at = elements.as_ptr();
        let buffer = Buffer::from(elements);
        let shared = buffer.clone();
        let copied = shared.into_vec();
        assert_ne!(copied.as_ptr(), at, "shared: copied");
        let taken = buffer.into_vec();
        assert_eq!(taken.as_ptr(), at, "alone: taken");
    }

    mod serde_bytes_like {
        /// What a plain serde reader of bytes sees.
        #[derive(serde::Deserialize)]
        pub(super) struct Bytes(#[serde(with = "serde_bytes")] pub(super) Vec<u8>);
    }
}
