#[daemon_runtime::daemon(pidfile = "/var/run/svc", stdout = "/var/run/svc")]
fn main() {}
