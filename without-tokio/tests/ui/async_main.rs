// `async fn main` needs the runtime's `tokio` feature: the message says how to turn it on.
#[daemon_runtime::daemon]
async fn main() {}
