//! SPEC §3 step 12: `ready = "manual"`, and what the launcher says when readiness never comes.

use crate::support::*;
use std::time::Duration;

fn manual(sandbox: &Sandbox, mode: &str) -> Launch {
    launch(sandbox.command("manual_ready").env("MODE", mode))
}

fn assert_fails(sandbox: &Sandbox, launched: &Launch, message: &str) {
    assert_failed_cleanly(sandbox, launched);
    assert!(
        launched
            .stderr
            .starts_with(&format!("manual-ready: {message}")),
        "expected `manual-ready: {message}...`, got {:?}",
        launched.stderr
    );
}

#[test]
fn the_launcher_returns_only_once_ready_is_called() {
    let sandbox = Sandbox::new("manual-ok");
    let launched = launch(sandbox.command("manual_ready").env("DELAY_MS", "400"));
    launched.assert_started();
    assert!(
        launched.elapsed >= Duration::from_millis(400),
        "returned after {:?}",
        launched.elapsed
    );
    let pid = sandbox.daemon_pid();
    assert!(is_alive(pid));
    // Readiness pipe closed after ready(): only 0, 1, 2, the pidfile and the stderr log's
    // directory remain.
    assert_eq!(fds(pid).len(), 5, "{:?}", fds(pid));
}

#[test]
fn an_error_returned_before_ready_is_printed_by_the_launcher() {
    let sandbox = Sandbox::new("manual-err");
    let launched = manual(&sandbox, "err");
    assert_fails(
        &sandbox,
        &launched,
        "main returned an error before it was ready: ConfigError(\"no listen address configured\")\n",
    );
}

#[test]
fn a_panic_before_ready_is_printed_by_the_launcher() {
    let sandbox = Sandbox::new("manual-panic");
    let launched = manual(&sandbox, "panic");
    assert_fails(
        &sandbox,
        &launched,
        "main panicked before it was ready at examples/manual_ready.rs:",
    );
    assert!(
        launched
            .stderr
            .ends_with(": the configuration is corrupt\n"),
        "{:?}",
        launched.stderr
    );
    // The daemon's own stderr (its log) has Rust's panic message too.
    let log = std::fs::read_to_string(sandbox.path("stderr.log")).unwrap();
    assert!(log.contains("the configuration is corrupt"), "{log}");
}

#[test]
fn an_exit_or_a_return_before_ready_is_a_failure() {
    let sandbox = Sandbox::new("manual-exit");
    assert_fails(
        &sandbox,
        &manual(&sandbox, "exit"),
        &format!(
            "the daemon exited with status 3 before it was ready (its stderr log {} may say why)\n",
            sandbox.path("stderr.log").display()
        ),
    );
    assert_fails(
        &sandbox,
        &manual(&sandbox, "return"),
        "main returned before calling daemon_runtime::ready()",
    );
}

#[test]
fn the_ready_timeout_stops_the_daemon() {
    let sandbox = Sandbox::new("manual-hang");
    let launched = manual(&sandbox, "hang");
    assert_fails(
        &sandbox,
        &launched,
        "not ready within 1.5s (ready_timeout); stopped the daemon (pid ",
    );
    assert!(launched.elapsed >= Duration::from_millis(1500));
}

#[test]
fn the_pidfile_is_removed_however_main_ends_after_ready() {
    // (AFTER, expected exit status)
    for (after, code) in [("return", 0), ("err", 1), ("panic", 101), ("exit", 3)] {
        let sandbox = Sandbox::new("after-ready");
        launch(sandbox.command("manual_ready").env("AFTER", after)).assert_started();
        let pid = sandbox.daemon_pid();
        let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child");
        assert_eq!(status.code(), Some(code), "AFTER={after}");
        assert!(
            !sandbox.pidfile().exists(),
            "AFTER={after}: pidfile left behind"
        );
        // What went wrong is in the daemon's stderr log, as Rust's `main` reports it.
        let log = std::fs::read_to_string(sandbox.path("stderr.log")).unwrap();
        match after {
            "err" => assert!(
                log.contains("Error: ConfigError(\"lost the configuration\")\n"),
                "{log:?}"
            ),
            "panic" => assert!(
                log.contains("panicked") && log.contains("lost the configuration"),
                "{log:?}"
            ),
            _ => assert_eq!(log, "", "AFTER={after}"),
        }
    }
}

#[test]
fn sigterm_while_the_launcher_waits_ends_the_start_cleanly() {
    let sandbox = Sandbox::new("manual-term");
    let mut command = sandbox.command("manual_ready");
    command.env("MODE", "hang");
    let start = std::time::Instant::now();
    let launcher = command.spawn().expect("spawn");
    wait_until("the daemon wrote its pid", LAUNCH_TIMEOUT, || {
        std::fs::read_to_string(sandbox.pidfile()).is_ok_and(|pid| pid.ends_with('\n'))
    });
    signal(sandbox.daemon_pid(), libc::SIGTERM);
    let launched = finish(launcher, start);
    // Its SIGTERM handler (shutdown = "exit") removed the pidfile and exited 0.
    assert_fails(
        &sandbox,
        &launched,
        "the daemon exited with status 0 before it was ready",
    );
}
