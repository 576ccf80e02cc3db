//! SPEC §3 steps 10 and 12: the readiness pipe between the daemon and its launcher.
//!
//! The daemon writes frames `[tag][length: u32 LE][payload]`: its pid, then either "ready",
//! a failed set-up step with its `errno`, or a failure message from `main`. The launcher reads
//! them with a deadline (`ready_timeout`). The pipe only carries words: whether the daemon is
//! gone, the launcher learns from the process (a daemon that becomes ready closes the pipe
//! too). The write end is `O_CLOEXEC`, and a process the daemon forks closes its copy.

use crate::child::Step;
use crate::notify;
use crate::sys;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PID: u8 = b'P';
const READY: u8 = b'R';
const STEP: u8 = b'S';
const FAILED: u8 = b'F';

/// The write end, parked here in `ready = "manual"` mode until [`ready`] is called. A raw
/// number: the fork handler takes it too ([`forget_in_child`]).
static PENDING: AtomicI32 = AtomicI32::new(-1);

/// Takes the parked write end, once.
fn take_pending() -> Option<OwnedFd> {
    let fd: RawFd = PENDING.swap(-1, Ordering::SeqCst);
    // SAFETY: a non-negative value is the descriptor `Notifier::park` gave up ownership of
    // (`into_raw_fd`); the swap hands it out exactly once.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Tells the launcher that the daemon is ready: it prints nothing and exits 0.
///
/// Only needed with `ready = "manual"` (with `"auto"` the daemon is ready when `main`'s body
/// starts). Call it once the service can do its job, e.g. after binding its sockets. Later
/// calls, and calls in a process that is not a starting daemon, do nothing.
///
/// If `main` returns, returns an `Err` or panics before calling it, the launcher prints why and
/// exits 1; if `ready_timeout` passes first, the launcher stops the daemon and exits 1.
pub fn ready() {
    if let Some(fd) = take_pending() {
        let _ = send(fd.as_fd(), READY, &[]);
    }
    if FOREGROUND_PENDING.swap(false, Ordering::SeqCst) {
        notify::ready();
    }
}

/// The async runtime is being built (between the start and [`runtime_running`]).
static RUNTIME_STARTING: AtomicBool = AtomicBool::new(false);
/// Readiness waits for the async runtime to run the body (a `ready = "auto"` async `main`).
static READY_WHEN_RUNNING: AtomicBool = AtomicBool::new(false);

/// An async `main` builds its runtime now; with `ready_when_running`, the launcher hears
/// "ready" once [`runtime_running`] is called.
pub(crate) fn runtime_starting(ready_when_running: bool) {
    READY_WHEN_RUNNING.store(ready_when_running, Ordering::SeqCst);
    RUNTIME_STARTING.store(true, Ordering::SeqCst);
}

/// The async runtime is built and runs `main`'s body: with `ready = "auto"`, the daemon is
/// ready now. Called by `#[daemon]`'s expansion first thing in an async body; does nothing
/// otherwise.
#[doc(hidden)]
pub fn runtime_running() {
    RUNTIME_STARTING.store(false, Ordering::SeqCst);
    if READY_WHEN_RUNNING.swap(false, Ordering::SeqCst) {
        ready();
    }
}

/// In a process the daemon forks (pthread_atfork(3)'s child handler): closes the child's copy
/// of the readiness pipe, which only the daemon may use. Async-signal-safe.
pub(crate) fn forget_in_child() {
    drop(take_pending());
}

/// In the foreground with `ready = "manual"`: [`ready`] tells the supervisor (`READY=1`).
static FOREGROUND_PENDING: AtomicBool = AtomicBool::new(false);

/// The foreground waits for [`ready`] (there is no launcher: the supervisor is told).
pub(crate) fn await_in_foreground() {
    FOREGROUND_PENDING.store(true, Ordering::SeqCst);
}

/// Whether the launcher (or, in the foreground, the supervisor) is still waiting for
/// [`ready`].
pub(crate) fn is_pending() -> bool {
    PENDING.load(Ordering::SeqCst) >= 0 || FOREGROUND_PENDING.load(Ordering::SeqCst)
}

/// Sends `message` to the waiting launcher, which prints it and exits 1.
pub(crate) fn fail(message: &str) {
    if let Some(fd) = take_pending() {
        let _ = send(fd.as_fd(), FAILED, message.as_bytes());
    }
    if FOREGROUND_PENDING.swap(false, Ordering::SeqCst) {
        notify::failed(message, None);
    }
}

/// The last panic message of this process, kept for [`fail`] by the hook of [`capture_panics`].
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Installs a panic hook that remembers the message (then runs the previous hook, which
/// prints it to stderr as usual). With `panic = "abort"` there is no unwinding to catch, so
/// the hook reports to the launcher itself.
pub(crate) fn capture_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_pending() {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("Box<dyn Any>");
            let at = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()));
            if RUNTIME_STARTING.load(Ordering::SeqCst) {
                // The async runtime failed to start (tokio panics when it cannot start a worker
                // thread). Unwinding out of a half-built multi-thread runtime can wait forever
                // for the workers that did start: report and leave now, the panic printed.
                previous(info);
                fail(&format!("cannot start the tokio runtime: {text}"));
                std::process::exit(1);
            }
            let message = format!(
                "main panicked before it was ready{}: {text}",
                at.unwrap_or_default()
            );
            if cfg!(panic = "abort") {
                fail(&message);
            } else if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(message);
            }
        }
        previous(info);
    }));
}

/// Reports the panic that is unwinding out of `main`.
pub(crate) fn fail_with_panic() {
    let message = LAST_PANIC.lock().ok().and_then(|mut last| last.take());
    fail(
        message
            .as_deref()
            .unwrap_or("main panicked before it was ready"),
    );
}

/// The daemon's end of the pipe, during set-up.
pub(crate) struct Notifier(OwnedFd);

impl Notifier {
    pub(crate) fn new(fd: OwnedFd) -> Notifier {
        Notifier(fd)
    }

    /// Sends the daemon's pid. Allocates nothing.
    pub(crate) fn pid(&self, pid: sys::pid_t) {
        let _ = send(self.0.as_fd(), PID, &pid.to_le_bytes());
    }

    /// Sends the failed set-up step and its errno. Allocates nothing.
    pub(crate) fn step_failed(&self, step: Step, error: &io::Error) {
        let errno = error.raw_os_error().unwrap_or(0);
        let mut payload = [0u8; 5];
        payload[0] = step.to_wire();
        payload[1..].copy_from_slice(&errno.to_le_bytes());
        let _ = send(self.0.as_fd(), STEP, &payload);
    }

    /// Set-up is over and the daemon is ready.
    pub(crate) fn ready(self) {
        let _ = send(self.0.as_fd(), READY, &[]);
    }

    /// Set-up is over; readiness waits for [`ready`].
    pub(crate) fn park(self) {
        PENDING.store(self.0.into_raw_fd(), Ordering::SeqCst);
    }
}

/// Writes one frame. A short one (the pid, "ready", a failed step) goes in one write, so
/// that the launcher wakes once for it; a failure message, header and text apart. Allocates
/// nothing.
fn send(fd: BorrowedFd, tag: u8, payload: &[u8]) -> io::Result<()> {
    let mut frame = [0u8; 16];
    frame[0] = tag;
    frame[1..5].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    match frame.get_mut(5..5 + payload.len()) {
        Some(room) => {
            room.copy_from_slice(payload);
            sys::write_all(fd, &frame[..5 + payload.len()])
        }
        None => {
            sys::write_all(fd, &frame[..5])?;
            sys::write_all(fd, payload)
        }
    }
}

/// What the launcher heard.
#[derive(Debug, PartialEq)]
pub(crate) enum Message {
    Pid(sys::pid_t),
    Ready,
    StepFailed {
        step: Step,
        errno: i32,
    },
    Failed(String),
    /// Bytes that are no message: what this launcher did not understand.
    Garbage(String),
}

/// The launcher's end of the pipe. It only carries words: whether the daemon is gone is
/// learnt from the process itself (a daemon that becomes ready closes the pipe too).
pub(crate) struct Listener {
    fd: OwnedFd,
    buf: Vec<u8>,
    closed: bool,
}

impl Listener {
    pub(crate) fn new(fd: OwnedFd) -> Listener {
        Listener {
            fd,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// The descriptor to poll, until end of file.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        (!self.closed).then(|| self.fd.as_fd())
    }

    /// Reads what the pipe holds now (call it when [`Listener::fd`] polled readable).
    pub(crate) fn read_some(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        match sys::read(self.fd.as_fd(), &mut chunk)? {
            0 => self.closed = true,
            n => self.buf.extend_from_slice(&chunk[..n]),
        }
        Ok(())
    }

    /// Reads everything the pipe holds, without waiting: after the daemon is gone, the
    /// words it wrote before.
    pub(crate) fn drain_now(&mut self) {
        while !self.closed && matches!(sys::wait_readable(self.fd.as_fd(), 0), Ok(true)) {
            if self.read_some().is_err() {
                break;
            }
        }
    }

    /// After "ready": waits, for at most `limit`, for end of file, that is for the daemon to
    /// close its write end right after the word. Then the launcher exits only once the daemon
    /// no longer holds the readiness pipe (a launcher woken by the word can otherwise run to
    /// its end before the daemon gets the processor back to close it). A copy of the write end
    /// kept by a process that escaped the fork handler only costs the `limit`.
    pub(crate) fn await_end(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ms = sys::poll_millis(left);
            match sys::wait_readable(self.fd.as_fd(), ms) {
                Ok(true) => {
                    if self.read_some().is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(false) | Err(_) => return,
            }
        }
    }

    /// The next whole message read so far.
    pub(crate) fn message(&mut self) -> Option<Message> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let tag = self.buf[0];
        let payload: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
        Some(match (tag, payload.as_slice()) {
            (PID, &[a, b, c, d]) => Message::Pid(sys::pid_t::from_le_bytes([a, b, c, d])),
            (READY, []) => Message::Ready,
            (STEP, &[step, a, b, c, d]) => match Step::from_wire(step) {
                Some(step) => Message::StepFailed {
                    step,
                    errno: i32::from_le_bytes([a, b, c, d]),
                },
                None => Message::Garbage(format!("unknown set-up step {step}")),
            },
            (FAILED, text) => Message::Failed(String::from_utf8_lossy(text).into_owned()),
            _ => Message::Garbage(format!("tag {tag} with {} bytes", payload.len())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_real_pipe_in_order() {
        let (read_end, write_end) = sys::pipe_cloexec().unwrap();
        let notifier = Notifier::new(write_end);
        notifier.pid(4242);
        notifier.step_failed(Step::Workdir, &io::Error::from_raw_os_error(libc::ENOENT));
        send(notifier.0.as_fd(), FAILED, b"boom").unwrap();
        notifier.ready(); // closes the write end
        let mut listener = Listener::new(read_end);
        listener.drain_now();
        assert!(listener.fd().is_none(), "end of file seen");
        assert_eq!(listener.message(), Some(Message::Pid(4242)));
        assert_eq!(
            listener.message(),
            Some(Message::StepFailed {
                step: Step::Workdir,
                errno: libc::ENOENT
            })
        );
        assert_eq!(listener.message(), Some(Message::Failed("boom".into())));
        assert_eq!(listener.message(), Some(Message::Ready));
        assert_eq!(listener.message(), None);
    }

    #[test]
    fn a_silent_open_pipe_has_nothing_to_drain() {
        let (read_end, write_end) = sys::pipe_cloexec().unwrap();
        let mut listener = Listener::new(read_end);
        listener.drain_now();
        assert_eq!(listener.message(), None);
        assert!(listener.fd().is_some(), "still open");
        drop(write_end);
        listener.drain_now();
        assert!(listener.fd().is_none());
    }
}
