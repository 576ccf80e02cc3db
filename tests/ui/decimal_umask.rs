// A C habit: in Rust, 022 is twenty-two.
#[daemon_runtime::daemon(umask = 022)]
fn main() {}
