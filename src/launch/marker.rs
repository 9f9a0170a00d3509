//! How a started process knows it is a pool's worker: the launch contract
//! between [`spawn`](super::spawn), which sets the marker, and
//! [`init`](crate::init), which claims it.

use std::fmt;
use std::io;
use std::os::fd::AsFd;

/// Set in a worker's environment by the pool; see [`Marker`].
pub(crate) const ENV_MARKER: &str = "PROCPOOL_WORKER";

/// Whether this process was started by a pool as a worker (and so must not
/// start a pool of its own before `init` took it over).
pub(crate) fn is_unclaimed_worker() -> bool {
    Marker::claimed().is_some()
}

/// What a pool puts in its worker's environment: `v2,<max frame>,<pool pid>`.
///
/// An environment variable alone proves nothing (a shell may export it, a
/// worker's own child inherits it), so a marker counts only together with
/// what no one but the pool can arrange: stdin is a socket that the process
/// the marker names created. Anything else is an ordinary start, and `init`
/// returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) max_frame: u64,
    pub(crate) pool_pid: u32,
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v2,{},{}", self.max_frame, self.pool_pid)
    }
}

impl Marker {
    fn parse(text: &str) -> Option<Marker> {
        let mut fields = text.strip_prefix("v2,")?.split(',');
        let marker = Marker {
            max_frame: fields.next()?.parse().ok()?,
            pool_pid: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(marker)
    }

    /// The marker in this process's environment, if a pool made it for this
    /// very process.
    pub(crate) fn claimed() -> Option<Marker> {
        let marker = Marker::parse(std::env::var_os(ENV_MARKER)?.to_str()?)?;
        (stdin_creator() == Some(marker.pool_pid)).then_some(marker)
    }
}

/// The process that created the socket on our stdin, if stdin is one.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn stdin_creator() -> Option<u32> {
    let peer = rustix::net::sockopt::socket_peercred(io::stdin().as_fd()).ok()?;
    Some(peer.pid.as_raw_nonzero().get().unsigned_abs())
}

/// Without `SO_PEERCRED`, the next best thing: the pool is our parent.
/// (Untested: procpool is developed and tested on Linux.)
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn stdin_creator() -> Option<u32> {
    let parent = rustix::process::getppid()?;
    Some(parent.as_raw_nonzero().get().unsigned_abs())
}
