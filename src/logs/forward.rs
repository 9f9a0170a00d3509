//! The subscriber a worker installs to send its `tracing` events to the
//! pool.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::wire::log;
use crate::worker::link::Link;

/// Sends events at `level` or more severe to the pool, from now on; does
/// nothing if the program installed a global subscriber of its own.
pub(crate) fn forward_from_worker(level: Level) {
    let _ = tracing::subscriber::set_global_default(Forward {
        level,
        next_span: AtomicU64::new(1),
    });
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
        let Some(link) = Link::get() else {
            return; // before serving starts: nowhere to send it
        };
        let mut text = Text::default();
        event.record(&mut text);
        let metadata = event.metadata();
        let frame = log::encode(
            crate::worker::running_task(),
            *metadata.level(),
            metadata.target(),
            &text.finish(),
            link.max_frame(),
        );
        // A pool that is gone ends this process; nothing to report to.
        let _ = link.send_soon(&[&frame]);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
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
