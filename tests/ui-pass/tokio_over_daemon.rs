// `#[tokio::main]` over `#[daemon]`: tokio expands first, and builds its runtime inside the
// `fn main` that `#[daemon]` then runs after the fork.
#[tokio::main(flavor = "current_thread")]
#[daemon_runtime::daemon(pidfile = "${TMPDIR:-/tmp}/ui-tokio-over-daemon.pid", shutdown = "exit")]
async fn main() -> Result<(), std::num::ParseIntError> {
    #![allow(unused_variables)]
    let unused = 1;
    let n: u32 = "42".parse()?;
    if n != 42 {
        return Ok(());
    }
    Ok(())
}
