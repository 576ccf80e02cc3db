//! The launcher: the process that was started. It runs SPEC §3 in order ([`launch`]): the
//! process-wide resets, the [`Plan`](crate::prepare::Plan), the fork, and then step 12: it
//! waits for the daemon's word, its end, the deadline, or a Ctrl-C; and when the start fails,
//! it makes sure nothing of it is left.
//!
//! Whether the daemon is gone is learnt from the process, never from the readiness pipe (a
//! daemon that becomes ready closes the pipe too). The launcher is a child subreaper while it
//! waits (prctl(2) `PR_SET_CHILD_SUBREAPER`), so once the first child has exited the daemon is
//! the launcher's child: `waitpid` tells how it ended, and its pid cannot be reused before the
//! launcher has reaped it. A pidfd (pidfd_open(2)) wakes the wait when it exits. Every process
//! of the start (the daemon and what it forked) is in the session and process group the first
//! child created, whose id is the first child's pid: a failed start kills that group.

use crate::builder::{Daemon, Detach, Ready};
use crate::child;
use crate::error::{Error, SystemAction};
use crate::fds;
use crate::init;
use crate::listen;
use crate::notify;
use crate::output::say;
use crate::pidfile::{self, Pidfile};
use crate::prepare::{self, Plan};
use crate::privileges::Credentials;
use crate::readiness;
use crate::readiness::{Listener, Message, Notifier};
use crate::signals;
use crate::supervisor;
use crate::sys::Signal;
use crate::sys::{self, Exit, Forked};
use crate::upgrade::{Switch, Upgrade};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How the program was started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Start {
    /// Plain `#[daemon]` (or [`Daemon::start`](crate::Daemon::start)): the launcher says
    /// nothing once the daemon is ready.
    Quiet,
    /// The `start` command: the launcher says `NAME: started (pid N)`.
    Announce,
    /// The `run` command: the foreground.
    Run,
    /// The `upgrade` command: a new daemon on the running one's sockets and pidfile.
    Upgrade,
}

/// Whether this start forks, decided from the `detach` setting and the environment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Double fork; the launcher waits for readiness.
    Fork,
    /// No fork: this process is the daemon.
    Foreground,
}

/// Runs the start-up sequence. Returns `Ok(())` only in the daemon (or, in the foreground,
/// in this process), set up; the launcher exits 0 as soon as the daemon is ready, and returns
/// an error only once nothing of the start is left.
pub(crate) fn launch(daemon: &Daemon, start: Start, upgrade: Option<Upgrade>) -> Result<(), Error> {
    let status = prepare::self_status();
    if let Some(count) = status.threads.filter(|&count| count > 1) {
        return Err(Error::Threads { count });
    }
    if let Some(found) = prepare::async_runtime_in_use(&status, &daemon.keep_fds) {
        return Err(Error::AsyncRuntime { found });
    }
    // PID 1 of a PID namespace stays a small init; the service goes on as its child, in the
    // foreground whatever `detach` says.
    let pid_1 = sys::getpid() == 1;
    init::split_if_pid_1(pid_1).map_err(|source| Error::System {
        action: SystemAction::Fork,
        source,
    })?;
    let descriptors = |source| Error::System {
        action: SystemAction::CloseDescriptors,
        source,
    };
    // First: nothing of ours may land on a closed 0, 1 or 2.
    fds::ensure_standard_open().map_err(descriptors)?;
    let inetd = supervisor::inetd_socket_on_stdin();
    let stdin_listener = inetd && supervisor::listening_socket_on_stdin();
    let entries = daemon
        .listen
        .iter()
        .map(|entry| {
            listen::Entry::parse(entry).map_err(|why| Error::Listen {
                entry: entry.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, why),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = entries.iter().map(|entry| entry.name.clone()).collect();
    // Before the sweep, which keeps the activated descriptors, and before this process opens
    // anything that could take one of their numbers.
    let mut activation =
        listen::take_activation(&names, pid_1).map_err(|message| Error::Activation { message })?;
    // An upgrade: the running daemon's sockets and pidfile instead of new ones.
    let upgrade_fds = upgrade.as_ref().map(Upgrade::numbers).unwrap_or_default();
    let (adopted, switch) = match upgrade {
        Some(upgrade) => {
            activation = listen::Activation {
                ours: false,
                sockets: upgrade.sockets,
            };
            (Some(upgrade.pidfile), Some(upgrade.switch))
        }
        None => (None, None),
    };
    // Early, so that every later failure reaches the supervisor (STATUS=, ERRNO=); before
    // any chroot or privilege drop; kept by the sweep.
    notify::take_environment(pid_1).map_err(|source| Error::System {
        action: SystemAction::Notify,
        source,
    })?;
    // Before the descriptors are closed: a user database lookup may open sockets (nscd,
    // sssd) that must not live on in the daemon.
    let credentials = Credentials::resolve(daemon.user.as_deref(), daemon.group.as_deref())?;
    let keep: Vec<_> = daemon
        .keep_fds
        .iter()
        .copied()
        .chain(activation.numbers())
        .chain(notify::socket_fd())
        .chain(upgrade_fds)
        .collect();
    fds::close_inherited(&keep).map_err(descriptors)?;
    let foreground_wanted = supervisor::foreground_wanted(supervisor::Signs {
        pid_1,
        inetd,
        activated: activation.ours,
        notified: notify::has_socket(),
    });
    let mode = match (daemon.detach, start) {
        (_, Start::Upgrade) => Mode::Fork,
        _ if pid_1 => Mode::Foreground,
        (Detach::Never, _) | (_, Start::Run) => Mode::Foreground,
        (Detach::Auto, _) if foreground_wanted => Mode::Foreground,
        _ => Mode::Fork,
    };
    let signals = |source| Error::System {
        action: SystemAction::Signals,
        source,
    };
    // The ignored set read first still holds, unless a user database lookup ran since (an NSS
    // module may set a disposition): then every signal is looked at.
    let looked_up = daemon.user.is_some() || daemon.group.is_some();
    signals::reset_for_launch(status.ignored.filter(|_| !looked_up)).map_err(signals)?;
    child::register_exit_and_fork_handlers()?;
    if mode == Mode::Foreground {
        let (mut plan, pidfile) = prepare::prepare(
            daemon,
            credentials,
            &entries,
            activation,
            stdin_listener,
            None,
        )?;
        plan.inetd = inetd;
        child::set_up(&mut plan, pidfile, true).map_err(|(step, error)| {
            pidfile::remove_at_exit();
            step.error(error.raw_os_error().unwrap_or(0), &plan)
        })?;
        match plan.ready {
            Ready::Auto => notify::ready(),
            Ready::Manual => readiness::await_in_foreground(),
        }
        return Ok(());
    }
    // A Ctrl-C from here on cancels the start and leaves nothing behind.
    let saved = catch_cancel().map_err(signals)?;
    let result = prepare::prepare(
        daemon,
        credentials,
        &entries,
        activation,
        stdin_listener,
        adopted,
    )
    .and_then(|(plan, pidfile)| fork_and_wait(daemon, plan, pidfile, start, switch));
    // The daemon comes back here with `Ok`, the launcher only with a failed start.
    if result.is_err() {
        restore_after_failure(&saved);
        let _ = sys::set_child_subreaper(false);
    }
    result
}

/// Steps 5 to 12 in the launcher: fork, then wait for the daemon's word. Returns `Ok` only
/// in the daemon; the launcher exits 0 once the daemon is ready, or returns the error once
/// nothing of the start is left.
fn fork_and_wait(
    daemon: &Daemon,
    mut plan: Plan,
    pidfile: Option<Pidfile>,
    start: Start,
    switch: Option<Switch>,
) -> Result<(), Error> {
    if let Some(signal) = cancelled() {
        plan.abandon(pidfile);
        return Err(Error::Cancelled { signal, pid: None });
    }
    // Whatever the program printed and left in Rust's stdout buffer would otherwise be
    // written twice: by the launcher at exit, and by the daemon.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let (read_end, write_end) = match sys::pipe_cloexec() {
        Ok(pipe) => pipe,
        Err(source) => {
            plan.abandon(pidfile);
            return Err(Error::System {
                action: SystemAction::ReadinessPipe,
                source,
            });
        }
    };
    // A subreaper, so that the daemon becomes our child once the first child exits.
    if let Err(source) = defer_cancel().and_then(|()| sys::set_child_subreaper(true)) {
        plan.abandon(pidfile);
        return Err(Error::System {
            action: SystemAction::Signals,
            source,
        });
    }
    // SAFETY: `launch` checked that this process has a single thread; the child runs only
    // `child::become_daemon`, which keeps to that module's rule.
    match unsafe { sys::fork() } {
        Err(source) => {
            plan.abandon(pidfile);
            Err(Error::System {
                action: SystemAction::Fork,
                source,
            })
        }
        Ok(Forked::Child) => {
            drop(read_end);
            release_cancel();
            if let Some(switch) = switch {
                switch.close_in_child();
            }
            child::become_daemon(&mut plan, pidfile, Notifier::new(write_end));
            Ok(())
        }
        Ok(Forked::Parent(first_child)) => {
            drop(write_end);
            // The sockets are the daemon's: the launcher's copies would keep a listening
            // socket open in a process that never accepts on it.
            listen::close_copies();
            // The first child leaves right after the second fork: reap it, no zombie.
            let _ = sys::wait_child(first_child);
            let watch = Watch::new(Listener::new(read_end), first_child);
            let result = await_readiness(watch, daemon.ready_timeout, &plan, pidfile);
            plan.close();
            match result {
                Ok((pid, adopted)) => {
                    if let (Some(switch), Some(pidfile)) = (switch, adopted) {
                        switch.finish(pid, pidfile, daemon.stop_timeout, &daemon.display_name());
                    }
                    // Under a supervisor, the launcher is the process it started: it names
                    // the daemon as the service's main process.
                    notify::ready_as(pid);
                    if start == Start::Announce {
                        say!("{}: started (pid {pid})", daemon.display_name());
                    }
                    std::process::exit(0)
                }
                Err(error) => Err(error),
            }
        }
    }
}

/// The launcher's side of step 12: wait for the daemon's word, or its end, or the deadline,
/// or a Ctrl-C. On failure it returns only once every process of the start is gone (so that
/// "exit 1" also means "nothing left running"), and removes the pidfile only if nobody holds
/// its lock any more: a lock on a file no longer at the path would let a second instance
/// start beside a process that still holds the old one.
fn await_readiness(
    mut watch: Watch,
    timeout: Duration,
    plan: &Plan,
    pidfile: Option<Pidfile>,
) -> Result<(sys::pid_t, Option<Pidfile>), Error> {
    let deadline = Instant::now() + timeout.min(MAX_TIMEOUT);
    let pid = |watch: &Watch| watch.pid().map(|pid| pid as u32);
    let (error, ask) = loop {
        match watch.next(deadline) {
            Outcome::Message(Message::Pid(_)) => {}
            Outcome::Message(Message::Ready) => {
                watch.listener.await_end(Duration::from_millis(100));
                let pid = watch.pid().unwrap_or(0);
                // The daemon's own descriptor keeps the lock; an upgrade's launcher keeps the
                // pidfile, to make it name the new daemon.
                let adopted = pidfile.filter(|pidfile| pidfile.adopted());
                return Ok((pid, adopted));
            }
            Outcome::Message(Message::StepFailed { step, errno }) => {
                break (step.error(errno, plan), false)
            }
            Outcome::Message(Message::Failed(message)) => break (Error::Main { message }, false),
            Outcome::Message(Message::Garbage(what)) => {
                let error = Error::Main {
                    message: format!("unexpected message on the readiness pipe ({what})"),
                };
                break (error, true);
            }
            Outcome::Gone => {
                let error = Error::ExitedBeforeReady {
                    exit: watch.exit(),
                    stderr_log: plan.stderr_path().map(Path::to_owned),
                };
                break (error, false);
            }
            Outcome::TimedOut => {
                let error = Error::NotReady {
                    timeout,
                    pid: pid(&watch),
                };
                break (error, true);
            }
            Outcome::Cancelled(signal) => {
                let error = Error::Cancelled {
                    signal,
                    pid: pid(&watch),
                };
                break (error, true);
            }
            Outcome::Failed(source) => {
                let error = Error::System {
                    action: SystemAction::ReadinessWait,
                    source,
                };
                break (error, true);
            }
        }
    };
    watch.end_all(ask);
    listen::discard();
    // An upgrade's pidfile is the running daemon's, and stays.
    if let Some(pidfile) = pidfile.filter(|pidfile| !pidfile.adopted()) {
        let (path, id) = (pidfile.path().to_owned(), pidfile.id());
        drop(pidfile); // our own copy holds the lock too
        pidfile::remove_if_unlocked(&path, Some(id), GONE_WAIT);
    }
    Err(error)
}

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
const CANCELLING: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

/// Catches `SIGINT` and `SIGTERM` in the launcher, from the start of the launch: a Ctrl-C
/// cancels the start instead of killing the launcher half-way. Returns what they were, for
/// [`restore_after_failure`].
pub(crate) fn catch_cancel() -> io::Result<Vec<sys::SavedAction>> {
    CANCEL.store(0, Ordering::SeqCst);
    CANCELLING
        .iter()
        .map(|&signal| sys::set_disposition(signal, sys::Disposition::Handler(on_cancel), false))
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
        let _ = sys::set_disposition(signal, sys::Disposition::Default, true);
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
    for signal in [Signal::SIGHUP, Signal::SIGXFSZ] {
        let _ = sys::set_disposition(signal, sys::Disposition::Default, true);
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
    pidfd: Option<OwnedFd>,
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
        let ms = sys::poll_millis(left);
        let pidfd = self.pidfd.as_ref().map(AsFd::as_fd);
        match sys::wait_either([self.listener.fd(), pidfd], ms) {
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
                Err(_) => match &self.pidfd {
                    Some(pidfd) => matches!(sys::wait_readable(pidfd.as_fd(), 0), Ok(true)),
                    None => is_missing(sys::kill(pid, None)),
                },
            },
            None => {
                self.reap_group();
                is_missing(sys::kill(-self.group, None))
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
                Some(pid) => sys::kill(pid, Some(Signal::SIGTERM)),
                None => sys::kill(-self.group, Some(Signal::SIGTERM)),
            };
        }
        let deadline = Instant::now() + GONE_WAIT;
        while !self.is_gone() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.sleep(left);
        }
        // The group's number is safe to signal: its first member, the daemon, is at worst a
        // zombie not reaped yet. What left the group (setsid) is not reached.
        let _ = sys::kill(-self.group, Some(Signal::SIGKILL));
        if let Some(pid) = self.pid.filter(|_| !self.gone) {
            let _ = sys::kill(pid, Some(Signal::SIGKILL)); // in case it left the group
        }
        let deadline = Instant::now() + GONE_WAIT;
        loop {
            self.reap_group();
            let group_gone = is_missing(sys::kill(-self.group, None));
            if (group_gone && self.is_gone()) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn is_missing(result: io::Result<()>) -> bool {
    matches!(result, Err(error) if error.raw_os_error() == Some(libc::ESRCH))
}
