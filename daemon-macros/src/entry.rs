//! Parse → validate → expand (thiserror's `impl/src` split). On any mistake the user's
//! function is still emitted unchanged, next to the errors, so that the IDE keeps working and
//! no secondary error appears.
//!
//! The body of `main` stays opaque, as tokio's `#[tokio::main]` keeps it: its tokens are not
//! parsed into statements, and its inner attributes (`#![allow(...)]`) are lifted onto the
//! function the expansion writes, where they are allowed.
//!
//! With tokio (SPEC §5.1) `main` comes in four [`Shape`]s: plain, `async` (the runtime crate
//! builds the runtime after the fork), under `#[tokio::main]` (written below `#[daemon]`: that
//! attribute moves, unchanged, onto a nested `async fn main` that runs after the fork), and
//! the `fn main` that `#[tokio::main]` wrote when it was written above `#[daemon]` (its runtime
//! is built inside the body, so after the fork too).

use crate::errors::Errors;
use crate::expand;
use crate::parse;
use crate::validate;
use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
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
    let mut function = match syn::parse2::<MainFn>(item.clone()) {
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
    let shape = Shape::of(&mut function);
    check_signature(&function, &shape, &mut errors);
    check_runtime_keys(&args, &shape, &mut errors);
    if !errors.is_empty() {
        // The function exactly as written, every token with its own span.
        let errors = errors.into_compile_errors();
        return quote!(#errors #item);
    }
    expand::main(&args, function, shape)
}

/// What kind of `main` the attribute is on.
pub(crate) enum Shape {
    /// `fn main`.
    Plain,
    /// `async fn main`: `Daemon::run_async` builds the runtime.
    Async,
    /// `#[daemon] #[tokio::main] async fn main`: tokio's attribute, taken off `main`.
    UnderTokio(Box<Attribute>),
    /// `#[tokio::main] #[daemon] async fn main`, as tokio expanded it: a `fn main` whose body
    /// begins with `let body = async { .. };` and builds the runtime. The index of that
    /// async block among the body's tokens.
    ExpandedByTokio(usize),
}

impl Shape {
    /// The shape of `function`; takes `#[tokio::main]` off it.
    fn of(function: &mut MainFn) -> Shape {
        if let Some(at) = function.outer_attrs.iter().position(is_tokio_main) {
            return Shape::UnderTokio(Box::new(function.outer_attrs.remove(at)));
        }
        if function.sig.asyncness.is_some() {
            return Shape::Async;
        }
        match tokio_async_block(&function.body) {
            Some(at) => Shape::ExpandedByTokio(at),
            None => Shape::Plain,
        }
    }
}

/// `#[tokio::main]`, `#[::tokio::main]`, `#[tokio::main(...)]`.
fn is_tokio_main(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments == ["tokio", "main"]
}

/// If `body` is what `#[tokio::main]` writes (`let body = async { .. };` first, then
/// `Builder::..().build().expect("Failed building the Runtime").block_on(body)`), the index of
/// the async block among its tokens. (Should tokio's expansion change, the `tokio_outer`
/// example's tests fail: its graceful stop depends on this.)
fn tokio_async_block(body: &TokenStream) -> Option<usize> {
    let tokens: Vec<TokenTree> = body.clone().into_iter().collect();
    let word =
        |at: usize, word: &str| matches!(tokens.get(at), Some(TokenTree::Ident(i)) if i == word);
    let is_equals = matches!(tokens.get(2), Some(TokenTree::Punct(p)) if p.as_char() == '=');
    if !(word(0, "let") && word(1, "body") && is_equals && word(3, "async")) {
        return None;
    }
    let at = if word(4, "move") { 5 } else { 4 };
    let Some(TokenTree::Group(block)) = tokens.get(at) else {
        return None;
    };
    let tokio_wrote_it =
        mentions(body, "block_on") && mentions_text(body, "Failed building the Runtime");
    (block.delimiter() == Delimiter::Brace && tokio_wrote_it).then_some(at)
}

/// Whether a string literal with `text` in it appears anywhere in `tokens`.
fn mentions_text(tokens: &TokenStream, text: &str) -> bool {
    any_token(
        tokens,
        &|token| matches!(token, TokenTree::Literal(literal) if literal.to_string().contains(text)),
    )
}

/// Whether the identifier `name` appears anywhere in `tokens`.
fn mentions(tokens: &TokenStream, name: &str) -> bool {
    any_token(
        tokens,
        &|token| matches!(token, TokenTree::Ident(ident) if ident == name),
    )
}

/// Whether `hit` holds for a token anywhere in `tokens`, inside groups too (a group itself is
/// not offered to `hit`, only its tokens).
fn any_token(tokens: &TokenStream, hit: &impl Fn(&TokenTree) -> bool) -> bool {
    tokens.clone().into_iter().any(|token| match &token {
        TokenTree::Group(group) => any_token(&group.stream(), hit),
        token => hit(token),
    })
}

/// `body` with `first` put at the start of the block that is its token `at`.
pub(crate) fn put_first_in_block(body: TokenStream, at: usize, first: TokenStream) -> TokenStream {
    body.into_iter()
        .enumerate()
        .map(|(index, token)| match token {
            TokenTree::Group(block) if index == at => {
                let mut inside = first.clone();
                inside.extend(block.stream());
                let mut replaced = Group::new(block.delimiter(), inside);
                replaced.set_span(block.span());
                TokenTree::Group(replaced)
            }
            token => token,
        })
        .collect()
}

/// `flavor` and `worker_threads` configure the runtime `#[daemon]` builds: only on its own
/// `async fn main`.
fn check_runtime_keys(args: &validate::Args, shape: &Shape, errors: &mut Errors) {
    let keys = [
        args.flavor.as_ref().map(|setting| ("flavor", setting.key)),
        args.worker_threads
            .as_ref()
            .map(|setting| ("worker_threads", setting.key)),
    ];
    let current_thread = args
        .flavor
        .as_ref()
        .filter(|flavor| flavor.value == validate::Flavor::CurrentThread);
    if let (Some(workers), Some(_), Shape::Async) = (&args.worker_threads, current_thread, shape) {
        errors.at(
            workers.key,
            "`worker_threads` requires the `multi_thread` runtime flavor: a `current_thread` \
             runtime runs everything on the main thread; remove `worker_threads`, or use \
             `#[daemon(flavor = \"multi_thread\")]`",
        );
    }
    for (key, span) in keys.into_iter().flatten() {
        let why = match shape {
            Shape::Async => continue,
            Shape::Plain => format!(
                "`{key}` configures the tokio runtime of `async fn main`; this `main` is not \
                 `async`: write `async fn main`, or remove `{key}`"
            ),
            Shape::UnderTokio(_) | Shape::ExpandedByTokio(_) => format!(
                "`{key}` goes into `#[tokio::main({key} = ...)]`, which builds the runtime \
                 here; or drop `#[tokio::main]` and let `#[daemon]` build it"
            ),
        };
        errors.at(span, why);
    }
}

/// `#[async_std::main]`, `#[actix_web::main]`, a bare `#[main]`: a runtime's entry attribute
/// that is not tokio's, written in full.
fn other_runtime_main(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments
        .last()
        .is_some_and(|last| last.ident == "main")
}

fn check_signature(function: &MainFn, shape: &Shape, errors: &mut Errors) {
    if let Shape::Async = shape {
        if let Some(attr) = function
            .outer_attrs
            .iter()
            .find(|attr| other_runtime_main(attr))
        {
            let path = attr.path();
            let written = quote!(#path).to_string().replace(' ', "");
            errors.at(
                attr.span(),
                format!(
                    "`#[daemon]` runs `async fn main` on tokio, not on `#[{written}]`'s runtime: \
                     remove `#[{written}]` and let `#[daemon]` build the runtime (or stack \
                     `#[tokio::main]`, written with its path)"
                ),
            );
        }
    }
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
    if let (None, Shape::UnderTokio(attr)) = (&sig.asyncness, shape) {
        errors.at(
            attr.span(),
            "`#[tokio::main]` goes on `async fn main`: write `async fn main`, or remove \
             `#[tokio::main]`",
        );
    }
    if let (Some(asyncness), Shape::Async) = (&sig.asyncness, shape) {
        if !cfg!(feature = "tokio") {
            errors.at(
                asyncness.span(),
                "`#[daemon] async fn main` needs the `tokio` feature of daemon-runtime: \
                 `daemon-runtime = { version = \"0.1\", features = [\"tokio\"] }` in Cargo.toml",
            );
        }
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
