//! Out-of-band buffers: `procpool::Buffer` nested anywhere in arguments and
//! results, and a plain `Vec<u8>` as a whole argument or result, go beside
//! the encoding and come back intact, at every size from nothing to 1 GiB,
//! through every way a task is run.

mod common;

use common::*;
use futures::StreamExt;
use procpool::{Buffer, Bytes, Pool};

fn main() {
    run(
        tests![
            buffers_nested_in_a_struct_round_trip,
            every_size_round_trips_both_ways,
            a_gibibyte_round_trips,
            typed_buffers_carry_numbers,
            map_items_and_results_carry_buffers_inline,
            a_process_and_an_initializer_take_buffers,
            buffers_cross_a_channel_as_bytes,
            a_result_over_the_frame_limit_is_a_typed_error,
            a_crash_mid_request_retries_with_the_same_buffers,
            a_worker_killed_mid_attachment_fails_its_task_alone,
        ],
        roles,
    );
}

fn roles(role: &str) {
    panic!("no roles here: {role}");
}

async fn one_worker_with_max_frame(bytes: u64) -> Pool {
    Pool::builder()
        .workers(1)
        .max_frame_size(bytes)
        .build()
        .await
        .unwrap()
}

/// `n` bytes that differ from their reverse.
fn pattern(n: usize) -> Vec<u8> {
    pattern_vec(n as u64)
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

async fn buffers_nested_in_a_struct_round_trip() {
    let pool = Pool::builder().workers(1).build().await.unwrap();
    // Small ones go inside the encoding, large ones beside it: both here.
    let frames = Frames {
        name: "frames".into(),
        pixels: pattern(3 << 20).into(),
        samples: (0..10_000).map(|i| i as f32 / 3.0).collect(),
        more: vec![pattern(5).into(), Bytes::new(), pattern(100_000).into()],
        maybe: Some((0..50_000u64).collect()),
    };
    let back = pool.submit(reverse_frames, frames.clone()).await.unwrap();
    assert_eq!(back.name, "semarf");
    assert!(back.pixels[..] == reversed(&frames.pixels)[..]);
    assert!(back.samples.iter().eq(frames.samples.iter().rev()));
    for (got, sent) in back.more.iter().zip(&frames.more) {
        assert!(got[..] == reversed(sent)[..]);
    }
    assert!(
        back.maybe
            .unwrap()
            .iter()
            .eq(frames.maybe.unwrap().iter().rev())
    );
    pool.shutdown().await;
}

async fn every_size_round_trips_both_ways() {
    let pool = Pool::builder().workers(2).build().await.unwrap();
    // Around the size where buffers start to go beside the encoding.
    for n in [
        0,
        1,
        16 * 1024 - 1,
        16 * 1024,
        16 * 1024 + 1,
        1 << 20,
        5_000_007,
    ] {
        let sent = pattern(n);
        let as_bytes = pool.submit(reverse_bytes, sent.clone().into()).await;
        assert!(
            as_bytes.unwrap()[..] == reversed(&sent)[..],
            "{n} bytes as Bytes"
        );
        let as_vec = pool.submit(reverse_vec, sent.clone()).await;
        assert!(as_vec.unwrap() == reversed(&sent), "{n} bytes as a Vec<u8>");
        let made = pool.submit(pattern_vec, n as u64).await.unwrap();
        assert_eq!(
            pool.submit(checksum_vec, made).await.unwrap(),
            checksum_vec(sent)
        );
    }
    pool.shutdown().await;
}

async fn a_gibibyte_round_trips() {
    let pool = one_worker_with_max_frame(2 << 30).await;
    let sent = pattern(1 << 30);
    let expected = checksum_vec(reversed(&sent));
    let back = pool.submit(reverse_vec, sent).await.unwrap();
    assert_eq!(back.len(), 1 << 30);
    assert_eq!(checksum_vec(back), expected);
    pool.shutdown().await;
}

async fn typed_buffers_carry_numbers() {
    let pool = Pool::builder().workers(2).build().await.unwrap();
    // The seeds' benchmark task: 1,000 cubes per call, many calls at once.
    let handles: Vec<_> = (0..200).map(|_| pool.submit(cubes, 1_000)).collect();
    for handle in handles {
        let cubed: Buffer<u64> = handle.await.unwrap();
        assert_eq!(cubed.len(), 1_000);
        assert!(
            cubed
                .iter()
                .enumerate()
                .all(|(i, &c)| c == (i as u64).pow(3))
        );
    }
    pool.shutdown().await;
}

async fn map_items_and_results_carry_buffers_inline() {
    let pool = Pool::builder().workers(2).build().await.unwrap();
    let items: Vec<Bytes> = (0..64).map(|i| pattern(i * 1_000).into()).collect();
    let back: Vec<Bytes> = pool
        .map(reverse_bytes, items.clone())
        .map(Result::unwrap)
        .collect()
        .await;
    for (got, sent) in back.iter().zip(&items) {
        assert!(got[..] == reversed(sent)[..]);
    }
    let vecs: Vec<Vec<u8>> = (0..64).map(|i| pattern(i * 1_000)).collect();
    let sums: Vec<u64> = pool
        .map(checksum_vec, vecs.clone())
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(sums, vecs.into_iter().map(checksum_vec).collect::<Vec<_>>());
    pool.shutdown().await;
}

async fn a_process_and_an_initializer_take_buffers() {
    let sent = pattern(1 << 20);
    let back = procpool::spawn(reverse_vec, sent.clone()).await.unwrap();
    assert!(back == reversed(&sent));
    let back = procpool::spawn(reverse_bytes, sent.clone().into())
        .await
        .unwrap();
    assert!(back[..] == reversed(&sent)[..]);
    // An initializer's argument and result take the same path.
    let pool = Pool::builder()
        .workers(1)
        .initializer(reverse_vec, sent.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    pool.shutdown().await;
}

async fn buffers_cross_a_channel_as_bytes() {
    let pool = Pool::builder().workers(1).build().await.unwrap();
    let (tx, mut rx) = procpool::channel::<Bytes>(4);
    let sending = pool.submit(bytes_over_a_channel, (8, 100_000, tx));
    for i in 0..8u64 {
        let got = rx.next().await.unwrap().unwrap();
        assert!(
            got.iter()
                .enumerate()
                .all(|(j, &b)| b == (i + j as u64) as u8)
        );
    }
    assert_eq!(sending.await.unwrap(), 8);
    pool.shutdown().await;
}

async fn a_result_over_the_frame_limit_is_a_typed_error() {
    // The attachment counts against the limit like any other byte.
    let pool = one_worker_with_max_frame(1 << 20).await;
    let err = pool.submit(pattern_vec, 2 << 20).await.unwrap_err();
    assert!(err.to_string().contains("maximum frame size"), "{err}");
    let err = pool
        .submit(reverse_vec, pattern(2 << 20))
        .await
        .unwrap_err();
    assert!(err.is_too_large(), "{err}");
    assert_eq!(
        pool.submit(checksum_vec, pattern(100_000)).await.unwrap(),
        { checksum_vec(pattern(100_000)) }
    );
    pool.shutdown().await;
}

async fn a_crash_mid_request_retries_with_the_same_buffers() {
    // The first worker to run it aborts; the retry gets the same bytes.
    let flag = format!("/tmp/procpool-buffers-{}", std::process::id());
    let pool = Pool::builder().workers(1).retries(1).build().await.unwrap();
    let sent = pattern(2 << 20);
    let sum = pool.submit(
        checksum_after_first_abort,
        (flag.clone(), sent.clone().into()),
    );
    assert_eq!(sum.await.unwrap(), checksum_vec(sent));
    assert!(std::fs::metadata(&flag).is_ok(), "it did abort once");
    let _ = std::fs::remove_file(&flag);
    pool.shutdown().await;
}

async fn a_worker_killed_mid_attachment_fails_its_task_alone() {
    let pool = one_worker_with_max_frame(2 << 30).await;
    let err = pool
        .submit(killed_while_answering, 1 << 30)
        .await
        .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    // The half-read attachment is gone with its worker; the next is whole.
    let sent = pattern(3 << 20);
    assert!(pool.submit(reverse_vec, sent.clone()).await.unwrap() == reversed(&sent));
    pool.shutdown().await;
}
