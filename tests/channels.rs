//! Channels between the parent and running tasks, over the workers' own
//! connections: messages arrive whole and in order, memory stays bounded,
//! both directions flow at once, a dead or departed peer is an error or
//! an end (never a hang), and garbage is a protocol error.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use procpool::{Queue, Receiver, Sender};

fn main() {
    run(
        tests![
            a_task_streams_to_the_parent,
            the_parent_feeds_a_task,
            two_tasks_on_different_workers_talk_through_the_parent,
            a_pipe_carries_megabytes_both_ways_at_once,
            a_small_message_to_a_task_does_not_wait_behind_a_large_one,
            a_slow_reader_keeps_both_sides_memory_bounded,
            a_sender_killed_mid_message_delivers_nothing_partial,
            dropping_the_receiver_fails_the_senders,
            a_task_dropping_its_receiver_closes_the_channel,
            a_timed_out_receive_loses_no_message,
            a_queue_shared_by_four_tasks_and_the_parent_delivers_each_item_once,
            a_forged_channel_frame_is_a_protocol_error,
            endpoints_cannot_travel_in_map_items,
            a_sender_reopened_on_the_same_worker_after_credit_was_in_flight,
            a_worker_forgets_the_channels_it_no_longer_holds,
            tasks_one_after_another_sharing_one_sender_with_a_slow_reader,
            a_message_over_the_limit_is_an_error_for_its_sender,
            a_tasks_timeout_ends_its_stream_while_the_parent_reads_it,
            a_pool_task_timeout_ends_its_stream_while_the_parent_reads_it,
            a_process_timeout_ends_its_stream_while_the_parent_reads_it,
            a_large_message_given_back_unread_is_no_protocol_error,
            a_grant_does_not_overtake_forgotten_behind_a_large_message,
            the_news_of_a_dead_sender_given_back_unread_is_not_lost,
            items_given_back_keep_their_order,
            impatient_getters_of_large_items_lose_and_repeat_none,
        ],
        |_| {},
    );
}

const LIMIT: Duration = Duration::from_secs(30);

async fn a_task_streams_to_the_parent() {
    let pool = pool(1).await;
    let (tx, rx) = procpool::channel::<u64>(16);
    let task = pool.submit(produce, (5_000, tx));
    let got: Vec<u64> = within(LIMIT, "the stream", rx.map(Result::unwrap).collect()).await;
    assert!(got.into_iter().eq(0..5_000), "in order, all of them");
    assert_eq!(task.await.unwrap(), 5_000);
}

async fn the_parent_feeds_a_task() {
    let pool = pool(1).await;
    let (tx, rx) = procpool::channel::<u64>(4);
    let task = pool.submit(consume, rx);
    for i in 0..2_000 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let sum = within(LIMIT, "the consumer", task).await.unwrap();
    assert_eq!(sum, (0..2_000).sum::<u64>());
}

async fn two_tasks_on_different_workers_talk_through_the_parent() {
    let pool = pool(2).await;
    let pids: Vec<u32> = futures::future::try_join_all((0..2).map(|_| pool.submit(sleep_ms, 50)))
        .await
        .unwrap();
    assert_ne!(pids[0], pids[1]);
    let (tx, rx) = procpool::channel::<u64>(8);
    let consumer = pool.submit(consume, rx);
    let producer = pool.submit(produce, (10_000, tx));
    let (sum, sent) = within(
        LIMIT,
        "both tasks",
        futures::future::join(consumer, producer),
    )
    .await;
    assert_eq!(sent.unwrap(), 10_000);
    assert_eq!(sum.unwrap(), (0..10_000).sum::<u64>());
}

async fn a_pipe_carries_megabytes_both_ways_at_once() {
    const MESSAGES: u32 = 8;
    const BYTES: usize = 2 << 20;
    let pool = pool(1).await;
    let (here, there) = procpool::pipe::<Vec<u8>, Vec<u8>>(2);
    let task = pool.submit(echo_pipe, (there, MESSAGES, BYTES as u64));
    let (tx, mut rx) = here.split();
    // Both sides send 2 MiB messages before reading anything back.
    let send = async move {
        for i in 0..MESSAGES {
            tx.send(vec![100 + i as u8; BYTES]).await.unwrap();
        }
    };
    let receive = async move {
        let mut got = Vec::new();
        while let Some(message) = rx.next().await {
            let message = message.unwrap();
            assert_eq!(message.len(), BYTES);
            assert!(
                message.iter().all(|&b| b == message[0]),
                "a message mixed up"
            );
            got.push(message[0]);
            if got.len() == 2 * MESSAGES as usize {
                break;
            }
        }
        got
    };
    let ((), mut got) = within(
        LIMIT,
        "both directions",
        futures::future::join(send, receive),
    )
    .await;
    got.sort_unstable();
    let mut want: Vec<u8> = (0..MESSAGES as u8)
        .chain(100..100 + MESSAGES as u8)
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(
        within(LIMIT, "the echo task", task).await.unwrap(),
        MESSAGES
    );
}

async fn a_small_message_to_a_task_does_not_wait_behind_a_large_one() {
    // 256 MiB go in 256 pieces; the small message, asked for just after,
    // goes between two of them, not after the last.
    const BYTES: usize = 256 << 20;
    let pool = pool(1).await;
    let (large_tx, large_rx) = procpool::channel::<Blob>(1);
    let (small_tx, small_rx) = procpool::channel::<u64>(1);
    large_tx.send(Blob(vec![7; BYTES])).await.unwrap();
    small_tx.send(1).await.unwrap();
    let got = within(
        LIMIT,
        "both messages",
        pool.submit(small_behind_large, (large_rx, small_rx)),
    )
    .await
    .unwrap();
    assert_eq!(
        got, BYTES as u64,
        "0: the small message came after the large one"
    );
}

async fn a_slow_reader_keeps_both_sides_memory_bounded() {
    const COUNT: u32 = 1024;
    const BYTES: u64 = 1 << 20;
    let pool = pool(1).await;
    let worker = pool.submit(pid, ()).await.unwrap();
    let reset = reset_peak_rss();
    let before = peak_rss_kib();
    let (tx, mut rx) = procpool::channel::<Vec<u8>>(4);
    let task = pool.submit(send_blobs, (COUNT, BYTES, tx));
    let mut received = 0u64;
    while let Some(message) = within(LIMIT, "a blob", rx.next()).await {
        let message = message.unwrap();
        assert_eq!(message.len() as u64, BYTES);
        assert!(message.iter().all(|&b| b == received as u8));
        received += 1;
        if received.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(received, u64::from(COUNT));
    assert_eq!(task.await.unwrap(), COUNT);
    let parent_growth = peak_rss_kib().saturating_sub(before) / 1024;
    let worker_peak = peak_rss_kib_of(worker) / 1024;
    eprintln!(
        "1 GiB passed: parent peak grew {parent_growth} MiB (reset: {reset}), worker peak {worker_peak} MiB"
    );
    assert!(
        worker_peak < 64,
        "the worker's peak RSS reached {worker_peak} MiB"
    );
    if reset {
        assert!(
            parent_growth < 96,
            "the parent's peak RSS grew {parent_growth} MiB"
        );
    }
}

async fn a_sender_killed_mid_message_delivers_nothing_partial() {
    let pool = pool(1).await;
    let (tx, mut rx) = procpool::channel::<Vec<u8>>(8);
    let task = pool.submit(send_then_die_mid_message, (5, 256 << 20, 30, tx));
    let mut small = 0;
    let died = loop {
        match within(LIMIT, "the next item", rx.next()).await {
            Some(Ok(message)) => {
                assert_eq!(
                    message.len(),
                    8,
                    "only whole messages: a part of the big one came"
                );
                small += 1;
            }
            Some(Err(err)) => break err,
            None => panic!("the stream ended without saying the sender died"),
        }
    };
    assert_eq!(small, 5);
    assert!(died.is_peer_died(), "{died}");
    assert_eq!(died.signal(), Some(libc::SIGABRT), "{died}");
    assert!(
        died.task_name()
            .unwrap()
            .ends_with("send_then_die_mid_message"),
        "{died}"
    );
    assert!(died.worker_pid().is_some());
    assert!(
        within(LIMIT, "the end", rx.next()).await.is_none(),
        "no sender is left"
    );
    assert!(task.await.unwrap_err().is_worker_died());
}

async fn dropping_the_receiver_fails_the_senders() {
    let pool = pool(1).await;
    let (tx, rx) = procpool::channel::<u64>(2);
    let task = pool.submit(send_until_closed, tx);
    for i in 0..10 {
        assert_eq!(rx.recv().await.unwrap(), i);
    }
    drop(rx);
    let text = within(LIMIT, "the sender's error", task).await.unwrap();
    assert!(text.contains("every receiver is gone"), "{text}");
}

async fn a_task_dropping_its_receiver_closes_the_channel() {
    let pool = pool(1).await;
    let (tx, rx) = procpool::channel::<u64>(1);
    let task = pool.submit(recv_one, rx);
    tx.send(41).await.unwrap();
    assert_eq!(within(LIMIT, "the task", task).await.unwrap(), 41);
    let err = within(LIMIT, "a send nobody can receive", tx.send(42))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
}

async fn a_timed_out_receive_loses_no_message() {
    let pool = pool(1).await;
    let queue = Queue::<u64>::new(4);
    // The first asks for an item and gives up; what comes later must not
    // be lost with its request, but reach the next getter.
    assert_eq!(
        pool.submit(get_within, (50, queue.clone())).await.unwrap(),
        None
    );
    queue.put(7).await.unwrap();
    let second = pool.submit(get_within, (10_000, queue.clone()));
    assert_eq!(
        within(LIMIT, "the second getter", second).await.unwrap(),
        Some(7)
    );
}

async fn a_queue_shared_by_four_tasks_and_the_parent_delivers_each_item_once() {
    const ITEMS: u64 = 2_000;
    let pool = pool(4).await;
    let queue = Queue::<Option<u64>>::new(8);
    let (done_tx, done_rx) = procpool::channel::<(u64, u32)>(64);
    let workers: Vec<_> = (0..4)
        .map(|_| pool.submit(queue_worker, (queue.clone(), done_tx.clone())))
        .collect();
    drop(done_tx);
    let parent_getter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..100 {
                mine.push(queue.get().await.unwrap().expect("no sentinel yet"));
            }
            mine
        })
    };
    let collector = tokio::spawn(async move {
        let items: Vec<(u64, u32)> = done_rx.map(Result::unwrap).collect().await;
        items
    });
    for i in 0..ITEMS {
        queue.put(Some(i)).await.unwrap();
    }
    let mine = within(LIMIT, "the parent's gets", parent_getter)
        .await
        .unwrap();
    for _ in 0..4 {
        queue.put(None).await.unwrap();
    }
    let taken: u64 = within(
        LIMIT,
        "the queue workers",
        futures::future::try_join_all(workers),
    )
    .await
    .unwrap()
    .into_iter()
    .sum();
    let done = within(LIMIT, "the results", collector).await.unwrap();
    assert_eq!(taken + mine.len() as u64, ITEMS);
    let mut all: Vec<u64> = mine
        .into_iter()
        .chain(done.iter().map(|&(item, _)| item))
        .collect();
    all.sort_unstable();
    assert!(all.into_iter().eq(0..ITEMS), "every item exactly once");
    let mut pids: Vec<u32> = done.iter().map(|&(_, pid)| pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.len() > 1, "more than one worker took items");
}

async fn a_forged_channel_frame_is_a_protocol_error() {
    let pool = pool(1).await;
    // An OPEN for a channel that does not exist, written by the task.
    let mut frame = 10u64.to_le_bytes().to_vec();
    frame.push(0x40);
    frame.extend_from_slice(&987_654_321u64.to_le_bytes());
    frame.push(0);
    let err = within(LIMIT, "the forger", pool.submit(scribble, frame))
        .await
        .unwrap_err();
    assert!(err.is_protocol(), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
}

async fn endpoints_cannot_travel_in_map_items() {
    let pool = pool(1).await;
    let (tx, _rx) = procpool::channel::<u64>(1);
    let first = pool.map(produce, [(1u64, tx)]).next().await.unwrap();
    let err = first.unwrap_err();
    assert!(err.is_codec(), "{err}");
    assert!(err.to_string().contains("Pool::submit"), "{err}");
}

// Found by the red team: a grant to an ask-ahead WANT could reach the
// worker after its last sender closed; the next task on that worker sent
// on it, and the hub, which had dropped that credit, called it a protocol
// error (an innocent task failed, its worker killed). 129 is the message
// that makes the worker ask ahead (credit < WINDOW / 2).
async fn a_sender_reopened_on_the_same_worker_after_credit_was_in_flight() {
    const MORE: u64 = 2_000;
    let pool = pool(1).await;
    let (tx, rx) = procpool::channel::<u64>(1024);
    let first = pool.submit(produce, (129, tx.clone()));
    for i in 0..129 {
        assert_eq!(within(LIMIT, "a message", rx.recv()).await.unwrap(), i);
    }
    assert_eq!(within(LIMIT, "the first task", first).await.unwrap(), 129);
    // The second fills the buffer before the parent reads.
    let second = pool.submit(produce, (MORE, tx.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reader = tokio::spawn(async move {
        for _ in 0..MORE {
            rx.recv().await.unwrap();
        }
    });
    assert_eq!(
        within(LIMIT, "the second task", second).await.unwrap(),
        MORE
    );
    within(LIMIT, "the reader", reader).await.unwrap();
}

async fn a_worker_forgets_the_channels_it_no_longer_holds() {
    // A long-lived worker given a new channel per task keeps no entry for
    // any of them once its tasks are done (it kept every one, ~170 bytes
    // each, for good).
    let pool = pool(1).await;
    for round in 0..300u64 {
        let (tx, rx) = procpool::channel::<u64>(4);
        let task = pool.submit(produce, (3, tx));
        for i in 0..3 {
            assert_eq!(within(LIMIT, "a message", rx.recv()).await.unwrap(), i);
        }
        assert_eq!(within(LIMIT, "the producer", task).await.unwrap(), 3);
        let (tx, rx) = procpool::channel::<u64>(4);
        tx.send(round).await.unwrap();
        assert_eq!(pool.submit(recv_one, rx).await.unwrap(), round);
    }
    // Each forgot its channel before the next request reached it.
    assert_eq!(pool.submit(channels_known, ()).await.unwrap(), 0);
    assert_eq!(pool.stats().respawns, 0);
}

async fn tasks_one_after_another_sharing_one_sender_with_a_slow_reader() {
    const TASKS: u64 = 20;
    const EACH: u64 = 300;
    let pool = pool(1).await;
    let (tx, mut rx) = procpool::channel::<u64>(1024);
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(item) = rx.next().await {
            item.unwrap_or_else(|err| panic!("after {n}: {err}"));
            n += 1;
            if n.is_multiple_of(100) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        n
    });
    for i in 0..TASKS {
        let sent = within(LIMIT, "a task", pool.submit(produce, (EACH, tx.clone()))).await;
        assert_eq!(sent.unwrap_or_else(|err| panic!("task {i}: {err}")), EACH);
    }
    drop(tx);
    assert_eq!(
        within(LIMIT, "the reader", reader).await.unwrap(),
        TASKS * EACH
    );
}

// Found by the red team: a message over the hub's limit was a protocol
// error that killed the worker; it is an error from the send.
async fn a_message_over_the_limit_is_an_error_for_its_sender() {
    let pool = pool(1).await;
    let (tx, _rx) = procpool::channel::<Vec<u8>>(1);
    let sent = within(
        LIMIT,
        "the task",
        pool.submit(send_one_of, ((1 << 30) + 16, tx)),
    )
    .await
    .expect("the worker lives");
    let text = sent.unwrap_err();
    assert!(text.contains("over the limit"), "{text}");
    assert_eq!(pool.stats().respawns, 0);
}

// Found by the red team: a timeout was a timer inside the handle, so the
// README's pattern (read the stream to its end, then await the task) hung
// for ever on a task that hung holding its sender. The pool enforces the
// deadline itself now.
async fn a_tasks_timeout_ends_its_stream_while_the_parent_reads_it() {
    let pool = pool(1).await;
    let (tx, mut rx) = procpool::channel::<u64>(4);
    let task = pool
        .submit(send_one_then_hang, (60_000, tx))
        .timeout(Duration::from_millis(500));
    let mut items = Vec::new();
    while let Some(item) = within(Duration::from_secs(10), "the stream", rx.next()).await {
        items.push(item);
    }
    assert!(matches!(items[0], Ok(1)), "{items:?}");
    // Then the news that its sender is gone, saying why.
    let gone = items[1].as_ref().unwrap_err();
    assert!(gone.is_peer_died(), "{gone}");
    assert!(gone.to_string().contains("stopped by the pool"), "{gone}");
    let err = within(LIMIT, "the task", task).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.worker_pid().is_some(), "{err}");
    assert_eq!(
        pool.submit(square, 5).await.unwrap(),
        25,
        "the worker was replaced"
    );
}

async fn a_pool_task_timeout_ends_its_stream_while_the_parent_reads_it() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let (tx, mut rx) = procpool::channel::<u64>(4);
    let task = pool.submit(send_one_then_hang, (60_000, tx));
    while within(Duration::from_secs(10), "the stream", rx.next())
        .await
        .is_some()
    {}
    let err = within(LIMIT, "the task", task).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

async fn a_process_timeout_ends_its_stream_while_the_parent_reads_it() {
    let (tx, mut rx) = procpool::channel::<u64>(4);
    let process =
        procpool::spawn(send_one_then_hang, (60_000, tx)).timeout(Duration::from_millis(500));
    while within(Duration::from_secs(10), "the stream", rx.next())
        .await
        .is_some()
    {}
    let err = within(LIMIT, "the process", process).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

// Found by the red team: a task that lets go of a receiver holding a
// message it had asked for gives it back in one RETURN frame, however
// large; one over the pool's frame limit (it came in pieces) was a
// protocol error that killed a healthy worker, and the message was lost.
async fn a_large_message_given_back_unread_is_no_protocol_error() {
    const BYTES: usize = 3 << 20;
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_frame_size(2 << 20)
        .build()
        .await
        .unwrap();
    let queue = Queue::<Blob>::new(1);
    let (ready_tx, ready_rx) = procpool::channel::<u64>(1);
    let task = pool.submit(give_back_unread, (queue.clone(), ready_tx, 1_000));
    assert_eq!(within(LIMIT, "ready", ready_rx.recv()).await.unwrap(), 1);
    queue.put(Blob(vec![9; BYTES])).await.unwrap();
    within(LIMIT, "the task", task)
        .await
        .expect("the worker lives");
    let back = within(LIMIT, "the item given back", queue.get())
        .await
        .unwrap();
    assert_eq!(back.0.len(), BYTES);
    assert!(back.0.iter().all(|&b| b == 9));
    assert_eq!(pool.stats().respawns, 0);
}

// Found by the red team: a worker that let go of a queue while a large
// item it had asked for was still arriving forgets it (FORGET); the pool's
// FORGOTTEN waits behind that item's pieces, but a credit grant does not.
// The next task on that worker put on the queue: its grant came before
// FORGOTTEN, was taken for one sent before the FORGET and voided, and the
// put waited for ever (the pool thought it had granted it).
async fn a_grant_does_not_overtake_forgotten_behind_a_large_message() {
    const BYTES: usize = 256 << 20;
    let pool = pool(1).await;
    // Room for both, whenever the large one comes back.
    let queue = Queue::<Blob>::new(2);
    let (ready_tx, ready_rx) = procpool::channel::<u64>(1);
    let (go_tx, go_rx) = procpool::channel::<u64>(1);
    let first = pool.submit(give_back_when_told, (queue.clone(), ready_tx, go_rx));
    assert_eq!(within(LIMIT, "ready", ready_rx.recv()).await.unwrap(), 1);
    queue.put(Blob(vec![9; BYTES])).await.unwrap();
    go_tx.send(1).await.unwrap();
    let pid = within(LIMIT, "the first task", first).await.unwrap();
    let second = within(
        Duration::from_secs(5),
        "a put by the next task on that worker",
        pool.submit(put_small, queue.clone()),
    )
    .await
    .unwrap();
    assert_eq!(second, pid);
    let back = within(LIMIT, "the item given back", queue.get())
        .await
        .unwrap();
    assert_eq!(back.0.len(), BYTES);
    let small = within(LIMIT, "the small item", queue.get()).await.unwrap();
    assert_eq!(small.0, vec![1; 8]);
}

// Found by the red team: the news that a sender died is an item like a
// message, handed to the receiver that asked first; a task that had asked
// and let go of its receiver without reading it dropped it (only messages
// were given back), and the parent's getter waited for ever for news that
// had come.
async fn the_news_of_a_dead_sender_given_back_unread_is_not_lost() {
    let pool = pool(2).await;
    let queue = Queue::<Blob>::new(1);
    let (ready_tx, ready_rx) = procpool::channel::<u64>(1);
    let (go_tx, go_rx) = procpool::channel::<u64>(1);
    let getter = pool.submit(give_back_when_told, (queue.clone(), ready_tx, go_rx));
    assert_eq!(within(LIMIT, "ready", ready_rx.recv()).await.unwrap(), 1);
    // The getter's ask is the only one: the news goes to it.
    let died = within(
        LIMIT,
        "the sender's death",
        pool.submit(hold_sender_then_abort, queue.clone()),
    )
    .await
    .unwrap_err();
    assert!(died.is_worker_died(), "{died}");
    go_tx.send(1).await.unwrap();
    within(LIMIT, "the getter", getter).await.unwrap();
    let news = within(Duration::from_secs(5), "the news, given back", queue.get())
        .await
        .unwrap_err();
    assert!(news.is_peer_died(), "{news}");
    assert_eq!(news.signal(), Some(libc::SIGABRT), "{news}");
}

// Found by the red team: a task that lets go of a queue gives back what
// it had been sent and not read, each to the front of the line: first what
// had come (at once), then what was still on its way (as it arrives). The
// later one went in front of the earlier, and the next getter took the
// items out of order.
async fn items_given_back_keep_their_order() {
    const BYTES: usize = 256 << 20;
    let pool = pool(1).await;
    let queue = Queue::<Blob>::new(2);
    let (ready_tx, ready_rx) = procpool::channel::<u64>(1);
    let (go_tx, go_rx) = procpool::channel::<u64>(1);
    let task = pool.submit(
        two_asks_then_give_back_when_told,
        (queue.clone(), ready_tx, go_rx),
    );
    assert_eq!(within(LIMIT, "ready", ready_rx.recv()).await.unwrap(), 1);
    // Both go to the task's two asks: the small one comes at once, the
    // large one is still arriving when `go` (which overtakes it) does.
    queue.put(Blob(vec![1; 8])).await.unwrap();
    queue.put(Blob(vec![2; BYTES])).await.unwrap();
    go_tx.send(1).await.unwrap();
    within(LIMIT, "the task", task).await.unwrap();
    // The large one may still be on its way back: let it come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = within(LIMIT, "the first item", queue.get()).await.unwrap();
    let second = within(LIMIT, "the second item", queue.get()).await.unwrap();
    assert_eq!(
        (first.0.len(), second.0.len()),
        (8, BYTES),
        "in the order they were put"
    );
}

async fn impatient_getters_of_large_items_lose_and_repeat_none() {
    const ITEMS: u64 = 60;
    const BYTES: usize = 3 << 20;
    let pool = pool(3).await;
    let queue = Queue::<Option<Blob>>::new(4);
    let (done_tx, done_rx) = procpool::channel::<u64>(256);
    let getters: Vec<_> = [1, 3, 7]
        .into_iter()
        .map(|ms| pool.submit(impatient_large_getter, (queue.clone(), ms, done_tx.clone())))
        .collect();
    drop(done_tx);
    let collector = tokio::spawn(async move {
        let ids: Vec<u64> = done_rx.map(Result::unwrap).collect().await;
        ids
    });
    for id in 0..ITEMS {
        let mut blob = vec![id as u8; BYTES];
        blob[..8].copy_from_slice(&id.to_le_bytes());
        within(LIMIT, "a put", queue.put(Some(Blob(blob))))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        within(LIMIT, "a sentinel", queue.put(None)).await.unwrap();
    }
    let taken: u64 = within(LIMIT, "the getters", futures::future::try_join_all(getters))
        .await
        .unwrap()
        .into_iter()
        .sum();
    let mut ids = within(LIMIT, "the results", collector).await.unwrap();
    assert_eq!(taken, ITEMS);
    ids.sort_unstable();
    assert!(ids.into_iter().eq(0..ITEMS), "every item exactly once");
    assert_eq!(pool.stats().respawns, 0);
}

#[allow(dead_code)]
fn _types_are_send(tx: Sender<u64>, rx: Receiver<u64>, queue: Queue<u64>) {
    fn is_send<T: Send + Sync + 'static>(_: &T) {}
    is_send(&tx);
    is_send(&rx);
    is_send(&queue);
}
