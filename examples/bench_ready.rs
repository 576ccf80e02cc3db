//! The benchmark's daemon (`cargo bench --bench daemon`): started, then idle until it is
//! stopped. BENCH_PIDFILE names its pidfile.

#[daemon_runtime::daemon(pidfile = "${BENCH_PIDFILE}", control = true)]
fn main() {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
