#[daemon_runtime::daemon(
    umask = 0o1000,
    keep_fds = [1, 5, 5, -3, "x"],
    ready_timeout = 0,
)]
fn main() {}
