//! Panics on the task thread become data for the caller instead of text on
//! stderr; panics on any other thread keep the default report.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

use crate::wire::answer::PanicReport;

thread_local! {
    static IS_TASK_THREAD: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
}

/// Makes the calling thread the task thread, whose panics are recorded.
pub(super) fn capture_on_this_thread() {
    IS_TASK_THREAD.with(|flag| flag.set(true));
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if IS_TASK_THREAD.with(|flag| flag.get()) {
            let message = panic_text(info.payload());
            let location = info.location().map(|location| location.to_string());
            LAST_PANIC.with(|last| *last.borrow_mut() = Some((message, location)));
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
            Some((recorded, location)) if recorded == message => (message, location),
            _ => (message, None),
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
