//! SPEC §7.1: whether a supervisor runs this service, so that `detach = "auto"` stays in the
//! foreground. It never decides from `getppid() == 1` or from "systemd is running": both
//! misfire (subreapers, `start-stop-daemon --background`, containers).

use nix::sys::socket::{self, AddressFamily, SockaddrLike, SockaddrStorage};
use std::os::fd::AsRawFd;

/// The environment variable that asks for the foreground (`DAEMON_FOREGROUND=1`), for the
/// supervisors that say nothing (runit, s6, supervisord, a container's own init).
pub(crate) const FOREGROUND_VARIABLE: &str = "DAEMON_FOREGROUND";

/// What says a supervisor runs this service, as the start-up found it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signs {
    /// This process was PID 1 of its PID namespace (the service now runs under its init).
    pub(crate) pid_1: bool,
    /// Descriptor 0 is an inetd socket.
    pub(crate) inetd: bool,
    /// Socket activation named this process (`LISTEN_PID`).
    pub(crate) activated: bool,
    /// A notification socket was given (`NOTIFY_SOCKET`).
    pub(crate) notified: bool,
}

/// Whether a supervisor wants this process in the foreground: one of the [`Signs`], or
/// `DAEMON_FOREGROUND=1`.
pub(crate) fn foreground_wanted(signs: Signs) -> bool {
    signs.pid_1
        || signs.inetd
        || signs.activated
        || signs.notified
        || std::env::var_os(FOREGROUND_VARIABLE).is_some_and(|value| value == "1")
}

/// Whether descriptor 0 is a listening socket (`SO_ACCEPTCONN`): inetd's "wait" mode, where
/// the service accepts the connections itself, as `listener("stdin")`.
pub(crate) fn listening_socket_on_stdin() -> bool {
    socket::getsockopt(&std::io::stdin(), socket::sockopt::AcceptConn).unwrap_or(false)
}

/// Whether descriptor 0 is a socket an inetd would pass: an internet socket, or a unix
/// socket with a bound address. A socketpair (unnamed) or a pipe is not.
pub(crate) fn inetd_socket_on_stdin() -> bool {
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    let Ok(address) = socket::getsockname::<SockaddrStorage>(fd) else {
        return false; // not a socket (ENOTSOCK), or closed
    };
    match address.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => true,
        Some(AddressFamily::Unix) => address.as_unix_addr().is_some_and(|unix| {
            unix.path().is_some() || {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                {
                    unix.as_abstract().is_some()
                }
                #[cfg(not(any(target_os = "linux", target_os = "android")))]
                {
                    false
                }
            }
        }),
        _ => false,
    }
}
