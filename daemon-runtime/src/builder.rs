//! The public API: the builder, [`Daemon`], that `#[daemon]` expands to, with its settings
//! and [`Daemon::run`]. The start-up sequence itself is in `launcher` (the process that was
//! started), `prepare` (before the fork) and `child` (between the fork and readiness).

use crate::control;
use crate::error::Error;
use crate::launcher::{self, Start};
use crate::readiness;
use std::fmt::Debug;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When the launcher considers the daemon ready (the `ready` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ready {
    /// Ready when set-up is over and `main`'s body starts.
    #[default]
    Auto,
    /// Ready when the body calls [`ready()`](crate::ready()).
    Manual,
}

/// Whether the launcher forks the daemon away (the `detach` key, SPEC §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detach {
    /// Stay in the foreground under a supervisor, fork otherwise. The foreground is chosen
    /// when `NOTIFY_SOCKET` is set (systemd's `Type=notify`), when `LISTEN_PID` is this
    /// process (socket activation), when this process is PID 1 of its PID namespace (a
    /// container), when descriptor 0 is a socket an inetd passes, under the `run` command,
    /// and when the environment variable `DAEMON_FOREGROUND` is `1`.
    #[default]
    Auto,
    /// Always double-fork, even under a supervisor: under `NOTIFY_SOCKET` the launcher then
    /// sends `MAINPID=` with `READY=1` for the daemon.
    Always,
    /// Never fork: this process is the daemon.
    Never,
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
    /// `None`: [`Shutdown::Exit`], or [`Shutdown::Graceful`] for an async `main`.
    pub(crate) shutdown: Option<Shutdown>,
    pub(crate) stop_timeout: Duration,
    pub(crate) control: bool,
    pub(crate) detach: Detach,
    pub(crate) listen: Vec<String>,
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) chroot: Option<PathBuf>,
    #[cfg(feature = "tokio")]
    pub(crate) flavor: crate::Flavor,
    #[cfg(feature = "tokio")]
    pub(crate) worker_threads: Option<usize>,
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
            shutdown: None,
            stop_timeout: Duration::from_secs(10),
            control: false,
            detach: Detach::Auto,
            listen: Vec::new(),
            user: None,
            group: None,
            chroot: None,
            #[cfg(feature = "tokio")]
            flavor: crate::Flavor::MultiThread,
            #[cfg(feature = "tokio")]
            worker_threads: None,
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

    /// What `SIGTERM` and `SIGINT` do, see [`Shutdown`]. Default: [`Shutdown::Exit`] for
    /// [`run`](Daemon::run), [`Shutdown::Graceful`] for an async `main`.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Daemon {
        self.shutdown = Some(shutdown);
        self
    }

    /// The tokio runtime [`run_async`](Daemon::run_async) builds (the `flavor` key).
    /// Default: [`Flavor::MultiThread`](crate::Flavor::MultiThread).
    #[cfg(feature = "tokio")]
    pub fn flavor(mut self, flavor: crate::Flavor) -> Daemon {
        self.flavor = flavor;
        self
    }

    /// How many worker threads a multi-thread runtime has (the `worker_threads` key); 0 is
    /// taken as 1. Default: one per CPU, as tokio decides.
    #[cfg(feature = "tokio")]
    pub fn worker_threads(mut self, count: usize) -> Daemon {
        self.worker_threads = Some(count.max(1));
        self
    }

    /// A listening socket, `NAME=ADDRESS` (`HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`), bound
    /// by the launcher before the fork and before privileges drop, or taken from socket
    /// activation when one of that name was passed. Call it once per socket; the body takes
    /// them with [`listener`](crate::listener), [`tcp_listener`](crate::tcp_listener) or
    /// [`unix_listener`](crate::unix_listener).
    pub fn listen(mut self, entry: impl Into<String>) -> Daemon {
        self.listen.push(entry.into());
        self
    }

    /// Whether the launcher forks the daemon away, see [`Detach`].
    pub fn detach(mut self, detach: Detach) -> Daemon {
        self.detach = detach;
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
        self.start_then(Body::Plain, main)
    }

    /// Starts the daemon, then builds a tokio runtime ([`flavor`](Daemon::flavor),
    /// [`worker_threads`](Daemon::worker_threads)) and runs the future `main` returns on it to
    /// completion; returns its output. This is what `#[daemon] async fn main` expands to.
    ///
    /// The runtime is built in the daemon, after the fork (a runtime's threads do not survive
    /// one), before the launcher hears "ready": a runtime that cannot be built (no thread can
    /// be started, say under `RLIMIT_NPROC`) is a failed start, exit 1. With
    /// [`Ready::Auto`] the daemon is ready when the runtime starts running `main`. The default
    /// [`shutdown`](Daemon::shutdown) is [`Shutdown::Graceful`]: wait for
    /// [`shutdown()`](crate::shutdown()). When `main` is done, the runtime waits at most half
    /// of [`stop_timeout`](Daemon::stop_timeout) for its blocking tasks.
    ///
    /// ```no_run
    /// fn main() -> std::io::Result<()> {
    ///     daemon_runtime::Daemon::new()
    ///         .pidfile("/run/mysvc.pid")
    ///         .worker_threads(2)
    ///         .run_async(|| async {
    ///             // the service, until:
    ///             daemon_runtime::shutdown().await;
    ///             Ok(())
    ///         })
    /// }
    /// ```
    ///
    /// `#[daemon]` stacked on `#[tokio::main]` has no builder form of its own: by hand, build
    /// the runtime inside [`run`](Daemon::run)'s closure (the daemon is then ready before the
    /// runtime is built), or use this method.
    #[cfg(feature = "tokio")]
    pub fn run_async<R, F>(self, main: impl FnOnce() -> F) -> R
    where
        R: MainOutput,
        F: std::future::Future<Output = R>,
    {
        let (flavor, workers) = (self.flavor, self.worker_threads);
        let grace = self.stop_timeout / 2;
        let name = self.display_name();
        self.start_then(Body::Async, move || {
            let runtime =
                crate::asynchronous::build_runtime(flavor, workers).unwrap_or_else(|message| {
                    crate::output::complain!("{name}: {message}");
                    readiness::fail(&message);
                    std::process::exit(1)
                });
            readiness::runtime_running();
            crate::asynchronous::block_on(runtime, main(), grace)
        })
    }

    /// `#[daemon]` over `#[tokio::main]` (either order): `main` builds its runtime itself and
    /// calls [`runtime_running`](crate::__private::runtime_running) first thing in its async
    /// body. Not a public API.
    #[doc(hidden)]
    pub fn __run_tokio_main<R: MainOutput>(self, main: impl FnOnce() -> R) -> R {
        self.start_then(Body::Async, main)
    }

    /// Starts the daemon (or exits), then runs `main` in it.
    fn start_then<R: MainOutput>(mut self, body: Body, main: impl FnOnce() -> R) -> R {
        let ready = self.ready;
        let shutdown = match body {
            Body::Plain => Shutdown::Exit,
            Body::Async => Shutdown::Graceful,
        };
        self.shutdown = Some(self.shutdown.unwrap_or(shutdown));
        if body == Body::Async {
            // The launcher hears "ready" from `ready()` or `runtime_running()`.
            self.ready = Ready::Manual;
        }
        let name = self.display_name();
        let mut upgrade = None;
        let detach = if self.control {
            // Before any command opens anything: nothing of ours may land on a closed 0, 1
            // or 2 (`upgrade` takes descriptors that the daemon keeps).
            let _ = crate::fds::ensure_standard_open();
            match control::dispatch(&self, &name) {
                control::Next::Exit(code) => std::process::exit(code),
                control::Next::Start => Start::Announce,
                control::Next::Foreground => Start::Run,
                control::Next::Upgrade(taken) => {
                    upgrade = Some(*taken);
                    Start::Upgrade
                }
            }
        } else {
            Start::Quiet
        };
        let old = upgrade.as_ref().map(|upgrade| upgrade.switch.old);
        match launcher::launch(&self, detach, upgrade) {
            Ok(()) => {}
            Err(error) if old.is_some() => {
                let old = old.unwrap_or_default();
                crate::output::complain!("{name}: {}", crate::upgrade::not_upgraded(old, &error));
                std::process::exit(1);
            }
            Err(error @ Error::AlreadyRunning { .. }) if detach == Start::Announce => {
                // LSB: `start` on a running service succeeds.
                crate::output::say!("{name}: {error}");
                std::process::exit(0);
            }
            Err(error) => {
                crate::output::complain!("{name}: {error}");
                crate::notify::failed(&error.to_string(), error.errno());
                std::process::exit(error.exit_code());
            }
        }
        match (body, ready) {
            (Body::Plain, Ready::Auto) => return main(),
            (Body::Plain, Ready::Manual) => {}
            (Body::Async, ready) => readiness::runtime_starting(ready == Ready::Auto),
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
    /// 1. Refuses a process that already has several threads (`/proc/self/status`), or in which
    ///    an async runtime was already used (a tokio runtime entered, an epoll descriptor it
    ///    created, `tokio::signal`'s handler and socket pair).
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
        launcher::launch(&self, Start::Quiet, None)
    }

    pub(crate) fn display_name(&self) -> String {
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

/// What `main` is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Body {
    /// A plain function.
    Plain,
    /// A function that builds an async runtime and calls
    /// [`runtime_running`](crate::__private::runtime_running) first thing in it: it shuts down
    /// gracefully by default, and with [`Ready::Auto`] is ready when the runtime runs.
    Async,
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
