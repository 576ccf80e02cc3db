//! SPEC §4 under attack and §3 under faults: hostile pidfiles, a full descriptor table, fork
//! refused, read-only and full file systems, processes killed at random moments of start-up.
//! Each case: a clear error or a correct recovery, never two daemons, never a clobbered file.

use crate::support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn assert_refused(sandbox: &Sandbox, launched: &Launch, message: &str) {
    assert_eq!(launched.stderr, format!("{message}\n"));
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert!(
        sandbox.processes().is_empty(),
        "left running: {:?}",
        sandbox.processes()
    );
}

#[test]
fn a_pidfile_owned_by_another_user_is_refused_as_root() {
    if !running_as_root("a_pidfile_owned_by_another_user_is_refused_as_root") {
        return;
    }
    let sandbox = Sandbox::new("foreign-owner");
    fs::write(sandbox.pidfile(), "4242\n").unwrap();
    std::os::unix::fs::chown(sandbox.pidfile(), Some(1000), Some(1000)).unwrap();
    let launched = launch(&mut sandbox.command("probe"));
    let message = format!(
        "probe: cannot open pidfile {}: it is owned by uid 1000, not by root; refusing it as root",
        sandbox.pidfile().display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert_eq!(
        fs::read_to_string(sandbox.pidfile()).unwrap(),
        "4242\n",
        "the foreign pidfile was changed"
    );
}

#[test]
fn a_pidfile_with_several_hard_links_is_refused_as_root() {
    if !running_as_root("a_pidfile_with_several_hard_links_is_refused_as_root") {
        return;
    }
    let sandbox = Sandbox::new("hard-link");
    // A link to a file that must not be truncated, planted where the pidfile goes.
    fs::write(sandbox.path("precious"), "keep me\n").unwrap();
    fs::hard_link(sandbox.path("precious"), sandbox.pidfile()).unwrap();
    let launched = launch(&mut sandbox.command("probe"));
    let message = format!(
        "probe: cannot open pidfile {}: it has 2 hard links; refusing it as root",
        sandbox.pidfile().display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert_eq!(
        fs::read_to_string(sandbox.path("precious")).unwrap(),
        "keep me\n"
    );
}

#[test]
fn a_pidfile_in_a_world_writable_directory_without_sticky_bit_is_refused_as_root() {
    if !running_as_root("a_pidfile_in_a_world_writable_directory") {
        return;
    }
    let sandbox = Sandbox::new("world-writable");
    let open = sandbox.path("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let launched = launch(sandbox.command("by_hand").env("PROBE_DIR", &open));
    let message = format!(
        "by-hand: cannot open pidfile {}/probe.pid: its directory {} may be written by anyone and has no sticky bit; refusing it as root",
        open.display(),
        open.display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert!(
        !open.join("probe.pid").exists(),
        "a pidfile was created there"
    );
    // With the sticky bit (like /tmp), it is fine.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    launch(sandbox.command("by_hand").env("PROBE_DIR", &open)).assert_started();
}

#[test]
fn a_directory_a_fifo_or_an_unreadable_file_at_the_pidfile_path() {
    let sandbox = Sandbox::new("odd-pidfiles");
    fs::create_dir(sandbox.pidfile()).unwrap();
    let launched = launch(&mut sandbox.command("probe"));
    let message = format!(
        "probe: cannot open pidfile {}: Is a directory",
        sandbox.pidfile().display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert!(sandbox.pidfile().is_dir());
    fs::remove_dir(sandbox.pidfile()).unwrap();

    // A FIFO: opening must not hang, and the FIFO stays.
    let path = std::ffi::CString::new(sandbox.pidfile().to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    let launched = launch(&mut sandbox.command("probe"));
    let message = format!(
        "probe: cannot open pidfile {}: it is a FIFO, not a regular file",
        sandbox.pidfile().display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert!(fs::symlink_metadata(sandbox.pidfile())
        .unwrap()
        .file_type()
        .is_fifo());
    fs::remove_file(sandbox.pidfile()).unwrap();
    assert!(
        !sandbox.path("stdout.log").exists(),
        "logs were created before the pidfile was refused"
    );

    if running_as_root("an unreadable pidfile (as nobody)") {
        // An unprivileged launcher facing a pidfile it may not open.
        let sandbox = Sandbox::new("unreadable");
        fs::set_permissions(&sandbox.dir, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(sandbox.pidfile(), "").unwrap();
        fs::set_permissions(sandbox.pidfile(), fs::Permissions::from_mode(0o000)).unwrap();
        let (uid, gid, _) = ids_of("nobody");
        let mut command = sandbox.command_for(sandbox.copy_example("by_hand"));
        run_as(&mut command, uid, gid, None);
        let launched = launch(&mut command);
        let message = format!(
            "by-hand: cannot open pidfile {}: Permission denied",
            sandbox.pidfile().display()
        );
        assert_refused(&sandbox, &launched, &message);
    }
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn a_huge_pidfile_is_reclaimed() {
    let sandbox = Sandbox::new("huge");
    let file = fs::File::create(sandbox.pidfile()).unwrap();
    file.set_len(1 << 30).unwrap(); // 1 GiB, sparse: zeros, no newline anywhere
    drop(file);
    launch(&mut sandbox.command("probe")).assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(
        fs::metadata(sandbox.pidfile()).unwrap().len(),
        format!("{pid}\n").len() as u64
    );
}

#[test]
fn a_full_descriptor_table() {
    // 0-2, then /dev/null, the pidfile's directory and the pidfile, each log's directory
    // and the log, the readiness pipe: each limit makes exactly one step run out. Each
    // directory is closed again once its file is open, and the next one takes its number.
    let steps = [
        (4, "cannot open pidfile", Some("probe.pid")), // its directory
        (5, "cannot open pidfile", Some("probe.pid")), // the file in it
        (6, "cannot open stdout log", Some("stdout.log")),
        (7, "cannot open stderr log", Some("stderr.log")),
        (8, "cannot create the readiness pipe", None),
    ];
    for (limit, what, file) in steps {
        let sandbox = Sandbox::new("nofile-low");
        let mut command = sandbox.command("probe");
        Hostile {
            leak_fds: vec![],
            block: vec![],
            ignore: vec![],
            umask: None,
            nofile: Some(limit),
        }
        .apply(&mut command);
        let launched = launch(&mut command);
        let step = match file {
            Some(file) => format!("{what} {}", sandbox.path(file).display()),
            None => what.to_owned(),
        };
        let message = format!("probe: {step}: Too many open files");
        assert_refused(&sandbox, &launched, &message);
        for file in ["probe.pid", "stdout.log", "stderr.log"] {
            assert!(
                !sandbox.path(file).exists(),
                "RLIMIT_NOFILE {limit}: {file} left"
            );
        }
    }
}

#[test]
fn fork_refused_by_rlimit_nproc() {
    if !running_as_root("fork_refused_by_rlimit_nproc") {
        return;
    }
    // RLIMIT_NPROC counts every process of the user: a uid nothing else runs as.
    let (uid, gid) = (64_999, 64_999);
    // 1: the launcher itself is the one process allowed, its fork fails. 2: the first child
    // fits, its fork (of the daemon) fails, and the launcher hears it through the pipe.
    for limit in [1, 2] {
        let sandbox = Sandbox::new("nproc");
        fs::set_permissions(&sandbox.dir, fs::Permissions::from_mode(0o777)).unwrap();
        let mut command = sandbox.command_for(sandbox.copy_example("by_hand"));
        run_as(&mut command, uid, gid, Some(limit));
        let launched = launch(&mut command);
        assert_refused(
            &sandbox,
            &launched,
            "by-hand: cannot fork: Resource temporarily unavailable",
        );
        assert!(
            !sandbox.pidfile().exists(),
            "RLIMIT_NPROC {limit}: pidfile left"
        );
    }
}

/// A tmpfs mounted for one test, unmounted on drop; `None` (after saying so) where this
/// machine does not let us mount.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status();
        if status.is_ok_and(|status| status.success()) {
            Some(Mount(at.to_owned()))
        } else {
            skip_or_fail("cannot mount a tmpfs here (needs root and mount rights)");
            None
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_file_system() {
    if !running_as_root("a_read_only_file_system") {
        return;
    }
    let sandbox = Sandbox::new("read-only");
    let Some(mount) = Mount::tmpfs(&sandbox.path("ro"), "ro,size=64k") else {
        return;
    };
    let launched = launch(sandbox.command("by_hand").env("PROBE_DIR", &mount.0));
    let message = format!(
        "by-hand: cannot open pidfile {}/probe.pid: Read-only file system",
        mount.0.display()
    );
    assert_refused(&sandbox, &launched, &message);
}

#[test]
fn a_full_file_system() {
    if !running_as_root("a_full_file_system") {
        return;
    }
    let sandbox = Sandbox::new("full");
    let Some(mount) = Mount::tmpfs(&sandbox.path("full"), "size=16k,mode=0755") else {
        return;
    };
    // Fill it up.
    let mut filler = fs::File::create(mount.0.join("filler")).unwrap();
    let block = [0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let launched = launch(sandbox.command("by_hand").env("PROBE_DIR", &mount.0));
    let message = format!(
        "by-hand: cannot write pidfile {}/probe.pid: No space left on device",
        mount.0.display()
    );
    assert_refused(&sandbox, &launched, &message);
    assert!(
        !mount.0.join("probe.pid").exists(),
        "the empty pidfile was left"
    );
    assert_eq!(
        fs::metadata(mount.0.join("filler")).unwrap().len(),
        16384,
        "another file was touched"
    );
}

/// After a start was cut short, the state is whole: either one daemon runs, with a locked
/// pidfile naming it, or none does; and a new start works.
fn assert_whole_then_restart(sandbox: &Sandbox, moment: &str) {
    // Let the start settle: a first child or a daemon still setting up goes on for a moment.
    let mut running = sandbox.processes();
    let settle = Instant::now() + Duration::from_secs(3);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = sandbox.processes();
        if now == running || Instant::now() > settle {
            break;
        }
        running = now;
    }
    match running.as_slice() {
        [] => assert!(
            !sandbox.pidfile().exists() || !is_locked(&sandbox.pidfile()),
            "{moment}: a lock without a daemon"
        ),
        [pid] => {
            wait_until("the lone daemon wrote its pid", GONE_TIMEOUT, || {
                fs::read_to_string(sandbox.pidfile())
                    .is_ok_and(|content| content == format!("{pid}\n"))
            });
            assert!(
                is_locked(&sandbox.pidfile()),
                "{moment}: daemon {pid} without its lock"
            );
        }
        many => panic!("{moment}: several processes left: {many:?}"),
    }
    let again = launch(&mut sandbox.command("probe"));
    match running.as_slice() {
        [] => again.assert_started(),
        [pid] => assert_eq!(
            again.stderr,
            format!("probe: already running (pid {pid})\n"),
            "{moment}"
        ),
        _ => unreachable!(),
    }
    assert_eq!(
        sandbox.processes().len(),
        1,
        "{moment}: {:?}",
        sandbox.processes()
    );
}

#[test]
fn the_launcher_killed_at_random_moments_of_the_start() {
    for round in 0..20u64 {
        let sandbox = Sandbox::new("kill-launcher");
        let mut launcher = sandbox
            .command("probe")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(round * 150));
        let _ = launcher.kill();
        let _ = launcher.wait();
        assert_whole_then_restart(
            &sandbox,
            &format!("launcher killed after {} us", round * 150),
        );
    }
}

#[test]
fn every_process_of_the_start_killed_at_random_moments() {
    for round in 0..20u64 {
        let sandbox = Sandbox::new("kill-all");
        let start = Instant::now();
        let launcher = sandbox.command("probe").spawn().unwrap();
        std::thread::sleep(Duration::from_micros(round * 150));
        for pid in sandbox.processes() {
            signal_if_alive(pid, libc::SIGKILL);
        }
        let _ = finish(launcher, start);
        // A process forked between the look and the kill escaped it: kill until none is left.
        let deadline = Instant::now() + GONE_TIMEOUT;
        while !sandbox.processes().is_empty() {
            assert!(
                Instant::now() < deadline,
                "round {round}: processes survive: {:?}",
                sandbox.processes()
            );
            for pid in sandbox.processes() {
                signal_if_alive(pid, libc::SIGKILL);
                let _ = wait_for_exit(pid, GONE_TIMEOUT);
            }
        }
        // Whatever was killed: a stale pidfile at most, reclaimed by the next start.
        let again = launch(&mut sandbox.command("probe"));
        again.assert_started();
        let pid = sandbox.daemon_pid();
        assert_eq!(sandbox.processes(), vec![pid], "round {round}");
        assert!(is_locked(&sandbox.pidfile()));
    }
}

fn signal_if_alive(pid: i32, signal: libc::c_int) {
    // SAFETY: kill takes integers only; a pid that is gone answers ESRCH.
    unsafe { libc::kill(pid, signal) };
}
