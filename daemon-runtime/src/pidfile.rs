//! SPEC §4: the pidfile, locked for the daemon's whole life.
//!
//! The lock (`flock(2)`), not the file's existence and not `kill(pid, 0)`, decides whether the
//! service runs. The lock is taken by the launcher before it forks; the open file description
//! is shared with the daemon, so the lock passes to the daemon without a gap and is released
//! only when the daemon's last descriptor closes, however it ends.

use crate::error::{Error, LockHolder, PathAction};
use crate::files::{self, Directory, Location, Opener, Refusal};
use crate::paths;
use crate::sys::{self, FileId};
use nix::fcntl::OFlag;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a second launcher waits for the winner to write its pid into a locked pidfile.
const PID_WAIT: Duration = Duration::from_secs(3);

/// An open, locked pidfile.
#[derive(Debug)]
pub(crate) struct Pidfile {
    fd: OwnedFd,
    path: PathBuf,
    c_path: CString,
    id: FileId,
    /// Taken over from the running daemon by `upgrade` (its open file description, which
    /// holds the lock): the launcher writes the new pid once the new daemon is ready.
    adopted: bool,
}

/// The daemon's pidfile, for the removal at exit and in the SIGTERM handler.
static DAEMON_PIDFILE: OnceLock<Pidfile> = OnceLock::new();
static REMOVED: AtomicBool = AtomicBool::new(false);
/// The daemon's pid: a process it forks inherits the atexit and signal handlers, and must not
/// remove the pidfile when it exits.
static OWNER: AtomicI32 = AtomicI32::new(0);

impl Pidfile {
    /// Opens (creating it 0600 if needed) and locks the pidfile at `path`.
    ///
    /// Refuses a symbolic link (`O_NOFOLLOW`), anything but a regular file, and a directory on
    /// a pseudo file system (procfs, sysfs). A live daemon of this service holding the lock is
    /// [`Error::AlreadyRunning`]; any other holder is [`Error::LockedByOther`], which names it.
    /// Once locked, the content is cleared: whatever it held (a stale pid, garbage) is no
    /// one's any more.
    ///
    /// The file is opened relative to its directory, opened first: the directory checked is
    /// the one the file is in. When running as root, more refusals (SPEC §4): a directory
    /// anyone may write without the sticky bit (anyone could swap the file), a pidfile owned
    /// by another (non-root) user, and a pidfile with several hard links (a link to a file
    /// that must not be truncated).
    ///
    /// The file is readable by its owner only, so that no other user can open it and take
    /// a lock on it that would keep the service from starting; a pidfile left readable by
    /// an earlier version is made so once it is locked.
    pub(crate) fn lock(path: PathBuf) -> Result<Pidfile, Error> {
        let failed = |action, source| Error::Path {
            action,
            path: path.clone(),
            source,
        };
        let location =
            Location::new(path.clone()).map_err(|error| failed(PathAction::OpenPidfile, error))?;
        let opener = Opener::current(0);
        let refused = |refusal: Refusal| {
            failed(
                PathAction::OpenPidfile,
                refusal.into_error("a pidfile", &location.directory, "root"),
            )
        };
        let c_path =
            paths::c_string(&path).map_err(|error| failed(PathAction::OpenPidfile, error))?;
        let directory = Directory::open(&location.directory, opener).map_err(refused)?;
        // A daemon that exits unlinks its pidfile while still holding the lock, so a file we
        // opened may be gone from the path by the time we hold its lock; such a lock guards
        // nothing, and we start over with whatever the path names now.
        for _ in 0..100 {
            let (fd, created) = open_or_create(&directory, &location.name)
                .map_err(|error| refused(Refusal::from(error)))?;
            let id = files::check_file(fd.as_fd(), false, opener).map_err(refused)?;
            match lock_contended(fd.as_fd()) {
                Ok(true) => {}
                Ok(false) => {
                    let holder = holder(fd.as_fd(), id);
                    drop(fd);
                    match holder {
                        Holder::Daemon(pid) => {
                            return Err(Error::AlreadyRunning {
                                pid,
                                pidfile: path.clone(),
                            })
                        }
                        Holder::Others { pid, holders } => {
                            return Err(Error::LockedByOther {
                                pidfile: path.clone(),
                                pid,
                                holders,
                            })
                        }
                        // Released while we looked: try again.
                        Holder::Nobody => continue,
                    }
                }
                Err(error) => return Err(failed(PathAction::LockPidfile, error)),
            }
            let pidfile = Pidfile {
                fd,
                path: path.clone(),
                c_path: c_path.clone(),
                id,
                adopted: false,
            };
            if !pidfile.still_at_path() {
                continue; // dropping `pidfile` closes it
            }
            if let Err(error) = sys::ftruncate(pidfile.fd.as_fd(), 0) {
                pidfile.remove();
                return Err(Error::Path {
                    action: PathAction::WritePidfile,
                    path: pidfile.path.clone(),
                    source: error,
                });
            }
            // Owner-only (an earlier version made it 0644). A file we may not change the mode
            // of (another user's, as that user's launcher could lock it) stays as it is.
            if created || id.mode & 0o077 != 0 {
                let _ = sys::fchmod(pidfile.fd.as_fd(), 0o600);
            }
            return Ok(pidfile);
        }
        let error = io::Error::other("it kept being replaced while it was being locked");
        Err(failed(PathAction::LockPidfile, error))
    }

    /// The pidfile of a running daemon, from a descriptor of its own (`upgrade`: the same
    /// open file description, so the lock it holds). It must be the file at `path`.
    pub(crate) fn adopt(fd: OwnedFd, path: PathBuf) -> io::Result<Pidfile> {
        let c_path = paths::c_string(&path)?;
        let id = sys::fstat(fd.as_fd())?;
        let pidfile = Pidfile {
            fd,
            path,
            c_path,
            id,
            adopted: true,
        };
        if !pidfile.still_at_path() {
            return Err(io::Error::other(
                "the daemon's pidfile is not the file at that path any more",
            ));
        }
        Ok(pidfile)
    }

    /// Its descriptor's number, for the sweep of inherited descriptors to keep.
    pub(crate) fn fd_number(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether its path still names this file.
    pub(crate) fn still_at_path(&self) -> bool {
        matches!(sys::lstat(&self.c_path), Ok(now) if now.same_file(self.id))
    }

    /// Whether it was taken over from the running daemon ([`Pidfile::adopt`]).
    pub(crate) fn adopted(&self) -> bool {
        self.adopted
    }

    /// The descriptor, and what [`Pidfile::remove`] needs, for a lock that only the
    /// launcher may keep (the child closes the descriptor).
    pub(crate) fn into_fd(self) -> (OwnedFd, PathBuf, FileId) {
        (self.fd, self.path, self.id)
    }

    /// Writes `PID\n`. Allocates nothing: it runs in the daemon before set-up is over.
    pub(crate) fn write_pid(&self, pid: sys::pid_t) -> io::Result<()> {
        let mut buf = [0u8; 24];
        let len = format_pid(pid, &mut buf);
        sys::pwrite_start(self.fd.as_fd(), &buf[..len])?;
        sys::ftruncate(self.fd.as_fd(), len)
    }

    /// Removes the pidfile if the path still names the file we locked (same device and
    /// inode); if it cannot be removed (a directory we may no longer write), empties it, so
    /// that, unlocked, it reads as stale. Async-signal-safe.
    ///
    /// A path that cannot be looked at any more (privileges dropped, a chroot), or that names
    /// another file now, leaves only the emptying of our own file.
    pub(crate) fn remove(&self) {
        match sys::lstat(&self.c_path) {
            Ok(now) if now.same_file(self.id) => {
                if sys::unlink(&self.c_path).is_err() {
                    let _ = sys::ftruncate(self.fd.as_fd(), 0);
                }
            }
            // The path names another file now, or cannot be looked at any more: our own file,
            // wherever it is, is emptied through the descriptor.
            Ok(_) | Err(_) => {
                let _ = sys::ftruncate(self.fd.as_fd(), 0);
            }
        }
    }

    /// Makes this the pidfile that [`remove_at_exit`] removes. Called once, in the daemon.
    pub(crate) fn keep_until_exit(self) {
        OWNER.store(sys::getpid(), Ordering::SeqCst);
        INHERITED.store(self.fd.as_raw_fd(), Ordering::SeqCst);
        if let Err(pidfile) = DAEMON_PIDFILE.set(self) {
            std::mem::forget(pidfile); // set once; dropping would free memory in the child
        }
    }
}

impl Pidfile {
    /// The file locked (device and inode).
    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    /// The path it was opened at.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// In a process the daemon forks (pthread_atfork(3)'s child handler): closes the child's copy
/// of the pidfile's descriptor, so that a worker that outlives the daemon does not keep the
/// lock, which would make the service look running, or unstartable. Async-signal-safe.
/// The descriptor is taken out of [`INHERITED`] once: a worker that forks again must not
/// close, in its own child, a descriptor that has the number since.
pub(crate) fn forget_in_child() {
    let fd = INHERITED.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: in a forked child the pidfile's `OwnedFd` (in `DAEMON_PIDFILE`, never
        // dropped) is never used: every use checks `OWNER`, the daemon's pid. Its number is
        // closed here once (the swap), before the child can open anything that reuses it.
        unsafe { sys::close_unowned(fd) };
    }
}

/// The daemon's pidfile descriptor, for [`forget_in_child`] in the processes it forks.
static INHERITED: AtomicI32 = AtomicI32::new(-1);

/// Removes the daemon's pidfile, once, and only in the daemon itself (not in a process it
/// forked). Registered with `atexit` (normal return, `Err`, a panic that unwinds out of
/// `main`, `std::process::exit`) and called by the SIGTERM handler. Async-signal-safe: it
/// reads a `OnceLock` and makes a few system calls.
pub(crate) extern "C" fn remove_at_exit() {
    // No daemon pidfile in this process (the launcher): nothing to ask the kernel.
    let owner = OWNER.load(Ordering::SeqCst);
    if owner == 0 || owner != sys::getpid() {
        return;
    }
    if let Some(pidfile) = DAEMON_PIDFILE.get() {
        // A pidfile that names another process is not ours to remove: after an upgrade it
        // names the successor, which shares its lock; before one succeeded, its predecessor.
        if names_nobody_else(pidfile.fd.as_fd(), owner) && !REMOVED.swap(true, Ordering::SeqCst) {
            pidfile.remove();
        }
    }
}

/// Whether the pidfile names no process but `owner`: its pid, nothing (the daemon failed
/// before writing it), or no pid at all (garbage is removed at exit, SPEC §4). Allocates
/// nothing.
fn names_nobody_else(fd: BorrowedFd, owner: sys::pid_t) -> bool {
    let mut buf = [0u8; 24];
    match sys::pread_start(fd, &mut buf) {
        Ok(len) => parse_pid(&buf[..len]).map_or(true, |pid| pid == owner as u32),
        Err(_) => true,
    }
}

/// `flock(LOCK_EX | LOCK_NB)`, tried again for a moment while it is held: `status`, `stop`
/// and `reload` take a shared lock for an instant to look, and a start at that instant must
/// not conclude "already running".
fn lock_contended(fd: BorrowedFd) -> io::Result<bool> {
    let deadline = Instant::now() + Duration::from_millis(100);
    loop {
        match sys::try_lock(fd, true)? {
            true => return Ok(true),
            false if Instant::now() >= deadline => return Ok(false),
            false => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Writes the daemon's pid into its pidfile, if it has one (after an upgrade, the launcher
/// writes it once the daemon is ready).
pub(crate) fn write_daemon_pid(pid: sys::pid_t) -> io::Result<()> {
    match DAEMON_PIDFILE.get() {
        Some(pidfile) if !pidfile.adopted => pidfile.write_pid(pid),
        _ => Ok(()),
    }
}

/// The number of a descriptor of process `pid` that holds the lock on the file `id` (from
/// `/proc/PID/fdinfo`), if one does.
pub(crate) fn locking_descriptor(pid: u32, id: FileId) -> Option<RawFd> {
    locking_entry(pid, &lock_needle(id)).flatten()
}

/// What a pidfile says about the service, by its lock (SPEC §8 `status`).
#[derive(Debug)]
pub(crate) enum Probe {
    /// Locked by the daemon: the service runs, with this pid if it could be read.
    Running(Option<u32>),
    /// Locked, but not by a live daemon of this service (see [`Holder::Others`]).
    Held {
        pid: Option<u32>,
        holders: Vec<LockHolder>,
    },
    /// There, but nobody holds its lock: a crash, a SIGKILL, or another program's file.
    Stale,
    /// No pidfile: not running.
    Absent,
    /// Cannot tell (permissions, not a regular file, ...).
    Unknown(io::Error),
}

/// Looks at the pidfile without creating or changing it. The lock is tested with a shared
/// lock taken and dropped at once, which conflicts only with the daemon's exclusive one.
pub(crate) fn probe(path: &Path) -> Probe {
    let c_path = match paths::c_string(path) {
        Ok(c_path) => c_path,
        Err(error) => return Probe::Unknown(error),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let fd = match sys::open(&c_path, flags, 0) {
        Ok(fd) => fd,
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Probe::Absent,
        Err(error) => return Probe::Unknown(explain(error)),
    };
    let fd = fd.as_fd();
    match sys::fstat(fd) {
        Ok(id) if !id.is_regular() => Probe::Unknown(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        )),
        Err(error) => Probe::Unknown(error),
        // A shared lock first, which does not disturb a start that is taking the exclusive
        // one; then the exclusive one, which another process's shared lock (anyone who may
        // open the file can take one) would stop a start from taking too.
        Ok(id) => match sys::try_lock(fd, false).and_then(|shared| match shared {
            true => sys::try_lock(fd, true),
            false => Ok(false),
        }) {
            Ok(true) => Probe::Stale,
            Ok(false) => match holder(fd, id) {
                Holder::Daemon(pid) => Probe::Running(pid),
                Holder::Others { pid, holders } => Probe::Held { pid, holders },
                Holder::Nobody => Probe::Stale,
            },
            Err(error) => Probe::Unknown(error),
        },
    }
}

/// Who holds a pidfile's lock that we could not take.
enum Holder {
    /// The daemon whose pid the file holds (`None`: a daemon still starting, whose pid is
    /// not written yet, or one we may not look at).
    Daemon(Option<u32>),
    /// Processes that are not the daemon the file names: a worker that outlived it, or
    /// another user's process that took a lock on the file. Empty when the holder cannot be
    /// seen (another user's process, looked at without privileges).
    Others {
        pid: Option<u32>,
        holders: Vec<LockHolder>,
    },
    /// Nobody any more: it was released while we looked.
    Nobody,
}

/// Finds who holds the lock of the open pidfile `fd`: the pid it names if that process
/// holds it (from `/proc/PID/fdinfo`, which lists the locks of each open file), else every
/// process that holds a lock on it. Where `/proc` cannot tell, the pid in the file is
/// believed, as before there was a way to look.
fn holder(fd: BorrowedFd, id: FileId) -> Holder {
    let pid = read_pid_of_holder(fd);
    if let Some(pid) = pid {
        if holds_lock(pid, id) != Some(false) {
            return Holder::Daemon(Some(pid));
        }
    }
    let holders = lock_holders(id);
    if !holders.is_empty() {
        return Holder::Others { pid, holders };
    }
    // Nobody we can see holds it: released since, or held by a process we may not inspect.
    match sys::try_lock(fd, true) {
        Ok(true) => Holder::Nobody,
        _ if pid.is_none() => Holder::Daemon(None),
        _ => Holder::Others {
            pid,
            holders: Vec::new(),
        },
    }
}

/// Whether process `pid` holds a lock on the file `id`, from `/proc/PID/fdinfo`, which lists
/// the locks of each open file as `lock:\t1: FLOCK  ADVISORY  WRITE 42 fe:00:1234 0 EOF`
/// (matched by the inode number: the device is spelt as the kernel keeps it, not always as
/// stat(2) reports it). No open file is looked at (a hung network mount cannot hang this).
/// `None` where `/proc` cannot tell (another user's process, no `/proc`).
fn holds_lock(pid: u32, id: FileId) -> Option<bool> {
    if matches!(sys::kill(pid as sys::pid_t, None), Err(error) if error.raw_os_error() == Some(libc::ESRCH))
    {
        return Some(false); // no such process
    }
    locks_in_fdinfo(pid, &lock_needle(id))
}

/// What a lock line of `/proc/PID/fdinfo` holds for the file `id`.
fn lock_needle(id: FileId) -> String {
    format!(":{} ", id.ino)
}

/// Whether a lock line of one of `pid`'s open files names `needle` (see [`lock_needle`]);
/// `None` where `/proc/PID/fdinfo` cannot be read.
fn locks_in_fdinfo(pid: u32, needle: &str) -> Option<bool> {
    locking_entry(pid, needle).map(|found| found.is_some())
}

/// The first of `pid`'s descriptors whose fdinfo has a lock line naming `needle`: `None`
/// where `/proc/PID/fdinfo` cannot be read, `Some(None)` where none has.
fn locking_entry(pid: u32, needle: &str) -> Option<Option<RawFd>> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let found = entries.flatten().find(|entry| {
        std::fs::read_to_string(entry.path()).is_ok_and(|info| {
            info.lines()
                .any(|line| line.starts_with("lock:") && line.contains(needle))
        })
    });
    Some(found.and_then(|entry| entry.file_name().to_str()?.parse().ok()))
}

/// Every other process that holds a lock on the file `id`, as far as `/proc` shows.
fn lock_holders(id: FileId) -> Vec<LockHolder> {
    let me = std::process::id();
    let needle = lock_needle(id);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // Listed in /proc: no need to ask the kernel whether each exists.
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && locks_in_fdinfo(pid, &needle) == Some(true))
        .map(|pid| LockHolder {
            pid,
            command: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|name| name.trim_end().to_owned())
                .unwrap_or_default(),
        })
        .collect()
}

/// Removes the pidfile `path` if it still is the file `id` and nobody holds its lock: takes
/// the lock (a new open file description), checks, unlinks. Tries for `patience` while
/// another process still holds it (one that is exiting). Returns whether it was removed or
/// is already gone.
pub(crate) fn remove_if_unlocked(path: &Path, id: Option<FileId>, patience: Duration) -> bool {
    let Ok(c_path) = paths::c_string(path) else {
        return false;
    };
    let deadline = Instant::now() + patience;
    loop {
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
        let fd = match sys::open(&c_path, flags, 0) {
            Ok(fd) => fd,
            Err(error) => return error.raw_os_error() == Some(libc::ENOENT),
        };
        let locked = matches!(sys::try_lock(fd.as_fd(), true), Ok(true));
        let mut removed = false;
        if locked {
            if let (Ok(held), Ok(now)) = (sys::fstat(fd.as_fd()), sys::lstat(&c_path)) {
                let ours = id.map_or(true, |id| id.same_file(held));
                if held.same_file(now) && held.is_regular() && ours {
                    removed = sys::unlink(&c_path).is_ok();
                }
            }
        }
        drop(fd);
        if locked {
            return removed;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes a pidfile nobody holds the lock of (after the daemon was killed): takes the lock,
/// checks that the path still names the same file, unlinks it. Leaves a locked one alone.
pub(crate) fn remove_stale(path: &Path) {
    remove_if_unlocked(path, None, Duration::ZERO);
}

fn open_or_create(directory: &Directory, name: &CStr) -> io::Result<(OwnedFd, bool)> {
    // O_NONBLOCK: opening a FIFO must not hang; it is then refused as not a regular file.
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let create = flags | OFlag::O_CREAT | OFlag::O_EXCL;
    loop {
        match sys::openat(directory.fd(), name, create, 0o600) {
            Ok(fd) => return Ok((fd, true)),
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(error),
        }
        match sys::openat(directory.fd(), name, flags, 0) {
            Ok(fd) => return Ok((fd, false)),
            // Removed between the two calls: try creating it again.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(error) => return Err(error),
        }
    }
}

/// Says what `O_NOFOLLOW`'s `ELOOP` means here.
fn explain(error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symbolic link, which is never followed for a pidfile",
        ),
        _ => error,
    }
}

/// The pid in a pidfile whose lock someone else holds. The holder may have just taken the
/// lock and not yet written its pid, so an empty or unreadable content is read again for a
/// moment before giving up.
fn read_pid_of_holder(fd: BorrowedFd) -> Option<u32> {
    let deadline = Instant::now() + PID_WAIT;
    loop {
        let mut buf = [0u8; 32];
        if let Ok(len) = sys::pread_start(fd, &mut buf) {
            if let Some(pid) = parse_pid(&buf[..len]) {
                return Some(pid);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid on the first line: decimal digits, then a newline.
pub(crate) fn parse_pid(content: &[u8]) -> Option<u32> {
    let line = content.split(|&b| b == b'\n').next()?;
    if content.len() == line.len() {
        return None; // no newline yet: the writer may be mid-way
    }
    let text = std::str::from_utf8(line).ok()?;
    // A pid is a positive `pid_t`: larger numbers would turn negative, a process group.
    text.parse()
        .ok()
        .filter(|&pid| pid > 0 && pid <= i32::MAX as u32)
}

fn format_pid(pid: sys::pid_t, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let digits = crate::output::decimal(pid.unsigned_abs().into(), &mut digits);
    buf[..digits.len()].copy_from_slice(digits);
    buf[digits.len()] = b'\n';
    digits.len() + 1
}

#[cfg(test)]
mod tests {
    use super::{format_pid, parse_pid};

    #[test]
    fn pid_lines_round_trip() {
        for pid in [1, 9, 10, 4_194_304, i32::MAX] {
            let mut buf = [0u8; 24];
            let len = format_pid(pid, &mut buf);
            assert_eq!(&buf[..len], format!("{pid}\n").as_bytes());
            assert_eq!(parse_pid(&buf[..len]), Some(pid as u32));
        }
    }

    #[test]
    fn garbage_is_no_pid() {
        for garbage in [
            &b""[..],
            b"\n",
            b"abc\n",
            b"-5\n",
            b"0\n",
            b"12",
            b" 12\n",
            b"99999999999999\n",
        ] {
            assert_eq!(parse_pid(garbage), None, "{garbage:?}");
        }
    }
}
