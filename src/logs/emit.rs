//! Emitting a worker's log record in the pool's process.

use tracing::Level;

/// Emits a record from worker `pid`, sent while it ran `task_id`
/// (`task`: its name, if the pool still knows it).
pub(crate) fn emit(
    pid: u32,
    task: Option<&'static str>,
    task_id: u64,
    level: Level,
    origin: &str,
    message: &str,
) {
    let task = task.unwrap_or("");
    // `event!` wants its level as a constant.
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                target: "procpool::worker",
                $level,
                worker = pid,
                task,
                task_id,
                origin,
                "{message}"
            )
        };
    }
    match level {
        Level::ERROR => at!(Level::ERROR),
        Level::WARN => at!(Level::WARN),
        Level::INFO => at!(Level::INFO),
        Level::DEBUG => at!(Level::DEBUG),
        Level::TRACE => at!(Level::TRACE),
    }
}
