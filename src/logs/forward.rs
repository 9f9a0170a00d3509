//! The subscriber a worker installs to send its `tracing` events to the
//! pool.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::wire::log as frame;
use crate::worker::link::Link;

/// Sends `tracing` events and `log` records at `level` or more severe to
/// the pool, from now on; either is left alone if the program installed a
/// global subscriber (or logger) of its own.
pub(crate) fn forward_from_worker(level: Level) {
    let _ = tracing::subscriber::set_global_default(Forward {
        level,
        next_span: AtomicU64::new(1),
    });
    // Much of the ecosystem logs through `log`, not `tracing`.
    if log::set_logger(&ForwardLog).is_ok() {
        log::set_max_level(match level {
            Level::ERROR => log::LevelFilter::Error,
            Level::WARN => log::LevelFilter::Warn,
            Level::INFO => log::LevelFilter::Info,
            Level::DEBUG => log::LevelFilter::Debug,
            Level::TRACE => log::LevelFilter::Trace,
        });
    }
}

/// Sends one record to the pool, tagged with the running task.
fn send(level: Level, target: &str, message: &str) {
    let Some(link) = Link::get() else {
        return; // before serving starts: nowhere to send it
    };
    let frame = frame::encode(
        crate::worker::running_task(),
        level,
        target,
        message,
        link.max_frame(),
    );
    // A pool that is gone ends this process; nothing to report to.
    let _ = link.send_soon(&[&frame]);
}

struct Forward {
    level: Level,
    next_span: AtomicU64,
}

impl Subscriber for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.level
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.level))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = Text::default();
        event.record(&mut text);
        let metadata = event.metadata();
        send(*metadata.level(), metadata.target(), &text.finish());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The `log` crate's side: its records go out as events do (the level
/// filter is `log`'s own max level, set with the logger).
struct ForwardLog;

impl log::Log for ForwardLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => Level::ERROR,
            log::Level::Warn => Level::WARN,
            log::Level::Info => Level::INFO,
            log::Level::Debug => Level::DEBUG,
            log::Level::Trace => Level::TRACE,
        };
        send(level, record.target(), &record.args().to_string());
    }

    fn flush(&self) {}
}

/// An event's fields as one line: the message, then `name=value` pairs.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(&self.fields);
        }
        self.message
    }
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}
