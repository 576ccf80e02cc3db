//! The `daemonize` crate (0.5) in the start-up benchmark, in its best configuration: a
//! pidfile, stdio on /dev/null. Its launcher exits once the first child has, before the
//! daemon has written (or even created) the pidfile. PIDFILE names it.

fn main() {
    let pidfile = std::env::var("PIDFILE").expect("PIDFILE");
    if daemonize::Daemonize::new()
        .pid_file(pidfile)
        .start()
        .is_ok()
    {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
