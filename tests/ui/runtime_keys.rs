// `flavor` and `worker_threads` configure the runtime of `#[daemon] async fn main`, checked as
// `#[tokio::main]` checks them.
mod sync_main {
    #[daemon_runtime::daemon(flavor = "current_thread", worker_threads = 2)]
    fn main() {}
}

mod no_workers {
    #[daemon_runtime::daemon(worker_threads = 0)]
    async fn main() {}
}

mod one_thread_only {
    #[daemon_runtime::daemon(flavor = "current_thread", worker_threads = 4)]
    async fn main() {}
}

mod unknown_flavor {
    #[daemon_runtime::daemon(flavor = "local", worker_threads = "4")]
    async fn main() {}
}

fn main() {}
