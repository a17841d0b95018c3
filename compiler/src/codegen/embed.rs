//! The library forms of generated code, for pipelines embedded in a user's crate (the
//! `weir::pipeline!` macro and the build.rs API).
//!
//! - [`Form::Binary`]: the CLI's `main.rs` (`fn main`); unchanged by anything here.
//! - [`Form::Library`]: the same items and `build`, with `pub fn run(args)` instead of `main`:
//!   sources and sinks are those of the pipeline (files, stdin, stdout, generators).
//! - [`Form::Memory`]: file and stdin sources read Rust records instead (`Inputs`: a `Vec`, an
//!   iterator or a channel), and every sink collects its rows into a `Vec` (`Outputs`), so a pipeline can be
//!   unit-tested without files. A source's input type is the source's whole schema: a generated
//!   `pub struct`, or the user's `#[derive(weir::Record)]` type when the pipeline binds the
//!   schema to one; either way a generated function projects it to the fields the pipeline
//!   reads. Nexmark sources keep their generator.
//!
//! Generated code names the runtime `::weir_runtime`; a user's crate reaches it through the
//! `weir` facade instead, so [`rewrite_runtime_path`] replaces that one path, token by token,
//! after generation: the emitters stay the same for every form.

use proc_macro2::{TokenStream, TokenTree};
use quote::{format_ident, quote};

pub use super::context::{Form, MemoryIo};

/// The end of the generated code for a library form: the entry points, instead of `main`.
pub fn entry_points(form: &Form<'_>, memory: &MemoryIo, preview: bool) -> TokenStream {
    match form {
        // A preview build (`weir run --limit`) says so before it parses `--limit`.
        Form::Binary if preview => quote! {
            fn main() -> ::std::process::ExitCode {
                ::weir_runtime::run::main_preview(build)
            }
        },
        Form::Binary => quote! {
            fn main() -> ::std::process::ExitCode {
                ::weir_runtime::run::main(build)
            }
        },
        Form::Library => quote! {
            /// Runs the pipeline with its own sources and sinks; returns when the input ends.
            pub fn run(args: ::weir_runtime::run::RunArgs) -> ::std::result::Result<(), ::weir_runtime::embed::Error> {
                ::weir_runtime::embed::run(args, build)
            }
        },
        Form::Memory { .. } => {
            let (in_fields, in_types): (Vec<_>, Vec<_>) = memory.inputs.iter().cloned().unzip();
            let (out_fields, out_types): (Vec<_>, Vec<_>) = memory.outputs.iter().cloned().unzip();
            // `Io`'s fields: a source and a sink may have the same name.
            let io_in: Vec<_> = in_fields
                .iter()
                .map(|f| format_ident!("in_{}", f))
                .collect();
            let io_out: Vec<_> = out_fields
                .iter()
                .map(|f| format_ident!("out_{}", f))
                .collect();
            quote! {
                /// The records of each file or stdin source, in arrival order: a `Vec`
                /// (`vec.into()`), an iterator or a channel (`Records::iter`, `Records::channel`).
                #[derive(Default)]
                pub struct Inputs { #(pub #in_fields: ::weir_runtime::embed::Records<#in_types>,)* }
                /// The rows each sink received.
                #[derive(Debug, Default)]
                pub struct Outputs { #(pub #out_fields: ::std::vec::Vec<#out_types>,)* }
                struct Io {
                    #(#io_in: ::weir_runtime::embed::Input<#in_types>,)*
                    #(#io_out: ::weir_runtime::embed::Output<#out_types>,)*
                }
                /// Runs the pipeline on `inputs` and returns what every sink received.
                pub fn run(args: ::weir_runtime::run::RunArgs, inputs: Inputs) -> ::std::result::Result<Outputs, ::weir_runtime::embed::Error> {
                    let io = Io {
                        #(#io_in: ::weir_runtime::embed::input(inputs.#in_fields),)*
                        #(#io_out: ::std::default::Default::default(),)*
                    };
                    ::weir_runtime::embed::run(args, |rt| build(rt, &io))?;
                    Ok(Outputs { #(#out_fields: ::weir_runtime::embed::take_output(&io.#io_out),)* })
                }
            }
        }
    }
}

/// `build`'s parameters: the runtime, and in [`Form::Memory`] the inputs and outputs.
pub fn build_params(form: &Form<'_>) -> TokenStream {
    match form {
        Form::Memory { .. } => quote!(rt: &mut Runtime, io: &Io),
        _ => quote!(rt: &mut Runtime),
    }
}

/// Replaces the path `::weir_runtime` with `path` (e.g. `::weir::runtime`) everywhere in
/// `tokens`.
pub fn rewrite_runtime_path(tokens: TokenStream, path: &TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let is_path = matches!(
            (&trees[i], trees.get(i + 1), trees.get(i + 2)),
            (TokenTree::Punct(a), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(id)))
                if a.as_char() == ':' && b.as_char() == ':' && id == "weir_runtime"
        );
        // Only a path that starts with `::` (not `a::weir_runtime`; `use ::weir_runtime` is).
        const KEYWORDS: [&str; 8] = ["use", "pub", "in", "as", "dyn", "impl", "mut", "return"];
        let leading = i == 0
            || !matches!(&trees[i - 1], TokenTree::Ident(id) if !KEYWORDS.iter().any(|k| id == k));
        if is_path && leading {
            out.extend(path.clone());
            i += 3;
            continue;
        }
        match &trees[i] {
            TokenTree::Group(g) => {
                let mut group =
                    proc_macro2::Group::new(g.delimiter(), rewrite_runtime_path(g.stream(), path));
                group.set_span(g.span());
                out.push(TokenTree::Group(group));
            }
            t => out.push(t.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_runtime_path() {
        let tokens = quote! {
            use ::weir_runtime::prelude::*;
            fn f() -> ::weir_runtime::embed::Error { a::weir_runtime::x(::std::vec![::weir_runtime::y]) }
        };
        let out = rewrite_runtime_path(tokens, &quote!(::weir::runtime));
        assert_eq!(
            out.to_string(),
            quote! {
                use ::weir::runtime::prelude::*;
                fn f() -> ::weir::runtime::embed::Error { a::weir_runtime::x(::std::vec![::weir::runtime::y]) }
            }
            .to_string()
        );
    }
}
