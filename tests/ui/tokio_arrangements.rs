// `#[daemon]` and `#[tokio::main]` stack in both orders; what cannot work says what to write.
mod keys_under_tokio {
    // tokio builds the runtime here: its settings go into its own attribute.
    #[daemon_runtime::daemon(flavor = "current_thread")]
    #[tokio::main]
    async fn main() {}
}

mod keys_over_tokio {
    #[tokio::main]
    #[daemon_runtime::daemon(worker_threads = 2)]
    async fn main() {}
}

mod not_async {
    #[daemon_runtime::daemon]
    #[tokio::main]
    fn main() {}
}

fn main() {}
