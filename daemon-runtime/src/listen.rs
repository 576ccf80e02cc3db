//! SPEC §7.3: listening sockets, bound by the launcher (the `listen` key) or handed over by
//! socket activation (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), and taken by the body by
//! name with [`listener`], [`tcp_listener`] or [`unix_listener`].
//!
//! Activated descriptors are taken first thing in the launch, so that the descriptor sweep
//! keeps them, and made close-on-exec; the runtime never closes or unlinks them. The `listen`
//! entries without an activated socket of the same name are bound before the fork and before
//! privileges drop (a service that runs as `www-data` can listen on port 80). Either way the
//! sockets are in this process's memory and descriptor table when it forks, so the daemon has
//! them.

use crate::paths::{self, Cwd};
use crate::sys;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The sockets, by name, until the body takes them.
static SOCKETS: Mutex<Vec<(String, Option<OwnedFd>)>> = Mutex::new(Vec::new());

/// The unix socket files this start created, for [`discard`] if the start fails.
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// In the launcher once the daemon is forked: closes its copies of the sockets (the socket
/// files stay, for [`discard`] if the start fails).
pub(crate) fn close_copies() {
    SOCKETS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// In a launcher whose start failed: closes its sockets and removes the socket files it
/// created (activated ones are the supervisor's and stay).
pub(crate) fn discard() {
    close_copies();
    for path in CREATED.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = std::fs::remove_file(path);
    }
}

/// The first descriptor of socket activation (`SD_LISTEN_FDS_START`).
const FIRST: RawFd = 3;

/// Socket-activated descriptors, by name.
#[derive(Debug, Default)]
pub(crate) struct Activation {
    /// `LISTEN_PID` named this process (its sockets may still be none).
    pub(crate) ours: bool,
    pub(crate) sockets: Vec<(String, OwnedFd)>,
}

impl Activation {
    /// The descriptor numbers, for the sweep to keep.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.sockets.iter().map(|(_, fd)| fd.as_raw_fd())
    }
}

/// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` and removes them (and systemd 259's
/// `LISTEN_PIDFDID`) from the environment. When `LISTEN_PID` is this process (or 1, when this
/// is the service under a PID 1 init), descriptors 3 onwards are its sockets: they are taken, checked to be open, and made close-on-exec.
/// Without `LISTEN_FDNAMES` they take the names of `listen`'s entries, in order.
///
/// # Errors
///
/// Malformed values, or a descriptor that is not open: the message names the variable.
pub(crate) fn take_activation(entry_names: &[String], pid_1: bool) -> Result<Activation, String> {
    let take = |name: &str| {
        let value = std::env::var(name).ok();
        std::env::remove_var(name);
        value
    };
    let pid = take("LISTEN_PID");
    let count = take("LISTEN_FDS");
    let names = take("LISTEN_FDNAMES");
    take("LISTEN_PIDFDID");
    let Some(pid) = pid else {
        return Ok(Activation::default());
    };
    let pid: i32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid} is not a process id"))?;
    // Under a PID 1 init (a container), the service is its child: `LISTEN_PID=1` meant it.
    if pid != sys::getpid() && !(pid_1 && pid == 1) {
        return Ok(Activation::default()); // another process's sockets
    }
    let count = count.ok_or("LISTEN_PID names this process, but LISTEN_FDS is not set")?;
    let count: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|&count: &RawFd| (0..=4096).contains(&count))
        .ok_or_else(|| format!("LISTEN_FDS={count} is not a number of descriptors"))?;
    let names: Vec<String> = match &names {
        Some(names) => {
            let names: Vec<String> = names.split(':').map(str::to_owned).collect();
            if names.len() != count as usize {
                return Err(format!(
                    "LISTEN_FDNAMES={} names {} descriptors, LISTEN_FDS={count}",
                    names.join(":"),
                    names.len()
                ));
            }
            names
        }
        None => (0..count as usize)
            .map(|i| {
                entry_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_owned())
            })
            .collect(),
    };
    let mut sockets = Vec::new();
    for (offset, name) in names.into_iter().enumerate() {
        let fd = FIRST + offset as RawFd;
        if !sys::is_open(fd) {
            return Err(format!(
                "LISTEN_FDS={count}, but descriptor {fd} ({name}) is not open"
            ));
        }
        // SAFETY: an activated descriptor, inherited and owned by nothing in this process;
        // from here on this value owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        sys::set_cloexec(fd.as_fd())
            .map_err(|error| format!("descriptor {}: {error}", fd.as_raw_fd()))?;
        sockets.push((name, fd));
    }
    Ok(Activation {
        ours: true,
        sockets,
    })
}

/// One `listen` entry, `NAME=ADDRESS`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    address: Address,
    /// As written, for messages.
    written: String,
}

#[derive(Debug, Clone)]
enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Entry {
    /// Parses `NAME=ADDRESS`: `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`.
    pub(crate) fn parse(written: &str) -> Result<Entry, String> {
        let bad = |why: &str| format!("listen entry \"{written}\": {why}");
        let (name, address) = written
            .split_once('=')
            .ok_or_else(|| bad("write NAME=ADDRESS, like http=127.0.0.1:8080"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(bad("the name is letters, digits, `_`, `-` and `.`"));
        }
        let address = match address.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Address::Unix(PathBuf::from(path)),
            Some(_) => return Err(bad("`unix:` needs a path")),
            // A port may come from a variable: `127.0.0.1:${PORT:-8080}`, checked once expanded.
            None if address.contains('$') => Address::Tcp(address.to_owned()),
            None if address
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok()) =>
            {
                Address::Tcp(address.to_owned())
            }
            None => return Err(bad("the address is HOST:PORT, [IPV6]:PORT or unix:PATH")),
        };
        Ok(Entry {
            name: name.to_owned(),
            address,
            written: written.to_owned(),
        })
    }

    /// Binds it: TCP with `SO_REUSEADDR` (std sets it), close-on-exec; a unix path after
    /// expanding it, replacing a stale socket file nobody listens on.
    /// The socket, and for a unix one the path of the file the bind created.
    fn bind(&self, cwd: &mut Cwd) -> io::Result<(OwnedFd, Option<PathBuf>)> {
        match self.target(cwd)? {
            Target::Tcp(addresses) => {
                TcpListener::bind(&addresses[..]).map(|listener| (OwnedFd::from(listener), None))
            }
            Target::Unix(path) => {
                remove_stale_socket(&path)?;
                UnixListener::bind(&path).map(|listener| (OwnedFd::from(listener), Some(path)))
            }
        }
    }

    /// Where it listens: its addresses (expanded, resolved), or its socket file's path
    /// (expanded, absolute).
    pub(crate) fn target(&self, cwd: &mut Cwd) -> io::Result<Target> {
        let invalid =
            |error: crate::Error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string());
        match &self.address {
            Address::Tcp(address) => {
                let address = paths::expand_only("listen", Path::new(address)).map_err(invalid)?;
                let addresses = address.to_string_lossy().to_socket_addrs()?.collect();
                Ok(Target::Tcp(addresses))
            }
            Address::Unix(template) => paths::resolve("listen", template, cwd)
                .map(Target::Unix)
                .map_err(invalid),
        }
    }
}

/// Where an entry listens, see [`Entry::target`].
#[derive(Debug)]
pub(crate) enum Target {
    Tcp(Vec<SocketAddr>),
    Unix(PathBuf),
}

impl Target {
    /// Whether `fd` is a listening socket here (`upgrade` looks for it among the running
    /// daemon's descriptors). A TCP address with port 0 matches any port.
    pub(crate) fn is_listening_at(&self, fd: BorrowedFd) -> bool {
        use nix::sys::socket::{getsockopt, sockopt};
        if !getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
            return false;
        }
        // Asked through a duplicate, as std's listener types, which say their address.
        let Ok(copy) = fd.try_clone_to_owned() else {
            return false;
        };
        match self {
            Target::Tcp(wanted) => {
                let Ok(bound) = TcpListener::from(copy).local_addr() else {
                    return false; // not a TCP socket
                };
                wanted.iter().any(|want| {
                    want.ip() == bound.ip() && (want.port() == 0 || want.port() == bound.port())
                })
            }
            Target::Unix(path) => UnixListener::from(copy)
                .local_addr()
                .is_ok_and(|bound| bound.as_pathname() == Some(path.as_path())),
        }
    }
}

impl Entry {
    /// The entry as written.
    pub(crate) fn written(&self) -> &str {
        &self.written
    }

    /// The entry as written, and the address it expands to when it uses variables, for
    /// messages: `echo=127.0.0.1:${PORT} (127.0.0.1:7007)`.
    fn shown(&self) -> String {
        let template = match &self.address {
            Address::Tcp(template) => Path::new(template),
            Address::Unix(template) => template.as_path(),
        };
        match paths::expand_only("listen", template) {
            Ok(expanded) if expanded != template => {
                format!("{} ({})", self.written, expanded.display())
            }
            _ => self.written.clone(),
        }
    }
}

/// A socket file at `path` that nobody listens on (a connection is refused) is a leftover of
/// a daemon that was killed: it is removed. Anything else there stays, and the bind fails.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Ok(()); // the bind says "Address already in use"
    }
    // Non-blocking: a live server whose backlog is full must not hang the launcher (that
    // connect says EAGAIN: someone listens).
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let probe = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
    let address = UnixAddr::new(path)?;
    match connect(probe.as_raw_fd(), &address) {
        Err(nix::errno::Errno::ECONNREFUSED) => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

/// Binds every entry that activation did not provide, and keeps every socket for the body.
///
/// # Errors
///
/// The entry that could not be bound, and why.
pub(crate) fn prepare(
    entries: &[Entry],
    activation: Activation,
    stdin_listener: bool,
) -> Result<(), (String, io::Error)> {
    let mut sockets: Vec<(String, Option<OwnedFd>)> = activation
        .sockets
        .into_iter()
        .map(|(name, fd)| (name, Some(fd)))
        .collect();
    // inetd's "wait" mode: the listening socket on descriptor 0 is `listener("stdin")`, as a
    // close-on-exec copy.
    if stdin_listener {
        let copy = nix::unistd::dup(std::io::stdin().as_fd())
            .map_err(|error| ("stdin".to_owned(), io::Error::from(error)))?;
        sys::set_cloexec(copy.as_fd()).map_err(|error| ("stdin".to_owned(), error))?;
        sockets.push(("stdin".to_owned(), Some(copy)));
    }
    let mut cwd = Cwd::default();
    let mut created: Vec<PathBuf> = Vec::new();
    for entry in entries {
        if sockets.iter().any(|(name, _)| *name == entry.name) {
            continue; // activated: used instead of binding
        }
        match entry.bind(&mut cwd) {
            Ok((fd, path)) => {
                created.extend(path);
                sockets.push((entry.name.clone(), Some(fd)));
            }
            Err(error) => {
                // Nothing left: the socket files this start made go again.
                for path in created {
                    let _ = std::fs::remove_file(path);
                }
                return Err((entry.shown(), error));
            }
        }
    }
    *CREATED.lock().unwrap_or_else(|e| e.into_inner()) = created;
    *SOCKETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = sockets;
    Ok(())
}

/// The listening socket of that name (a `listen` entry, or socket activation), once: later
/// calls with the same name return `None`, and so does a name there is none of.
///
/// In the daemon's body. Its descriptor is close-on-exec.
pub fn listener(name: &str) -> Option<OwnedFd> {
    let mut sockets = SOCKETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    sockets
        .iter_mut()
        .find(|(socket, _)| socket == name)
        .and_then(|(_, fd)| fd.take())
}

/// [`listener`] as a [`TcpListener`].
///
/// # Errors
///
/// No socket of that name (the error lists the names there are), or one taken already.
pub fn tcp_listener(name: &str) -> io::Result<TcpListener> {
    take(name).map(TcpListener::from)
}

/// [`listener`] as a [`UnixListener`].
///
/// # Errors
///
/// No socket of that name (the error lists the names there are), or one taken already.
pub fn unix_listener(name: &str) -> io::Result<UnixListener> {
    take(name).map(UnixListener::from)
}

fn take(name: &str) -> io::Result<OwnedFd> {
    if let Some(fd) = listener(name) {
        return Ok(fd);
    }
    let sockets = SOCKETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let names: Vec<&str> = sockets.iter().map(|(name, _)| name.as_str()).collect();
    let known = sockets.iter().any(|(socket, _)| socket == name);
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        match (known, names.is_empty()) {
            (true, _) => format!("the listening socket \"{name}\" was taken already"),
            (false, true) => format!(
                "no listening socket \"{name}\": there are none (no `listen` entries, no socket activation)"
            ),
            (false, false) => format!(
                "no listening socket \"{name}\"; there are: {}",
                names.join(", ")
            ),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::Entry;

    #[test]
    fn entries_parse_or_say_why_not() {
        assert_eq!(Entry::parse("http=127.0.0.1:8080").unwrap().name, "http");
        assert!(Entry::parse("v6=[::1]:80").is_ok());
        assert!(Entry::parse("admin=unix:/run/x.sock").is_ok());
        for bad in [
            "http",
            "=1.2.3.4:80",
            "http=1.2.3.4",
            "http=unix:",
            "h t=1.2.3.4:80",
        ] {
            let error = Entry::parse(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("listen entry \"{bad}\"")),
                "{error}"
            );
        }
    }
}
