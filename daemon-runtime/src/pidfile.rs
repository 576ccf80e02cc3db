//! SPEC §4: the pidfile, locked for the daemon's whole life.
//!
//! The lock (`flock(2)`), not the file's existence and not `kill(pid, 0)`, decides whether the
//! service runs. The lock is taken by the launcher before it forks; the open file description
//! is shared with the daemon, so the lock passes to the daemon without a gap and is released
//! only when the daemon's last descriptor closes, however it ends.

use crate::error::{Error, PathAction};
use crate::sys::{self, FileId};
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a second launcher waits for the winner to write its pid into a locked pidfile.
const PID_WAIT: Duration = Duration::from_secs(3);

/// An open, locked pidfile.
#[derive(Debug)]
pub(crate) struct Pidfile {
    fd: RawFd,
    path: PathBuf,
    c_path: CString,
    id: FileId,
}

/// The daemon's pidfile, for the removal at exit and in the SIGTERM handler.
static DAEMON_PIDFILE: OnceLock<Pidfile> = OnceLock::new();
static REMOVED: AtomicBool = AtomicBool::new(false);
/// The daemon's pid: a process it forks inherits the atexit and signal handlers, and must not
/// remove the pidfile when it exits.
static OWNER: AtomicI32 = AtomicI32::new(0);

impl Pidfile {
    /// Opens (creating it 0644 if needed) and locks the pidfile at `path`.
    ///
    /// Refuses a symbolic link (`O_NOFOLLOW`) and anything but a regular file. Another holder
    /// of the lock is [`Error::AlreadyRunning`]. Once locked, the content is cleared: whatever
    /// it held (a stale pid, garbage) is no one's any more.
    ///
    /// The file is opened relative to its directory, opened first: the directory checked is
    /// the one the file is in. When running as root, more refusals (SPEC §4): a directory
    /// anyone may write without the sticky bit (anyone could swap the file), a pidfile owned
    /// by another (non-root) user, and a pidfile with several hard links (a link to a file
    /// that must not be truncated).
    pub(crate) fn lock(path: PathBuf) -> Result<Pidfile, Error> {
        let failed = |action, source| Error::Path {
            action,
            path: path.clone(),
            source,
        };
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            failed(
                PathAction::OpenPidfile,
                io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
            )
        })?;
        let as_root = sys::geteuid() == 0;
        let directory = Directory::open(&path, as_root)
            .map_err(|error| failed(PathAction::OpenPidfile, error))?;
        // A daemon that exits unlinks its pidfile while still holding the lock, so a file we
        // opened may be gone from the path by the time we hold its lock; such a lock guards
        // nothing, and we start over with whatever the path names now.
        for _ in 0..100 {
            let (fd, created) = open_or_create(&directory)
                .map_err(|error| failed(PathAction::OpenPidfile, explain(error)))?;
            let refuse = |fd, why: String| {
                sys::close(fd);
                Err(failed(
                    PathAction::OpenPidfile,
                    io::Error::new(io::ErrorKind::InvalidInput, why),
                ))
            };
            let id = match sys::fstat(fd) {
                Ok(id) if !id.is_regular() => return refuse(fd, "it is not a regular file".into()),
                Ok(id) if as_root && id.uid != 0 => {
                    return refuse(
                        fd,
                        format!(
                            "it is owned by uid {}, not by root; refusing it as root",
                            id.uid
                        ),
                    )
                }
                Ok(id) if as_root && id.nlink > 1 => {
                    return refuse(
                        fd,
                        format!("it has {} hard links; refusing it as root", id.nlink),
                    )
                }
                Ok(id) => id,
                Err(error) => {
                    sys::close(fd);
                    return Err(failed(PathAction::OpenPidfile, error));
                }
            };
            match lock_contended(fd) {
                Ok(true) => {}
                Ok(false) => {
                    let pid = read_pid_of_holder(fd);
                    sys::close(fd);
                    return Err(Error::AlreadyRunning {
                        pid,
                        pidfile: path.clone(),
                    });
                }
                Err(error) => {
                    sys::close(fd);
                    return Err(failed(PathAction::LockPidfile, error));
                }
            }
            let pidfile = Pidfile {
                fd,
                path: path.clone(),
                c_path: c_path.clone(),
                id,
            };
            if !matches!(sys::lstat(&c_path), Ok(now) if now.same_file(id)) {
                continue; // dropping `pidfile` closes it
            }
            let cleared = sys::ftruncate(pidfile.fd, 0).and_then(|()| match created {
                true => sys::fchmod(pidfile.fd, 0o644),
                false => Ok(()),
            });
            if let Err(error) = cleared {
                pidfile.remove();
                return Err(Error::Path {
                    action: PathAction::WritePidfile,
                    path: pidfile.path.clone(),
                    source: error,
                });
            }
            return Ok(pidfile);
        }
        let error = io::Error::other("it kept being replaced while it was being locked");
        Err(failed(PathAction::LockPidfile, error))
    }

    /// Writes `PID\n`. Allocates nothing: it runs in the daemon before set-up is over.
    fn write_pid(&self, pid: sys::pid_t) -> io::Result<()> {
        let mut buf = [0u8; 24];
        let len = format_pid(pid, &mut buf);
        sys::pwrite_start(self.fd, &buf[..len])?;
        sys::ftruncate(self.fd, len)
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
                    let _ = sys::ftruncate(self.fd, 0);
                }
            }
            // The path names another file now, or cannot be looked at any more: our own file,
            // wherever it is, is emptied through the descriptor.
            Ok(_) | Err(_) => {
                let _ = sys::ftruncate(self.fd, 0);
            }
        }
    }

    /// Makes this the pidfile that [`remove_at_exit`] removes. Called once, in the daemon.
    pub(crate) fn keep_until_exit(self) {
        OWNER.store(sys::getpid(), Ordering::SeqCst);
        let _ = DAEMON_PIDFILE.set(self);
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

/// Removes the daemon's pidfile, once, and only in the daemon itself (not in a process it
/// forked). Registered with `atexit` (normal return, `Err`, a panic that unwinds out of
/// `main`, `std::process::exit`) and called by the SIGTERM handler. Async-signal-safe: it
/// reads a `OnceLock` and makes a few system calls.
pub(crate) extern "C" fn remove_at_exit() {
    if OWNER.load(Ordering::SeqCst) != sys::getpid() {
        return;
    }
    if let Some(pidfile) = DAEMON_PIDFILE.get() {
        if !REMOVED.swap(true, Ordering::SeqCst) {
            pidfile.remove();
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)`, tried again for a moment while it is held: `status`, `stop`
/// and `reload` take a shared lock for an instant to look, and a start at that instant must
/// not conclude "already running".
fn lock_contended(fd: RawFd) -> io::Result<bool> {
    let deadline = Instant::now() + Duration::from_millis(100);
    loop {
        match sys::try_lock_exclusive(fd)? {
            true => return Ok(true),
            false if Instant::now() >= deadline => return Ok(false),
            false => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Writes the daemon's pid into its pidfile, if it has one.
pub(crate) fn write_daemon_pid(pid: sys::pid_t) -> io::Result<()> {
    DAEMON_PIDFILE
        .get()
        .map_or(Ok(()), |pidfile| pidfile.write_pid(pid))
}

/// What a pidfile says about the service, by its lock (SPEC §8 `status`).
#[derive(Debug)]
pub(crate) enum Probe {
    /// Locked: the service runs, with this pid if it could be read.
    Running(Option<u32>),
    /// There, but nobody holds its lock: a crash, a SIGKILL, or another program's file.
    Stale,
    /// No pidfile: not running.
    Absent,
    /// Cannot tell (permissions, not a regular file, ...).
    Unknown(io::Error),
}

/// Looks at the pidfile without creating or changing it. The lock is tested with a shared
/// lock taken and dropped at once, which conflicts only with the daemon's exclusive one.
pub(crate) fn probe(path: &std::path::Path) -> Probe {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Probe::Unknown(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path contains a NUL byte",
        ));
    };
    let fd = match sys::open(
        &c_path,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    ) {
        Ok(fd) => fd,
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Probe::Absent,
        Err(error) => return Probe::Unknown(explain(error)),
    };
    let probe = match sys::fstat(fd) {
        Ok(id) if !id.is_regular() => Probe::Unknown(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        )),
        Err(error) => Probe::Unknown(error),
        Ok(_) => match sys::try_lock_shared(fd) {
            Ok(true) => Probe::Stale,
            Ok(false) => Probe::Running(read_pid_of_holder(fd)),
            Err(error) => Probe::Unknown(error),
        },
    };
    sys::close(fd);
    probe
}

/// Removes a pidfile nobody holds the lock of (after the daemon was killed): takes the lock,
/// checks that the path still names the same file, unlinks it. Leaves a locked one alone.
pub(crate) fn remove_stale(path: &std::path::Path) {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let Ok(fd) = sys::open(
        &c_path,
        libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    ) else {
        return;
    };
    if matches!(sys::try_lock_exclusive(fd), Ok(true)) {
        if let (Ok(held), Ok(now)) = (sys::fstat(fd), sys::lstat(&c_path)) {
            if held.same_file(now) && held.is_regular() {
                let _ = sys::unlink(&c_path);
            }
        }
    }
    sys::close(fd);
}

/// The pidfile's directory, open, and the file's name in it.
struct Directory {
    fd: RawFd,
    name: CString,
}

impl Directory {
    /// Opens the directory; as root, refuses one that anyone may write and that has no
    /// sticky bit.
    fn open(path: &std::path::Path, as_root: bool) -> io::Result<Directory> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("/"),
        };
        let name = path
            .file_name()
            .ok_or_else(|| invalid("the path has no file name"))?;
        let name =
            CString::new(name.as_bytes()).map_err(|_| invalid("the path contains a NUL byte"))?;
        let c_parent = CString::new(parent.as_os_str().as_bytes())
            .map_err(|_| invalid("the path contains a NUL byte"))?;
        let fd = sys::open(&c_parent, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let directory = Directory { fd, name };
        let mode = sys::fstat(fd)?.mode;
        // Others may write (0o002), and no sticky bit (S_ISVTX, 0o1000 everywhere).
        if as_root && mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "its directory {} may be written by anyone and has no sticky bit; refusing it as root",
                    parent.display()
                ),
            ));
        }
        Ok(directory)
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

fn open_or_create(directory: &Directory) -> io::Result<(RawFd, bool)> {
    // O_NONBLOCK: opening a FIFO must not hang; it is then refused as not a regular file.
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    loop {
        match sys::openat(
            directory.fd,
            &directory.name,
            flags | libc::O_CREAT | libc::O_EXCL,
            0o644,
        ) {
            Ok(fd) => return Ok((fd, true)),
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(error),
        }
        match sys::openat(directory.fd, &directory.name, flags, 0) {
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
fn read_pid_of_holder(fd: RawFd) -> Option<u32> {
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
    text.parse().ok().filter(|&pid| pid > 0)
}

fn format_pid(pid: sys::pid_t, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut n = pid.unsigned_abs();
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        n /= 10;
        count += 1;
        if n == 0 {
            break;
        }
    }
    for i in 0..count {
        buf[i] = digits[count - 1 - i];
    }
    buf[count] = b'\n';
    count + 1
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
