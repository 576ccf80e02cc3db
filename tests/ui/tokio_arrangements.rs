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

mod another_runtime {
    // `#[daemon]` builds a tokio runtime: another runtime's attribute is refused.
    #[daemon_runtime::daemon]
    #[async_std::main]
    async fn main() {}
}

fn main() {}
