#[daemon_runtime::daemon]
fn serve() {}

fn main() {
    serve();
}
