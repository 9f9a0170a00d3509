//! One registered function in a fresh one-shot process: [`spawn`],
//! [`ProcessBuilder`], and the [`Process`] handle (Python's
//! `multiprocessing.Process`).
//!
//! * [`builder`]: the settings (a pool's per-worker ones) and `spawn`;
//! * [`handle`]: the caller's future, with `pid`, `kill`, `exitcode`;
//! * [`driver`]: the background future that runs the process through the
//!   pool's own slot: start, routing of its frames, reaping, attribution of
//!   its death.

pub(crate) mod builder;
pub(crate) mod driver;
pub(crate) mod handle;

pub use builder::{ProcessBuilder, spawn};
pub use handle::Process;
