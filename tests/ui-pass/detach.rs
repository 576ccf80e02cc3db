// Every `detach` value compiles (each main is its own program; one of them is checked here).
#[daemon_runtime::daemon(detach = "never", pidfile = "/tmp/detach-never.pid")]
fn main() {}
