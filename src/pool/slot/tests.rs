//! The state machine without processes: each "worker" is the far end of a
//! `tokio::io::duplex`, driven by the test through the crate's own wire
//! modules, and its "process" exits when the test (or a kill) says so. Time
//! is paused, so every timer fires exactly on its deadline.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::*;
use crate::codec;
use crate::pool::job::Reply;
use crate::wire::frame::{self, Parts};
use crate::wire::{answer, request};

const SIGKILL: i32 = 9;

/// How a mock worker ended; `None` while it runs.
type ExitCell = Arc<watch::Sender<Option<Exit>>>;

/// Starts mock workers: each start hands the test its far end.
#[derive(Clone, Debug)]
struct MockLauncher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// When each start was asked for.
    starts: Mutex<Vec<Instant>>,
    /// Starts still to fail before one succeeds.
    failing: AtomicU32,
    next_pid: AtomicU32,
    workers: mpsc::UnboundedSender<MockWorker>,
    /// Every worker started, for `kill_all`.
    exits: Mutex<Vec<ExitCell>>,
}

impl MockLauncher {
    fn starts(&self) -> Vec<Instant> {
        self.shared.starts.lock().unwrap().clone()
    }
}

impl Launch for MockLauncher {
    type Io = DuplexStream;
    type Process = MockProcess;

    fn start(&self) -> Starting<Self> {
        let shared = self.shared.clone();
        shared.starts.lock().unwrap().push(Instant::now());
        tokio::spawn(async move {
            let failing = shared.failing.load(SeqCst);
            if failing > 0 {
                shared.failing.store(failing - 1, SeqCst);
                return Err(Error::spawn("the mock refused to start", None));
            }
            let pid = shared.next_pid.fetch_add(1, SeqCst);
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let exit: ExitCell = Arc::new(watch::channel(None).0);
            shared.exits.lock().unwrap().push(exit.clone());
            let _ = shared.workers.send(MockWorker {
                pid,
                io: Some(theirs),
                exit: exit.clone(),
            });
            Ok(Launched {
                process: MockProcess {
                    pid,
                    exit,
                    exited: None,
                },
                io: ours,
                first_id: 1,
                keepalive: None,
            })
        })
    }

    fn max_frame(&self) -> u64 {
        1 << 20
    }

    fn memory_limit(&self) -> Option<u64> {
        None
    }

    fn cancel_grace(&self) -> Duration {
        Duration::ZERO
    }

    fn kill_all(&self) {
        for exit in self.shared.exits.lock().unwrap().iter() {
            kill(exit);
        }
    }
}

fn kill(exit: &ExitCell) {
    exit.send_if_modified(|state| {
        let alive = state.is_none();
        if alive {
            *state = Some(Exit::Signal(SIGKILL));
        }
        alive
    });
}

/// The pool's handle on a mock worker's "process".
struct MockProcess {
    pid: u32,
    exit: ExitCell,
    exited: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for MockProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProcess")
            .field("pid", &self.pid)
            .finish()
    }
}

impl Drop for MockProcess {
    /// Like a real `Child`: one nobody holds any more is killed.
    fn drop(&mut self) {
        kill(&self.exit);
    }
}

async fn exited(exit: &ExitCell) -> Exit {
    let mut watch = exit.subscribe();
    let exit = *watch.wait_for(Option::is_some).await.expect("held by us");
    exit.expect("waited for")
}

impl WorkerProcess for MockProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn kill(&self) {
        kill(&self.exit);
    }

    fn resident_bytes(&self) -> Option<u64> {
        None
    }

    fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.exit.borrow().is_some() {
            return Poll::Ready(());
        }
        let exit = self.exit.clone();
        let watch = self.exited.get_or_insert_with(|| {
            Box::pin(async move {
                let _ = exited(&exit).await;
            })
        });
        watch.as_mut().poll(cx)
    }

    async fn wait_or_kill(self, grace: Duration) -> Exit {
        if tokio::time::timeout(grace, exited(&self.exit))
            .await
            .is_err()
        {
            self.kill();
        }
        exited(&self.exit).await
    }

    fn kill_and_wait(self) -> impl Future<Output = Exit> + Send + 'static {
        self.kill();
        async move { exited(&self.exit).await }
    }
}

/// The test's end of a mock worker.
struct MockWorker {
    pid: u32,
    /// `None` once it hung up.
    io: Option<DuplexStream>,
    exit: ExitCell,
}

/// A frame as the worker reads it.
#[derive(Debug, PartialEq, Eq)]
struct Got {
    kind: u8,
    id: u64,
    /// For a request: the `u32` argument the test's jobs carry.
    arg: Option<u32>,
}

impl MockWorker {
    async fn read(&mut self) -> Got {
        let io = self.io.as_mut().expect("not hung up");
        let body = frame::read_async(io, 1 << 20)
            .await
            .unwrap()
            .expect("a frame, not the end of the stream");
        let parts = Parts::of(&body).unwrap();
        let arg = (parts.kind == frame::REQUEST).then(|| {
            let (_, args) = request::split(parts.payload).unwrap();
            codec::decode::<u32>(args).unwrap()
        });
        Got {
            kind: parts.kind,
            id: parts.id,
            arg,
        }
    }

    /// Reads a request and returns its id and argument.
    async fn request(&mut self) -> (u64, u32) {
        let got = self.read().await;
        assert_eq!(got.kind, frame::REQUEST, "{got:?}");
        (got.id, got.arg.unwrap())
    }

    async fn send(&mut self, frame: &[u8]) {
        let io = self.io.as_mut().expect("not hung up");
        io.write_all(frame).await.unwrap();
    }

    /// Answers request `id` with `value`, reporting `nanos` of run time.
    async fn ok(&mut self, id: u64, value: u64, nanos: u64) {
        let mut out = Vec::new();
        answer::begin_ok(&mut out, id);
        codec::encode_into(&value, &mut out).unwrap();
        answer::end_ok(&mut out, nanos);
        self.send(&out).await;
    }

    /// Ends the process, which closes its socket.
    fn exit(&mut self, exit: Exit) {
        self.exit.send_replace(Some(exit));
        self.io = None;
    }

    /// How it ended, once it did (killed by the pool: `Signal(9)`).
    async fn ended(&self) -> Exit {
        exited(&self.exit).await
    }
}

/// One slot, driven as the dispatcher drives it, by a task of its own.
struct Rig {
    launcher: MockLauncher,
    counters: Arc<Counters>,
    submit: mpsc::UnboundedSender<Job>,
    workers: mpsc::UnboundedReceiver<MockWorker>,
    /// Failed starts the slot reported.
    start_failures: Arc<AtomicU32>,
    /// Whether the slot has stopped, and the exit it recorded.
    status: watch::Receiver<(bool, Option<Exit>)>,
}

impl Rig {
    /// A slot that starts its first worker now, after `failing` failed
    /// starts; its worker holds at most `max_depth` requests.
    fn new(failing: u32, max_depth: usize) -> Rig {
        Rig::build(failing, max_depth, false)
    }

    /// A [`Slot::one_shot`] (a `Process`'s), after `failing` failed starts.
    fn one_shot(failing: u32) -> Rig {
        Rig::build(failing, 1, true)
    }

    fn build(failing: u32, max_depth: usize, one_shot: bool) -> Rig {
        let (workers_tx, workers) = mpsc::unbounded_channel();
        let launcher = MockLauncher {
            shared: Arc::new(Shared {
                starts: Mutex::new(Vec::new()),
                failing: AtomicU32::new(failing),
                next_pid: AtomicU32::new(100),
                workers: workers_tx,
                exits: Mutex::new(Vec::new()),
            }),
        };
        let counters = Arc::new(Counters::default());
        let start_failures = Arc::new(AtomicU32::new(0));
        let (submit, mut jobs) = mpsc::unbounded_channel::<Job>();
        let mut slot = match one_shot {
            true => Slot::one_shot(launcher.start()),
            false => Slot::starting(launcher.start()),
        };
        let (status_tx, status) = watch::channel((false, None));
        let mut queue = VecDeque::new();
        let (driver_launcher, driver_counters, failures) =
            (launcher.clone(), counters.clone(), start_failures.clone());
        tokio::spawn(poll_fn(move |cx| {
            while let Poll::Ready(Some(job)) = jobs.poll_recv(cx) {
                queue.push_back(job);
            }
            let mut ctx = Ctx {
                launcher: &driver_launcher,
                recycle: Recycle::default(),
                queue: &mut queue,
                counters: &driver_counters,
            };
            let mut failed = slot.poll(cx, &mut ctx).is_some();
            while !ctx.queue.is_empty() && slot.room(max_depth).is_some() {
                let job = ctx.queue.pop_front().unwrap();
                slot.accept(job, ctx.launcher, Recycle::default());
            }
            failed |= slot.flush(cx, &mut ctx).is_some();
            if failed {
                failures.fetch_add(1, SeqCst);
            }
            status_tx.send_replace((slot.is_stopped(), slot.exit()));
            Poll::<()>::Pending
        }));
        Rig {
            launcher,
            counters,
            submit,
            workers,
            start_failures,
            status,
        }
    }

    /// Submits a task whose argument is `arg`, to be run again `retries`
    /// times if its worker dies under it.
    fn submit(&self, arg: u32, retries: u32) -> oneshot::Receiver<Result<Reply, Error>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            task: "mock::task",
            request: request::encode(0, arg).unwrap(),
            reply,
            retries_left: retries,
            failed_deliveries: 0,
            crashes: None,
            placed: Default::default(),
            holds: Default::default(),
            regions: Default::default(),
            room: None,
        };
        self.submit.send(job).unwrap();
        answer
    }

    async fn worker(&mut self) -> MockWorker {
        self.workers.recv().await.expect("the launcher lives")
    }

    fn count(&self, counter: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.counters).load(SeqCst)
    }
}

fn value(reply: Result<Result<Reply, Error>, oneshot::error::RecvError>) -> u64 {
    let reply = reply.expect("answered").expect("a value");
    codec::decode(reply.payload()).unwrap()
}

fn error(reply: Result<Result<Reply, Error>, oneshot::error::RecvError>) -> Error {
    reply.expect("answered").expect_err("an error")
}

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff(0), None);
    assert_eq!(backoff(1), Some(BACKOFF_FIRST));
    assert_eq!(backoff(2), Some(BACKOFF_FIRST * 2));
    assert_eq!(backoff(40), Some(BACKOFF_MAX));
}

#[tokio::test(start_paused = true)]
async fn an_answer_is_delivered_to_the_job_it_names() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(7, 0);
    let (id, arg) = worker.request().await;
    assert_eq!((id, arg), (1, 7), "the first request on a connection is 1");
    worker.ok(id, 49, 1234).await;
    let reply = answer.await.unwrap().unwrap();
    assert_eq!((reply.pid, reply.nanos), (worker.pid, 1234));
    assert_eq!(codec::decode::<u64>(reply.payload()).unwrap(), 49);
    assert_eq!(rig.count(|c| &c.completed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hangup_while_running_the_head_fails_it_as_worker_died_and_requeues_the_rest_in_order() {
    let mut rig = Rig::new(0, 3);
    let mut worker = rig.worker().await;
    // A fast first task: the worker's depth grows to the maximum, 3.
    let warm_up = rig.submit(0, 0);
    let (id, _) = worker.request().await;
    worker.ok(id, 0, 1_000).await;
    assert_eq!(value(warm_up.await), 0);

    let running = rig.submit(1, 0);
    let behind: Vec<_> = (2..=4).map(|arg| rig.submit(arg, 0)).collect();
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(worker.request().await.1);
    }
    assert_eq!(sent, [1, 2, 3], "task 4 waits in the queue");
    worker.exit(Exit::Code(3));

    let err = error(running.await);
    assert!(err.is_worker_died(), "{err}");
    assert_eq!(
        (err.exit_code(), err.worker_pid()),
        (Some(3), Some(worker.pid))
    );
    // Tasks 2 and 3 go back in front of task 4, in their order.
    let mut replacement = rig.worker().await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let (id, arg) = replacement.request().await;
        order.push(arg);
        replacement.ok(id, u64::from(arg) * 10, 1_000).await;
    }
    assert_eq!(order, [2, 3, 4]);
    for (answer, arg) in behind.into_iter().zip(2..) {
        assert_eq!(value(answer.await), arg * 10);
    }
    assert_eq!(rig.count(|c| &c.failed), 1);
    assert_eq!(rig.count(|c| &c.respawns), 1);
    assert_eq!(rig.launcher.starts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_running_task_is_sent_a_cancel_and_killed_after_cancel_grace_if_ignored() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    drop(answer); // its caller gives up while it runs

    let cancel = worker.read().await;
    let asked = Instant::now();
    assert_eq!((cancel.kind, cancel.id), (frame::CANCEL, id));
    // The mock ignores it, as a stopped worker would.
    assert_eq!(worker.ended().await, Exit::Signal(SIGKILL));
    assert_eq!(asked.elapsed(), CANCEL_GRACE, "killed on the deadline");

    let _replacement = rig.worker().await;
    assert_eq!(rig.count(|c| &c.cancelled), 1);
    assert_eq!(rig.count(|c| &c.failed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_skip_of_a_cancelled_request_counts_as_cancelled_and_keeps_the_worker() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    drop(answer);
    assert_eq!(worker.read().await.kind, frame::CANCEL);
    let mut skip = Vec::new();
    answer::skipped(&mut skip, id);
    worker.send(&skip).await;

    let next = rig.submit(2, 0);
    let (id, arg) = worker.request().await;
    assert_eq!((id, arg), (2, 2), "the same worker goes on");
    worker.ok(id, 20, 1_000).await;
    assert_eq!(value(next.await), 20);
    tokio::time::sleep(CANCEL_GRACE * 2).await;
    assert!(worker.exit.borrow().is_none(), "never killed");
    assert_eq!(rig.count(|c| &c.cancelled), 1);
    assert_eq!(rig.launcher.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_skip_nobody_asked_for_is_a_protocol_error() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    let mut skip = Vec::new();
    answer::skipped(&mut skip, id);
    worker.send(&skip).await;
    let err = error(answer.await);
    assert!(err.is_protocol(), "{err}");
    assert_eq!(worker.ended().await, Exit::Signal(SIGKILL));
    let _replacement = rig.worker().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_frame_kind_is_a_protocol_error_and_a_replacement_is_started() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    let mut garbage = Vec::new();
    frame::begin(&mut garbage, 0x77, id);
    garbage.extend_from_slice(b"not ours");
    frame::end(&mut garbage);
    worker.send(&garbage).await;

    let err = error(answer.await);
    assert!(err.is_protocol(), "{err}");
    assert!(err.to_string().contains("unknown kind 0x77"), "{err}");
    assert_eq!(
        worker.ended().await,
        Exit::Signal(SIGKILL),
        "killed at once"
    );
    let replacement = rig.worker().await;
    assert_ne!(replacement.pid, worker.pid);
    assert_eq!(rig.count(|c| &c.failed), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_naming_the_wrong_request_is_a_protocol_error_and_a_replacement_is_started() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    worker.ok(id + 5, 0, 1_000).await;

    let err = error(answer.await);
    assert!(err.is_protocol(), "{err}");
    assert!(err.to_string().contains("where request 1 was due"), "{err}");
    assert_eq!(worker.ended().await, Exit::Signal(SIGKILL));
    let _replacement = rig.worker().await;
    assert_eq!(rig.launcher.starts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_starts_in_a_row_back_off_50_then_100_then_200_ms() {
    let mut rig = Rig::new(3, 8);
    let mut worker = rig.worker().await;
    let starts = rig.launcher.starts();
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let ms = Duration::from_millis;
    assert_eq!(gaps, [ms(50), ms(100), ms(200)]);
    assert_eq!(rig.start_failures.load(SeqCst), 3, "each one reported");

    // The worker that did start serves.
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    worker.ok(id, 10, 1_000).await;
    assert_eq!(value(answer.await), 10);
}

#[tokio::test(start_paused = true)]
async fn a_retried_task_that_crashed_a_worker_before_backs_off() {
    let mut rig = Rig::new(0, 8);
    let answer = rig.submit(1, 5);
    let mut deaths = Vec::new();
    for _ in 0..2 {
        let mut worker = rig.worker().await;
        assert_eq!(worker.request().await.1, 1);
        worker.exit(Exit::Signal(11));
        deaths.push(Instant::now());
    }
    let mut third = rig.worker().await;
    let starts = rig.launcher.starts();
    // One crash may be bad luck: replaced at once. The same task crashing
    // the replacement too backs off like a crash loop.
    assert_eq!(starts[1] - deaths[0], Duration::ZERO);
    assert_eq!(starts[2] - deaths[1], BACKOFF_FIRST);

    let (id, arg) = third.request().await;
    assert_eq!(arg, 1);
    third.ok(id, 10, 1_000).await;
    assert_eq!(value(answer.await), 10);
    assert_eq!(rig.count(|c| &c.retried), 2);
    assert_eq!(rig.count(|c| &c.failed), 0);
}

/// A task submitted while a cancel is pending waits (the worker takes no
/// new work until it acts on the cancel); once the cancelled task is
/// answered anyway, or skipped, it must go out without another wake-up.
async fn a_queued_task_goes_out_once_the_pending_cancel_is_settled(skip: bool) {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let cancelled = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    drop(cancelled);
    assert_eq!(worker.read().await.kind, frame::CANCEL);
    let queued = rig.submit(2, 0);
    tokio::time::sleep(Duration::from_millis(1)).await; // it waits in the queue
    if skip {
        let mut out = Vec::new();
        answer::skipped(&mut out, id);
        worker.send(&out).await;
    } else {
        worker.ok(id, 10, 1_000).await; // it finished before the cancel came
    }
    let sent = tokio::time::timeout(CANCEL_GRACE / 2, worker.request()).await;
    let (id, arg) = sent.expect("sent without waiting for another event");
    assert_eq!((id, arg), (2, 2));
    worker.ok(id, 20, 1_000).await;
    assert_eq!(value(queued.await), 20);
    assert!(worker.exit.borrow().is_none(), "never killed");
}

#[tokio::test(start_paused = true)]
async fn a_task_queued_during_a_cancel_goes_out_when_the_cancelled_task_is_skipped() {
    a_queued_task_goes_out_once_the_pending_cancel_is_settled(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_task_queued_during_a_cancel_goes_out_when_the_cancelled_task_finishes_anyway() {
    a_queued_task_goes_out_once_the_pending_cancel_is_settled(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_slot_stops_when_its_worker_dies_and_keeps_the_exit() {
    let mut rig = Rig::one_shot(0);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let _ = worker.request().await;
    worker.exit(Exit::Code(3));
    let err = error(answer.await);
    assert_eq!(
        (err.exit_code(), err.worker_pid()),
        (Some(3), Some(worker.pid))
    );
    let status = *rig.status.wait_for(|(stopped, _)| *stopped).await.unwrap();
    assert_eq!(status, (true, Some(Exit::Code(3))));
    tokio::time::sleep(BACKOFF_MAX * 2).await;
    assert_eq!(rig.launcher.starts().len(), 1, "never refilled");
    assert_eq!(rig.count(|c| &c.respawns), 0);
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_slot_whose_start_fails_stops_without_backing_off() {
    let rig = Rig::one_shot(1);
    let mut status = rig.status.clone();
    status.wait_for(|(stopped, _)| *stopped).await.unwrap();
    assert_eq!(rig.start_failures.load(SeqCst), 1);
    tokio::time::sleep(BACKOFF_MAX * 2).await;
    assert_eq!(rig.launcher.starts().len(), 1, "no second start");
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_slot_whose_running_task_is_cancelled_stops_with_the_exit() {
    let mut rig = Rig::one_shot(0);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    drop(answer); // `Process::kill`: the caller gives up on it
    let cancel = worker.read().await;
    assert_eq!((cancel.kind, cancel.id), (frame::CANCEL, id));
    worker.exit(Exit::Signal(SIGKILL)); // it ends itself, as a worker does
    let status = *rig.status.wait_for(|(stopped, _)| *stopped).await.unwrap();
    assert_eq!(status, (true, Some(Exit::Signal(SIGKILL))));
    assert_eq!(rig.count(|c| &c.cancelled), 1);
    assert_eq!(rig.launcher.starts().len(), 1, "never refilled");
}

#[tokio::test(start_paused = true)]
async fn a_worker_writing_slowly_is_not_taken_for_stalled() {
    // Two log lines and an answer arrive in three writes, each a little
    // under the stall limit after the last, and the first two writes each
    // leave the same 10 bytes part-way: the worker never stopped.
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    let line = crate::wire::log::encode(id, tracing::Level::INFO, "t", "working", 1 << 20);
    let mut ok = Vec::new();
    answer::begin_ok(&mut ok, id);
    codec::encode_into(&1u64, &mut ok).unwrap();
    answer::end_ok(&mut ok, 0);
    let bytes = [line.as_slice(), &line, &ok].concat();
    let gap = STALL_LIMIT * 3 / 5;
    let (first, second) = (10, line.len() + 10);
    worker.send(&bytes[..first]).await;
    tokio::time::sleep(gap).await;
    worker.send(&bytes[first..second]).await;
    tokio::time::sleep(gap).await;
    worker.send(&bytes[second..]).await;

    let reply = answer.await.unwrap().unwrap();
    assert_eq!(codec::decode::<u64>(reply.payload()).unwrap(), 1);
    assert_eq!(rig.count(|c| &c.respawns), 0);
}

#[tokio::test(start_paused = true)]
async fn a_worker_stopped_mid_frame_is_let_go_after_the_stall_limit() {
    let mut rig = Rig::new(0, 8);
    let mut worker = rig.worker().await;
    let answer = rig.submit(1, 0);
    let (id, _) = worker.request().await;
    let mut frame = Vec::new();
    answer::begin_ok(&mut frame, id);
    codec::encode_into(&1u64, &mut frame).unwrap();
    answer::end_ok(&mut frame, 0);
    worker.send(&frame[..frame.len() - 1]).await;
    let sent = Instant::now();

    let err = error(answer.await);
    assert!(
        err.to_string().contains("stopped arriving part-way"),
        "{err}"
    );
    assert!(sent.elapsed() >= STALL_LIMIT, "{:?}", sent.elapsed());
    assert_eq!(worker.ended().await, Exit::Signal(SIGKILL));
}
