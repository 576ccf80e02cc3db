//! Compile-time behaviour of `#[daemon]`: each mistake class and its message
//! (`tests/ui/*.stderr`, reviewed by hand; regenerate with `TRYBUILD=overwrite`), and the
//! programs that must compile.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui-pass/*.rs");
}
