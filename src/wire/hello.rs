//! The handshake: the pool's `START` (the worker may run user code now) and
//! the worker's `HELLO` (who it is).

use super::frame::{self, HELLO, Parts, START};

const MAGIC: &[u8; 8] = b"procpool";

/// The frame a pool sends a new worker once it is contained (in its cgroup):
/// until it arrives the worker runs nothing of the user's.
pub(crate) fn start() -> [u8; frame::HEADER_LEN + frame::PREFIX_LEN] {
    frame::empty(START, 0)
}

/// Whether `body` is the pool's `START`.
pub(crate) fn is_start(body: &[u8]) -> bool {
    Parts::of(body).is_ok_and(|parts| parts.kind == START && parts.payload.is_empty())
}

/// The identity a worker announces before it serves anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    pub(crate) fingerprint: u64,
    pub(crate) pid: u32,
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        frame::begin(&mut out, HELLO, 0);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        frame::end(&mut out);
        out
    }

    /// Parses a hello body; `None` if it is not one. The magic comes right
    /// after the kind and id, so anything else a program prints first is
    /// told apart from a worker of another version.
    pub(crate) fn parse(body: &[u8]) -> Option<Hello> {
        let parts = Parts::of(body).ok().filter(|parts| parts.kind == HELLO)?;
        let rest = parts.payload.strip_prefix(MAGIC)?;
        let (version, rest) = rest.split_first_chunk::<4>()?;
        let (fingerprint, rest) = rest.split_first_chunk::<8>()?;
        let pid: &[u8; 4] = rest.try_into().ok()?;
        Some(Hello {
            version: u32::from_le_bytes(*version),
            fingerprint: u64::from_le_bytes(*fingerprint),
            pid: u32::from_le_bytes(*pid),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_strangers() {
        let hello = Hello {
            version: frame::PROTOCOL_VERSION,
            fingerprint: 0xDEAD_BEEF,
            pid: 42,
        };
        let encoded = hello.encode();
        assert_eq!(Hello::parse(&encoded[frame::HEADER_LEN..]), Some(hello));
        assert_eq!(
            Hello::parse(b"\x10\0\0\0\0\0\0\0\0notmagic0000000000000000"),
            None
        );
        assert_eq!(Hello::parse(&[]), None);
        assert!(is_start(&start()[frame::HEADER_LEN..]));
        assert!(!is_start(&encoded[frame::HEADER_LEN..]));
    }
}
