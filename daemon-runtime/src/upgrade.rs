//! SPEC §10: the `upgrade` command, which replaces the running daemon with the program now at
//! its path, on the same listening sockets, with the pidfile's lock passed on without a gap.
//!
//! The mechanism: `upgrade` is run from the new binary (the one now installed). It takes the
//! running daemon's pidfile descriptor and its listening sockets with pidfd_getfd(2): the same
//! open file descriptions, so the lock that the daemon holds and the sockets' queues. Then it
//! is a launcher like any other, with those instead of a new lock and new binds: the new
//! daemon goes through the whole start-up sequence, and the launcher waits for its readiness.
//! Once it is ready, the launcher writes its pid into the pidfile, sends the old daemon
//! `SIGTERM` (its graceful shutdown: it stops accepting and finishes what it has) and waits
//! for it to be gone (`SIGKILL` after `stop_timeout`). The old daemon sees that the pidfile
//! names another process, and leaves it. If the new daemon fails before it is ready, the
//! pidfile never named it: the old one was not touched.
//!
//! Limits: Linux 5.6 (pidfd_getfd), and the right to ptrace the daemon (root, or its own user
//! where the kernel allows that). Under systemd the unit's main process is systemd's to
//! replace: there, socket activation and `systemctl restart` do the job.

use crate::control::{lsb, Ended, Process};
use crate::listen::{Entry, Target};
use crate::output::{complain, say};
use crate::pidfile::{self, Pidfile};
use crate::sys::{self, FileId};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `upgrade` took from the running daemon, for the launcher.
#[derive(Debug)]
pub(crate) struct Upgrade {
    /// The daemon's pidfile: its open file description, locked.
    pub(crate) pidfile: Pidfile,
    /// Its listening sockets, by `listen` name.
    pub(crate) sockets: Vec<(String, OwnedFd)>,
    /// What the launcher needs once the new daemon is ready.
    pub(crate) switch: Switch,
}

/// The old daemon and the upgrade's own lock: the launcher's only (the new daemon closes its
/// copies of the descriptors). Dropped, it releases the lock: a start that fails anywhere
/// leaves no lock file behind.
#[derive(Debug)]
pub(crate) struct Switch {
    pub(crate) old: sys::pid_t,
    old_pidfd: Option<OwnedFd>,
    lock: Option<OwnedFd>,
    lock_path: PathBuf,
    lock_id: FileId,
}

/// How `upgrade` could not begin: the exit status, and why (nothing was changed).
pub(crate) struct Refused {
    pub(crate) code: i32,
    pub(crate) why: String,
}

fn refused(code: i32, why: impl Into<String>) -> Refused {
    Refused {
        code,
        why: why.into(),
    }
}

impl Upgrade {
    /// Its descriptors, for the sweep of inherited ones to keep: the pidfile's and the
    /// launcher's own (the sockets are kept as the activated ones they become).
    pub(crate) fn numbers(&self) -> Vec<RawFd> {
        let mut numbers = vec![self.pidfile.fd_number()];
        numbers.extend(self.switch.old_pidfd.iter().map(AsRawFd::as_raw_fd));
        numbers.extend(self.switch.lock.iter().map(AsRawFd::as_raw_fd));
        numbers
    }
}

/// Finds the running daemon of `pidfile_path` and takes what the new one needs. Nothing is
/// changed for the running daemon: only descriptors are duplicated.
pub(crate) fn begin(
    pidfile_path: &Path,
    entries: &[String],
    name: &str,
) -> Result<Upgrade, Refused> {
    let entries: Vec<Entry> = entries
        .iter()
        .map(|entry| Entry::parse(entry).map_err(|why| refused(lsb::FAILURE, why)))
        .collect::<Result<_, _>>()?;
    // One upgrade at a time: a lock of its own, next to the pidfile.
    let lock_path = lock_path(pidfile_path);
    let lock = match Pidfile::lock(lock_path.clone()) {
        Ok(lock) => lock,
        Err(crate::Error::AlreadyRunning { pid, .. }) => {
            let by = pid.map_or(String::new(), |pid| format!(" (pid {pid})"));
            return Err(refused(
                lsb::FAILURE,
                format!("another upgrade is under way{by}"),
            ));
        }
        Err(error) => return Err(refused(lsb::FAILURE, error.to_string())),
    };
    let _ = lock.write_pid(sys::getpid());
    let release = |lock: Pidfile| lock.remove();
    let process = match Process::find_running(pidfile_path) {
        Ok(Some(process)) => process,
        Ok(None) => {
            release(lock);
            return Err(refused(lsb::NOT_RUNNING, "not running: nothing to upgrade"));
        }
        Err(why) => {
            release(lock);
            return Err(refused(lsb::FAILURE, why));
        }
    };
    match take(&process, pidfile_path, &entries, name) {
        Ok((pidfile, sockets, old_pidfd)) => {
            let (lock, lock_path, lock_id) = lock.into_fd();
            Ok(Upgrade {
                pidfile,
                sockets,
                switch: Switch {
                    old: process.pid,
                    old_pidfd: Some(old_pidfd),
                    lock: Some(lock),
                    lock_path,
                    lock_id,
                },
            })
        }
        Err(refusal) => {
            release(lock);
            Err(refusal)
        }
    }
}

/// Whether `pid` looks like a daemon that detached, not one in the foreground. A heuristic, on
/// the side of refusing: a detached daemon whose first child is not reaped yet is refused,
/// and a foreground one whose waiting parent and session leader are both gone passes.
///
/// A detached daemon has a session of its own, made by the first child of its start, which is
/// long gone; its parent (init, or a subreaper) is outside that session, as no process can
/// join a session from outside. A foreground daemon leads its session (a supervisor's
/// `setsid`), or shares it with a live leader, or with its parent (the process that started it
/// and waits for it, even when the session's leader is gone, as under a CI runner), or is
/// PID 1, or is in a session whose leader is outside this PID namespace (session 0).
fn detached(pid: sys::pid_t) -> io::Result<bool> {
    let (parent, session) = parent_and_session(pid)?;
    let Some(session) = session else {
        return Ok(false);
    };
    let parent_session = parent.and_then(|parent| parent_and_session(parent).ok()?.1);
    Ok(pid != 1
        && session != 0
        && session != pid
        && !Path::new(&format!("/proc/{session}")).exists()
        && parent_session != Some(session))
}

/// The parent and the session of `pid`, from `/proc/PID/stat` (fields 4 and 6).
fn parent_and_session(pid: sys::pid_t) -> io::Result<(Option<sys::pid_t>, Option<sys::pid_t>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold anything, spaces included.
    let fields = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3)?.parse::<sys::pid_t>().ok();
    Ok((field(4), field(6)))
}

/// The running daemon's pidfile and sockets, after the checks that it is this service,
/// started where it can be upgraded.
#[allow(clippy::type_complexity)]
fn take(
    process: &Process,
    pidfile_path: &Path,
    entries: &[Entry],
    name: &str,
) -> Result<(Pidfile, Vec<(String, OwnedFd)>, OwnedFd), Refused> {
    let pid = process.pid;
    // What /proc says of the daemon: unreadable, it is not ours to inspect, nor to ptrace.
    let not_allowed = |what: &str, error: io::Error| {
        refused(
            lsb::NO_PRIVILEGE,
            format!(
                "cannot inspect pid {pid} (/proc/{pid}/{what}: {}): upgrade needs root, or the \
                 right to ptrace the daemon",
                crate::error::describe(&error)
            ),
        )
    };
    // Under systemd (a unit's cgroup), the unit's processes are systemd's to replace.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|error| not_allowed("cgroup", error))?;
    if let Some(unit) = cgroup
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .find(|unit| unit.ends_with(".service"))
    {
        return Err(refused(
            lsb::FAILURE,
            format!(
                "pid {pid} runs under systemd, in {unit}, whose processes are systemd's to \
                 replace: upgrade with socket activation and `systemctl restart` instead (the \
                 socket stays open and queues the connections meanwhile; `{name} unit socket` \
                 writes the socket unit)"
            ),
        ));
    }
    // Only a daemon that detached: in the foreground, a supervisor (or a terminal) watches
    // that very process, and would see it end.
    if !detached(pid).map_err(|error| not_allowed("stat", error))? {
        return Err(refused(
            lsb::FAILURE,
            format!(
                "pid {pid} runs in the foreground (under a supervisor, or `run`): upgrade \
                 replaces a daemon that detached; restart this one through what started it"
            ),
        ));
    }
    // The program at our path replaces the daemon that was started from it.
    let ours = std::env::current_exe().map_err(|error| {
        refused(
            lsb::FAILURE,
            format!("cannot tell which program this is: {error}"),
        )
    })?;
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|error| not_allowed("exe", error))?;
    let theirs = theirs.to_string_lossy();
    let theirs = theirs.strip_suffix(" (deleted)").unwrap_or(&theirs);
    if Path::new(theirs) != ours {
        return Err(refused(
            lsb::FAILURE,
            format!(
                "pid {pid} runs {theirs}, not {}: upgrade replaces a daemon with the program \
                 now at the path it was started from",
                ours.display()
            ),
        ));
    }
    let Some(pidfd) = process.pidfd() else {
        return Err(refused(
            lsb::FAILURE,
            "upgrade needs pidfds (Linux 5.6), which this system does not give",
        ));
    };
    let get = |fd: RawFd| {
        sys::pidfd_getfd(pidfd, fd).map_err(|error| {
            let (code, how) = match error.raw_os_error() {
                Some(libc::EPERM) => (
                    lsb::NO_PRIVILEGE,
                    " (upgrade needs root, or the right to ptrace the daemon)",
                ),
                Some(libc::ENOSYS) => (lsb::FAILURE, " (upgrade needs Linux 5.6)"),
                _ => (lsb::FAILURE, ""),
            };
            refused(
                code,
                format!(
                    "cannot take pid {pid}'s descriptors: pidfd_getfd: {}{how}",
                    crate::error::describe(&error)
                ),
            )
        })
    };
    let pidfile_id = sys::lstat(
        &crate::paths::c_string(pidfile_path)
            .map_err(|error| refused(lsb::FAILURE, format!("pidfile: {error}")))?,
    )
    .map_err(|error| refused(lsb::FAILURE, format!("pidfile: {error}")))?;
    let number = pidfile::locking_descriptor(pid as u32, pidfile_id).ok_or_else(|| {
        refused(
            lsb::FAILURE,
            format!("pid {pid} does not show the lock of its pidfile in /proc/{pid}/fdinfo"),
        )
    })?;
    let pidfile = Pidfile::adopt(get(number)?, pidfile_path.to_owned())
        .map_err(|error| refused(lsb::FAILURE, format!("pidfile: {error}")))?;
    let mut sockets = Vec::new();
    // Each entry expanded and resolved once; one that cannot be matches no socket.
    let mut cwd = crate::paths::Cwd::default();
    let targets: Vec<Option<Target>> = entries
        .iter()
        .map(|entry| entry.target(&mut cwd).ok())
        .collect();
    let mut found: Vec<Option<OwnedFd>> = entries.iter().map(|_| None).collect();
    for (number, target) in descriptors(pid) {
        if !target.starts_with("socket:") {
            continue;
        }
        let Ok(fd) = get(number) else { continue };
        if let Some(slot) = targets
            .iter()
            .zip(found.iter_mut())
            .find(|(target, slot)| {
                slot.is_none()
                    && target
                        .as_ref()
                        .is_some_and(|t| t.is_listening_at(fd.as_fd()))
            })
            .map(|(_, slot)| slot)
        {
            *slot = Some(fd);
        }
    }
    for (entry, fd) in entries.iter().zip(found) {
        match fd {
            Some(fd) => sockets.push((entry.name.clone(), fd)),
            None => {
                return Err(refused(
                    lsb::FAILURE,
                    format!(
                        "pid {pid} has no listening socket for `listen` entry \"{}\": it does \
                         not look like this service",
                        entry.written()
                    ),
                ))
            }
        }
    }
    let old_pidfd = pidfd
        .try_clone_to_owned()
        .map_err(|error| refused(lsb::FAILURE, format!("pidfd: {error}")))?;
    Ok((pidfile, sockets, old_pidfd))
}

/// The open descriptors of `pid` and what they are (`/proc/PID/fd`).
fn descriptors(pid: sys::pid_t) -> Vec<(RawFd, String)> {
    let Ok(listed) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    listed
        .flatten()
        .filter_map(|entry| {
            let number = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((number, target.to_string_lossy().into_owned()))
        })
        .collect()
}

impl Switch {
    /// In the new daemon (between the fork and readiness): closes its copies of the
    /// launcher's descriptors, without freeing anything and without touching the lock file.
    pub(crate) fn close_in_child(mut self) {
        drop(self.old_pidfd.take());
        drop(self.lock.take());
        std::mem::forget(self);
    }

    /// Whether the old daemon still runs.
    fn old_alive(&self) -> bool {
        self.old_pidfd
            .as_ref()
            .is_some_and(|pidfd| alive(pidfd.as_fd()))
    }

    /// In the launcher, once the new daemon `new` is ready: checks that the old one and its
    /// pidfile are still there (else the lock may be lost: the new daemon is stopped), that
    /// the new one still runs, makes the pidfile name it, then stops the old one (`SIGTERM`,
    /// `SIGKILL` after `stop_timeout`) and says how it went.
    pub(crate) fn finish(
        self,
        new: sys::pid_t,
        pidfile: Pidfile,
        stop_timeout: Duration,
        name: &str,
    ) -> ! {
        let old = self.old;
        // The new daemon is this subreaper's child: its pid cannot be reused meanwhile.
        let new_pidfd = sys::pidfd_open(new).ok();
        let new_alive = || {
            new_pidfd
                .as_ref()
                .map_or(true, |pidfd| alive(pidfd.as_fd()))
        };
        let fail = |why: String| -> ! {
            complain!("{name}: not upgraded: {why}");
            std::process::exit(lsb::FAILURE)
        };
        if !self.old_alive() || !pidfile.still_at_path() {
            stop(new_pidfd.as_ref().map(AsFd::as_fd), stop_timeout);
            fail(format!(
                "pid {old} ended during the upgrade, and its pidfile may be gone with it; the \
                 new daemon (pid {new}) was stopped: start the service again"
            ));
        }
        if !new_alive() {
            fail(format!(
                "the new daemon (pid {new}) ended right after it was ready; pid {old} keeps \
                 running, untouched"
            ));
        }
        if let Err(error) = pidfile.write_pid(new) {
            let _ = pidfile.write_pid(old);
            stop(new_pidfd.as_ref().map(AsFd::as_fd), stop_timeout);
            fail(format!(
                "cannot write the pidfile: {}; pid {new} was stopped, pid {old} keeps running",
                crate::error::describe(&error)
            ));
        }
        let old_pidfd = self.old_pidfd.as_ref().map(AsFd::as_fd);
        let ended = stop(old_pidfd, stop_timeout);
        let still_named = pidfile.still_at_path();
        drop(self); // the upgrade's lock
        match ended {
            Ended::NotAtAll => {
                complain!("{name}: upgraded to pid {new}, but pid {old} is still running");
                std::process::exit(lsb::FAILURE)
            }
            _ if !still_named => {
                complain!(
                    "{name}: upgraded to pid {new}, but pid {old} removed the pidfile as it \
                     exited (a build from before `upgrade` does): pid {new} runs without one; \
                     restart it to have one"
                );
                std::process::exit(lsb::FAILURE)
            }
            Ended::Stopped => say!("{name}: upgraded (pid {old} -> pid {new})"),
            Ended::Killed => {
                say!("{name}: upgraded (pid {old} -> pid {new})");
                complain!(
                    "{name}: pid {old} was still running {} s after SIGTERM, and was killed",
                    stop_timeout.as_secs_f64()
                );
            }
        }
        std::process::exit(0)
    }
}

impl Drop for Switch {
    /// The upgrade's lock file goes (if it still is ours), and with the descriptor its lock.
    fn drop(&mut self) {
        if let Ok(c_path) = crate::paths::c_string(&self.lock_path) {
            if matches!(sys::lstat(&c_path), Ok(now) if now.same_file(self.lock_id)) {
                let _ = sys::unlink(&c_path);
            }
        }
        drop(self.lock.take());
    }
}

/// Whether the process of `pidfd` still runs.
fn alive(pidfd: std::os::fd::BorrowedFd) -> bool {
    !crate::control::wait_exit(pidfd, Duration::ZERO)
}

/// `SIGTERM`, then `SIGKILL` after `timeout`, waiting for the process of `pidfd` to end.
fn stop(pidfd: Option<std::os::fd::BorrowedFd>, timeout: Duration) -> Ended {
    let Some(pidfd) = pidfd else {
        return Ended::NotAtAll;
    };
    let ended = crate::control::terminate(
        |signal| sys::pidfd_send_signal(pidfd, signal),
        |timeout| crate::control::wait_exit(pidfd, timeout),
        timeout,
    );
    match ended {
        Ok(ended) => ended,
        // Gone already: stopped.
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Ended::Stopped,
        Err(_) => Ended::NotAtAll,
    }
}

/// The upgrade's lock, next to the pidfile: one upgrade at a time, and `stop` waits for it.
pub(crate) fn lock_path(pidfile: &Path) -> PathBuf {
    PathBuf::from(format!("{}.upgrade", pidfile.display()))
}

/// `Err` for the launcher to print, once the new daemon failed: the old one was not touched.
pub(crate) fn not_upgraded(old: sys::pid_t, error: &crate::Error) -> String {
    format!("not upgraded: {error}; pid {old} keeps running, untouched")
}
