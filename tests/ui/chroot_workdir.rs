// Inside a chroot, the working directory is a path under the new root.
#[daemon_runtime::daemon(chroot = "/var/empty", workdir = "data", user = "nobody")]
fn main() {}
