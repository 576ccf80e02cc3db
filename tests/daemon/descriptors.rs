//! SPEC §3 step 1: closing inherited descriptors costs the same whatever `RLIMIT_NOFILE` is.
//! strace(1) counts the real system calls; its fault injection makes `close_range` fail the
//! way it does on kernels older than 5.9, to exercise the fallback.

use crate::support::*;
use std::path::PathBuf;
use std::time::Instant;

/// Starts the probe under `strace -f`, with a raised descriptor limit and two leaked
/// descriptors, one just under the limit; stops it; returns the trace and the daemon's
/// descriptors while it ran.
fn traced_start(sandbox: &Sandbox, extra: &[&str]) -> (String, Vec<i32>, u64) {
    let limit = nofile_hard_limit();
    let trace = sandbox.path("trace");
    let mut command = sandbox.command_for("strace");
    command
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(["-e", "trace=close,close_range"]);
    command.args(extra).arg(example("probe"));
    Hostile {
        leak_fds: vec![9, (limit - 1) as i32],
        block: vec![],
        ignore: vec![],
        umask: None,
        nofile: Some(limit),
    }
    .apply(&mut command);
    let start = Instant::now();
    let strace = command
        .spawn()
        .expect("strace is needed for this test (apt-get install strace)");
    // strace follows the daemon too, so it returns only once the daemon is gone.
    // Up and past readiness: main's body has written its first line (the readiness pipe is
    // closed by then).
    wait_until("the daemon is up", LAUNCH_TIMEOUT, || {
        std::fs::read_to_string(sandbox.path("stdout.log")).is_ok_and(|log| log.contains(" up"))
    });
    let pid = sandbox.daemon_pid();
    let fds: Vec<i32> = fds(pid).into_keys().collect();
    signal(pid, libc::SIGTERM);
    let traced = finish(strace, start);
    assert_eq!(traced.code(), Some(0), "{traced:?}");
    (
        std::fs::read_to_string(PathBuf::from(&trace)).unwrap(),
        fds,
        limit,
    )
}

fn count(trace: &str, call: &str) -> usize {
    trace
        .lines()
        .filter(|line| {
            line.split_once(' ')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(call))
        })
        .count()
}

#[test]
fn close_range_closes_everything_in_a_few_calls() {
    let sandbox = Sandbox::new("close-range");
    let (trace, fds, limit) = traced_start(&sandbox, &[]);
    assert_eq!(
        fds.len(),
        5,
        "0, 1, 2, the pidfile, the logs' directory: {fds:?}"
    );
    let ranges = count(&trace, "close_range(");
    let closes = count(&trace, "close(");
    assert!(
        (1..=3).contains(&ranges),
        "{ranges} close_range calls:\n{trace}"
    );
    assert!(
        closes < 40,
        "{closes} close calls with RLIMIT_NOFILE {limit}:\n{trace}"
    );
}

#[test]
fn without_close_range_the_open_descriptors_are_listed_not_looped_over() {
    let sandbox = Sandbox::new("no-close-range");
    let (trace, fds, limit) = traced_start(&sandbox, &["-e", "inject=close_range:error=ENOSYS"]);
    assert_eq!(
        fds.len(),
        5,
        "0, 1, 2, the pidfile, the logs' directory: {fds:?}"
    );
    assert!(
        trace.contains("(INJECTED)"),
        "the fault was not injected:\n{trace}"
    );
    let closes = count(&trace, "close(");
    assert!(
        closes < 40,
        "{closes} close calls with RLIMIT_NOFILE {limit}: the fallback loops\n{trace}"
    );
    assert!(
        trace.contains(&format!("close({})", limit - 1)),
        "the leaked descriptor was not closed:\n{trace}"
    );
}
