// `#[daemon] async fn main` (feature `tokio`): `-> Result`, `?`, an early `return`, an inner
// `#![allow]`, and the futures of a graceful stop.
#[daemon_runtime::daemon(pidfile = "${TMPDIR:-/tmp}/ui-async-main.pid", flavor = "current_thread")]
async fn main() -> Result<(), std::num::ParseIntError> {
    #![allow(unused_variables)]
    let unused = 1;
    let n: u32 = "42".parse()?;
    if n != 42 {
        return Ok(());
    }
    tokio::select! {
        _ = daemon_runtime::shutdown() => {}
        _ = daemon_runtime::next_reload() => {}
        _ = tokio::task::yield_now() => {}
    }
    Ok(())
}
