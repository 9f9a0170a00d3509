//! Garbage on the pipe, oversized frames, foreign programs, other builds and
//! other protocol versions are typed errors; the pool recovers.

mod common;

use std::time::Duration;

use common::*;

fn main() {
    run(
        tests![
            garbage_from_a_task_fails_that_task_and_the_pool_recovers,
            an_oversized_frame_is_refused_without_allocating,
            a_frame_of_unknown_kind_is_a_protocol_error,
            a_worker_with_other_tasks_is_refused,
            a_worker_with_another_protocol_version_is_refused,
            a_program_that_exits_is_refused,
            a_program_that_never_answers_is_refused,
            a_worker_that_forgot_init_cannot_start_a_pool,
            an_argument_over_the_frame_limit_fails_at_submit,
            a_map_item_over_the_frame_limit_fails_alone,
            garbage_lengths_never_panic_the_pool,
            an_inherited_worker_marker_does_not_take_over_main,
            a_request_that_kills_every_worker_it_reaches_fails_after_three,
            a_skip_nobody_asked_for_is_a_protocol_error,
            an_initializer_over_the_frame_limit_fails_build,
            a_frame_that_stops_part_way_is_a_protocol_error,
            a_forged_answer_is_a_protocol_error_not_a_result,
            a_call_to_an_unknown_service_is_a_protocol_error,
            frames_a_worker_starts_are_routed_and_answered,
            a_worker_refuses_garbage_from_its_pool,
            a_result_over_the_frame_limit_is_a_typed_error,
            attachments_claiming_more_than_their_frame_are_a_protocol_error,
            a_frame_that_stops_part_way_through_an_attachment_is_a_protocol_error,
        ],
        roles,
    );
}

fn roles(role: &str) {
    assert_eq!(role, "ordinary_main");
    println!("main ran");
}

async fn one_worker_with_max_frame(bytes: u64) -> procpool::Pool {
    procpool::Pool::builder()
        .workers(1)
        .max_frame_size(bytes)
        .build()
        .await
        .unwrap()
}

async fn expect_protocol_error(bytes: Vec<u8>) -> procpool::Error {
    let pool = one_worker_with_max_frame(1 << 20).await;
    let victim = pool.submit(pid, ()).await.unwrap();
    let err = pool.submit(scribble, bytes).await.unwrap_err();
    assert!(err.is_protocol(), "{err}");
    assert_eq!(err.worker_pid(), Some(victim));
    assert!(err.task_name().unwrap().ends_with("scribble"));
    assert!(
        wait_gone(victim, Duration::from_secs(2)),
        "the broken worker is killed"
    );
    assert_eq!(pool.submit(square, 12).await.unwrap(), 144, "and replaced");
    err
}

async fn garbage_from_a_task_fails_that_task_and_the_pool_recovers() {
    expect_protocol_error(b"this is not a frame, just text on the protocol socket".to_vec()).await;
}

async fn an_oversized_frame_is_refused_without_allocating() {
    let mut frame = (1u64 << 50).to_le_bytes().to_vec();
    frame.extend_from_slice(&[2; 32]);
    expect_protocol_error(frame).await;
}

async fn a_frame_of_unknown_kind_is_a_protocol_error() {
    let mut frame = 4u64.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0x77, 1, 2, 3]);
    expect_protocol_error(frame).await;
}

async fn a_worker_with_other_tasks_is_refused() {
    let err = procpool::Pool::builder()
        .workers(2)
        .env(ALT_REGISTRY, "1")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string().contains("registered different tasks"),
        "{err}"
    );
}

async fn a_worker_with_another_protocol_version_is_refused() {
    let err = procpool::Pool::builder()
        .workers(1)
        .env(FAKE_WORKER, "99")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(err.to_string().contains("protocol version 99"), "{err}");
}

async fn a_program_that_exits_is_refused() {
    let err = procpool::Pool::builder()
        .workers(2)
        .worker_program("/bin/true")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string()
            .contains("exited with code 0 before its handshake"),
        "{err}"
    );
    let err = procpool::Pool::builder()
        .workers(1)
        .worker_program("/nonexistent/program")
        .build()
        .await
        .unwrap_err();
    assert!(
        err.is_spawn() && err.to_string().contains("/nonexistent/program"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

async fn a_program_that_never_answers_is_refused() {
    let err = procpool::Pool::builder()
        .workers(1)
        .worker_program("/bin/sleep")
        .worker_args(["30"])
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_spawn(), "{err}");
    assert!(
        err.to_string().contains("did not complete its handshake"),
        "{err}"
    );
}

async fn a_worker_that_forgot_init_cannot_start_a_pool() {
    // The worker's main skips init and tries to build a pool of its own; the
    // builder refuses (exit code 42 in this test program) instead of starting
    // workers without end.
    let err = procpool::Pool::builder()
        .workers(1)
        .env(SKIP_INIT, "1")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exited with code 42"), "{err}");
}

async fn an_argument_over_the_frame_limit_fails_at_submit() {
    let pool = one_worker_with_max_frame(1 << 20).await;
    // Over the socket buffer (not even fully writable) and just over the limit.
    for bytes in [32 << 20, 2 << 20] {
        let err = within(
            Duration::from_secs(10),
            "an oversized submit",
            pool.submit(len_of, "a".repeat(bytes)),
        )
        .await
        .unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(err.to_string().contains("max_frame_size"), "{err}");
    }
    assert_eq!(pool.submit(len_of, "a".repeat(1000)).await.unwrap(), 1000);
    let stats = pool.stats();
    assert_eq!(
        (stats.respawns, stats.failed),
        (0, 0),
        "no worker was hurt: {stats:?}"
    );
}

async fn a_map_item_over_the_frame_limit_fails_alone() {
    use futures::StreamExt;
    let pool = one_worker_with_max_frame(64 << 10).await;
    // Small items are batched into one chunk, which the big one would push
    // over the limit: the chunk is split and only the big item fails.
    let items = vec!["a".repeat(10), "b".repeat(200 << 10), "c".repeat(20)];
    let results: Vec<_> = within(
        Duration::from_secs(10),
        "a map with an oversized item",
        pool.map(len_of, items).chunk_size(3).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(results.len(), 3);
    assert_eq!(*results[0].as_ref().unwrap(), 10);
    assert!(results[1].as_ref().unwrap_err().is_too_large());
    assert_eq!(*results[2].as_ref().unwrap(), 20);
    assert_eq!(pool.stats().respawns, 0);
}

async fn garbage_lengths_never_panic_the_pool() {
    // (limit, claimed length): a length that overflows with the header, one
    // that overflows a reservation, one the machine cannot allocate.
    let cases = [
        (u64::MAX, u64::MAX),
        (u64::MAX, 1 << 63),
        (1 << 40, 512 << 30),
    ];
    for (limit, claimed) in cases {
        let pool = one_worker_with_max_frame(limit).await;
        let mut garbage = claimed.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[2; 32]);
        // A length under the limit is believed until the stream ends; the
        // task's own timeout is what ends the wait.
        let err = within(
            Duration::from_secs(10),
            "a task whose answer follows a garbage length",
            pool.submit(scribble, garbage)
                .timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
        assert!(err.is_protocol() || err.is_timeout(), "{claimed}: {err}");
        let next = within(
            Duration::from_secs(10),
            "the next task",
            pool.submit(square, 9),
        )
        .await;
        assert_eq!(
            next.unwrap(),
            81,
            "the pool recovered from a claimed {claimed}"
        );
    }
}

async fn an_inherited_worker_marker_does_not_take_over_main() {
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};
    // A shell that exported the marker, a stale pool's pid in it, an old
    // format; stdin /dev/null or a socket (as under inetd).
    let markers = ["v2,1048576,1", "v2,1048576,999999", "v1,1048576", "garbage"];
    for marker in markers {
        for socket_stdin in [false, true] {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            let stdin = if socket_stdin {
                Stdio::from(OwnedFd::from(theirs))
            } else {
                Stdio::null()
            };
            let mut child = Command::new(std::env::current_exe().unwrap())
                .env("PROCPOOL_WORKER", marker)
                .env(ROLE, "ordinary_main")
                .stdin(stdin)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let output = within(
                Duration::from_secs(10),
                "a program that inherited the worker marker",
                tokio::task::spawn_blocking(move || {
                    let mut out = String::new();
                    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out)
                        .unwrap();
                    (child.wait().unwrap(), out)
                }),
            )
            .await
            .unwrap();
            drop(ours);
            assert!(
                output.0.success() && output.1.contains("main ran"),
                "with PROCPOOL_WORKER={marker}, socket stdin {socket_stdin}: {output:?}"
            );
        }
    }
}

async fn a_request_that_kills_every_worker_it_reaches_fails_after_three() {
    // Every worker can hold 16 MiB more than it uses at start; a 256 MiB
    // argument (under the frame limit) kills each one as it arrives, long
    // before the pool can have written all of it (with 64 MiB, a worker
    // that happened to take in the whole frame before dying made it look
    // delivered: a crash of the task, not a failed delivery).
    let pool = procpool::Pool::builder()
        .workers(1)
        .stderr(procpool::Redirect::Null)
        .initializer(cap_address_space, 16 << 20)
        .build()
        .await
        .unwrap();
    let err = within(
        Duration::from_secs(20),
        "a request no worker survives",
        pool.submit(len_of, "x".repeat(256 << 20)),
    )
    .await
    .unwrap_err();
    assert!(err.is_worker_died(), "{err}");
    assert!(err.to_string().contains("sent to 3 workers"), "{err}");
    assert_eq!(pool.submit(len_of, "x".repeat(10)).await.unwrap(), 10);
}

async fn a_skip_nobody_asked_for_is_a_protocol_error() {
    // A well-formed SKIPPED frame, written by a task, naming its own
    // request (the worker's second: `expect_protocol_error` sends one
    // before): taken as its answer, the task would seem cancelled.
    let mut forged = 9u64.to_le_bytes().to_vec();
    forged.push(0x05);
    forged.extend_from_slice(&2u64.to_le_bytes());
    let err = expect_protocol_error(forged).await;
    assert!(err.to_string().contains("not cancelled"), "{err}");
}

async fn an_initializer_over_the_frame_limit_fails_build() {
    let err = procpool::Pool::builder()
        .workers(1)
        .max_frame_size(1024)
        .initializer(set_greeting, "x".repeat(4096))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_too_large(), "{err}");
}

async fn a_frame_that_stops_part_way_is_a_protocol_error() {
    // Claims 100 bytes, sends 1: the task's real answer is swallowed as the
    // rest of the frame, and the worker idles. No timeout is set: the stall
    // itself must end the wait.
    let mut truncated = 100u64.to_le_bytes().to_vec();
    truncated.push(2);
    expect_stall(truncated, "a task behind a truncated frame").await;
}

/// Has a task write `bytes` (a frame that stops part-way) to its socket:
/// its worker must be found stalled, with no timeout set, and the pool
/// still shut down.
async fn expect_stall(bytes: Vec<u8>, what: &str) {
    let pool = one_worker_with_max_frame(1 << 20).await;
    let err = within(Duration::from_secs(20), what, pool.submit(scribble, bytes))
        .await
        .unwrap_err();
    assert!(err.is_protocol(), "{err}");
    assert!(err.to_string().contains("part-way"), "{err}");
    within(
        Duration::from_secs(20),
        "shutdown after a stall",
        pool.shutdown(),
    )
    .await;
}

async fn a_forged_answer_is_a_protocol_error_not_a_result() {
    // A well-formed OK answer, written by a task to its own socket, for a
    // request number it does not know: taken as an answer, it would hand 999
    // to this task and this task's own answer to the next caller.
    let mut body = vec![0x02];
    body.extend_from_slice(&0u64.to_le_bytes()); // seq
    body.extend_from_slice(&0u64.to_le_bytes()); // run time
    body.extend_from_slice(&[0xfb, 0xe7, 0x03]); // bincode 999u64
    let mut forged = (body.len() as u64).to_le_bytes().to_vec();
    forged.extend_from_slice(&body);
    expect_protocol_error(forged).await;
}

async fn a_call_to_an_unknown_service_is_a_protocol_error() {
    // CALL (0x30), call id 1, service 0xEE.
    let mut forged = 10u64.to_le_bytes().to_vec();
    forged.push(0x30);
    forged.extend_from_slice(&1u64.to_le_bytes());
    forged.push(0xEE);
    let err = expect_protocol_error(forged).await;
    assert!(err.to_string().contains("unknown service"), "{err}");
}

async fn frames_a_worker_starts_are_routed_and_answered() {
    // Eight threads of one task call the pool at once, with payloads from
    // 1 KiB to 256 KiB: every reply comes back whole, to its own caller,
    // while other tasks' requests and answers share the connection.
    let pool = procpool::Pool::builder().workers(2).build().await.unwrap();
    let busy = pool.map(square, 0..20_000u64);
    for bytes in [1024, 64 * 1024, 256 * 1024] {
        let intact = pool.submit(echo_calls, (8, 20, bytes)).await.unwrap();
        assert_eq!(intact, 8 * 20, "calls of {bytes} bytes");
    }
    use futures::TryStreamExt;
    let squares: Vec<u64> = busy.try_collect().await.unwrap();
    assert_eq!(squares[19_999], 19_999 * 19_999);
    assert_eq!(pool.stats().respawns, 0, "no worker was replaced");
    pool.shutdown().await;
}

async fn a_worker_refuses_garbage_from_its_pool() {
    // Play the pool: start this binary as a worker on a socket we made,
    // send START, read its HELLO, then something that is not our protocol.
    // The worker must end itself (exit 137, its teardown) and say why.
    let garbage: [(&str, Vec<Vec<u8>>); 4] = [
        ("unknown kind", vec![frame(0x77, 1, b"")]),
        ("ids must grow", vec![request(5), request(3)]),
        ("never came", vec![frame(0x07, 42, b"")]),
        // Channel data for a channel it holds no endpoint of.
        ("never held", vec![frame(0x49, 99, &[1])]),
    ];
    for (complaint, frames) in garbage {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut worker = std::process::Command::new(std::env::current_exe().unwrap())
            .env(
                "PROCPOOL_WORKER",
                format!("v2,1048576,{}", std::process::id()),
            )
            .stdin(std::os::fd::OwnedFd::from(theirs))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::{Read, Write};
        // START: no log records, no memory cap, no cancel grace.
        ours.write_all(&frame(0x20, 0, &[0; 17])).unwrap();
        let mut len = [0u8; 8];
        ours.read_exact(&mut len).unwrap();
        let mut hello = vec![0; u64::from_le_bytes(len) as usize];
        ours.read_exact(&mut hello).unwrap();
        assert_eq!(hello[0], 0x10, "HELLO");
        for frame in frames {
            ours.write_all(&frame).unwrap();
        }
        let status = worker.wait().unwrap();
        let mut stderr = String::new();
        worker
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(137), "{complaint}: {stderr}");
        assert!(stderr.contains(complaint), "{complaint}: {stderr}");
    }
}

fn frame(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = ((9 + payload.len()) as u64).to_le_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A REQUEST for task 0 (`square`) with id `id` and argument 2.
fn request(id: u64) -> Vec<u8> {
    let mut payload = 0u32.to_le_bytes().to_vec();
    payload.push(2); // bincode 2u64
    frame(0x01, id, &payload)
}

async fn a_result_over_the_frame_limit_is_a_typed_error() {
    let pool = one_worker_with_max_frame(1 << 20).await;
    let worker = pool.submit(pid, ()).await.unwrap();
    let err = pool.submit(big_result, 2 << 20).await.unwrap_err();
    assert!(err.is_too_large(), "{err}");
    assert!(err.to_string().contains("result"), "{err}");
    assert_eq!(err.worker_pid(), Some(worker));
    // The worker did not send it, so it is not broken: it lives on.
    assert_eq!(pool.submit(pid, ()).await.unwrap(), worker);
    let Blob(small) = pool.submit(big_result, 1000).await.unwrap();
    assert_eq!(small.len(), 1000);
}

/// The head of an `OK` frame flagged with attachments (kind `0x82`) of
/// `lens` bytes, whose body claims `body_len` bytes.
fn attached_head(body_len: u64, lens: &[u64]) -> Vec<u8> {
    let mut head = body_len.to_le_bytes().to_vec();
    head.push(0x02 | 0x80);
    head.extend_from_slice(&0u64.to_le_bytes());
    head.extend_from_slice(&(lens.len() as u32).to_le_bytes());
    lens.iter()
        .for_each(|len| head.extend_from_slice(&len.to_le_bytes()));
    head
}

async fn attachments_claiming_more_than_their_frame_are_a_protocol_error() {
    // A small frame whose table claims a terabyte: refused on reading the
    // table, before anything is allocated for it.
    let err = expect_protocol_error(attached_head(21, &[1 << 40])).await;
    assert!(err.to_string().contains("claim more"), "{err}");
    let err = expect_protocol_error(attached_head(1 << 19, &[u64::MAX, 2])).await;
    assert!(err.to_string().contains("claim more"), "{err}");
}

async fn a_frame_that_stops_part_way_through_an_attachment_is_a_protocol_error() {
    // An attachment of 100,000 bytes of which 10 come: the task's real
    // answer is swallowed as more of it, and then nothing. The stall
    // itself must end the wait, as for a frame cut short before its
    // attachments.
    let mut cut = attached_head(9 + 4 + 8 + 100_000, &[100_000]);
    cut.extend_from_slice(&[7; 10]);
    expect_stall(cut, "a task behind a truncated attachment").await;
}
