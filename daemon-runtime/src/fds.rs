//! SPEC §3 step 1: close every inherited descriptor above 2, except the ones asked for.
//!
//! The cost does not depend on `RLIMIT_NOFILE`: `close_range(2)` closes the gaps between the
//! kept descriptors in a few calls; without it, `/proc/self/fd` lists what is really open; only
//! when both are missing does a loop run, bounded by the soft limit and by [`LOOP_BOUND`].

use crate::sys::{self, Standard};
use nix::fcntl::OFlag;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, RawFd};

/// The most descriptors the last-resort loop visits.
const LOOP_BOUND: u64 = 65_536;

/// Makes sure descriptors 0, 1 and 2 are open (on `/dev/null` where they were closed), so that
/// no file of ours can land on them and the launcher's messages go nowhere harmful.
pub(crate) fn ensure_standard_open() -> std::io::Result<()> {
    for (fd, standard) in [(0, Standard::In), (1, Standard::Out), (2, Standard::Err)] {
        if !sys::is_open(fd) {
            // The lowest free number is taken: `fd` itself, since the lower ones are open.
            let opened = sys::open(c"/dev/null", OFlag::O_RDWR, 0)?;
            if opened.as_raw_fd() != fd {
                sys::dup_onto_standard(opened.as_fd(), standard)?;
            } else {
                // A standard descriptor must survive exec; from here on it is the process's
                // descriptor `fd`, owned by no value.
                sys::set_inheritable(opened.as_fd())?;
                let _ = opened.into_raw_fd();
            }
        }
    }
    Ok(())
}

/// Closes every descriptor above 2 that is not in `keep`.
pub(crate) fn close_inherited(keep: &[RawFd]) -> std::io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    if close_gaps(&keep).is_ok() {
        return Ok(());
    }
    let candidates = listed_descriptors().unwrap_or_else(|| {
        let bound = sys::open_files_limit().min(LOOP_BOUND) as u32;
        (3..bound).collect()
    });
    for fd in candidates
        .into_iter()
        .filter(|fd| *fd > 2 && !keep.contains(fd))
    {
        // SAFETY: every descriptor not kept is inherited and owned by no value of this
        // process: the runtime's own so far (the notification socket, activated sockets)
        // are in `keep`.
        unsafe { sys::close_unowned(fd as RawFd) };
    }
    Ok(())
}

/// close_range over `3..` minus `keep` (sorted): one call per gap.
fn close_gaps(keep: &[u32]) -> std::io::Result<()> {
    let mut first = 3u32;
    // SAFETY: every descriptor above 2 not kept is inherited, owned by no value of this
    // process (the runtime's own so far are in `keep`).
    unsafe {
        for &kept in keep {
            if kept > first {
                sys::close_range(first, kept - 1)?;
            }
            first = kept + 1;
        }
        sys::close_range(first, u32::MAX)
    }
}

/// The open descriptors, from `/proc/self/fd` (Linux) or `/dev/fd` (macOS, where it lists
/// them all; on FreeBSD without fdescfs it would list only 0-2, so it is not used there).
pub(crate) fn listed_descriptors() -> Option<Vec<u32>> {
    let dir = if cfg!(any(target_os = "linux", target_os = "android")) {
        "/proc/self/fd"
    } else if cfg!(target_os = "macos") {
        "/dev/fd"
    } else {
        return None;
    };
    let entries = std::fs::read_dir(dir).ok()?;
    // Collect first: the directory's own descriptor is in the list, and closing it while
    // reading would end the listing early. It is closed when `entries` drops.
    Some(
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}
