//! SPEC §6: `user`, `group` and `chroot`.
//!
//! Names are looked up in the launcher (the user database may need files, NSS modules,
//! allocation); the daemon then only makes system calls on the numbers: `chroot`,
//! `setgroups`, `setgid`, `setuid`, in that order, and checks that every id is the target's
//! and that `setuid(0)` fails.

use crate::error::Error;
use crate::sys;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;

/// The ids to take, resolved in the launcher.
#[derive(Debug)]
pub(crate) struct Credentials {
    uid: Option<libc::uid_t>,
    gid: libc::gid_t,
    /// Exactly the supplementary groups the daemon must have.
    groups: Vec<libc::gid_t>,
    /// Room for getgroups(2) in the daemon, which must not allocate.
    scratch: Vec<libc::gid_t>,
}

/// A user database entry, the parts we need.
struct User {
    /// `None` for a number without an entry in the user database.
    name: Option<CString>,
    uid: libc::uid_t,
    gid: Option<libc::gid_t>,
}

impl Credentials {
    /// Resolves `user` and `group` (names or numbers). The user's supplementary groups are
    /// those of the group database (as initgroups(3) would set them), plus its primary group
    /// or the given `group`; with a `group` and no `user`, exactly that group.
    pub(crate) fn resolve(
        user: Option<&str>,
        group: Option<&str>,
    ) -> Result<Option<Credentials>, Error> {
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let user = user.map(find_user).transpose()?;
        let gid = match (group, &user) {
            (Some(group), _) => find_group(group)?,
            (None, Some(User { gid: Some(gid), .. })) => *gid,
            (None, Some(User { uid, .. })) => {
                return Err(Error::UnknownUser {
                    name: format!("{uid} (no entry in the user database: give `group` too)"),
                })
            }
            (None, None) => unreachable!("one of them is set"),
        };
        let mut groups = match &user {
            Some(User {
                name: Some(name), ..
            }) => group_list(name, gid)?,
            _ => vec![gid],
        };
        groups.sort_unstable();
        groups.dedup();
        let scratch = vec![0; groups.len() + 1];
        Ok(Some(Credentials {
            uid: user.map(|user| user.uid),
            gid,
            groups,
            scratch,
        }))
    }

    /// The user id to take, if one was given.
    pub(crate) fn uid(&self) -> Option<libc::uid_t> {
        self.uid
    }

    /// In the daemon: takes the groups and ids, then checks them. Allocates nothing.
    pub(crate) fn assume(&mut self) -> Result<(), (Step, io::Error)> {
        sys::setgroups(&self.groups).map_err(|error| (Step::Groups, error))?;
        sys::setgid(self.gid).map_err(|error| (Step::Gid, error))?;
        if let Some(uid) = self.uid {
            sys::setuid(uid).map_err(|error| (Step::Uid, error))?;
        }
        self.verify().map_err(|error| (Step::Verify, error))
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
        self.groups.sort_unstable();
        self.groups.dedup();
        if *held != *self.groups {
            return Err(not_dropped());
        }
        if matches!(self.uid, Some(uid) if uid != 0) {
            // No way back to root, and no capability kept (SECBIT_KEEP_CAPS, ambient).
            if sys::setuid(0).is_ok() || sys::has_capabilities()? {
                return Err(not_dropped());
            }
        }
        Ok(())
    }
}

/// The steps of [`Credentials::assume`], for the error the launcher prints.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    Groups,
    Gid,
    Uid,
    Verify,
}

fn find_user(name: &str) -> Result<User, Error> {
    let unknown = || Error::UnknownUser {
        name: name.to_owned(),
    };
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let number = numeric(name);
    let entry = match number {
        Some(uid) => lookup(|pwd, buf, result| {
            // SAFETY: every pointer is valid; buf's length is passed.
            unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
        }),
        None => lookup(|pwd, buf, result| {
            // SAFETY: every pointer is valid; buf's length is passed.
            unsafe { libc::getpwnam_r(c_name.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
        }),
    };
    match (entry, number) {
        (Some((pwd, _buf)), _) => Ok(User {
            // SAFETY: pw_name points into `_buf`, still alive here, NUL-terminated.
            name: Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned()),
            uid: pwd.pw_uid,
            gid: Some(pwd.pw_gid),
        }),
        // A number needs no entry, but then has no groups of its own.
        (None, Some(uid)) => Ok(User {
            name: None,
            uid,
            gid: None,
        }),
        (None, None) => Err(unknown()),
    }
}

fn find_group(name: &str) -> Result<libc::gid_t, Error> {
    let unknown = || Error::UnknownGroup {
        name: name.to_owned(),
    };
    if let Some(gid) = numeric(name) {
        return Ok(gid); // a number needs no entry in the group database
    }
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut group = MaybeUninit::<libc::group>::uninit();
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        let mut result = std::ptr::null_mut();
        // SAFETY: every pointer is valid; buf's length is passed.
        let ret = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                group.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match ret {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 if !result.is_null() => {
                // SAFETY: getgrnam_r filled `group` (result is non-null).
                return Ok(unsafe { group.assume_init_ref() }.gr_gid);
            }
            _ => return Err(unknown()),
        }
    }
}

/// A user or group number: decimal digits only, and not -1 (which means "unchanged").
fn numeric(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

/// Calls a `get*_r` function with a growing buffer; the entry and the buffer it points into.
fn lookup(
    mut call: impl FnMut(
        *mut libc::passwd,
        &mut Vec<libc::c_char>,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> Option<(libc::passwd, Vec<libc::c_char>)> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result = std::ptr::null_mut();
        match call(pwd.as_mut_ptr(), &mut buf, &mut result) {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            // SAFETY: the call filled `pwd` (result is non-null).
            0 if !result.is_null() => return Some((unsafe { pwd.assume_init() }, buf)),
            _ => return None,
        }
    }
}

/// getgrouplist(3): the groups `user` belongs to, with `gid`.
fn group_list(user: &CStr, gid: libc::gid_t) -> Result<Vec<libc::gid_t>, Error> {
    let mut groups = vec![0 as libc::gid_t; 32];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes the needed count.
        let ret =
            unsafe { libc::getgrouplist(user.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if ret >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if groups.len() >= 65_536 {
            return Err(Error::UnknownUser {
                name: format!(
                    "{} (its groups could not be listed)",
                    user.to_string_lossy()
                ),
            });
        }
        groups.resize((count as usize).max(groups.len() * 2), 0);
    }
}
