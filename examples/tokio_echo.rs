//! The echo service, async: `#[daemon] async fn main` on tokio, with a graceful stop.
//!
//!     cargo run --example tokio_echo              # start: 127.0.0.1:7009 (ECHO_PORT)
//!     cargo run --example tokio_echo -- status
//!     cargo run --example tokio_echo -- stop      # finishes open connections, then exits
//!
//! Each line sent is answered with ECHO_PREFIX (default empty) and the same line, by a task of
//! its own connection. Two more lines show what happens inside: `slow TEXT` answers after
//! 600 ms (stop the daemon meanwhile: the answer still comes), and `thread` answers which
//! thread answered it. What it does goes to `${TMPDIR:-/tmp}/tokio_echo.log`, through
//! `tracing`. `upgrade` hands its socket to the program now at its path, as for `echo`.
//!
//! The runtime is built after the fork, inside the daemon: the launcher exits 0 only once the
//! runtime runs `main`, and a runtime that cannot start is reported by the launcher.

use std::io;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/tokio_echo.pid",
    stderr = "${TMPDIR:-/tmp}/tokio_echo.log",
    listen = ["echo=127.0.0.1:${ECHO_PORT:-7009}"],
    worker_threads = 2,
    control = true
)]
async fn main() -> io::Result<()> {
    log_to_stderr();
    serve(daemon_runtime::tcp_listener("echo")?).await
}

/// `tracing` to descriptor 2: the log file, which the daemon reopens on SIGHUP (logrotate).
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(false)
        .init();
}

/// Answers each connection on its own task until a shutdown is asked; then stops listening,
/// lets each open connection finish the line in hand, and returns.
pub async fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    // First: tokio needs a non-blocking socket, or `accept` blocks a whole worker thread.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let prefix = std::sync::Arc::<str>::from(std::env::var("ECHO_PREFIX").unwrap_or_default());
    let mut connections = JoinSet::new();
    // One future for the whole loop (it is `Unpin`): `&mut shutdown` in every round.
    let mut shutdown = daemon_runtime::shutdown();
    loop {
        tokio::select! {
            biased; // a shutdown first: no connection is accepted after it
            _ = &mut shutdown => break,
            _ = daemon_runtime::next_reload() => tracing::info!("reload requested (log reopened)"),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::info!(%peer, "connection");
                    connections.spawn(answer(stream, prefix.clone()));
                }
                // Out of descriptors, say: the listener itself is fine, try again shortly.
                Err(error) => {
                    tracing::warn!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Connections that were already queued when the shutdown came are answered too (closing
    // the socket would reset them); from then on, new ones are refused.
    let listener = listener.into_std()?;
    while let Ok((stream, _)) = listener.accept() {
        stream.set_nonblocking(true)?;
        connections.spawn(answer(TcpStream::from_std(stream)?, prefix.clone()));
    }
    drop(listener);
    tracing::info!(
        "shutting down, {} connection(s) to finish",
        connections.len()
    );
    while connections.join_next().await.is_some() {}
    tracing::info!("bye");
    Ok(())
}

async fn answer(stream: TcpStream, prefix: std::sync::Arc<str>) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut shutdown = daemon_runtime::shutdown();
    let mut first = true;
    loop {
        // At shutdown an idle connection closes; a line being answered is answered first.
        // A connection that has not sent its first line yet gets a second more: it may have
        // just been accepted, its line on the way (closing it unread would reset it).
        let closing = async {
            (&mut shutdown).await;
            if first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let line = tokio::select! {
            _ = closing => break,
            line = lines.next_line() => line?,
        };
        let Some(line) = line else { break };
        first = false;
        let reply = if let Some(text) = line.strip_prefix("slow ") {
            tokio::time::sleep(Duration::from_millis(600)).await;
            format!("{prefix}{text}")
        } else if line == "thread" {
            // `PID/task/TID`: the thread that runs this task now.
            std::fs::read_link("/proc/thread-self")?
                .display()
                .to_string()
        } else {
            format!("{prefix}{line}")
        };
        writer.write_all(format!("{reply}\n").as_bytes()).await?;
    }
    Ok(())
}
