//! SPEC §3 steps 1, 2 and 11 under the conditions a careless parent or a terminal leaves.

use crate::support::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[test]
fn leaked_descriptors_a_blocked_mask_and_ignored_signals_do_not_reach_the_daemon() {
    let sandbox = Sandbox::new("hostile");
    let mut command = sandbox.command("probe");
    Hostile {
        // 7 is in the probe's keep_fds; the others must be closed, 1000 among them.
        leak_fds: vec![3, 7, 9, 64, 1000],
        block: vec![libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGCHLD],
        ignore: vec![
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGQUIT,
            libc::SIGCHLD,
        ],
        umask: Some(0o077),
        nofile: None,
    }
    .apply(&mut command);
    launch(&mut command).assert_started();
    let pid = sandbox.daemon_pid();
    // 7 is in the probe's keep_fds.
    let mut expect = Expect::probe(&sandbox);
    expect.fds.push((7, PathBuf::from("/dev/null")));
    assert_proper_daemon(pid, &expect);
    // Created 0600 (no other user may lock it) and 0640 whatever the launcher's umask (077
    // here).
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(sandbox.pidfile()), 0o600, "pidfile mode");
    assert_eq!(mode(sandbox.path("stdout.log")), 0o640, "log mode");
    // SIGTERM was blocked and ignored at launch; the daemon still obeys it.
    signal(pid, libc::SIGTERM);
    assert_eq!(
        wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
        Some(0)
    );
    assert!(!sandbox.pidfile().exists());
}

#[test]
fn a_descriptor_near_a_huge_limit_is_closed() {
    let sandbox = Sandbox::new("nofile");
    let mut command = sandbox.command("probe");
    // As high as this machine lets us raise it (the hard limit without CAP_SYS_RESOURCE).
    let limit = nofile_hard_limit();
    Hostile {
        leak_fds: vec![(limit - 1) as i32],
        block: vec![],
        ignore: vec![],
        umask: None,
        nofile: Some(limit),
    }
    .apply(&mut command);
    launch(&mut command).assert_started();
    let pid = sandbox.daemon_pid();
    let fds = fds(pid);
    assert_eq!(
        fds.len(),
        5,
        "0, 1, 2, the pidfile and the logs' directory only: {fds:?}"
    );
}

#[test]
fn started_as_the_session_leader_of_a_terminal_that_then_hangs_up() {
    let sandbox = Sandbox::new("pty");
    let mut pty = Pty::open();
    let mut command = sandbox.command("probe");
    pty.attach(&mut command);
    let launcher = command.spawn().expect("spawn");
    let launcher_pid = launcher.id() as i32;
    let launched = finish(launcher, Instant::now());
    assert_eq!(launched.code(), Some(0), "terminal said: {}", pty.drain());
    let pid = sandbox.daemon_pid();
    // The launcher was a session leader with a controlling terminal; its exit sent SIGHUP to
    // the terminal's foreground group. The daemon was never in it.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        is_alive(pid),
        "the daemon died with its launcher's terminal"
    );
    pty.hang_up();
    std::thread::sleep(Duration::from_millis(200));
    let mut expect = Expect::probe(&sandbox);
    expect.foreign_sessions.push(launcher_pid);
    assert_proper_daemon(pid, &expect);
}

#[test]
fn a_terminal_hanging_up_while_the_launcher_waits_does_not_stop_the_start() {
    let sandbox = Sandbox::new("hangup-wait");
    let mut pty = Pty::open();
    // The daemon takes 1 s to be ready; the terminal goes away as soon as the daemon exists
    // (its pid is in the pidfile), while the launcher waits on the readiness pipe.
    let mut command = sandbox.command("manual_ready");
    command.env("DELAY_MS", "1000");
    pty.attach(&mut command);
    let start = Instant::now();
    let launcher = command.spawn().expect("spawn");
    wait_until("the daemon wrote its pid", LAUNCH_TIMEOUT, || {
        std::fs::read_to_string(sandbox.pidfile()).is_ok_and(|pid| pid.ends_with('\n'))
    });
    let hung_up_at = start.elapsed();
    pty.hang_up();
    let launched = finish(launcher, start);
    assert_eq!(launched.code(), Some(0), "{launched:?}");
    assert!(
        launched.elapsed >= Duration::from_millis(1000),
        "returned before the daemon was ready"
    );
    assert!(
        hung_up_at < Duration::from_millis(1000),
        "the hang-up came after readiness ({hung_up_at:?})"
    );
    let pid = sandbox.daemon_pid();
    assert!(is_alive(pid));
    assert_eq!(stat(pid).tty_nr, 0);
}

#[test]
fn a_hang_up_at_any_moment_of_the_start_leaves_a_whole_daemon_or_nothing() {
    for delay_us in [0, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000] {
        let sandbox = Sandbox::new("hangup-race");
        let mut pty = Pty::open();
        let mut command = sandbox.command("probe");
        pty.attach(&mut command);
        let start = Instant::now();
        let launcher = command.spawn().expect("spawn");
        std::thread::sleep(Duration::from_micros(delay_us));
        pty.hang_up();
        let launched = finish(launcher, start);
        std::thread::sleep(Duration::from_millis(100));
        match launched.code() {
            Some(0) => {
                let pid = sandbox.daemon_pid();
                assert!(
                    is_alive(pid),
                    "hang-up after {delay_us} us killed the daemon"
                );
                assert!(is_locked(&sandbox.pidfile()));
                assert_eq!(sandbox.processes(), vec![pid]);
            }
            // Killed by the hang-up before main ran: nothing may have started.
            None => {
                assert_eq!(launched.status.signal(), Some(libc::SIGHUP), "{launched:?}");
                assert!(
                    sandbox.processes().is_empty(),
                    "hang-up after {delay_us} us left {:?}",
                    sandbox.processes()
                );
                assert!(!sandbox.pidfile().exists() || !is_locked(&sandbox.pidfile()));
            }
            Some(code) => {
                panic!("hang-up after {delay_us} us: launcher exited {code}: {launched:?}")
            }
        }
    }
}

use std::os::unix::process::ExitStatusExt;
