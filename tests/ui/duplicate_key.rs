// A repeated key points at both places, whatever the repeat's value: the second `name` has
// none, and is still a repeat.
#[daemon_runtime::daemon(umask = 0o022, pidfile = "/run/a.pid", umask = 0o077, name = "a", name)]
fn main() {}
