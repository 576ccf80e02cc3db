//! SPEC §3 steps 3 and 4, in the launcher before the fork: everything resolved, checked and
//! opened, so that the children only make system calls on ready values ([`Plan`]).

use crate::builder::{Daemon, Ready, Shutdown};
use crate::error::{Error, PathAction};
use crate::files::{self, Directory, Location, Opener, Refusal};
use crate::listen;
use crate::paths::{self, Cwd};
use crate::pidfile::Pidfile;
use crate::privileges::Credentials;
use crate::signals::{Handling, LogTarget};
use crate::sys;
use nix::fcntl::OFlag;
use std::ffi::CString;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Everything resolved and opened before the fork (SPEC §3 step 3).
///
/// The children take the descriptors out of it (`Option::take`) and never drop a value that
/// owns memory: freeing is no more async-signal-safe than allocating.
pub(crate) struct Plan {
    pub(crate) pidfile: Option<PathBuf>,
    pub(crate) workdir: PathBuf,
    pub(crate) workdir_c: CString,
    pub(crate) devnull: Option<OwnedFd>,
    stdout_at: Option<Location>,
    stderr_at: Option<Location>,
    pub(crate) stdout: Option<LogFile>,
    pub(crate) stderr: Option<LogFile>,
    pub(crate) umask: u32,
    pub(crate) core_dumps: bool,
    pub(crate) ready: Ready,
    /// For the daemon's SIGHUP handler, which reopens the logs.
    pub(crate) handling: Option<Handling>,
    /// The new root, if any.
    pub(crate) chroot: Option<Root>,
    /// The ids to take, if any.
    pub(crate) credentials: Option<Credentials>,
    /// Descriptors 0 and 1 are an inetd's connection, and stay.
    pub(crate) inetd: bool,
}

/// The directory that becomes the daemon's root: its path (for messages) and, until the
/// daemon enters it, its descriptor.
pub(crate) struct Root {
    pub(crate) path: PathBuf,
    pub(crate) fd: Option<OwnedFd>,
}

/// A log file, open.
pub(crate) struct LogFile {
    pub(crate) fd: OwnedFd,
    /// This start created it (and removes it again if the start fails before the fork).
    created: bool,
}

/// Steps 3 and 4: the [`Plan`], then the pidfile locked, then the log files opened. On
/// failure nothing is left: no pidfile, no log file this start created.
pub(crate) fn prepare(
    daemon: &Daemon,
    credentials: Option<Credentials>,
    entries: &[listen::Entry],
    activation: listen::Activation,
    stdin_listener: bool,
    adopted: Option<Pidfile>,
) -> Result<(Plan, Option<Pidfile>), Error> {
    let mut plan = Plan::new(daemon, credentials)?;
    // The pidfile before the sockets and the log files: a launcher that loses to a running
    // instance must not take its port, nor create (and then remove) a log file it uses. An
    // upgrade has the running daemon's, locked.
    let pidfile = match (adopted, &plan.pidfile) {
        (Some(adopted), _) => Some(adopted),
        (None, Some(path)) => Some(Pidfile::lock(path.clone())?),
        (None, None) => None,
    };
    if let Err((entry, source)) = listen::prepare(entries, activation, stdin_listener) {
        plan.abandon(pidfile);
        return Err(Error::Listen { entry, source });
    }
    if let Err(error) = plan.open_logs(pidfile.as_ref()) {
        plan.abandon(pidfile);
        return Err(error);
    }
    Ok((plan, pidfile))
}

impl Plan {
    fn new(daemon: &Daemon, credentials: Option<Credentials>) -> Result<Plan, Error> {
        let mut cwd = Cwd::default();
        let pidfile = match &daemon.pidfile {
            Some(path) => Some(paths::resolve("pidfile", path, &mut cwd)?),
            None => None,
        };
        let chroot = match &daemon.chroot {
            Some(path) => {
                let path = paths::resolve("chroot", path, &mut cwd)?;
                let c = c_path(&path, PathAction::Chroot)?;
                check_dir(&path, &c, PathAction::Chroot)?;
                // Opened now, entered by descriptor in the daemon: the directory checked is the
                // one that becomes the root.
                let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
                let fd = sys::open(&c, flags, 0).map_err(|source| Error::Path {
                    action: PathAction::Chroot,
                    path: path.clone(),
                    source,
                })?;
                Some(Root { path, fd: Some(fd) })
            }
            None => None,
        };
        // Inside a chroot, the working directory is an absolute path under the new root.
        let workdir = match &chroot {
            Some(_) => {
                let expanded = paths::expand_only("workdir", &daemon.workdir)?;
                if expanded.is_relative() {
                    return Err(Error::Path {
                        action: PathAction::Workdir,
                        path: expanded,
                        source: io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "with a chroot, the working directory must be an absolute path inside it",
                        ),
                    });
                }
                expanded
            }
            None => paths::resolve("workdir", &daemon.workdir, &mut cwd)?,
        };
        let log = |key, path: &Option<PathBuf>, action, cwd: &mut Cwd| match path {
            Some(path) => {
                let path = paths::resolve(key, path, cwd)?;
                Location::new(path.clone())
                    .map(Some)
                    .map_err(|source| Error::Path {
                        action,
                        path,
                        source,
                    })
            }
            None => Ok(None),
        };
        let stdout_at = log("stdout", &daemon.stdout, PathAction::OpenStdout, &mut cwd)?;
        let stderr_at = log("stderr", &daemon.stderr, PathAction::OpenStderr, &mut cwd)?;
        let workdir_c = c_path(&workdir, PathAction::Workdir)?;
        match &chroot {
            Some(root) => {
                let outside = root
                    .path
                    .join(workdir.strip_prefix("/").unwrap_or(&workdir));
                let c_outside = c_path(&outside, PathAction::Workdir)?;
                check_dir(&outside, &c_outside, PathAction::Workdir)?;
            }
            None => check_dir(&workdir, &workdir_c, PathAction::Workdir)?,
        }
        let devnull = sys::open(c"/dev/null", OFlag::O_RDWR, 0).map_err(|source| Error::Path {
            action: PathAction::OpenDevNull,
            path: PathBuf::from("/dev/null"),
            source,
        })?;
        let handling = Handling {
            graceful: daemon.shutdown == Some(Shutdown::Graceful),
            stdout: None,
            stderr: None,
            directories: Vec::new(),
        };
        Ok(Plan {
            pidfile,
            workdir,
            workdir_c,
            devnull: Some(devnull),
            stdout_at,
            stderr_at,
            stdout: None,
            stderr: None,
            umask: daemon.umask,
            core_dumps: daemon.core_dumps,
            ready: daemon.ready,
            handling: Some(handling),
            chroot,
            credentials,
            inetd: false,
        })
    }

    /// Opens (creating them 0640 if needed) the log files, with the checks of
    /// [`files`](crate::files): a log is never the pidfile. Each log's directory stays open
    /// for the daemon's `SIGHUP` reopen, once per directory. On failure, [`Plan::abandon`]
    /// undoes what it did.
    fn open_logs(&mut self, pidfile: Option<&Pidfile>) -> Result<(), Error> {
        let owner = self.credentials.as_ref().and_then(Credentials::uid);
        let opener = Opener::current(owner.unwrap_or(0));
        let owners = match owner {
            Some(uid) if uid != 0 => format!("root or the daemon's user (uid {uid})"),
            _ => "root".to_owned(),
        };
        let Some(handling) = self.handling.as_mut() else {
            return Ok(());
        };
        let mut opened: Vec<&Path> = Vec::new();
        for (action, at) in [
            (PathAction::OpenStdout, &self.stdout_at),
            (PathAction::OpenStderr, &self.stderr_at),
        ] {
            let Some(at) = at else { continue };
            let failed = |refusal: Refusal| Error::Path {
                action,
                path: at.path.clone(),
                source: refusal.into_error("a log file", &at.directory, &owners),
            };
            let index = match opened.iter().position(|dir| *dir == at.directory) {
                Some(index) => index,
                None => {
                    let directory = Directory::open(&at.directory, opener).map_err(failed)?;
                    handling.directories.push(directory.into_fd());
                    opened.push(&at.directory);
                    opened.len() - 1
                }
            };
            let directory = std::os::fd::AsFd::as_fd(&handling.directories[index]);
            let (fd, created, id) = files::open_log(directory, &at.name, opener).map_err(failed)?;
            let log = Some(LogFile { fd, created });
            let target = Some(LogTarget {
                directory: index,
                name: at.name.clone(),
            });
            // Stored first, so that `abandon` closes it (and removes it if it created it).
            match action {
                PathAction::OpenStdout => (self.stdout, handling.stdout) = (log, target),
                _ => (self.stderr, handling.stderr) = (log, target),
            }
            if let Some(pidfile) = pidfile.filter(|pidfile| pidfile.id().same_file(id)) {
                return Err(Error::Path {
                    action,
                    path: at.path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "it is the pidfile {}; a log must be another file",
                            pidfile.path().display()
                        ),
                    ),
                });
            }
        }
        Ok(())
    }

    /// The stderr log's path, if there is one (it may say why a daemon failed).
    pub(crate) fn stderr_path(&self) -> Option<&Path> {
        self.stderr_at.as_ref().map(|at| at.path.as_path())
    }

    /// Closes the descriptors the daemon no longer needs (or, in the launcher, its copies),
    /// once. Frees nothing: the children call it.
    pub(crate) fn close(&mut self) {
        drop(self.devnull.take());
        if let Some(root) = &mut self.chroot {
            drop(root.fd.take());
        }
        drop(self.stdout.take());
        drop(self.stderr.take());
    }

    /// Gives up in the launcher after a failure before the fork: removes the pidfile this
    /// start locked and the log files it created, and closes everything.
    pub(crate) fn abandon(mut self, pidfile: Option<Pidfile>) {
        // An upgrade's pidfile is the running daemon's, and stays.
        if let Some(pidfile) = pidfile.filter(|pidfile| !pidfile.adopted()) {
            pidfile.remove();
        }
        listen::discard();
        let created = [
            (&self.stdout, &self.stdout_at),
            (&self.stderr, &self.stderr_at),
        ]
        .into_iter()
        .filter_map(|(log, at)| log.as_ref().filter(|log| log.created).and(at.as_ref()))
        .map(|at| at.path.clone())
        .collect::<Vec<_>>();
        self.close();
        for path in created {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn c_path(path: &Path, action: PathAction) -> Result<CString, Error> {
    paths::c_string(path).map_err(|source| Error::Path {
        action,
        path: path.to_owned(),
        source,
    })
}

/// A directory that exists and may be entered (by the launching user).
fn check_dir(path: &Path, c_path: &CString, action: PathAction) -> Result<(), Error> {
    let failed = |source| Error::Path {
        action,
        path: path.to_owned(),
        source,
    };
    let id = sys::stat(c_path).map_err(failed)?;
    if !id.is_dir() {
        return Err(failed(io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    sys::can_enter(c_path).map_err(failed)
}

/// What shows that an async runtime was already used in this process, if anything does:
/// - a tokio runtime entered on this thread;
/// - an epoll instance that this program created (what tokio's and mio's reactors are,
///   single-threaded ones included). An epoll descriptor inherited from the parent is no
///   sign: it cannot be close-on-exec, and reactors create theirs close-on-exec
///   (`EPOLL_CLOEXEC`);
/// - the signal state `tokio::signal` leaves for the rest of the process, even once its
///   runtime is gone: a handler (signal-hook-registry's), and a Unix socket pair this
///   program created that the handler writes into. The start closes that pair in the
///   daemon, and the handler would then write into whatever gets its number. Both must be
///   there: a handler alone (a debugger's, a sanitizer's) is no sign, nor is a pair the
///   start keeps (`keep`).
///
/// `status` is what `/proc/self/status` said: the size of the descriptor table, and the
/// signals caught.
pub(crate) fn async_runtime_in_use(status: &SelfStatus, keep: &[RawFd]) -> Option<String> {
    #[cfg(feature = "tokio")]
    if crate::asynchronous::runtime_entered() {
        return Some(
            "tokio::runtime::Handle::try_current() succeeds: this thread is inside a tokio \
             runtime"
                .to_owned(),
        );
    }
    // No sign either: Rust's runtime catches SIGSEGV and SIGBUS (stack overflows), and glibc
    // the signals it reserves below SIGRTMIN for its threads (before 2.34, in every process).
    let ours = (1u64 << (libc::SIGSEGV - 1)) | (1 << (libc::SIGBUS - 1));
    let reserved =
        (32..sys::lowest_realtime_signal()).fold(0u64, |mask, signal| mask | (1 << (signal - 1)));
    let handled = status.caught.map_or(0, |mask| mask & !ours & !reserved);
    // Only close-on-exec descriptors: an inherited one cannot be. Their numbers are tried up
    // to the size of the descriptor table (`FDSize`): poll(2) finds the open ones, 256 numbers
    // a call, and fcntl(2) reads their flags; cheaper by far than listing /proc/self/fd, which
    // takes milliseconds per thousand descriptors. The links are read for the close-on-exec
    // ones alone. (0-2 too: a program may have closed its stdio.) A huge table (one inherited
    // descriptor with a high number makes it so) is listed instead: a listing costs per open
    // descriptor, the numbers per slot.
    let numbers: Vec<RawFd> = match status.fd_table_size {
        Some(size) if size <= 65_536 => sys::close_on_exec_among(0..size as RawFd),
        _ => crate::fds::listed_descriptors()?
            .into_iter()
            .filter_map(|fd| RawFd::try_from(fd).ok())
            .filter(|&fd| sys::is_close_on_exec(fd))
            .collect(),
    };
    for fd in numbers {
        let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        if target.as_os_str() == "anon_inode:[eventpoll]" {
            return Some(format!(
                "descriptor {fd} is an epoll instance this program created: the reactor of a \
                 runtime such as tokio's"
            ));
        }
        if handled != 0
            && !keep.contains(&fd)
            && target
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"socket:")
            && sys::is_unix_socket_pair_end(fd)
        {
            let signals: Vec<String> = (1..=64)
                .filter(|signal| handled & (1 << (signal - 1)) != 0)
                .map(crate::error::signal_name)
                .collect();
            return Some(format!(
                "a handler for {} was installed before the start, and descriptor {fd} is a \
                 Unix socket pair this program created: the signal state of \
                 tokio::signal (or signal-hook), which outlives its runtime; listen for \
                 signals in the daemon's main instead",
                signals.join(", ")
            ));
        }
    }
    None
}

/// What one read of `/proc/self/status` tells the start: how many threads the process has,
/// the size of its descriptor table, and which signals it ignores (`SigIgn`, bit `n - 1` for signal `n`) and catches. `None` for what the
/// system does not tell (no `/proc`).
#[derive(Debug, Default)]
pub(crate) struct SelfStatus {
    pub(crate) threads: Option<usize>,
    pub(crate) ignored: Option<u64>,
    /// The signals caught by a handler (`SigCgt`, the same bits).
    pub(crate) caught: Option<u64>,
    /// The size of the descriptor table: every open descriptor is below it.
    pub(crate) fd_table_size: Option<u64>,
}

pub(crate) fn self_status() -> SelfStatus {
    // Read whole into a buffer of its size (about 1.4 KiB), in two reads: fs::read_to_string
    // would ask the size first (0 for /proc: statx, lseek) and grow from 32 bytes, eight reads.
    // (`take` leaves out File's size probe.)
    let mut text = String::with_capacity(4096);
    let read = std::fs::File::open("/proc/self/status")
        .and_then(|file| io::Read::read_to_string(&mut io::Read::take(file, 1 << 20), &mut text));
    if read.is_err() {
        return SelfStatus::default();
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    SelfStatus {
        threads: field("Threads:").and_then(|count| count.parse().ok()),
        ignored: field("SigIgn:").and_then(|mask| u64::from_str_radix(mask, 16).ok()),
        caught: field("SigCgt:").and_then(|mask| u64::from_str_radix(mask, 16).ok()),
        fd_table_size: field("FDSize:").and_then(|size| size.parse().ok()),
    }
}
