// The expansion adds no `unsafe`: a crate that forbids it still compiles.
#![forbid(unsafe_code)]

#[daemon_runtime::daemon(umask = 0o077, workdir = "${TMPDIR:-/tmp}", keep_fds = [3], ready_timeout = 5)]
fn main() {}
