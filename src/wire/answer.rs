//! Answers: what became of one request. The worker writes them (one per
//! request, in the order the requests came); the pool reads them.

use super::frame::{self, FAILED, HEADER_LEN, OK, PANIC, PREFIX_LEN, Parts, SKIPPED, TOO_LARGE};
use crate::codec;

/// Where the run time sits in an `OK` body.
const NANOS_AT: usize = PREFIX_LEN;
/// Where the result starts in an `OK` body.
pub(crate) const RESULT_AT: usize = NANOS_AT + 8;

/// A panic as it travels: its message, where it happened if known, and
/// the worker-side backtrace if the worker captured one (see
/// `PoolBuilder::capture_backtraces`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PanicReport {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<String>,
}

/// Starts an `OK` answer to request `id` in `out`, so the result can be
/// encoded straight after it; [`end_ok`] completes it.
pub(crate) fn begin_ok(out: &mut Vec<u8>, id: u64) {
    frame::begin(out, OK, id);
    out.extend_from_slice(&[0; 8]); // the run time, set by `end_ok`
}

/// Completes an answer begun with [`begin_ok`] once the result is in.
pub(crate) fn end_ok(out: &mut [u8], nanos: u64) {
    let at = HEADER_LEN + NANOS_AT;
    out[at..at + 8].copy_from_slice(&nanos.to_le_bytes());
    frame::end(out);
}

/// Writes a `FAILED` answer: the worker could not run request `id`.
pub(crate) fn failed(out: &mut Vec<u8>, id: u64, message: &str) {
    frame::begin(out, FAILED, id);
    out.extend_from_slice(message.as_bytes());
    frame::end(out);
}

/// Writes a `PANIC` answer: request `id` panicked after running `nanos`.
pub(crate) fn panicked(out: &mut Vec<u8>, id: u64, nanos: u64, report: &PanicReport) {
    frame::begin(out, PANIC, id);
    out.extend_from_slice(&nanos.to_le_bytes());
    encode_report(report, out);
    frame::end(out);
}

/// Writes a `SKIPPED` answer: request `id` was cancelled before it started.
pub(crate) fn skipped(out: &mut Vec<u8>, id: u64) {
    frame::begin(out, SKIPPED, id);
    frame::end(out);
}

/// Writes a `TOO_LARGE` answer: request `id`'s result encoded to `bytes`,
/// over the pool's maximum frame size, so it was not sent.
pub(crate) fn too_large(out: &mut Vec<u8>, id: u64, bytes: u64) {
    frame::begin(out, TOO_LARGE, id);
    out.extend_from_slice(&bytes.to_le_bytes());
    frame::end(out);
}

/// Appends a panic report (also used for one item of a chunk).
pub(crate) fn encode_report(report: &PanicReport, out: &mut Vec<u8>) {
    let mark = out.len();
    if codec::encode_into(report, out).is_err() {
        out.truncate(mark);
        let fallback = PanicReport {
            message: "a panic whose message could not be encoded".to_string(),
            ..PanicReport::default()
        };
        codec::encode_into(&fallback, out).expect("a plain string encodes");
    }
}

/// Reads a panic report written by [`encode_report`].
pub(crate) fn decode_report(bytes: &[u8]) -> Result<PanicReport, String> {
    codec::decode::<PanicReport>(bytes).map_err(|err| format!("unreadable panic report: {err}"))
}

/// An answer, parsed without copying its result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Response<'a> {
    /// The result is `body[RESULT_AT..]`.
    Ok {
        nanos: u64,
    },
    /// It panicked after running `nanos`.
    Panic {
        nanos: u64,
        report: PanicReport,
    },
    Failed(&'a str),
    Skipped,
    /// The result, this many bytes encoded, was over the frame limit.
    TooLarge {
        bytes: u64,
    },
}

impl<'a> Response<'a> {
    /// Whether frames of `kind` are answers.
    pub(crate) fn is_answer(kind: u8) -> bool {
        matches!(kind, OK | PANIC | FAILED | SKIPPED | TOO_LARGE)
    }

    /// Parses an answer; `Err` describes garbage.
    pub(crate) fn parse(parts: Parts<'a>) -> Result<Response<'a>, String> {
        let payload = parts.payload;
        Ok(match parts.kind {
            OK => {
                let nanos = payload
                    .first_chunk::<8>()
                    .ok_or("an OK answer too short for its run time")?;
                Response::Ok {
                    nanos: u64::from_le_bytes(*nanos),
                }
            }
            PANIC => {
                let (nanos, report) = payload
                    .split_first_chunk::<8>()
                    .ok_or("a PANIC answer too short for its run time")?;
                Response::Panic {
                    nanos: u64::from_le_bytes(*nanos),
                    report: decode_report(report)?,
                }
            }
            FAILED => std::str::from_utf8(payload)
                .map(Response::Failed)
                .map_err(|_| "a failure report that is not UTF-8".to_string())?,
            SKIPPED if payload.is_empty() => Response::Skipped,
            TOO_LARGE => {
                let bytes: &[u8; 8] = payload
                    .try_into()
                    .map_err(|_| "a TOO_LARGE answer without its size".to_string())?;
                Response::TooLarge {
                    bytes: u64::from_le_bytes(*bytes),
                }
            }
            kind => {
                return Err(format!(
                    "a frame of kind 0x{kind:02x} and {} payload bytes where an answer was due",
                    payload.len()
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(frame: &[u8]) -> Result<(u64, Response<'_>), String> {
        let parts = Parts::of(&frame[HEADER_LEN..])?;
        Response::parse(parts).map(|response| (parts.id, response))
    }

    #[test]
    fn each_answer_reads_back_as_written() {
        let mut out = Vec::new();
        begin_ok(&mut out, 9);
        out.push(42);
        end_ok(&mut out, 1234);
        assert_eq!(parse(&out), Ok((9, Response::Ok { nanos: 1234 })));
        assert_eq!(out[HEADER_LEN + RESULT_AT], 42);
        let report = PanicReport {
            message: "boom".to_string(),
            location: Some("src/x.rs:1:1".to_string()),
            backtrace: Some("   0: my_app::boom\n".to_string()),
        };
        panicked(&mut out, 3, 77, &report);
        let nanos = 77;
        assert_eq!(parse(&out), Ok((3, Response::Panic { nanos, report })));
        failed(&mut out, 4, "bad arguments");
        assert_eq!(parse(&out), Ok((4, Response::Failed("bad arguments"))));
        skipped(&mut out, 5);
        assert_eq!(parse(&out), Ok((5, Response::Skipped)));
        too_large(&mut out, 6, 1 << 31);
        assert_eq!(parse(&out), Ok((6, Response::TooLarge { bytes: 1 << 31 })));
    }

    #[test]
    fn garbage_answers_are_described_not_trusted() {
        let answer = |kind: u8, rest: &[u8]| {
            let mut out = Vec::new();
            frame::begin(&mut out, kind, 7);
            out.extend_from_slice(rest);
            frame::end(&mut out);
            out
        };
        assert!(parse(&answer(0x77, &[1, 2])).is_err());
        assert!(parse(&answer(OK, &[1])).is_err(), "truncated OK");
        assert!(
            parse(&answer(PANIC, &[0xFF, 0xFF])).is_err(),
            "truncated PANIC"
        );
        assert!(
            parse(&answer(
                PANIC,
                &[0; 8]
                    .iter()
                    .chain(&[0xFF, 0xFF])
                    .copied()
                    .collect::<Vec<_>>()
            ))
            .is_err()
        );
        assert!(parse(&answer(FAILED, &[0xFF])).is_err());
        assert!(parse(&answer(SKIPPED, &[1])).is_err());
    }
}
