//! Turn a Rust program into a correct Unix daemon with one attribute.
//!
//! ```no_run
//! #[daemon_runtime::daemon(pidfile = "/run/mysvc.pid", umask = 0o022)]
//! fn main() {
//!     // runs inside the fully set-up daemon
//! }
//! ```
//!
//! The program you start (the *launcher*) does the classic double fork and returns only when
//! the daemon is ready or has failed: exit status 0 means the daemon runs and its pidfile names
//! it; exit status 1 comes with `NAME: what failed: why` on stderr and leaves nothing behind.
//!
//! The daemon itself has closed every inherited descriptor, reset every signal disposition and
//! emptied its signal mask, lives in its own session without a controlling terminal (and can
//! never acquire one), has its umask and working directory set, stdio on `/dev/null` or its log
//! files, holds the lock on its pidfile for its whole life, ignores `SIGTSTP`/`SIGTTIN`/`SIGTTOU`,
//! reopens its log files on `SIGHUP`, and on `SIGTERM` or `SIGINT` removes its pidfile and
//! exits 0 at once, or, with `shutdown = "graceful"`, tells `main` (see [`wait`]).
//!
//! Under a supervisor it stays in the foreground instead ([`Detach`]): under systemd's
//! `Type=notify` it speaks sd_notify ([`notify`]), under socket activation it takes the
//! sockets it is given by name ([`listener`], [`tcp_listener`], [`unix_listener`], which also
//! hand out the sockets of the `listen` key), as PID 1 of a container it stays a small init
//! and runs the service as its child, and under inetd it keeps the connection on descriptors
//! 0 and 1. With `control = true`, `mysvc unit` prints its systemd units.
//!
//! [`Daemon`] is the same thing as a builder, for those who prefer to write it out; the
//! attribute expands to exactly its calls.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod builder;
mod child;
mod control;
mod error;
mod events;
mod fds;
mod files;
mod init;
mod launcher;
mod listen;
mod logfile;
pub mod notify;
mod output;
mod paths;
mod pidfile;
mod prepare;
mod privileges;
mod readiness;
mod signals;
mod supervisor;
mod sys;
mod unit;
mod upgrade;

#[cfg(feature = "tokio")]
pub use crate::asynchronous::{next_reload, shutdown, Flavor, ReloadFuture, ShutdownFuture};
pub use crate::builder::{Daemon, Detach, MainOutput, Ready, Shutdown};
pub use crate::control::ControlCommand;
pub use crate::error::{Error, Exit, LockHolder, PathAction, SystemAction};
pub use crate::events::{
    events_fd, reload_requested, shutdown_requested, wait, wait_or_readable, wait_timeout, Event,
};
pub use crate::listen::{listener, tcp_listener, unix_listener};
pub use crate::logfile::LogFile;
pub use crate::readiness::ready;

/// Turns `fn main` into a correct Unix daemon.
///
/// ```no_run
/// #[daemon_runtime::daemon(pidfile = "${RUNTIME_DIRECTORY:-/run}/mysvc.pid", stdout = "/var/log/mysvc.log")]
/// fn main() -> Result<(), std::io::Error> {
///     // runs inside the daemon
///     Ok(())
/// }
/// ```
///
/// Every key is optional. The attribute expands to the [`Daemon`] builder calls of the same
/// names, followed by [`Daemon::run`] with `main`'s body.
///
/// | key | value | default | meaning |
/// |---|---|---|---|
/// | `pidfile` | path string | none | created 0600, locked for life, `PID\n`, removed at exit |
/// | `umask` | integer ≤ `0o777` | `0o022` | the daemon's file-mode creation mask |
/// | `workdir` | path string | `"/"` | the daemon's working directory (must exist) |
/// | `stdout`, `stderr` | path string | `/dev/null` | opened for append (a regular file or a FIFO), created 0640 |
/// | `keep_fds` | `[int, ...]` | `[]` | inherited descriptors that stay open |
/// | `ready` | `"auto"`, `"manual"` | `"auto"` | `"manual"`: ready when the body calls [`ready()`] |
/// | `ready_timeout` | seconds (at least `0.001`) | `30` | how long the launcher waits for readiness |
/// | `core_dumps` | bool | `false` | `false` sets `RLIMIT_CORE` to 0 |
/// | `name` | string | the binary's name | used in the launcher's messages |
/// | `crate` | path string | `"::daemon_runtime"` | where the runtime is, for re-exporters |
/// | `shutdown` | `"exit"`, `"graceful"` | `"exit"`; `"graceful"` for `async fn main` | see [`Shutdown`] |
/// | `control` | bool | `false` | the first argument is a [`ControlCommand`] |
/// | `stop_timeout` | seconds (at least `0.001`) | `10` | `stop`: `SIGKILL` this long after `SIGTERM` |
/// | `user`, `group` | name or number | unchanged | see [`Daemon::user`], [`Daemon::group`] |
/// | `chroot` | path string | none | see [`Daemon::chroot`] |
/// | `detach` | `"auto"`, `"always"`, `"never"` | `"auto"` | see [`Detach`] |
/// | `listen` | `["NAME=ADDRESS", ...]` | `[]` | see [`Daemon::listen`] and [`listener`] |
/// | `flavor` | `"multi_thread"`, `"current_thread"` | `"multi_thread"` | `async fn main` (feature `tokio`): the runtime built after the fork |
/// | `worker_threads` | integer ≥ 1 | one per CPU | `async fn main` on `"multi_thread"`: its worker threads |
///
/// Path strings expand `$VAR`, `${VAR}` and `${VAR:-default}` from the launcher's environment
/// at start-up (an unset variable without default is a start-up error that names it; `$$` is a
/// literal `$`); relative paths are resolved against the directory the program was started in.
///
/// `main` may return `()` or `Result<(), E>` with `E: Debug`; it must take no arguments and
/// not be generic.
///
/// With the `tokio` feature, `main` may be `async`: the daemon starts, then builds the tokio
/// runtime ([`Daemon::run_async`]), and `shutdown` defaults to `"graceful"` (wait for
/// [`shutdown()`]). `#[daemon]` also stacks with `#[tokio::main]`, in either order; the
/// runtime's settings then belong to `#[tokio::main(...)]`:
///
/// ```no_run
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// # #[cfg(feature = "tokio")]
/// #[daemon_runtime::daemon(pidfile = "/run/mysvc.pid")]
/// async fn main() -> std::io::Result<()> {
///     daemon_runtime::shutdown().await; // SIGTERM
///     Ok(())
/// }
/// ```
#[doc(inline)]
pub use daemon_macros::daemon;

/// What `#[daemon]`'s expansion calls and nothing else should. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::readiness::runtime_running;
}
