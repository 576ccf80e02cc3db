// Several mistakes, all reported in one compile.
#[daemon_runtime::daemon(
    pidfile = 42,
    umask = "022",
    core_dumps = "yes",
    keep_fds = 3,
    ready = manual,
    ready_timeout = "30",
    name = 7,
)]
fn main() {}
