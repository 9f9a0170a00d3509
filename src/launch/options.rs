//! How workers are started: the choices a user makes on the builder.

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use super::cgroup::PoolCgroup;
use super::child::Ledger;
use super::launcher::{Launcher, Prefix};
use super::local::{Initializer, RemoteCommand, WorkerSpec};
use super::marker::{ENV_MARKER, Marker, Via};
use crate::error::Error;
use crate::wire::hello::Backtraces;

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

/// The per-worker settings that [`PoolBuilder`](crate::PoolBuilder) and
/// [`ProcessBuilder`](crate::ProcessBuilder) share: how one worker process
/// is started and talked to. Each builder's setters document them.
#[derive(Clone, Debug)]
pub(crate) struct WorkerOptions {
    pub(crate) program: Option<PathBuf>,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) stdout: Redirect,
    pub(crate) stderr: Redirect,
    pub(crate) max_frame: u64,
    pub(crate) socket_buffer: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) containment: Containment,
    /// The `tracing` events a worker sends back (`None`: none).
    pub(crate) log_level: Option<tracing::Level>,
    pub(crate) launcher: Launcher,
    /// The address-space limit each worker sets on itself (`None`: none).
    pub(crate) memory_limit: Option<u64>,
    /// How long a cancelled running task may take to stop by itself.
    pub(crate) cancel_grace: Duration,
    /// Whether a panic's report carries the worker-side backtrace.
    pub(crate) backtraces: Backtraces,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            stdout: Redirect::Inherit,
            stderr: Redirect::Inherit,
            max_frame: 1 << 30,
            socket_buffer: 4 << 20,
            handshake_timeout: Duration::from_secs(10),
            containment: Containment::Auto,
            log_level: None,
            launcher: Launcher::local(),
            memory_limit: None,
            cancel_grace: Duration::ZERO,
            backtraces: Backtraces::FromEnvironment,
        }
    }
}

impl WorkerOptions {
    /// The containment to settle with [`cgroup_for`]: the user's choice for
    /// local workers; process groups for workers started through a
    /// launcher, whose processes a cgroup here cannot hold.
    ///
    /// # Errors
    ///
    /// [`Containment::Cgroup`] with a launcher that starts workers elsewhere:
    /// a cgroup here cannot hold processes on another host.
    pub(crate) fn containment(&self) -> Result<Containment, Error> {
        match (&self.launcher.prefix(), self.containment) {
            (None, containment) => Ok(containment),
            (Some(_), Containment::Cgroup) => Err(Error::spawn(
                "Containment::Cgroup cannot reach workers started through a launcher command \
                 (they may be on another host): use Containment::Auto or ProcessGroup, under \
                 which a remote worker's tasks end with its process group when its stream ends",
                None,
            )),
            // Nothing of a remote worker's can be put in a cgroup here.
            (Some(_), _) => Ok(Containment::ProcessGroup),
        }
    }

    /// The command line that starts a worker through `prefix`: the worker's
    /// marker and variables go in it (`env K=V …`), since a remote shell
    /// does not get this process's environment.
    fn remote_command(&self, prefix: &Prefix) -> Result<RemoteCommand, Error> {
        let program = match (&prefix.program, &self.program) {
            (Some(program), _) | (None, Some(program)) => program.clone(),
            // The real path: `/proc/self/exe` means something else there.
            (None, None) => std::env::current_exe()
                .map_err(|err| Error::spawn("cannot find the current executable", Some(err)))?,
        };
        let marker = Marker {
            max_frame: self.max_frame,
            via: Via::Stdio {
                quiet: self.stdout == Redirect::Null,
                keepalive_ms: prefix.keepalive.map_or(0, |every| {
                    u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1)
                }),
            },
        };
        let mut words: Vec<OsString> = vec!["env".into(), format!("{ENV_MARKER}={marker}").into()];
        for (key, value) in &self.env {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            words.push(pair);
        }
        words.push(program.into_os_string());
        words.extend(self.args.iter().cloned());
        Ok(RemoteCommand {
            argv: prefix.argv(&words),
            name: prefix.describe(),
            keepalive: prefix.keepalive,
        })
    }

    /// What a worker is started with, once the program is known (`None`:
    /// this executable) and containment was settled into `cgroup`.
    ///
    /// # Errors
    ///
    /// If no program was set and this executable cannot be found.
    pub(crate) fn into_spec(
        self,
        fingerprint: u64,
        initializer: Option<Initializer>,
        cgroup: Option<Arc<PoolCgroup>>,
    ) -> Result<WorkerSpec, Error> {
        let command = match self.launcher.prefix() {
            None => None,
            Some(prefix) => Some(self.remote_command(prefix)?),
        };
        let program = match self.program {
            Some(program) => program,
            None => current_exe()?,
        };
        Ok(WorkerSpec {
            command,
            program,
            args: self.args,
            env: self.env,
            stdout: self.stdout,
            stderr: self.stderr,
            max_frame: self.max_frame,
            socket_buffer: self.socket_buffer,
            handshake_timeout: self.handshake_timeout,
            log_level: self.log_level.map_or(0, crate::wire::log::level_byte),
            memory_limit: self.memory_limit,
            cancel_grace: self.cancel_grace,
            backtraces: self.backtraces,
            fingerprint,
            initializer,
            cgroup,
            ledger: Arc::new(Ledger::new()),
        })
    }
}

/// The cgroup `containment` asks for, made by `create` (which runs off the
/// async threads when it runs: creating one sweeps stale directories).
///
/// # Errors
///
/// With [`Containment::Cgroup`], if none can be made.
pub(crate) async fn cgroup_for<F, Fut>(
    containment: Containment,
    create: F,
) -> Result<Option<Arc<PoolCgroup>>, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::io::Result<Arc<PoolCgroup>>>,
{
    match containment {
        Containment::ProcessGroup => Ok(None),
        Containment::Auto => Ok(create().await.ok()),
        Containment::Cgroup => create().await.map(Some).map_err(|err| {
            Error::spawn(
                "Containment::Cgroup was asked for, but no cgroup can be created for the \
                 workers (this needs cgroup v2 with cgroup.kill, Linux 5.14, and write access \
                 to this process's cgroup: root, or a delegated subtree)",
                Some(err),
            )
        }),
    }
}

/// A new cgroup for workers, made off the async threads.
pub(crate) async fn create_cgroup() -> std::io::Result<Arc<PoolCgroup>> {
    tokio::task::spawn_blocking(PoolCgroup::create)
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())))
        .map(Arc::new)
}

fn current_exe() -> Result<PathBuf, Error> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe()
        .map_err(|err| Error::spawn("cannot find the current executable", Some(err)))
}
