#[daemon_runtime::daemon]
async fn main() {}
