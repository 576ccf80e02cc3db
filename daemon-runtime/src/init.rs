//! SPEC §7.4: PID 1 of a PID namespace (a container's entrypoint).
//!
//! PID 1 has duties no service should carry: orphans are reparented to it and must be
//! reaped, and the kernel drops the signals it has no handler for. A service that reaped
//! every child itself would steal the exit statuses of its own children
//! (`std::process::Command::status` would fail with `ECHILD`). So, as tini does, PID 1 stays a
//! small init: it forks the service, forwards the signals it gets to it, reaps whatever dies,
//! and exits with the service's status when the service ends. The service (PID 2) runs the
//! whole foreground start-up; its children are its own.

use crate::sys::{self, Disposition, Exit, Forked, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// The service's pid, for the forwarding handler.
static SERVICE: AtomicI32 = AtomicI32::new(0);

/// The signals PID 1 passes on to the service.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

extern "C" fn forward(signal: libc::c_int) {
    let _errno = sys::ErrnoGuard::save();
    let service = SERVICE.load(Ordering::SeqCst);
    if service > 0 {
        if let Ok(signal) = Signal::try_from(signal) {
            let _ = sys::kill(service, Some(signal));
        }
    }
}

/// When this process is PID 1 (`pid_1`), forks: returns in the child, the service, which goes on with
/// the start-up; the parent stays PID 1 and never returns. Elsewhere, returns at once.
pub(crate) fn split_if_pid_1(pid_1: bool) -> std::io::Result<()> {
    if !pid_1 {
        return Ok(());
    }
    // Blocked across the fork: a signal that comes before the parent forwards is kept
    // pending, not dropped (the kernel drops what PID 1 has no handler for).
    sys::block_signals(&FORWARDED)?;
    // SAFETY: the caller checked that the process has a single thread; the child goes on
    // with the start-up, which makes no assumption a fork would break.
    let forked = unsafe { sys::fork() };
    match forked {
        Err(error) => {
            let _ = sys::unblock_all_signals();
            Err(error)
        }
        Ok(Forked::Child) => sys::unblock_all_signals(),
        Ok(Forked::Parent(service)) => {
            SERVICE.store(service, Ordering::SeqCst);
            for signal in FORWARDED {
                let _ = sys::set_disposition(signal, Disposition::Handler(forward), true);
            }
            let _ = sys::unblock_all_signals();
            sys::exit_now(reap_until(service))
        }
    }
}

/// Reaps every child until `service` ends; its status, as a shell reports it.
fn reap_until(service: sys::pid_t) -> i32 {
    loop {
        match sys::wait_any() {
            Ok((pid, Exit::Code(code))) if pid == service => return code,
            Ok((pid, Exit::Signal(signal))) if pid == service => return 128 + signal,
            Ok(_) => {} // an orphan
            // No child left at all: the service is gone without a status we saw.
            Err(error) if error.raw_os_error() == Some(libc::ECHILD) => return 1,
            Err(_) => {}
        }
    }
}
