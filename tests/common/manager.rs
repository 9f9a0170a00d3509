//! Tasks that use manager objects (tests/manager.rs).

use std::time::Duration;

use procpool::manager::{Dict, List, Lock, Queue, Value};

/// The read-modify-write of the word count: run at the host.
pub fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

/// An update function that panics on 13 (and leaves the value as it was).
pub fn add_one_unless_13(n: u64) -> u64 {
    assert_ne!(n, 13, "13 is unlucky");
    n + 1
}

/// The seeds' `update_string`: appends a word to a shared list.
pub fn update_string(word: String, list: List<String>) {
    list.push(word).wait().unwrap();
}

/// `rounds` updates of `keys` keys and as many `fetch_add`s; the pid.
pub fn count_rounds(rounds: u64, keys: u64, counts: Dict<u64, u64>, total: Value<u64>) -> u32 {
    for i in 0..rounds {
        counts.update(i % keys, add_one).wait().unwrap();
        total.fetch_add(1).wait().unwrap();
    }
    std::process::id()
}

/// Tells its pid, then writes whole records for ever (until killed): each
/// list item is `[i; 1000]`, each dict value `i`, in lock steps.
pub fn burst_until_killed(me: Value<u32>, list: List<Vec<u64>>, dict: Dict<u64, u64>, lock: Lock) {
    me.store(std::process::id()).wait().unwrap();
    for i in 0.. {
        let _held = lock.acquire().wait().unwrap();
        list.push(vec![i; 1000]).wait().unwrap();
        dict.insert(i, i).wait().unwrap();
    }
}

/// What a call from a task says once the manager is gone.
pub fn get_after_shutdown(dict: Dict<u64, u64>) -> String {
    match dict.get(&1).wait() {
        Ok(value) => format!("answered {value:?}"),
        Err(err) if err.is_shutdown() => format!("shutdown: {err}"),
        Err(err) => format!("other: {err}"),
    }
}

/// Updates with a panicking function: the error's panic message.
pub fn update_unlucky(value: Value<u64>) -> Option<String> {
    let err = value.update(add_one_unless_13).wait().unwrap_err();
    assert!(err.is_panic(), "{err}");
    err.panic_message().map(String::from)
}

#[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq, Debug)]
pub struct Big(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// Stores `bytes` bytes of `fill` at key 1, reads key 0 back; its length.
pub fn big_round_trip(bytes: u64, fill: u8, dict: Dict<u8, Big>) -> u64 {
    dict.insert(1, Big(vec![fill; bytes as usize]))
        .wait()
        .unwrap();
    let got = dict.get(&0).wait().unwrap().expect("the parent's value");
    assert!(got.0.iter().all(|b| *b == 7));
    got.0.len() as u64
}

/// Sends `bytes` as a manager call, as it is.
pub fn raw_manager_call(bytes: Vec<u8>) -> String {
    match procpool::__private::raw_call_through_pool(&bytes) {
        Ok(reply) => format!("replied {reply:?}"),
        Err(err) => format!("failed {err}"),
    }
}

/// Takes the lock, then dies holding it.
pub fn acquire_then_abort(lock: Lock) -> u64 {
    let held = lock.acquire().wait().unwrap();
    std::mem::forget(held);
    std::process::abort()
}

/// Tries the lock: "held", or the error's kind.
pub fn try_lock(lock: Lock, ms: u64) -> String {
    match lock.acquire().timeout(Duration::from_millis(ms)).wait() {
        Ok(_held) => "held".into(),
        Err(err) if err.is_poisoned() => "poisoned".into(),
        Err(err) if err.is_timeout() => "timeout".into(),
        Err(err) => format!("other: {err}"),
    }
}

/// Takes from the queue within `ms`: the item, or `None` on a timeout.
pub fn take_within(queue: Queue<u64>, ms: u64) -> Option<u64> {
    match queue.get().timeout(Duration::from_millis(ms)).wait() {
        Ok(item) => Some(item),
        Err(err) if err.is_timeout() => None,
        Err(err) => panic!("{err}"),
    }
}

/// Puts `n` items, waiting for room.
pub fn put_n(queue: Queue<u64>, n: u64) {
    for i in 0..n {
        queue.put(i).wait().unwrap();
    }
}

/// `threads` threads each inserting `calls` keys (from `first` on) at
/// once, waiting for each answer or (`ahead`) sending all and waiting
/// after: the dict's length.
pub fn flood(first: u64, threads: u64, calls: u64, ahead: bool, dict: Dict<u64, u64>) -> u64 {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let dict = dict.clone();
            std::thread::spawn(move || {
                let keys = first + t * calls..first + (t + 1) * calls;
                if ahead {
                    let sent: Vec<_> = keys.map(|k| dict.insert(k, k).send()).collect();
                    for insert in sent {
                        insert.wait().unwrap();
                    }
                } else {
                    for k in keys {
                        dict.insert(k, k).wait().unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    dict.len().wait().unwrap()
}

/// Sleeps, then reads key 1 (see `get_after_shutdown`).
pub fn sleep_then_get(dict: Dict<u64, u64>, ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    get_after_shutdown(dict)
}

/// `n` increments sent ahead, then their answers: the values before each.
pub fn fetch_adds_ahead(value: Value<u64>, n: u64) -> Vec<u64> {
    let sent: Vec<_> = (0..n).map(|_| value.fetch_add(1).send()).collect();
    sent.into_iter().map(|add| add.wait().unwrap()).collect()
}

/// `n` inserts sent ahead and dropped unwaited, then the dict's length.
pub fn inserts_dropped_unwaited(dict: Dict<u64, u64>, n: u64) -> u64 {
    for k in 0..n {
        drop(dict.insert(k, k).send());
    }
    dict.len().wait().unwrap()
}

/// An `acquire` sent ahead and dropped, then a try of the same lock.
pub fn acquire_sent_then_dropped(lock: Lock) -> String {
    drop(lock.acquire().send());
    try_lock(lock, 1_000)
}

/// Tells its pid, then sends inserts of 0, 1, 2, ... ahead for ever
/// (until killed), never waiting.
pub fn send_ahead_until_killed(me: Value<u32>, dict: Dict<u64, u64>) {
    me.store(std::process::id()).wait().unwrap();
    for k in 0.. {
        drop(dict.insert(k, k).send());
    }
}

/// `threads` threads each waiting (up to 60 s) for an item of `queue`;
/// `refused` is set once one of them is refused for too many waiting
/// calls. The items got, and the refusals' messages.
pub fn wait_from_threads(
    queue: Queue<u64>,
    threads: u64,
    refused: Value<u64>,
) -> (u64, Vec<String>) {
    let waiters: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, refused) = (queue.clone(), refused.clone());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(
                    move || match queue.get().timeout(Duration::from_secs(60)).wait() {
                        Ok(_) => None,
                        Err(err) => {
                            refused.fetch_add(1).wait().unwrap();
                            Some(err.to_string())
                        }
                    },
                )
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
    let got = outcomes.iter().filter(|o| o.is_none()).count() as u64;
    (got, outcomes.into_iter().flatten().collect())
}

/// Extends `dict` with `(k, k)` and `list` with `k` for `k` in `0..n`, one
/// call each.
pub fn extend_both(dict: Dict<u64, u64>, list: List<u64>, n: u64) {
    dict.extend((0..n).map(|k| (k, k))).wait().unwrap();
    list.extend(0..n).wait().unwrap();
}

/// `n` increments sent ahead and dropped unwaited: the task returns while
/// their replies are still on their way.
pub fn fetch_adds_sent_then_return(value: Value<u64>, n: u64) {
    for _ in 0..n {
        drop(value.fetch_add(1).send());
    }
}

/// Starts a thread that outlives the task: it sends `n` inserts ahead,
/// waits for each, then sets `done` to 1.
pub fn spawn_sender_and_return(dict: Dict<u64, u64>, n: u64, done: Value<u64>) {
    std::thread::spawn(move || {
        let sent: Vec<_> = (0..n).map(|k| dict.insert(k, k).send()).collect();
        for insert in sent {
            insert.wait().unwrap();
        }
        done.store(1).wait().unwrap();
    });
}

/// Tells its pid, sends `n` inserts ahead, then waits for the dict's
/// length (after them all).
pub fn send_ahead_then_len(me: Value<u32>, dict: Dict<u64, u64>, n: u64) -> u64 {
    me.store(std::process::id()).wait().unwrap();
    for k in 0..n {
        drop(dict.insert(k, k).send());
    }
    dict.len().wait().unwrap()
}

/// What a task's `items()` of `dict` says: how many, or the error.
pub fn items_of_big(dict: Dict<u8, Big>) -> Result<usize, String> {
    dict.items()
        .wait()
        .map(|items| items.len())
        .map_err(|err| err.to_string())
}

/// What a task's `get` of `key`, sent ahead, says: its length, or the error.
pub fn get_big_sent_ahead(dict: Dict<u8, Big>, key: u8) -> Result<usize, String> {
    let sent = dict.get(&key).send();
    match sent.wait() {
        Ok(value) => Ok(value.map_or(0, |big| big.0.len())),
        Err(err) => Err(err.to_string()),
    }
}

/// What a task's `get` of `queue` (waiting up to 20 s) says: the item's
/// length, or the error.
pub fn get_big_item(queue: Queue<Big>) -> Result<usize, String> {
    let got = queue.get().timeout(Duration::from_secs(20)).wait();
    got.map(|big| big.0.len()).map_err(|err| err.to_string())
}

/// A value that cannot be encoded when it is 13.
#[derive(serde::Deserialize, Clone, PartialEq, Debug)]
pub struct Unlucky(pub u64);

impl serde::Serialize for Unlucky {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("13 cannot be encoded"));
        }
        self.0.serialize(serializer)
    }
}

/// Extends of nothing, of a value that fails to encode half-way, and of
/// more than a frame holds, waited for and sent ahead: what each said, and
/// the lengths after them.
pub fn extend_edges(dict: Dict<u64, Unlucky>, list: List<Unlucky>) -> (Vec<String>, u64, u64) {
    let said = |done: Result<(), procpool::Error>| match done {
        Ok(()) => "ok".to_string(),
        Err(err) => err.to_string(),
    };
    let pairs = |n: u64| (0..n).map(|k| (k, Unlucky(k)));
    let items = |n: u64| (0..n).map(Unlucky);
    let outcomes = vec![
        said(dict.extend(pairs(0)).wait()),
        said(list.extend(items(0)).send().wait()),
        said(dict.extend(pairs(100)).wait()),
        said(list.extend(items(100)).send().wait()),
        said(
            dict.extend(pairs(1_000_000).map(|(k, v)| (k + 100, Unlucky(v.0 + 100))))
                .wait(),
        ),
        said(list.extend(items(1_000_000).skip(14)).send().wait()),
    ];
    (
        outcomes,
        dict.len().wait().unwrap(),
        list.len().wait().unwrap(),
    )
}

/// A `put` sent and dropped, then one sent and waited for: the queue's
/// length between them.
pub fn puts_sent_ahead(queue: Queue<u64>) -> u64 {
    drop(queue.put(1).send());
    let dropped = queue.len().wait().unwrap();
    queue.put(2).send().wait().unwrap();
    dropped
}
