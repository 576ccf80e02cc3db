#[daemon_runtime::daemon(core_dumps, control)]
fn main() {}
