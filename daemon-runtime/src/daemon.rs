//! The builder, [`Daemon`], and the start-up sequence of SPEC §3.

use crate::control;
use crate::error::{Error, PathAction, SystemAction};
use crate::fds;
use crate::files::{self, Directory, Location, Opener, Refusal};
use crate::launcher::{self, Outcome, Watch};
use crate::paths::{self, Cwd};
use crate::pidfile::{self, Pidfile};
use crate::privileges::{self, Credentials};
use crate::readiness::{self, Listener, Message, Notifier};
use crate::signals::{self, Handling, LogTarget};
use crate::sys::{self, Forked};
use std::ffi::CString;
use std::fmt::Debug;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When the launcher considers the daemon ready (the `ready` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ready {
    /// Ready when set-up is over and `main`'s body starts.
    #[default]
    Auto,
    /// Ready when the body calls [`ready()`](crate::ready()).
    Manual,
}

/// What `SIGTERM` and `SIGINT` do (the `shutdown` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shutdown {
    /// Remove the pidfile and exit 0 at once, without running destructors.
    #[default]
    Exit,
    /// Only request a shutdown: the body observes it through
    /// [`shutdown_requested()`](crate::shutdown_requested), [`wait()`](crate::wait) or
    /// [`events_fd()`](crate::events_fd), and returns from `main`; the pidfile goes then.
    Graceful,
}

/// A daemon to start: the builder behind `#[daemon]`, usable by hand.
///
/// Every attribute key has a method of the same name; the attribute expands to exactly these
/// calls followed by [`run`](Daemon::run). So
///
/// ```no_run
/// #[daemon_runtime::daemon(pidfile = "/run/mysvc.pid", umask = 0o022)]
/// fn main() {
///     // the service
/// }
/// ```
///
/// is the same program as
///
/// ```no_run
/// # #![allow(clippy::needless_doctest_main)]
/// fn main() {
///     daemon_runtime::Daemon::new()
///         .pidfile("/run/mysvc.pid")
///         .umask(0o022)
///         .run(|| {
///             // the service
///         })
/// }
/// ```
///
/// Paths expand `$VAR`, `${VAR}` and `${VAR:-default}` from the environment (`$$` is a `$`),
/// and relative paths are resolved against the launch directory, both at start-up.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub(crate) name: Option<String>,
    pub(crate) pidfile: Option<PathBuf>,
    pub(crate) umask: u32,
    pub(crate) workdir: PathBuf,
    pub(crate) stdout: Option<PathBuf>,
    pub(crate) stderr: Option<PathBuf>,
    pub(crate) keep_fds: Vec<RawFd>,
    pub(crate) ready: Ready,
    pub(crate) ready_timeout: Duration,
    pub(crate) core_dumps: bool,
    pub(crate) shutdown: Shutdown,
    pub(crate) stop_timeout: Duration,
    pub(crate) control: bool,
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) chroot: Option<PathBuf>,
}

impl Default for Daemon {
    fn default() -> Daemon {
        Daemon::new()
    }
}

impl Daemon {
    /// The defaults of SPEC §2: no pidfile, umask `0o022`, working directory `/`, stdio on
    /// `/dev/null`, no kept descriptors, ready when `main` starts, a 30 s `ready_timeout`, no
    /// core dumps, and the binary's name in messages.
    pub fn new() -> Daemon {
        Daemon {
            name: None,
            pidfile: None,
            umask: 0o022,
            workdir: PathBuf::from("/"),
            stdout: None,
            stderr: None,
            keep_fds: Vec::new(),
            ready: Ready::Auto,
            ready_timeout: Duration::from_secs(30),
            core_dumps: false,
            shutdown: Shutdown::Exit,
            stop_timeout: Duration::from_secs(10),
            control: false,
            user: None,
            group: None,
            chroot: None,
        }
    }

    /// The name in the launcher's messages (`NAME: already running (pid 42)`). Default: the
    /// file name of the program (`argv[0]`).
    pub fn name(mut self, name: impl Into<String>) -> Daemon {
        self.name = Some(name.into());
        self
    }

    /// The pidfile (SPEC §4): created 0600, locked for the daemon's life, holds `PID\n`,
    /// removed at exit. Its lock is what makes a second start say "already running".
    pub fn pidfile(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.pidfile = Some(path.into());
        self
    }

    /// The daemon's file-mode creation mask (umask(2)). Values above `0o777` are cut to 9 bits.
    pub fn umask(mut self, mask: u32) -> Daemon {
        self.umask = mask & 0o777;
        self
    }

    /// The daemon's working directory; it must exist when the daemon starts. Default `/`.
    pub fn workdir(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.workdir = path.into();
        self
    }

    /// Where the daemon's stdout goes: opened for append, created 0640. Default `/dev/null`.
    pub fn stdout(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.stdout = Some(path.into());
        self
    }

    /// Where the daemon's stderr goes: opened for append, created 0640. Default `/dev/null`.
    pub fn stderr(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.stderr = Some(path.into());
        self
    }

    /// Inherited descriptors (above 2) that stay open; every other one is closed.
    pub fn keep_fds(mut self, fds: &[RawFd]) -> Daemon {
        self.keep_fds = fds.to_vec();
        self
    }

    /// When the daemon counts as ready, see [`Ready`].
    pub fn ready(mut self, ready: Ready) -> Daemon {
        self.ready = ready;
        self
    }

    /// How long the launcher waits for readiness before it stops the daemon and exits 1.
    /// Values above a year are taken as a year, below a millisecond as a millisecond (the
    /// attribute refuses them).
    pub fn ready_timeout(mut self, timeout: Duration) -> Daemon {
        self.ready_timeout = timeout.clamp(launcher::MIN_TIMEOUT, launcher::MAX_TIMEOUT);
        self
    }

    /// Whether the daemon may dump core. `false` (the default) sets `RLIMIT_CORE` to 0.
    pub fn core_dumps(mut self, allowed: bool) -> Daemon {
        self.core_dumps = allowed;
        self
    }

    /// The user the daemon runs as: a name or a number. Its supplementary groups are set as
    /// by initgroups(3), and its primary group unless [`group`](Daemon::group) says another.
    /// The pidfile and the log files are opened before, as the launching user. An unknown
    /// name is a start-up error in the launcher.
    pub fn user(mut self, user: impl Into<String>) -> Daemon {
        self.user = Some(user.into());
        self
    }

    /// The group the daemon runs as: a name or a number. Without a [`user`](Daemon::user),
    /// it is also the only supplementary group.
    pub fn group(mut self, group: impl Into<String>) -> Daemon {
        self.group = Some(group.into());
        self
    }

    /// A directory that becomes the daemon's root (chroot(2)), before privileges are
    /// dropped; [`workdir`](Daemon::workdir) is then a path inside it.
    pub fn chroot(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.chroot = Some(path.into());
        self
    }

    /// What `SIGTERM` and `SIGINT` do, see [`Shutdown`].
    pub fn shutdown(mut self, shutdown: Shutdown) -> Daemon {
        self.shutdown = shutdown;
        self
    }

    /// How long the `stop` command waits after `SIGTERM` before it sends `SIGKILL`. Values
    /// above a year are taken as a year, below a millisecond as a millisecond (the attribute
    /// refuses them).
    pub fn stop_timeout(mut self, timeout: Duration) -> Daemon {
        self.stop_timeout = timeout.clamp(launcher::MIN_TIMEOUT, launcher::MAX_TIMEOUT);
        self
    }

    /// Whether the first argument is a command: `start` (the default), `stop`, `restart`,
    /// `status`, `reload`, `run`; see [`ControlCommand`](crate::ControlCommand). Needs a [`pidfile`](Daemon::pidfile).
    pub fn control(mut self, enabled: bool) -> Daemon {
        self.control = enabled;
        self
    }

    /// Starts the daemon, runs `main` inside it, and returns what `main` returns (so that
    /// `fn main() -> Result<(), E>` keeps its meaning). This is what `#[daemon]` expands to.
    ///
    /// In the launcher this never returns: it exits 0 once the daemon is ready, or prints
    /// `NAME: why` to its stderr and exits 1. With [`Ready::Manual`], an `Err` returned by
    /// `main`, a panic, or a return before [`ready()`](crate::ready()) is reported the same way.
    pub fn run<R: MainOutput>(self, main: impl FnOnce() -> R) -> R {
        let name = self.display_name();
        let manual = self.ready == Ready::Manual;
        let detach = if self.control {
            match control::dispatch(&self, &name) {
                control::Next::Exit(code) => std::process::exit(code),
                control::Next::Start => Detach::Announce,
                control::Next::Foreground => Detach::Foreground,
            }
        } else {
            Detach::Quiet
        };
        match self.launch(detach) {
            Ok(()) => {}
            Err(error @ Error::AlreadyRunning { .. }) if detach == Detach::Announce => {
                // LSB: `start` on a running service succeeds.
                crate::output::say!("{name}: {error}");
                std::process::exit(0);
            }
            Err(error) => {
                crate::output::complain!("{name}: {error}");
                std::process::exit(error.exit_code());
            }
        }
        if !manual {
            return main();
        }
        readiness::capture_panics();
        let output = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(main)) {
            Ok(output) => output,
            Err(panic) => {
                readiness::fail_with_panic();
                std::panic::resume_unwind(panic)
            }
        };
        if readiness::is_pending() {
            readiness::fail(&match output.error_message() {
                Some(error) => format!("main returned an error before it was ready: {error}"),
                None => "main returned before calling daemon_runtime::ready()".to_owned(),
            });
        }
        output
    }

    /// Runs the start-up sequence. Returns `Ok(())` only in the daemon, fully set up; the
    /// launcher exits 0 as soon as the daemon is ready.
    ///
    /// Call it first thing in `main`. In order:
    ///
    /// 1. Refuses a process that already has several threads (`/proc/self/task`).
    /// 2. Opens `/dev/null` on any of descriptors 0-2 that is closed, then closes every other
    ///    inherited descriptor not in [`keep_fds`](Daemon::keep_fds):
    ///    [close_range(2)](https://man7.org/linux/man-pages/man2/close_range.2.html), else the
    ///    list in `/proc/self/fd` (or `/dev/fd`), else a loop bounded by `RLIMIT_NOFILE` and 65536.
    /// 3. Empties the signal mask and turns every inherited "ignore" back to default
    ///    ([sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)); handlers the
    ///    program installed itself (Rust's stack-overflow report on `SIGSEGV`/`SIGBUS`) stay,
    ///    `SIGPIPE` stays ignored as Rust sets it, `SIGHUP` is ignored until the daemon is in
    ///    its own session, so that a terminal hanging up mid-start cannot cut it in half, and
    ///    `SIGXFSZ` until the pid is written, so that a file size limit is an error. The
    ///    launcher catches `SIGINT` and `SIGTERM`: a Ctrl-C cancels the start
    ///    ([`Error::Cancelled`]).
    /// 4. Expands and resolves the paths, checks the working directory, opens `/dev/null`.
    /// 5. Opens the pidfile (`O_NOFOLLOW`, created 0600, regular files only, in a directory
    ///    opened and checked first, never on procfs or sysfs) and takes its
    ///    [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html); a live daemon of this
    ///    service holding it is [`Error::AlreadyRunning`], anything else
    ///    [`Error::LockedByOther`]. Once locked, the old content is cleared. Then opens the
    ///    log files (`O_APPEND`, created 0640) with the same checks; a FIFO is accepted; as
    ///    root, a log with several links or owned by anyone but root or [`user`](Daemon::user)
    ///    is refused, and so is a log that is the pidfile.
    /// 6. Creates the readiness pipe and forks; the child
    ///    [setsid(2)](https://man7.org/linux/man-pages/man2/setsid.2.html)s, forks again and
    ///    `_exit`s; the launcher reaps it and waits, as a child subreaper, for the daemon's word
    ///    or its end.
    /// 7. In the daemon: umask, `chroot` and privileges, `chdir` (as the daemon's user),
    ///    `SIGTSTP`, `SIGTTIN`, `SIGTTOU` ignored, `SIGHUP` handled (reopen the logs, request a
    ///    reload), `SIGTERM`/`SIGINT` handled (remove the pidfile and `_exit(0)`, or request a
    ///    graceful shutdown), `RLIMIT_CORE` 0 unless core dumps are allowed, the pidfile removal
    ///    registered with `atexit`, a pthread_atfork(3) handler that closes the pidfile and the
    ///    readiness pipe in processes the daemon forks (so that a worker that outlives it does
    ///    not keep its lock), `PID\n` written into the pidfile, and stdio onto `/dev/null` or
    ///    the logs.
    /// 8. Ready at once ([`Ready::Auto`]) or when [`ready()`](crate::ready()) is called.
    ///
    /// A failure in step 7 travels through the pipe; the launcher returns it as the error.
    ///
    /// # Errors
    ///
    /// In the launcher (the process that was started), when the daemon could not start: the
    /// process has more than one thread, a path cannot be expanded or opened, the working
    /// directory is missing, another instance holds the pidfile ([`Error::AlreadyRunning`]),
    /// `fork`/`setsid` fail, a step of the daemon's set-up fails, the daemon is not ready
    /// within `ready_timeout`, or a `SIGINT`/`SIGTERM` cancelled the start. The launcher
    /// returns only once every process of the start (the daemon and whatever it forked) is
    /// gone, and leaves no pidfile behind. Log files this start created are removed again when
    /// it fails before the fork, and kept when the daemon itself failed (they may say why).
    /// The process state that was changed (descriptors closed, dispositions reset) stays
    /// changed: the caller is expected to print the error and exit with
    /// [`Error::exit_code`].
    pub fn start(self) -> Result<(), Error> {
        self.launch(Detach::Quiet)
    }

    fn launch(&self, detach: Detach) -> Result<(), Error> {
        if let Some(count) = thread_count().filter(|&count| count > 1) {
            return Err(Error::Threads { count });
        }
        let descriptors = |source| Error::System {
            action: SystemAction::CloseDescriptors,
            source,
        };
        fds::ensure_standard_open().map_err(descriptors)?;
        // Before the descriptors are closed: a user database lookup may open sockets (nscd,
        // sssd) that must not live on in the daemon.
        let credentials = Credentials::resolve(self.user.as_deref(), self.group.as_deref())?;
        fds::close_inherited(&self.keep_fds).map_err(descriptors)?;
        let signals = |source| Error::System {
            action: SystemAction::Signals,
            source,
        };
        signals::reset_for_launch().map_err(signals)?;
        if detach == Detach::Foreground {
            return self.prepare(credentials).and_then(|(mut plan, pidfile)| {
                set_up(&mut plan, pidfile, true).map_err(|(step, error)| {
                    pidfile::remove_at_exit();
                    Step::error(step as u8, error.raw_os_error().unwrap_or(0), &plan)
                })
            });
        }
        // A Ctrl-C from here on cancels the start and leaves nothing behind.
        let saved = launcher::catch_cancel().map_err(signals)?;
        let result = self
            .prepare(credentials)
            .and_then(|(plan, pidfile)| self.detach(plan, pidfile, detach));
        // The daemon comes back here with `Ok`, the launcher only with a failed start.
        if result.is_err() {
            launcher::restore_after_failure(&saved);
            let _ = sys::set_child_subreaper(false);
        }
        result
    }

    /// Steps 3 and 4: everything resolved and opened, the pidfile locked.
    fn prepare(&self, credentials: Option<Credentials>) -> Result<(Plan, Option<Pidfile>), Error> {
        let mut plan = Plan::prepare(self, credentials)?;
        // The pidfile before the log files: a launcher that loses to a running instance
        // must not create (and then remove) a log file the winner is using.
        let pidfile = match &plan.pidfile {
            Some(path) => match Pidfile::lock(path.clone()) {
                Ok(pidfile) => Some(pidfile),
                Err(error) => {
                    plan.discard();
                    return Err(error);
                }
            },
            None => None,
        };
        if let Err(error) = plan.open_logs(pidfile.as_ref()) {
            abandon(&mut plan, pidfile);
            return Err(error);
        }
        Ok((plan, pidfile))
    }

    /// Steps 5 to 12 in the launcher: fork, then wait for the daemon's word. Returns only
    /// on failure, once nothing of the start is left.
    fn detach(
        &self,
        mut plan: Plan,
        pidfile: Option<Pidfile>,
        detach: Detach,
    ) -> Result<(), Error> {
        if let Some(signal) = launcher::cancelled() {
            abandon(&mut plan, pidfile);
            return Err(Error::Cancelled { signal, pid: None });
        }
        // Whatever the program printed and left in Rust's stdout buffer would otherwise be
        // written twice: by the launcher at exit, and by the daemon.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let system = |action| move |source| Error::System { action, source };
        let prepared = sys::pipe_cloexec()
            .map_err(system(SystemAction::ReadinessPipe))
            .and_then(|pipe| {
                // A subreaper, so that the daemon becomes our child once the first child exits.
                launcher::defer_cancel()
                    .and_then(|()| sys::set_child_subreaper(true))
                    .map(|()| pipe)
                    .map_err(|source| {
                        sys::close(pipe.0);
                        sys::close(pipe.1);
                        Error::System {
                            action: SystemAction::Signals,
                            source,
                        }
                    })
            });
        let (read_end, write_end) = match prepared {
            Ok(pipe) => pipe,
            Err(error) => {
                abandon(&mut plan, pidfile);
                return Err(error);
            }
        };
        match sys::fork() {
            Err(source) => {
                sys::close(read_end);
                sys::close(write_end);
                abandon(&mut plan, pidfile);
                Err(Error::System {
                    action: SystemAction::Fork,
                    source,
                })
            }
            Ok(Forked::Child) => {
                sys::close(read_end);
                launcher::release_cancel();
                let notifier = Notifier::new(write_end);
                become_daemon(&mut plan, pidfile, notifier);
                Ok(())
            }
            Ok(Forked::Parent(child)) => {
                sys::close(write_end);
                // The first child leaves right after the second fork: reap it, no zombie.
                let _ = sys::wait_child(child);
                let watch = Watch::new(Listener::new(read_end), child);
                let result = await_readiness(watch, self.ready_timeout, &plan, pidfile);
                plan.close();
                match result {
                    Ok(pid) => {
                        if detach == Detach::Announce {
                            crate::output::say!("{}: started (pid {pid})", self.display_name());
                        }
                        std::process::exit(0)
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        std::env::args_os()
            .next()
            .and_then(|argv0| {
                Path::new(&argv0)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "daemon".to_owned())
    }
}

/// What `main` may return under [`Daemon::run`] and `#[daemon]`: `()` or `Result<(), E>`.
///
/// With `ready = "manual"`, an `Err` returned before [`ready()`](crate::ready()) is printed by
/// the launcher with `{:?}`, as Rust's own `main` prints it.
#[diagnostic::on_unimplemented(
    message = "`#[daemon]` main must return `()` or `Result<(), E>` where `E: Debug`, not `{Self}`",
    label = "this return type is not supported by `#[daemon]`"
)]
pub trait MainOutput: std::process::Termination {
    /// The error to report to the launcher, if this is one.
    fn error_message(&self) -> Option<String>;
}

impl MainOutput for () {
    fn error_message(&self) -> Option<String> {
        None
    }
}

impl<E: Debug> MainOutput for Result<(), E> {
    fn error_message(&self) -> Option<String> {
        self.as_ref().err().map(|error| format!("{error:?}"))
    }
}

/// Everything resolved and opened before the fork (SPEC §3 step 3), so that the children
/// only make system calls on ready values.
struct Plan {
    pidfile: Option<PathBuf>,
    workdir: PathBuf,
    workdir_c: CString,
    devnull: RawFd,
    stderr_path: Option<PathBuf>,
    stdout_at: Option<Location>,
    stderr_at: Option<Location>,
    stdout: Option<LogFile>,
    stderr: Option<LogFile>,
    umask: u32,
    core_dumps: bool,
    ready: Ready,
    /// For the daemon's SIGHUP handler, which reopens the logs.
    handling: Option<Handling>,
    /// The new root, if any.
    chroot: Option<Root>,
    /// The ids to take, if any.
    credentials: Option<Credentials>,
}

/// The directory that becomes the daemon's root, open.
struct Root {
    path: PathBuf,
    fd: RawFd,
}

/// A log file, open.
struct LogFile {
    fd: RawFd,
    path: PathBuf,
    created: bool,
}

impl Plan {
    fn prepare(daemon: &Daemon, credentials: Option<Credentials>) -> Result<Plan, Error> {
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
                let fd =
                    sys::open(&c, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|source| {
                        Error::Path {
                            action: PathAction::Chroot,
                            path: path.clone(),
                            source,
                        }
                    })?;
                Some(Root { path, fd })
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
        let stdout = match &daemon.stdout {
            Some(path) => Some(paths::resolve("stdout", path, &mut cwd)?),
            None => None,
        };
        let stderr = match &daemon.stderr {
            Some(path) => Some(paths::resolve("stderr", path, &mut cwd)?),
            None => None,
        };
        let workdir_c = c_path(&workdir, PathAction::Workdir)?;
        match &chroot {
            Some(root) => {
                let outside = root
                    .path
                    .join(workdir.strip_prefix("/").unwrap_or(&workdir));
                check_dir(
                    &outside,
                    &c_path(&outside, PathAction::Workdir)?,
                    PathAction::Workdir,
                )?;
            }
            None => check_dir(&workdir, &workdir_c, PathAction::Workdir)?,
        }
        let devnull = sys::open(c"/dev/null", libc::O_RDWR, 0).map_err(|source| Error::Path {
            action: PathAction::OpenDevNull,
            path: PathBuf::from("/dev/null"),
            source,
        })?;
        let log = |path: &Option<PathBuf>, action| {
            path.clone()
                .map(|path| {
                    Location::new(path.clone()).map_err(|source| Error::Path {
                        action,
                        path,
                        source,
                    })
                })
                .transpose()
        };
        let stdout_at = log(&stdout, PathAction::OpenStdout)?;
        let stderr_at = log(&stderr, PathAction::OpenStderr)?;
        let handling = Handling {
            graceful: daemon.shutdown == Shutdown::Graceful,
            stdout: None,
            stderr: None,
            directories: Vec::new(),
        };
        Ok(Plan {
            pidfile,
            workdir,
            workdir_c,
            devnull,
            stderr_path: stderr,
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
        })
    }

    /// Opens (creating them 0640 if needed) the log files, with the checks of
    /// [`files`](crate::files): a log is never the pidfile. On failure, [`Plan::discard`]
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
            // One descriptor per directory, kept open in the daemon for the SIGHUP reopen.
            let directory = match opened.iter().position(|dir| *dir == at.directory) {
                Some(index) => handling.directories[index].as_raw_fd(),
                None => {
                    let directory = Directory::open(&at.directory, opener).map_err(failed)?;
                    handling.directories.push(directory.into_fd());
                    opened.push(&at.directory);
                    handling.directories[opened.len() - 1].as_raw_fd()
                }
            };
            let (fd, created, id) = files::open_log(directory, &at.name, opener).map_err(failed)?;
            let log = LogFile {
                fd,
                path: at.path.clone(),
                created,
            };
            let target = Some(LogTarget {
                directory,
                name: at.name.clone(),
            });
            // Stored first, so that `discard` closes it (and removes it if it created it).
            match action {
                PathAction::OpenStdout => (self.stdout, handling.stdout) = (Some(log), target),
                _ => (self.stderr, handling.stderr) = (Some(log), target),
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

    /// Closes the launcher's copies of the files (the daemon has its own), once.
    fn close(&mut self) {
        if self.devnull >= 0 {
            sys::close(self.devnull);
            self.devnull = -1;
        }
        if let Some(root) = self.chroot.as_mut().filter(|root| root.fd >= 0) {
            sys::close(root.fd);
            root.fd = -1;
        }
        for log in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            sys::close(log.fd);
        }
    }

    /// Undoes [`Plan::prepare`] and [`Plan::open_logs`] in the launcher after a failure
    /// before the fork: closes what they opened and removes the log files they created.
    fn discard(&mut self) {
        let created: Vec<PathBuf> = [&self.stdout, &self.stderr]
            .into_iter()
            .flatten()
            .filter(|log| log.created)
            .map(|log| log.path.clone())
            .collect();
        self.close();
        for path in created {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Gives up in the launcher after the pidfile was locked and before the fork.
fn abandon(plan: &mut Plan, pidfile: Option<Pidfile>) {
    if let Some(pidfile) = pidfile {
        pidfile.remove();
    }
    plan.discard();
}

fn c_path(path: &Path, action: PathAction) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Path {
        action,
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
    })
}

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

/// The daemon's set-up steps, as they travel over the readiness pipe.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Step {
    Setsid = 1,
    Fork = 2,
    Stdio = 3,
    Workdir = 4,
    Signals = 5,
    CoreLimit = 6,
    WritePid = 7,
    ExitHandler = 8,
    Chroot = 9,
    Groups = 10,
    Gid = 11,
    Uid = 12,
    Verify = 13,
    ForkHandler = 14,
}

impl Step {
    fn error(code: u8, errno: i32, plan: &Plan) -> Error {
        let source = io::Error::from_raw_os_error(errno);
        let system = |action| Error::System {
            action,
            source: io::Error::from_raw_os_error(errno),
        };
        match code {
            1 => system(SystemAction::Setsid),
            2 => system(SystemAction::Fork),
            3 => system(SystemAction::Stdio),
            4 => Error::Path {
                action: PathAction::Workdir,
                path: plan.workdir.clone(),
                source,
            },
            5 => system(SystemAction::Signals),
            6 => system(SystemAction::CoreLimit),
            7 => Error::Path {
                action: PathAction::WritePidfile,
                path: plan.pidfile.clone().unwrap_or_default(),
                source,
            },
            9 => Error::Path {
                action: PathAction::Chroot,
                path: plan
                    .chroot
                    .as_ref()
                    .map(|root| root.path.clone())
                    .unwrap_or_default(),
                source,
            },
            10 => system(SystemAction::SetGroups),
            11 => system(SystemAction::SetGid),
            12 => system(SystemAction::SetUid),
            13 => system(SystemAction::VerifyPrivileges),
            14 => system(SystemAction::ForkHandler),
            _ => system(SystemAction::ExitHandler),
        }
    }
}

/// The two children. Only system calls on values prepared by the launcher run here until
/// set-up is over: no allocation, no lock (SPEC §3 steps 5-10). Returns only in the daemon,
/// set up; every failure is sent to the launcher and ends the process with `_exit(1)`.
fn become_daemon(plan: &mut Plan, pidfile: Option<Pidfile>, notifier: Notifier) {
    // First child: a new session, so that the daemon belongs to no terminal's session.
    if let Err(error) = sys::setsid() {
        notifier.step_failed(Step::Setsid as u8, &error);
        sys::exit_now(1);
    }
    match sys::fork() {
        Err(error) => {
            notifier.step_failed(Step::Fork as u8, &error);
            sys::exit_now(1);
        }
        // `_exit`, never `exit`: the atexit handlers and stdio buffers are the launcher's.
        Ok(Forked::Parent(_)) => sys::exit_now(0),
        Ok(Forked::Child) => {}
    }
    // The daemon: not a session leader, so it can never acquire a controlling terminal.
    notifier.pid(sys::getpid());
    if let Err((step, error)) = set_up(plan, pidfile, false) {
        notifier.step_failed(step as u8, &error);
        pidfile::remove_at_exit();
        sys::exit_now(1);
    }
    // Step 12.
    match plan.ready {
        Ready::Auto => notifier.ready(),
        Ready::Manual => notifier.park(),
    }
}

/// Steps 6-9, in the daemon (or in the foreground process of the `run` command). Allocates
/// nothing.
fn set_up(
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
    if let Some(root) = &mut plan.chroot {
        sys::fchdir(root.fd)
            .and_then(|()| sys::chroot(c"."))
            .map_err(|error| (Step::Chroot, error))?;
        sys::close(root.fd);
        root.fd = -1;
    }
    if let Some(credentials) = &mut plan.credentials {
        credentials.assume().map_err(|(step, error)| {
            let step = match step {
                privileges::Step::Groups => Step::Groups,
                privileges::Step::Gid => Step::Gid,
                privileges::Step::Uid => Step::Uid,
                privileges::Step::Verify => Step::Verify,
            };
            (step, error)
        })?;
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
    sys::at_exit(pidfile::remove_at_exit).map_err(|error| (Step::ExitHandler, error))?;
    // A process the body forks does not keep the pidfile's lock or the readiness pipe.
    sys::at_fork_in_child(in_forked_child).map_err(|error| (Step::ForkHandler, error))?;
    // Step 9: the pid, while holding the lock. SIGXFSZ is ignored until here (see
    // `signals::reset_for_launch`), so that a file size limit is an error, "File too large".
    pidfile::write_daemon_pid(sys::getpid()).map_err(|error| (Step::WritePid, error))?;
    sys::set_disposition(libc::SIGXFSZ, sys::Disposition::Default)
        .map_err(|error| (Step::Signals, error))?;
    // Step 6, last, so that in the foreground an error above still reaches the terminal.
    // Every fd of ours is above 2 (fds::ensure_standard_open saw to that). In the
    // foreground, output without a log file stays where the supervisor or terminal put it.
    let keep = |fd| if foreground { fd } else { plan.devnull };
    let stdout = plan.stdout.as_ref().map_or(keep(1), |log| log.fd);
    let stderr = plan.stderr.as_ref().map_or(keep(2), |log| log.fd);
    for (from, to) in [(plan.devnull, 0), (stdout, 1), (stderr, 2)] {
        if from != to {
            sys::dup2(from, to).map_err(|error| (Step::Stdio, error))?;
        }
    }
    plan.close();
    Ok(())
}

/// pthread_atfork(3)'s child handler, registered in the daemon: the child is not the daemon.
extern "C" fn in_forked_child() {
    pidfile::forget_in_child();
    readiness::forget_in_child();
}

/// How [`Daemon::launch`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detach {
    /// Double fork; the launcher exits 0 silently once ready (plain `#[daemon]`).
    Quiet,
    /// Double fork; the launcher says `NAME: started (pid N)` (the `start` command).
    Announce,
    /// No fork: this process is the daemon (the `run` command).
    Foreground,
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
) -> Result<sys::pid_t, Error> {
    let deadline = Instant::now() + timeout.min(launcher::MAX_TIMEOUT);
    let pid = |watch: &Watch| watch.pid().map(|pid| pid as u32);
    let (error, ask) = loop {
        match watch.next(deadline) {
            Outcome::Message(Message::Pid(_)) => {}
            Outcome::Message(Message::Ready) => {
                // The daemon's own descriptor keeps the lock.
                drop(pidfile);
                return Ok(watch.pid().unwrap_or(0));
            }
            Outcome::Message(Message::StepFailed { step, errno }) => {
                break (Step::error(step, errno, plan), false)
            }
            Outcome::Message(Message::Failed(message)) => break (Error::Main { message }, false),
            Outcome::Gone => {
                let error = Error::ExitedBeforeReady {
                    exit: watch.exit(),
                    stderr_log: plan.stderr_path.clone(),
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
    if let Some(pidfile) = pidfile {
        let (path, id) = (pidfile.path().to_owned(), pidfile.id());
        drop(pidfile); // our own copy holds the lock too
        pidfile::remove_if_unlocked(&path, Some(id), launcher::GONE_WAIT);
    }
    Err(error)
}

/// The number of threads of this process, where the system tells.
fn thread_count() -> Option<usize> {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        std::fs::read_dir("/proc/self/task")
            .ok()
            .map(Iterator::count)
    } else {
        None
    }
}
