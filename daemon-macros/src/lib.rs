//! The `#[daemon]` attribute. Use it through `daemon-runtime`, which re-exports it and holds
//! everything it expands to: this crate only parses, validates and emits calls into the
//! runtime's public builder, `daemon_runtime::Daemon`.
//!
//! The full documentation, with every key, lives on `daemon_runtime::daemon`.

mod entry;
mod errors;
mod expand;
mod key;
mod parse;
mod template;
mod validate;

use proc_macro::TokenStream;

/// Turns `fn main` into a correct Unix daemon. See `daemon_runtime::daemon` for the keys.
#[proc_macro_attribute]
pub fn daemon(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::daemon(args.into(), item.into()).into()
}
