//! tokio_echo's service, started another way:
//! `#[daemon]` written over `#[tokio::main]`: tokio's attribute moves, unchanged, onto a nested
//! `async fn main` that runs after the fork.
//!
//! The tests start it as they start tokio_echo, and look at the same things.

#[path = "tokio_echo.rs"]
#[allow(dead_code)]
mod tokio_echo;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/tokio_stacked.pid",
    stderr = "${TMPDIR:-/tmp}/tokio_stacked.log",
    listen = ["echo=127.0.0.1:${ECHO_PORT:-7009}"]
)]
#[tokio::main(worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    tokio_echo::log_to_stderr();
    tokio_echo::serve(daemon_runtime::tcp_listener("echo")?).await
}
