//! An async daemon for the logging and signal tests, written with the builder
//! (`Daemon::run_async`) and configured by the environment.
//!
//! Files go in `${PROBE_DIR}`: the pidfile `probe.pid`, and stderr in `stderr.log` unless
//! STDERR=inherit (then it stays where the launcher's was, as under systemd). It listens on
//! `127.0.0.1:${PORT}`; a line `N` there logs N numbered lines (`line K`, K counting from 1
//! over the daemon's life) and is answered `ok K` once they are written. WRITER says where the
//! `tracing` lines go:
//! - `stderr` (default): `tracing_subscriber::fmt().with_writer(std::io::stderr)`;
//! - `non_blocking`: `tracing_appender::non_blocking(std::io::stderr())`, its guard held by `main`;
//! - `logfile`: a [`daemon_runtime::LogFile`] at `${PROBE_DIR}/own.log`;
//! - `never`: `tracing_appender::rolling::never(PROBE_DIR, "own.log")`, which never reopens.
//!
//! On shutdown it logs SHUTDOWN_LINES more numbered lines (default 0), then `bye`, and returns.
//! With TOKIO_SIGNALS=1, `main` also listens for SIGTERM and SIGHUP with `tokio::signal`, and
//! logs `tokio saw SIGTERM` / `tokio saw SIGHUP` when they come.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};

static LINES: AtomicU64 = AtomicU64::new(0);

fn main() -> io::Result<()> {
    let mut daemon = daemon_runtime::Daemon::new()
        .name("tokio_tunable")
        .pidfile("${PROBE_DIR}/probe.pid")
        .listen("control=127.0.0.1:${PORT}")
        .flavor(daemon_runtime::Flavor::CurrentThread);
    if std::env::var("STDERR").as_deref() != Ok("inherit") {
        daemon = daemon.stderr("${PROBE_DIR}/stderr.log");
    }
    daemon.run_async(service)
}

async fn service() -> io::Result<()> {
    let dir = std::env::var("PROBE_DIR").expect("PROBE_DIR");
    let subscriber = tracing_subscriber::fmt().with_ansi(false);
    // Held until `main` returns: dropping it flushes the non-blocking writer's lines.
    let mut _guard = None;
    match std::env::var("WRITER").as_deref().unwrap_or("stderr") {
        "stderr" => subscriber.with_writer(io::stderr).init(),
        "non_blocking" => {
            let (writer, guard) = tracing_appender::non_blocking(io::stderr());
            _guard = Some(guard);
            subscriber.with_writer(writer).init();
        }
        "logfile" => {
            let log = daemon_runtime::LogFile::open(format!("{dir}/own.log"))?;
            subscriber.with_writer(std::sync::Arc::new(log)).init();
        }
        "never" => subscriber
            .with_writer(tracing_appender::rolling::never(&dir, "own.log"))
            .init(),
        other => panic!("unknown WRITER {other}"),
    }
    // tokio's own listeners, next to the daemon's handlers; the one for SIGTERM says when it
    // heard it, so that `main` can wait for it before returning.
    let (heard_term, mut term_heard) = tokio::sync::mpsc::channel::<()>(1);
    if std::env::var_os("TOKIO_SIGNALS").is_some() {
        for (kind, name) in [
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
        ] {
            let mut signals = signal(kind)?;
            let heard = heard_term.clone();
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    tracing::info!("tokio saw {name}");
                    if name == "SIGTERM" {
                        let _ = heard.try_send(());
                    }
                }
            });
        }
    }
    drop(heard_term);
    let listener = daemon_runtime::tcp_listener("control")?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!("up");
    let mut shutdown = daemon_runtime::shutdown();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Ok((stream, _)) = listener.accept() => {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let count: u64 = line.trim().parse().unwrap_or(0);
                    let last = log_lines(count);
                    writer.write_all(format!("ok {last}\n").as_bytes()).await?;
                }
            }
        }
    }
    if std::env::var_os("TOKIO_SIGNALS").is_some() {
        let heard = tokio::time::timeout(std::time::Duration::from_secs(5), term_heard.recv());
        let _ = heard.await;
    }
    let more = std::env::var("SHUTDOWN_LINES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    log_lines(more);
    tracing::info!("bye");
    Ok(())
}

/// Logs `count` numbered lines; the number of the last one.
fn log_lines(count: u64) -> u64 {
    let mut last = LINES.load(Ordering::SeqCst);
    for _ in 0..count {
        last = LINES.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!("line {last}");
    }
    last
}
