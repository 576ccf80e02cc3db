// `#[daemon]` over `#[tokio::main]`: tokio's attribute, with its own arguments, runs after the fork.
#[daemon_runtime::daemon(pidfile = "${TMPDIR:-/tmp}/ui-daemon-over-tokio.pid", ready = "manual")]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), std::num::ParseIntError> {
    #![allow(unused_variables)]
    let unused = 1;
    let n: u32 = "42".parse()?;
    daemon_runtime::ready();
    tokio::task::spawn(async move { n }).await.ok();
    Ok(())
}
