//! SPEC §5: what the daemon's body can learn about signals: a shutdown request (`SIGTERM`,
//! `SIGINT` with `shutdown = "graceful"`) and reload requests (`SIGHUP`), by polling, by a
//! blocking wait, or through a descriptor in its own poll loop.
//!
//! No thread is started: the signal handlers set a flag and write a byte into a self-pipe
//! (both async-signal-safe); the functions here read the flags and drain the pipe. The pipe
//! is created by the first [`wait`], [`wait_timeout`], [`wait_or_readable`] or [`events_fd`],
//! so that a daemon that only polls the flags has no descriptor more than it needs; a signal
//! that comes before is not lost, since the flags are looked at after the pipe exists.
//!
//! The async futures (feature `tokio`) have a self-pipe of their own: a reader of one pipe
//! never drains the wake-up that a reader of the other is waiting for.

use crate::sys;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
/// How many reloads were requested since start: a [`LogFile`](crate::LogFile) reopens its
/// file when this changed.
static RELOADS: AtomicUsize = AtomicUsize::new(0);
/// The self-pipe of [`wait`], [`wait_timeout`], [`wait_or_readable`] and [`events_fd`].
static WAKE: Doorbell = Doorbell::new();
/// The self-pipe of the async futures.
pub(crate) static WAKE_ASYNC: Doorbell = Doorbell::new();

/// A self-pipe (read end, write end), made on first use and never closed. The handlers only
/// `get` it: a lock-free load, which is async-signal-safe.
pub(crate) struct Doorbell(OnceLock<Option<(OwnedFd, OwnedFd)>>);

impl Doorbell {
    const fn new() -> Doorbell {
        Doorbell(OnceLock::new())
    }

    /// The read end, created on first use; `None` if no pipe could be made.
    pub(crate) fn read_end(&'static self) -> Option<BorrowedFd<'static>> {
        self.0
            .get_or_init(|| sys::pipe_nonblocking().ok())
            .as_ref()
            .map(|(read_end, _)| read_end.as_fd())
    }

    /// From a signal handler (or a waiter passing a shutdown on): wakes the reader, if there
    /// is a pipe. A full pipe already wakes the reader: `EAGAIN` is fine.
    fn ring(&self) {
        if let Some(Some((_, write_end))) = self.0.get() {
            let _ = sys::write_all(write_end.as_fd(), b"!");
        }
    }

    /// Empties the pipe, without waiting.
    pub(crate) fn drain(&self) {
        let Some(Some((read_end, _))) = self.0.get() else {
            return;
        };
        let mut buf = [0u8; 64];
        while matches!(sys::read(read_end.as_fd(), &mut buf), Ok(n) if n > 0) {}
    }
}

/// Something the daemon was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `SIGTERM` or `SIGINT` (with `shutdown = "graceful"`): finish the work in hand and
    /// return from `main`; the pidfile is removed then.
    Shutdown,
    /// `SIGHUP`: the log files were already reopened; reload the configuration if you have one.
    Reload,
}

/// Whether the daemon has been asked to shut down (`SIGTERM` or `SIGINT` with
/// `shutdown = "graceful"`). Once true, stays true.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

/// Whether a `SIGHUP` arrived since the last call (or since a [`wait`] returned
/// [`Event::Reload`]). Several `SIGHUP`s in between count as one.
pub fn reload_requested() -> bool {
    OBSERVES_RELOADS.store(true, Ordering::SeqCst);
    let requested = RELOAD.swap(false, Ordering::SeqCst);
    if requested {
        reload_taken();
    }
    requested
}

/// Whether the body watches for reloads (it called [`reload_requested`], [`wait`] or
/// [`wait_timeout`]): then a supervisor hears `READY=1` only once the body took the reload.
static OBSERVES_RELOADS: AtomicBool = AtomicBool::new(false);
/// A reload's `READY=1` waits for the body to take it.
static READY_AFTER_RELOAD: AtomicBool = AtomicBool::new(false);

/// The body took a reload: its supervisor hears that the reload is done.
fn reload_taken() {
    if READY_AFTER_RELOAD.swap(false, Ordering::SeqCst) {
        crate::notify::ready();
    }
}

/// Blocks until the daemon is asked to shut down or to reload, and says which. A pending
/// shutdown wins over a pending reload, and is returned again by every later call.
///
/// In a process that was not started by this crate nothing is watched, and this blocks forever.
pub fn wait() -> Event {
    loop {
        if let Some(event) = wait_timeout(Duration::from_secs(3600)) {
            return event;
        }
    }
}

/// Like [`wait`], for at most `timeout`; `None` if nothing happened. With a zero timeout it
/// only looks, which is what to call when [`events_fd`] is readable.
pub fn wait_timeout(timeout: Duration) -> Option<Event> {
    match wait_for(None, Some(timeout)) {
        Woken::Event(event) => Some(event),
        Woken::Readable | Woken::TimedOut => None,
    }
}

/// What ended a wait.
enum Woken {
    Event(Event),
    /// The watched descriptor is readable.
    Readable,
    TimedOut,
}

/// How many threads are in [`wait_for`] now.
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Waits for an [`Event`], for `watched` to be readable (if given), or for `timeout` (if
/// given). A pending event comes first.
///
/// Several threads may wait at once, on the one pipe. The first to wake drains it, and a
/// thread still to recheck the pipe in `poll` would sleep on: so a thread that returns a
/// shutdown rings the pipe again while others wait (each of them counts itself before it
/// looks at the flags). A reload is taken by one thread only, as it is meant to be. The last
/// waiter does not ring, so that a body polling [`events_fd`] while it finishes its work
/// after the shutdown does not spin; at most a byte may stay when waiters leave together,
/// drained by the next wait.
fn wait_for(watched: Option<BorrowedFd>, timeout: Option<Duration>) -> Woken {
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let woken = wait_alone(watched, timeout);
    let others = WAITERS.fetch_sub(1, Ordering::SeqCst) - 1;
    if matches!(woken, Woken::Event(Event::Shutdown)) && others > 0 {
        WAKE.ring();
    }
    woken
}

/// [`wait_for`], as if this thread were the only one waiting.
fn wait_alone(watched: Option<BorrowedFd>, timeout: Option<Duration>) -> Woken {
    OBSERVES_RELOADS.store(true, Ordering::SeqCst);
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    // The pipe exists before the flags are looked at: a signal after the look wakes the poll.
    let wake = WAKE.read_end();
    loop {
        WAKE.drain();
        if shutdown_requested() {
            return Woken::Event(Event::Shutdown);
        }
        if reload_requested() {
            return Woken::Event(Event::Reload);
        }
        let mut ms = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Woken::TimedOut;
                }
                sys::poll_millis(left)
            }
            None => -1,
        };
        if wake.is_none() {
            // No pipe could be made: look at the flags every 50 ms instead.
            ms = if ms < 0 { 50 } else { ms.min(50) };
        }
        match sys::poll_readable([watched, wake], ms) {
            Ok([true, _]) => return Woken::Readable,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            // The watched descriptor cannot be waited for (closed): say it is readable, so
            // that the caller's own call on it reports the error.
            Err(_) if watched.is_some() => return Woken::Readable,
            Err(_) => std::thread::sleep(Duration::from_millis(ms.clamp(0, 50) as u64)),
        }
    }
}

/// A descriptor that becomes readable when an [`Event`] is pending, for the body's own
/// `poll`/`epoll` loop (or an async runtime's); then call [`wait_timeout`] with a zero
/// timeout to learn which (it also drains the descriptor). `None` in a process that was not
/// started by this crate.
///
/// The descriptor is shared: any thread's [`wait`] drains it. Threads that all block in
/// [`wait`], [`wait_timeout`] or [`wait_or_readable`] each see a shutdown; a thread polling
/// this descriptor should be the only one waiting for events.
pub fn events_fd() -> Option<BorrowedFd<'static>> {
    if !handled() {
        return None;
    }
    WAKE.read_end()
}

/// Blocks until `fd` is readable, an [`Event`] is pending, or `timeout` (if any) has passed:
/// the event, or `None` when `fd` is readable or the time is up (so make `fd` non-blocking and
/// just try it). For a service that waits on one descriptor, such as its listening socket,
/// without writing its own `poll` loop:
///
/// ```no_run
/// # fn serve(listener: std::net::TcpListener) {
/// listener.set_nonblocking(true).unwrap();
/// loop {
///     match daemon_runtime::wait_or_readable(&listener, None) {
///         Some(daemon_runtime::Event::Shutdown) => break,
///         Some(daemon_runtime::Event::Reload) => { /* re-read the configuration */ }
///         None => while let Ok((stream, _)) = listener.accept() { /* serve it */ },
///     }
/// }
/// # }
/// ```
///
/// In a process that was not started by this crate only `fd` is watched.
pub fn wait_or_readable(fd: impl AsFd, timeout: Option<Duration>) -> Option<Event> {
    match wait_for(Some(fd.as_fd()), timeout) {
        Woken::Event(event) => Some(event),
        Woken::Readable | Woken::TimedOut => None,
    }
}

/// Whether this process installed the handlers (it is a daemon started by this crate).
static HANDLED: AtomicBool = AtomicBool::new(false);

/// Whether this process installed the handlers (it is a daemon started by this crate).
pub(crate) fn handled() -> bool {
    HANDLED.load(Ordering::SeqCst)
}

/// How many reloads were requested since start.
pub(crate) fn reload_count() -> usize {
    RELOADS.load(Ordering::SeqCst)
}

/// Called once the daemon's handlers are installed.
pub(crate) fn handlers_installed() {
    HANDLED.store(true, Ordering::SeqCst);
}

/// From a signal handler: a shutdown was asked for.
pub(crate) fn request_shutdown() {
    SHUTDOWN.store(true, Ordering::SeqCst);
    wake();
}

/// From the SIGHUP handler, once the logs are reopened: a reload was asked for. A supervisor
/// hears `READY=1` now if the body does not watch for reloads (the runtime's part was all
/// there was), else when the body takes it (armed before the flag is set, so that a body on
/// another thread cannot take it in between).
pub(crate) fn request_reload() {
    let observed = OBSERVES_RELOADS.load(Ordering::SeqCst);
    if observed {
        READY_AFTER_RELOAD.store(true, Ordering::SeqCst);
    }
    RELOADS.fetch_add(1, Ordering::SeqCst);
    RELOAD.store(true, Ordering::SeqCst);
    wake();
    if !observed {
        crate::notify::ready();
    }
}

fn wake() {
    WAKE.ring();
    WAKE_ASYNC.ring();
}
