//! `LOG`: a `tracing` event from inside a worker, for the pool's process
//! to emit (see [`crate::logs`]). Its id is the request the worker was
//! running (0: none).

use super::frame::{self, LOG};

/// A log record's level as it travels: 1 (error) to 5 (trace); 0 in a
/// `START` means "send none".
pub(crate) fn level_byte(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

/// The level a byte from [`level_byte`] stands for.
pub(crate) fn level_of(byte: u8) -> Option<tracing::Level> {
    Some(match byte {
        1 => tracing::Level::ERROR,
        2 => tracing::Level::WARN,
        3 => tracing::Level::INFO,
        4 => tracing::Level::DEBUG,
        5 => tracing::Level::TRACE,
        _ => return None,
    })
}

/// The longest message a `LOG` frame carries, in bytes: a longer one is
/// cut (a log line must never make a frame the pool refuses). Targets are
/// cut at 1 KiB.
pub(crate) const MAX_MESSAGE: usize = 32 << 10;

/// A whole `LOG` frame: level `u8`, the target's length `u16` and the
/// target, then the message (the event's fields, formatted; cut to
/// [`MAX_MESSAGE`], or to what a frame of `max_frame` body bytes holds,
/// at a character boundary, ending in `…` if it was).
pub(crate) fn encode(
    task: u64,
    level: tracing::Level,
    target: &str,
    message: &str,
    max_frame: u64,
) -> Vec<u8> {
    let room = usize::try_from(max_frame).unwrap_or(usize::MAX);
    let target = cut(target, (1 << 10).min(room / 4));
    let overhead = frame::PREFIX_LEN + 3 + target.len() + '…'.len_utf8();
    let cut_message = cut(
        message,
        (MAX_MESSAGE - '…'.len_utf8()).min(room.saturating_sub(overhead)),
    );
    let mut out = Vec::with_capacity(32 + target.len() + cut_message.len());
    frame::begin(&mut out, LOG, task);
    out.push(level_byte(level));
    out.extend_from_slice(&(target.len() as u16).to_le_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(cut_message.as_bytes());
    if cut_message.len() < message.len() {
        out.extend_from_slice("…".as_bytes());
    }
    frame::end(&mut out);
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary (`str::floor_char_boundary` is newer than the
/// crate's MSRV, 1.88).
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A `LOG` payload: level, target, message.
pub(crate) fn parse(payload: &[u8]) -> Result<(tracing::Level, &str, &str), String> {
    let garbage = || format!("a LOG record of {} bytes", payload.len());
    let (&level, rest) = payload.split_first().ok_or_else(garbage)?;
    let level = level_of(level).ok_or_else(garbage)?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(garbage)?;
    let len = usize::from(u16::from_le_bytes(*len));
    if rest.len() < len {
        return Err(garbage());
    }
    let (target, message) = rest.split_at(len);
    let text = |bytes| std::str::from_utf8(bytes).map_err(|_| garbage());
    Ok((level, text(target)?, text(message)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{HEADER_LEN, Parts};

    #[test]
    fn a_record_reads_back_and_garbage_is_refused() {
        let frame = encode(
            7,
            tracing::Level::WARN,
            "app::io",
            "disk almost full",
            1 << 20,
        );
        let parts = Parts::of(&frame[HEADER_LEN..]).unwrap();
        assert_eq!((parts.kind, parts.id), (LOG, 7));
        assert_eq!(
            parse(parts.payload),
            Ok((tracing::Level::WARN, "app::io", "disk almost full"))
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&[9, 0, 0]).is_err());
        assert!(parse(&[1, 5, 0, b'a']).is_err());
        for byte in 1..=5 {
            assert_eq!(level_of(byte).map(level_byte), Some(byte));
        }
        // A huge record is cut, at a character boundary, and says so.
        let huge = "é".repeat(MAX_MESSAGE);
        let frame = encode(1, tracing::Level::INFO, &"t".repeat(5_000), &huge, 1 << 20);
        let parts = Parts::of(&frame[HEADER_LEN..]).unwrap();
        let (_, target, message) = parse(parts.payload).unwrap();
        assert_eq!(target.len(), 1 << 10);
        assert!(
            message.len() <= MAX_MESSAGE && message.ends_with('…'),
            "{}",
            message.len()
        );
        // And to what the frame limit allows.
        for max_frame in [64, 100, 4096] {
            let frame = encode(1, tracing::Level::INFO, "app", &huge, max_frame);
            assert!(frame::body_len_of(&frame) <= max_frame, "{max_frame}");
        }
    }
}
