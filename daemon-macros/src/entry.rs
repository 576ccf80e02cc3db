//! Parse → validate → expand (thiserror's `impl/src` split). On any mistake the user's
//! function is still emitted unchanged, next to the errors, so that the IDE keeps working and
//! no secondary error appears.
//!
//! The body of `main` stays opaque, as tokio's `#[tokio::main]` keeps it: its tokens are not
//! parsed into statements, and its inner attributes (`#![allow(...)]`) are lifted onto the
//! function the expansion writes, where they are allowed.

use crate::errors::Errors;
use crate::expand;
use crate::parse;
use crate::validate;
use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::token::Brace;
use syn::{Attribute, Signature, Visibility};

/// `fn main` as written: its signature parsed, its body kept as tokens.
pub(crate) struct MainFn {
    pub(crate) outer_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The body's braces, kept so that an error about the body points into it.
    pub(crate) brace: Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) body: TokenStream,
}

impl Parse for MainFn {
    fn parse(input: ParseStream) -> syn::Result<MainFn> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(MainFn {
            outer_attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

pub(crate) fn daemon(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let entries = parse::entries(args);
    let args = validate::args(entries, &mut errors);
    let function = match syn::parse2::<MainFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            errors.push(syn::Error::new_spanned(
                &item,
                "`#[daemon]` goes on `fn main`: it turns the whole program into a daemon",
            ));
            let errors = errors.into_compile_errors();
            return quote!(#errors #item);
        }
    };
    check_signature(&function, &mut errors);
    if !errors.is_empty() {
        // The function exactly as written, every token with its own span.
        let errors = errors.into_compile_errors();
        return quote!(#errors #item);
    }
    expand::main(&args, function)
}

fn check_signature(function: &MainFn, errors: &mut Errors) {
    let sig = &function.sig;
    if sig.ident != "main" {
        errors.at(
            sig.ident.span(),
            format!(
                "`#[daemon]` goes on `fn main`, not `fn {}`: a process becomes a daemon once, \
                 before anything else runs",
                sig.ident
            ),
        );
    }
    if let Some(asyncness) = &sig.asyncness {
        errors.at(
            asyncness.span(),
            "`#[daemon]` does not support `async fn main` yet: write a plain `fn main` and build \
             your async runtime inside it, after the daemon has started (threads do not survive fork)",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.at(
            constness.span(),
            "`fn main` under `#[daemon]` cannot be `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(
            abi.span(),
            "`fn main` under `#[daemon]` cannot declare an ABI",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            sig.generics.span(),
            "`fn main` cannot have generic parameters or a `where` clause",
        );
    }
    if !sig.inputs.is_empty() {
        errors.at(
            sig.inputs.span(),
            "`fn main` takes no arguments: read them with `std::env::args()` in the body",
        );
    }
}
