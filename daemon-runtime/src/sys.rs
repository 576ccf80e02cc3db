//! Every system call of the crate, and so every `unsafe` block, lives here.
//!
//! The wrappers are thin: each turns a return code into `io::Result` through [`cvt`] and
//! allocates nothing, so that the children between `fork` and the end of set-up can call
//! them (they must stay async-signal-safe, see fork(2) and signal-safety(7)).

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

pub(crate) use crate::error::Exit;
pub(crate) use libc::pid_t;

/// The one place that turns a `-1` return code into the thread's `errno`.
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call was interrupted by a signal.
fn cvt_retry<T: IsMinusOne>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(call()) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

pub(crate) trait IsMinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty)*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool { self == -1 }
        }
    )*};
}
impl_is_minus_one!(i32 i64 isize);

/// open(2). Always adds `O_CLOEXEC` and `O_NOCTTY`: no descriptor of ours leaks into a
/// program the daemon executes, and opening a terminal never makes it our controlling one.
pub(crate) fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<RawFd> {
    let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    cvt_retry(|| unsafe { libc::open(path.as_ptr(), flags, libc::c_uint::from(mode)) })
}

/// close(2). Errors are ignored: after close the descriptor is gone whatever it returns.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: closing a descriptor number has no memory-safety requirement; callers only pass
    // descriptors they own.
    unsafe { libc::close(fd) };
}

/// fcntl(2) `F_GETFD`: whether `fd` is an open descriptor.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// dup2(2).
pub(crate) fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: no pointers; both are plain descriptor numbers.
    cvt_retry(|| unsafe { libc::dup2(from, to) }).map(drop)
}

/// pipe2(2) with `O_CLOEXEC`; where pipe2 is missing, pipe(2) and `FD_CLOEXEC` (we are single
/// threaded when this runs, so nothing can fork in between).
pub(crate) fn pipe_cloexec() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        for fd in fds {
            // SAFETY: F_SETFD takes an integer argument.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
    }
    Ok((fds[0], fds[1]))
}

/// write(2) of the whole buffer.
pub(crate) fn write_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes.
        let written = cvt_retry(|| unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })?;
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

/// read(2) into `buf`; 0 means end of file.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    cvt_retry(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }).map(|n| n as usize)
}

/// pread(2) into `buf` from offset 0.
pub(crate) fn pread_start(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    cvt_retry(|| unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
        .map(|n| n as usize)
}

/// pwrite(2) of the whole buffer at offset 0.
pub(crate) fn pwrite_start(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        // SAFETY: `rest` is valid for reads of `rest.len()` bytes.
        let written = cvt_retry(|| unsafe {
            libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), done as libc::off_t)
        })?;
        done += written as usize;
    }
    Ok(())
}

/// ftruncate(2).
pub(crate) fn ftruncate(fd: RawFd, len: usize) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt_retry(|| unsafe { libc::ftruncate(fd, len as libc::off_t) }).map(drop)
}

/// fchmod(2).
pub(crate) fn fchmod(fd: RawFd, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

/// flock(2) `LOCK_EX | LOCK_NB`: `Ok(false)` when another open file description holds it.
pub(crate) fn try_lock_exclusive(fd: RawFd) -> io::Result<bool> {
    // SAFETY: no pointers.
    match cvt_retry(|| unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Device and inode of a file: what "the same file" means for the pidfile.
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
pub(crate) fn fstat(fd: RawFd) -> io::Result<FileId> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is valid for a write of one `struct stat`.
    cvt(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `stat`.
    Ok(FileId::from_stat(unsafe { stat.assume_init_ref() }))
}

/// lstat(2): the path itself, a symbolic link is not followed.
pub(crate) fn lstat(path: &CStr) -> io::Result<FileId> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` is valid for one `struct stat`.
    cvt(unsafe { libc::lstat(path.as_ptr(), stat.as_mut_ptr()) })?;
    // SAFETY: lstat succeeded, so it filled `stat`.
    Ok(FileId::from_stat(unsafe { stat.assume_init_ref() }))
}

/// stat(2).
pub(crate) fn stat(path: &CStr) -> io::Result<FileId> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` is valid for one `struct stat`.
    cvt(unsafe { libc::stat(path.as_ptr(), stat.as_mut_ptr()) })?;
    // SAFETY: stat succeeded, so it filled `stat`.
    Ok(FileId::from_stat(unsafe { stat.assume_init_ref() }))
}

/// access(2) with `X_OK`: may we enter this directory?
pub(crate) fn can_enter(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::access(path.as_ptr(), libc::X_OK) }).map(drop)
}

/// unlink(2).
pub(crate) fn unlink(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

/// chdir(2).
pub(crate) fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// umask(2). Cannot fail.
pub(crate) fn umask(mask: u32) {
    // SAFETY: no pointers.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// What [`fork`] returned in this process.
pub(crate) enum Forked {
    Parent(pid_t),
    Child,
}

/// fork(2). The caller has checked that the process has a single thread.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the process is single-threaded (checked by the caller before any fork), so the
    // child is a complete copy and no lock can be held by a thread that no longer exists.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// setsid(2).
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// _exit(2): leaves without running atexit handlers or flushing stdio buffers, which belong to
/// the launcher, not to an intermediate process.
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(status) }
}

/// getpid(2).
pub(crate) fn getpid() -> pid_t {
    // SAFETY: no pointers, cannot fail.
    unsafe { libc::getpid() }
}

/// waitpid(2) for one child, retried on `EINTR`; returns the raw wait status.
pub(crate) fn wait_child(pid: pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is valid for one write.
    cvt_retry(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(status)
}

/// kill(2).
pub(crate) fn kill(pid: pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// poll(2) for readability of one descriptor; `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: RawFd, timeout_ms: libc::c_int) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid `struct pollfd`.
    let ready = cvt(unsafe { libc::poll(&mut pollfd, 1, timeout_ms) })?;
    Ok(ready > 0)
}

/// setrlimit(2) `RLIMIT_CORE` to 0, both soft and hard.
pub(crate) fn forbid_core_dumps() -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `struct rlimit`.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) }).map(drop)
}

/// The soft `RLIMIT_NOFILE`, for the last-resort descriptor loop.
pub(crate) fn open_files_limit() -> u64 {
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: `limit` is valid for one write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } == 0 {
        // SAFETY: getrlimit succeeded.
        #[allow(clippy::unnecessary_cast)]
        return unsafe { limit.assume_init() }.rlim_cur as u64;
    }
    1024
}

/// close_range(2) (Linux 5.9, FreeBSD 12.2): closes `first..=last`.
#[cfg(target_os = "linux")]
pub(crate) fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; closing descriptors has no memory effect on us
    // beyond the descriptors themselves, which the caller has decided to close.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn close_range(_first: u32, _last: u32) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// How a signal is to be handled.
#[derive(Clone, Copy)]
pub(crate) enum Disposition {
    Default,
    Ignore,
    Handler(extern "C" fn(libc::c_int)),
}

/// sigaction(2). While a handler runs, every other signal is blocked.
pub(crate) fn set_disposition(signal: libc::c_int, disposition: Disposition) -> io::Result<()> {
    // SAFETY: an all-zero `struct sigaction` is a valid value (no handler, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = match disposition {
        Disposition::Default => libc::SIG_DFL,
        Disposition::Ignore => libc::SIG_IGN,
        Disposition::Handler(handler) => handler as libc::sighandler_t,
    };
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid `sigset_t` to fill; then `action` is a complete sigaction
    // and the old action is not asked for. A handler passed here must be async-signal-safe,
    // which every handler of this crate is.
    unsafe {
        libc::sigfillset(&mut action.sa_mask);
        cvt(libc::sigaction(signal, &action, std::ptr::null_mut())).map(drop)
    }
}

/// rt_sigaction(2) straight to the kernel, for the signals the C library reserves for itself
/// (glibc's 32 and 33) and refuses to touch: if a parent left one of them ignored, it is set
/// back to `SIG_DFL`; any other disposition (the C library's own handler) is left alone.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64"))
))]
pub(crate) fn kernel_unignore(signal: libc::c_int) -> io::Result<()> {
    // The kernel's `struct sigaction` starts with the handler on these architectures (not on
    // MIPS, excluded above); 64 bytes cover its size. All zero is SIG_DFL, no flags, an empty
    // mask. The kernel's sigset is 8 bytes here.
    let mut old = [0u64; 8];
    let new = [0u64; 8];
    // SAFETY: `old` is writable and large enough for the kernel's struct; no new action.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            std::ptr::null::<u8>(),
            old.as_mut_ptr(),
            8,
        )
    })?;
    if old[0] as libc::sighandler_t != libc::SIG_IGN {
        return Ok(());
    }
    // SAFETY: `new` is readable for the size the kernel reads; no old action is asked for.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            new.as_ptr(),
            std::ptr::null_mut::<u8>(),
            8,
        )
    })
    .map(drop)
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64"))
)))]
pub(crate) fn kernel_unignore(_signal: libc::c_int) -> io::Result<()> {
    Ok(())
}

/// sigaction(2) query: whether `signal` is ignored (`SIG_IGN`).
pub(crate) fn is_ignored(signal: libc::c_int) -> io::Result<bool> {
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: no new action is given; `old` is valid for one write.
    cvt(unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: sigaction succeeded, so it filled `old`.
    Ok(unsafe { old.assume_init_ref() }.sa_sigaction == libc::SIG_IGN)
}

/// sigprocmask(2) with an empty set: unblock every signal.
pub(crate) fn unblock_all_signals() -> io::Result<()> {
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises `empty`; sigprocmask reads it and does not ask for the
    // old mask.
    unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        cvt(libc::sigprocmask(
            libc::SIG_SETMASK,
            empty.as_ptr(),
            std::ptr::null_mut(),
        ))
        .map(drop)
    }
}

/// The highest signal number whose disposition can be set.
pub(crate) fn highest_signal() -> libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return libc::SIGRTMAX();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return 31;
}

/// atexit(3).
pub(crate) fn at_exit(handler: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `handler` is a plain function that lives as long as the program.
    match unsafe { libc::atexit(handler) } {
        0 => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::ENOMEM)),
    }
}

/// fcntl(2) `F_SETFD 0`: the descriptor survives exec.
pub(crate) fn set_inheritable(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD takes an integer argument.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// fcntl(2) `F_SETFL`: clears `O_NONBLOCK`, which was only wanted while opening.
pub(crate) fn clear_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL take integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) }).map(drop)
}

/// Saves `errno` and restores it when dropped: a signal handler must leave it as it found it.
pub(crate) struct ErrnoGuard(i32);

impl ErrnoGuard {
    pub(crate) fn save() -> ErrnoGuard {
        ErrnoGuard(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: __errno_location returns the calling thread's errno slot.
        unsafe {
            *libc::__errno_location() = self.0
        };
        #[cfg(any(target_os = "macos", target_os = "freebsd"))]
        // SAFETY: __error returns the calling thread's errno slot.
        unsafe {
            *libc::__error() = self.0
        };
    }
}

/// pipe(2) for the self-pipe: both ends close-on-exec and non-blocking, so that a signal
/// handler never blocks on a full pipe and a reader can drain it.
pub(crate) fn pipe_nonblocking() -> io::Result<(RawFd, RawFd)> {
    let (read_end, write_end) = pipe_cloexec()?;
    for fd in [read_end, write_end] {
        // SAFETY: F_GETFL and F_SETFL take integer arguments.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok((read_end, write_end))
}

/// pidfd_open(2) (Linux 5.3): a descriptor that becomes readable when the process exits.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_open(pid: pid_t) -> io::Result<RawFd> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(|fd| fd as RawFd)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_open(_pid: pid_t) -> io::Result<RawFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// pidfd_send_signal(2) (Linux 5.1): signals exactly the process of the pidfd, never a
/// process that reused its pid.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_send_signal(pidfd: RawFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments and a null siginfo.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_send_signal(_pidfd: RawFd, _signal: libc::c_int) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// flock(2) `LOCK_SH | LOCK_NB`: `Ok(false)` when someone holds an exclusive lock.
pub(crate) fn try_lock_shared(fd: RawFd) -> io::Result<bool> {
    // SAFETY: no pointers.
    match cvt_retry(|| unsafe { libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(error) => Err(error),
    }
}

/// chroot(2).
pub(crate) fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// setgroups(2).
pub(crate) fn setgroups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: `groups` is valid for reads of its length.
    cvt(unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) }).map(drop)
}

/// setgid(2): real, effective and saved group id (when privileged).
pub(crate) fn setgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::setgid(gid) }).map(drop)
}

/// setuid(2): real, effective and saved user id (when privileged).
pub(crate) fn setuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::setuid(uid) }).map(drop)
}

/// geteuid(2).
pub(crate) fn geteuid() -> libc::uid_t {
    // SAFETY: no pointers, cannot fail.
    unsafe { libc::geteuid() }
}

/// The real, effective, saved and filesystem user ids, and the same four group ids
/// (getresuid(2), getresgid(2), setfsuid(2)/setfsgid(2) with an invalid id, which only reads).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn all_ids() -> io::Result<([libc::uid_t; 4], [libc::gid_t; 4])> {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: each pointer is valid for one write.
    cvt(unsafe { libc::getresuid(&mut ruid, &mut euid, &mut suid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::getresgid(&mut rgid, &mut egid, &mut sgid) })?;
    // SAFETY: an id of -1 is invalid, so the call changes nothing and returns the current one.
    let fsuid = unsafe { libc::setfsuid(libc::uid_t::MAX) } as libc::uid_t;
    // SAFETY: as above.
    let fsgid = unsafe { libc::setfsgid(libc::gid_t::MAX) } as libc::gid_t;
    Ok(([ruid, euid, suid, fsuid], [rgid, egid, sgid, fsgid]))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn all_ids() -> io::Result<([libc::uid_t; 4], [libc::gid_t; 4])> {
    // SAFETY: no pointers, cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    Ok(([uid, euid, euid, euid], [gid, egid, egid, egid]))
}

/// getgroups(2) into `buf`; the number of groups.
pub(crate) fn getgroups(buf: &mut [libc::gid_t]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt(unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) }).map(|n| n as usize)
}

/// fchdir(2).
pub(crate) fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::fchdir(fd) }).map(drop)
}

/// openat(2) relative to a directory descriptor, with `O_CLOEXEC | O_NOCTTY` like [`open`].
pub(crate) fn openat(
    dir: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<RawFd> {
    let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    cvt_retry(|| unsafe { libc::openat(dir, name.as_ptr(), flags, libc::c_uint::from(mode)) })
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

/// The type of the file system `fd` is on (fstatfs(2) `f_type`), where the system has it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn filesystem_type(fd: RawFd) -> io::Result<u64> {
    let mut stat = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `stat` is valid for one write of a `struct statfs`.
    cvt(unsafe { libc::fstatfs(fd, stat.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded, so it filled `stat`.
    let stat = unsafe { stat.assume_init_ref() };
    #[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between architectures
    Ok(stat.f_type as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn filesystem_type(_fd: RawFd) -> io::Result<u64> {
    Ok(0)
}

/// prctl(2) `PR_SET_CHILD_SUBREAPER`: orphaned descendants are reparented to this process
/// (so that the launcher can wait for the daemon it started). Linux only; elsewhere a no-op.
pub(crate) fn set_child_subreaper(on: bool) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: integer arguments only.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        )
    })?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = on;
    Ok(())
}

/// waitpid(2) with `WNOHANG` for one child (or, with a negative `pid`, any child of that
/// process group): `Ok(None)` while it runs.
pub(crate) fn try_wait(pid: pid_t) -> io::Result<Option<(pid_t, Exit)>> {
    let mut status = 0;
    // SAFETY: `status` is valid for one write.
    let reaped = cvt_retry(|| unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    if reaped == 0 {
        return Ok(None);
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    Ok(Some((reaped, exit)))
}

/// waitid(2) with `WNOWAIT`: how a child ended, leaving it a zombie (so that its pid, and the
/// process group it is in, cannot be reused while the launcher still signals the group).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peek_exit(pid: pid_t) -> io::Result<Option<Exit>> {
    // SAFETY: an all-zero siginfo_t is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is valid for one write.
    cvt_retry(|| unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) })?;
    // SAFETY: waitid filled `info` for a child that ended; with WNOHANG and none, si_pid is 0
    // (it was zeroed).
    let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
    if who == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => Exit::Code(status),
        _ => Exit::Signal(status),
    }))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peek_exit(pid: pid_t) -> io::Result<Option<Exit>> {
    try_wait(pid).map(|reaped| reaped.map(|(_, exit)| exit))
}

/// poll(2) on up to two descriptors, with `signals` unblocked only while it waits (ppoll(2)
/// where the system has it): returns which of them are readable. `Err(Interrupted)` when a
/// signal handler ran.
pub(crate) fn wait_either(
    fds: [Option<RawFd>; 2],
    timeout_ms: libc::c_int,
) -> io::Result<[bool; 2]> {
    let mut pollfds = fds.map(|fd| libc::pollfd {
        fd: fd.unwrap_or(-1), // a negative descriptor is skipped by poll
        events: libc::POLLIN,
        revents: 0,
    });
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let timeout = libc::timespec {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_nsec: (timeout_ms % 1000) as libc::c_long * 1_000_000,
        };
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises `empty`; ppoll reads two valid pollfds, the timeout
        // and the mask.
        cvt(unsafe {
            libc::sigemptyset(empty.as_mut_ptr());
            libc::ppoll(pollfds.as_mut_ptr(), 2, &timeout, empty.as_ptr())
        })?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        unblock_all_signals()?;
        // SAFETY: two valid pollfds.
        let result = cvt(unsafe { libc::poll(pollfds.as_mut_ptr(), 2, timeout_ms) });
        block_signals(&[libc::SIGINT, libc::SIGTERM])?;
        result?;
    }
    Ok(pollfds.map(|p| p.revents != 0))
}

/// sigprocmask(2) `SIG_BLOCK` of `signals`.
pub(crate) fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises `set`, sigaddset adds valid signal numbers, and
    // sigprocmask reads it and does not ask for the old mask.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &signal in signals {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            set.as_ptr(),
            std::ptr::null_mut(),
        ))
        .map(drop)
    }
}

/// A signal's disposition as it was, to put back with [`restore_action`].
pub(crate) struct SavedAction(libc::sigaction);

impl std::fmt::Debug for SavedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SavedAction")
    }
}

/// sigaction(2) without `SA_RESTART`, so that a blocking call the handler interrupts
/// returns `EINTR`. Returns the disposition it replaced.
pub(crate) fn set_interrupting_handler(
    signal: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<SavedAction> {
    // SAFETY: an all-zero `struct sigaction` is a valid value (no handler, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as libc::sighandler_t;
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: `sa_mask` is a valid `sigset_t` to fill; then `action` is complete, and `old`
    // is valid for one write. The handler is async-signal-safe (it only stores an atomic).
    unsafe {
        libc::sigfillset(&mut action.sa_mask);
        cvt(libc::sigaction(signal, &action, old.as_mut_ptr()))?;
    }
    // SAFETY: sigaction succeeded, so it filled `old`.
    Ok(SavedAction(unsafe { old.assume_init() }))
}

/// sigaction(2): puts back a disposition [`set_interrupting_handler`] replaced.
pub(crate) fn restore_action(signal: libc::c_int, saved: &SavedAction) -> io::Result<()> {
    // SAFETY: `saved` is a complete sigaction the kernel returned.
    cvt(unsafe { libc::sigaction(signal, &saved.0, std::ptr::null_mut()) }).map(drop)
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

/// unlinkat(2) of a name in a directory.
pub(crate) fn unlinkat(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) }).map(drop)
}

/// The flags for a directory descriptor used only to open files in it: `O_PATH` where the
/// system has it (it grants no reading of the directory itself).
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIRECTORY_ONLY: libc::c_int = libc::O_PATH | libc::O_DIRECTORY;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIRECTORY_ONLY: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

/// openat(2) of a directory, as a descriptor to open files in (`O_PATH`), relative to `dir`
/// (or the working directory); with `follow` false, a symbolic link is not followed (it
/// fails with `ENOTDIR` or `ELOOP`).
pub(crate) fn open_directory(
    dir: Option<RawFd>,
    name: &CStr,
    follow: bool,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let fd = openat(
        dir.unwrap_or(libc::AT_FDCWD),
        name,
        DIRECTORY_ONLY | nofollow,
        0,
    )?;
    // SAFETY: openat just returned this descriptor, and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// fstatat(2) with `AT_SYMLINK_NOFOLLOW`: the entry `name` of `dir` itself.
pub(crate) fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<FileId> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated and `stat` is valid for one `struct stat`.
    cvt(unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded, so it filled `stat`.
    Ok(FileId::from_stat(unsafe { stat.assume_init_ref() }))
}

/// readlinkat(2): the target of the symbolic link `name` in `dir`.
pub(crate) fn read_link_at(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `name` is NUL-terminated; `buf` is valid for writes of its length.
    let len =
        cvt(unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?
            as usize;
    if len == buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(len);
    Ok(buf)
}
