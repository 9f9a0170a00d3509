//! Every `unsafe` block in the crate lives here, each behind a safe function
//! whose contract is stated at the call.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A connected pair of Unix stream sockets (close-on-exec), with send and
/// receive buffers raised towards `buffer_bytes`.
///
/// Large buffers are what make a socketpair ~3x faster than a pipe for big
/// payloads (DESIGN.md, Transport); the kernel caps them at `net.core.wmem_max`
/// / `rmem_max`, which is fine: this is a hint, not a requirement.
pub(crate) fn socket_pair(buffer_bytes: usize) -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    let size = libc::c_int::try_from(buffer_bytes).unwrap_or(libc::c_int::MAX);
    for fd in [a.as_raw_fd(), b.as_raw_fd()] {
        for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: `fd` is an open socket owned by `a` or `b` for the whole call;
            // the option value points at a live c_int of the length we pass.
            let ret = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            check(ret)?;
        }
    }
    Ok((a, b))
}

/// Sends `fd` over a connected Unix socket (`SCM_RIGHTS`), with one byte of
/// data, blocking until it is queued.
pub(crate) fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    let byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut space = ControlBuffer::new();
    let msg = one_byte_message(&mut iov, &mut space);
    // SAFETY: msg_control points at a buffer of CMSG_SPACE(one fd) bytes,
    // aligned for cmsghdr, so the first header and its data fit inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(FD_LEN) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points at live across the call.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
        match sent {
            1 => return Ok(()),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            _ => return Err(io::ErrorKind::WriteZero.into()),
        }
    }
}

/// Receives the fd that [`send_fd`] sent (close-on-exec), reading exactly its
/// one byte of data.
pub(crate) fn receive_fd(socket: &UnixStream) -> io::Result<RawFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = ControlBuffer::new();
    let mut msg = one_byte_message(&mut iov, &mut space);
    let received = loop {
        // SAFETY: `msg` and the buffers it points at live across the call.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, RECV_FLAGS) };
        if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break check(n as libc::c_int)?;
    };
    let missing = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the pool did not pass a control socket",
        )
    };
    if received != 1 {
        return Err(missing());
    }
    // SAFETY: recvmsg filled `msg`; CMSG_FIRSTHDR checks the length it set
    // and returns null when there is no header.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    let kind = if cmsg.is_null() {
        None
    } else {
        // SAFETY: a non-null header lies within our control buffer.
        Some(unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) })
    };
    if kind != Some((libc::SOL_SOCKET, libc::SCM_RIGHTS)) {
        return Err(missing());
    }
    // SAFETY: an SCM_RIGHTS header from the kernel carries at least one fd
    // after it, within the buffer.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    set_cloexec(fd)?;
    Ok(fd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RECV_FLAGS: libc::c_int = 0;

const FD_LEN: libc::c_uint = std::mem::size_of::<RawFd>() as libc::c_uint;

/// A message header for one byte of data (`iov`) and one fd's worth of
/// control data (`space`); both must outlive its use.
fn one_byte_message(iov: &mut libc::iovec, space: &mut ControlBuffer) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr();
    msg.msg_controllen = space.len() as _;
    msg
}

/// Room for one control message carrying one fd, aligned for `cmsghdr`.
struct ControlBuffer([u64; 8]);

impl ControlBuffer {
    fn new() -> ControlBuffer {
        ControlBuffer([0; 8])
    }

    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    fn len(&self) -> usize {
        // SAFETY: CMSG_SPACE is arithmetic on its argument.
        let needed = unsafe { libc::CMSG_SPACE(FD_LEN) } as usize;
        debug_assert!(needed <= std::mem::size_of::<ControlBuffer>());
        needed
    }
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number has no memory-safety preconditions.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Takes the socket a worker was given as its stdin, and points stdin at
/// `/dev/null` instead.
pub(crate) fn take_stdin_socket() -> io::Result<UnixStream> {
    // SAFETY: duplicating fd 0 has no memory-safety preconditions; the copy
    // is ours alone.
    let fd = check(unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) })?;
    let socket = adopt_socket(fd)?;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto fd 0, which we hold the only claim to in this process
    // (std never owns stdin as an OwnedFd).
    check(unsafe { libc::dup2(null.as_raw_fd(), 0) })?;
    Ok(socket)
}

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

/// Takes ownership of an inherited socket fd.
///
/// Returns an error unless `fd` is an open socket; the caller must not use
/// `fd` otherwise afterwards (it is only ever the number the pool put in our
/// environment, read once).
pub(crate) fn adopt_socket(fd: RawFd) -> io::Result<UnixStream> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes into the buffer we pass and touches nothing else.
    check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a socket"),
        ));
    }
    // SAFETY: fd is open and a socket (checked above), and by the contract of
    // this function nothing else owns it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // Close-on-exec, so processes that tasks start do not keep our socket open.
    set_cloexec(fd)?;
    Ok(stream)
}

/// What the worker's watchdog woke up for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The control socket has bytes to read.
    Control,
    /// The pool closed its end of the data socket (it shut down, was dropped,
    /// or its process died).
    PoolGone,
    /// Nothing yet (a timeout; only on platforms without POLLRDHUP).
    Idle,
}

/// Blocks until the control socket is readable or the pool hangs up the data
/// socket, without reading the data socket (the task thread owns that).
pub(crate) fn watch(control: RawFd, data: RawFd) -> io::Result<Wake> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (hangup, timeout) = (libc::POLLRDHUP, -1);
    // Elsewhere a peer's close is not reported without reading, so poll the
    // parent pid instead (a second's delay at worst).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let (hangup, timeout) = (0, 1000);
    let mut fds = [
        libc::pollfd {
            fd: control,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: data,
            events: hangup,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a live array of two pollfd and we pass its length.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let gone = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL | hangup;
        if fds[1].revents & gone != 0 {
            return Ok(Wake::PoolGone);
        }
        if fds[0].revents & (libc::POLLIN | gone) != 0 {
            return Ok(Wake::Control);
        }
        // SAFETY: getppid(2) has no preconditions.
        if ret == 0 && unsafe { libc::getppid() } == 1 {
            return Ok(Wake::PoolGone);
        }
        if ret == 0 {
            return Ok(Wake::Idle);
        }
    }
}

/// Removes an environment variable.
///
/// Called by `init` in a worker, before the worker starts any thread.
pub(crate) fn remove_env(key: &str) {
    // SAFETY: the environment is only unsafe to modify while another thread may
    // read it; `init` is documented to run first in `main`, and the worker has
    // started no threads of its own at this point.
    unsafe { std::env::remove_var(key) }
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
