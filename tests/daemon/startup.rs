//! SPEC §3: what a started daemon looks like.

use crate::support::*;
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn a_started_daemon_has_every_property_of_the_start_up_sequence() {
    let sandbox = Sandbox::new("properties");
    let launched = launch(&mut sandbox.command("probe"));
    launched.assert_started();
    let pid = sandbox.daemon_pid();
    assert_proper_daemon(pid, &Expect::probe(&sandbox));
    // Its stdout is the log file, opened for append.
    wait_until("the daemon wrote to its log", GONE_TIMEOUT, || {
        fs::read_to_string(sandbox.path("stdout.log"))
            .is_ok_and(|log| log.contains(&format!("probe {pid} up")))
    });
    // Core dumps are off by default (core_dumps = false).
    assert_eq!(core_limit(pid), ["0", "0"]);
}

#[test]
fn the_readme_example_logs_to_its_file_and_keeps_stderr_on_dev_null() {
    let sandbox = Sandbox::new("hello");
    let launched = launch(sandbox.command("hello").env_remove("PROBE_DIR"));
    launched.assert_started();
    let pid = read_pid(&sandbox.path("hello.pid"));
    let fds = fds(pid);
    assert_eq!(fds[&0], Path::new("/dev/null"));
    assert_eq!(fds[&1], sandbox.path("hello.log"));
    assert_eq!(fds[&2], Path::new("/dev/null"));
    assert_eq!(status(pid)["Umask"], "0022");
    wait_until("hello wrote a line", GONE_TIMEOUT, || {
        fs::read_to_string(sandbox.path("hello.log")).is_ok_and(|log| log.contains("tick 1"))
    });
    signal(pid, libc::SIGTERM);
    assert_eq!(
        wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
        Some(0)
    );
    assert!(!sandbox.path("hello.pid").exists());
}

#[test]
fn relative_paths_resolve_against_the_launch_directory_and_workdir_is_entered() {
    let sandbox = Sandbox::new("relative");
    fs::create_dir(sandbox.path("run")).unwrap();
    fs::create_dir(sandbox.path("work")).unwrap();
    // PROBE_DIR is relative: the pidfile and logs land under the launch directory, although
    // the daemon itself then changes into `work`.
    let launched = launch(
        sandbox
            .command("probe")
            .env("PROBE_DIR", "run")
            .env("PROBE_WORKDIR", "work"),
    );
    launched.assert_started();
    let pidfile = sandbox.path("run/probe.pid");
    let pid = read_pid(&pidfile);
    assert_eq!(cwd(pid), sandbox.path("work"));
    assert_eq!(fds(pid)[&1], sandbox.path("run/stdout.log"));
    // The absolute path was kept: SIGTERM removes the right file from the new cwd.
    signal(pid, libc::SIGTERM);
    assert_eq!(
        wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
        Some(0)
    );
    assert!(!pidfile.exists(), "pidfile left behind");
}

#[test]
fn sigterm_and_sigint_remove_the_pidfile_and_exit_zero() {
    for signal_number in [libc::SIGTERM, libc::SIGINT] {
        let sandbox = Sandbox::new("terminate");
        launch(&mut sandbox.command("probe")).assert_started();
        let pid = sandbox.daemon_pid();
        signal(pid, signal_number);
        let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child");
        assert_eq!(status.code(), Some(0), "signal {signal_number}: {status:?}");
        assert!(
            !sandbox.pidfile().exists(),
            "signal {signal_number}: pidfile left behind"
        );
        assert!(sandbox.processes().is_empty());
    }
}

#[test]
fn the_builder_by_hand_starts_the_same_daemon() {
    let sandbox = Sandbox::new("by-hand");
    launch(&mut sandbox.command("by_hand")).assert_started();
    let pid = sandbox.daemon_pid();
    let null = PathBuf::from("/dev/null");
    assert_proper_daemon(
        pid,
        &Expect {
            umask: "0022",
            fds: vec![(0, null.clone()), (1, null.clone()), (2, null)],
            log_dirs: vec![],
            ..Expect::probe(&sandbox)
        },
    );
}

#[test]
fn the_launcher_reaps_the_first_child_before_it_waits() {
    let sandbox = Sandbox::new("reap");
    // The daemon never becomes ready (MODE=hang): for its 1.5 s ready_timeout the launcher
    // waits, and its children are visible in /proc. The first child left right after the
    // second fork, and must have been reaped; the daemon, orphaned, is then the launcher's
    // child (it is a subreaper while it waits), and its only one.
    let mut command = sandbox.command("manual_ready");
    command.env("MODE", "hang");
    let start = std::time::Instant::now();
    let launcher = command.spawn().expect("spawn");
    let launcher_pid = launcher.id();
    wait_until("the daemon wrote its pid", GONE_TIMEOUT, || {
        fs::read_to_string(sandbox.pidfile()).is_ok_and(|content| content.ends_with('\n'))
    });
    // The first child has exited by now; the launcher, once scheduled, reaps it. An unreaped
    // first child would stay listed (a zombie) until the launcher exits at 1.5 s.
    let daemon = sandbox.daemon_pid().to_string();
    let children =
        || fs::read_to_string(format!("/proc/{launcher_pid}/task/{launcher_pid}/children"));
    let mut listed;
    loop {
        listed = children().expect("the launcher is still waiting");
        if listed.trim() == daemon || start.elapsed() > std::time::Duration::from_millis(1300) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        listed.trim(),
        daemon,
        "the launcher has other children than the daemon (an unreaped first child?)"
    );
    assert_eq!(finish(launcher, start).code(), Some(1));
}

#[test]
fn a_process_the_daemon_forks_does_not_remove_the_pidfile_when_it_exits() {
    let sandbox = Sandbox::new("forked-child");
    // The probe forks a child (no exec) that inherits the atexit and SIGTERM handlers, and
    // exits after 100 ms.
    launch(sandbox.command("probe").env("PROBE_FORK", "1")).assert_started();
    let pid = sandbox.daemon_pid();
    wait_until("the forked child said it left", GONE_TIMEOUT, || {
        fs::read_to_string(sandbox.path("stdout.log")).is_ok_and(|log| log.contains("child exits"))
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        read_pid(&sandbox.pidfile()),
        pid,
        "the child removed or changed the pidfile"
    );
    assert!(is_locked(&sandbox.pidfile()));
}

#[test]
fn sighup_without_log_files_only_requests_a_reload() {
    let sandbox = Sandbox::new("hup-no-logs");
    // by_hand has no log files and `shutdown = "exit"`.
    launch(&mut sandbox.command("by_hand")).assert_started();
    let pid = sandbox.daemon_pid();
    signal(pid, libc::SIGHUP);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(is_alive(pid), "SIGHUP ended the daemon");
    assert_eq!(read_pid(&sandbox.pidfile()), pid);
    let fds = fds(pid);
    assert_eq!(fds[&1], Path::new("/dev/null"));
    assert_eq!(fds.len(), 4, "{fds:?}");
}
