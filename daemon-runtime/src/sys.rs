//! The system-call facade: nix for everything it offers, with this crate's policy on top,
//! and libc only where nix has nothing.
//!
//! The policy: every descriptor the runtime opens is close-on-exec and never becomes a
//! controlling terminal (`O_CLOEXEC | O_NOCTTY`) and comes back as an [`OwnedFd`]; a call
//! that a signal handler may interrupt is retried on `EINTR` (nix does not retry); errors are
//! [`io::Error`]s. Nothing here allocates (paths are prebuilt `&CStr`s, which nix passes on
//! as they are), so the children between `fork` and the end of set-up can call all of it,
//! except [`read_link_at`], which the launcher alone uses.
//!
//! libc is called directly, each time in an `unsafe` block with its `// SAFETY:`, only for
//! what nix lacks: close_range(2), pidfd_open(2), pidfd_getfd(2), pidfd_send_signal(2), `_exit`, atexit(3),
//! pthread_atfork(3), capget(2), getgroups(2) into a buffer prepared before the fork (nix's
//! allocates), flock(2) without nix's unlock-on-drop (see [`try_lock`]), `rt_sigaction` for the
//! signals nix's `Signal` cannot name, and closing descriptors the runtime does not own.

use nix::errno::Errno;
use nix::fcntl::{self, FcntlArg, FdFlag, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self as nix_signal, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow};
use nix::sys::stat::{self, Mode};
use nix::sys::wait;
use nix::unistd::{self, Gid, Pid, Uid};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use crate::error::Exit;
pub(crate) use libc::pid_t;
pub(crate) use nix::sys::signal::Signal;

/// Runs a nix call, again while it is interrupted by a signal.
fn retry<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Turns a libc return code into an [`io::Result`], for the few direct libc calls.
fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    Errno::result(ret).map_err(io::Error::from)
}

// Files and descriptors.

/// The flags added to every open: the descriptor is closed on exec, and opening a terminal
/// never makes it the controlling one.
fn policy(flags: OFlag) -> OFlag {
    flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY
}

/// open(2), with `O_CLOEXEC | O_NOCTTY`.
pub(crate) fn open(path: &CStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    retry(|| fcntl::open(path, policy(flags), Mode::from_bits_truncate(mode as _)))
}

/// openat(2) relative to a directory, with `O_CLOEXEC | O_NOCTTY`.
pub(crate) fn openat(dir: BorrowedFd, name: &CStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    retry(|| {
        fcntl::openat(
            dir,
            name,
            policy(flags),
            Mode::from_bits_truncate(mode as _),
        )
    })
}

/// The flags of a directory descriptor used only to open files in it: `O_PATH` where the
/// system has it (it grants no reading of the directory itself).
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIRECTORY_ONLY: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIRECTORY_ONLY: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);

/// A directory, as a descriptor to open files in, relative to `dir` (or the working
/// directory); with `follow` false, a symbolic link is not followed (`ENOTDIR` or `ELOOP`).
pub(crate) fn open_directory(
    dir: Option<BorrowedFd>,
    name: &CStr,
    follow: bool,
) -> io::Result<OwnedFd> {
    let flags = match follow {
        true => DIRECTORY_ONLY,
        false => DIRECTORY_ONLY | OFlag::O_NOFOLLOW,
    };
    openat(dir.unwrap_or(fcntl::AT_FDCWD), name, flags, 0)
}

/// How many descriptor numbers one poll(2) call of [`descriptor_flags`] looks at.
const POLLED: usize = 256;

/// The descriptor flags (fcntl(2) `F_GETFD`) of `first` and the numbers after it, up to
/// [`POLLED`] of them and below `end`: -1 for a number that is not open. For descriptors no
/// value owns: the standard ones a launcher may have been started without, and the ones the
/// async-runtime check looks at.
///
/// For several numbers, poll(2) first tells which are open in one call (`POLLNVAL` marks the
/// others), so that only those cost an fcntl(2): a table of 32,768 slots, 10,000 of them open,
/// takes 128 poll calls and 10,000 fcntl calls instead of 32,768 fcntl calls, half the time.
/// If poll fails (more numbers than `RLIMIT_NOFILE`), every number is asked.
fn descriptor_flags(first: RawFd, end: RawFd) -> ([i32; POLLED], usize) {
    let count = usize::try_from(end.saturating_sub(first))
        .unwrap_or(0)
        .min(POLLED);
    let mut polled = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLLED];
    for (entry, fd) in polled.iter_mut().zip(first..).take(count) {
        entry.fd = fd;
    }
    let mut flags = [-1; POLLED];
    // SAFETY: poll reads and writes the first `count` entries of `polled`, which has POLLED;
    // F_GETFD reads a descriptor's flags and takes no pointer, and a closed number only fails
    // with EBADF. No ownership is claimed, nothing is closed.
    unsafe {
        let polled_ok = count > 1 && libc::poll(polled.as_mut_ptr(), count as libc::nfds_t, 0) >= 0;
        for (entry, flags) in polled.iter().zip(flags.iter_mut()).take(count) {
            if !(polled_ok && entry.revents & libc::POLLNVAL != 0) {
                *flags = libc::fcntl(entry.fd, libc::F_GETFD);
            }
        }
    }
    (flags, count)
}

/// Whether descriptor `fd` is open.
pub(crate) fn is_open(fd: RawFd) -> bool {
    descriptor_flags(fd, fd.saturating_add(1)).0[0] != -1
}

/// Whether descriptor `fd` is open and close-on-exec: this program opened it (an inherited
/// descriptor cannot be close-on-exec).
pub(crate) fn is_close_on_exec(fd: RawFd) -> bool {
    open_and_close_on_exec(descriptor_flags(fd, fd.saturating_add(1)).0[0])
}

/// Whether flags read by [`descriptor_flags`] are those of an open close-on-exec descriptor.
fn open_and_close_on_exec(flags: i32) -> bool {
    flags != -1 && flags & libc::FD_CLOEXEC != 0
}

/// The open close-on-exec descriptors among `numbers`: this program opened them (an
/// inherited descriptor cannot be close-on-exec).
pub(crate) fn close_on_exec_among(numbers: std::ops::Range<RawFd>) -> Vec<RawFd> {
    let mut found = Vec::new();
    let mut first = numbers.start.max(0);
    while first < numbers.end {
        let (flags, count) = descriptor_flags(first, numbers.end);
        found.extend(
            (first..)
                .zip(&flags[..count])
                .filter(|(_, &flags)| open_and_close_on_exec(flags))
                .map(|(fd, _)| fd),
        );
        first = first.saturating_add(count.max(1) as RawFd);
    }
    found
}

/// Whether descriptor `fd` is one end of a Unix socket pair: a connected Unix socket whose
/// own address and peer's are both unnamed, as `socketpair(2)` makes them (a connection to a
/// named socket, such as `/dev/log` or a user database daemon's, has a named peer). Only
/// looks: a descriptor that is not a socket is simply not one.
pub(crate) fn is_unix_socket_pair_end(fd: RawFd) -> bool {
    use nix::sys::socket::{getpeername, getsockname, SockaddrStorage};
    let unnamed = |address: nix::Result<SockaddrStorage>| {
        address.is_ok_and(|address| address.as_unix_addr().is_some_and(|unix| unix.is_unnamed()))
    };
    unnamed(getsockname(fd)) && unnamed(getpeername(fd))
}

/// Closes descriptor `fd`, which no `OwnedFd` of this process will use again.
///
/// # Safety
///
/// `fd` must not be owned by anything that will use or close it later: an inherited
/// descriptor the runtime sweeps, or the pidfile's in a forked child, where the static that
/// owns it is never used.
pub(crate) unsafe fn close_unowned(fd: RawFd) {
    // SAFETY: the caller guarantees nothing uses `fd` after this; close has no other effect
    // on memory. Its result does not matter: the number is free afterwards either way.
    unsafe { libc::close(fd) };
}

/// close_range(2) (Linux 5.9): closes `first..=last`.
///
/// # Safety
///
/// As for [`close_unowned`], for every descriptor in the range.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: integer arguments only; the caller guarantees the range holds no descriptor
    // still owned.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

/// close_range(2) is Linux's; elsewhere the caller falls back to listing descriptors.
///
/// # Safety
///
/// None needed: it closes nothing.
#[cfg(not(target_os = "linux"))]
pub(crate) unsafe fn close_range(_first: u32, _last: u32) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// A pipe, both ends close-on-exec (pipe2(2); where it is missing, pipe(2) and `FD_CLOEXEC`,
/// the process being single-threaded when this runs).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    return retry(|| unistd::pipe2(OFlag::O_CLOEXEC));
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let (read_end, write_end) = retry(unistd::pipe)?;
        for fd in [&read_end, &write_end] {
            retry(|| fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)))?;
        }
        Ok((read_end, write_end))
    }
}

/// A pipe for signal handlers to write into: close-on-exec and non-blocking at both ends, so
/// that a handler never blocks on a full pipe and a reader can drain it.
pub(crate) fn pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read_end, write_end) = pipe_cloexec()?;
    for fd in [&read_end, &write_end] {
        set_status_flag(fd.as_fd(), OFlag::O_NONBLOCK, true)?;
    }
    Ok((read_end, write_end))
}

/// fcntl(2) `F_SETFL`: sets or clears one status flag.
fn set_status_flag(fd: BorrowedFd, flag: OFlag, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(retry(|| fcntl::fcntl(fd, FcntlArg::F_GETFL))?);
    let flags = match on {
        true => flags | flag,
        false => flags - flag,
    };
    retry(|| fcntl::fcntl(fd, FcntlArg::F_SETFL(flags))).map(drop)
}

/// Clears `O_NONBLOCK`, which was only wanted while opening.
pub(crate) fn clear_nonblock(fd: BorrowedFd) -> io::Result<()> {
    set_status_flag(fd, OFlag::O_NONBLOCK, false)
}

/// fcntl(2) `F_SETFD FD_CLOEXEC`: the descriptor is closed on exec.
pub(crate) fn set_cloexec(fd: BorrowedFd) -> io::Result<()> {
    retry(|| fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))).map(drop)
}

/// fcntl(2) `F_SETFD 0`: the descriptor survives exec.
pub(crate) fn set_inheritable(fd: BorrowedFd) -> io::Result<()> {
    retry(|| fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))).map(drop)
}

/// Descriptors 0, 1 and 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standard {
    In,
    Out,
    Err,
}

/// dup2(2) of `fd` onto a standard descriptor.
pub(crate) fn dup_onto_standard(fd: BorrowedFd, standard: Standard) -> io::Result<()> {
    match standard {
        Standard::In => retry(|| unistd::dup2_stdin(fd)),
        Standard::Out => retry(|| unistd::dup2_stdout(fd)),
        Standard::Err => retry(|| unistd::dup2_stderr(fd)),
    }
}

/// write(2) of the whole buffer.
pub(crate) fn write_all(fd: BorrowedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = retry(|| unistd::write(fd, bytes))?;
        bytes = &bytes[written..];
    }
    Ok(())
}

/// read(2) into `buf`; 0 means end of file.
pub(crate) fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| unistd::read(fd, buf))
}

/// pread(2) into `buf` from offset 0.
pub(crate) fn pread_start(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| nix::sys::uio::pread(fd, buf, 0))
}

/// pwrite(2) of the whole buffer at offset 0.
pub(crate) fn pwrite_start(fd: BorrowedFd, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        done += retry(|| nix::sys::uio::pwrite(fd, &bytes[done..], done as libc::off_t))?;
    }
    Ok(())
}

/// ftruncate(2).
pub(crate) fn ftruncate(fd: BorrowedFd, len: usize) -> io::Result<()> {
    retry(|| unistd::ftruncate(fd, len as libc::off_t))
}

/// fchmod(2).
pub(crate) fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    retry(|| stat::fchmod(fd, Mode::from_bits_truncate(mode as _)))
}

/// flock(2) with `LOCK_NB`, exclusive or shared: `Ok(false)` when another open file
/// description holds a lock that conflicts.
///
/// Not nix's `Flock`: it unlocks when dropped, and the pidfile's lock is shared by the
/// launcher and the daemon through one open file description, so the launcher dropping its
/// copy would release the daemon's lock. Here the lock lives as long as the last descriptor of
/// that description: its owner is whoever holds the [`OwnedFd`].
pub(crate) fn try_lock(fd: BorrowedFd, exclusive: bool) -> io::Result<bool> {
    let operation = match exclusive {
        true => libc::LOCK_EX,
        false => libc::LOCK_SH,
    } | libc::LOCK_NB;
    loop {
        // SAFETY: integer arguments only; `fd` is borrowed, so open for the call.
        let result = cvt(unsafe { libc::flock(fd.as_raw_fd(), operation) }.into());
        match result {
            Ok(_) => return Ok(true),
            Err(error) if error.raw_os_error() == Some(libc::EINTR) => continue,
            Err(error) if error.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
}

/// What the runtime needs of a file's status: what "the same file" means (device and inode),
/// its type and mode, owner and link count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) nlink: u64,
}

impl FileId {
    pub(crate) fn is_regular(self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    pub(crate) fn is_dir(self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub(crate) fn is_symlink(self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    pub(crate) fn same_file(self, other: FileId) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    fn from_stat(stat: &libc::stat) -> FileId {
        FileId {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
            mode: stat.st_mode as u32,
            uid: stat.st_uid as u32,
            nlink: stat.st_nlink as u64,
        }
    }
}

/// fstat(2).
pub(crate) fn fstat(fd: BorrowedFd) -> io::Result<FileId> {
    retry(|| stat::fstat(fd)).map(|stat| FileId::from_stat(&stat))
}

/// lstat(2): the path itself, a symbolic link is not followed.
pub(crate) fn lstat(path: &CStr) -> io::Result<FileId> {
    retry(|| stat::lstat(path)).map(|stat| FileId::from_stat(&stat))
}

/// stat(2).
pub(crate) fn stat(path: &CStr) -> io::Result<FileId> {
    retry(|| stat::stat(path)).map(|stat| FileId::from_stat(&stat))
}

/// fstatat(2) with `AT_SYMLINK_NOFOLLOW`: the entry `name` of `dir` itself.
pub(crate) fn lstat_at(dir: BorrowedFd, name: &CStr) -> io::Result<FileId> {
    retry(|| stat::fstatat(dir, name, fcntl::AtFlags::AT_SYMLINK_NOFOLLOW))
        .map(|stat| FileId::from_stat(&stat))
}

/// readlinkat(2): the target of the symbolic link `name` in `dir`. Allocates: for the
/// launcher only.
pub(crate) fn read_link_at(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    retry(|| fcntl::readlinkat(dir, name)).map(OsStringExt::into_vec)
}

/// The type of the file system `fd` is on (fstatfs(2) `f_type`), where the system has it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn filesystem_type(fd: BorrowedFd) -> io::Result<u64> {
    let stat = retry(|| nix::sys::statfs::fstatfs(fd))?;
    #[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between architectures
    Ok(stat.filesystem_type().0 as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn filesystem_type(_fd: BorrowedFd) -> io::Result<u64> {
    Ok(0)
}

/// access(2) with `X_OK`: may we enter this directory?
pub(crate) fn can_enter(path: &CStr) -> io::Result<()> {
    retry(|| unistd::access(path, unistd::AccessFlags::X_OK))
}

/// unlink(2).
pub(crate) fn unlink(path: &CStr) -> io::Result<()> {
    retry(|| unistd::unlink(path))
}

/// unlinkat(2) of a name in a directory.
pub(crate) fn unlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    retry(|| unistd::unlinkat(dir, name, unistd::UnlinkatFlags::NoRemoveDir))
}

// The process.

/// umask(2). Cannot fail.
pub(crate) fn umask(mask: u32) {
    stat::umask(Mode::from_bits_truncate(mask as _));
}

/// chdir(2).
pub(crate) fn chdir(path: &CStr) -> io::Result<()> {
    retry(|| unistd::chdir(path))
}

/// fchdir(2).
pub(crate) fn fchdir(fd: BorrowedFd) -> io::Result<()> {
    retry(|| unistd::fchdir(fd))
}

/// chroot(2).
pub(crate) fn chroot(path: &CStr) -> io::Result<()> {
    retry(|| unistd::chroot(path))
}

/// What [`fork`] returned in this process.
pub(crate) enum Forked {
    Parent(pid_t),
    Child,
}

/// fork(2).
///
/// # Safety
///
/// The process must have a single thread (the caller checked `/proc/self/task`), and the
/// child must call only async-signal-safe functions until it is done setting up, leaving
/// with [`exit_now`] on every other way out: whatever another thread held (the allocator's
/// lock) is not released in the child.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds fork's contract, as stated above.
    match unsafe { unistd::fork() }.map_err(io::Error::from)? {
        unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// setsid(2).
pub(crate) fn setsid() -> io::Result<()> {
    retry(unistd::setsid).map(drop)
}

/// getpid(2).
pub(crate) fn getpid() -> pid_t {
    unistd::getpid().as_raw()
}

/// geteuid(2).
pub(crate) fn geteuid() -> libc::uid_t {
    unistd::geteuid().as_raw()
}

/// _exit(2): leaves without running atexit handlers or flushing stdio buffers, which belong
/// to the launcher, not to an intermediate process.
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(status) }
}

/// atexit(3).
pub(crate) fn at_exit(handler: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `handler` is a plain function that lives as long as the program.
    match unsafe { libc::atexit(handler) } {
        0 => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::ENOMEM)),
    }
}

/// pthread_atfork(3) with only a handler for the child.
pub(crate) fn at_fork_in_child(handler: unsafe extern "C" fn()) -> io::Result<()> {
    // SAFETY: `handler` is a plain function that lives as long as the program; it is
    // async-signal-safe, as a handler that runs in a forked child must be.
    match unsafe { libc::pthread_atfork(None, None, Some(handler)) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// prctl(2) `PR_SET_CHILD_SUBREAPER`: orphaned descendants are reparented to this process.
/// Linux only; elsewhere a no-op.
pub(crate) fn set_child_subreaper(on: bool) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return retry(|| nix::sys::prctl::set_child_subreaper(on));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = on;
        Ok(())
    }
}

/// `RLIMIT_CORE` to 0, both soft and hard (setrlimit(2)).
pub(crate) fn forbid_core_dumps() -> io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    retry(|| setrlimit(Resource::RLIMIT_CORE, 0, 0))
}

/// The soft `RLIMIT_NOFILE`, for the last-resort descriptor loop.
pub(crate) fn open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, Resource};
    #[allow(clippy::unnecessary_cast)] // rlim_t differs between platforms
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft as u64)
}

// Children and signals.

fn pid(pid: pid_t) -> Pid {
    Pid::from_raw(pid)
}

/// waitpid(2) for one child, blocking.
pub(crate) fn wait_child(child: pid_t) -> io::Result<()> {
    retry(|| wait::waitpid(pid(child), None)).map(drop)
}

/// How a wait status says a process ended, if it did. Read here rather than through nix's
/// `WaitStatus`, which cannot name a real-time signal and turns such a status into an error
/// (after the child was reaped).
fn exit_of(status: libc::c_int) -> Option<Exit> {
    if libc::WIFEXITED(status) {
        Some(Exit::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// waitpid(2) with `WNOHANG` for one child (or, with a negative `child`, any child in that
/// process group): `Ok(None)` while it runs.
pub(crate) fn try_wait(child: pid_t) -> io::Result<Option<(pid_t, Exit)>> {
    waitpid(child, libc::WNOHANG)
}

/// waitpid(2) for any child, blocking: which ended and how.
pub(crate) fn wait_any() -> io::Result<(pid_t, Exit)> {
    loop {
        if let Some(ended) = waitpid(-1, 0)? {
            return Ok(ended);
        }
    }
}

/// waitpid(2), retried on `EINTR`: the child that ended and how; `None` for none (with
/// `WNOHANG`) or a status that is no end.
fn waitpid(child: pid_t, flags: libc::c_int) -> io::Result<Option<(pid_t, Exit)>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is valid for one write.
        match cvt(unsafe { libc::waitpid(child, &mut status, flags) }.into()) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
            Ok(0) => return Ok(None),
            Ok(reaped) => return Ok(exit_of(status).map(|exit| (reaped as pid_t, exit))),
        }
    }
}

/// waitid(2) with `WNOWAIT`: how a child ended, leaving it a zombie (so that its pid, and the
/// process group it is in, cannot be reused while the launcher still signals the group).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peek_exit(child: pid_t) -> io::Result<Option<Exit>> {
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: an all-zero siginfo_t is a valid value; waitid fills it for a child that ended
    // and leaves si_pid 0 when none did (WNOHANG); the accessors read the fields waitid set.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            match cvt(libc::waitid(libc::P_PID, child as libc::id_t, &mut info, flags).into()) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            break;
        }
        if info.si_pid() == 0 {
            return Ok(None);
        }
        Ok(Some(match info.si_code {
            libc::CLD_EXITED => Exit::Code(info.si_status()),
            _ => Exit::Signal(info.si_status()),
        }))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peek_exit(child: pid_t) -> io::Result<Option<Exit>> {
    try_wait(child).map(|reaped| reaped.map(|(_, exit)| exit))
}

/// kill(2): `signal` to `target` (a pid, or a process group when negative); `None` only
/// asks whether it exists.
pub(crate) fn kill(target: pid_t, signal: Option<Signal>) -> io::Result<()> {
    nix_signal::kill(pid(target), signal).map_err(io::Error::from)
}

/// pidfd_open(2) (Linux 5.3): a descriptor that becomes readable when the process exits.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_open(target: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; on success the kernel returns a new descriptor that
    // nothing else owns, which the `OwnedFd` takes.
    unsafe {
        let fd = cvt(libc::syscall(libc::SYS_pidfd_open, target, 0))?;
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_open(_target: pid_t) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// pidfd_getfd(2) (Linux 5.6): a duplicate, close-on-exec, of the process's descriptor
/// `target`: the same open file description. Needs the right to ptrace the process.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_getfd(pidfd: BorrowedFd, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only, `pidfd` borrowed and so open; on success the kernel
    // returns a new descriptor that nothing else owns, which the `OwnedFd` takes.
    unsafe {
        let fd = cvt(libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd(),
            target,
            0,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_getfd(_pidfd: BorrowedFd, _target: RawFd) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// pidfd_send_signal(2) (Linux 5.1): signals exactly the process of the pidfd, never a
/// process that reused its pid.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd, signal: Signal) -> io::Result<()> {
    // SAFETY: integer arguments and a null siginfo; `pidfd` is borrowed, so open.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_send_signal(_pidfd: BorrowedFd, _signal: Signal) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// A poll(2) timeout for the time `left`, in milliseconds: at least 1, so that a wait with
/// less than a millisecond left sleeps instead of spinning.
pub(crate) fn poll_millis(left: std::time::Duration) -> i32 {
    left.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// poll(2) for readability of one descriptor; `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX);
    nix::poll::poll(&mut fds, timeout)
        .map(|ready| ready > 0)
        .map_err(io::Error::from)
}

/// poll(2) for readability of up to two descriptors, waiting at most `timeout_ms` (-1:
/// forever): which of them are readable (or at end, or in error). `Err(Interrupted)` when a
/// signal handler ran. Allocates nothing.
pub(crate) fn poll_readable(
    fds: [Option<BorrowedFd>; 2],
    timeout_ms: i32,
) -> io::Result<[bool; 2]> {
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    readable_of(fds, |polled| {
        nix::poll::poll(polled, timeout)
            .map(drop)
            .map_err(io::Error::from)
    })
}

/// poll(2) on up to two descriptors, with every signal unblocked only while it waits
/// (ppoll(2); elsewhere, unblocked around poll(2)): which of them are readable.
/// `Err(Interrupted)` when a signal handler ran. Allocates nothing.
pub(crate) fn wait_either(fds: [Option<BorrowedFd>; 2], timeout_ms: i32) -> io::Result<[bool; 2]> {
    readable_of(fds, |polled| sleep_in_poll(polled, timeout_ms))
}

/// Which of up to two descriptors are readable once `sleep` has polled them (for `POLLIN`),
/// in an array on the stack.
fn readable_of(
    fds: [Option<BorrowedFd>; 2],
    sleep: impl FnOnce(&mut [PollFd]) -> io::Result<()>,
) -> io::Result<[bool; 2]> {
    fn poll(fd: BorrowedFd) -> PollFd {
        PollFd::new(fd, PollFlags::POLLIN)
    }
    fn readable(fd: &PollFd) -> bool {
        fd.revents().is_some_and(|events| !events.is_empty())
    }
    match fds {
        [Some(a), Some(b)] => {
            let mut polled = [poll(a), poll(b)];
            sleep(&mut polled)?;
            Ok([readable(&polled[0]), readable(&polled[1])])
        }
        [Some(a), None] => {
            let mut polled = [poll(a)];
            sleep(&mut polled)?;
            Ok([readable(&polled[0]), false])
        }
        [None, Some(b)] => {
            let mut polled = [poll(b)];
            sleep(&mut polled)?;
            Ok([false, readable(&polled[0])])
        }
        [None, None] => {
            sleep(&mut [])?;
            Ok([false, false])
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn sleep_in_poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<()> {
    let timeout =
        nix::sys::time::TimeSpec::from(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
    nix::poll::ppoll(fds, Some(timeout), Some(SigSet::empty()))
        .map(drop)
        .map_err(io::Error::from)
}

/// Without ppoll(2) a signal between the unblock and poll(2) waits for the timeout: the
/// caller's timeouts are short where it matters.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn sleep_in_poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<()> {
    let mut blocked = SigSet::empty();
    nix_signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        Some(&mut blocked),
    )
    .map_err(io::Error::from)?;
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX);
    let result = nix::poll::poll(fds, timeout);
    let _ = nix_signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), None);
    result.map(drop).map_err(io::Error::from)
}

/// How a signal is to be handled.
#[derive(Clone, Copy)]
pub(crate) enum Disposition {
    Default,
    Ignore,
    Handler(extern "C" fn(libc::c_int)),
}

/// A signal's disposition as it was, to put back with [`restore_action`].
pub(crate) type SavedAction = SigAction;

/// sigaction(2). While a handler runs, every other signal is blocked. `restart` says
/// whether a system call the handler interrupts is restarted (`SA_RESTART`) or fails with
/// `EINTR`. Returns the disposition it replaced.
pub(crate) fn set_disposition(
    signal: Signal,
    disposition: Disposition,
    restart: bool,
) -> io::Result<SavedAction> {
    let handler = match disposition {
        Disposition::Default => SigHandler::SigDfl,
        Disposition::Ignore => SigHandler::SigIgn,
        Disposition::Handler(handler) => SigHandler::Handler(handler),
    };
    let flags = match restart {
        true => SaFlags::SA_RESTART,
        false => SaFlags::empty(),
    };
    restore_action(signal, &SigAction::new(handler, flags, SigSet::all()))
}

/// sigaction(2): sets `action`, returns the one it replaced.
pub(crate) fn restore_action(signal: Signal, action: &SavedAction) -> io::Result<SavedAction> {
    // SAFETY: every handler this crate installs is async-signal-safe (it touches atomics,
    // `OnceLock` reads and system calls only); a saved action was the process's own.
    unsafe { nix_signal::sigaction(signal, action) }.map_err(io::Error::from)
}

/// If `signal` is ignored, sets it back to `SIG_DFL`; any other disposition (a handler the
/// program installed, the C library's own on its reserved signals) is left alone.
///
/// Through rt_sigaction(2) straight to the kernel: nix's `sigaction` cannot only look (it
/// always sets), and its `Signal` cannot name the real-time signals, nor glibc's reserved 32
/// and 33, which the C library refuses to touch.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64"))
))]
pub(crate) fn unignore(signal: libc::c_int) -> io::Result<()> {
    // The kernel's `struct sigaction` starts with the handler on these architectures (not on
    // MIPS, excluded above); 64 bytes cover its size. All zero is SIG_DFL, no flags, an empty
    // mask. The kernel's sigset is 8 bytes here.
    let mut old = [0u64; 8];
    let new = [0u64; 8];
    // SAFETY: `old` is writable and large enough for the kernel's struct, `new` readable for
    // the size the kernel reads; the first call asks only for the old action, the second
    // sets the default and asks for nothing.
    unsafe {
        let query = std::ptr::null::<u8>();
        cvt(libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            query,
            old.as_mut_ptr(),
            8,
        ))?;
        if old[0] as libc::sighandler_t == libc::SIG_IGN {
            let none = std::ptr::null_mut::<u8>();
            cvt(libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                new.as_ptr(),
                none,
                8,
            ))?;
        }
    }
    Ok(())
}

/// Elsewhere, through nix for the signals it names: set to default, and the program's own
/// handler put back.
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64"))
)))]
pub(crate) fn unignore(signal: libc::c_int) -> io::Result<()> {
    let Ok(signal) = Signal::try_from(signal) else {
        return Ok(());
    };
    let old = set_disposition(signal, Disposition::Default, true)?;
    if matches!(
        old.handler(),
        SigHandler::Handler(_) | SigHandler::SigAction(_)
    ) {
        restore_action(signal, &old)?;
    }
    Ok(())
}

/// The lowest real-time signal number (`SIGRTMIN`): glibc reserves the ones from 32 below it.
pub(crate) fn lowest_realtime_signal() -> libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return libc::SIGRTMIN();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return 32;
}

/// The highest signal number.
pub(crate) fn highest_signal() -> libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return libc::SIGRTMAX();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return 31;
}

/// sigprocmask(2) `SIG_BLOCK` of `signals`.
pub(crate) fn block_signals(signals: &[Signal]) -> io::Result<()> {
    let mut set = SigSet::empty();
    for &signal in signals {
        set.add(signal);
    }
    nix_signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(io::Error::from)
}

/// sigprocmask(2) with an empty set: unblock every signal.
pub(crate) fn unblock_all_signals() -> io::Result<()> {
    nix_signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(io::Error::from)
}

/// Saves `errno` and restores it when dropped: a signal handler must leave it as it found it.
pub(crate) struct ErrnoGuard(i32);

impl ErrnoGuard {
    pub(crate) fn save() -> ErrnoGuard {
        ErrnoGuard(Errno::last_raw())
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        Errno::set_raw(self.0);
    }
}

// Credentials.

/// setgroups(2).
pub(crate) fn setgroups(groups: &[Gid]) -> io::Result<()> {
    unistd::setgroups(groups).map_err(io::Error::from)
}

/// setgid(2): real, effective and saved group id (when privileged).
pub(crate) fn setgid(gid: Gid) -> io::Result<()> {
    unistd::setgid(gid).map_err(io::Error::from)
}

/// setuid(2): real, effective and saved user id (when privileged).
pub(crate) fn setuid(uid: Uid) -> io::Result<()> {
    unistd::setuid(uid).map_err(io::Error::from)
}

/// The real, effective, saved and filesystem user ids, and the same four group ids
/// (getresuid(2), getresgid(2), setfsuid(2)/setfsgid(2) with an invalid id, which only reads).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn all_ids() -> io::Result<([Uid; 4], [Gid; 4])> {
    let uids = unistd::getresuid().map_err(io::Error::from)?;
    let gids = unistd::getresgid().map_err(io::Error::from)?;
    let fsuid = unistd::setfsuid(Uid::from_raw(u32::MAX));
    let fsgid = unistd::setfsgid(Gid::from_raw(u32::MAX));
    Ok((
        [uids.real, uids.effective, uids.saved, fsuid],
        [gids.real, gids.effective, gids.saved, fsgid],
    ))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn all_ids() -> io::Result<([Uid; 4], [Gid; 4])> {
    let (uid, euid) = (unistd::getuid(), unistd::geteuid());
    let (gid, egid) = (unistd::getgid(), unistd::getegid());
    Ok(([uid, euid, euid, euid], [gid, egid, egid, egid]))
}

/// getgroups(2) into `buf`, prepared before the fork (nix's version allocates); the number
/// of groups.
pub(crate) fn getgroups(buf: &mut [libc::gid_t]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length, which is passed.
    let count = unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) };
    cvt(count.into()).map(|count| count as usize)
}

/// Whether the process has any effective or permitted capability (capget(2)); Linux only,
/// `Ok(false)` elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn has_capabilities() -> io::Result<bool> {
    // struct __user_cap_header_struct { u32 version; int pid; } and, for version 3, two
    // struct __user_cap_data_struct { u32 effective, permitted, inheritable; }.
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = [LINUX_CAPABILITY_VERSION_3, 0u32];
    let mut data = [0u32; 6];
    // SAFETY: both buffers have the sizes the kernel expects for version 3.
    cvt(unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) })?;
    let (effective, permitted) = (data[0] | data[3], data[1] | data[4]);
    Ok(effective != 0 || permitted != 0)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn has_capabilities() -> io::Result<bool> {
    Ok(false)
}
