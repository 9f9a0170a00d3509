//! The floor that procpool is measured against: the channel the pool uses,
//! with no pool logic. A Unix socketpair (4 MiB buffers) to this same
//! executable, re-executed in a tiny echo mode (its end of the socket is its
//! stdin), driven from tokio in the parent; and the same over plain pipes.
//! Shared by `benches/compare.rs` and `benches/round_trip.rs`; each bench's
//! `main` calls [`serve_if_child`] first.

// Each bench uses part of this module.
#![allow(dead_code)]

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The environment variable that makes a bench binary a floor child.
const CHILD_MODE: &str = "PROCPOOL_BENCH_FLOOR";
/// Socket buffers, as the pool sets them.
const SOCKET_BUFFER: libc::c_int = 4 << 20;
const IO_BUFFER: usize = 64 << 10;

/// In a floor child, serves frames and never returns; otherwise returns.
pub fn serve_if_child() {
    if let Ok(mode) = std::env::var(CHILD_MODE) {
        floor_child(&mode);
    }
}

// ---- the floor: parent side ----------------------------------------------

/// A re-executed child that echoes length-prefixed frames (an 8-byte
/// little-endian length, then the payload), driven from tokio.
pub struct Echo<R, W> {
    child: Child,
    reader: tokio::io::BufReader<R>,
    writer: W,
    /// The last payload received.
    buf: Vec<u8>,
}

pub type SocketEcho = Echo<tokio::net::unix::OwnedReadHalf, tokio::net::unix::OwnedWriteHalf>;
pub type PipeEcho = Echo<ChildStdout, ChildStdin>;

fn child_command(mode: &str) -> Command {
    let mut command = Command::new("/proc/self/exe");
    command.env(CHILD_MODE, mode).kill_on_drop(true);
    command
}

impl SocketEcho {
    /// A child whose stdin is its end of a socketpair; `mode` is "echo"
    /// (until EOF, one write per burst of requests), "each" (until EOF, one
    /// write per frame) or "once" (answer one frame, then exit).
    pub fn start(mode: &str) -> SocketEcho {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        for fd in [ours.as_raw_fd(), theirs.as_raw_fd()] {
            set_buffers(fd, SOCKET_BUFFER);
        }
        let child = child_command(mode)
            .stdin(OwnedFd::from(theirs))
            .spawn()
            .expect("spawn a floor child");
        ours.set_nonblocking(true).expect("non-blocking socket");
        let (reader, writer) = tokio::net::UnixStream::from_std(ours)
            .expect("a tokio socket")
            .into_split();
        Echo::new(child, reader, writer)
    }
}

impl PipeEcho {
    /// A child that echoes frames from its stdin to its stdout (plain pipes).
    pub fn start() -> PipeEcho {
        let mut child = child_command("pipes")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a pipe floor child");
        let writer = child.stdin.take().expect("piped stdin");
        let reader = child.stdout.take().expect("piped stdout");
        Echo::new(child, reader, writer)
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Echo<R, W> {
    fn new(child: Child, reader: R, writer: W) -> Echo<R, W> {
        Echo {
            child,
            reader: tokio::io::BufReader::with_capacity(IO_BUFFER, reader),
            writer,
            buf: Vec::new(),
        }
    }

    /// The payload of the last frame echoed.
    pub fn last_echo(&self) -> &[u8] {
        &self.buf
    }

    /// Sends one whole frame (one write) and returns the payload echoed.
    pub async fn round_trip(&mut self, frame: &[u8]) -> &[u8] {
        self.writer.write_all(frame).await.expect("floor: write");
        self.read_frame().await
    }

    /// Ping-pong of one 8-byte frame holding `value`.
    pub async fn ping(&mut self, value: u64) -> u64 {
        let back = self.round_trip(&small_frame(value)).await;
        u64::from_le_bytes(back.try_into().expect("an 8-byte echo"))
    }

    async fn read_frame(&mut self) -> &[u8] {
        let mut len = [0u8; 8];
        self.reader.read_exact(&mut len).await.expect("floor: read");
        self.buf.resize(u64::from_le_bytes(len) as usize, 0);
        self.reader
            .read_exact(&mut self.buf)
            .await
            .expect("floor: read");
        &self.buf
    }

    /// Echo of `n` 8-byte frames, written `batch` frames per write call while
    /// the answers are read concurrently: msgs/s.
    pub async fn pipelined(&mut self, n: u64, batch_frames: u64) -> f64 {
        let start = Instant::now();
        let writer = &mut self.writer;
        let send = async move {
            let mut batch = Vec::with_capacity(batch_frames as usize * 16);
            for first in (0..n).step_by(batch_frames as usize) {
                batch.clear();
                for i in first..(first + batch_frames).min(n) {
                    batch.extend_from_slice(&small_frame(i));
                }
                writer.write_all(&batch).await.expect("floor: write");
            }
        };
        let reader = &mut self.reader;
        let receive = async move {
            let mut answer = [0u8; 16];
            for i in 0..n {
                reader.read_exact(&mut answer).await.expect("floor: read");
                assert_eq!(answer, small_frame(i), "W2 floor: wrong echo");
            }
        };
        futures::join!(send, receive);
        n as f64 / start.elapsed().as_secs_f64()
    }

    /// One way, child to parent: asks a "stream" child for `count` frames of
    /// `size` bytes (each its own write) and reads them all: the elapsed
    /// seconds.
    pub async fn stream(&mut self, count: u64, size: u64) -> f64 {
        let start = Instant::now();
        let mut request = 16u64.to_le_bytes().to_vec();
        request.extend_from_slice(&count.to_le_bytes());
        request.extend_from_slice(&size.to_le_bytes());
        self.writer.write_all(&request).await.expect("floor: write");
        let mut reader = tokio::io::BufReader::with_capacity(IO_BUFFER, &mut self.reader);
        for _ in 0..count {
            let mut len = [0u8; 8];
            reader.read_exact(&mut len).await.expect("floor: read");
            assert_eq!(u64::from_le_bytes(len), size, "stream floor: wrong frame");
            self.buf.resize(size as usize, 0);
            reader.read_exact(&mut self.buf).await.expect("floor: read");
        }
        start.elapsed().as_secs_f64()
    }

    /// Hangs up (the child exits at EOF) and reaps the child.
    pub async fn close(self) {
        let Echo {
            mut child,
            reader,
            writer,
            ..
        } = self;
        drop((reader, writer));
        let _ = child.wait().await;
    }
}

pub fn small_frame(value: u64) -> [u8; 16] {
    let mut frame = [0u8; 16];
    frame[..8].copy_from_slice(&8u64.to_le_bytes());
    frame[8..].copy_from_slice(&value.to_le_bytes());
    frame
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn set_buffers(fd: i32, size: libc::c_int) {
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: fd is an open socket for the whole call; the value points at
        // a live c_int of the length passed.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(ret, 0, "setsockopt: {}", std::io::Error::last_os_error());
    }
}

// ---- the floor: child side -----------------------------------------------

/// When a floor child writes its answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Once no further request is buffered: one write per burst.
    PerBurst,
    /// One write per frame.
    PerFrame,
    /// One frame, then exit.
    Once,
}

/// Runs a floor child: echoes frames from stdin (a socket, or a pipe in
/// "pipes" mode, answered on stdout) until EOF, or just one in "once" mode.
pub fn floor_child(mode: &str) -> ! {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("stdin");
    if mode == "stream" {
        stream_frames(std::os::unix::net::UnixStream::from(stdin));
    }
    let answer = match mode {
        "echo" | "pipes" => Answer::PerBurst,
        "each" => Answer::PerFrame,
        "once" => Answer::Once,
        other => panic!("unknown {CHILD_MODE} mode {other:?}"),
    };
    if mode == "pipes" {
        let stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("stdout");
        serve_frames(
            std::fs::File::from(stdin),
            std::fs::File::from(stdout),
            answer,
        )
    } else {
        let socket = std::os::unix::net::UnixStream::from(stdin);
        let writer = socket.try_clone().expect("socket clone");
        serve_frames(socket, writer, answer)
    }
}

/// "stream" mode: for each request (count `u64`, size `u64`), writes
/// `count` frames of `size` bytes, one write each; exits at EOF.
fn stream_frames(mut socket: std::os::unix::net::UnixStream) -> ! {
    loop {
        let mut request = [0u8; 24];
        if socket.read_exact(&mut request).is_err() {
            std::process::exit(0);
        }
        let count = u64::from_le_bytes(request[8..16].try_into().expect("8 bytes"));
        let size = u64::from_le_bytes(request[16..].try_into().expect("8 bytes"));
        let message = frame(&vec![7u8; size as usize]);
        for _ in 0..count {
            socket.write_all(&message).expect("floor child: write");
        }
    }
}

fn serve_frames(input: impl Read, output: impl Write, answer: Answer) -> ! {
    let mut reader = BufReader::with_capacity(IO_BUFFER, input);
    let mut writer = BufWriter::with_capacity(IO_BUFFER, output);
    let mut payload = Vec::new();
    loop {
        let mut len = [0u8; 8];
        if reader.read_exact(&mut len).is_err() {
            std::process::exit(0);
        }
        payload.resize(u64::from_le_bytes(len) as usize, 0);
        reader.read_exact(&mut payload).expect("floor child: read");
        writer.write_all(&len).expect("floor child: write");
        writer.write_all(&payload).expect("floor child: write");
        if answer != Answer::PerBurst || reader.buffer().is_empty() {
            writer.flush().expect("floor child: flush");
        }
        if answer == Answer::Once {
            std::process::exit(0);
        }
    }
}
