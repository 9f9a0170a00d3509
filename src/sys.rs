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

mod mapping;

pub(crate) use mapping::Mapping;

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

/// The exit code [`exit_on_out_of_memory_abort`] makes an out-of-memory
/// abort exit with.
static OUT_OF_MEMORY_CODE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Address space that must still be free for an abort not to be blamed on
/// the memory cap (see [`on_abort`]).
const ADDRESS_SPACE_PROBE: usize = 32 << 20;

extern "C" fn on_abort(_signal: libc::c_int) {
    // Two signs that the abort is Rust's answer to a failed allocation,
    // each enough:
    // * errno is ENOMEM: the failed mmap or brk left it, and Rust's handler
    //   only writes its message (a successful write leaves errno alone)
    //   before abort() raises SIGABRT on the same thread. But with
    //   RUST_BACKTRACE set it also prints a backtrace, which may overwrite
    //   errno; so also:
    // * the address space is (nearly) used up: 32 MiB more cannot be
    //   mapped. A leak that grows into the cap ends like this whatever
    //   errno says; a single allocation far larger than what is left is
    //   caught by errno alone.
    // Reading errno, mmap, munmap and `_exit` are async-signal-safe.
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM)
        || !address_space_left(ADDRESS_SPACE_PROBE)
    {
        exit_now(OUT_OF_MEMORY_CODE.load(std::sync::atomic::Ordering::Relaxed));
    }
    // Any other abort: SA_RESETHAND has put the default action back, and the
    // signal raised again here is delivered (with it) as this handler
    // returns, so the worker dies of SIGABRT as it would have.
    // SAFETY: raise(2) is async-signal-safe and has no memory-safety
    // preconditions.
    unsafe {
        libc::raise(libc::SIGABRT);
    }
}

/// Whether `bytes` more of address space can be mapped (and it is unmapped
/// again at once). A reservation with no access and no swap reserved:
/// nothing is committed, but it counts against `RLIMIT_AS`.
fn address_space_left(bytes: usize) -> bool {
    // SAFETY: an anonymous PROT_NONE mapping at an address of the kernel's
    // choosing touches no existing memory; it is unmapped with the same
    // address and length it was made with, and nothing else sees it.
    unsafe {
        let probe = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if probe == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(probe, bytes);
    }
    true
}

/// Makes an `abort()` that follows a failed allocation exit with `code`
/// instead of dying of SIGABRT (once: the handler resets itself, and a
/// worker that aborts dies).
///
/// An abort for another reason still dies of SIGABRT. One from outside
/// (`kill -ABRT`) that happens to land on a thread whose last failed call
/// was out of memory would be taken for one; it is rare, and it is only
/// the error's wording that changes.
pub(crate) fn exit_on_out_of_memory_abort(code: i32) -> io::Result<()> {
    OUT_OF_MEMORY_CODE.store(code, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: `action` is fully initialised (zeroed, then the fields set) and
    // outlives the call; the handler is an `extern "C" fn` that lives as long
    // as the program and calls only async-signal-safe functions.
    let ret = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut())
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ends this process at once, with no destructors or atexit handlers (a
/// worker tearing down must not run user code on its way out).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no memory-safety preconditions.
    unsafe { libc::_exit(code) }
}

/// Reads at most `limit` bytes from `io` into the spare capacity of `buf`,
/// growing its length by what was read, without zero-filling the spare
/// capacity first (that would cost a memset per large frame).
pub(crate) fn poll_read_spare<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Poll<io::Result<usize>> {
    let filled_before = buf.len();
    let spare = buf.spare_capacity_mut();
    let room = limit.min(spare.len());
    let mut read_buf = ReadBuf::uninit(&mut spare[..room]);
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
