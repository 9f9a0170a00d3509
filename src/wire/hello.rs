//! The handshake: the pool's `START` (the worker may run user code now) and
//! the worker's `HELLO` (who it is).

use super::frame::{self, HELLO, Parts, START};

const MAGIC: &[u8; 8] = b"procpool";

/// What a worker started through a launcher (over stdio) writes before
/// anything else, so that whatever a remote shell prints first (an rc
/// file's `echo`, a banner) is told apart from a frame and reported as
/// such, rather than read as a length.
pub(crate) const STDIO_MAGIC: &[u8; 16] = b"\0procpool-stdio\n";

/// What the pool tells a new worker in its `START`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Start {
    /// The most verbose `tracing` level to send back as `LOG` frames
    /// (a [`level_byte`](super::log::level_byte)); 0: none.
    pub(crate) log_level: u8,
    /// The worker's address-space limit in bytes, set by the worker on
    /// itself before it runs anything of the user's
    /// (`PoolBuilder::max_memory_per_worker`); 0: none.
    pub(crate) memory_limit: u64,
    /// How long a cancelled running task may take to stop by itself before
    /// the worker ends it (`PoolBuilder::cancel_grace`), in ns; 0: at once.
    pub(crate) cancel_grace_nanos: u64,
    /// Whether a panic's report carries the worker-side backtrace.
    pub(crate) backtraces: Backtraces,
}

/// Whether a worker's panics carry a backtrace
/// (`PoolBuilder::capture_backtraces`); travels as its `u8`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Backtraces {
    /// As `RUST_LIB_BACKTRACE`, else `RUST_BACKTRACE`, in the worker's
    /// environment say (std's rule for `Backtrace::capture`).
    #[default]
    FromEnvironment = 0,
    Always = 1,
    Never = 2,
}

impl From<bool> for Backtraces {
    /// The builders' switch: always or never.
    fn from(capture: bool) -> Backtraces {
        if capture {
            Backtraces::Always
        } else {
            Backtraces::Never
        }
    }
}

impl Backtraces {
    fn from_byte(byte: u8) -> Option<Backtraces> {
        [Self::FromEnvironment, Self::Always, Self::Never]
            .into_iter()
            .find(|b| *b as u8 == byte)
    }
}

impl Start {
    /// The frame a pool sends a new worker once it is contained (in its
    /// cgroup): until it arrives the worker runs nothing of the user's.
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(frame::HEADER_LEN + frame::PREFIX_LEN + 18);
        frame::begin(&mut out, START, 0);
        out.push(self.log_level);
        out.extend_from_slice(&self.memory_limit.to_le_bytes());
        out.extend_from_slice(&self.cancel_grace_nanos.to_le_bytes());
        out.push(self.backtraces as u8);
        frame::end(&mut out);
        out
    }

    /// The `START` in `body`, if it is one.
    pub(crate) fn parse(body: &[u8]) -> Option<Start> {
        let parts = Parts::of(body).ok().filter(|parts| parts.kind == START)?;
        let (&log_level, rest) = parts.payload.split_first()?;
        let (limit, rest) = rest.split_first_chunk::<8>()?;
        let (grace, rest) = rest.split_first_chunk::<8>()?;
        let &[backtraces] = rest else { return None };
        (log_level <= 5).then_some(Start {
            log_level,
            memory_limit: u64::from_le_bytes(*limit),
            cancel_grace_nanos: u64::from_le_bytes(*grace),
            backtraces: Backtraces::from_byte(backtraces)?,
        })
    }
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
        let start = Start {
            log_level: 3,
            memory_limit: 1 << 30,
            cancel_grace_nanos: 5,
            backtraces: Backtraces::Always,
        };
        assert_eq!(
            Start::parse(&start.encode()[frame::HEADER_LEN..]),
            Some(start)
        );
        assert_eq!(Start::parse(&encoded[frame::HEADER_LEN..]), None);
        let mut unknown = start.encode();
        *unknown.last_mut().unwrap() = 3;
        assert_eq!(Start::parse(&unknown[frame::HEADER_LEN..]), None);
        let mut bad = Start {
            log_level: 9,
            ..Start::default()
        }
        .encode();
        assert_eq!(Start::parse(&bad[frame::HEADER_LEN..]), None);
        bad.push(0);
        assert_eq!(Start::parse(&bad[frame::HEADER_LEN..]), None);
    }
}
