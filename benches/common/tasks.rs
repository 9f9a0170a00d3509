//! The tasks both benchmarks run: a no-op and a byte-buffer echo.

use serde::{Deserialize, Serialize};

/// W1/W2: takes a `u64` and returns it.
pub fn noop(x: u64) -> u64 {
    x
}

/// W3's payload; `serde_bytes` sends it as one block, not byte by byte.
#[derive(Serialize, Deserialize)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// W3: returns its payload.
pub fn echo(blob: Blob) -> Blob {
    blob
}
