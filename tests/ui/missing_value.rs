#[daemon_runtime::daemon(control)]
fn main() {}
