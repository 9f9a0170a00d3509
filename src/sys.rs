//! Every `unsafe` block in the crate lives here, each behind a safe function
//! whose contract is stated at the call.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};

/// Gives up this process's controlling terminal, if it has one, so that
/// nothing it or its children do to the terminal can stop them with SIGTTOU
/// or SIGTTIN (they get an error instead: opening `/dev/tty` fails with ENXIO).
///
/// Unlike `setsid`, this works for a process-group leader, which a worker is.
pub(crate) fn detach_terminal() {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty")
    else {
        return; // no controlling terminal: nothing to give up
    };
    // SAFETY: TIOCNOTTY takes no argument; `tty` is an open terminal fd for
    // the whole call.
    unsafe {
        libc::ioctl(tty.as_raw_fd(), libc::TIOCNOTTY);
    }
}

/// Registers `fd` with the tokio reactor for readability.
///
/// # Panics
///
/// Outside a tokio runtime with its I/O driver enabled.
pub(crate) fn watch_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd`, so the descriptor stays open and names
    // the same file description until the AsyncFd drops, which deregisters
    // it first.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(Into::into)
}

/// Set in the copy a task makes with `fork()`, by an atfork handler that
/// [`watch_forks`] installs; an atomic load to check, where `getpid()`
/// would be a system call per task.
pub(crate) static IS_FORK_COPY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

extern "C" fn mark_fork_copy() {
    IS_FORK_COPY.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Makes every `fork()` in this process mark the copy in [`IS_FORK_COPY`].
pub(crate) fn watch_forks() -> io::Result<()> {
    // SAFETY: the handler is a plain `extern "C" fn` that lives as long as
    // the program and only stores to an atomic (async-signal-safe, as a
    // handler run in the child of a multi-threaded fork must be).
    let ret = unsafe { libc::pthread_atfork(None, None, Some(mark_fork_copy)) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Ends this process at once, with no destructors or atexit handlers (a
/// worker tearing down must not run user code on its way out).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no memory-safety preconditions.
    unsafe { libc::_exit(code) }
}

/// Reads from `io` into the spare capacity of `buf`, growing its length by
/// what was read, without zero-filling the spare capacity first (that would
/// cost a memset per large frame).
pub(crate) fn poll_read_spare<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    let filled_before = buf.len();
    let mut read_buf = ReadBuf::uninit(buf.spare_capacity_mut());
    match Pin::new(io).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => {
            let n = read_buf.filled().len();
            // SAFETY: `ReadBuf` guarantees its first `filled().len()` bytes were
            // initialised by the reader, and they are exactly the `n` bytes after
            // the old length in `buf`'s allocation.
            unsafe { buf.set_len(filled_before + n) };
            Poll::Ready(Ok(n))
        }
        other => other.map_ok(|()| 0),
    }
}
