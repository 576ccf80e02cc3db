//! SPEC §5.1, feature `tokio`: the runtime `#[daemon] async fn main` builds after the fork,
//! and the futures through which an async body sees a shutdown or a reload request.
//!
//! No thread is added for the futures, and the signal handlers only ring a self-pipe of their
//! own (`events::WAKE_ASYNC`). One task per runtime, the *driver*, spawned by the first future
//! polled there, watches the pipe through tokio's reactor, empties it and wakes every waiting
//! future (a [`Notify`], which takes locks: never in a handler). A future enables its wake-up
//! before it looks at the flags, so a request after the look wakes it; the flags stay the
//! truth, and a future is complete at once when its request is already there. A single reader
//! of the pipe means that no future can empty it under another one's feet.

use crate::events;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Which tokio runtime `#[daemon] async fn main` runs on (the `flavor` key), named as
/// `#[tokio::main]` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Flavor {
    /// `"multi_thread"`: a worker thread per CPU, or [`worker_threads`](crate::Daemon::worker_threads).
    #[default]
    MultiThread,
    /// `"current_thread"`: everything on the main thread.
    CurrentThread,
}

/// A future that completes when the daemon is asked to shut down (`SIGTERM` or `SIGINT` with
/// `shutdown = "graceful"`, the default of `async fn main`); at once if it already was.
///
/// Each call returns a new, independent future; it is `Send + Sync + Unpin + 'static`, so that
/// it goes wherever a shutdown signal is expected:
///
/// ```no_run
/// # async fn serve(listener: tokio::net::TcpListener) {
/// let mut shutdown = daemon_runtime::shutdown();
/// loop {
///     tokio::select! {
///         _ = &mut shutdown => break, // stop accepting, finish the work in hand
///         accepted = listener.accept() => { /* serve it */ }
///     }
/// }
/// # }
/// ```
///
/// or `axum::serve(listener, app).with_graceful_shutdown(daemon_runtime::shutdown())`. As
/// many as wanted may wait, on any task: each one completes.
///
/// It must be polled inside a tokio runtime with I/O or time enabled (as `#[daemon] async fn
/// main` and `#[tokio::main]` build it); it panics in a thread without a tokio runtime, as
/// tokio's own futures do. In a process that was not started by this crate, nothing asks for
/// a shutdown and it never completes.
pub fn shutdown() -> ShutdownFuture {
    ShutdownFuture {
        watch: Watch::default(),
    }
}

/// A future that completes at the next reload request (`SIGHUP`; the log files were already
/// reopened), or at once if one is pending, and takes it: several `SIGHUP`s before it is
/// polled count as one, and one that comes after it completed waits for the next call. It
/// shares the pending reload with [`reload_requested`](crate::reload_requested) and
/// [`wait`](crate::wait): whichever looks first takes it.
///
/// ```no_run
/// # async fn body() {
/// let mut shutdown = daemon_runtime::shutdown();
/// loop {
///     tokio::select! {
///         _ = &mut shutdown => break,
///         _ = daemon_runtime::next_reload() => { /* re-read the configuration */ }
///     }
/// }
/// # }
/// ```
///
/// Under systemd, `READY=1` after a reload is sent when a body that watches for reloads took
/// it. The same runtime requirements as [`shutdown()`] apply.
pub fn next_reload() -> ReloadFuture {
    ReloadFuture {
        watch: Watch::default(),
    }
}

/// The future of [`shutdown()`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ShutdownFuture {
    watch: Watch,
}

impl Future for ShutdownFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.watch.poll(cx, events::shutdown_requested)
    }
}

/// The future of [`next_reload()`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ReloadFuture {
    watch: Watch,
}

impl Future for ReloadFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.watch.poll(cx, events::reload_requested)
    }
}

/// Woken by the driver at every ring of the pipe.
static RUNG: Notify = Notify::const_new();
/// Whether a driver task is alive (in some runtime).
static DRIVING: AtomicBool = AtomicBool::new(false);

/// One future's place among the waiters, boxed so that the future stays `Unpin`.
#[derive(Default)]
struct Watch {
    rung: Option<Pin<Box<Notified<'static>>>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("waiting", &self.rung.is_some())
            .finish()
    }
}

impl Watch {
    /// Complete once `requested()` says so; `requested` is looked at after every wake-up.
    fn poll(&mut self, cx: &mut Context<'_>, requested: fn() -> bool) -> Poll<()> {
        // The pipe exists before the flags are looked at, so that a request after the look
        // rings it, even before the driver task first runs and registers it.
        let _ = events::WAKE_ASYNC.read_end();
        loop {
            let rung = self.rung.get_or_insert_with(|| Box::pin(RUNG.notified()));
            // Among the waiters first, looked at next: a ring after the look wakes it.
            rung.as_mut().enable();
            if requested() {
                self.rung = None;
                return Poll::Ready(());
            }
            if !events::handled() {
                return Poll::Pending; // not a daemon: nothing will ever ask
            }
            drive();
            match rung.as_mut().poll(cx) {
                Poll::Ready(()) => self.rung = None, // rung: look again
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Spawns the driver on the current runtime unless one is alive.
fn drive() {
    if DRIVING.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        DRIVING.store(false, Ordering::SeqCst);
        panic!(
            "daemon_runtime::shutdown() and next_reload() must be polled inside a tokio runtime"
        );
    };
    runtime.spawn(async {
        // Whatever ends the task (the runtime shutting down drops it) lets the next poll
        // spawn a new driver.
        struct Alive;
        impl Drop for Alive {
            fn drop(&mut self) {
                DRIVING.store(false, Ordering::SeqCst);
            }
        }
        let _alive = Alive;
        // The driver's own registration of the pipe: a duplicate of its read end. Without
        // one (no descriptor left, no I/O driver), look at the flags every 50 ms instead.
        let pipe = events::WAKE_ASYNC
            .read_end()
            .and_then(|fd| fd.try_clone_to_owned().ok())
            .and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok());
        let mut buf = [0u8; 64];
        loop {
            match &pipe {
                Some(pipe) => {
                    if pipe.readable().await.is_err() {
                        return;
                    }
                    // Read until `WouldBlock`, which clears only the readiness seen so far.
                    while matches!(pipe.try_read(&mut buf), Ok(n) if n > 0) {}
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            RUNG.notify_waiters();
        }
    });
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
/// its blocking tasks (dropping it would wait for them forever), also when `main` panicked.
pub(crate) fn block_on<F: Future>(
    runtime: tokio::runtime::Runtime,
    main: F,
    grace: Duration,
) -> F::Output {
    let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(main)));
    runtime.shutdown_timeout(grace);
    output.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What `axum::serve(..).with_graceful_shutdown(..)` and `tokio::select!` ask of the futures,
/// checked at compile time.
const _: () = {
    fn graceful_shutdown_signal<F: Future<Output = ()> + Send + Sync + Unpin + 'static>(_: &F) {}
    fn check() {
        graceful_shutdown_signal(&shutdown());
        graceful_shutdown_signal(&next_reload());
    }
    let _ = check;
};
