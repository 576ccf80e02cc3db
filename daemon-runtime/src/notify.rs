//! SPEC §7.2: the sd_notify protocol, written here (it is a few dozen lines, and the crates
//! that offer it cannot reach abstract sockets).
//!
//! `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are read once, when the start begins,
//! and removed from the environment, so that no child inherits them. The socket (an unbound
//! datagram socket, close-on-exec and non-blocking) is opened then, before any chroot or
//! privilege drop, and the address is kept ready: a send is one sendto(2) of one datagram,
//! never blocks, allocates nothing, and so may come from a signal handler. Outside a
//! supervisor every function here does nothing.
//!
//! The public functions are those the body calls: [`status`], [`watchdog`],
//! [`watchdog_interval`] and [`extend_timeout`]. See sd_notify(3).

use crate::sys;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The supervisor's notification socket, where there is one.
struct Socket {
    fd: OwnedFd,
    address: UnixAddr,
}

/// What the supervisor said, read once.
struct Supervisor {
    socket: Option<Socket>,
    /// The watchdog interval, where this process is the one watched.
    watchdog: Option<Duration>,
}

static SUPERVISOR: OnceLock<Supervisor> = OnceLock::new();
/// `STOPPING=1` is sent once.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// What the supervisor said, once the start-up has read it; `None` before (or in a program
/// that never started a daemon): no supervisor. Never reads the environment itself.
fn supervisor() -> Option<&'static Supervisor> {
    SUPERVISOR.get()
}

/// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, removes them from the
/// environment, and opens the socket. Called once, first thing in the launch (single
/// threaded, so that changing the environment races with nothing).
///
/// # Errors
///
/// A `NOTIFY_SOCKET` that is neither a path nor an abstract (`@`) address, or a socket that
/// cannot be created.
pub(crate) fn take_environment(pid_1: bool) -> io::Result<()> {
    if SUPERVISOR.get().is_some() {
        return Ok(());
    }
    let supervisor = read_environment(pid_1)?;
    let _ = SUPERVISOR.set(supervisor);
    Ok(())
}

fn read_environment(pid_1: bool) -> io::Result<Supervisor> {
    let take = |name: &str| {
        let value = std::env::var_os(name);
        std::env::remove_var(name);
        value
    };
    let socket = take("NOTIFY_SOCKET");
    let watchdog_usec = take("WATCHDOG_USEC");
    let watchdog_pid = take("WATCHDOG_PID");
    // An empty NOTIFY_SOCKET is none, as for sd_notify(3).
    let socket = socket
        .filter(|path| !path.is_empty())
        .map(open)
        .transpose()?;
    // The watchdog is this process's when WATCHDOG_PID is unset or names it (a daemon that
    // forked pings on behalf of the launcher the supervisor started; the service under a
    // PID 1 init on behalf of PID 1).
    let ours = watchdog_pid
        .as_ref()
        .and_then(|pid| pid.to_str()?.parse::<i32>().ok())
        .map_or(true, |pid| pid == sys::getpid() || (pid_1 && pid == 1));
    let watchdog = watchdog_usec
        .and_then(|usec| usec.to_str()?.parse::<u64>().ok())
        .filter(|&usec| usec > 0 && ours)
        .map(Duration::from_micros);
    Ok(Supervisor { socket, watchdog })
}

fn open(path: OsString) -> io::Result<Socket> {
    let bytes = path.as_bytes();
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET={} is neither a path nor an abstract (@) socket address",
                path.to_string_lossy()
            ),
        )
    };
    let address = match bytes.first() {
        Some(b'/') => UnixAddr::new(bytes).map_err(|_| invalid())?,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => UnixAddr::new_abstract(&bytes[1..]).map_err(|_| invalid())?,
        _ => return Err(invalid()),
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket::socket(AddressFamily::Unix, SockType::Datagram, flags, None)
        .map_err(io::Error::from)?;
    Ok(Socket { fd, address })
}

/// Sends one datagram. Never blocks (a full receiver drops it), allocates nothing.
fn send(message: &[u8]) {
    if let Some(socket) = supervisor().and_then(|s| s.socket.as_ref()) {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        let _ = socket::sendto(socket.fd.as_raw_fd(), message, &socket.address, flags);
    }
}

/// A message built on the stack: `KEY=` and a number, no allocation.
struct Line {
    buf: [u8; 96],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 96],
            len: 0,
        }
    }

    fn text(mut self, text: &[u8]) -> Line {
        let end = (self.len + text.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&text[..end - self.len]);
        self.len = end;
        self
    }

    fn number(self, n: u64) -> Line {
        let mut digits = [0u8; 20];
        self.text(crate::output::decimal(n, &mut digits))
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Whether the supervisor gave a notification socket.
pub(crate) fn has_socket() -> bool {
    supervisor().is_some_and(|s| s.socket.is_some())
}

/// The notification socket's descriptor, for the descriptor sweep to keep.
pub(crate) fn socket_fd() -> Option<std::os::fd::RawFd> {
    supervisor()
        .and_then(|s| s.socket.as_ref())
        .map(|socket| socket.fd.as_raw_fd())
}

/// `READY=1`: start-up, or a reload, is over.
pub(crate) fn ready() {
    send(b"READY=1");
}

/// `MAINPID=PID` and `READY=1` in one datagram: the launcher, forking under a supervisor,
/// tells it which process is the service (systemd's `NotifyAccess=main` takes messages only
/// from the process it started).
pub(crate) fn ready_as(pid: sys::pid_t) {
    let line = Line::new()
        .text(b"MAINPID=")
        .number(pid as u64)
        .text(b"\nREADY=1");
    send(line.bytes());
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC), in one datagram. From the SIGHUP
/// handler: async-signal-safe.
pub(crate) fn reloading() {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|now| now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000)
        .unwrap_or(0);
    let line = Line::new()
        .text(b"RELOADING=1\nMONOTONIC_USEC=")
        .number(now);
    send(line.bytes());
}

/// `STOPPING=1`, once: shutdown begins (a signal, or `main` returning). Only in the service's
/// own process (not in one it forked). Async-signal-safe.
pub(crate) fn stopping() {
    if OWNER.load(Ordering::SeqCst) == sys::getpid() && !STOPPING.swap(true, Ordering::SeqCst) {
        send(b"STOPPING=1");
    }
}

/// The service's process: set once its set-up is over.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// This process is the service (after set-up, in the daemon or in the foreground).
pub(crate) fn set_owner() {
    OWNER.store(sys::getpid(), Ordering::SeqCst);
}

/// `STATUS=` and `ERRNO=`: the start failed, with the launcher's sentence.
pub(crate) fn failed(sentence: &str, errno: Option<i32>) {
    if !has_socket() {
        return;
    }
    let mut message = format!("STATUS={sentence}");
    if let Some(errno) = errno {
        message.push_str(&format!("\nERRNO={errno}"));
    }
    send(message.as_bytes());
}

/// Tells the supervisor what the service is doing (`STATUS=`), shown by `systemctl status`.
/// Does nothing outside a supervisor. A newline in `text` ends it (the protocol is one
/// `KEY=VALUE` per line).
pub fn status(text: &str) {
    if !has_socket() {
        return;
    }
    let line = text.lines().next().unwrap_or_default();
    send(format!("STATUS={line}").as_bytes());
}

/// Pings the supervisor's watchdog (`WATCHDOG=1`), if it set one for this service
/// (`WATCHDOG_USEC`, for this process or the launcher it forked from). Call it from the
/// service's loop, at least every [`watchdog_interval`] / 2. Does nothing otherwise.
pub fn watchdog() {
    if watchdog_interval().is_some() {
        send(b"WATCHDOG=1");
    }
}

/// The watchdog interval the supervisor set (`WATCHDOG_USEC`), if it watches this service.
pub fn watchdog_interval() -> Option<Duration> {
    supervisor().and_then(|s| s.watchdog)
}

/// Asks the supervisor for more time to start, reload or stop (`EXTEND_TIMEOUT_USEC=`): the
/// current step may take `duration` more from now. Does nothing outside a supervisor.
pub fn extend_timeout(duration: Duration) {
    let usec = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let line = Line::new().text(b"EXTEND_TIMEOUT_USEC=").number(usec);
    send(line.bytes());
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn lines_are_built_without_allocation() {
        let line = Line::new()
            .text(b"MAINPID=")
            .number(4242)
            .text(b"\nREADY=1");
        assert_eq!(line.bytes(), b"MAINPID=4242\nREADY=1");
        let line = Line::new().text(b"MONOTONIC_USEC=").number(0);
        assert_eq!(line.bytes(), b"MONOTONIC_USEC=0");
        let line = Line::new().number(u64::MAX);
        assert_eq!(line.bytes(), u64::MAX.to_string().as_bytes());
    }
}
