//! SPEC §3 steps 2 and 8, §5 `shutdown = "exit"`.

use crate::pidfile;
use crate::sys::{self, Disposition};
use std::io;

/// Step 2, in the launcher: an empty signal mask, and every inherited "ignore" back to
/// default, whatever the launching shell, supervisor or parent left behind.
///
/// Dispositions are inherited across exec only as "ignore" or "default"; a handler present
/// now was installed by this program itself (Rust's runtime catches `SIGSEGV` and `SIGBUS` to
/// report stack overflows) and is kept. Two exceptions: `SIGPIPE` stays as Rust set it (ignored, so writes return `EPIPE`), and
/// `SIGHUP` is ignored until the daemon is in its own session: a terminal that hangs up while
/// the launcher or the first child still belong to it must not kill the start half-way
/// (the `ssh host mysvc` race). The daemon resets `SIGHUP` to default in [`for_daemon`].
pub(crate) fn reset_for_launch() -> io::Result<()> {
    for signal in 1..=sys::highest_signal() {
        let result = match signal {
            libc::SIGKILL | libc::SIGSTOP | libc::SIGPIPE => continue,
            libc::SIGHUP => sys::set_disposition(signal, Disposition::Ignore),
            _ => match sys::is_ignored(signal) {
                Ok(true) => sys::set_disposition(signal, Disposition::Default),
                other => other.map(drop),
            },
        };
        // The numbers the C library reserves (glibc's 32 and 33) answer EINVAL through it;
        // an inherited "ignore" on them is undone through the kernel directly.
        match result {
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                sys::kernel_unignore(signal)?
            }
            other => other?,
        }
    }
    sys::unblock_all_signals()
}

/// Step 8, in the daemon: ignore the job-control signals a terminal would send, restore
/// `SIGHUP`, and end promptly on `SIGTERM` and `SIGINT`.
pub(crate) fn for_daemon() -> io::Result<()> {
    sys::set_disposition(libc::SIGHUP, Disposition::Default)?;
    for signal in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        sys::set_disposition(signal, Disposition::Ignore)?;
    }
    for signal in [libc::SIGTERM, libc::SIGINT] {
        sys::set_disposition(signal, Disposition::Handler(on_terminate))?;
    }
    Ok(())
}

/// `shutdown = "exit"`: remove the pidfile and leave at once with status 0. Only
/// async-signal-safe calls: two `stat`s, an `unlink`, `_exit`.
extern "C" fn on_terminate(_signal: libc::c_int) {
    pidfile::remove_at_exit();
    sys::exit_now(0);
}
