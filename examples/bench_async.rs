//! The benchmark's async daemon: `#[daemon] async fn main` on two workers, idle until a
//! shutdown is asked. Compared with `plain_async`, the same without `#[daemon]`.

#[daemon_runtime::daemon(pidfile = "${BENCH_PIDFILE}", worker_threads = 2)]
async fn main() {
    daemon_runtime::shutdown().await;
}
