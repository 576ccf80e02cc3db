#[daemon_runtime::daemon(detach = "never")]
fn main() {}
