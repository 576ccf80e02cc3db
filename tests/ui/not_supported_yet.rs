#[daemon_runtime::daemon(
    user = "nobody",
    group = "nogroup",
    chroot = "/var/empty",
    detach = "never",
)]
fn main() {}
