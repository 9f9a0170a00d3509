//! Panics on the task thread become data for the caller instead of text on
//! stderr; panics on any other thread keep the default report.
//!
//! A report carries the worker-side backtrace when the user asked for one
//! (`PoolBuilder::capture_backtraces`, or `RUST_LIB_BACKTRACE` /
//! `RUST_BACKTRACE` in the worker's environment, as std reads them). It is
//! taken in the panic hook, the only place where the panicking frames are
//! still on the stack; a task that does not panic pays nothing, and a panic
//! with backtraces off pays one cached check (std's own).

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::wire::answer::PanicReport;
use crate::wire::hello::Backtraces;

thread_local! {
    static IS_TASK_THREAD: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
}

/// Whether panics carry a backtrace, from the pool's `START`
/// ([`Backtraces`] as its byte).
static BACKTRACES: AtomicU8 = AtomicU8::new(Backtraces::FromEnvironment as u8);

/// Sets whether this worker's panics carry a backtrace (from `START`).
pub(super) fn set_backtraces(backtraces: Backtraces) {
    BACKTRACES.store(backtraces as u8, Relaxed);
}

/// Makes the calling thread the task thread, whose panics are recorded.
pub(super) fn capture_on_this_thread() {
    IS_TASK_THREAD.with(|flag| flag.set(true));
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if IS_TASK_THREAD.with(|flag| flag.get()) {
            let report = PanicReport {
                message: panic_text(info.payload()),
                location: info.location().map(|location| location.to_string()),
                backtrace: backtrace(),
            };
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(report));
        } else {
            previous(info);
        }
    }));
}

/// Whether this thread is the task thread.
pub(crate) fn is_task_thread() -> bool {
    IS_TASK_THREAD.with(|flag| flag.get())
}

/// Runs `f`, turning a panic into its report.
pub(super) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, PanicReport> {
    // A panic caught inside an earlier task must not lend its report here.
    LAST_PANIC.with(|last| last.borrow_mut().take());
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        // The hook's record has the location, but it may belong to an
        // earlier panic that the task caught: `resume_unwind` re-raises
        // without calling the hook. Trust it only if it is this payload's.
        let message = panic_text(payload.as_ref());
        match LAST_PANIC.with(|last| last.borrow_mut().take()) {
            Some(recorded) if recorded.message == message => recorded,
            _ => PanicReport {
                message,
                ..PanicReport::default()
            },
        }
    })
}

/// A panic payload as text: the `&str` or `String` that `panic!` makes.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}

/// The backtrace of the panic being raised, if backtraces are on, from the
/// task's frame inwards (see [`trim`]).
fn backtrace() -> Option<String> {
    let captured = match BACKTRACES.load(Relaxed) {
        b if b == Backtraces::Always as u8 => Backtrace::force_capture(),
        b if b == Backtraces::Never as u8 => return None,
        // std reads RUST_LIB_BACKTRACE, then RUST_BACKTRACE, once, and
        // answers from a cache after that.
        _ => Backtrace::capture(),
    };
    (captured.status() == BacktraceStatus::Captured).then(|| trim(&captured.to_string()))
}

/// Symbols of the frames between the `panic!` and the hook: not the task's.
const RAISING: &[&str] = &[
    "std::backtrace",
    "std::panicking::",
    "core::panicking::",
    "std::panic::",
    "rust_begin_unwind",
    "__rustc::rust_begin_unwind",
    "rust_end_short_backtrace",
    "procpool::worker::panic::",
    "core::result::unwrap_failed",
    "core::option::expect_failed",
    "core::option::unwrap_failed",
];

/// Symbols of the frames that called the task: the worker's own.
const CALLING: &[&str] = &[
    "std::panicking::catch_unwind",
    "std::panicking::try",
    "std::panic::catch_unwind",
    "procpool::registry::",
    "procpool::worker::",
];

/// Frames a report keeps at most: a panic at the bottom of a deep
/// recursion would otherwise make a report of megabytes, over the frame
/// limit (the task would then fail as "result too large").
const MAX_FRAMES: usize = 128;

/// A backtrace as std prints it, less the frames that raise the panic and
/// those of the worker that called the task: what is left starts at the
/// `panic!` (or `unwrap`) and ends in the task's function, as the default
/// hook's short backtrace does. If no task frame is left (the task was
/// inlined into the registry's call, as release builds may do), the frames
/// from the raising ones on are kept; if none is recognised at all
/// (symbols stripped), the whole backtrace.
fn trim(text: &str) -> String {
    // A frame is its "  N: symbol" line and the "at file:line" lines after it.
    let mut frames: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let numbered = line
            .trim_start()
            .split_once(": ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match (numbered, frames.last_mut()) {
            (Some((_, symbol)), _) => frames.push((symbol, vec![line])),
            (None, Some((_, lines))) => lines.push(line),
            (None, None) => {}
        }
    }
    let is = |symbol: &str, set: &[&str]| set.iter().any(|part| symbol.contains(part));
    let first = frames
        .iter()
        .rposition(|(symbol, _)| is(symbol, RAISING) && !is(symbol, CALLING))
        .map_or(0, |last_raising| last_raising + 1);
    let mut end = frames[first..]
        .iter()
        .position(|(symbol, _)| is(symbol, CALLING))
        .map_or(frames.len(), |calling| first + calling);
    // The registry calls the task through the `Fn` traits: those frames
    // right above the worker's are its, not the task's.
    while end > first && frames[end - 1].0.starts_with("core::ops::function::") {
        end -= 1;
    }
    if first >= end {
        end = frames.len();
    }
    if first >= end {
        return text.to_string();
    }
    let kept = &frames[first..end.min(first + MAX_FRAMES)];
    let mut out = String::new();
    for (_, lines) in kept {
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    if kept.len() < end - first {
        let more = end - first - kept.len();
        out.push_str(&format!("      … and {more} more frames\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtrace_is_cut_to_the_task_frames() {
        let text = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/library/std/src/backtrace.rs:312:9
   1: procpool::worker::panic::backtrace
   2: std::panicking::rust_panic_with_hook
   3: core::panicking::panic_fmt
   4: my_app::parse_port
             at src/main.rs:7:5
   5: my_app::handle
             at src/main.rs:12:5
   6: core::ops::function::Fn::call
   7: procpool::registry::Registry::invoke
   7: std::panicking::catch_unwind
   8: main
";
        assert_eq!(
            trim(text),
            "   4: my_app::parse_port\n             at src/main.rs:7:5\n   5: my_app::handle\n             at src/main.rs:12:5\n"
        );
        let deep: String = (0..1000)
            .map(|i| format!("  {i}: my_app::recurse\n"))
            .collect();
        let cut = trim(&deep);
        assert_eq!(cut.lines().count(), MAX_FRAMES + 1, "{cut}");
        assert!(cut.ends_with("… and 872 more frames\n"), "{cut}");
        let stripped = "   0: <unknown>\n   1: <unknown>\n";
        assert_eq!(trim(stripped), stripped);
        let inlined = "   0: core::panicking::panic_fmt
   1: <Func as procpool::registry::Task<fn(A) .> Ret>>::call
   2: main
";
        assert_eq!(
            trim(inlined),
            "   1: <Func as procpool::registry::Task<fn(A) .> Ret>>::call\n   2: main\n"
        );
    }
}
