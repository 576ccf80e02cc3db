//! Nothing here: see `tests/ui.rs`, the compile-time behaviour of `#[daemon]` without the
//! runtime's `tokio` feature.
