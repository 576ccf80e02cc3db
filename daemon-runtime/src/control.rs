//! SPEC §8: the control commands of `control = true`, with the LSB init-script exit codes.

use crate::builder::Daemon;
use crate::error::{describe, holders_text, LockHolder};
use crate::output::{complain, say};
use crate::paths::{self, Cwd};
use crate::pidfile::{self, Probe};
use crate::sys;
use crate::sys::Signal;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first argument of a program with `control = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlCommand {
    /// Start the daemon (the default, without an argument). Already running: exit 0.
    Start,
    /// Send `SIGTERM`, wait until the daemon is gone, `SIGKILL` after `stop_timeout`.
    /// Not running: exit 0.
    Stop,
    /// `stop`, then `start`.
    Restart,
    /// Exit 0 running, 1 not running but a stale pidfile remains, 3 not running, 4 unknown.
    Status,
    /// Send `SIGHUP` (reopen the logs, reload). Not running: exit 7.
    Reload,
    /// Run in the foreground: no fork, everything else as for `start`.
    Run,
    /// Print a systemd service unit for the service (`unit`), or the socket unit of a
    /// `listen` entry (`unit socket [NAME]`).
    Unit,
    /// Replace the running daemon with the program now at its path, on the same `listen`
    /// sockets, without refusing a connection (SPEC §10). Exit 0 once the new daemon is ready
    /// and the old one gone; 1 if the new one failed (the old one keeps running, untouched);
    /// 7 not running.
    Upgrade,
}

/// LSB exit codes (Linux Standard Base, init script actions).
pub(crate) mod lsb {
    pub const SUCCESS: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NO_PRIVILEGE: i32 = 4;
    pub const NOT_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
    pub mod status {
        pub const RUNNING: i32 = 0;
        pub const DEAD_WITH_PIDFILE: i32 = 1;
        pub const NOT_RUNNING: i32 = 3;
        pub const UNKNOWN: i32 = 4;
    }
}

const COMMANDS: &str = "start|stop|restart|status|reload|upgrade|run|unit [socket [NAME]]";

impl ControlCommand {
    /// Reads the command from the first argument: `None` is [`ControlCommand::Start`].
    ///
    /// # Errors
    ///
    /// The argument that is not a command.
    pub fn parse(argument: Option<&OsStr>) -> Result<ControlCommand, String> {
        let Some(argument) = argument else {
            return Ok(ControlCommand::Start);
        };
        match argument.to_str() {
            Some("start") => Ok(ControlCommand::Start),
            Some("stop") => Ok(ControlCommand::Stop),
            Some("restart") => Ok(ControlCommand::Restart),
            Some("status") => Ok(ControlCommand::Status),
            Some("reload") => Ok(ControlCommand::Reload),
            Some("run") => Ok(ControlCommand::Run),
            Some("unit") => Ok(ControlCommand::Unit),
            Some("upgrade") => Ok(ControlCommand::Upgrade),
            _ => Err(argument.to_string_lossy().into_owned()),
        }
    }
}

/// What [`Daemon::run`] does after [`dispatch`].
pub(crate) enum Next {
    Exit(i32),
    Start,
    Foreground,
    Upgrade(Box<crate::upgrade::Upgrade>),
}

pub(crate) fn dispatch(daemon: &Daemon, name: &str) -> Next {
    let argument = std::env::args_os().nth(1);
    let command = match ControlCommand::parse(argument.as_deref()) {
        Ok(command) => command,
        Err(word) => {
            complain!("{name}: unknown command `{word}`\nusage: {name} [{COMMANDS}]");
            return Next::Exit(lsb::USAGE);
        }
    };
    // `unit` needs no pidfile: it only prints.
    if command == ControlCommand::Unit {
        return Next::Exit(unit(daemon, name));
    }
    let pidfile = match resolve_pidfile(daemon) {
        Ok(path) => path,
        Err(message) => {
            complain!("{name}: {message}");
            return Next::Exit(match command {
                ControlCommand::Status => lsb::status::UNKNOWN,
                _ => lsb::NOT_CONFIGURED,
            });
        }
    };
    match command {
        ControlCommand::Start => Next::Start,
        ControlCommand::Unit => unreachable!("answered above"),
        ControlCommand::Run => Next::Foreground,
        ControlCommand::Upgrade => match crate::upgrade::begin(&pidfile, &daemon.listen, name) {
            Ok(upgrade) => Next::Upgrade(Box::new(upgrade)),
            Err(refused) => {
                complain!("{name}: cannot upgrade: {}", refused.why);
                Next::Exit(refused.code)
            }
        },
        ControlCommand::Status => Next::Exit(status(name, &pidfile)),
        ControlCommand::Reload => Next::Exit(reload(name, &pidfile)),
        ControlCommand::Stop | ControlCommand::Restart if upgrading(name, &pidfile) => {
            Next::Exit(lsb::FAILURE)
        }
        ControlCommand::Stop => Next::Exit(stop(name, &pidfile, daemon.stop_timeout)),
        ControlCommand::Restart => match stop(name, &pidfile, daemon.stop_timeout) {
            // A process the daemon forked may hold the lock a moment longer.
            lsb::SUCCESS if wait_unlocked(&pidfile, daemon.stop_timeout) => Next::Start,
            lsb::SUCCESS => {
                complain!(
                    "{name}: stopped, but its pidfile {} is still locked",
                    pidfile.display()
                );
                Next::Exit(lsb::FAILURE)
            }
            code => Next::Exit(code),
        },
    }
}

/// Whether an `upgrade` is under way (its lock, next to the pidfile, is held); says so.
fn upgrading(name: &str, pidfile: &Path) -> bool {
    match pidfile::probe(&crate::upgrade::lock_path(pidfile)) {
        Probe::Running(pid) => {
            let by = pid.map_or(String::new(), |pid| format!(" (pid {pid})"));
            complain!("{name}: an upgrade is under way{by}; try again once it is over");
            true
        }
        _ => false,
    }
}

/// `unit`, `unit socket [NAME]`: prints the unit on stdout.
fn unit(daemon: &Daemon, name: &str) -> i32 {
    let arguments: Vec<String> = std::env::args().skip(2).collect();
    let printed = match arguments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => crate::unit::service(daemon, name),
        ["socket"] => crate::unit::socket(daemon, name, None),
        ["socket", entry] => crate::unit::socket(daemon, name, Some(entry)),
        _ => {
            complain!("{name}: usage: {name} unit [socket [NAME]]");
            return lsb::USAGE;
        }
    };
    match printed {
        Ok(unit) => {
            say!("{}", unit.trim_end());
            lsb::SUCCESS
        }
        Err(why) => {
            complain!("{name}: {why}");
            lsb::NOT_CONFIGURED
        }
    }
}

fn resolve_pidfile(daemon: &Daemon) -> Result<PathBuf, String> {
    let template = daemon
        .pidfile
        .as_ref()
        .ok_or("the control commands need a pidfile, and none is configured")?;
    paths::resolve("pidfile", template, &mut Cwd::default()).map_err(|error| error.to_string())
}

fn status(name: &str, pidfile: &Path) -> i32 {
    match pidfile::probe(pidfile) {
        Probe::Running(pid) => {
            say!(
                "{name}: running{}",
                pid.map_or(String::new(), |pid| format!(" (pid {pid})"))
            );
            lsb::status::RUNNING
        }
        Probe::Stale => {
            say!(
                "{name}: not running, but its pidfile {} remains (stale)",
                pidfile.display()
            );
            lsb::status::DEAD_WITH_PIDFILE
        }
        Probe::Absent => {
            say!("{name}: not running");
            lsb::status::NOT_RUNNING
        }
        Probe::Held { pid, holders } => {
            complain!(
                "{name}: cannot tell whether it runs: {}",
                held(pidfile, pid, &holders)
            );
            lsb::status::UNKNOWN
        }
        Probe::Unknown(error) => {
            complain!(
                "{name}: cannot tell whether it runs: pidfile {}: {}",
                pidfile.display(),
                describe(&error)
            );
            lsb::status::UNKNOWN
        }
    }
}

fn reload(name: &str, pidfile: &Path) -> i32 {
    let process = match running(name, pidfile) {
        Ok(Some(process)) => process,
        Ok(None) => {
            say!("{name}: not running");
            return lsb::NOT_RUNNING;
        }
        Err(code) => return code,
    };
    match process.signal(Signal::SIGHUP) {
        Ok(()) => {
            say!("{name}: reloading (pid {})", process.pid);
            lsb::SUCCESS
        }
        Err(error) => signal_failed(name, process.pid, &error),
    }
}

/// `SIGTERM`, then wait for the process to be gone (a pidfd: no sleeping loop), `SIGKILL`
/// after `timeout`. Returns as soon as the daemon is gone.
fn stop(name: &str, pidfile: &Path, timeout: Duration) -> i32 {
    let process = match running(name, pidfile) {
        Ok(Some(process)) => process,
        Ok(None) => {
            say!("{name}: not running");
            return lsb::SUCCESS;
        }
        Err(code) => return code,
    };
    let pid = process.pid;
    let start = Instant::now();
    let ended = terminate(
        |signal| process.signal(signal),
        |timeout| process.wait_gone(timeout),
        timeout,
    );
    match ended {
        Err(error) => signal_failed(name, pid, &error),
        Ok(Ended::Stopped) => {
            say!("{name}: stopped (pid {pid})");
            lsb::SUCCESS
        }
        Ok(Ended::Killed) => {
            // Killed, it could not remove its pidfile; nobody holds the lock now.
            pidfile::remove_stale(pidfile);
            let waited = start.elapsed().as_secs_f64();
            say!("{name}: killed (pid {pid}): still running {waited:.1} s after SIGTERM");
            lsb::SUCCESS
        }
        Ok(Ended::NotAtAll) => {
            complain!("{name}: pid {pid} is still running after SIGKILL");
            lsb::FAILURE
        }
    }
}

/// How a process that was asked to stop ended.
pub(crate) enum Ended {
    /// Within the time it had, after `SIGTERM`.
    Stopped,
    /// After `SIGKILL`.
    Killed,
    /// Not even after `SIGKILL` (5 s more).
    NotAtAll,
}

/// `SIGTERM`, a wait of at most `timeout` for the process to be gone, then `SIGKILL` and 5 s
/// more (`stop`, and `upgrade` for the old daemon). `Err` when `SIGTERM` could not be sent.
pub(crate) fn terminate(
    signal: impl Fn(Signal) -> io::Result<()>,
    gone: impl Fn(Duration) -> bool,
    timeout: Duration,
) -> io::Result<Ended> {
    signal(Signal::SIGTERM)?;
    if gone(timeout) {
        return Ok(Ended::Stopped);
    }
    let _ = signal(Signal::SIGKILL);
    Ok(match gone(Duration::from_secs(5)) {
        true => Ended::Killed,
        false => Ended::NotAtAll,
    })
}

/// The running daemon, watched (`Ok(None)`: not running); on failure, the exit code, after
/// saying why.
fn running<'a>(name: &str, pidfile: &'a Path) -> Result<Option<Process<'a>>, i32> {
    match Process::find(pidfile) {
        Ok(found) => Ok(found),
        Err(Missing::Pid) => {
            complain!(
                "{name}: running, but its pidfile {} holds no pid",
                pidfile.display()
            );
            Err(lsb::FAILURE)
        }
        Err(Missing::Pidfile(error)) => {
            complain!(
                "{name}: pidfile {}: {}",
                pidfile.display(),
                describe(&error)
            );
            Err(lsb::FAILURE)
        }
        Err(Missing::Held { pid, holders }) => {
            complain!(
                "{name}: {}; not signalling any process",
                held(pidfile, pid, &holders)
            );
            Err(lsb::FAILURE)
        }
    }
}

fn signal_failed(name: &str, pid: sys::pid_t, error: &io::Error) -> i32 {
    complain!("{name}: cannot signal pid {pid}: {}", describe(error));
    match error.raw_os_error() {
        Some(libc::EPERM) => lsb::NO_PRIVILEGE,
        _ => lsb::FAILURE,
    }
}

/// Waits until nobody holds the pidfile's lock, at most `timeout`.
fn wait_unlocked(pidfile: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while matches!(pidfile::probe(pidfile), Probe::Running(_)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The daemon's process, watched through a pidfd where the kernel gives them (Linux 5.3),
/// else through its pidfile's lock, which its exit releases.
pub(crate) struct Process<'a> {
    pub(crate) pid: sys::pid_t,
    pidfd: Option<OwnedFd>,
    pidfile: &'a Path,
}

/// Why [`Process::find`] found no process to act on, although the pidfile is locked.
enum Missing {
    /// No pid could be read from it.
    Pid,
    /// It cannot be read at all.
    Pidfile(io::Error),
    /// The lock is held, but not by the process it names.
    Held {
        pid: Option<u32>,
        holders: Vec<LockHolder>,
    },
}

/// Says that the pidfile's lock is held by processes that are not the daemon it names: a
/// worker that outlived the daemon, a forged pid, another user's lock.
fn held(pidfile: &Path, pid: Option<u32>, holders: &[LockHolder]) -> String {
    let names = match pid {
        Some(pid) => format!("names pid {pid}, which does not hold it"),
        None => "holds no pid".to_owned(),
    };
    format!(
        "its pidfile {} is locked by {}, but {names}",
        pidfile.display(),
        holders_text(holders)
    )
}

impl<'a> Process<'a> {
    /// Like [`Process::find`], with the reason there is no process to act on in words.
    pub(crate) fn find_running(pidfile: &'a Path) -> Result<Option<Process<'a>>, String> {
        Process::find(pidfile).map_err(|missing| match missing {
            Missing::Pid => format!("its pidfile {} holds no pid", pidfile.display()),
            Missing::Pidfile(error) => {
                format!("pidfile {}: {}", pidfile.display(), describe(&error))
            }
            Missing::Held { pid, holders } => held(pidfile, pid, &holders),
        })
    }

    /// Its pidfd, if the kernel gave one.
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The daemon that holds the pidfile's lock; `Ok(None)` when it is not running.
    ///
    /// The pid is read from the locked pidfile, a pidfd is opened on it, and the pidfile is
    /// read again: only if it still names the same pid, locked, is the pidfd that daemon's.
    /// A pid reused in between by another process is never signalled.
    fn find(pidfile: &'a Path) -> Result<Option<Process<'a>>, Missing> {
        for _ in 0..3 {
            let pid = match pidfile::probe(pidfile) {
                Probe::Running(Some(pid)) => pid as sys::pid_t,
                Probe::Running(None) => return Err(Missing::Pid),
                Probe::Stale | Probe::Absent => return Ok(None),
                Probe::Unknown(error) => return Err(Missing::Pidfile(error)),
                Probe::Held { pid, holders } => return Err(Missing::Held { pid, holders }),
            };
            let pidfd = match sys::pidfd_open(pid) {
                Ok(fd) => Some(fd),
                // Gone since: look again (a new daemon may be starting).
                Err(error) if error.raw_os_error() == Some(libc::ESRCH) => continue,
                // No pidfds here (an old kernel, or a seccomp filter that refuses them).
                Err(_) => None,
            };
            let process = Process {
                pid,
                pidfd,
                pidfile,
            };
            if !matches!(pidfile::probe(pidfile), Probe::Running(Some(again)) if again as sys::pid_t == pid)
            {
                continue;
            }
            // The pid is only what the file says: a daemon that was taken over could write
            // any pid there, and `stop` may run as root. `probe` said "running" only if that
            // process holds the pidfile's lock (where /proc tells; a process we may not
            // inspect, we may not signal either, unless we are root, who may inspect all).
            return Ok(Some(process));
        }
        Ok(None)
    }

    fn signal(&self, signal: Signal) -> io::Result<()> {
        match &self.pidfd {
            Some(pidfd) => sys::pidfd_send_signal(pidfd.as_fd(), signal),
            None => sys::kill(self.pid, Some(signal)),
        }
    }

    /// Waits until the process has exited, at most `timeout`.
    fn wait_gone(&self, timeout: Duration) -> bool {
        let Some(pidfd) = &self.pidfd else {
            // Without pidfds: the lock, which the kernel releases while the process exits,
            // a moment before it is a zombie.
            return wait_unlocked(self.pidfile, timeout);
        };
        wait_exit(pidfd.as_fd(), timeout)
    }
}

/// Waits until the process of `pidfd` has exited, at most `timeout`.
pub(crate) fn wait_exit(pidfd: std::os::fd::BorrowedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        match sys::wait_readable(pidfd, ms) {
            Ok(gone) => return gone,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
