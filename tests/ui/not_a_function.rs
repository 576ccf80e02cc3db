#[daemon_runtime::daemon(pidfile = "/run/x.pid")]
struct Service;

fn main() {}
