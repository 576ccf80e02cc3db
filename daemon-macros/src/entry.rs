//! Parse → validate → expand. On any mistake the user's function is still emitted unchanged,
//! next to the errors, so that the IDE keeps working and no secondary error appears.

use crate::args;
use crate::errors::Errors;
use crate::expand;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::ItemFn;

pub(crate) fn daemon(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::parse(args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
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
        let errors = errors.into_compile_errors();
        return quote!(#errors #function);
    }
    expand::main(&args, function)
}

fn check_signature(function: &ItemFn, errors: &mut Errors) {
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
