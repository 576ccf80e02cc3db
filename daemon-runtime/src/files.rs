//! The checks every file the daemon writes goes through: the pidfile (SPEC §4) and the log
//! files (§2), at start-up in the launcher and, for the logs, again at each `SIGHUP` reopen in
//! the daemon.
//!
//! A file is opened relative to its directory, which is opened and checked first, so that the
//! directory checked is the one used. The file itself is never a symbolic link
//! (`O_NOFOLLOW`), and the directory may not be on a pseudo file system (procfs, sysfs, ...),
//! where "writing a pid" means setting a kernel parameter. A process running as root refuses
//! more, because a user who can change a directory on the way could otherwise point root's
//! writes anywhere: a symbolic link on the directory's path that a user other than root may
//! change (root resolves the path one component at a time), a directory anyone may write that
//! has no sticky bit, a file with several hard links, and a file owned by anyone but root or
//! the daemon's own user.
//!
//! A log's directory stays open in the daemon (`O_PATH`: it grants nothing but opening files
//! in it), so that the `SIGHUP` reopen looks up no path at all: [`open_log`] allocates
//! nothing, and the handler calls it.

use crate::paths;
use crate::sys::{self, FileId};
use nix::fcntl::OFlag;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a file or its directory was refused. Holds no allocation (the `SIGHUP` handler makes
/// them); the launcher turns one into a sentence with [`Refusal::into_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A system call failed with this `errno`.
    Os(i32),
    /// Not a regular file (nor a FIFO, where one is accepted); the `S_IFMT` bits.
    Kind(u32),
    /// Several hard links, refused as root.
    Links(u64),
    /// Owned by this uid, refused as root.
    Owner(u32),
    /// The directory may be written by anyone and has no sticky bit, refused as root.
    OpenDirectory,
    /// The directory is on this pseudo file system.
    Pseudo(&'static str),
    /// A FIFO that no process reads.
    NoReader,
    /// A symbolic link on the directory's path, in a directory a user other than root may
    /// change, refused as root.
    UntrustedLink,
}

impl From<io::Error> for Refusal {
    fn from(error: io::Error) -> Refusal {
        Refusal::Os(error.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl Refusal {
    /// The sentence after `cannot open pidfile P: `. `what` names the file (`"a pidfile"`,
    /// `"a log file"`), `owners` who may own it as root.
    pub(crate) fn into_error(self, what: &str, directory: &Path, owners: &str) -> io::Error {
        let invalid = |text: String| io::Error::new(io::ErrorKind::InvalidInput, text);
        match self {
            Refusal::Os(libc::ELOOP) => invalid(format!(
                "it is a symbolic link, which is never followed for {what}"
            )),
            Refusal::Os(errno) => io::Error::from_raw_os_error(errno),
            Refusal::Kind(kind) if what == "a log file" => invalid(format!(
                "it is {}, not a regular file or a FIFO{}",
                kind_name(kind),
                match kind & libc::S_IFMT {
                    libc::S_IFCHR => " (leave the setting out for /dev/null)",
                    _ => "",
                }
            )),
            Refusal::Kind(kind) => invalid(format!("it is {}, not a regular file", kind_name(kind))),
            Refusal::Links(count) => invalid(format!(
                "it has {count} hard links; refusing it as root"
            )),
            Refusal::Owner(uid) => invalid(format!(
                "it is owned by uid {uid}, not by {owners}; refusing it as root"
            )),
            Refusal::OpenDirectory => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "its directory {} may be written by anyone and has no sticky bit; refusing it as root",
                    directory.display()
                ),
            ),
            Refusal::Pseudo(filesystem) => invalid(format!(
                "its directory {} is on {filesystem}, a pseudo file system of the kernel, not a place for {what}",
                directory.display()
            )),
            Refusal::NoReader => io::Error::new(
                io::ErrorKind::NotConnected,
                "it is a FIFO that no process is reading; start its reader first",
            ),
            Refusal::UntrustedLink => io::Error::new(
                io::ErrorKind::PermissionDenied,
                "its path goes through a symbolic link in a directory that a user other than root may change; refusing it as root",
            ),
        }
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFLNK => "a symbolic link",
        _ => "a special file",
    }
}

/// The pseudo file systems of Linux that a pidfile or a log must not be on, by the `f_type`
/// of statfs(2) (linux/magic.h).
const PSEUDO: &[(u64, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6265_6570, "configfs"),
    (0xcafe_4a11, "bpffs"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x0000_1cd1, "devpts"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6573_5543, "fusectl"),
];

/// Who opens the file, for the checks that apply to root only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opener {
    /// The process runs as root (effective uid 0).
    pub(crate) as_root: bool,
    /// Besides root, the one user that may own the file (the daemon's `user`).
    pub(crate) owner: libc::uid_t,
}

impl Opener {
    /// The current process, for a file that only root may own besides `owner`.
    pub(crate) fn current(owner: libc::uid_t) -> Opener {
        Opener {
            as_root: sys::geteuid() == 0,
            owner,
        }
    }
}

/// A path split into its directory and its last component, prepared before any fork.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) path: PathBuf,
    pub(crate) directory: PathBuf,
    pub(crate) name: CString,
}

impl Location {
    /// Splits `path` (absolute).
    pub(crate) fn new(path: PathBuf) -> io::Result<Location> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("/"),
        };
        let name = path
            .file_name()
            .ok_or_else(|| invalid("the path has no file name"))?;
        let name = paths::c_string(Path::new(name))?;
        Ok(Location {
            name,
            directory,
            path,
        })
    }
}

/// An open, checked directory, to open files in.
#[derive(Debug)]
pub(crate) struct Directory(OwnedFd);

impl Directory {
    /// Opens the directory at `path` (absolute) and checks it: not on a pseudo file system,
    /// and as root, reached through no symbolic link a user other than root may change, and
    /// not writable by anyone without the sticky bit. In the launcher (it allocates).
    pub(crate) fn open(path: &Path, opener: Opener) -> Result<Directory, Refusal> {
        let directory = match opener.as_root {
            true => Directory(walk(path)?),
            false => {
                let c_path = paths::c_string(path)?;
                Directory(sys::open_directory(None, &c_path, true)?)
            }
        };
        let filesystem = sys::filesystem_type(directory.fd())?;
        if let Some(&(_, name)) = PSEUDO.iter().find(|(magic, _)| *magic == filesystem) {
            return Err(Refusal::Pseudo(name));
        }
        let mode = sys::fstat(directory.fd())?.mode;
        // Others may write (0o002), and no sticky bit (S_ISVTX, 0o1000 everywhere).
        if opener.as_root && mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(Refusal::OpenDirectory);
        }
        Ok(directory)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        self.0
    }
}

/// The most symbolic links one path may go through (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Opens the directory at `path` one component at a time (`O_NOFOLLOW`), following a
/// symbolic link only where no user but root may change it: in a directory owned by root that
/// no group or other may write, or, in a sticky one (like `/tmp`), a link owned by root. So
/// `/var/run/x` (a link to `/run` in `/var`) works, and a link planted in a directory the
/// service's user owns does not send root's writes elsewhere.
fn walk(path: &Path) -> Result<OwnedFd, Refusal> {
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let push = |pending: &mut Vec<Vec<u8>>, path: &[u8]| {
        let components: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        pending.extend(components.into_iter().rev().map(<[u8]>::to_vec));
    };
    push(&mut pending, path.as_os_str().as_bytes());
    let mut dir = sys::open_directory(None, c"/", false)?;
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component.is_empty() || component == b"." {
            continue;
        }
        let name = CString::new(component).map_err(|_| Refusal::Os(libc::EINVAL))?;
        let error = match sys::open_directory(Some(dir.as_fd()), &name, false) {
            Ok(next) => {
                dir = next;
                continue;
            }
            Err(error) => error,
        };
        if !matches!(error.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) {
            return Err(error.into());
        }
        let link = sys::lstat_at(dir.as_fd(), &name)?;
        if !link.is_symlink() {
            return Err(error.into());
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(Refusal::Os(libc::ELOOP));
        }
        let parent = sys::fstat(dir.as_fd())?;
        let only_root_writes = parent.mode & 0o022 == 0;
        let sticky_root_link = parent.mode & 0o1000 != 0 && link.uid == 0;
        if parent.uid != 0 || !(only_root_writes || sticky_root_link) {
            return Err(Refusal::UntrustedLink);
        }
        let target = sys::read_link_at(dir.as_fd(), &name)?;
        if target.first() == Some(&b'/') {
            dir = sys::open_directory(None, c"/", false)?;
        }
        push(&mut pending, &target);
    }
    Ok(dir)
}

/// Checks a file opened for writing: its kind, and as root its links and owner.
pub(crate) fn check_file(
    fd: BorrowedFd,
    fifo_allowed: bool,
    opener: Opener,
) -> Result<FileId, Refusal> {
    let id = sys::fstat(fd)?;
    let fifo = id.mode & libc::S_IFMT == libc::S_IFIFO;
    if !(id.is_regular() || fifo && fifo_allowed) {
        return Err(Refusal::Kind(id.mode));
    }
    if opener.as_root && id.nlink > 1 && !fifo {
        return Err(Refusal::Links(id.nlink));
    }
    if opener.as_root && id.uid != 0 && id.uid != opener.owner {
        return Err(Refusal::Owner(id.uid));
    }
    Ok(id)
}

/// Opens the log file `name` in `directory` for append, creating it 0640 if it is missing,
/// with the checks of [`check_file`]. Returns the descriptor (`O_CLOEXEC`, blocking), whether
/// this call created the file, and the file. Allocates nothing: the daemon's `SIGHUP` handler
/// calls it.
pub(crate) fn open_log(
    directory: BorrowedFd,
    name: &CStr,
    opener: Opener,
) -> Result<(OwnedFd, bool, FileId), Refusal> {
    // O_NONBLOCK only while opening: a FIFO without a reader fails (ENXIO) instead of
    // hanging; O_NOFOLLOW: a symbolic link is refused (ELOOP), never followed.
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
    let create = flags | OFlag::O_CREAT | OFlag::O_EXCL;
    let (fd, created) = loop {
        match sys::openat(directory, name, create, 0o640) {
            Ok(fd) => break (fd, true),
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(error.into()),
        }
        match sys::openat(directory, name, flags, 0) {
            Ok(fd) => break (fd, false),
            // Removed between the two calls: create it again.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(error) if error.raw_os_error() == Some(libc::ENXIO) => {
                return Err(Refusal::NoReader)
            }
            Err(error) => return Err(error.into()),
        }
    };
    let checked = check_file(fd.as_fd(), true, opener).and_then(|id| {
        sys::clear_nonblock(fd.as_fd())?;
        if created {
            sys::fchmod(fd.as_fd(), 0o640)?;
        }
        Ok(id)
    });
    match checked {
        Ok(id) => Ok((fd, created, id)),
        Err(refusal) => {
            drop(fd);
            if created {
                let _ = sys::unlinkat(directory, name);
            }
            Err(refusal)
        }
    }
}
