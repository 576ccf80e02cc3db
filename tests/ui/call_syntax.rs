// Neither mistake stops the keys after it from being checked.
#[daemon_runtime::daemon(keep_fds(3, 4), pidfile = /run/x.pid, umask = 00, umask_ = 1)]
fn main() {}
