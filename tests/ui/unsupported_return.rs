#[daemon_runtime::daemon]
fn main() -> u8 {
    0
}
