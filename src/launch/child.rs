//! A worker process the pool started: signalled and reaped in one place, so
//! that nothing is ever signalled after its pid was given back to the system.
//!
//! The rule this file keeps: a pid, and the process group of the same number,
//! belong to us only until we reap the process. So every signal goes out under
//! the same lock as the reap, and only while the process is unreaped; and when
//! the worker is found dead, whatever it left behind (its process group, its
//! cgroup) is killed *before* the reap, while its pid is still reserved.
//!
//! Death is noticed when the process exits (a pidfd becomes readable), not
//! when its socket closes: a task that forked without exec keeps the socket
//! open after its worker crashed.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitIdStatus};
use tokio::io::unix::AsyncFd;

use super::cgroup::{PoolCgroup, WorkerCgroup};
use crate::error::Exit;

/// How long a killed worker may take to exit before the pool stops waiting.
const UNKILLABLE_AFTER: Duration = Duration::from_secs(5);

/// How long a launcher (ssh, srun) asked to end with SIGTERM has before it
/// is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How often a child without a pidfd (old kernels, other Unix systems) is
/// checked for having exited.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A started worker process: the only way the pool signals or reaps it.
#[derive(Debug)]
pub(crate) struct Child {
    process: Arc<Process>,
    ledger: Arc<Ledger>,
    /// Wakes us when the process exits; created on first use, inside a runtime.
    watch: Option<Watch>,
    /// Already the background reaper of a dropped child: dropping it (the
    /// runtime shutting down) leaves the reap to the ledger.
    background: bool,
}

#[derive(Debug)]
enum Watch {
    PidFd(AsyncFd<OwnedFd>),
    Timer(tokio::time::Interval),
}

#[derive(Debug)]
struct Process {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    /// Set once the worker was moved into it, right after it started.
    cgroup: OnceLock<WorkerCgroup>,
    /// `Some` once reaped: from then on nothing may be signalled.
    reaped: Mutex<Option<Exit>>,
    /// A launcher: asked to end with SIGTERM first, since a SIGKILLed one
    /// cannot tidy up what it started elsewhere (srun's job step and
    /// allocation stay; its remote worker waits for the keepalive).
    gentle: bool,
    /// SIGTERM went out already: the next kill is a SIGKILL.
    termed: std::sync::atomic::AtomicBool,
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, Option<Exit>> {
        self.reaped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the worker, its process group and its cgroup, unless reaped;
    /// a launcher is asked to end (SIGTERM) the first time.
    fn kill(&self) {
        let reaped = self.lock();
        if reaped.is_some() {
            return;
        }
        if self.gentle && !self.termed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            // Unreaped, so the pid and the group are ours (see `kill_unreaped`).
            let _ = rustix::process::kill_process_group(self.pid, Signal::TERM);
            let _ = rustix::process::kill_process(self.pid, Signal::TERM);
            return;
        }
        self.kill_unreaped();
    }

    /// Whether a kill so far was only a SIGTERM.
    fn only_termed(&self) -> bool {
        self.gentle && self.termed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Must be called with the lock held and the process unreaped.
    fn kill_unreaped(&self) {
        if let Some(cgroup) = self.cgroup.get() {
            cgroup.kill();
        }
        // The group's number is the worker's pid, reserved until we reap it:
        // this cannot reach a stranger. (A worker that moved itself into
        // another group is still reached through its pid below.)
        let _ = rustix::process::kill_process_group(self.pid, Signal::KILL);
        // Unreaped, so the pid is ours either way; the pidfd is the belt to
        // those braces where there is one.
        #[cfg(target_os = "linux")]
        let _ = match &self.pidfd {
            Some(pidfd) => rustix::process::pidfd_send_signal(pidfd, Signal::KILL),
            None => rustix::process::kill_process(self.pid, Signal::KILL),
        };
        #[cfg(not(target_os = "linux"))]
        let _ = rustix::process::kill_process(self.pid, Signal::KILL);
    }

    /// Kills the worker and what it left behind at once (SIGKILL), unless
    /// reaped: for a dead launcher's leftovers, which get no second chance.
    fn kill_now(&self) {
        let reaped = self.lock();
        if reaped.is_none() {
            self.kill_unreaped();
        }
    }

    /// The worker's exit status if it has exited, leaving it unreaped.
    fn peek(&self) -> rustix::io::Result<Option<WaitIdStatus>> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        rustix::process::waitid(WaitId::Pid(self.pid), options)
    }

    /// The worker's pid as the rest of the crate numbers processes.
    fn pid_number(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// Whether the worker has exited (or was reaped), without reaping it.
    fn has_exited(&self) -> bool {
        if self.lock().is_some() {
            return true;
        }
        match self.peek() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => false,
        }
    }

    /// Moves the worker into a cgroup of its own, under the lock, so that
    /// the pid written is still ours.
    fn contain(&self, pool: &PoolCgroup) -> std::io::Result<()> {
        let reaped = self.lock();
        if reaped.is_some() {
            return Err(std::io::Error::other("the worker is already gone"));
        }
        let cgroup = pool.add_worker(self.pid_number())?;
        let _ = self.cgroup.set(cgroup);
        Ok(())
    }

    /// Reaps the worker if it has exited. Before the reap, while its pid is
    /// still ours, whatever it left behind is killed.
    fn try_reap(&self) -> Option<Exit> {
        let mut reaped = self.lock();
        if let Some(exit) = *reaped {
            return Some(exit);
        }
        match self.peek() {
            Ok(Some(status)) if status.exited() || status.killed() || status.dumped() => {}
            Ok(_) => return None,
            // Not our child any more (reaped behind our back): nothing to signal.
            Err(_) => {
                *reaped = Some(Exit::Unknown);
                return *reaped;
            }
        }
        self.kill_unreaped();
        // Still unreaped, so no other process has its pid: the locks it
        // held are poisoned and its leases end before the pid is free.
        crate::shared::owners::died(self.pid_number());
        let exit = match rustix::process::waitid(
            WaitId::Pid(self.pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(status)) => exit_of(&status),
            _ => Exit::Unknown,
        };
        *reaped = Some(exit);
        Some(exit)
    }
}

fn exit_of(status: &WaitIdStatus) -> Exit {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) if status.exited() => Exit::Code(code),
        (_, Some(signal)) => Exit::Signal(signal),
        _ => Exit::Unknown,
    }
}

impl Child {
    /// Takes charge of a just-spawned child: records it in `ledger` (so the
    /// pool's `Drop` can kill and reap it whoever holds it) and opens a pidfd.
    ///
    /// `None` if the pool is already gone: the child is then killed and
    /// reaped at once.
    ///
    /// `launcher`: the process is a launcher (ssh, srun) rather than the
    /// worker itself, and is asked to end with SIGTERM before it is killed.
    pub(crate) fn track(pid: u32, ledger: &Arc<Ledger>, launcher: bool) -> Option<Child> {
        let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
        // Race-free: an unreaped child's pid cannot be reused.
        #[cfg(target_os = "linux")]
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
        #[cfg(not(target_os = "linux"))]
        let pidfd = None;
        let process = Arc::new(Process {
            pid,
            pidfd,
            cgroup: OnceLock::new(),
            reaped: Mutex::new(None),
            gentle: launcher,
            termed: std::sync::atomic::AtomicBool::new(false),
        });
        if !ledger.record(&process) {
            process.kill_unreaped();
            Ledger::reap_blocking([process], REAP_LIMIT);
            return None;
        }
        Some(Child {
            process,
            ledger: ledger.clone(),
            watch: None,
            background: false,
        })
    }

    /// Moves the worker into a cgroup of its own in `pool`, which is then
    /// killed with it and removed after it. Runs off the async threads (the
    /// move can wait for the kernel) and under the lock that guards the reap.
    pub(crate) async fn contain(&self, pool: Arc<PoolCgroup>) -> std::io::Result<()> {
        let process = self.process.clone();
        tokio::task::spawn_blocking(move || process.contain(&pool))
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid_number()
    }

    /// Kills the worker and everything it started (its process group, and
    /// its cgroup where it has one). Harmless once it is dead.
    pub(crate) fn kill(&self) {
        self.process.kill();
    }

    /// The memory the worker holds of its own, in bytes (see
    /// [`memory`](super::memory): anonymous pages and shared memory a task
    /// made, not file pages nor the pool's regions), or `None` where that
    /// cannot be read (not Linux, or the worker is gone: then the pid may
    /// not be ours, but nothing is signalled, and a stranger's size at worst
    /// recycles a worker early).
    pub(crate) fn resident_bytes(&self) -> Option<u64> {
        super::memory::own_bytes(self.pid())
    }

    /// `Ready` once the worker process has exited (it is not reaped yet).
    ///
    /// Cheap enough for every poll: with a pidfd, nothing is asked of the
    /// kernel until the runtime reports the pidfd readable.
    pub(crate) fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Child { process, watch, .. } = self;
        let watch = match watch {
            Some(watch) => watch,
            None if process.has_exited() => return Poll::Ready(()),
            None => watch.insert(new_watch(process)),
        };
        loop {
            match watch {
                // A readable pidfd is the kernel saying the process has
                // exited. `waitid` may not say so yet: a zombie traced by
                // another process is hidden from its parent until the tracer
                // lets go (the reap kills what it left behind, tracer too).
                Watch::PidFd(fd) => match fd.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(_)) => return Poll::Ready(()),
                    Poll::Ready(Err(_)) => *watch = timer(),
                },
                Watch::Timer(interval) => {
                    ready!(interval.poll_tick(cx));
                    if process.has_exited() {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }

    /// Waits for the worker to exit, kills what it left behind, reaps it and
    /// returns how it ended. Called once it was killed or told to exit: a
    /// worker that has not exited [`UNKILLABLE_AFTER`] later is stuck where
    /// SIGKILL does not reach (a frozen cgroup, an uninterruptible sleep) and
    /// is given up on as `Exit::Unknown` (the pool's `Drop` tries once more).
    pub(crate) async fn wait(mut self) -> Exit {
        if self.process.only_termed() && !self.exited_within(TERM_GRACE).await {
            self.kill(); // SIGKILL now
        }
        if !self.exited_within(UNKILLABLE_AFTER).await {
            return Exit::Unknown;
        }
        self.reap().await
    }

    /// Kills the worker and everything it started, and reaps it.
    pub(crate) async fn kill_and_wait(self) -> Exit {
        self.kill();
        self.wait().await
    }

    /// Like [`wait`](Child::wait), but kills the worker if it has not exited
    /// within `grace`.
    pub(crate) async fn wait_or_kill(mut self, grace: Duration) -> Exit {
        if !self.exited_within(grace).await {
            self.kill();
        }
        self.wait().await
    }

    /// Whether the worker exits within `limit`.
    pub(crate) async fn exited_within(&mut self, limit: Duration) -> bool {
        let exited = std::future::poll_fn(|cx| self.poll_exited(cx));
        tokio::time::timeout(limit, exited).await.is_ok()
    }

    /// Reaps an exited worker (or marks it gone) and removes it from the
    /// ledger; for use once [`poll_exited`](Child::poll_exited) was `Ready`.
    pub(crate) async fn reap(&self) -> Exit {
        // Its leftovers die first (a tracer hiding the zombie among them).
        self.process.kill_now();
        let mut tries = 0;
        let exit = loop {
            if let Some(exit) = self.process.try_reap() {
                break exit;
            }
            // Exited but not yet waitable: a tracer is letting go, or its
            // last thread is on its way out. Never hang: the ledger reaps
            // it when the pool goes.
            tries += 1;
            if tries > 100 {
                return Exit::Unknown;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        self.ledger.forget(&self.process);
        // Removing the cgroup may wait for its killed processes to finish
        // exiting: not on an async thread, and nobody needs to wait for it
        // (nor to keep the pidfd open meanwhile: only the path goes along).
        if let Some(cgroup) = self.process.cgroup.get().cloned() {
            drop(tokio::task::spawn_blocking(move || cgroup.remove()));
        }
        exit
    }
}

fn new_watch(process: &Process) -> Watch {
    process
        .pidfd
        .as_ref()
        .and_then(|pidfd| pidfd.try_clone().ok())
        .and_then(|pidfd| crate::sys::watch_readable(pidfd).ok())
        .map_or_else(timer, Watch::PidFd)
}

fn timer() -> Watch {
    let mut interval = tokio::time::interval(POLL_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Watch::Timer(interval)
}

impl Drop for Child {
    /// A child nobody waits for any more is killed; it is reaped in the
    /// background, or by the pool's `Drop` if no runtime is left to do it.
    fn drop(&mut self) {
        if self.process.lock().is_some() {
            return;
        }
        self.process.kill();
        if self.background {
            return;
        }
        // The watch holds a registration of the pidfd: drop it first.
        self.watch = None;
        let process = self.process.clone();
        let ledger = self.ledger.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                Child {
                    process,
                    ledger,
                    watch: None,
                    background: true,
                }
                .wait()
                .await
            });
        }
    }
}

/// How long dropping a pool may block reaping its killed workers.
pub(crate) const REAP_LIMIT: Duration = Duration::from_millis(500);

/// Every worker the pool started and has not reaped yet.
///
/// tokio's runtime may be gone when the pool is dropped (or be going with it),
/// so no await can be relied on then; the ledger lets the pool's `Drop` kill
/// and reap every worker it ever started, whichever task holds it, by
/// blocking briefly.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// `None` once the pool is gone: a worker started after that is killed
    /// at once by whoever started it.
    processes: Mutex<Option<HashMap<Pid, Arc<Process>>>>,
}

impl Ledger {
    pub(crate) fn new() -> Ledger {
        Ledger {
            processes: Mutex::new(Some(HashMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<Pid, Arc<Process>>>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `false` if the pool is already gone.
    fn record(&self, process: &Arc<Process>) -> bool {
        match self.lock().as_mut() {
            Some(processes) => {
                processes.insert(process.pid, process.clone());
                true
            }
            None => false,
        }
    }

    fn forget(&self, process: &Arc<Process>) {
        if let Some(processes) = self.lock().as_mut()
            && processes
                .get(&process.pid)
                .is_some_and(|p| Arc::ptr_eq(p, process))
        {
            processes.remove(&process.pid);
        }
    }

    /// Kills every worker not yet reaped, with everything it started, and
    /// reaps them, blocking for at most [`REAP_LIMIT`] (SIGKILL takes effect
    /// within milliseconds; the bound is for a process stuck in the kernel);
    /// launchers, asked with SIGTERM first, get [`REAP_LIMIT`] to end before
    /// the SIGKILL, so a pool of remote workers may block up to three times
    /// as long. Their cgroups are left to the pool's cgroup, removed when it
    /// drops.
    pub(crate) fn kill_all(&self) {
        let processes: Vec<Arc<Process>> = self
            .lock()
            .take()
            .map(|map| map.into_values().collect())
            .unwrap_or_default();
        let (gentle, hard): (Vec<_>, Vec<_>) = processes.into_iter().partition(|p| p.gentle);
        for process in gentle.iter().chain(&hard) {
            process.kill();
        }
        Ledger::reap_blocking(hard, REAP_LIMIT);
        // Launchers were asked to end; those that have not by now are killed.
        let left = Ledger::reap_blocking(gentle, REAP_LIMIT);
        for process in &left {
            process.kill();
        }
        Ledger::reap_blocking(left, REAP_LIMIT);
    }

    /// Reaps what exits within `limit`; returns the rest.
    fn reap_blocking(
        processes: impl IntoIterator<Item = Arc<Process>>,
        limit: Duration,
    ) -> Vec<Arc<Process>> {
        let mut left: Vec<Arc<Process>> = processes.into_iter().collect();
        let deadline = Instant::now() + limit;
        loop {
            left.retain(|process| process.try_reap().is_none());
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
