#[daemon_runtime::daemon(keep_fds(3, 4))]
fn main() {}
