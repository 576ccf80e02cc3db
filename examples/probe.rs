//! A daemon for the integration tests: it only sleeps, so that the tests can inspect its
//! process through /proc. Every setting comes from the environment of the launch.
//!
//! PROBE_DIR (required) holds the pidfile and the logs; PROBE_WORKDIR, PROBE_STDOUT and
//! PROBE_STDERR override the defaults. Descriptor 7 is kept if it is inherited. With
//! PROBE_FORK set, it forks (without exec) a child that exits after 100 ms, as a pre-forking
//! server's worker would.

#[daemon_runtime::daemon(
    pidfile = "${PROBE_DIR}/probe.pid",
    umask = 0o027,
    workdir = "${PROBE_WORKDIR:-/}",
    stdout = "${PROBE_DIR}/${PROBE_STDOUT:-stdout.log}",
    stderr = "${PROBE_DIR}/${PROBE_STDERR:-stderr.log}",
    keep_fds = [7],
)]
fn main() {
    println!("probe {} up", std::process::id());
    if std::env::var_os("PROBE_FORK").is_some() {
        fork_a_short_lived_child();
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn fork_a_short_lived_child() {
    // SAFETY: the probe has a single thread, so the child is a complete copy.
    if unsafe { libc::fork() } == 0 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        println!("child exits");
        std::process::exit(0); // runs the atexit handlers it inherited
    }
}
