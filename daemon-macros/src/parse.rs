//! Reads `#[daemon(key = value, ...)]` into [`Entry`]s: which [`Key`], where, and the
//! value as an expression, not yet understood. The mistakes found here are of form: a key
//! that is not one, a repeat (pointing at both places), a missing value, `key(...)`, a value
//! that is no expression. They take the entry's place in the list, in source order, so that
//! the keys after a mistake are still read and every mistake is reported where it stands.

use crate::errors::Errors;
use crate::key::{key_list, unknown_key, Key};
use proc_macro2::{Span, TokenStream};
use std::collections::HashMap;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Token};

/// One `key = value` of the attribute.
pub(crate) struct Entry {
    pub(crate) key: Key,
    /// Where the key is written.
    pub(crate) key_span: Span,
    pub(crate) value: Expr,
}

/// The entries of the attribute in source order, each key at most once; a mistake in place
/// of an entry.
pub(crate) fn entries(tokens: TokenStream) -> Vec<Result<Entry, syn::Error>> {
    let mut entries = Vec::new();
    let mut seen: HashMap<Key, Span> = HashMap::new();
    let parser = syn::meta::parser(|meta| {
        let mut errors = Errors::default();
        if let Some(entry) = entry(&meta, &mut seen, &mut errors)? {
            entries.push(Ok(entry));
        }
        entries.extend(errors.into_error().map(Err));
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, tokens) {
        entries.push(Err(error));
    }
    entries
}

/// What follows a key.
enum Value {
    Expr(Expr),
    /// A bare `key`.
    Missing,
    /// `key(...)`.
    Call,
    /// `key = tokens that are no expression` (such as an unquoted path).
    Unparsable(Span),
}

/// One entry; `Ok(None)` after a mistake that was recorded. Only a broken token stream is
/// an `Err`.
fn entry(
    meta: &ParseNestedMeta<'_>,
    seen: &mut HashMap<Key, Span>,
    errors: &mut Errors,
) -> syn::Result<Option<Entry>> {
    let key_span = meta.path.span();
    let value = value(meta)?;
    let written = meta.path.get_ident().map(ToString::to_string);
    if let Value::Call = value {
        let written = written.unwrap_or_default();
        errors.at(
            key_span,
            format!("write `{written} = value`, not `{written}(...)`"),
        );
        return Ok(None);
    }
    let Some(written) = written else {
        errors.at(
            key_span,
            format!(
                "expected a key such as `pidfile`; the keys are: {}",
                key_list()
            ),
        );
        return Ok(None);
    };
    let Some(key) = Key::from_name(&written) else {
        errors.at(key_span, unknown_key(&written));
        return Ok(None);
    };
    // A repeat is one, whatever its value.
    if let Some(&first) = seen.get(&key) {
        errors.at(key_span, format!("`{written}` is given twice; keep one"));
        errors.at(first, format!("`{written}` is first given here"));
        return Ok(None);
    }
    seen.insert(key, key_span);
    match value {
        Value::Expr(value) => Ok(Some(Entry {
            key,
            key_span,
            value,
        })),
        Value::Missing => {
            let example = key.example();
            errors.at(
                key_span,
                format!("`{written}` needs a value, like `{example}`"),
            );
            Ok(None)
        }
        Value::Unparsable(span) => {
            let (takes, example) = (key.takes(), key.example());
            errors.at(span, format!("`{written}` takes {takes}, like `{example}`"));
            Ok(None)
        }
        Value::Call => Ok(None),
    }
}

/// Reads what follows a key. Only a broken token stream is an `Err`: every other mistake is
/// a [`Value`], so that the keys after it are still checked.
fn value(meta: &ParseNestedMeta<'_>) -> syn::Result<Value> {
    if meta.input.peek(Token![=]) {
        let input = meta.value()?;
        if input.fork().parse::<Expr>().is_ok() {
            return Ok(Value::Expr(input.parse()?));
        }
        let span = input.span();
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<proc_macro2::TokenTree>()?;
        }
        return Ok(Value::Unparsable(span));
    }
    if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
        return Ok(Value::Call);
    }
    Ok(Value::Missing)
}
