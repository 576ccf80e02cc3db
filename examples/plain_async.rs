//! `bench_async` without `#[daemon]`: plain `#[tokio::main]` on two workers, idle until
//! SIGTERM. It runs in the foreground.

#[tokio::main(worker_threads = 2)]
async fn main() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM listener");
    term.recv().await;
}
