//! What one shared object holds at the host, and every operation on it,
//! applied whole under the object's lock: either it answers at once, or
//! the caller waits (for the lock, an item, room) in the object's line
//! until a later operation grants it or its time runs out.
//!
//! Keys and values stay encoded (bincode): the host compares and stores
//! bytes, and builds answers the caller decodes as one value (an
//! `Option<V>` is `0`, or `1` and `V`; a `Vec` is its varint length, then
//! its items), so it never needs their types. Registered update
//! functions decode and encode for themselves (see
//! [`registry`](crate::registry)).

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::wire::{self, Failure, Op, Reply, Request};
use crate::codec;
use crate::registry::{self, Arrived};

/// The kinds of object, as handles name them in requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Dict = 1,
    List = 2,
    Value = 3,
    Queue = 4,
    Lock = 5,
}

impl Kind {
    pub(crate) fn from_byte(byte: u8) -> Option<Kind> {
        [Kind::Dict, Kind::List, Kind::Value, Kind::Queue, Kind::Lock]
            .into_iter()
            .find(|kind| *kind as u8 == byte)
    }
}

/// A caller waiting in an object's line, and how to answer it.
pub(crate) struct Parked<To> {
    pub(crate) id: u64,
    /// Its connection (0: this process), which a granted lock is held by.
    pub(crate) peer: u64,
    pub(crate) to: To,
}

/// Somewhere to send an answer to a waiting caller.
pub(crate) trait Answer {
    /// Sends it; gives it back if the caller is gone.
    fn answer(self, reply: Reply) -> Result<(), Reply>;
    /// Whether the caller is gone already.
    fn is_gone(&self) -> bool;
}

/// What a call waits for.
pub(crate) enum Waiting {
    Take,
    Put(Vec<u8>),
    Acquire,
}

/// What applying a call did.
pub(crate) enum Outcome {
    Reply(Reply),
    Wait(Waiting),
}

/// Who holds a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) peer: u64,
    pub(crate) token: u64,
}

pub(crate) struct QueueState<To> {
    items: VecDeque<Vec<u8>>,
    capacity: usize,
    takers: VecDeque<Parked<To>>,
    putters: VecDeque<(Parked<To>, Vec<u8>)>,
}

pub(crate) struct LockState<To> {
    holder: Option<Holder>,
    next_token: u64,
    /// Why it is poisoned: its holder died holding it.
    poisoned: Option<String>,
    waiters: VecDeque<Parked<To>>,
}

/// One object's contents.
pub(crate) enum State<To> {
    Dict(HashMap<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Value(Vec<u8>),
    Queue(QueueState<To>),
    Lock(LockState<To>),
}

const NONE: [u8; 1] = [0];

fn some(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + value.len());
    out.push(1);
    out.extend_from_slice(value);
    out
}

fn option(value: Option<&Vec<u8>>) -> Vec<u8> {
    value.map_or_else(|| NONE.to_vec(), |value| some(value))
}

fn encoded<T: serde::Serialize>(value: &T) -> Reply {
    let mut out = Vec::new();
    codec::encode_into(value, &mut out).map_err(|err| Failure::Decode(err.to_string()))?;
    Ok(out)
}

/// A `Vec` of `items` as bincode writes one: the length, then each item.
fn sequence<'a>(len: usize, items: impl Iterator<Item = &'a [u8]>) -> Reply {
    let mut out = encoded(&(len as u64))?;
    for item in items {
        out.extend_from_slice(item);
    }
    Ok(out)
}

/// An `Option<V>` as encoded: `Some(None)` for `0`, `Some(Some(v))` for `1`
/// and `v`, `None` if it is neither.
fn parse_option(bytes: &[u8]) -> Option<Option<&[u8]>> {
    match bytes.split_first() {
        Some((0, [])) => Some(None),
        Some((1, value)) => Some(Some(value)),
        _ => None,
    }
}

fn field<'a>(request: &Request<'a>, at: usize) -> Result<&'a [u8], Failure> {
    request
        .fields
        .get(at)
        .copied()
        .ok_or_else(|| Failure::Misuse(format!("{:?} without its field {at}", request.op)))
}

/// The values packed into the request's first field (checked whole before
/// any is applied).
fn unpacked<'a>(request: &Request<'a>) -> Result<Vec<&'a [u8]>, Failure> {
    wire::unpack(field(request, 0)?).map_err(Failure::Misuse)
}

/// Runs registered function `task` on `args` (a whole encoded argument),
/// catching a panic: the state is then left as it was.
fn run_update(task: u64, args: &[u8]) -> Reply {
    let registry = registry::global().map_err(|err| Failure::Misuse(err.to_string()))?;
    let index = u32::try_from(task).map_err(|_| Failure::Misuse(format!("task index {task}")))?;
    let mut out = Vec::new();
    // Inline, as a `map` item: the host keeps values whole in its bytes.
    let run = || registry.invoke(index, args, Arrived::Item, &mut out);
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(_)) => Ok(out),
        Ok(Err(message)) => Err(Failure::Decode(message)),
        Err(panic) => Err(Failure::Panicked {
            task: registry.name_of(index).unwrap_or("?").to_string(),
            message: crate::worker::panic::panic_text(panic.as_ref()),
        }),
    }
}

/// `current + delta` for the numeric type numbered `kind` (see
/// [`Number`](super::value::Number)), wrapping for integers.
fn add(kind: u64, current: &[u8], delta: &[u8]) -> Reply {
    fn as_type<T>(current: &[u8], delta: &[u8], add: fn(T, T) -> T) -> Reply
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let decode =
            |bytes| codec::decode::<T>(bytes).map_err(|err| Failure::Decode(err.to_string()));
        encoded(&add(decode(current)?, decode(delta)?))
    }
    match kind {
        0 => as_type::<u8>(current, delta, u8::wrapping_add),
        1 => as_type::<u16>(current, delta, u16::wrapping_add),
        2 => as_type::<u32>(current, delta, u32::wrapping_add),
        3 => as_type::<u64>(current, delta, u64::wrapping_add),
        4 => as_type::<i8>(current, delta, i8::wrapping_add),
        5 => as_type::<i16>(current, delta, i16::wrapping_add),
        6 => as_type::<i32>(current, delta, i32::wrapping_add),
        7 => as_type::<i64>(current, delta, i64::wrapping_add),
        8 => as_type::<usize>(current, delta, usize::wrapping_add),
        9 => as_type::<isize>(current, delta, isize::wrapping_add),
        10 => as_type::<f32>(current, delta, |a, b| a + b),
        11 => as_type::<f64>(current, delta, |a, b| a + b),
        _ => Err(Failure::Misuse(format!("numeric kind {kind}"))),
    }
}

fn misuse<T>(kind: &str, op: Op) -> Result<T, Failure> {
    Err(Failure::Misuse(format!("a {kind} does not take {op:?}")))
}

impl<To: Answer> State<To> {
    pub(crate) fn queue(capacity: usize) -> State<To> {
        State::Queue(QueueState {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            takers: VecDeque::new(),
            putters: VecDeque::new(),
        })
    }

    pub(crate) fn lock() -> State<To> {
        State::Lock(LockState {
            holder: None,
            next_token: 1,
            poisoned: None,
            waiters: VecDeque::new(),
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            State::Dict(_) => Kind::Dict,
            State::List(_) => Kind::List,
            State::Value(_) => Kind::Value,
            State::Queue(_) => Kind::Queue,
            State::Lock(_) => Kind::Lock,
        }
    }

    /// Applies `request` from connection `peer`, whole or not at all.
    pub(crate) fn apply(&mut self, request: &Request<'_>, peer: u64) -> Outcome {
        let op = request.op;
        let reply = match self {
            State::Dict(map) => dict(map, request),
            State::List(items) => list(items, request),
            State::Value(value) => value_op(value, request),
            State::Queue(queue) => match op {
                Op::Len => encoded(&(queue.items.len() as u64)),
                Op::Put if queue.items.len() < queue.capacity && queue.putters.is_empty() => {
                    field(request, 0).map(|item| {
                        queue.items.push_back(item.to_vec());
                        Vec::new()
                    })
                }
                Op::Put => match field(request, 0) {
                    Ok(item) => return Outcome::Wait(Waiting::Put(item.to_vec())),
                    Err(failure) => Err(failure),
                },
                Op::Take => match queue.items.pop_front() {
                    Some(item) => Ok(item),
                    None => return Outcome::Wait(Waiting::Take),
                },
                _ => misuse("queue", op),
            },
            State::Lock(lock) => match op {
                Op::Acquire => match &lock.poisoned {
                    Some(why) => Err(Failure::Poisoned(why.clone())),
                    None if lock.holder.is_none() && lock.waiters.is_empty() => {
                        encoded(&lock.take(peer))
                    }
                    None => return Outcome::Wait(Waiting::Acquire),
                },
                Op::Release if lock.holder.is_some_and(|h| h.token == request.number) => {
                    lock.holder = None;
                    Ok(Vec::new())
                }
                Op::Release => Err(Failure::Misuse(
                    "a release of a lock this guard does not hold".into(),
                )),
                Op::ClearPoison => {
                    lock.poisoned = None;
                    Ok(Vec::new())
                }
                _ => misuse("lock", op),
            },
        };
        Outcome::Reply(reply)
    }

    /// Puts a waiting caller in line (dropping those already gone).
    pub(crate) fn park(&mut self, waiting: Waiting, parked: Parked<To>) {
        match (self, waiting) {
            (State::Queue(queue), Waiting::Take) => {
                queue.takers.retain(|p| !p.to.is_gone());
                queue.takers.push_back(parked);
            }
            (State::Queue(queue), Waiting::Put(item)) => {
                queue.putters.retain(|(p, _)| !p.to.is_gone());
                queue.putters.push_back((parked, item));
            }
            (State::Lock(lock), Waiting::Acquire) => {
                lock.waiters.retain(|p| !p.to.is_gone());
                lock.waiters.push_back(parked);
            }
            // `apply` waits only on a queue or a lock, for their own ops.
            _ => unreachable!("a wait on an object that has no line"),
        }
    }

    /// Serves whoever waits and now can go (after any change).
    pub(crate) fn grant(&mut self) {
        match self {
            State::Queue(queue) => queue.grant(),
            State::Lock(lock) => lock.grant(),
            State::Dict(_) | State::List(_) | State::Value(_) => {}
        }
    }

    /// Takes waiting caller `id` out of line, if it is still there.
    pub(crate) fn unpark(&mut self, id: u64) -> Option<Parked<To>> {
        fn take<T>(line: &mut VecDeque<T>, is: impl Fn(&T) -> bool) -> Option<T> {
            let at = line.iter().position(is)?;
            line.remove(at)
        }
        match self {
            State::Queue(queue) => take(&mut queue.takers, |p| p.id == id)
                .or_else(|| take(&mut queue.putters, |(p, _)| p.id == id).map(|(p, _)| p)),
            State::Lock(lock) => take(&mut lock.waiters, |p| p.id == id),
            State::Dict(_) | State::List(_) | State::Value(_) => None,
        }
    }

    /// Forgets connection `peer`: its waiting callers leave the line, and a
    /// lock it holds is released as poisoned (`why`).
    pub(crate) fn peer_gone(&mut self, peer: u64, why: &str) {
        match self {
            State::Queue(queue) => {
                queue.takers.retain(|p| p.peer != peer);
                queue.putters.retain(|(p, _)| p.peer != peer);
            }
            State::Lock(lock) => {
                lock.waiters.retain(|p| p.peer != peer);
                if lock.holder.is_some_and(|holder| holder.peer == peer) {
                    lock.holder = None;
                    lock.poisoned = Some(why.to_string());
                }
            }
            State::Dict(_) | State::List(_) | State::Value(_) => {}
        }
        self.grant();
    }

    /// Answers every waiting caller with `failure` (the manager is gone).
    pub(crate) fn fail_all(&mut self, failure: &Failure) {
        let lines: Vec<Parked<To>> = match self {
            State::Queue(queue) => queue
                .takers
                .drain(..)
                .chain(queue.putters.drain(..).map(|(p, _)| p))
                .collect(),
            State::Lock(lock) => lock.waiters.drain(..).collect(),
            State::Dict(_) | State::List(_) | State::Value(_) => Vec::new(),
        };
        for parked in lines {
            let _ = parked.to.answer(Err(failure.clone()));
        }
    }

    /// Undoes a grant whose caller left before it saw it: an item goes
    /// back to the front of the queue; a lock is released.
    pub(crate) fn give_back(&mut self, op: Op, reply: Vec<u8>) {
        match (self, op) {
            (State::Queue(queue), Op::Take) => queue.items.push_front(reply),
            (State::Lock(lock), Op::Acquire) => {
                if let Ok(token) = codec::decode::<u64>(&reply)
                    && lock.holder.is_some_and(|h| h.token == token)
                {
                    lock.holder = None;
                }
            }
            _ => {}
        }
    }
}

impl<To: Answer> QueueState<To> {
    fn grant(&mut self) {
        loop {
            let mut moved = false;
            while !self.items.is_empty()
                && let Some(taker) = self.takers.pop_front()
            {
                let item = self.items.pop_front().expect("not empty");
                if let Err(Ok(item)) = taker.to.answer(Ok(item)) {
                    self.items.push_front(item);
                }
                moved = true;
            }
            while self.items.len() < self.capacity
                && let Some((putter, item)) = self.putters.pop_front()
            {
                if putter.to.is_gone() {
                    continue;
                }
                self.items.push_back(item);
                if putter.to.answer(Ok(Vec::new())).is_err() {
                    self.items.pop_back();
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

impl<To: Answer> LockState<To> {
    fn take(&mut self, peer: u64) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.holder = Some(Holder { peer, token });
        token
    }

    fn grant(&mut self) {
        if let Some(why) = &self.poisoned {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.to.answer(Err(Failure::Poisoned(why.clone())));
            }
            return;
        }
        while self.holder.is_none()
            && let Some(waiter) = self.waiters.pop_front()
        {
            let token = self.take(waiter.peer);
            let granted = encoded(&token);
            if waiter.to.answer(granted).is_err() {
                self.holder = None;
            }
        }
    }
}

fn dict(map: &mut HashMap<Vec<u8>, Vec<u8>>, request: &Request<'_>) -> Reply {
    let key = || field(request, 0);
    match request.op {
        Op::Len => encoded(&(map.len() as u64)),
        Op::Get => Ok(option(map.get(key()?))),
        Op::Contains => encoded(&map.contains_key(key()?)),
        Op::Insert => Ok(option(
            map.insert(key()?.to_vec(), field(request, 1)?.to_vec())
                .as_ref(),
        )),
        Op::Remove => Ok(option(map.remove(key()?).as_ref())),
        Op::Extend => {
            let pairs = unpacked(request)?;
            if pairs.len() % 2 != 0 {
                return Err(Failure::Misuse(format!(
                    "a dict's extend of {} keys and values, not pairs",
                    pairs.len()
                )));
            }
            map.reserve(pairs.len() / 2);
            for pair in pairs.chunks_exact(2) {
                map.insert(pair[0].to_vec(), pair[1].to_vec());
            }
            Ok(Vec::new())
        }
        Op::Clear => {
            map.clear();
            Ok(Vec::new())
        }
        Op::Items => {
            let mut out = encoded(&(map.len() as u64))?;
            for (key, value) in map.iter() {
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
            Ok(out)
        }
        Op::CompareAndSwap => {
            let key = key()?;
            let (Some(expected), Some(new)) = (
                parse_option(field(request, 1)?),
                parse_option(field(request, 2)?),
            ) else {
                return Err(Failure::Misuse("a compare-and-swap of garbage".into()));
            };
            let current = map.get(key);
            if current.map(Vec::as_slice) != expected {
                // `Err(current)`: a `Result<(), Option<V>>`.
                let mut out = vec![1];
                out.extend_from_slice(&option(current));
                return Ok(out);
            }
            match new {
                Some(new) => map.insert(key.to_vec(), new.to_vec()),
                None => map.remove(key),
            };
            Ok(vec![0])
        }
        Op::Update => {
            let key = key()?;
            let new = run_update(request.number, &option(map.get(key)))?;
            map.insert(key.to_vec(), new.clone());
            Ok(new)
        }
        op => misuse("dict", op),
    }
}

fn index(at: u64, len: usize) -> Result<usize, Failure> {
    usize::try_from(at)
        .ok()
        .filter(|at| *at < len)
        .ok_or_else(|| Failure::Misuse(format!("index {at} is out of range for a list of {len}")))
}

fn list(items: &mut Vec<Vec<u8>>, request: &Request<'_>) -> Reply {
    match request.op {
        Op::Len => encoded(&(items.len() as u64)),
        Op::Push => {
            items.push(field(request, 0)?.to_vec());
            Ok(Vec::new())
        }
        Op::Extend => {
            items.extend(unpacked(request)?.into_iter().map(<[u8]>::to_vec));
            Ok(Vec::new())
        }
        Op::Pop => Ok(option(items.pop().as_ref())),
        Op::Get => Ok(option(
            usize::try_from(request.number)
                .ok()
                .and_then(|at| items.get(at)),
        )),
        Op::Set => {
            let at = index(request.number, items.len())?;
            Ok(std::mem::replace(
                &mut items[at],
                field(request, 0)?.to_vec(),
            ))
        }
        Op::Items => sequence(items.len(), items.iter().map(Vec::as_slice)),
        Op::Clear => {
            items.clear();
            Ok(Vec::new())
        }
        Op::Update => {
            let at = codec::decode::<u64>(field(request, 0)?)
                .map_err(|err| Failure::Misuse(err.to_string()))?;
            let at = index(at, items.len())?;
            let new = run_update(request.number, &items[at])?;
            items[at] = new.clone();
            Ok(new)
        }
        op => misuse("list", op),
    }
}

fn value_op(value: &mut Vec<u8>, request: &Request<'_>) -> Reply {
    match request.op {
        Op::Load => Ok(value.clone()),
        Op::Store => Ok(std::mem::replace(value, field(request, 0)?.to_vec())),
        Op::CompareAndSwap => {
            if value.as_slice() != field(request, 0)? {
                // `Err(current)`: a `Result<(), T>`.
                let mut out = vec![1];
                out.extend_from_slice(value);
                return Ok(out);
            }
            *value = field(request, 1)?.to_vec();
            Ok(vec![0])
        }
        Op::Update => {
            let new = run_update(request.number, value)?;
            *value = new.clone();
            Ok(new)
        }
        Op::FetchAdd => {
            let new = add(request.number, value, field(request, 0)?)?;
            Ok(std::mem::replace(value, new))
        }
        op => misuse("value", op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::wire;

    fn extend_request(values: &[Vec<u8>]) -> Vec<u8> {
        wire::request(1, Kind::Dict as u8, Op::Extend, 0, &[&wire::pack(values)])
    }

    #[test]
    fn a_dict_extend_of_unpaired_values_applies_nothing() {
        let mut map = HashMap::new();
        let odd = extend_request(&[b"k1".to_vec(), b"v1".to_vec(), b"k2".to_vec()]);
        let refused = dict(&mut map, &wire::parse(&odd).unwrap());
        assert!(matches!(refused, Err(Failure::Misuse(_))), "{refused:?}");
        assert!(map.is_empty());
        let pairs = extend_request(&[b"k".to_vec(), b"1".to_vec(), b"k".to_vec(), b"2".to_vec()]);
        dict(&mut map, &wire::parse(&pairs).unwrap()).unwrap();
        assert_eq!(map.get(b"k".as_slice()), Some(&b"2".to_vec()));
    }
}
