//! Collects every mistake of one attribute so that a user sees them all in one compile
//! (the way serde_derive's `Ctxt` does).

use proc_macro2::{Span, TokenStream};
use std::fmt::Display;

#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.combined.is_none()
    }

    /// The mistakes, combined into one error, if there were any.
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.combined
    }

    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.combined
            .map(|error| error.into_compile_error())
            .unwrap_or_default()
    }
}
