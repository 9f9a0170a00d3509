//! What a manager call carries, both halves in one place: the request a
//! handle makes (in this process, or in a worker as the payload of a
//! `CALL` frame to [`Service::Manager`](crate::wire::call::Service)), and
//! the reply the host gives.
//!
//! | part | bytes |
//! |---|---|
//! | request | object id `u64`, object kind `u8`, [`Op`] `u8`, timeout in ns `u64` (0: none), number `u64` (an index, a task index, a lock token, a numeric kind), field count `u8`, then each field: length `u64` and bytes (bincode keys and values) |
//! | reply | `0` and the answer (bincode, so the caller decodes it as one value), or `1`, a [`Failure`] code `u8` and UTF-8 text |
//!
//! Integers are little-endian. Keys and values stay encoded at the host:
//! it compares and stores bytes and never needs their types.

use std::time::Duration;

/// An operation, by code; which object kinds take which is the host's
/// business ([`State::apply`](super::state::State)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Len = 1,
    Items = 2,
    Clear = 3,
    Get = 4,
    Insert = 5,
    Remove = 6,
    Contains = 7,
    CompareAndSwap = 8,
    Update = 9,
    Push = 10,
    Pop = 11,
    Set = 12,
    Load = 13,
    Store = 14,
    FetchAdd = 15,
    Put = 16,
    Take = 17,
    Acquire = 18,
    Release = 19,
    ClearPoison = 20,
    Extend = 21,
}

impl Op {
    /// Whether a call of this op may wait in its object's line: for the
    /// lock, an item, room in a queue.
    pub(crate) fn may_wait(self) -> bool {
        matches!(self, Op::Acquire | Op::Put | Op::Take)
    }

    const ALL: [Op; 21] = [
        Op::Len,
        Op::Items,
        Op::Clear,
        Op::Get,
        Op::Insert,
        Op::Remove,
        Op::Contains,
        Op::CompareAndSwap,
        Op::Update,
        Op::Push,
        Op::Pop,
        Op::Set,
        Op::Load,
        Op::Store,
        Op::FetchAdd,
        Op::Put,
        Op::Take,
        Op::Acquire,
        Op::Release,
        Op::ClearPoison,
        Op::Extend,
    ];

    fn from_byte(byte: u8) -> Option<Op> {
        Op::ALL.into_iter().find(|op| *op as u8 == byte)
    }
}

/// Where in a request its timeout is, so that one set after the request
/// was encoded is written in place.
const TIMEOUT_AT: usize = 10;
const NUMBER_AT: usize = 18;
const FIELDS_AT: usize = 27;

/// A request, encoded.
pub(crate) fn request(object: u64, kind: u8, op: Op, number: u64, fields: &[&[u8]]) -> Vec<u8> {
    let len = FIELDS_AT + fields.iter().map(|field| 8 + field.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&object.to_le_bytes());
    out.push(kind);
    out.push(op as u8);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    out.push(u8::try_from(fields.len()).expect("a handful of fields"));
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_le_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Writes `timeout` into an encoded request (a zero duration is taken as
/// the shortest wait there is, not as none).
pub(crate) fn set_timeout(request: &mut [u8], timeout: Duration) {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1);
    request[TIMEOUT_AT..TIMEOUT_AT + 8].copy_from_slice(&nanos.to_le_bytes());
}

/// A request, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    pub(crate) object: u64,
    pub(crate) kind: u8,
    pub(crate) op: Op,
    pub(crate) timeout: Option<Duration>,
    pub(crate) number: u64,
    pub(crate) fields: Vec<&'a [u8]>,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

/// Reads a request; `Err` says what is wrong with it (a protocol error:
/// handles never send such a thing).
pub(crate) fn parse(bytes: &[u8]) -> Result<Request<'_>, String> {
    let short = || format!("a manager request cut short ({} bytes)", bytes.len());
    let object = u64_at(bytes, 0).ok_or_else(short)?;
    let kind = *bytes.get(8).ok_or_else(short)?;
    let op = *bytes.get(9).ok_or_else(short)?;
    let op = Op::from_byte(op).ok_or_else(|| format!("a manager request of unknown op {op}"))?;
    let timeout = match u64_at(bytes, TIMEOUT_AT).ok_or_else(short)? {
        0 => None,
        nanos => Some(Duration::from_nanos(nanos)),
    };
    let number = u64_at(bytes, NUMBER_AT).ok_or_else(short)?;
    let count = *bytes.get(FIELDS_AT - 1).ok_or_else(short)?;
    let fields = fields_at(bytes, FIELDS_AT, u64::from(count), "a manager request")?;
    Ok(Request {
        object,
        kind,
        op,
        timeout,
        number,
        fields,
    })
}

/// `count` length-prefixed fields from `at` to the end of `bytes` (all of
/// it: anything after them is an error), in the message `what` are.
fn fields_at<'a>(
    bytes: &'a [u8],
    at: usize,
    count: u64,
    what: &str,
) -> Result<Vec<&'a [u8]>, String> {
    // Each field takes at least its 8-byte length: a count claiming more
    // than the bytes could hold allocates nothing.
    if count > (bytes.len().saturating_sub(at) / 8) as u64 {
        return Err(format!("{what} of {count} fields in {} bytes", bytes.len()));
    }
    let mut fields = Vec::with_capacity(count as usize);
    let mut at = at;
    for _ in 0..count {
        let len = u64_at(bytes, at).ok_or_else(|| format!("{what} cut short"))?;
        at += 8;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("{what} field of {len} bytes, past its end"))?;
        fields.push(&bytes[at..end]);
        at = end;
    }
    if at != bytes.len() {
        return Err(format!("{} bytes after {what}", bytes.len() - at));
    }
    Ok(fields)
}

/// Many values as one field (a dict's `extend` sends its keys and values
/// so): their count, then each with its length, each written in place by
/// its encoder (no buffer per value, no second copy).
#[derive(Debug)]
pub(crate) struct Packed {
    out: Vec<u8>,
    count: u64,
}

impl Packed {
    pub(crate) fn new() -> Packed {
        Packed {
            out: 0u64.to_le_bytes().to_vec(),
            count: 0,
        }
    }

    /// Adds the value `write` appends to the buffer it is given.
    pub(crate) fn push<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.out.len();
        self.out.extend_from_slice(&0u64.to_le_bytes());
        write(&mut self.out)?;
        let len = (self.out.len() - at - 8) as u64;
        self.out[at..at + 8].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        Ok(())
    }

    /// The field.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out[..8].copy_from_slice(&self.count.to_le_bytes());
        self.out
    }
}

/// `values`, packed (see [`Packed`]).
#[cfg(test)]
pub(crate) fn pack(values: &[Vec<u8>]) -> Vec<u8> {
    let mut packed = Packed::new();
    for value in values {
        let appended: Result<(), ()> = packed.push(|out| {
            out.extend_from_slice(value);
            Ok(())
        });
        appended.expect("appending cannot fail");
    }
    packed.finish()
}

/// The values packed into `field` (see [`Packed`]).
pub(crate) fn unpack(field: &[u8]) -> Result<Vec<&[u8]>, String> {
    let count = u64_at(field, 0).ok_or("a packed field without its count")?;
    fields_at(field, 8, count, "a packed field")
}

/// Why a manager call failed, as the host says it (and as it travels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The manager was shut down (or dropped), or never held this object.
    Gone,
    /// The call waited (for a lock, an item, room) as long as it was given.
    TimedOut(Duration),
    /// The registered update function panicked; the value is unchanged.
    Panicked { task: String, message: String },
    /// A value did not decode (at the host, for an update function or a
    /// numeric op; or at the caller).
    Decode(String),
    /// The lock's holder died holding it.
    Poisoned(String),
    /// The call does not fit the object (an index past the end, an op of
    /// another kind of object: a handle forged or decoded as the wrong type).
    Misuse(String),
}

const GONE: u8 = 0;
const TIMED_OUT: u8 = 1;
const PANICKED: u8 = 2;
const DECODE: u8 = 3;
const POISONED: u8 = 4;
const MISUSE: u8 = 5;

/// What the host answers.
pub(crate) type Reply = Result<Vec<u8>, Failure>;

/// A reply, encoded.
pub(crate) fn reply(reply: &Reply) -> Vec<u8> {
    match reply {
        Ok(answer) => {
            let mut out = Vec::with_capacity(1 + answer.len());
            out.push(0);
            out.extend_from_slice(answer);
            out
        }
        Err(failure) => {
            let (code, text) = match failure {
                Failure::Gone => (GONE, String::new()),
                Failure::TimedOut(after) => (TIMED_OUT, after.as_nanos().to_string()),
                Failure::Panicked { task, message } => (PANICKED, format!("{task}\n{message}")),
                Failure::Decode(text) => (DECODE, text.clone()),
                Failure::Poisoned(text) => (POISONED, text.clone()),
                Failure::Misuse(text) => (MISUSE, text.clone()),
            };
            let mut out = vec![1, code];
            out.extend_from_slice(text.as_bytes());
            out
        }
    }
}

/// A reply, read; `Err` if it is garbage.
pub(crate) fn parse_reply(mut bytes: Vec<u8>) -> Result<Reply, String> {
    match bytes.first() {
        Some(0) => {
            bytes.remove(0);
            Ok(Ok(bytes))
        }
        Some(1) if bytes.len() >= 2 => {
            let text = String::from_utf8_lossy(&bytes[2..]).into_owned();
            Ok(Err(match bytes[1] {
                GONE => Failure::Gone,
                TIMED_OUT => Failure::TimedOut(Duration::from_nanos(text.parse().unwrap_or(0))),
                PANICKED => {
                    let (task, message) = text.split_once('\n').unwrap_or(("", &text));
                    Failure::Panicked {
                        task: task.into(),
                        message: message.into(),
                    }
                }
                DECODE => Failure::Decode(text),
                POISONED => Failure::Poisoned(text),
                MISUSE => Failure::Misuse(text),
                code => return Err(format!("a manager reply with unknown failure {code}")),
            }))
        }
        _ => Err("a manager reply with no outcome".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back_as_written() {
        let mut bytes = request(7, 2, Op::Insert, 3, &[b"key", b"", b"value"]);
        assert_eq!(parse(&bytes).unwrap().timeout, None);
        set_timeout(&mut bytes, Duration::from_millis(5));
        let read = parse(&bytes).unwrap();
        assert_eq!(
            read,
            Request {
                object: 7,
                kind: 2,
                op: Op::Insert,
                timeout: Some(Duration::from_millis(5)),
                number: 3,
                fields: vec![b"key", b"", b"value"],
            }
        );
    }

    #[test]
    fn a_garbage_request_is_an_error_not_a_panic() {
        let good = request(1, 1, Op::Get, 0, &[b"k"]);
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(parse(&long).is_err());
        let mut unknown = good.clone();
        unknown[9] = 0xEE;
        assert!(parse(&unknown).is_err());
        let mut huge = good;
        huge[FIELDS_AT..FIELDS_AT + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn packed_values_read_back_and_garbage_is_an_error() {
        let values = vec![b"ab".to_vec(), Vec::new(), vec![7; 300]];
        let packed = pack(&values);
        assert_eq!(unpack(&packed).unwrap(), values);
        assert_eq!(unpack(&pack(&[])).unwrap(), Vec::<&[u8]>::new());
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = packed.clone();
        long.push(0);
        assert!(unpack(&long).is_err());
        // A count or a length no bytes could back: an error, no allocation.
        let mut many = packed.clone();
        many[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(unpack(&many).unwrap_err().contains("fields in"));
        let mut huge = packed;
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(unpack(&huge).unwrap_err().contains("past its end"));
    }

    #[test]
    fn replies_read_back_as_written() {
        let cases = [
            Ok(b"abc".to_vec()),
            Err(Failure::Gone),
            Err(Failure::TimedOut(Duration::from_millis(3))),
            Err(Failure::Panicked {
                task: "add_one".into(),
                message: "boom\nagain".into(),
            }),
            Err(Failure::Decode("bad".into())),
            Err(Failure::Poisoned("dead".into())),
            Err(Failure::Misuse("wrong".into())),
        ];
        for case in cases {
            assert_eq!(parse_reply(reply(&case)).unwrap(), case);
        }
        assert!(parse_reply(Vec::new()).is_err());
        assert!(parse_reply(vec![1, 99]).is_err());
    }
}
