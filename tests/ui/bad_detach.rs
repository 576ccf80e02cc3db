// `detach` takes one of three words.
#[daemon_runtime::daemon(detach = "sometimes")]
fn main() {}
