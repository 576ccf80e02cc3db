//! SPEC §5.1, feature `tokio`: the runtime `#[daemon] async fn main` builds after the fork,
//! and the futures through which an async body sees a shutdown or a reload request.
//!
//! No thread and no lock is added for the futures: the signal handlers ring a self-pipe of
//! their own (`events::WAKE_ASYNC`), and each future waits on its own duplicate of the pipe's
//! read end through tokio's reactor (a `tokio::net::unix::pipe::Receiver`). Every registration of the pipe hears every
//! ring, so several futures, on several tasks, each wake up. The flags stay the truth: a future
//! looks at them after every wake-up, and is complete at once when its request is already there.

use crate::events;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::unix::pipe;

/// Which tokio runtime `#[daemon] async fn main` runs on (the `flavor` key), named as
/// `#[tokio::main]` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// `"multi_thread"`: a worker thread per CPU, or [`worker_threads`](crate::Daemon::worker_threads).
    #[default]
    MultiThread,
    /// `"current_thread"`: everything on the main thread.
    CurrentThread,
}

/// A future that completes when the daemon is asked to shut down (`SIGTERM`, or `SIGINT`,
/// with `shutdown = "graceful"`, the default of `async fn main`); at once if it already was.
///
/// Each call returns a new, independent future; it is `Send + Sync + Unpin + 'static`, so that
/// it goes wherever a shutdown signal is expected:
///
/// ```no_run
/// # async fn serve(listener: tokio::net::TcpListener) {
/// tokio::select! {
///     _ = daemon_runtime::shutdown() => { /* stop accepting, finish the work in hand */ }
///     accepted = listener.accept() => { /* serve it */ }
/// }
/// # }
/// ```
///
/// or `axum::serve(listener, app).with_graceful_shutdown(daemon_runtime::shutdown())`.
///
/// It must be polled inside a tokio runtime with I/O enabled (as `#[daemon] async fn main`
/// and `#[tokio::main]` build it). In a process that was not started by this crate, nothing
/// asks for a shutdown and it never completes.
pub fn shutdown() -> ShutdownRequested {
    ShutdownRequested {
        watch: Watch::default(),
    }
}

/// A future that completes at the next reload request (`SIGHUP`; the log files were already
/// reopened), or at once if one is pending, and takes it: several `SIGHUP`s before it is polled
/// count as one, and one that comes after it completed waits for the next call.
///
/// ```no_run
/// # async fn body() {
/// loop {
///     tokio::select! {
///         _ = daemon_runtime::shutdown() => break,
///         _ = daemon_runtime::reload() => { /* re-read the configuration */ }
///     }
/// }
/// # }
/// ```
///
/// Under systemd, `READY=1` after a reload is sent when a body that watches for reloads took
/// it. The same runtime requirements as [`shutdown()`] apply.
pub fn reload() -> ReloadRequested {
    ReloadRequested {
        watch: Watch::default(),
    }
}

/// The future of [`shutdown()`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ShutdownRequested {
    watch: Watch,
}

impl Future for ShutdownRequested {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.watch.poll(cx, events::shutdown_requested)
    }
}

/// The future of [`reload()`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReloadRequested {
    watch: Watch,
}

impl Future for ReloadRequested {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.watch.poll(cx, events::reload_requested)
    }
}

/// One future's registration of the async self-pipe, made when it is first polled.
#[derive(Debug, Default)]
struct Watch {
    pipe: Option<pipe::Receiver>,
}

impl Watch {
    /// Complete once `requested()` says so; `requested` is looked at after every wake-up.
    fn poll(&mut self, cx: &mut Context<'_>, requested: fn() -> bool) -> Poll<()> {
        if requested() {
            return Poll::Ready(());
        }
        if !events::handled() {
            return Poll::Pending; // not a daemon: nothing will ever ask
        }
        if self.pipe.is_none() {
            self.pipe = Some(register());
        }
        let Some(pipe) = &self.pipe else {
            return Poll::Pending;
        };
        loop {
            // Registered first, looked at next: a request in between rings the pipe.
            if requested() {
                return Poll::Ready(());
            }
            match pipe.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                // The runtime is shutting down: nothing will wake this future any more.
                Poll::Ready(Err(_)) | Poll::Pending => return Poll::Pending,
            }
            // Read until `WouldBlock`, which clears only the readiness seen so far: a ring
            // after it keeps the pipe ready for the next round.
            let mut buf = [0u8; 64];
            while matches!(pipe.try_read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// A duplicate of the async self-pipe's read end, registered with the current runtime.
fn register() -> pipe::Receiver {
    const WHERE: &str = "daemon_runtime::shutdown() and reload() must be polled inside a tokio \
                         runtime with I/O enabled (`#[daemon] async fn main`, `#[tokio::main]`, \
                         or a runtime built with `enable_io`)";
    if tokio::runtime::Handle::try_current().is_err() {
        panic!("{WHERE}");
    }
    let read_end = events::WAKE_ASYNC
        .read_end()
        .map(|fd| fd.try_clone_to_owned())
        .unwrap_or_else(|| Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory)))
        .unwrap_or_else(|error| panic!("daemon_runtime: cannot make the self-pipe: {error}"));
    pipe::Receiver::from_owned_fd(read_end).unwrap_or_else(|error| panic!("{WHERE}: {error}"))
}

/// Whether a tokio runtime is running on this thread (`Handle::try_current()` succeeds).
pub(crate) fn runtime_entered() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Builds the runtime of `#[daemon] async fn main`. tokio panics instead of returning an error
/// when it cannot start a worker thread (`RLIMIT_NPROC` after `user =`): the panic hook of
/// `readiness` reports that one, before any unwinding.
pub(crate) fn build_runtime(
    flavor: Flavor,
    worker_threads: Option<usize>,
) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = match flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    if let (Flavor::MultiThread, Some(count)) = (flavor, worker_threads) {
        builder.worker_threads(count.max(1));
    }
    builder.enable_all();
    builder
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))
}

/// Runs `main` to completion on `runtime`, then stops the runtime, waiting at most `grace` for
/// its blocking tasks (dropping it would wait for them forever).
pub(crate) fn block_on<F: Future>(
    runtime: tokio::runtime::Runtime,
    main: F,
    grace: Duration,
) -> F::Output {
    let output = runtime.block_on(main);
    runtime.shutdown_timeout(grace);
    output
}

/// What `axum::serve(..).with_graceful_shutdown(..)` and `tokio::select!` ask of the futures,
/// checked at compile time.
const _: () = {
    fn graceful_shutdown_signal<F: Future<Output = ()> + Send + Sync + Unpin + 'static>(_: &F) {}
    fn check() {
        graceful_shutdown_signal(&shutdown());
        graceful_shutdown_signal(&reload());
    }
    let _ = check;
};
