//! The hub's side of the channel protocol, driven with hand-made frames
//! from a fake worker connection (no processes).

use std::task::{Context, Poll};

use futures::task::noop_waker;

use super::peer::{Connection, Death};
use super::{Receiver, Sender, channel};
use crate::error::Exit;
use crate::wire::channel::{self as frames, Role};
use crate::wire::conn::Body;
use crate::wire::frame::{HEADER_LEN, Parts};

fn route(conn: &mut Connection, frame: &[u8]) -> Result<(), String> {
    conn.route(Body {
        buf: frame.to_vec(),
        start: HEADER_LEN,
        attachments: Vec::new(),
    })
}

fn piece(id: u64, flags: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frames::push_piece(&mut out, frames::SEND, id, flags, bytes);
    out
}

/// The frames the hub has for the fake worker: (kind, payload).
fn outgoing(conn: &Connection) -> Vec<(u8, Vec<u8>)> {
    let waker = noop_waker();
    let bytes = conn
        .take_outgoing(&mut Context::from_waker(&waker), usize::MAX)
        .0
        .unwrap_or_default();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u64::from_le_bytes(rest[..HEADER_LEN].try_into().unwrap()) as usize;
        let parts = Parts::of(&rest[HEADER_LEN..HEADER_LEN + len]).unwrap();
        out.push((parts.kind, parts.payload.to_vec()));
        rest = &rest[HEADER_LEN + len..];
    }
    out
}

fn poll_now<T>(rx: &Receiver<T>) -> Poll<Result<Vec<u8>, crate::Error>> {
    let super::end::End::Local(local) = &rx.end else {
        unreachable!()
    };
    let waker = noop_waker();
    local
        .shared
        .poll_recv(&mut Context::from_waker(&waker))
        .map(|message| message.map(|message| message.bytes().to_vec()))
}

fn id_of<T>(tx: &Sender<T>) -> u64 {
    tx.end.id()
}

/// A fake worker's connection that has announced an endpoint of `role`
/// on the channel of `tx`.
fn opened<T>(tx: &Sender<T>, role: Role) -> (u64, Connection) {
    let id = id_of(tx);
    let mut conn = Connection::new(1 << 20);
    route(&mut conn, &frames::control(frames::OPEN, id, &[role as u8])).unwrap();
    (id, conn)
}

#[test]
fn a_worker_sends_only_with_credit_and_only_whole_messages() {
    let (tx, rx) = channel::<u64>(4);
    let (id, mut conn) = opened(&tx, Role::Sender);
    let err = route(&mut conn, &piece(id, frames::LAST, b"x")).unwrap_err();
    assert!(err.contains("without credit"), "{err}");
    route(&mut conn, &frames::want(id, Role::Sender, 256)).unwrap();
    let grant = outgoing(&conn);
    assert_eq!(
        grant,
        [(frames::CREDIT, 4u32.to_le_bytes().to_vec())],
        "the room there is"
    );
    route(&mut conn, &piece(id, 0, b"hel")).unwrap();
    assert!(poll_now(&rx).is_pending(), "half a message is no message");
    route(&mut conn, &piece(id, frames::LAST, b"lo")).unwrap();
    assert!(matches!(poll_now(&rx), Poll::Ready(Ok(m)) if m == b"hello"));
    // Dying part-way: nothing of it, and the news in its place.
    route(&mut conn, &piece(id, 0, b"part")).unwrap();
    let mut conn = conn;
    conn.died(Death {
        pid: 7,
        exit: Exit::Signal(9),
        task: Some("app::task"),
        stopped: false,
    });
    drop(conn);
    drop(tx);
    let Poll::Ready(Err(err)) = poll_now(&rx) else {
        panic!("the death is reported")
    };
    assert!(err.is_peer_died() && err.worker_pid() == Some(7), "{err}");
    let Poll::Ready(Err(end)) = poll_now(&rx) else {
        panic!("then the end")
    };
    assert!(end.is_closed(), "{end}");
}

#[test]
fn a_worker_receives_only_what_it_asked_for_and_gives_back_only_that() {
    let (tx, rx) = channel::<u64>(4);
    let id = id_of(&tx);
    let mut conn = Connection::new(1 << 20);
    futures::executor::block_on(tx.send(1)).unwrap();
    let err = route(&mut conn, &frames::want(id, Role::Receiver, 1)).unwrap_err();
    assert!(err.contains("does not hold"), "{err}");
    route(
        &mut conn,
        &frames::control(frames::OPEN, id, &[Role::Receiver as u8]),
    )
    .unwrap();
    assert!(outgoing(&conn).is_empty(), "nothing pushed unasked");
    let err = route(&mut conn, &frames::give_back(id, b"forged", 1 << 20, false)).unwrap_err();
    assert!(err.contains("never sent"), "{err}");
    route(&mut conn, &frames::want(id, Role::Receiver, 1)).unwrap();
    let data = outgoing(&conn);
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].0, frames::DATA);
    // Given back: the parent's own receiver gets it.
    let message = data[0].1[1..].to_vec();
    route(&mut conn, &frames::give_back(id, &message, 1 << 20, false)).unwrap();
    let got = futures::executor::block_on(rx.recv()).unwrap();
    assert_eq!(got, 1);
    let err = route(&mut conn, &frames::want(id, Role::Receiver, 2_000)).unwrap_err();
    assert!(err.contains("receives waiting"), "{err}");
}

#[test]
fn frames_for_channels_that_do_not_exist_are_refused() {
    let mut conn = Connection::new(1 << 20);
    let err = route(&mut conn, &frames::control(frames::OPEN, u64::MAX, &[0])).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    // A late goodbye is not an error.
    route(&mut conn, &frames::control(frames::CLOSE, u64::MAX, &[0])).unwrap();
}

#[test]
fn the_last_receiver_gone_tells_worker_senders_and_fails_local_ones() {
    let (tx, rx) = channel::<u64>(1);
    let (_, conn) = opened(&tx, Role::Sender);
    drop(rx);
    assert_eq!(
        outgoing(&conn),
        [(frames::CLOSED, vec![Role::Receiver as u8])]
    );
    let err = futures::executor::block_on(tx.send(1)).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn a_forget_voids_the_workers_credit_and_is_answered_after_everything_else() {
    let (tx, _rx) = channel::<u64>(4);
    let (id, mut conn) = opened(&tx, Role::Sender);
    route(&mut conn, &frames::want(id, Role::Sender, 256)).unwrap();
    assert_eq!(outgoing(&conn)[0].0, frames::CREDIT);
    let forget = frames::control(frames::FORGET, id, &[]);
    let err = route(&mut conn, &forget).unwrap_err();
    assert!(err.contains("while it holds"), "{err}");
    route(
        &mut conn,
        &frames::control(frames::CLOSE, id, &[Role::Sender as u8]),
    )
    .unwrap();
    route(&mut conn, &forget).unwrap();
    assert_eq!(outgoing(&conn), [(frames::FORGOTTEN, vec![])]);
    // Opened again, it starts with no credit: what it had is void.
    route(
        &mut conn,
        &frames::control(frames::OPEN, id, &[Role::Sender as u8]),
    )
    .unwrap();
    let err = route(&mut conn, &piece(id, frames::LAST, b"x")).unwrap_err();
    assert!(err.contains("without credit"), "{err}");
}

#[test]
fn a_forget_of_a_channel_already_gone_is_answered() {
    let mut conn = Connection::new(1 << 20);
    route(&mut conn, &frames::control(frames::FORGET, u64::MAX, &[])).unwrap();
    assert_eq!(outgoing(&conn), [(frames::FORGOTTEN, vec![])]);
}

#[test]
fn what_a_worker_gives_back_keeps_its_order_ahead_of_the_rest() {
    let (tx, rx) = channel::<u64>(8);
    let id = id_of(&tx);
    let mut conn = Connection::new(1 << 20);
    for i in 1..=4 {
        futures::executor::block_on(tx.send(i)).unwrap();
    }
    route(
        &mut conn,
        &frames::control(frames::OPEN, id, &[Role::Receiver as u8]),
    )
    .unwrap();
    route(&mut conn, &frames::want(id, Role::Receiver, 2)).unwrap();
    let sent: Vec<Vec<u8>> = outgoing(&conn)
        .into_iter()
        .map(|(_, payload)| payload[1..].to_vec())
        .collect();
    assert_eq!(sent.len(), 2);
    // Oldest first: the first at once, the second as it came, after the
    // receiver closed.
    route(&mut conn, &frames::give_back(id, &sent[0], 1 << 20, false)).unwrap();
    route(
        &mut conn,
        &frames::control(frames::CLOSE, id, &[Role::Receiver as u8]),
    )
    .unwrap();
    route(&mut conn, &frames::give_back(id, &sent[1], 1 << 20, false)).unwrap();
    let got: Vec<u64> = (0..4)
        .map(|_| futures::executor::block_on(rx.recv()).unwrap())
        .collect();
    assert_eq!(got, [1, 2, 3, 4]);
}
