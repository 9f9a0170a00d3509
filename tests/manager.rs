//! Manager objects shared by the pool's process and its tasks: exact under
//! concurrent updates, consistent when a worker is SIGKILLed mid-burst,
//! typed errors after shutdown, on a panicking update, on a dead lock
//! holder and on garbage; large values; remote workers.

mod common;

use std::time::Duration;

use common::*;
use procpool::manager::Dict;
use procpool::{Launcher, Manager, Pool};

fn main() {
    run(
        tests![
            concurrent_updates_from_four_workers_are_exact,
            the_seeds_list_holds_every_word,
            a_worker_killed_mid_burst_leaves_every_object_consistent,
            calls_after_shutdown_are_typed_errors,
            a_panicking_update_leaves_the_value_unchanged,
            values_of_16_mib_pass_both_ways,
            a_malformed_call_is_a_protocol_error,
            a_dead_holder_poisons_the_lock,
            waits_time_out_and_queues_are_bounded,
            a_flood_of_calls_completes,
            calls_sent_ahead_are_applied_in_order,
            calls_sent_ahead_and_dropped_are_applied,
            a_waiting_call_is_not_sent_ahead,
            a_worker_killed_while_sending_ahead_loses_only_a_tail,
            waiting_calls_of_one_worker_are_capped,
            an_extend_is_applied_whole,
            remote_workers_reach_the_manager,
            replies_in_flight_at_a_tasks_end_go_to_nobody_later,
            a_worker_stopped_and_continued_mid_stream_loses_nothing,
            a_reply_over_max_frame_size_is_a_typed_error,
            extends_of_nothing_of_garbage_and_of_too_much,
        ],
        |_| {},
    );
}

async fn concurrent_updates_from_four_workers_are_exact() {
    let pool = pool(4).await;
    let manager = Manager::new();
    let counts: Dict<u64, u64> = manager.dict();
    let total = manager.value(0u64);
    let tasks: Vec<_> = (0..8)
        .map(|_| pool.submit(count_rounds, (500, 10, counts.clone(), total.clone())))
        .collect();
    // The parent updates too, at the same time.
    for i in 0..500 {
        counts.update(i % 10, add_one).await.unwrap();
    }
    let mut pids = std::collections::HashSet::new();
    for task in tasks {
        pids.insert(
            within(Duration::from_secs(60), "a counting task", task)
                .await
                .unwrap(),
        );
    }
    assert!(pids.len() > 1, "the tasks ran on one worker only");
    assert_eq!(total.load().await.unwrap(), 8 * 500);
    let mut items = counts.items().await.unwrap();
    items.sort();
    assert_eq!(items, (0..10).map(|k| (k, 450)).collect::<Vec<_>>());
    pool.shutdown().await;
}

async fn the_seeds_list_holds_every_word() {
    use futures::TryStreamExt;
    let pool = pool(2).await;
    let manager = Manager::new();
    let list = manager.list::<String>();
    let sentence = "with great power comes great responsibility";
    let args: Vec<_> = sentence
        .split(' ')
        .map(|word| (word.to_string(), list.clone()))
        .collect();
    // `starmap` items cannot carry channel endpoints; manager handles can.
    let _: Vec<()> = pool
        .starmap(update_string, args)
        .try_collect()
        .await
        .unwrap();
    let mut words = list.items().await.unwrap();
    words.sort();
    let mut expected: Vec<_> = sentence.split(' ').map(String::from).collect();
    expected.sort();
    assert_eq!(words, expected);
    pool.shutdown().await;
}

async fn a_worker_killed_mid_burst_leaves_every_object_consistent() {
    let pool = pool(2).await;
    let manager = Manager::new();
    let (me, list, dict, lock) = (
        manager.value(0u32),
        manager.list::<Vec<u64>>(),
        manager.dict::<u64, u64>(),
        manager.lock(),
    );
    let task = pool.submit(
        burst_until_killed,
        (me.clone(), list.clone(), dict.clone(), lock.clone()),
    );
    // Once the burst is well under way, its worker is SIGKILLed.
    kill_when(|| list.len(), 200, &me, task).await;
    // Every item whole, every record consistent: item i is [i; 1000], the
    // dict holds 0..n or 0..n-1 (the kill may fall between the two calls).
    let items = list.items().await.unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item, &vec![i as u64; 1000], "item {i}");
    }
    let n = items.len() as u64;
    let keys = dict.len().await.unwrap();
    assert!(keys == n || keys + 1 == n, "{keys} keys for {n} items");
    for k in 0..keys {
        assert_eq!(dict.get(&k).await.unwrap(), Some(k));
    }
    // The lock was held (or waited for) by the dead task: poisoned or free.
    match lock.acquire().await {
        Ok(held) => drop(held),
        Err(err) => {
            assert!(err.is_poisoned(), "{err}");
            lock.clear_poison().await.unwrap();
            drop(lock.acquire().await.unwrap());
        }
    }
    // And the manager serves the next worker.
    assert_eq!(pool.submit(try_lock, (lock, 1_000)).await.unwrap(), "held");
    pool.shutdown().await;
}

/// Waits until `len()` reaches `at_least`, then SIGKILLs the worker whose
/// pid `me` holds, and checks that `task` failed with it.
async fn kill_when(
    len: impl Fn() -> procpool::manager::Call<u64>,
    at_least: u64,
    me: &procpool::manager::Value<u32>,
    task: procpool::TaskHandle<()>,
) {
    within(Duration::from_secs(20), "the calls", async {
        while len().await.unwrap() < at_least {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let pid = me.load().await.unwrap();
    // SAFETY: kill takes plain integers; the pid is a live worker of ours.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let err = within(Duration::from_secs(10), "the killed task", task)
        .await
        .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
}

async fn calls_after_shutdown_are_typed_errors() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let dict = manager.dict::<u64, u64>();
    let queue = manager.queue::<u64>(1);
    dict.insert(1, 1).await.unwrap();
    assert!(
        pool.submit(get_after_shutdown, dict.clone())
            .await
            .unwrap()
            .starts_with("answered")
    );
    // A caller waiting on an empty queue is answered by the shutdown too.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    manager.shutdown();
    let err = within(Duration::from_secs(5), "the waiting get", waiting)
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    let err = dict.get(&1).await.unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    assert!(
        err.to_string().contains("Manager"),
        "says what to do: {err}"
    );
    // A handle cannot even reach a task now (nothing to decode it as)...
    let err = pool.submit(get_after_shutdown, dict.clone()).await;
    assert!(err.is_err() || err.unwrap().starts_with("shutdown"));
    // ...and a worker's handle taken before the shutdown gets the error.
    let (manager, dict) = {
        let manager = Manager::new();
        let dict = manager.dict::<u64, u64>();
        (manager, dict)
    };
    let task = pool.submit(sleep_then_get, (dict, 200));
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(manager); // the last clone: ends it
    assert!(task.await.unwrap().starts_with("shutdown"));
    pool.shutdown().await;
}

async fn a_panicking_update_leaves_the_value_unchanged() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let value = manager.value(12u64);
    assert_eq!(value.update(add_one_unless_13).await.unwrap(), 13);
    let err = value.update(add_one_unless_13).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert!(
        err.panic_message().unwrap().contains("13 is unlucky"),
        "{err}"
    );
    assert_eq!(value.load().await.unwrap(), 13);
    // From a task: the same, and the worker lives on.
    let message = pool.submit(update_unlucky, value.clone()).await.unwrap();
    assert!(message.unwrap().contains("13 is unlucky"));
    assert_eq!(value.load().await.unwrap(), 13);
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    pool.shutdown().await;
}

async fn values_of_16_mib_pass_both_ways() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let dict = manager.dict::<u8, Big>();
    dict.insert(0, Big(vec![7; 16 << 20])).await.unwrap();
    let got = within(
        Duration::from_secs(30),
        "16 MiB both ways",
        pool.submit(big_round_trip, (16 << 20, 9, dict.clone())),
    )
    .await
    .unwrap();
    assert_eq!(got, 16 << 20);
    let back = dict.get(&1).await.unwrap().unwrap();
    assert!(back.0.len() == 16 << 20 && back.0.iter().all(|b| *b == 9));
    pool.shutdown().await;
}

async fn a_malformed_call_is_a_protocol_error() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let dict = manager.dict::<u64, u64>();
    // A well-formed call to an object that is not there: a typed reply.
    let mut unknown = vec![0u8; 27];
    unknown[8] = 1; // a dict
    unknown[9] = 4; // get
    let replied = pool.submit(raw_manager_call, unknown).await.unwrap();
    assert!(replied.starts_with("replied [1, 0"), "{replied}"); // Failure::Gone
    for garbage in [vec![], vec![1, 2, 3], vec![0xFF; 40]] {
        let err = within(
            Duration::from_secs(10),
            "a garbage call",
            pool.submit(raw_manager_call, garbage.clone()),
        )
        .await
        .unwrap_err();
        assert!(err.is_protocol(), "{garbage:?}: {err}");
    }
    // The worker was replaced; the dict is untouched and still served.
    dict.insert(1, 2).await.unwrap();
    assert_eq!(
        pool.submit(get_after_shutdown, dict).await.unwrap(),
        "answered Some(2)"
    );
    pool.shutdown().await;
}

async fn a_dead_holder_poisons_the_lock() {
    let pool = pool(2).await;
    let manager = Manager::new();
    let lock = manager.lock();
    let err = pool
        .submit(acquire_then_abort, lock.clone())
        .await
        .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    let err = lock.acquire().await.unwrap_err();
    assert!(err.is_poisoned(), "{err}");
    assert!(err.to_string().contains("clear_poison"), "{err}");
    assert_eq!(
        pool.submit(try_lock, (lock.clone(), 1_000)).await.unwrap(),
        "poisoned"
    );
    lock.clear_poison().await.unwrap();
    // Held here: a task times out waiting; released: it gets it.
    let held = lock.acquire().await.unwrap();
    assert_eq!(
        pool.submit(try_lock, (lock.clone(), 50)).await.unwrap(),
        "timeout"
    );
    let waiter = pool.submit(try_lock, (lock.clone(), 10_000));
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held);
    assert_eq!(waiter.await.unwrap(), "held");
    pool.shutdown().await;
}

async fn waits_time_out_and_queues_are_bounded() {
    let pool = pool(2).await;
    let manager = Manager::new();
    let queue = manager.queue::<u64>(4);
    assert_eq!(
        pool.submit(take_within, (queue.clone(), 30)).await.unwrap(),
        None
    );
    // A task puts 100 items into a queue of 4: it waits for room as the
    // parent takes them, in order.
    let putter = pool.submit(put_n, (queue.clone(), 100));
    for i in 0..100 {
        let item = within(Duration::from_secs(10), "an item", queue.get())
            .await
            .unwrap();
        assert_eq!(item, i);
        assert!(queue.len().await.unwrap() <= 4);
    }
    putter.await.unwrap();
    // A parent's get that timed out leaves nothing behind: the next item
    // goes to the next taker.
    let err = queue
        .get()
        .timeout(Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let taker = pool.submit(take_within, (queue.clone(), 10_000));
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.put(7).await.unwrap();
    assert_eq!(taker.await.unwrap(), Some(7));
    pool.shutdown().await;
}

async fn a_flood_of_calls_completes() {
    let pool = pool(2).await;
    for ahead in [false, true] {
        let manager = Manager::new();
        let dict = manager.dict::<u64, u64>();
        // 8 threads in each of 2 workers; sent ahead, 2,000 calls a
        // thread, 16,000 a worker: far past its 1,024 unanswered.
        let floods: Vec<_> = (0..2)
            .map(|w| pool.submit(flood, (w * 16_000, 8, 2_000, ahead, dict.clone())))
            .collect();
        for flood in floods {
            within(Duration::from_secs(60), "a flood", flood)
                .await
                .unwrap();
        }
        assert_eq!(dict.len().await.unwrap(), 2 * 8 * 2_000, "ahead: {ahead}");
        let mut keys: Vec<_> = dict.items().await.unwrap();
        keys.sort();
        assert!(
            keys.iter()
                .enumerate()
                .all(|(i, (k, v))| *k == i as u64 && k == v)
        );
    }
    pool.shutdown().await;
}

async fn calls_sent_ahead_are_applied_in_order() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let value = manager.value(0u64);
    let before = within(
        Duration::from_secs(60),
        "fetch_adds sent ahead",
        pool.submit(fetch_adds_ahead, (value.clone(), 5_000)),
    )
    .await
    .unwrap();
    // Each answer is the value before its own increment: in send order.
    assert_eq!(before, (0..5_000).collect::<Vec<u64>>());
    assert_eq!(value.load().await.unwrap(), 5_000);
    pool.shutdown().await;
}

async fn calls_sent_ahead_and_dropped_are_applied() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let dict = manager.dict::<u64, u64>();
    // None waited for, 5x the worker's unanswered limit: the `len` after
    // them sees them all.
    let len = within(
        Duration::from_secs(60),
        "inserts dropped unwaited",
        pool.submit(inserts_dropped_unwaited, (dict.clone(), 5_000)),
    )
    .await
    .unwrap();
    assert_eq!(len, 5_000);
    // In the pool's process too.
    drop(dict.insert(5_000, 0).send());
    assert_eq!(dict.len().await.unwrap(), 5_001);
    pool.shutdown().await;
}

async fn a_waiting_call_is_not_sent_ahead() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let lock = manager.lock();
    let tried = pool.submit(acquire_sent_then_dropped, lock.clone());
    assert_eq!(tried.await.unwrap(), "held");
    // A put sent and dropped puts nothing (as the docs say); one waited
    // for is made then.
    let queue = manager.queue::<u64>(4);
    assert_eq!(
        pool.submit(puts_sent_ahead, queue.clone()).await.unwrap(),
        0
    );
    assert_eq!(queue.get().await.unwrap(), 2);
    assert_eq!(queue.len().await.unwrap(), 0);
    // Nobody holds it now.
    drop(
        lock.acquire()
            .timeout(Duration::from_secs(5))
            .await
            .unwrap(),
    );
    pool.shutdown().await;
}

async fn a_worker_killed_while_sending_ahead_loses_only_a_tail() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let (me, dict) = (manager.value(0u32), manager.dict::<u64, u64>());
    let task = pool.submit(send_ahead_until_killed, (me.clone(), dict.clone()));
    kill_when(|| dict.len(), 20_000, &me, task).await;
    // Applied in order, each whole: the keys are 0..n, no gap.
    let mut items = dict.items().await.unwrap();
    items.sort();
    assert!(items.len() >= 20_000);
    for (i, (k, v)) in items.iter().enumerate() {
        assert_eq!((*k, *v), (i as u64, i as u64), "item {i}");
    }
    // And the pool goes on: a new worker serves the manager.
    assert_eq!(
        pool.submit(fetch_adds_ahead, (manager.value(7u64), 3))
            .await
            .unwrap(),
        vec![7, 8, 9]
    );
    pool.shutdown().await;
}

async fn waiting_calls_of_one_worker_are_capped() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let (queue, refused) = (manager.queue::<u64>(8_192), manager.value(0u64));
    // One more waiter than a worker may have: exactly one is refused at
    // once, the others wait in line.
    let task = pool.submit(wait_from_threads, (queue.clone(), 4_097, refused.clone()));
    within(Duration::from_secs(60), "the refusal", async {
        while refused.load().await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for i in 0..4_096 {
        queue.put(i).await.unwrap();
    }
    let (got, refusals) = within(Duration::from_secs(60), "the waiters", task)
        .await
        .unwrap();
    assert_eq!(got, 4_096);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains("more than 4096 calls"),
        "{}",
        refusals[0]
    );
    assert_eq!(queue.len().await.unwrap(), 0);
    pool.shutdown().await;
}

async fn an_extend_is_applied_whole() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let (dict, list) = (manager.dict::<u64, u64>(), manager.list::<u64>());
    let n = 100_000;
    let task = tokio::spawn(pool.submit(extend_both, (dict.clone(), list.clone(), n)));
    // Whenever the parent looks, each holds none of them or all.
    while !task.is_finished() {
        let (keys, items) = (dict.len().await.unwrap(), list.len().await.unwrap());
        assert!(keys == 0 || keys == n, "{keys} keys");
        assert!(items == 0 || items == n, "{items} items");
        tokio::task::yield_now().await;
    }
    task.await.unwrap().unwrap();
    assert_eq!(dict.get(&(n - 1)).await.unwrap(), Some(n - 1));
    assert_eq!(list.items().await.unwrap(), (0..n).collect::<Vec<_>>());
    pool.shutdown().await;
}

async fn remote_workers_reach_the_manager() {
    // The worker's stdio, through `sh`: what ssh and srun do, on this machine.
    let pool = Pool::builder()
        .launcher(Launcher::command(["sh", "-c", r#""$@" | cat"#, "sh"]))
        .workers(2)
        .build()
        .await
        .unwrap();
    let manager = Manager::new();
    let counts: Dict<u64, u64> = manager.dict();
    let total = manager.value(0u64);
    let tasks: Vec<_> = (0..4)
        .map(|_| pool.submit(count_rounds, (200, 4, counts.clone(), total.clone())))
        .collect();
    for task in tasks {
        within(Duration::from_secs(60), "a remote task", task)
            .await
            .unwrap();
    }
    assert_eq!(total.load().await.unwrap(), 800);
    assert_eq!(counts.get(&0).await.unwrap(), Some(200));
    let lock = manager.lock();
    assert_eq!(pool.submit(try_lock, (lock, 1_000)).await.unwrap(), "held");
    pool.shutdown().await;
}

async fn replies_in_flight_at_a_tasks_end_go_to_nobody_later() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let (value, dict, done) = (
        manager.value(0u64),
        manager.dict::<u64, u64>(),
        manager.value(0u64),
    );
    // A task returns with 3,000 replies on their way, and a thread of
    // another keeps sending after its task ended; the tasks after them, on
    // the same worker, get their own answers, in order.
    let first = pool.submit(fetch_adds_sent_then_return, (value.clone(), 3_000));
    let thread = pool.submit(
        spawn_sender_and_return,
        (dict.clone(), 20_000, done.clone()),
    );
    let later: Vec<_> = (0..50)
        .map(|_| pool.submit(fetch_adds_ahead, (value.clone(), 3)))
        .collect();
    within(Duration::from_secs(60), "the first task", first)
        .await
        .unwrap();
    within(Duration::from_secs(60), "the spawning task", thread)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for task in later {
        let got = within(Duration::from_secs(60), "a later task", task)
            .await
            .unwrap();
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
        seen.extend(got);
    }
    seen.sort();
    assert_eq!(seen, (3_000..3_150).collect::<Vec<u64>>());
    within(Duration::from_secs(60), "the outliving thread", async {
        while done.load().await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(dict.len().await.unwrap(), 20_000);
    pool.shutdown().await;
}

async fn a_worker_stopped_and_continued_mid_stream_loses_nothing() {
    let pool = pool(1).await;
    let manager = Manager::new();
    let (me, dict) = (manager.value(0u32), manager.dict::<u64, u64>());
    let n = 200_000;
    let task = pool.submit(send_ahead_then_len, (me.clone(), dict.clone(), n));
    within(Duration::from_secs(20), "the sends", async {
        while dict.len().await.unwrap() < 20_000 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let pid = me.load().await.unwrap() as i32;
    // SAFETY: kill takes plain integers; the pid is a live worker of ours.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // The pool keeps serving the parent meanwhile.
    let stopped_at = dict.len().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(dict.len().await.unwrap() >= stopped_at);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let len = within(Duration::from_secs(60), "the continued task", task)
        .await
        .unwrap();
    assert_eq!(len, n);
    pool.shutdown().await;
}

async fn a_reply_over_max_frame_size_is_a_typed_error() {
    let pool = pool_of_1_mib_frames().await;
    let manager = Manager::new();
    let dict = manager.dict::<u8, Big>();
    // Each value fits a frame; together (items) they do not, nor does
    // the 2 MiB one the parent put (the parent has no frame limit).
    for key in 0..3 {
        dict.insert(key, Big(vec![key; 512 << 10])).await.unwrap();
    }
    dict.insert(9, Big(vec![9; 2 << 20])).await.unwrap();
    let items = within(
        Duration::from_secs(60),
        "items",
        pool.submit(items_of_big, dict.clone()),
    )
    .await
    .expect("the worker survives a reply over its frame limit");
    let err = items.unwrap_err();
    assert!(err.contains("max_frame_size"), "{err}");
    let get = within(
        Duration::from_secs(60),
        "a big get sent ahead",
        pool.submit(get_big_sent_ahead, (dict.clone(), 9)),
    )
    .await
    .expect("the worker survives a reply over its frame limit");
    let err = get.unwrap_err();
    assert!(err.contains("max_frame_size"), "{err}");
    // Small ones still pass.
    let small = pool
        .submit(get_big_sent_ahead, (dict.clone(), 1))
        .await
        .unwrap();
    assert_eq!(small, Ok(512 << 10));
    // An item too large for the worker stays in the queue, whether the
    // taker was waiting (answered later) or not (answered at once).
    let queue = manager.queue::<Big>(4);
    let waiting = pool.submit(get_big_item, queue.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    queue.put(Big(vec![7; 2 << 20])).await.unwrap();
    for taker in [Some(waiting), None] {
        let taker = taker.unwrap_or_else(|| pool.submit(get_big_item, queue.clone()));
        let err = within(Duration::from_secs(60), "a big get", taker)
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.contains("max_frame_size"), "{err}");
        assert_eq!(queue.len().await.unwrap(), 1);
    }
    assert_eq!(queue.get().await.unwrap().0.len(), 2 << 20);
    pool.shutdown().await;
}

/// One worker, reading frames of at most 1 MiB.
async fn pool_of_1_mib_frames() -> Pool {
    Pool::builder()
        .workers(1)
        .max_frame_size(1 << 20)
        .build()
        .await
        .unwrap()
}

async fn extends_of_nothing_of_garbage_and_of_too_much() {
    let pool = pool_of_1_mib_frames().await;
    let manager = Manager::new();
    let (dict, list) = (manager.dict(), manager.list());
    let (said, keys, items) = within(
        Duration::from_secs(60),
        "the extends",
        pool.submit(extend_edges, (dict.clone(), list.clone())),
    )
    .await
    .unwrap();
    // Nothing is fine; 0..100 has a 13 that cannot be encoded: nothing of
    // it applied; a million is more than a frame: refused, nothing applied.
    assert_eq!(&said[..2], ["ok", "ok"]);
    for garbage in &said[2..4] {
        assert!(garbage.contains("13 cannot be encoded"), "{garbage}");
    }
    for too_much in &said[4..] {
        assert!(too_much.contains("max_frame_size"), "{too_much}");
    }
    assert_eq!((keys, items), (0, 0));
    // In the pool's process, a million is fine (no frame), and garbage
    // applies nothing.
    let err = dict
        .extend((0..100).map(|k| (k, Unlucky(k))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("13 cannot be encoded"), "{err}");
    list.extend((14..1_000_014).map(Unlucky)).await.unwrap();
    assert_eq!(dict.len().await.unwrap(), 0);
    assert_eq!(list.len().await.unwrap(), 1_000_000);
    pool.shutdown().await;
}
