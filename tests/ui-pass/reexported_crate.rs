// A crate that re-exports the runtime names it with `crate = "..."`.
mod my_framework {
    pub use daemon_runtime as rt;
}

#[daemon_runtime::daemon(crate = "my_framework::rt")]
fn main() {}
