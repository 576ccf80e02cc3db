#[daemon_runtime::daemon(
    ready = "sometimes",
    name = "my service",
    crate = "not a path!",
    pidfile = "",
    stdout = "${LOGDIR/out.log",
    stderr = "/var/log/$/err.log",
    shutdown = "later",
)]
fn main() {}
