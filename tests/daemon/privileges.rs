//! SPEC §6: user, group, chroot, and RLIMIT_CORE. These need root; they say so and pass
//! without checking anything otherwise.

use crate::support::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn sorted(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[test]
fn user_nobody_through_the_attribute() {
    if !running_as_root("user_nobody_through_the_attribute") {
        return;
    }
    let sandbox = Sandbox::new("nobody");
    launch(&mut sandbox.command("nobody")).assert_started();
    let pid = sandbox.daemon_pid();
    let (uid, gid, groups) = ids_of("nobody");
    let status = status(pid);
    assert_eq!(
        id_line(&status, "Uid"),
        [uid; 4],
        "real, effective, saved, filesystem uid"
    );
    assert_eq!(
        id_line(&status, "Gid"),
        [gid; 4],
        "real, effective, saved, filesystem gid"
    );
    assert_eq!(sorted(id_line(&status, "Groups")), sorted(groups));
    // The pidfile and the log were opened as root, before the drop.
    assert_eq!(fs::metadata(sandbox.pidfile()).unwrap().uid(), 0);
    assert!(is_locked(&sandbox.pidfile()));
    assert_eq!(fds(pid)[&1], sandbox.path("stdout.log"));
    // As nobody it cannot unlink the pidfile from a root-owned directory: it empties it, and
    // the next start reclaims it.
    signal(pid, libc::SIGTERM);
    assert_eq!(
        wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(
        fs::read(sandbox.pidfile()).unwrap(),
        b"",
        "the pidfile was not emptied"
    );
    assert!(!is_locked(&sandbox.pidfile()));
    launch(&mut sandbox.command("nobody")).assert_started();
    assert_ne!(sandbox.daemon_pid(), pid);
}

#[test]
fn a_user_with_supplementary_groups_gets_exactly_them() {
    if !running_as_root("a_user_with_supplementary_groups_gets_exactly_them") {
        return;
    }
    let user = user_with_groups();
    let (uid, gid, groups) = ids_of(user);
    assert!(
        groups.len() >= 3,
        "{user} should have supplementary groups: {groups:?}"
    );
    for (name, as_group) in [
        (user.to_owned(), None),
        (uid.to_string(), None),
        (user.to_owned(), Some("daemon-rs-b")),
    ] {
        let sandbox = Sandbox::new("groups");
        let mut command = sandbox.command("privileged");
        command.env("PROBE_USER", &name);
        if let Some(group) = as_group {
            command.env("PROBE_GROUP", group);
        }
        launch(&mut command).assert_started();
        let status = status(sandbox.daemon_pid());
        let expected_gid = match as_group {
            Some(group) => ids_of_group(group),
            None => gid,
        };
        assert_eq!(id_line(&status, "Uid"), [uid; 4], "user {name}");
        assert_eq!(
            id_line(&status, "Gid"),
            [expected_gid; 4],
            "user {name}, group {as_group:?}"
        );
        // As initgroups(3): the groups the group database lists the user in, and the gid.
        let mut expected: Vec<u32> = groups.iter().copied().filter(|&g| g != gid).collect();
        expected.push(expected_gid);
        assert_eq!(
            sorted(id_line(&status, "Groups")),
            sorted(expected),
            "user {name}, group {as_group:?}"
        );
    }
}

fn ids_of_group(group: &str) -> u32 {
    let out = std::process::Command::new("getent")
        .args(["group", group])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_group_alone_is_the_only_group_and_the_user_stays() {
    if !running_as_root("a_group_alone_is_the_only_group_and_the_user_stays") {
        return;
    }
    let sandbox = Sandbox::new("group-only");
    launch(sandbox.command("privileged").env("PROBE_GROUP", "nogroup")).assert_started();
    let status = status(sandbox.daemon_pid());
    let nogroup = ids_of_group("nogroup");
    assert_eq!(id_line(&status, "Uid"), [0; 4]);
    assert_eq!(id_line(&status, "Gid"), [nogroup; 4]);
    assert_eq!(id_line(&status, "Groups"), [nogroup]);
}

#[test]
fn unknown_users_and_groups_are_launcher_errors() {
    for (var, name, message) in [
        (
            "PROBE_USER",
            "no-such-user-xyz",
            "privileged: unknown user `no-such-user-xyz`\n",
        ),
        (
            "PROBE_GROUP",
            "no-such-group-xyz",
            "privileged: unknown group `no-such-group-xyz`\n",
        ),
    ] {
        let sandbox = Sandbox::new("unknown-user");
        let launched = launch(sandbox.command("privileged").env(var, name));
        assert_eq!(
            (launched.code(), launched.stderr.as_str()),
            (Some(1), message)
        );
        assert!(sandbox.processes().is_empty());
        assert!(!sandbox.pidfile().exists());
        assert!(
            !sandbox.path("stdout.log").exists(),
            "a log file was created before the error"
        );
    }
}

#[test]
fn chroot_then_drop_privileges() {
    if !running_as_root("chroot_then_drop_privileges") {
        return;
    }
    let sandbox = Sandbox::new("chroot");
    let root = sandbox.path("root");
    fs::create_dir(&root).unwrap();
    launch(
        sandbox
            .command("privileged")
            .env("PROBE_CHROOT", &root)
            .env("PROBE_USER", "nobody"),
    )
    .assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(fs::read_link(format!("/proc/{pid}/root")).unwrap(), root);
    assert_eq!(cwd(pid), root);
    assert_eq!(id_line(&status(pid), "Uid"), [ids_of("nobody").0; 4]);
    // The pidfile is outside the new root: at exit the daemon cannot see the path, and only
    // empties the file it holds.
    signal(pid, libc::SIGTERM);
    assert_eq!(
        wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(fs::read(sandbox.pidfile()).unwrap(), b"");
}

#[test]
fn a_missing_chroot_is_a_launcher_error() {
    let sandbox = Sandbox::new("chroot-missing");
    let launched = launch(
        sandbox
            .command("privileged")
            .env("PROBE_CHROOT", sandbox.path("none")),
    );
    assert_eq!(launched.code(), Some(1));
    assert_eq!(
        launched.stderr,
        format!(
            "privileged: cannot change the root directory to {}: No such file or directory\n",
            sandbox.path("none").display()
        )
    );
    assert!(sandbox.processes().is_empty());
}

#[test]
fn core_dumps_true_keeps_the_launchers_rlimit_core() {
    let sandbox = Sandbox::new("core");
    let mut command = sandbox.command("privileged");
    command.env("CORE_DUMPS", "1");
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let limit = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
            Ok(())
        });
    }
    launch(&mut command).assert_started();
    assert_eq!(core_limit(sandbox.daemon_pid()), ["1048576", "1048576"]);
}

#[test]
fn an_unprivileged_launcher_cannot_take_another_user() {
    if !running_as_root("an_unprivileged_launcher_cannot_take_another_user") {
        return;
    }
    let sandbox = Sandbox::new("not-root");
    fs::set_permissions(&sandbox.dir, fs::Permissions::from_mode(0o777)).unwrap();
    let (uid, gid, _) = ids_of("nobody");
    let mut command = sandbox.command_for(sandbox.copy_example("privileged"));
    command.env("PROBE_USER", "root");
    run_as(&mut command, uid, gid, None);
    let launched = launch(&mut command);
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert!(
        launched.stderr.starts_with(
            "privileged: cannot set the supplementary groups (setgroups): Operation not permitted"
        ),
        "{launched:?}"
    );
    assert!(sandbox.processes().is_empty());
    assert!(!sandbox.pidfile().exists());
}

#[test]
fn the_dumpable_flag_is_left_to_the_kernel() {
    if !running_as_root("the_dumpable_flag_is_left_to_the_kernel") {
        return;
    }
    let (uid, gid, _) = ids_of("nobody");
    // Started by nobody, running as nobody: the runtime does not clear the dumpable flag, so
    // /proc/PID stays the owner's to inspect (RLIMIT_CORE 0 is what stops core files).
    let sandbox = Sandbox::new("dumpable-kept");
    fs::set_permissions(&sandbox.dir, fs::Permissions::from_mode(0o777)).unwrap();
    let mut command = sandbox.command_for(sandbox.copy_example("by_hand"));
    run_as(&mut command, uid, gid, None);
    launch(&mut command).assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(
        fs::metadata(format!("/proc/{pid}/fd")).unwrap().uid(),
        uid,
        "/proc/PID is not the owner's"
    );
    // Started by root, dropped to nobody: the kernel clears it (the daemon still holds files
    // root opened), and /proc/PID belongs to root, unless fs.suid_dumpable says otherwise.
    if fs::read_to_string("/proc/sys/fs/suid_dumpable").is_ok_and(|value| value.trim() != "0") {
        skip_or_fail("fs.suid_dumpable is not 0 on this machine");
        return;
    }
    let sandbox = Sandbox::new("dumpable-cleared");
    launch(&mut sandbox.command("nobody")).assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(fs::metadata(format!("/proc/{pid}/fd")).unwrap().uid(), 0);
}

#[test]
fn a_numeric_user_without_an_entry_takes_the_given_group() {
    if !running_as_root("a_numeric_user_without_an_entry_takes_the_given_group") {
        return;
    }
    let sandbox = Sandbox::new("numeric");
    launch(
        sandbox
            .command("privileged")
            .env("PROBE_USER", "64998")
            .env("PROBE_GROUP", "64998"),
    )
    .assert_started();
    let status = status(sandbox.daemon_pid());
    assert_eq!(id_line(&status, "Uid"), [64_998; 4]);
    assert_eq!(id_line(&status, "Gid"), [64_998; 4]);
    assert_eq!(id_line(&status, "Groups"), [64_998]);
    // Without a group there is nothing to take.
    let sandbox = Sandbox::new("numeric-alone");
    let launched = launch(sandbox.command("privileged").env("PROBE_USER", "64998"));
    assert_eq!(launched.code(), Some(1));
    assert_eq!(
        launched.stderr,
        "privileged: unknown user `64998 (no entry in the user database: give `group` too)`\n"
    );
}

#[test]
fn after_a_drop_sighup_reopens_a_log_that_logrotate_recreated_for_the_user() {
    if !running_as_root("after_a_drop_sighup_reopens_a_log_that_logrotate_recreated_for_the_user") {
        return;
    }
    let sandbox = Sandbox::new("drop-rotate");
    launch(sandbox.command("privileged").env("PROBE_USER", "nobody")).assert_started();
    let pid = sandbox.daemon_pid();
    // logrotate with `create 0640 nobody nogroup`: move, create for the user, signal.
    fs::rename(sandbox.path("stdout.log"), sandbox.path("stdout.log.1")).unwrap();
    fs::write(sandbox.path("stdout.log"), "").unwrap();
    let (uid, gid, _) = ids_of("nobody");
    std::os::unix::fs::chown(sandbox.path("stdout.log"), Some(uid), Some(gid)).unwrap();
    signal(pid, libc::SIGHUP);
    wait_until("stdout is the new file", GONE_TIMEOUT, || {
        fds(pid)[&1] == sandbox.path("stdout.log")
    });
}
