#[daemon_runtime::daemon(
    user = "nobody",
    group = "nogroup",
    chroot = "/var/empty",
    detach = "never",
    shutdown = "graceful",
    stop_timeout = 5,
    control = true,
)]
fn main() {}
