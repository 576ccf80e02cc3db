//! SPEC §3 steps 2 and 8, §5: the dispositions, and the daemon's handlers.

use crate::events;
use crate::files::{self, Opener};
use crate::notify;
use crate::pidfile;
use crate::sys::{self, Disposition, Signal, Standard};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

/// Step 2, in the launcher: an empty signal mask, and every inherited "ignore" back to
/// default, whatever the launching shell, supervisor or parent left behind.
///
/// Dispositions are inherited across exec only as "ignore" or "default"; a handler present
/// now was installed by this program itself (Rust's runtime catches `SIGSEGV` and `SIGBUS` to
/// report stack overflows) and is kept. Two exceptions: `SIGPIPE` stays as Rust set it (ignored, so writes return `EPIPE`), and
/// `SIGHUP` is ignored until the daemon is in its own session: a terminal that hangs up while
/// the launcher or the first child still belong to it must not kill the start half-way
/// (the `ssh host mysvc` race). The daemon handles `SIGHUP` itself from [`for_daemon`] on.
///
/// `ignored` is the set the process ignores (from `/proc/self/status`): only those are
/// looked at, a few calls instead of one or two per signal. Without it, every signal is.
pub(crate) fn reset_for_launch(ignored: Option<u64>) -> io::Result<()> {
    let listed =
        |signal: i32| ignored.map_or(true, |mask| signal > 64 || mask & (1 << (signal - 1)) != 0);
    for signal in 1..=sys::highest_signal() {
        let always = [libc::SIGHUP, libc::SIGXFSZ].contains(&signal);
        if !always && !listed(signal) {
            continue;
        }
        match Signal::try_from(signal) {
            Ok(Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGPIPE) => continue,
            // Until the daemon has written its pid: a file size limit (`ulimit -f`) then
            // makes the write fail with "File too large" instead of killing the daemon.
            Ok(signal @ (Signal::SIGHUP | Signal::SIGXFSZ)) => {
                sys::set_disposition(signal, Disposition::Ignore, true)?;
            }
            _ => sys::unignore(signal)?,
        }
    }
    sys::unblock_all_signals()
}

/// What the daemon's handlers need to know, prepared in the launcher and handed over once.
#[derive(Debug)]
pub(crate) struct Handling {
    /// `shutdown = "graceful"`: SIGTERM and SIGINT only set a flag.
    pub(crate) graceful: bool,
    /// The log files SIGHUP reopens onto descriptors 1 and 2.
    pub(crate) stdout: Option<LogTarget>,
    pub(crate) stderr: Option<LogTarget>,
    /// The logs' directories (`O_PATH`), kept open so that the reopen looks up no path.
    pub(crate) directories: Vec<OwnedFd>,
}

/// A log file: its directory, open for the daemon's whole life (an index into
/// [`Handling::directories`]), and its name in it.
#[derive(Debug)]
pub(crate) struct LogTarget {
    pub(crate) directory: usize,
    pub(crate) name: CString,
}

static HANDLING: OnceLock<Handling> = OnceLock::new();

/// Step 8, in the daemon: ignore the job-control signals a terminal would send, handle
/// `SIGHUP` (reopen the logs, request a reload), and `SIGTERM`/`SIGINT` (exit at once, or
/// request a graceful shutdown). Allocates nothing.
pub(crate) fn for_daemon(handling: Handling, foreground: bool) -> io::Result<()> {
    if let Err(handling) = HANDLING.set(handling) {
        std::mem::forget(handling); // set once; dropping would free memory in the child
    }
    // In the foreground (the `run` command) a terminal's Ctrl-Z keeps working.
    if !foreground {
        for signal in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
            sys::set_disposition(signal, Disposition::Ignore, true)?;
        }
    }
    sys::set_disposition(Signal::SIGHUP, Disposition::Handler(on_hangup), true)?;
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        sys::set_disposition(signal, Disposition::Handler(on_terminate), true)?;
    }
    events::handlers_installed();
    Ok(())
}

/// `shutdown = "exit"`: remove the pidfile and leave at once with status 0. `"graceful"`:
/// set the flag and wake the body. Only async-signal-safe calls.
extern "C" fn on_terminate(_signal: libc::c_int) {
    let _errno = sys::ErrnoGuard::save();
    notify::stopping();
    if HANDLING.get().is_some_and(|handling| handling.graceful) {
        events::request_shutdown();
    } else {
        pidfile::remove_at_exit();
        sys::exit_now(0);
    }
}

/// Reopens the log files (logrotate moved them away: the new lines go to a new file at the
/// same path), then requests a reload. Only async-signal-safe calls: open, fstat, dup2, close.
extern "C" fn on_hangup(_signal: libc::c_int) {
    let _errno = sys::ErrnoGuard::save();
    notify::reloading();
    if let Some(handling) = HANDLING.get() {
        for (log, target) in [
            (&handling.stdout, Standard::Out),
            (&handling.stderr, Standard::Err),
        ] {
            let Some(log) = log else { continue };
            if let Some(directory) = handling.directories.get(log.directory) {
                reopen(directory.as_fd(), &log.name, target);
            }
        }
    }
    // `READY=1` now, or once the body took the reload (see `events::request_reload`).
    events::request_reload();
}

/// Opens the log `name` in `directory` for append (created 0640, with the same checks as at
/// start-up, as the daemon's user now) and puts it on `target`. A refused or failed reopen
/// keeps the old file: better than losing the output. Async-signal-safe.
fn reopen(directory: BorrowedFd, name: &CStr, target: Standard) {
    let opener = Opener::current(sys::geteuid());
    if let Ok((fd, _, _)) = files::open_log(directory, name, opener) {
        let _ = sys::dup_onto_standard(fd.as_fd(), target);
    }
}
