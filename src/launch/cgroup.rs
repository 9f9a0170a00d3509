//! A cgroup v2 per worker: the one container a task's processes cannot leave.
//!
//! A process group is left with one call (`setsid`, `setpgid`, any daemon's
//! double fork), so killing a worker's group misses exactly the processes
//! most likely to linger. A cgroup is inherited by every descendant and only
//! a process allowed to write to another cgroup's `cgroup.procs` can move out
//! (root can, deliberately; nothing else). Writing `1` to `cgroup.kill`
//! (Linux 5.14) kills every process in it, race-free against forks.
//!
//! Layout: `<this process's cgroup>/procpool-<pid namespace>-<pid>-<n>/worker-<k>`.
//! Directories left by a pool whose process was SIGKILLed are removed by the
//! next pool started under the same cgroup in the same PID namespace (only
//! there does its pid say whether the owner lives: a pool in a container
//! sharing the cgroup would see the host's pids as dead).
//!
//! A PID namespace per worker was weighed and rejected: after
//! `unshare(CLONE_NEWPID)` the caller cannot start threads (clone with
//! `CLONE_THREAD` fails with EINVAL; checked on this project's VM), and a worker moved inside as its pid 1
//! ignores its own `abort()` (pid 1 gets no default-action signals) and sees
//! `getpid() == 1`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Name prefix of a pool's directory, followed by `<pid ns>-<pid>-<n>`.
const POOL_PREFIX: &str = "procpool-";
/// Name prefix of a worker's directory, followed by its number in the pool
/// (not its pid: a pid comes back, and a directory still being emptied
/// would be in the way).
const WORKER_PREFIX: &str = "worker-";
/// How long removing a killed worker's cgroup may wait for its processes to
/// finish exiting.
const REMOVE_WAIT: Duration = Duration::from_millis(50);

/// The cgroup under which one pool places its workers.
#[derive(Debug)]
pub(crate) struct PoolCgroup {
    dir: PathBuf,
    workers: AtomicU32,
}

impl PoolCgroup {
    /// Creates a directory for a new pool under this process's own cgroup.
    ///
    /// # Errors
    ///
    /// If cgroup v2 is not mounted, this process may not create cgroups
    /// there (not root, and no delegated subtree), or the kernel has no
    /// `cgroup.kill` (before Linux 5.14).
    pub(crate) fn create() -> io::Result<PoolCgroup> {
        static POOLS: AtomicU32 = AtomicU32::new(0);
        let parent = own_dir()?;
        remove_stale(&parent);
        let name = format!(
            "{POOL_PREFIX}{}-{}-{}",
            pid_namespace(),
            std::process::id(),
            POOLS.fetch_add(1, Relaxed)
        );
        let dir = parent.join(name);
        // Moving a process between two cgroups takes write access to their
        // common ancestor's cgroup.procs: ours. Making directories is not
        // enough (a delegated subtree may allow one without the other).
        fs::OpenOptions::new()
            .write(true)
            .open(parent.join("cgroup.procs"))?;
        fs::create_dir(&dir)?;
        if !dir.join("cgroup.kill").exists() {
            let _ = fs::remove_dir(&dir);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's cgroups have no cgroup.kill (Linux 5.14 or later needed)",
            ));
        }
        Ok(PoolCgroup {
            dir,
            workers: AtomicU32::new(0),
        })
    }

    /// Moves the just-started worker `pid` into a cgroup of its own. The
    /// worker has not run anything of the user's yet (it waits for its
    /// control socket), so everything it starts later is inside.
    ///
    /// This blocks: the first move of a process into a cgroup after a quiet
    /// spell waits for an RCU grace period in the kernel (~0.5 ms here, more
    /// on a loaded machine), so callers run it off the async threads. The
    /// caller must hold `pid` unreaped throughout (see `child::Child::contain`).
    pub(crate) fn add_worker(&self, pid: u32) -> io::Result<WorkerCgroup> {
        let number = self.workers.fetch_add(1, Relaxed);
        let dir = self.dir.join(format!("{WORKER_PREFIX}{number}"));
        fs::create_dir(&dir)?;
        if let Err(err) = fs::write(dir.join("cgroup.procs"), pid.to_string()) {
            let _ = fs::remove_dir(&dir);
            return Err(err);
        }
        Ok(WorkerCgroup { dir })
    }
}

impl Drop for PoolCgroup {
    fn drop(&mut self) {
        remove_pool_dir(&self.dir);
    }
}

/// One worker's cgroup.
#[derive(Clone, Debug)]
pub(crate) struct WorkerCgroup {
    dir: PathBuf,
}

impl WorkerCgroup {
    /// Kills every process in the cgroup.
    pub(crate) fn kill(&self) {
        kill_dir(&self.dir);
    }

    /// Removes the cgroup (and any a nested pool made inside it) once its
    /// processes are gone (they were killed); one still busy after a short
    /// wait is left for the pool's `Drop`. Blocks for up to that wait.
    pub(crate) fn remove(&self) {
        remove_tree(&self.dir);
    }
}

fn kill_dir(dir: &Path) {
    let _ = fs::write(dir.join("cgroup.kill"), "1");
}

fn remove_when_empty(dir: &Path, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return true,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Err(_) => return false,
        }
    }
}

/// Kills everything in a pool's directory and removes it, depth first: a
/// task may have started a pool of its own, whose cgroups then nest inside
/// its worker's.
fn remove_pool_dir(dir: &Path) {
    // cgroup.kill reaches every descendant cgroup too.
    kill_dir(dir);
    remove_tree(dir);
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    remove_when_empty(dir, REMOVE_WAIT);
}

/// Removes the directories of pools whose process is gone (it was killed
/// before it could clean up; its workers killed their own cgroups as they
/// exited, so these are empty or nearly).
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let own_namespace = format!("{}-", pid_namespace());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|name| name.strip_prefix(POOL_PREFIX))
            .and_then(|rest| rest.strip_prefix(&own_namespace))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue; // not a pool's, or another PID namespace's: not ours to judge
        };
        let gone = rustix::process::test_kill_process(owner)
            .is_err_and(|err| err == rustix::io::Errno::SRCH);
        if gone {
            remove_pool_dir(&entry.path());
        }
    }
}

/// This process's PID namespace, as the inode number the kernel gives it.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").map_or(0, |meta| meta.ino())
}

/// The directory of this process's own cgroup v2.
fn own_dir() -> io::Result<PathBuf> {
    let not_mounted = || io::Error::new(io::ErrorKind::NotFound, "cgroup v2 is not mounted");
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let (root, mount_point) = mounts
        .lines()
        .find_map(|line| {
            // `id parent dev root mount-point options [optional…] - fstype source super`
            let (fields, fs_fields) = line.split_once(" - ")?;
            if fs_fields.split(' ').next()? != "cgroup2" {
                return None;
            }
            let mut fields = fields.split(' ').skip(3);
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .ok_or_else(not_mounted)?;
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let path = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(not_mounted)?;
    // The mount may show a subtree only (a cgroup namespace, a bind mount).
    let relative = path
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    Ok(Path::new(&mount_point).join(relative))
}

/// In a worker: the cgroup a pool placed it in, if it is one of ours.
pub(crate) fn own_worker_cgroup() -> Option<WorkerCgroup> {
    let dir = own_dir().ok()?;
    let is_ours = |path: &Path, prefix: &str| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(prefix))
    };
    let pool = dir.parent()?;
    (is_ours(&dir, WORKER_PREFIX) && is_ours(pool, POOL_PREFIX)).then_some(WorkerCgroup { dir })
}
