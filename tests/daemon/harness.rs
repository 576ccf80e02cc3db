//! The test harness itself: it must fail a test, never hang the suite.

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn a_launcher_whose_pipes_outlive_it_fails_the_test_instead_of_hanging_it() {
    let sandbox = Sandbox::new("pipes-kept");
    // The "launcher" exits at once, but leaves a process that holds its stdout and stderr:
    // what a daemon that forgot to redirect them would do.
    let start = Instant::now();
    let child = sandbox
        .command_for("sh")
        .args(["-c", "sleep 30 & exit 0"])
        .spawn()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| finish(child, start)));
    let message = outcome
        .err()
        .and_then(|panic| panic.downcast_ref::<String>().cloned())
        .expect("finish returned although the pipes stayed open");
    assert!(message.contains("is still open"), "{message}");
    assert!(
        start.elapsed() < GONE_TIMEOUT + Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}
