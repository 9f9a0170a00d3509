//! `tracing` events emitted inside tasks reach the parent's subscriber,
//! tagged with the worker and the task, in order and before the task's
//! result; a task that logs in a tight loop does not grow memory. The pool's
//! own events for a task happen inside that task's span.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

fn main() {
    run(
        tests![
            worker_events_reach_the_parent_tagged,
            log_crate_records_reach_the_parent_too,
            the_pool_reports_what_its_workers_and_tasks_do,
            each_task_has_a_span_around_the_pools_events_for_it,
            nothing_is_sent_unless_asked_for,
            a_process_forwards_its_events_too,
            a_record_over_the_frame_limit_is_cut_not_fatal,
            a_task_logging_in_a_tight_loop_stays_bounded,
        ],
        |_| {},
    );
}

/// Every event this process emits: (level, target, fields as text); or,
/// with `counting`, only how many came from workers. Also every span
/// (its fields as text, whether it closed) and, for each event inside one,
/// (the event's fields, the innermost span's id).
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<(Level, String, String)>>>,
    spans: Arc<AtomicU64>,
    span_fields: Arc<Mutex<HashMap<u64, (String, bool)>>>,
    in_spans: Arc<Mutex<Vec<(String, u64)>>>,
    counting: Arc<AtomicBool>,
    counted: Arc<AtomicU64>,
}

impl Capture {
    fn install() -> Capture {
        static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
        let capture = CAPTURE.get_or_init(|| {
            let capture = Capture::default();
            tracing::subscriber::set_global_default(capture.clone()).unwrap();
            capture
        });
        capture.events.lock().unwrap().clear();
        capture.span_fields.lock().unwrap().clear();
        capture.in_spans.lock().unwrap().clear();
        capture.counting.store(false, Ordering::Relaxed);
        capture.clone()
    }

    fn workers_events(&self) -> Vec<(Level, String)> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|(_, target, _)| target == "procpool::worker")
            .map(|(level, _, fields)| (*level, fields.clone()))
            .collect()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.spans.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields(format!("name={};", span.metadata().name()));
        span.record(&mut fields);
        self.span_fields
            .lock()
            .unwrap()
            .insert(id, (fields.0, false));
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        if let Some((text, _)) = self.span_fields.lock().unwrap().get_mut(&id.into_u64()) {
            let mut fields = Fields(std::mem::take(text));
            values.record(&mut fields);
            *text = fields.0;
        }
    }
    fn try_close(&self, id: Id) -> bool {
        if let Some((_, closed)) = self.span_fields.lock().unwrap().get_mut(&id.into_u64()) {
            *closed = true;
        }
        true
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if self.counting.load(Ordering::Relaxed) {
            if event.metadata().target() == "procpool::worker" {
                self.counted.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        if let Some(&span) = CURRENT_SPANS
            .with(|spans| spans.borrow().last().copied())
            .as_ref()
        {
            self.in_spans.lock().unwrap().push((fields.0.clone(), span));
        }
        let meta = event.metadata();
        self.events
            .lock()
            .unwrap()
            .push((*meta.level(), meta.target().to_string(), fields.0));
    }
    fn enter(&self, id: &Id) {
        CURRENT_SPANS.with(|spans| spans.borrow_mut().push(id.into_u64()));
    }
    fn exit(&self, _: &Id) {
        CURRENT_SPANS.with(|spans| spans.borrow_mut().pop());
    }
}

thread_local! {
    /// The spans this thread is in, innermost last.
    static CURRENT_SPANS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Fields as text: `name=value;` each.
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?};", field.name());
    }
}

async fn logging_pool(level: Option<Level>) -> procpool::Pool {
    let builder = procpool::Pool::builder().workers(1);
    let builder = match level {
        Some(level) => builder.forward_logs(level),
        None => builder,
    };
    builder.build().await.unwrap()
}

async fn worker_events_reach_the_parent_tagged() {
    let capture = Capture::install();
    let pool = logging_pool(Some(Level::INFO)).await;
    let pid = pool.submit(log_lines, 3).await.unwrap();
    // In before the result was delivered: the answer follows them.
    let events = capture.workers_events();
    assert_eq!(
        events.len(),
        4,
        "3 infos and a warning, no debug: {events:#?}"
    );
    for (i, (level, fields)) in events[..3].iter().enumerate() {
        assert_eq!(*level, Level::INFO);
        assert!(
            fields.starts_with(&format!("message=line i={i};")),
            "{fields}"
        );
        assert!(fields.contains(&format!("worker={pid};")), "{fields}");
        assert!(
            fields.contains("task=\"logs::common::log_lines\";"),
            "{fields}"
        );
        assert!(fields.contains("origin=\"logs::common\";"), "{fields}");
    }
    let (level, fields) = &events[3];
    assert_eq!(*level, Level::WARN);
    assert!(fields.contains("origin=\"custom::target\""), "{fields}");
    pool.shutdown().await;
}

async fn log_crate_records_reach_the_parent_too() {
    let capture = Capture::install();
    let pool = logging_pool(Some(Level::INFO)).await;
    let pid = pool.submit(log_records, 2).await.unwrap();
    let events = capture.workers_events();
    assert_eq!(events.len(), 2, "2 infos, no debug: {events:#?}");
    for (i, (level, fields)) in events.iter().enumerate() {
        assert_eq!(*level, Level::INFO);
        assert!(
            fields.starts_with(&format!("message=record {i};")),
            "{fields}"
        );
        assert!(fields.contains(&format!("worker={pid};")), "{fields}");
        assert!(
            fields.contains("task=\"logs::common::log_records\";"),
            "{fields}"
        );
        assert!(fields.contains("origin=\"some::crate\";"), "{fields}");
    }
    pool.shutdown().await;
}

async fn the_pool_reports_what_its_workers_and_tasks_do() {
    let capture = Capture::install();
    let pool = logging_pool(None).await;
    assert_eq!(pool.submit(square, 7).await.unwrap(), 49);
    let crashed = pool.submit(aborts, ()).await.unwrap_err();
    let pid = crashed.worker_pid().unwrap();
    assert_eq!(pool.submit(square, 8).await.unwrap(), 64);
    pool.shutdown().await;
    let events: Vec<(Level, String)> = capture
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, target, _)| target == "procpool")
        .map(|(level, _, fields)| (*level, fields.clone()))
        .collect();
    let find = |message: &str| {
        events
            .iter()
            .filter(|(_, fields)| fields.starts_with(&format!("message={message};")))
            .cloned()
            .collect::<Vec<_>>()
    };
    let started = find("worker started");
    assert_eq!(
        started.len(),
        2,
        "the first and its replacement: {events:#?}"
    );
    assert!(started.iter().all(|(level, _)| *level == Level::DEBUG));
    let finished = find("task finished");
    assert_eq!(finished.len(), 2, "{events:#?}");
    assert!(
        finished[0].1.contains("task=\"logs::common::square\";"),
        "{finished:?}"
    );
    assert!(finished[0].1.contains("run_us="), "{finished:?}");
    let died = find("worker died running a task");
    assert_eq!(died.len(), 1, "{events:#?}");
    let (level, fields) = &died[0];
    assert_eq!(*level, Level::WARN, "a crash is worth a warning");
    assert!(fields.contains(&format!("worker={pid};")), "{fields}");
    assert!(fields.contains("SIGABRT"), "{fields}");
    assert!(fields.contains("task=\"logs::common::aborts\""), "{fields}");
    // Nothing at info or above but the crash: quiet in steady state.
    let loud: Vec<_> = events
        .iter()
        .filter(|(level, _)| *level <= Level::INFO)
        .collect();
    assert_eq!(loud.len(), 1, "{loud:#?}");
}

async fn each_task_has_a_span_around_the_pools_events_for_it() {
    let capture = Capture::install();
    let pool = logging_pool(Some(Level::INFO)).await;
    let pid = pool.submit(log_lines, 1).await.unwrap();
    assert_eq!(pool.submit(square, 7).await.unwrap(), 49);
    let panicked = pool.submit(panics, "in a span".to_string()).await;
    assert!(panicked.unwrap_err().is_panic());
    pool.shutdown().await;
    let spans = capture.span_fields.lock().unwrap().clone();
    let span_of = |task: &str| {
        let found: Vec<_> = spans
            .iter()
            .filter(|(_, (fields, _))| {
                fields.starts_with("name=task;")
                    && fields.contains(&format!("task=\"logs::common::{task}\";"))
            })
            .collect();
        assert_eq!(found.len(), 1, "one span for {task}: {spans:#?}");
        let (&id, (fields, closed)) = found[0];
        assert!(fields.contains(&format!("worker={pid};")), "{fields}");
        assert!(fields.contains(";id="), "{fields}");
        assert!(fields.contains(";queue_wait_us="), "{fields}");
        assert!(closed, "the span ends with its answer: {fields}");
        id
    };
    let inside = |span: u64| -> Vec<String> {
        let in_spans = capture.in_spans.lock().unwrap();
        in_spans
            .iter()
            .filter(|(_, id)| *id == span)
            .map(|(fields, _)| fields.clone())
            .collect()
    };
    let messages = |span| -> Vec<String> {
        inside(span)
            .iter()
            .filter_map(|fields| {
                let message = fields.strip_prefix("message=")?.split(';').next()?;
                Some(message.to_string())
            })
            .collect()
    };
    assert_eq!(
        messages(span_of("square")),
        ["task submitted", "task assigned", "task finished"]
    );
    assert_eq!(
        messages(span_of("panics")),
        ["task submitted", "task assigned", "task failed"]
    );
    // What the worker logged while it ran the task is in its span too.
    let logged = messages(span_of("log_lines"));
    assert_eq!(
        logged,
        [
            "task submitted",
            "task assigned",
            "line i=0",
            "last",
            "task finished"
        ],
        "{:#?}",
        inside(span_of("log_lines"))
    );
}

async fn nothing_is_sent_unless_asked_for() {
    let capture = Capture::install();
    let pool = logging_pool(None).await;
    pool.submit(log_lines, 3).await.unwrap();
    assert!(capture.workers_events().is_empty());
    pool.shutdown().await;
}

async fn a_process_forwards_its_events_too() {
    let capture = Capture::install();
    let pid = procpool::Process::builder()
        .forward_logs(Level::WARN)
        .spawn(log_lines, 2)
        .await
        .unwrap();
    let events = capture.workers_events();
    assert_eq!(events.len(), 1, "only the warning: {events:#?}");
    assert!(
        events[0].1.contains(&format!("worker={pid};")),
        "{events:?}"
    );
}

// Found by the red team: a record longer than max_frame_size made a frame
// the pool refused, killing the worker and failing the task.
async fn a_record_over_the_frame_limit_is_cut_not_fatal() {
    let capture = Capture::install();
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_frame_size(1 << 20)
        .forward_logs(Level::INFO)
        .build()
        .await
        .unwrap();
    assert_eq!(pool.submit(log_huge, 2 << 20).await.unwrap(), 2 << 20);
    let events = capture.workers_events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].1.len() < 40 << 10,
        "cut: {} bytes",
        events[0].1.len()
    );
    assert!(events[0].1.contains("xxx…"), "marked as cut");
    pool.shutdown().await;
}

async fn a_task_logging_in_a_tight_loop_stays_bounded() {
    const LINES: u64 = 500_000;
    let capture = Capture::install();
    capture.counting.store(true, Ordering::Relaxed);
    capture.counted.store(0, Ordering::Relaxed);
    let pool = logging_pool(Some(Level::INFO)).await;
    let worker = pool.submit(pid, ()).await.unwrap();
    let reset = reset_peak_rss();
    let before = peak_rss_kib();
    pool.submit(log_lines, LINES).await.unwrap();
    let growth = peak_rss_kib().saturating_sub(before) / 1024;
    let worker_peak = peak_rss_kib_of(worker) / 1024;
    assert_eq!(capture.counted.load(Ordering::Relaxed), LINES + 1);
    eprintln!(
        "{LINES} records: parent peak grew {growth} MiB (reset: {reset}), worker peak {worker_peak} MiB"
    );
    assert!(
        worker_peak < 32,
        "the worker's peak RSS reached {worker_peak} MiB"
    );
    if reset {
        assert!(growth < 32, "the parent's peak RSS grew {growth} MiB");
    }
    pool.shutdown().await;
}
