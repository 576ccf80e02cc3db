//! `user = "nobody"` through the attribute: the daemon runs as nobody, its pidfile and logs
//! were opened as the launching user (root) first.

#[daemon_runtime::daemon(
    pidfile = "${PROBE_DIR}/probe.pid",
    stdout = "${PROBE_DIR}/stdout.log",
    user = "nobody"
)]
fn main() {
    println!("up");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
