//! SPEC §3 steps 5 to 12 in the two children: from the fork to readiness.
//!
//! **The rule this module lives under.** Between `fork` and the end of set-up, the code here
//! runs in a copy of a process that another thread might have shared a lock with (the
//! allocator's, stdio's): it makes only async-signal-safe calls (signal-safety(7)), on values
//! the launcher prepared before the fork ([`Plan`]). No allocation, no freeing, no lock, no
//! `println!`. Paths are prebuilt `&CStr`s. Every way out of a child that fails is
//! [`sys::exit_now`] (`_exit`): the atexit handlers and the stdio buffers are the launcher's.
//! A panic cannot unwind out of here into the launcher's code: [`ExitOnUnwind`] ends the
//! process first. What the daemon has to say crosses the readiness pipe as a [`Step`] and an
//! `errno`.
//!
//! The same [`set_up`] runs, without a fork, in the foreground (`run`).

use crate::builder::Ready;
use crate::error::{Error, PathAction, SystemAction};
use crate::notify;
use crate::pidfile::{self, Pidfile};
use crate::prepare::Plan;
use crate::readiness::{self, Notifier};
use crate::signals;
use crate::sys::{self, Forked, Signal, Standard};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The daemon's set-up steps, as they travel over the readiness pipe (one byte, see
/// [`Step::to_wire`] and [`Step::from_wire`]) and as the launcher reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Setsid,
    Fork,
    Chroot,
    Groups,
    Gid,
    Uid,
    Verify,
    Workdir,
    Signals,
    CoreLimit,
    WritePid,
    Stdio,
}

impl Step {
    /// Every step, in the order they run; a step's wire byte is its place here.
    const ALL: [Step; 12] = [
        Step::Setsid,
        Step::Fork,
        Step::Chroot,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Verify,
        Step::Workdir,
        Step::Signals,
        Step::CoreLimit,
        Step::WritePid,
        Step::Stdio,
    ];

    /// The byte that stands for this step on the readiness pipe.
    pub(crate) fn to_wire(self) -> u8 {
        self as u8
    }

    /// The step a byte from the readiness pipe stands for; `None` for anything else.
    pub(crate) fn from_wire(byte: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.to_wire() == byte)
    }

    /// The launcher's error for this step failing with `errno`.
    pub(crate) fn error(self, errno: i32, plan: &Plan) -> Error {
        let path = |action, path: PathBuf| Error::Path {
            action,
            path,
            source: io::Error::from_raw_os_error(errno),
        };
        let system = |action| Error::System {
            action,
            source: io::Error::from_raw_os_error(errno),
        };
        match self {
            Step::Setsid => system(SystemAction::Setsid),
            Step::Fork => system(SystemAction::Fork),
            Step::Chroot => path(
                PathAction::Chroot,
                plan.chroot
                    .as_ref()
                    .map(|root| root.path.clone())
                    .unwrap_or_default(),
            ),
            Step::Groups => system(SystemAction::SetGroups),
            Step::Gid => system(SystemAction::SetGid),
            Step::Uid => system(SystemAction::SetUid),
            Step::Verify => system(SystemAction::VerifyPrivileges),
            Step::Workdir => path(PathAction::Workdir, plan.workdir.clone()),
            Step::Signals => system(SystemAction::Signals),
            Step::CoreLimit => system(SystemAction::CoreLimit),
            Step::WritePid => path(
                PathAction::WritePidfile,
                plan.pidfile.clone().unwrap_or_default(),
            ),
            Step::Stdio => system(SystemAction::Stdio),
        }
    }
}

/// Ends the process with `_exit(1)` if a panic unwinds past it: a child must never unwind
/// into the launcher's code (which would go on as a second launcher). Disarmed with
/// [`std::mem::forget`] once set-up is over.
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        sys::exit_now(1);
    }
}

/// The two children, right after the launcher's fork. Returns only in the daemon, set up;
/// every failure is sent to the launcher and ends the process with `_exit(1)`.
pub(crate) fn become_daemon(plan: &mut Plan, pidfile: Option<Pidfile>, notifier: Notifier) {
    let guard = ExitOnUnwind;
    // First child: a new session, so that the daemon belongs to no terminal's session.
    if let Err(error) = sys::setsid() {
        notifier.step_failed(Step::Setsid, &error);
        sys::exit_now(1);
    }
    // SAFETY: this process has a single thread (the launcher checked before its own fork, and
    // a forked child has only the thread that forked); the daemon keeps to this module's rule.
    match unsafe { sys::fork() } {
        Err(error) => {
            notifier.step_failed(Step::Fork, &error);
            sys::exit_now(1);
        }
        // `_exit`, never `exit`: the atexit handlers and stdio buffers are the launcher's.
        Ok(Forked::Parent(_)) => sys::exit_now(0),
        Ok(Forked::Child) => {}
    }
    // The daemon: not a session leader, so it can never acquire a controlling terminal.
    notifier.pid(sys::getpid());
    if let Err((step, error)) = set_up(plan, pidfile, false) {
        notifier.step_failed(step, &error);
        pidfile::remove_at_exit();
        sys::exit_now(1);
    }
    // Step 12.
    match plan.ready {
        Ready::Auto => notifier.ready(),
        Ready::Manual => notifier.park(),
    }
    std::mem::forget(guard);
}

/// Steps 6-9, in the daemon (or in the foreground process of the `run` command).
pub(crate) fn set_up(
    plan: &mut Plan,
    pidfile: Option<Pidfile>,
    foreground: bool,
) -> Result<(), (Step, io::Error)> {
    if let Some(pidfile) = pidfile {
        pidfile.keep_until_exit();
    }
    // Step 7: umask, root directory, privileges (SPEC §6: the pidfile and the logs are open
    // already; then chroot, groups, gid, uid), and the working directory, entered as the
    // daemon's user: one that user may not enter is an error, not a directory root entered.
    sys::umask(plan.umask);
    if let Some(root) = plan.chroot.as_mut().and_then(|root| root.fd.take()) {
        sys::fchdir(root.as_fd())
            .and_then(|()| sys::chroot(c"."))
            .map_err(|error| (Step::Chroot, error))?;
    }
    if let Some(credentials) = &mut plan.credentials {
        credentials.assume()?;
    }
    sys::chdir(&plan.workdir_c).map_err(|error| (Step::Workdir, error))?;
    // Step 8: signals. The SIGTERM handler removes the pidfile, so it comes after
    // `keep_until_exit` above.
    if let Some(handling) = plan.handling.take() {
        signals::for_daemon(handling, foreground).map_err(|error| (Step::Signals, error))?;
    }
    if !plan.core_dumps {
        sys::forbid_core_dumps().map_err(|error| (Step::CoreLimit, error))?;
    }
    // Step 9: the pid, while holding the lock. SIGXFSZ is ignored until here (see
    // `signals::reset_for_launch`), so that a file size limit is an error, "File too large".
    pidfile::write_daemon_pid(sys::getpid()).map_err(|error| (Step::WritePid, error))?;
    sys::set_disposition(Signal::SIGXFSZ, sys::Disposition::Default, true)
        .map_err(|error| (Step::Signals, error))?;
    // Step 6, last, so that in the foreground an error above still reaches the terminal.
    // Every descriptor of ours is above 2 (fds::ensure_standard_open saw to that). In the
    // foreground, output without a log file stays where the supervisor or terminal put it.
    // Under inetd, descriptors 0 and 1 are the connection and stay (SPEC §7.5).
    let stdio = |error| (Step::Stdio, error);
    if let Some(devnull) = &plan.devnull {
        if !plan.inetd {
            sys::dup_onto_standard(devnull.as_fd(), Standard::In).map_err(stdio)?;
        }
        for (log, standard) in [(&plan.stdout, Standard::Out), (&plan.stderr, Standard::Err)] {
            match log {
                _ if plan.inetd && standard == Standard::Out => Ok(()),
                Some(log) => sys::dup_onto_standard(log.fd.as_fd(), standard),
                None if foreground => Ok(()),
                None => sys::dup_onto_standard(devnull.as_fd(), standard),
            }
            .map_err(stdio)?;
        }
    }
    plan.close();
    notify::set_owner();
    Ok(())
}

/// Registers, in the launcher before the fork (neither atexit(3) nor pthread_atfork(3) is
/// async-signal-safe), what runs at the daemon's exit and in the processes it forks: the
/// pidfile's removal, and the forgetting of the pidfile's and the readiness pipe's
/// descriptors. Both do nothing outside the daemon (until `Pidfile::keep_until_exit` and
/// `Notifier::park` in the daemon, there is nothing to remove or forget), so the launcher's
/// own forks and exit are not affected.
pub(crate) fn register_exit_and_fork_handlers() -> Result<(), Error> {
    sys::at_exit(on_exit).map_err(|source| Error::System {
        action: SystemAction::ExitHandler,
        source,
    })?;
    sys::at_fork_in_child(in_forked_child).map_err(|source| Error::System {
        action: SystemAction::ForkHandler,
        source,
    })
}

/// atexit(3) handler: the service's process ends (`main` returned, `exit`): `STOPPING=1` to a
/// supervisor, then the pidfile removed. Both only in the service's own process.
extern "C" fn on_exit() {
    notify::stopping();
    pidfile::remove_at_exit();
}

/// pthread_atfork(3)'s child handler: a process the daemon forks is not the daemon, and does
/// not keep the pidfile's lock or the readiness pipe.
extern "C" fn in_forked_child() {
    pidfile::forget_in_child();
    readiness::forget_in_child();
}
