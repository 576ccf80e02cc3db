//! Many starts and stops, and many races, bounded in time: no stray process, no zombie, no
//! leftover pidfile at the end.

use crate::support::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The whole test must finish well within a minute on two cores.
const BUDGET: Duration = Duration::from_secs(50);

#[test]
fn five_hundred_start_stop_cycles_and_a_hundred_rounds_of_sixteen_launchers() {
    let sandbox = Sandbox::new("stress");
    let start = Instant::now();
    for cycle in 0..500 {
        let launched = launch(sandbox.command("probe").stdout(Stdio::null()));
        assert_eq!(launched.code(), Some(0), "cycle {cycle}: {launched:?}");
        let pid = read_pid(&sandbox.pidfile());
        signal(pid, libc::SIGTERM);
        let status =
            wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child, reaped here");
        assert_eq!(status.code(), Some(0), "cycle {cycle}");
        assert!(!sandbox.pidfile().exists(), "cycle {cycle}: pidfile left");
        assert!(start.elapsed() < BUDGET, "over budget after {cycle} cycles");
    }
    let cycles_took = start.elapsed();
    for round in 0..100 {
        let pid = race_launchers(&sandbox, 16);
        assert_eq!(sandbox.processes(), vec![pid], "round {round}");
        signal(pid, libc::SIGTERM);
        assert_eq!(
            wait_for_exit(pid, GONE_TIMEOUT).and_then(|s| s.code()),
            Some(0),
            "round {round}"
        );
        assert!(start.elapsed() < BUDGET, "over budget after {round} rounds");
    }
    assert!(
        sandbox.processes().is_empty(),
        "stray processes: {:?}",
        sandbox.processes()
    );
    assert!(!sandbox.pidfile().exists(), "pidfile left");
    eprintln!(
        "stress: 500 cycles in {cycles_took:?}, all in {:?}",
        start.elapsed()
    );
}
