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

/// A whole `LOG` frame: level `u8`, the target's length `u16` and the
/// target, then the message (the event's fields, formatted).
pub(crate) fn encode(task: u64, level: tracing::Level, target: &str, message: &str) -> Vec<u8> {
    let target = &target.as_bytes()[..target.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(32 + target.len() + message.len());
    frame::begin(&mut out, LOG, task);
    out.push(level_byte(level));
    out.extend_from_slice(&(target.len() as u16).to_le_bytes());
    out.extend_from_slice(target);
    out.extend_from_slice(message.as_bytes());
    frame::end(&mut out);
    out
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
        let frame = encode(7, tracing::Level::WARN, "app::io", "disk almost full");
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
    }
}
