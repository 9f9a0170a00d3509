//! How workers are started: the choices a user makes on the builder.

use std::process::Stdio;

/// Where a worker's standard output or error goes.
///
/// The protocol has its own socket, so a worker's stdio never carries frames:
/// a task's `println!` goes wherever this says. Set it with
/// [`PoolBuilder::stdout`](crate::PoolBuilder::stdout) and
/// [`PoolBuilder::stderr`](crate::PoolBuilder::stderr); a worker's stdin is
/// always `/dev/null`.
///
/// # Examples
///
/// ```no_run
/// use procpool::{Pool, Redirect};
///
/// # async fn demo() -> Result<(), procpool::Error> {
/// // Keep error output, drop what tasks print.
/// let pool = Pool::builder()
///     .stdout(Redirect::Null)
///     .stderr(Redirect::Inherit)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redirect {
    /// Share the pool process's stream (the default).
    #[default]
    Inherit,
    /// Discard it (`/dev/null`).
    Null,
}

impl Redirect {
    pub(crate) fn stdio(self) -> Stdio {
        match self {
            Redirect::Inherit => Stdio::inherit(),
            Redirect::Null => Stdio::null(),
        }
    }
}

/// How a pool makes sure that the processes a task starts die with the task.
///
/// Cancelling a running task, a task timing out, its worker crashing or being
/// killed, `shutdown_now`, dropping the pool, and the pool's own process
/// being SIGKILLed all end the worker; what else ends with it depends on this.
///
/// | | [`Cgroup`](Containment::Cgroup) | [`ProcessGroup`](Containment::ProcessGroup) |
/// |---|---|---|
/// | children in the worker's process group | killed | killed |
/// | children that left it (`setsid`, `setpgid`, `process_group(0)`), still the worker's children | killed | killed when the worker ends itself (cancel, timeout, `shutdown`, the pool's process dying); they outlive a worker that crashes or that the pool has to kill (`shutdown_now`, drop, a stopped worker) |
/// | daemons (double fork, reparented away from the worker) | killed | outlive the worker |
/// | needs | cgroup v2 with `cgroup.kill` (Linux 5.14), and write access to this process's cgroup (root, or a delegated subtree such as a systemd user service) | nothing |
///
/// A task running as root can still move itself out of its cgroup on
/// purpose; nothing stops root.
///
/// The default is [`Auto`](Containment::Auto). See
/// [`Pool::containment`](crate::Pool::containment) for the one in effect.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), procpool::Error> {
/// use procpool::{Containment, Pool};
///
/// // Refuse to run at all unless every process a task starts can be killed.
/// let pool = Pool::builder().containment(Containment::Cgroup).build().await?;
/// assert_eq!(pool.containment(), Containment::Cgroup);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Containment {
    /// A cgroup per worker where this process may create one, else the
    /// process group.
    #[default]
    Auto,
    /// A cgroup per worker; [`build`](crate::PoolBuilder::build) fails with
    /// [`Error::is_spawn`](crate::Error::is_spawn) if none can be made.
    Cgroup,
    /// The worker's process group only.
    ProcessGroup,
}
