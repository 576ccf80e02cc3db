//! The expansion: the user's `fn main` keeps its signature; its body runs, unchanged, as a
//! closure handed to `Daemon::run`, after the `daemon_runtime::Daemon` builder calls that say
//! exactly what the attribute said. Nothing here is `unsafe`.

use crate::entry::MainFn;
use crate::validate::{Args, Detach, Ready, Seconds};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ReturnType;

pub(crate) fn main(args: &Args, function: MainFn) -> TokenStream {
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
        sig,
        brace,
        inner_attrs,
        body,
    } = function;
    // The body in its own braces, with their spans: an error about the block points at it.
    let mut block = TokenStream::new();
    brace.surround(&mut block, |tokens| tokens.extend(body));
    let (output, output_span) = match &sig.output {
        ReturnType::Default => (quote!(), Span::call_site()),
        ReturnType::Type(arrow, ty) => (quote!(#arrow #ty), ty.span()),
    };
    // Spanned at the return type: an unsupported one is reported there.
    let run = quote_spanned!(output_span=> .run);
    quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #krate::Daemon::new() #(#calls)* #run(move || #output #block)
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
    if let Some(graceful) = args.graceful.as_ref().filter(|graceful| graceful.value) {
        calls.push(quote_spanned!(graceful.span=> .shutdown(#krate::Shutdown::Graceful)));
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
