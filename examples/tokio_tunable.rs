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
//!
//! WATCHERS=N spawns N tasks that each wait for `shutdown()` and N that each take reloads
//! with `next_reload()`; at shutdown `main` waits for them and logs `N watchers saw the
//! shutdown`, `R reloads taken`, and whether a `shutdown()` made afterwards is complete at once.
//!
//! WORKERS=N runs a multi-thread runtime of N workers instead of a `current_thread` one;
//! READY=manual calls `ready()` once the runtime runs.

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
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|n| n.parse().ok()) {
        daemon = daemon
            .flavor(daemon_runtime::Flavor::MultiThread)
            .worker_threads(workers);
    }
    if std::env::var("READY").as_deref() == Ok("manual") {
        daemon = daemon.ready(daemon_runtime::Ready::Manual);
    }
    if std::env::var("STDERR").as_deref() != Ok("inherit") {
        daemon = daemon.stderr("${PROBE_DIR}/stderr.log");
    }
    daemon.run_async(service)
}

async fn service() -> io::Result<()> {
    daemon_runtime::ready(); // with READY=manual; nothing otherwise
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
    let watchers: usize = std::env::var("WATCHERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut shutdown_watchers = tokio::task::JoinSet::new();
    let reloads = std::sync::Arc::new(AtomicU64::new(0));
    for _ in 0..watchers {
        shutdown_watchers.spawn(daemon_runtime::shutdown());
        let reloads = std::sync::Arc::clone(&reloads);
        tokio::spawn(async move {
            loop {
                daemon_runtime::next_reload().await;
                reloads.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
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
    if watchers > 0 {
        let mut saw = 0;
        while shutdown_watchers.join_next().await.is_some() {
            saw += 1;
        }
        tracing::info!("{saw} watchers saw the shutdown");
        tracing::info!("{} reloads taken", reloads.load(Ordering::SeqCst));
        let late = futures_now(daemon_runtime::shutdown());
        tracing::info!("a later shutdown() is complete at once: {late}");
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

/// Whether `future` is complete at its first poll.
fn futures_now(future: impl std::future::Future<Output = ()>) -> bool {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    future.as_mut().poll(&mut context).is_ready()
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
