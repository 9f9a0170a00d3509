//! What starting a worker through a launcher command adds to a local start:
//! the command itself, the launcher's stderr (relayed, and its tail kept for
//! error messages), the stdio magic that tells a worker's first bytes from a
//! remote shell's chatter, and what a launcher's exit code means.
//!
//! The launcher gets the pool's end of the socketpair as both its stdin and
//! its stdout, so the pool's side of the connection is the same socket as
//! for a local worker (one transport, the local path untouched); only the
//! remote worker sees pipes, and bridges them (`worker::stdio`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use super::local::RemoteCommand;
use super::options::Redirect;
use crate::wire::hello::STDIO_MAGIC;

/// How much of a launcher's stderr is kept for an error message.
const TAIL_BYTES: usize = 2048;
/// How long an error message waits for the rest of a dead launcher's stderr.
const TAIL_WAIT: Duration = Duration::from_millis(300);
/// How much of what came instead of the magic is shown.
const NOISE_BYTES: usize = 512;
/// How long to wait for more of it once the magic is known to be missing.
const NOISE_WAIT: Duration = Duration::from_millis(200);

/// The launcher command, with `socket` as its stdin and stdout, and its
/// stderr a pipe for [`Tail::relay`].
///
/// # Errors
///
/// If the socket cannot be duplicated.
pub(super) fn command(remote: &RemoteCommand, socket: OwnedFd) -> std::io::Result<Command> {
    let (program, args) = remote.argv.split_first().expect("a launcher has a command");
    let mut command = Command::new(program);
    command
        .args(args)
        .stdout(Stdio::from(socket.try_clone()?))
        .stdin(Stdio::from(socket))
        // Relayed (see `Tail`, which honours `Redirect`), so that a failed
        // start can quote it.
        .stderr(Stdio::piped());
    Ok(command)
}

/// The end of a launcher's stderr, kept while it is relayed to ours.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tail(Arc<(Mutex<TailState>, Condvar)>);

#[derive(Debug, Default)]
struct TailState {
    bytes: Vec<u8>,
    closed: bool,
}

impl Tail {
    /// Relays `pipe` to this process's stderr (unless `to` is `Null`), on a
    /// thread of its own that ends with the launcher's stderr.
    pub(super) fn relay(pipe: ChildStderr, to: Redirect) -> Tail {
        let tail = Tail::default();
        let kept = tail.clone();
        let spawned = std::thread::Builder::new()
            .name("procpool-stderr".into())
            .spawn(move || kept.run(pipe, to));
        if spawned.is_err() {
            // No thread: the launcher's stderr closes; nothing to quote.
            tail.close();
        }
        tail
    }

    fn run(&self, mut pipe: ChildStderr, to: Redirect) {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            if to == Redirect::Inherit {
                let _ = std::io::stderr().write_all(&chunk[..n]);
            }
            let (state, _) = &*self.0;
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.bytes.extend_from_slice(&chunk[..n]);
            let over = state.bytes.len().saturating_sub(TAIL_BYTES);
            state.bytes.drain(..over);
        }
        self.close();
    }

    fn close(&self) {
        let (state, closed) = &*self.0;
        state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        closed.notify_all();
    }

    /// The last lines the launcher wrote to stderr, waiting briefly for it
    /// to close (a launcher that just died has written its last words).
    /// Blocks for at most [`TAIL_WAIT`]: for error paths only.
    pub(super) fn last_words(&self) -> String {
        let (state, closed) = &*self.0;
        let state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = closed
            .wait_timeout_while(state, TAIL_WAIT, |state| !state.closed)
            .unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&state.bytes).trim().to_string()
    }
}

/// What came first on a launched worker's stdout.
pub(super) enum Opening {
    /// The stdio magic: a worker speaks next.
    Magic,
    /// The stream ended before anything (the launcher failed or exited).
    Ended,
    /// Something else (a shell rc file's output, a banner), as text.
    Noise(String),
}

/// Reads the stdio magic a worker started through a launcher writes first.
pub(super) async fn opening(data: &mut UnixStream) -> std::io::Result<Opening> {
    let mut got = Vec::with_capacity(STDIO_MAGIC.len());
    let mut chunk = [0u8; STDIO_MAGIC.len()];
    while got.len() < STDIO_MAGIC.len() {
        let want = STDIO_MAGIC.len() - got.len();
        let n = match data.read(&mut chunk[..want]).await {
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(err) => return Err(err),
        };
        if n == 0 && got.is_empty() {
            return Ok(Opening::Ended);
        }
        got.extend_from_slice(&chunk[..n]);
        if n == 0 || !STDIO_MAGIC.starts_with(&got) {
            return Ok(Opening::Noise(noise(data, got).await));
        }
    }
    Ok(Opening::Magic)
}

/// The start of what came instead of the magic (and any more of it that
/// arrives within [`NOISE_WAIT`]), up to where the magic starts if it did.
async fn noise(data: &mut UnixStream, mut got: Vec<u8>) -> String {
    let more = async {
        let mut chunk = [0u8; NOISE_BYTES];
        while got.len() < NOISE_BYTES {
            match data.read(&mut chunk).await {
                Ok(n @ 1..) => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(NOISE_WAIT, more).await;
    let before_magic = got
        .windows(STDIO_MAGIC.len())
        .position(|window| window == STDIO_MAGIC)
        .unwrap_or(got.len());
    let shown = &got[..before_magic.min(NOISE_BYTES)];
    String::from_utf8_lossy(shown).escape_debug().to_string()
}

/// What an exit code of a launcher that ended before its worker said hello
/// most likely means, for an error message.
pub(super) fn exit_hint(remote: &RemoteCommand, code: Option<i32>) -> &'static str {
    let ssh = remote.argv.first().is_some_and(|program| program == "ssh");
    match code {
        Some(255) if ssh => {
            "; ssh could not connect or log in (host unreachable, authentication refused, or \
             host key mismatch: see its message)"
        }
        Some(127) => {
            "; the program was not found there: put the same build at that path, or point \
             Launcher::program at it"
        }
        Some(126) => "; the program is not executable there",
        _ => "",
    }
}
