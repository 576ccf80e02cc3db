//! A daemon for the integration tests: it only sleeps, so that the tests can inspect its
//! process through /proc. Every setting comes from the environment of the launch.
//!
//! PROBE_DIR (required) holds the pidfile and the logs; PROBE_WORKDIR, PROBE_STDOUT and
//! PROBE_STDERR override the defaults. Descriptor 7 is kept if it is inherited.

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
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
