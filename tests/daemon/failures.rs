//! SPEC §3 steps 3 and 10: start-up errors are printed by the launcher as `NAME: what: why`,
//! exit status 1, and nothing is left behind.

use crate::support::*;
use std::fs;

/// Launches, expects exit 1 with exactly `message`, and checks that nothing is left.
fn assert_fails(sandbox: &Sandbox, launched: Launch, message: &str) {
    assert_failed_cleanly(sandbox, &launched);
    assert_eq!(launched.stderr, format!("{message}\n"));
}

#[test]
fn a_missing_pidfile_directory() {
    let sandbox = Sandbox::new("no-pid-dir");
    let dir = sandbox.path("missing");
    let launched = launch(sandbox.command("by_hand").env("PROBE_DIR", &dir));
    let message = format!(
        "by-hand: cannot open pidfile {}/probe.pid: No such file or directory",
        dir.display()
    );
    assert_fails(&sandbox, launched, &message);
}

#[test]
fn an_unset_variable_is_named() {
    let sandbox = Sandbox::new("unset");
    let launched = launch(sandbox.command("probe").env_remove("PROBE_DIR"));
    assert_fails(
        &sandbox,
        launched,
        "probe: cannot expand pidfile \"${PROBE_DIR}/probe.pid\": environment variable PROBE_DIR is not set \
         (write ${PROBE_DIR:-default} to give a fallback)",
    );
}

#[test]
fn a_missing_or_unusable_working_directory() {
    let sandbox = Sandbox::new("workdir");
    let missing = sandbox.path("missing");
    let launched = launch(sandbox.command("probe").env("PROBE_WORKDIR", &missing));
    let message = format!(
        "probe: cannot use working directory {}: No such file or directory",
        missing.display()
    );
    assert_fails(&sandbox, launched, &message);
    assert!(
        !sandbox.path("stdout.log").exists(),
        "log files created before the failure were left"
    );

    fs::write(sandbox.path("file"), "").unwrap();
    let launched = launch(
        sandbox
            .command("probe")
            .env("PROBE_WORKDIR", sandbox.path("file")),
    );
    let message = format!(
        "probe: cannot use working directory {}: Not a directory",
        sandbox.path("file").display()
    );
    assert_fails(&sandbox, launched, &message);
}

#[test]
fn an_unopenable_log_file_leaves_no_other_file() {
    let sandbox = Sandbox::new("log");
    let launched = launch(
        sandbox
            .command("probe")
            .env("PROBE_STDERR", "nodir/err.log"),
    );
    let message = format!(
        "probe: cannot open stderr log {}: No such file or directory",
        sandbox.path("nodir/err.log").display()
    );
    assert_fails(&sandbox, launched, &message);
    // stdout.log was created by this start before stderr failed: it is removed again.
    assert!(
        !sandbox.path("stdout.log").exists(),
        "stdout.log left behind"
    );

    // A directory where the log should be.
    fs::create_dir(sandbox.path("adir")).unwrap();
    let launched = launch(sandbox.command("probe").env("PROBE_STDOUT", "adir"));
    let message = format!(
        "probe: cannot open stdout log {}: Is a directory",
        sandbox.path("adir").display()
    );
    assert_fails(&sandbox, launched, &message);
}

#[test]
fn an_existing_log_file_is_kept_when_the_start_fails() {
    let sandbox = Sandbox::new("keep-log");
    fs::write(sandbox.path("stdout.log"), "yesterday\n").unwrap();
    let launched = launch(
        sandbox
            .command("probe")
            .env("PROBE_WORKDIR", sandbox.path("missing")),
    );
    assert_eq!(launched.code(), Some(1));
    assert_eq!(
        fs::read_to_string(sandbox.path("stdout.log")).unwrap(),
        "yesterday\n"
    );
}

#[test]
fn a_process_with_threads_is_not_daemonized() {
    let sandbox = Sandbox::new("threads");
    let launched = launch(sandbox.command("by_hand").env("SPAWN_THREAD", "1"));
    assert_fails(
        &sandbox,
        launched,
        "by-hand: cannot daemonize a process that has 2 threads: fork keeps only the calling thread; \
         start the daemon first thing in main, before anything spawns a thread (a thread pool, \
         a logger; an async runtime: let the daemon build it, with `#[daemon] async fn main` or \
         `Daemon::run_async`)",
    );
}
