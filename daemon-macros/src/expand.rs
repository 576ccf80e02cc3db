//! The expansion: the user's `fn main` keeps its signature; its body runs, unchanged, as a
//! closure handed to `Daemon::run`, after the `daemon_runtime::Daemon` builder calls that say
//! exactly what the attribute said. Nothing here is `unsafe`.

use crate::entry::{self, MainFn, Shape};
use crate::validate::{Args, Detach, Flavor, Ready, Seconds};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ReturnType;

pub(crate) fn main(args: &Args, function: MainFn, shape: Shape) -> TokenStream {
    let krate = match &args.krate {
        Some(krate) => {
            let path = &krate.value;
            quote!(#path)
        }
        None => quote!(::daemon_runtime),
    };
    let calls = builder_calls(args, &krate);
    let MainFn {
        outer_attrs,
        vis,
        mut sig,
        brace,
        inner_attrs,
        mut body,
    } = function;
    let running = quote!(#krate::__private::runtime_running(););
    if let Shape::ExpandedByTokio(at) = shape {
        body = entry::put_first_in_block(body, at, running.clone());
    }
    // The body in its own braces, with their spans: an error about the block points at it.
    let mut block = TokenStream::new();
    brace.surround(&mut block, |tokens| tokens.extend(body));
    let (output, output_span) = match &sig.output {
        ReturnType::Default => (quote!(), Span::call_site()),
        ReturnType::Type(arrow, ty) => (quote!(#arrow #ty), ty.span()),
    };
    // Spanned at the return type: an unsupported one is reported there.
    let (run, tokio_main) = match shape {
        Shape::Plain => (quote_spanned!(output_span=> .run), None),
        Shape::ExpandedByTokio(_) => (quote_spanned!(output_span=> .__run_tokio_main), None),
        Shape::Async => (quote_spanned!(output_span=> .run_async), None),
        Shape::UnderTokio(attr) => (quote_spanned!(output_span=> .__run_tokio_main), Some(attr)),
    };
    if sig.asyncness.is_none() {
        return quote! {
            #(#outer_attrs)*
            #vis #sig {
                #(#inner_attrs)*
                #krate::Daemon::new() #(#calls)* #run(move || #output #block)
            }
        };
    }
    // `async fn main`: the body becomes a nested `async fn main`, run after the fork, by the
    // runtime crate or, under `#[tokio::main]`, by the runtime that attribute builds.
    let nested = sig.clone();
    sig.asyncness = None;
    let running = tokio_main.is_some().then_some(running);
    quote! {
        #(#outer_attrs)*
        #vis #sig {
            #tokio_main
            #nested {
                #(#inner_attrs)*
                #running
                #block
            }
            #krate::Daemon::new() #(#calls)* #run(main)
        }
    }
}

fn builder_calls(args: &Args, krate: &TokenStream) -> Vec<TokenStream> {
    let mut calls = Vec::new();
    let paths = [
        ("pidfile", &args.pidfile),
        ("workdir", &args.workdir),
        ("stdout", &args.stdout),
        ("stderr", &args.stderr),
        ("name", &args.name),
        ("user", &args.user),
        ("group", &args.group),
        ("chroot", &args.chroot),
    ];
    for (method, setting) in paths {
        if let Some(setting) = setting {
            let method = syn::Ident::new(method, setting.key);
            let value = Literal::string(&setting.value);
            calls.push(quote_spanned!(setting.span=> .#method(#value)));
        }
    }
    if let Some(listen) = &args.listen {
        for entry in &listen.value {
            let entry = Literal::string(entry);
            calls.push(quote_spanned!(listen.span=> .listen(#entry)));
        }
    }
    if let Some(umask) = &args.umask {
        let mask = Literal::u32_unsuffixed(umask.value);
        calls.push(quote!(.umask(#mask)));
    }
    if let Some(keep) = &args.keep_fds {
        let fds = keep.value.iter().map(|fd| Literal::i32_unsuffixed(*fd));
        calls.push(quote!(.keep_fds(&[#(#fds),*])));
    }
    if let Some(ready) = &args.ready {
        let mode = match ready.value {
            Ready::Auto => quote!(Auto),
            Ready::Manual => quote!(Manual),
        };
        calls.push(quote!(.ready(#krate::Ready::#mode)));
    }
    if let Some(detach) = &args.detach {
        let mode = match detach.value {
            Detach::Auto => quote!(Auto),
            Detach::Always => quote!(Always),
            Detach::Never => quote!(Never),
        };
        calls.push(quote!(.detach(#krate::Detach::#mode)));
    }
    if let Some(timeout) = &args.ready_timeout {
        let duration = duration(timeout.value);
        calls.push(quote!(.ready_timeout(#duration)));
    }
    if let Some(graceful) = &args.graceful {
        let mode = if graceful.value {
            quote!(Graceful)
        } else {
            quote!(Exit)
        };
        calls.push(quote_spanned!(graceful.span=> .shutdown(#krate::Shutdown::#mode)));
    }
    if let Some(flavor) = &args.flavor {
        let flavor = match flavor.value {
            Flavor::MultiThread => quote!(MultiThread),
            Flavor::CurrentThread => quote!(CurrentThread),
        };
        calls.push(quote!(.flavor(#krate::Flavor::#flavor)));
    }
    if let Some(workers) = &args.worker_threads {
        let count = Literal::usize_unsuffixed(workers.value);
        calls.push(quote!(.worker_threads(#count)));
    }
    if let Some(timeout) = &args.stop_timeout {
        let duration = duration(timeout.value);
        calls.push(quote!(.stop_timeout(#duration)));
    }
    if let Some(control) = &args.control {
        let enabled = control.value;
        calls.push(quote!(.control(#enabled)));
    }
    if let Some(core_dumps) = &args.core_dumps {
        let allowed = core_dumps.value;
        calls.push(quote!(.core_dumps(#allowed)));
    }
    calls
}

fn duration(seconds: Seconds) -> TokenStream {
    match seconds {
        Seconds::Whole(whole) => {
            let whole = Literal::u64_unsuffixed(whole);
            quote!(::core::time::Duration::from_secs(#whole))
        }
        Seconds::Fraction(fraction) => {
            let fraction = Literal::f64_unsuffixed(fraction);
            quote!(::core::time::Duration::from_secs_f64(#fraction))
        }
    }
}
