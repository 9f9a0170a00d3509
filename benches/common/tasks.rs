//! The tasks both benchmarks run: a no-op and a byte-buffer echo.

use serde::{Deserialize, Serialize};

/// W1/W2: takes a `u64` and returns it.
pub fn noop(x: u64) -> u64 {
    x
}

/// W3's payload; `serde_bytes` sends it as one block, not byte by byte.
#[derive(Serialize, Deserialize)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Blob {
        Blob(bytes)
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// W3: returns its payload.
pub fn echo(blob: Blob) -> Blob {
    blob
}
