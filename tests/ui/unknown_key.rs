#[daemon_runtime::daemon(pidfil = "/run/x.pid", cwd = "/srv", colour = true)]
fn main() {}
