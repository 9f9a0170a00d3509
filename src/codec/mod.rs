//! Every use of bincode lives here, so the encoding can be swapped in one place
//! (bincode 2 is unmaintained; its 3.0 on crates.io is an empty tombstone),
//! and the large byte buffers that go beside it ([`attach`]).

pub(crate) mod attach;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Repr};

/// Cap on the bytes a single decode may claim for strings and byte buffers.
///
/// bincode allocates a `String` or byte buffer at its encoded length before it
/// reads the bytes, so without a cap a corrupt length could ask for an absurd
/// allocation and abort the process. A well-formed value never claims more than
/// its frame holds, so this only bounds what garbage can do.
const DECODE_LIMIT: usize = 1 << 32;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(drop)
        .map_err(|err| {
            Error::new(Repr::Encode {
                ty: std::any::type_name::<T>(),
                message: err.to_string(),
            })
        })
}

/// Decodes a whole `T` from `bytes`; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    decode_as(bytes, std::any::type_name::<T>())
}

/// [`decode`], naming the type `ty` in its errors (the type the caller
/// asked for, which `T` may stand in for).
fn decode_as<T: DeserializeOwned>(bytes: &[u8], ty: &'static str) -> Result<T, Error> {
    let fail = |message: String| Error::new(Repr::Decode { ty, message });
    match bincode::serde::decode_from_slice::<T, _>(bytes, config()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(fail(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        ))),
        Err(err) => Err(fail(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = vec![7u8];
        encode_into(&("hi".to_string(), 42u64, vec![1.5f64]), &mut buf).unwrap();
        let back: (String, u64, Vec<f64>) = decode(&buf[1..]).unwrap();
        assert_eq!(back, ("hi".to_string(), 42, vec![1.5]));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut buf = Vec::new();
        encode_into(&1u8, &mut buf).unwrap();
        buf.push(0);
        let err = decode::<u8>(&buf).unwrap_err();
        assert!(err.is_codec(), "{err}");
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn corrupt_lengths_are_errors_not_allocations() {
        // A varint claiming a string of u64::MAX bytes, then a few bytes.
        let garbage = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3,
        ];
        assert!(decode::<String>(&garbage).unwrap_err().is_codec());
        assert!(decode::<Vec<u8>>(&garbage).unwrap_err().is_codec());
        assert!(decode::<Vec<String>>(&garbage).unwrap_err().is_codec());
        // A 3 GiB string claim: under the cap, so it must fail on the short read.
        let mut three_gib = Vec::new();
        encode_into(&(3u64 << 30), &mut three_gib).unwrap();
        three_gib.extend_from_slice(b"abc");
        assert!(decode::<String>(&three_gib).unwrap_err().is_codec());
    }
}
