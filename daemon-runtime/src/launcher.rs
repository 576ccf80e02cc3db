//! The launcher's side of SPEC §3 step 12: after the fork, wait for the daemon's word, its
//! end, the deadline, or a Ctrl-C; and when the start fails, make sure nothing of it is left.
//!
//! Whether the daemon is gone is learnt from the process, never from the readiness pipe (a
//! daemon that becomes ready closes the pipe too). The launcher is a child subreaper while it
//! waits (prctl(2) `PR_SET_CHILD_SUBREAPER`), so once the first child has exited the daemon is
//! the launcher's child: `waitpid` tells how it ended, and its pid cannot be reused before the
//! launcher has reaped it. A pidfd (pidfd_open(2)) wakes the wait when it exits. Every process
//! of the start (the daemon and what it forked) is in the session and process group the first
//! child created, whose id is the first child's pid: a failed start kills that group.

use crate::readiness::{Listener, Message};
use crate::sys::{self, Exit};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long the launcher waits for a daemon it stopped, or that failed, to be gone before it
/// kills what is left with `SIGKILL`.
pub(crate) const GONE_WAIT: Duration = Duration::from_secs(3);

/// Timeouts above this are taken as this, so that no deadline overflows.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Timeouts below this are taken as this: the waits count in milliseconds.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The signal that cancelled the start (`SIGINT`, `SIGTERM`), or 0.
static CANCEL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_cancel(signal: libc::c_int) {
    CANCEL.store(signal, Ordering::SeqCst);
}

/// The signals that cancel a start.
const CANCELLING: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Catches `SIGINT` and `SIGTERM` in the launcher, from the start of the launch: a Ctrl-C
/// cancels the start instead of killing the launcher half-way. Returns what they were, for
/// [`restore_after_failure`].
pub(crate) fn catch_cancel() -> io::Result<Vec<sys::SavedAction>> {
    CANCEL.store(0, Ordering::SeqCst);
    CANCELLING
        .iter()
        .map(|&signal| sys::set_interrupting_handler(signal, on_cancel))
        .collect()
}

/// Blocks them until the wait, which unblocks them only while it sleeps (ppoll(2)): a
/// Ctrl-C between a look at the flag and the sleep still wakes it.
pub(crate) fn defer_cancel() -> io::Result<()> {
    sys::block_signals(&CANCELLING)
}

/// In the first child: `SIGINT` and `SIGTERM` back to their defaults, then nothing blocked
/// (a child inherits no pending signal).
pub(crate) fn release_cancel() {
    for signal in CANCELLING {
        let _ = sys::set_disposition(signal, sys::Disposition::Default);
    }
    let _ = sys::unblock_all_signals();
}

/// In a launcher whose start failed, before [`Daemon::start`](crate::Daemon::start) returns
/// the error: nothing blocked (a signal that came while blocked runs the cancel handler now,
/// not a default action that would kill the launcher before it says why), then `SIGINT` and
/// `SIGTERM` as the program had them, and `SIGHUP` and `SIGXFSZ` (ignored during the launch)
/// back to their defaults.
pub(crate) fn restore_after_failure(saved: &[sys::SavedAction]) {
    let _ = sys::unblock_all_signals();
    for (signal, saved) in CANCELLING.iter().zip(saved) {
        let _ = sys::restore_action(*signal, saved);
    }
    for signal in [libc::SIGHUP, libc::SIGXFSZ] {
        let _ = sys::set_disposition(signal, sys::Disposition::Default);
    }
}

/// The signal that cancelled the start, if one came.
pub(crate) fn cancelled() -> Option<i32> {
    match CANCEL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// What the wait ended on.
pub(crate) enum Outcome {
    /// A word from the daemon.
    Message(Message),
    /// The daemon is gone (how it ended is in [`Watch::exit`]).
    Gone,
    /// The deadline passed.
    TimedOut,
    /// `SIGINT` or `SIGTERM` came.
    Cancelled(i32),
    /// Waiting failed.
    Failed(io::Error),
}

/// The daemon being started, watched from the launcher.
pub(crate) struct Watch {
    listener: Listener,
    /// The first child's pid: the id of the new session and process group.
    group: sys::pid_t,
    pid: Option<sys::pid_t>,
    pidfd: Option<RawFd>,
    exit: Option<Exit>,
    gone: bool,
    /// Processes of the start reaped before the daemon's pid was known, with how they ended:
    /// a daemon that said its pid and died at once may be among them.
    reaped: Vec<(sys::pid_t, Exit)>,
}

impl Watch {
    pub(crate) fn new(listener: Listener, group: sys::pid_t) -> Watch {
        Watch {
            listener,
            group,
            pid: None,
            pidfd: None,
            exit: None,
            gone: false,
            reaped: Vec::new(),
        }
    }

    /// The daemon's pid, once it sent it.
    pub(crate) fn pid(&self) -> Option<sys::pid_t> {
        self.pid
    }

    /// How the daemon ended, where the launcher could learn it.
    pub(crate) fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// The next thing that happens, waiting until `deadline` at most.
    pub(crate) fn next(&mut self, deadline: Instant) -> Outcome {
        loop {
            if let Some(message) = self.message() {
                return Outcome::Message(message);
            }
            if let Some(signal) = cancelled() {
                return Outcome::Cancelled(signal);
            }
            if self.is_gone() {
                // What it wrote before it went still counts.
                self.listener.drain_now();
                return match self.message() {
                    Some(message) => Outcome::Message(message),
                    None => Outcome::Gone,
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Outcome::TimedOut;
            }
            if let Err(error) = self.sleep(left) {
                return Outcome::Failed(error);
            }
        }
    }

    /// Sleeps until the pipe has something, the daemon exits, a signal comes, or `left`.
    fn sleep(&mut self, left: Duration) -> io::Result<()> {
        // Without a way to be woken by the daemon's exit, look again every 5 ms.
        let wakes_on_exit =
            self.pidfd.is_some() || (self.pid.is_none() && self.listener.fd().is_some());
        let left = match wakes_on_exit {
            true => left,
            false => left.min(Duration::from_millis(5)),
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match sys::wait_either([self.listener.fd(), self.pidfd], ms) {
            Ok([true, _]) => self.listener.read_some(),
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The next message read, after taking note of the daemon's pid.
    fn message(&mut self) -> Option<Message> {
        let message = self.listener.message()?;
        if let Message::Pid(pid) = message {
            self.watch(pid);
        }
        Some(message)
    }

    fn watch(&mut self, pid: sys::pid_t) {
        self.pid = Some(pid);
        if let Some(&(_, exit)) = self.reaped.iter().find(|(reaped, _)| *reaped == pid) {
            self.exit = Some(exit);
            self.gone = true;
            return;
        }
        // The daemon is this process's child (the first child has exited and we are its
        // subreaper), so the pid cannot have been reused before we reap it.
        self.pidfd = sys::pidfd_open(pid).ok();
    }

    /// Whether the daemon (or, before its pid came, every process of the start) is gone.
    fn is_gone(&mut self) -> bool {
        if self.gone {
            return true;
        }
        self.gone = match self.pid {
            // Not reaped yet: a zombie keeps the process group's number from being reused.
            Some(pid) => match sys::peek_exit(pid) {
                Ok(Some(exit)) => {
                    self.exit = Some(exit);
                    true
                }
                Ok(None) => false,
                // Not our child (no subreaper on this system): ask the pidfd, or the kernel.
                Err(_) => match self.pidfd {
                    Some(pidfd) => matches!(sys::wait_readable(pidfd, 0), Ok(true)),
                    None => is_missing(sys::kill(pid, 0)),
                },
            },
            None => {
                self.reap_group();
                is_missing(sys::kill(-self.group, 0))
            }
        };
        self.gone
    }

    /// Reaps every process of the start that has ended and is this launcher's child.
    fn reap_group(&mut self) {
        while let Ok(Some((pid, exit))) = sys::try_wait(-self.group) {
            match self.pid {
                Some(daemon) if daemon == pid => self.exit = Some(exit),
                Some(_) => {}
                None => self.reaped.push((pid, exit)),
            }
        }
    }

    /// After a failed start: ends every process of it. With `ask` (a timeout, a Ctrl-C), the
    /// daemon first gets `SIGTERM` and [`GONE_WAIT`] to go by itself (with `shutdown = "exit"`
    /// it removes its pidfile then); a daemon that said it failed gets the same time to exit.
    /// Whatever of the start is still there then (the daemon, processes it forked) gets
    /// `SIGKILL`. Returns once they are gone, or after a second [`GONE_WAIT`].
    pub(crate) fn end_all(&mut self, ask: bool) {
        if ask {
            let _ = match self.pid {
                Some(pid) => sys::kill(pid, libc::SIGTERM),
                None => sys::kill(-self.group, libc::SIGTERM),
            };
        }
        let deadline = Instant::now() + GONE_WAIT;
        while !self.is_gone() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.sleep(left);
        }
        // The group's number is safe to signal: its first member, the daemon, is at worst a
        // zombie not reaped yet. What left the group (setsid) is not reached.
        let _ = sys::kill(-self.group, libc::SIGKILL);
        if let Some(pid) = self.pid.filter(|_| !self.gone) {
            let _ = sys::kill(pid, libc::SIGKILL); // in case it left the group
        }
        let deadline = Instant::now() + GONE_WAIT;
        loop {
            self.reap_group();
            let group_gone = is_missing(sys::kill(-self.group, 0));
            if (group_gone && self.is_gone()) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd {
            sys::close(pidfd);
        }
    }
}

fn is_missing(result: io::Result<()>) -> bool {
    matches!(result, Err(error) if error.raw_os_error() == Some(libc::ESRCH))
}
