//! `#[daemon]` where daemon-runtime's `tokio` feature is off (`tests/ui/*.stderr`, reviewed by
//! hand; regenerate with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
