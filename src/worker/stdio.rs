//! The stdio transport, worker side: a worker started through a launcher
//! (ssh, srun) has its protocol on stdin and stdout, which are pipes.
//!
//! It moves them to private descriptors first, and points fd 0 at
//! `/dev/null` and fd 1 at stderr (or `/dev/null`), so a task's `println!`
//! goes out with its error output instead of into a frame. Then it bridges
//! the two pipes onto a socketpair, one thread each way, and serves the
//! socket's other end exactly as a local worker serves its own: one reader,
//! one writer lock, one teardown, for both transports. The bridge costs two
//! copies per byte, which next to a network (ssh's encryption, a round trip
//! of 100 µs or more) is noise, and leaves the local path untouched.
//!
//! The end of stdin (the launcher is gone, or the pool) becomes the end of
//! the socket, so a remote worker ends itself and everything its task
//! started even mid-task, as a local one does when the pool hangs up: sshd
//! sends no signal when its client dies.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use crate::wire::hello::STDIO_MAGIC;

/// How much one bridge thread moves per system call: as much as a pipe
/// holds (64 KiB by default) and more, so a 16 MiB payload takes few calls.
const BRIDGE_CHUNK: usize = 256 * 1024;

/// Takes the protocol off stdin and stdout (see the module docs), writes the
/// stdio magic, and returns the socket to serve.
///
/// `quiet`: stdout goes to `/dev/null` rather than to stderr.
/// `keepalive_ms`: how often the pool pings (0: it does not); hearing
/// nothing for [`SILENT_PINGS`] times as long, the worker takes the pool for
/// gone, as if stdin had ended.
pub(super) fn take(quiet: bool, keepalive_ms: u64) -> io::Result<UnixStream> {
    let input = std::fs::File::from(rustix::io::fcntl_dupfd_cloexec(io::stdin(), 3)?);
    let mut output = std::fs::File::from(rustix::io::fcntl_dupfd_cloexec(io::stdout(), 3)?);
    rustix::stdio::dup2_stdin(std::fs::File::open("/dev/null")?)?;
    if quiet {
        rustix::stdio::dup2_stdout(std::fs::OpenOptions::new().write(true).open("/dev/null")?)?;
    } else {
        let stderr: OwnedFd = rustix::io::fcntl_dupfd_cloexec(io::stderr(), 3)?;
        rustix::stdio::dup2_stdout(stderr)?;
    }
    // Becomes the leader of a process group of its own if it is not one
    // (srun's task, a `sh -c` that did not exec), so that teardown can end
    // everything a task starts; a session leader (ssh's) leads one already.
    let _ = rustix::process::setpgid(None, None);
    output.write_all(STDIO_MAGIC)?;
    let (ours, bridge) = UnixStream::pair()?;
    let inbound = bridge.try_clone()?;
    spawn_bridge("procpool-stdin", move || {
        // The pool's frames in; its end of stdin is the socket's end.
        if let Err(err) = copy_watched(&input, &mut &inbound, keepalive_ms) {
            let line = format!("procpool worker {}: {err}\n", std::process::id());
            let _ = rustix::io::write(io::stderr(), line.as_bytes());
        }
        let _ = inbound.shutdown(Shutdown::Write);
    })?;
    spawn_bridge("procpool-stdout", move || {
        // Our frames out. If stdout breaks, the pool is gone: the socket
        // closes both ways, which the reader takes as a hang-up.
        let _ = copy(&mut &bridge, &mut output);
        let _ = bridge.shutdown(Shutdown::Both);
    })?;
    Ok(ours)
}

/// Sends the pool a `PONG` every `keepalive_ms`, unasked, for as long as
/// this worker lives: the pool's sign of life from it even while its own
/// `PING` waits behind a large request still going out (see the pool's
/// `Keepalive`). Through the outbox, so it never splits a frame.
pub(super) fn heartbeat(link: &'static super::link::Link, keepalive_ms: u64) -> io::Result<()> {
    let every = std::time::Duration::from_millis(keepalive_ms);
    spawn_bridge("procpool-heartbeat", move || {
        let pong = crate::wire::frame::empty(crate::wire::frame::PONG, 0);
        loop {
            std::thread::sleep(every);
            if link.send_soon(&[&pong]).is_err() {
                return; // the pool is gone; so, soon, is this process
            }
        }
    })
}

fn spawn_bridge(name: &str, run: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map(drop)
}

/// Pings missed before a worker takes its pool for gone.
const SILENT_PINGS: u64 = 3;

/// [`copy`] from the pool's stream, but an error once nothing came for
/// [`SILENT_PINGS`] keepalive intervals (`keepalive_ms` 0: never).
fn copy_watched(from: &std::fs::File, to: &mut impl Write, keepalive_ms: u64) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    if keepalive_ms == 0 {
        return copy(&mut &*from, to);
    }
    let limit_ms = keepalive_ms.saturating_mul(SILENT_PINGS);
    let limit = Timespec {
        tv_sec: (limit_ms / 1000) as _,
        tv_nsec: ((limit_ms % 1000) * 1_000_000) as _,
    };
    let mut chunk = vec![0u8; BRIDGE_CHUNK];
    loop {
        let mut fds = [PollFd::new(from, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&limit)) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nothing from the pool for {limit_ms} ms (it pings every \
                         {keepalive_ms} ms): taking it for gone"
                    ),
                ));
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
        let n = match (&*from).read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        to.write_all(&chunk[..n])?;
    }
}

/// Copies until the end of `from`, or an error either side.
fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut chunk = vec![0u8; BRIDGE_CHUNK];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        to.write_all(&chunk[..n])?;
    }
}
