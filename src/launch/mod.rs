//! How a worker is started, watched, and ended.
//!
//! * [`local`] starts one worker on this machine (the same executable,
//!   re-executed with `posix_spawn`, over a socketpair) and checks its
//!   handshake;
//! * [`launcher`] is where workers run: here, or wherever a command prefix
//!   (`ssh HOST`, `srun`) starts them, over their stdin and stdout;
//! * [`marker`] is how a started process knows it is a pool's worker;
//! * [`child`] is the only place that signals or reaps a worker, so that no
//!   pid is signalled after it was reaped, and a worker's leftovers are
//!   killed before its pid is given back;
//! * [`cgroup`] gives each worker a cgroup where allowed, so nothing a task
//!   starts can outlive it;
//! * [`options`] holds the user's choices ([`Redirect`], [`Containment`]).

pub(crate) mod cgroup;
pub(crate) mod child;
mod launcher;
pub(crate) mod local;
pub(crate) mod marker;
mod memory;
mod options;
mod remote;

pub use launcher::Launcher;
pub use options::{Containment, Redirect};
pub(crate) use options::{WorkerOptions, cgroup_for, create_cgroup};
