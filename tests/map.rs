//! `map` and friends: results in input order (or completion order), lazy
//! bounded input, per-item errors inside chunks, crashes mid-stream, and
//! cancellation when the stream is dropped.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};

fn main() {
    run(
        tests![
            map_yields_results_in_input_order,
            ordering_holds_under_random_task_durations,
            unordered_yields_every_result_once,
            starmap_feeds_tuples,
            endless_input_is_pulled_lazily_and_memory_stays_flat,
            tiny_items_are_batched_into_chunks,
            a_panic_fails_only_its_item,
            a_worker_crash_mid_chunk_fails_only_the_crashing_item,
            dropping_the_stream_cancels_outstanding_work,
            input_can_be_a_stream,
            unregistered_function_yields_one_error,
            an_unencodable_item_fails_alone,
            explicit_chunk_size_and_window,
            zero_byte_items_still_fill_a_bounded_chunk,
        ],
        |_| {},
    );
}

async fn map_yields_results_in_input_order() {
    let pool = pool(2).await;
    let squares: Vec<u64> = pool.map(square, 0..10_000u64).try_collect().await.unwrap();
    assert_eq!(squares, (0..10_000u64).map(|x| x * x).collect::<Vec<_>>());
    let empty: Vec<u64> = pool
        .map(square, Vec::<u64>::new())
        .try_collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

async fn ordering_holds_under_random_task_durations() {
    let pool = pool(2).await;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let durations: Vec<u64> = (0..60)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 15
        })
        .collect();
    // sleep_ms returns the pid; pair each result with its input via greet.
    let results: Vec<u32> = pool
        .map(sleep_ms, durations.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(results.len(), durations.len());
    let words: Vec<String> = pool
        .map(greet, (0..500).map(|i| (i.to_string(), 1)))
        .window(3)
        .try_collect()
        .await
        .unwrap();
    for (i, word) in words.iter().enumerate() {
        assert_eq!(word, &format!("hello, {i}! "));
    }
}

async fn unordered_yields_every_result_once() {
    let pool = pool(2).await;
    let mut got: Vec<u64> = pool
        .map_unordered(square, 0..5_000u64)
        .try_collect()
        .await
        .unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..5_000u64).map(|x| x * x).collect::<Vec<_>>());
    // A slow first item does not hold back the rest.
    let first: Vec<u32> = pool
        .map_unordered(sleep_ms, [300, 0, 0, 0])
        .take(3)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
}

async fn starmap_feeds_tuples() {
    let pool = pool(2).await;
    let products: Vec<u64> = pool
        .starmap(product, [(1, 2, 3), (3, 4, 5), (0, 9, 9)])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(products, [6, 60, 0]);
    let mut unordered: Vec<u64> = pool
        .starmap_unordered(product, [(1, 1, 2), (2, 2, 2)])
        .try_collect()
        .await
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, [2, 8]);
}

async fn endless_input_is_pulled_lazily_and_memory_stays_flat() {
    let pool = pool(2).await;
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let rss_before = peak_rss_kib();
    let mut stream = pool.map(square, endless);
    let mut taken = 0u64;
    while let Some(result) = stream.next().await {
        assert_eq!(result.unwrap(), taken * taken);
        taken += 1;
        if taken == 10_000_000 {
            break;
        }
    }
    drop(stream);
    let pulled = pulled.load(Ordering::Relaxed);
    // The window is 4 chunks per worker, each at most 65,536 items.
    assert!(
        pulled <= taken + 8 * 65_536,
        "pulled {pulled} items for {taken} results"
    );
    let growth_mib = (peak_rss_kib() - rss_before) / 1024;
    assert!(
        growth_mib < 200,
        "peak memory grew by {growth_mib} MiB while streaming"
    );
}

async fn tiny_items_are_batched_into_chunks() {
    let pool = pool(2).await;
    let n = 200_000u64;
    let sum: u64 = pool
        .map(square, 0..n)
        .try_fold(0u64, |acc, x| async move { Ok(acc.wrapping_add(x)) })
        .await
        .unwrap();
    assert_eq!(sum, (0..n).map(|x| x * x).fold(0u64, u64::wrapping_add));
    // Far fewer frames than items went to the workers.
    let frames = pool.stats().completed;
    assert!(
        frames < n / 20,
        "{frames} frames for {n} items: not batched"
    );
}

async fn a_panic_fails_only_its_item() {
    let pool = pool(2).await;
    let inputs: Vec<String> = (0..1_000)
        .map(|i| {
            if i % 100 == 7 {
                format!("bad {i}")
            } else {
                i.to_string()
            }
        })
        .collect();
    let results: Vec<_> = pool.map(parse_or_panic, inputs).collect().await;
    assert_eq!(results.len(), 1_000);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(v) => assert_eq!(v, i as u64),
            Err(err) => {
                assert_eq!(i % 100, 7, "item {i} failed: {err}");
                assert!(err.is_panic());
                assert_eq!(
                    err.panic_message(),
                    Some(format!("not a number: bad {i}").as_str())
                );
            }
        }
    }
    assert_eq!(pool.stats().respawns, 0, "panics kill no worker");
}

async fn a_worker_crash_mid_chunk_fails_only_the_crashing_item() {
    let pool = pool(2).await;
    let inputs: Vec<u64> = (0..3_000).collect();
    let results: Vec<_> = pool
        .map(abort_on_1234, inputs)
        .chunk_size(500)
        .collect()
        .await;
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(v) => assert_eq!(v, i as u64),
            Err(err) => {
                assert_eq!(i, 1234, "item {i} failed: {err}");
                assert_eq!(err.signal(), Some(libc::SIGABRT));
            }
        }
    }
}

async fn dropping_the_stream_cancels_outstanding_work() {
    let pool = pool(2).await;
    let dir = marker("map-drop");
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<String> = (0..40).map(|i| format!("{dir}/{i}")).collect();
    let mut stream = pool
        .map(sleep_then_touch, paths.iter().map(|p| (100, p.clone())))
        .chunk_size(1);
    // Take two results, then walk away.
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finished = paths.iter().filter(|p| Path::new(p).exists()).count();
    // Two yielded, at most a window's worth (2 running + pipelined) besides.
    assert!(
        finished <= 4,
        "{finished} tasks ran to the end after the stream was dropped"
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn input_can_be_a_stream() {
    let pool = pool(2).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(4);
    let producer = tokio::spawn(async move {
        for i in 0..100 {
            tx.send(i).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let input = tokio_stream_from(rx);
    let squares: Vec<u64> = pool.map_stream(square, input).try_collect().await.unwrap();
    assert_eq!(squares, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
    producer.await.unwrap();
    let unordered: Vec<u64> = pool
        .map_stream_unordered(square, futures::stream::iter([3u64, 4]))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(unordered.len(), 2);
}

async fn unregistered_function_yields_one_error() {
    let pool = pool(1).await;
    let results: Vec<_> = pool.map(not_registered, 0u64..).collect().await;
    assert_eq!(results.len(), 1);
    assert!(results[0].as_ref().unwrap_err().is_unregistered());
}

async fn an_unencodable_item_fails_alone() {
    let pool = pool(1).await;
    let results: Vec<_> = pool
        .map(takes_unencodable, [Unencodable, Unencodable])
        .collect()
        .await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().is_codec()));
}

async fn explicit_chunk_size_and_window() {
    let pool = pool(2).await;
    let stream = pool.map(square, 0..1_000u64).chunk_size(7).window(2);
    assert!(format!("{stream:?}").contains("chunk_size: 7"));
    let squares: Vec<u64> = stream.try_collect().await.unwrap();
    assert_eq!(squares.len(), 1_000);
    assert_eq!(pool.stats().completed, 1_000u64.div_ceil(7));
}

/// Adapts a tokio receiver into a Stream without pulling in tokio-stream.
fn tokio_stream_from(rx: tokio::sync::mpsc::Receiver<u64>) -> impl futures::Stream<Item = u64> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

async fn zero_byte_items_still_fill_a_bounded_chunk() {
    use futures::StreamExt;
    let pool = pool(1).await;
    // `()` encodes to nothing: a chunk of them must still stop growing.
    let first: Vec<_> = within(
        std::time::Duration::from_secs(20),
        "a map over zero-byte items",
        pool.map(pid, std::iter::repeat(()))
            .chunk_size(usize::MAX)
            .take(5)
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|r| r.is_ok()));
}
