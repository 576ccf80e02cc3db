//! tokio_echo's service, started another way:
//! `#[tokio::main]` written over `#[daemon]`: tokio expands first, and builds its runtime inside
//! the `fn main` it writes, which `#[daemon]` then runs after the fork.
//!
//! The tests start it as they start tokio_echo, and look at the same things.

#[path = "tokio_echo.rs"]
#[allow(dead_code)]
mod tokio_echo;

#[tokio::main(worker_threads = 2)]
#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/tokio_outer.pid",
    stderr = "${TMPDIR:-/tmp}/tokio_outer.log",
    listen = ["echo=127.0.0.1:${ECHO_PORT:-7009}"]
)]
async fn main() -> std::io::Result<()> {
    tokio_echo::log_to_stderr();
    tokio_echo::serve(daemon_runtime::tcp_listener("echo")?).await
}
