//! The one error type. Its `Display` is the sentence the launcher prints after `NAME: `.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why the daemon did not start. The launcher prints it as `NAME: {error}` and exits with
/// [`Error::exit_code`]: 1, or `128 + signal` when a signal cancelled the start.
///
/// Every variant says what failed and why; the ones that involve a file carry its path, the
/// ones that come from a system call carry the `errno` as [`io::Error`] (its
/// [`source`](std::error::Error::source)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The process already had several threads: `fork` would keep only the calling one.
    Threads {
        /// How many threads there were.
        count: usize,
    },
    /// An async runtime was already used in this process (SPEC §5.1): forking would break
    /// it, even a single-threaded one.
    AsyncRuntime {
        /// What showed it.
        found: String,
    },
    /// A path setting uses an environment variable that is not set and has no default.
    Variable {
        /// The setting, such as `"pidfile"`.
        setting: &'static str,
        /// The path as written, before expansion.
        template: String,
        /// The variable that is not set.
        variable: String,
    },
    /// A path setting given to the builder has a malformed `$` expansion.
    Template {
        /// The setting, such as `"pidfile"`.
        setting: &'static str,
        /// The path as written.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file or directory could not be used.
    Path {
        /// What was being done.
        action: PathAction,
        /// The path, expanded and absolute.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// Another instance holds the pidfile's lock.
    AlreadyRunning {
        /// The pid it wrote, if it could be read.
        pid: Option<u32>,
        /// The pidfile.
        pidfile: PathBuf,
    },
    /// A system call that involves no path failed.
    System {
        /// What was being done.
        action: SystemAction,
        /// Why it failed.
        source: io::Error,
    },
    /// The `user` is not in the user database.
    UnknownUser {
        /// The name (or number) given.
        name: String,
    },
    /// The `group` is not in the group database.
    UnknownGroup {
        /// The name given.
        name: String,
    },
    /// A `listen` entry could not be bound (or is malformed).
    Listen {
        /// The entry, `NAME=ADDRESS`, as written.
        entry: String,
        /// Why.
        source: io::Error,
    },
    /// Socket activation's variables (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) are
    /// malformed.
    Activation {
        /// What is wrong, naming the variable.
        message: String,
    },
    /// The daemon did not become ready within `ready_timeout`, and was stopped.
    NotReady {
        /// The `ready_timeout` that passed.
        timeout: Duration,
        /// The daemon that was stopped, if its pid was known.
        pid: Option<u32>,
    },
    /// Another process holds the pidfile's lock, and it is not a live daemon of this service:
    /// a worker that outlived a crashed daemon, or another user's process.
    LockedByOther {
        /// The pidfile.
        pidfile: PathBuf,
        /// The pid the file names (a daemon that is gone), if any.
        pid: Option<u32>,
        /// The processes that hold the lock, as far as `/proc` shows them.
        holders: Vec<LockHolder>,
    },
    /// The daemon exited (or was killed) before it became ready, without saying why.
    ExitedBeforeReady {
        /// How it ended, where the launcher could learn it.
        exit: Option<Exit>,
        /// Its stderr log, which may say why.
        stderr_log: Option<PathBuf>,
    },
    /// The launcher got `SIGINT` or `SIGTERM` (a Ctrl-C) while it waited: it stopped the daemon
    /// and removed the pidfile. The launcher exits `128 + signal`.
    Cancelled {
        /// The signal.
        signal: i32,
        /// The daemon that was stopped, if its pid was known.
        pid: Option<u32>,
    },
    /// The body of `main` returned an error or panicked before it called
    /// [`ready()`](crate::ready()).
    Main {
        /// What it said.
        message: String,
    },
}

/// A process that holds a pidfile's lock ([`Error::LockedByOther`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command.is_empty() {
            true => write!(f, "pid {}", self.pid),
            false => write!(f, "pid {} ({})", self.pid, self.command),
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// This signal killed it.
    Signal(i32),
}

/// Says who holds a pidfile, for [`Error::LockedByOther`] and the `status` command: `pid 7
/// (worker), pid 9 (flock)`, or that they cannot be seen.
pub(crate) fn holders_text(holders: &[LockHolder]) -> String {
    if holders.is_empty() {
        return "a process this user may not look at".to_owned();
    }
    holders
        .iter()
        .map(LockHolder::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of a signal, for messages: `SIGKILL`, or `signal 40`.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        _ if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signal) => {
            return format!("SIGRTMIN+{}", signal - libc::SIGRTMIN())
        }
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// What was being done to a path when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathAction {
    /// Opening (or creating) the pidfile.
    OpenPidfile,
    /// Checking or locking the pidfile.
    LockPidfile,
    /// Writing the pid into the pidfile.
    WritePidfile,
    /// Checking or entering the working directory.
    Workdir,
    /// Opening the `stdout` log file.
    OpenStdout,
    /// Opening the `stderr` log file.
    OpenStderr,
    /// Opening `/dev/null`.
    OpenDevNull,
    /// Changing the root directory (`chroot`).
    Chroot,
}

/// What was being done when a system call without a path failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemAction {
    /// Finding the directory relative paths are resolved against.
    CurrentDir,
    /// Closing inherited descriptors.
    CloseDescriptors,
    /// Resetting signal dispositions and the signal mask.
    Signals,
    /// Creating the readiness pipe.
    ReadinessPipe,
    /// Waiting on the readiness pipe.
    ReadinessWait,
    /// Forking.
    Fork,
    /// Starting a new session.
    Setsid,
    /// Pointing stdin, stdout and stderr at their targets.
    Stdio,
    /// Setting `RLIMIT_CORE`.
    CoreLimit,
    /// Registering the pidfile removal at exit.
    ExitHandler,
    /// Setting the supplementary groups.
    SetGroups,
    /// Setting the group id.
    SetGid,
    /// Setting the user id.
    SetUid,
    /// Checking that every id is the target's and that root cannot be regained.
    VerifyPrivileges,
    /// Registering the handler that closes the pidfile in processes the daemon forks.
    ForkHandler,
    /// Opening the supervisor's notification socket (`NOTIFY_SOCKET`).
    Notify,
}

impl fmt::Display for PathAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathAction::OpenPidfile => "cannot open pidfile",
            PathAction::LockPidfile => "cannot lock pidfile",
            PathAction::WritePidfile => "cannot write pidfile",
            PathAction::Workdir => "cannot use working directory",
            PathAction::OpenStdout => "cannot open stdout log",
            PathAction::OpenStderr => "cannot open stderr log",
            PathAction::OpenDevNull => "cannot open",
            PathAction::Chroot => "cannot change the root directory to",
        })
    }
}

impl fmt::Display for SystemAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemAction::CurrentDir => {
                "cannot read the current directory (to resolve relative paths)"
            }
            SystemAction::CloseDescriptors => "cannot close inherited descriptors",
            SystemAction::Signals => "cannot reset signals",
            SystemAction::ReadinessPipe => "cannot create the readiness pipe",
            SystemAction::ReadinessWait => "cannot wait for readiness",
            SystemAction::Fork => "cannot fork",
            SystemAction::Setsid => "cannot start a new session (setsid)",
            SystemAction::Stdio => "cannot redirect stdin, stdout and stderr",
            SystemAction::CoreLimit => "cannot disable core dumps (RLIMIT_CORE)",
            SystemAction::ExitHandler => "cannot register the pidfile removal at exit",
            SystemAction::SetGroups => "cannot set the supplementary groups (setgroups)",
            SystemAction::SetGid => "cannot set the group id (setgid)",
            SystemAction::SetUid => "cannot set the user id (setuid)",
            SystemAction::Notify => "cannot use the supervisor's notification socket",
            SystemAction::ForkHandler => {
                "cannot register the handler that keeps forked processes off the pidfile (pthread_atfork)"
            }
            SystemAction::VerifyPrivileges => {
                "privileges were not fully dropped (an id or a group is not the target's, or setuid(0) still works)"
            }
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Threads { count } => write!(
                f,
                "cannot daemonize a process that has {count} threads: fork keeps only the calling \
                 thread; start the daemon first thing in main, before anything spawns a thread \
                 (a thread pool, a logger; an async runtime: let the daemon build it, with \
                 `#[daemon] async fn main` or `Daemon::run_async`)"
            ),
            Error::AsyncRuntime { found } => write!(
                f,
                "cannot daemonize a process in which an async runtime was already used \
                 ({found}): fork would break it; start the daemon first thing in main, and let \
                 it build the runtime (`#[daemon] async fn main`, or `Daemon::run_async`)"
            ),
            Error::Variable { setting, template, variable } => write!(
                f,
                "cannot expand {setting} \"{template}\": environment variable {variable} is not set \
                 (write ${{{variable}:-default}} to give a fallback)"
            ),
            Error::Template { setting, template, reason } => {
                write!(f, "cannot expand {setting} \"{template}\": {reason}")
            }
            Error::Path { action, path, source } => {
                write!(f, "{action} {}: {}", path.display(), describe(source))
            }
            Error::AlreadyRunning { pid: Some(pid), .. } => write!(f, "already running (pid {pid})"),
            Error::AlreadyRunning { pid: None, pidfile } => write!(
                f,
                "already running (pidfile {} is locked by another process)",
                pidfile.display()
            ),
            Error::System { action, source } => write!(f, "{action}: {}", describe(source)),
            Error::Listen { entry, source } => {
                write!(f, "cannot listen on {entry}: {}", describe(source))
            }
            Error::Activation { message } => write!(f, "socket activation: {message}"),
            Error::UnknownUser { name } => write!(f, "unknown user `{name}`"),
            Error::UnknownGroup { name } => write!(f, "unknown group `{name}`"),
            Error::NotReady { timeout, pid } => {
                write!(f, "not ready within {timeout:?} (ready_timeout); ")?;
                match pid {
                    Some(pid) => write!(f, "stopped the daemon (pid {pid})"),
                    None => write!(f, "stopped the daemon"),
                }
            }
            Error::LockedByOther { pidfile, pid, holders } => {
                write!(
                    f,
                    "cannot start: pidfile {} is locked by {}, not by a running daemon of this service",
                    pidfile.display(),
                    holders_text(holders)
                )?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid}, which it names, does not hold it)")?;
                }
                f.write_str("; stop that process, then start again")
            }
            Error::ExitedBeforeReady { exit, stderr_log } => {
                match exit {
                    Some(Exit::Code(code)) => {
                        write!(f, "the daemon exited with status {code} before it was ready")?
                    }
                    Some(Exit::Signal(signal)) => write!(
                        f,
                        "the daemon was killed by {} before it was ready",
                        signal_name(*signal)
                    )?,
                    None => f.write_str("the daemon exited before it was ready")?,
                }
                match stderr_log {
                    Some(log) => write!(f, " (its stderr log {} may say why)", log.display()),
                    None => f.write_str(
                        " (it has no stderr log: set `stderr` to keep what it prints)",
                    ),
                }
            }
            Error::Cancelled { signal, pid } => {
                write!(f, "start cancelled by {}; ", signal_name(*signal))?;
                match pid {
                    Some(pid) => write!(f, "stopped the daemon (pid {pid})"),
                    None => f.write_str("nothing was left running"),
                }
            }
            Error::Main { message } => f.write_str(message),
        }
    }
}

/// `io::Error`'s own text, without the `(os error N)` tail for errors that have a message.
pub(crate) fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

impl Error {
    /// The `errno` behind this error, for `ERRNO=` to a supervisor.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            Error::Path { source, .. }
            | Error::System { source, .. }
            | Error::Listen { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The exit status the launcher ends with for this error: 1, or `128 + signal` for
    /// [`Error::Cancelled`], as a shell reports a command a signal ended.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Cancelled { signal, .. } => 128 + signal,
            _ => 1,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Path { source, .. } | Error::System { source, .. } => Some(source),
            _ => None,
        }
    }
}
