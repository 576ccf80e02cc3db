//! SPEC §6: `user`, `group` and `chroot`.
//!
//! Names are looked up in the launcher (the user database may need files, NSS modules,
//! allocation); the daemon then only makes system calls on the numbers: `chroot`,
//! `setgroups`, `setgid`, `setuid`, in that order, and checks that every id is the target's
//! and that `setuid(0)` fails.

use crate::child::Step;
use crate::error::Error;
use crate::sys;
use nix::unistd::{self, Gid, Group, Uid, User};
use std::ffi::CString;
use std::io;

/// The ids to take, resolved in the launcher.
#[derive(Debug)]
pub(crate) struct Credentials {
    uid: Option<Uid>,
    gid: Gid,
    /// Exactly the supplementary groups the daemon must have, sorted.
    groups: Vec<Gid>,
    /// Room for getgroups(2) in the daemon, which must not allocate.
    scratch: Vec<libc::gid_t>,
}

impl Credentials {
    /// Resolves `user` and `group` (names or numbers). The user's supplementary groups are
    /// those of the group database (as initgroups(3) would set them), plus its primary group
    /// or the given `group`; with a `group` and no `user`, exactly that group.
    pub(crate) fn resolve(
        user: Option<&str>,
        group: Option<&str>,
    ) -> Result<Option<Credentials>, Error> {
        let (user_entry, uid) = match user {
            Some(name) => {
                let (entry, uid) = find_user(name)?;
                (entry, Some(uid))
            }
            None if group.is_none() => return Ok(None),
            None => (None, None),
        };
        let gid = match (group, &user_entry, uid) {
            (Some(group), _, _) => find_group(group)?,
            (None, Some(entry), _) => entry.gid,
            // A number needs no entry, but then has no group of its own.
            (None, None, Some(uid)) => {
                return Err(Error::UnknownUser {
                    name: format!("{uid} (no entry in the user database: give `group` too)"),
                })
            }
            (None, None, None) => return Ok(None),
        };
        let mut groups = match &user_entry {
            Some(entry) => group_list(entry, gid)?,
            None => vec![gid],
        };
        groups.sort_unstable_by_key(|gid| gid.as_raw());
        groups.dedup();
        let scratch = vec![0; groups.len() + 1];
        Ok(Some(Credentials {
            uid,
            gid,
            groups,
            scratch,
        }))
    }

    /// The user id to take, if one was given.
    pub(crate) fn uid(&self) -> Option<libc::uid_t> {
        self.uid.map(Uid::as_raw)
    }

    /// In the daemon: takes the groups and ids, then checks them. Allocates nothing.
    pub(crate) fn assume(&mut self) -> Result<(), (Step, io::Error)> {
        // A process that already runs as the target (systemd's `User=` and `Group=` with the
        // same names) goes on: it could not change its ids, and need not.
        if !self.already_taken() {
            sys::setgroups(&self.groups).map_err(|error| (Step::Groups, error))?;
            sys::setgid(self.gid).map_err(|error| (Step::Gid, error))?;
            if let Some(uid) = self.uid {
                sys::setuid(uid).map_err(|error| (Step::Uid, error))?;
            }
        }
        self.verify().map_err(|error| (Step::Verify, error))
    }

    /// Whether every id is the target's already, and the target is not root.
    fn already_taken(&self) -> bool {
        let Ok((uids, gids)) = sys::all_ids() else {
            return false;
        };
        let gid_taken = gids.iter().all(|&gid| gid == self.gid);
        match self.uid {
            Some(uid) => !uid.is_root() && uids.iter().all(|&id| id == uid) && gid_taken,
            // `group` alone: an unprivileged process already in that group goes on.
            None => !uids[1].is_root() && gid_taken,
        }
    }

    fn verify(&mut self) -> io::Result<()> {
        let not_dropped = || io::Error::from_raw_os_error(libc::EPERM);
        let (uids, gids) = sys::all_ids()?;
        if gids.iter().any(|&gid| gid != self.gid) {
            return Err(not_dropped());
        }
        if let Some(uid) = self.uid {
            if uids.iter().any(|&id| id != uid) {
                return Err(not_dropped());
            }
        }
        let count = sys::getgroups(&mut self.scratch)?;
        let held = &mut self.scratch[..count];
        held.sort_unstable();
        let same = held.len() == self.groups.len()
            && held
                .iter()
                .zip(&self.groups)
                .all(|(held, gid)| *held == gid.as_raw());
        if !same {
            return Err(not_dropped());
        }
        if self.uid.is_some_and(|uid| !uid.is_root()) {
            // No way back to root, and no capability kept (SECBIT_KEEP_CAPS, ambient).
            if sys::setuid(Uid::from_raw(0)).is_ok() || sys::has_capabilities()? {
                return Err(not_dropped());
            }
        }
        Ok(())
    }
}

/// The user's entry, and its uid. A number needs no entry in the user database.
fn find_user(name: &str) -> Result<(Option<User>, Uid), Error> {
    let unknown = || Error::UnknownUser {
        name: name.to_owned(),
    };
    match numeric(name) {
        Some(uid) => {
            let uid = Uid::from_raw(uid);
            let entry = User::from_uid(uid).ok().flatten();
            Ok((entry, uid))
        }
        None => match User::from_name(name) {
            Ok(Some(entry)) => {
                let uid = entry.uid;
                Ok((Some(entry), uid))
            }
            _ => Err(unknown()),
        },
    }
}

fn find_group(name: &str) -> Result<Gid, Error> {
    if let Some(gid) = numeric(name) {
        return Ok(Gid::from_raw(gid)); // a number needs no entry in the group database
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        _ => Err(Error::UnknownGroup {
            name: name.to_owned(),
        }),
    }
}

/// A user or group number: decimal digits only, and not -1 (which means "unchanged").
fn numeric(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

/// getgrouplist(3): the groups the user belongs to, with `gid`.
fn group_list(user: &User, gid: Gid) -> Result<Vec<Gid>, Error> {
    let failed = || Error::UnknownUser {
        name: format!("{} (its groups could not be listed)", user.name),
    };
    let name = CString::new(user.name.as_str()).map_err(|_| failed())?;
    unistd::getgrouplist(&name, gid).map_err(|_| failed())
}
