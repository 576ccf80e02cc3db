//! SPEC §4: the pidfile and its lock.

use crate::support::*;
use std::fs;

#[test]
fn a_second_start_is_refused_with_the_running_pid_and_changes_nothing() {
    let sandbox = Sandbox::new("second");
    launch(&mut sandbox.command("probe")).assert_started();
    let pid = sandbox.daemon_pid();
    let before = fs::metadata(sandbox.pidfile()).unwrap();
    let second = launch(&mut sandbox.command("probe"));
    assert_eq!(second.code(), Some(1), "{second:?}");
    assert_eq!(
        second.stderr,
        format!("probe: already running (pid {pid})\n")
    );
    assert!(is_alive(pid));
    assert_eq!(
        sandbox.processes(),
        vec![pid],
        "the refused launcher left a process"
    );
    let after = fs::metadata(sandbox.pidfile()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "pidfile touched"
    );
    assert_eq!(sandbox.daemon_pid(), pid);
    assert!(is_locked(&sandbox.pidfile()));
}

#[test]
fn stale_garbage_and_empty_pidfiles_are_reclaimed() {
    let own = std::process::id().to_string();
    let contents: [&[u8]; 5] = [
        b"999999999\n",
        b"garbage\n\xff\x00",
        b"",
        b"42",
        own.as_bytes(),
    ];
    for content in contents {
        let sandbox = Sandbox::new("stale");
        // A live process's pid (this test's) with no lock is stale too: the lock decides.
        fs::write(sandbox.pidfile(), content).unwrap();
        launch(&mut sandbox.command("probe")).assert_started();
        let pid = sandbox.daemon_pid();
        assert_eq!(
            fs::read(sandbox.pidfile()).unwrap(),
            format!("{pid}\n").into_bytes(),
            "after {content:?}"
        );
        assert!(is_locked(&sandbox.pidfile()));
    }
}

#[test]
fn sixteen_concurrent_launchers_start_exactly_one_daemon() {
    let sandbox = Sandbox::new("concurrent");
    let pid = race_launchers(&sandbox, 16);
    assert_eq!(sandbox.processes(), vec![pid]);
    // The losers touched no file of the winner's: its log is still the one at the path.
    assert_eq!(
        fds(pid)[&1],
        sandbox.path("stdout.log"),
        "the winner's log was unlinked"
    );
}

#[test]
fn the_pidfile_is_removed_only_if_it_is_still_the_same_file() {
    let sandbox = Sandbox::new("same-inode");
    launch(&mut sandbox.command("probe")).assert_started();
    let pid = sandbox.daemon_pid();
    // Someone replaces the pidfile (by rename, as editors and careless scripts do).
    fs::write(sandbox.path("other"), "12345\n").unwrap();
    fs::rename(sandbox.path("other"), sandbox.pidfile()).unwrap();
    signal(pid, libc::SIGTERM);
    wait_for_exit(pid, GONE_TIMEOUT);
    assert_eq!(
        fs::read_to_string(sandbox.pidfile()).unwrap(),
        "12345\n",
        "removed a file it did not own"
    );
}

#[test]
fn a_symlink_at_the_pidfile_path_is_refused_and_its_target_untouched() {
    let sandbox = Sandbox::new("symlink");
    fs::write(sandbox.path("precious"), "keep me\n").unwrap();
    std::os::unix::fs::symlink(sandbox.path("precious"), sandbox.pidfile()).unwrap();
    let launched = launch(&mut sandbox.command("probe"));
    assert_eq!(launched.code(), Some(1));
    assert_eq!(
        launched.stderr,
        format!(
            "probe: cannot open pidfile {}: it is a symbolic link, which is never followed for a pidfile\n",
            sandbox.pidfile().display()
        )
    );
    assert_eq!(
        fs::read_to_string(sandbox.path("precious")).unwrap(),
        "keep me\n"
    );
    assert!(sandbox.processes().is_empty());
}

#[test]
fn at_exit_a_pidfile_is_removed_unless_it_names_another_process() {
    // Garbage in it (SPEC §4: removed at exit all the same), or the pid of another process
    // (after an upgrade, the successor's: not ours to remove).
    for (content, removed) in [("garbage\n", true), ("1\n", false)] {
        let sandbox = Sandbox::new("removed-at-exit");
        launch(&mut tunable(&sandbox)).assert_started();
        let pid = sandbox.daemon_pid();
        // Rewritten in place: the same file, which the daemon still holds and locks.
        fs::write(sandbox.pidfile(), content).unwrap();
        signal(pid, libc::SIGTERM);
        let status = wait_for_exit(pid, GONE_TIMEOUT).expect("our child");
        assert_eq!(status.code(), Some(0), "{content:?}: {status:?}");
        assert_eq!(
            !sandbox.pidfile().exists(),
            removed,
            "{content:?}: removed at exit"
        );
    }
}
