#[daemon_runtime::daemon(umask = 0o022, pidfile = "/run/a.pid", umask = 0o077)]
fn main() {}
