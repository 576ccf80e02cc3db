#[daemon_runtime::daemon]
fn main<T: Default>(args: Vec<String>) {}
