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
//! Generated code names the runtime by the path in the emit context ([`EmitCx::rt`]):
//! `::weir_runtime` in a binary's crate, `::weir::runtime` (the `weir` facade) in a user's
//! crate that embeds a pipeline ([`super::context::FACADE_RUNTIME`]).
//!
//! [`EmitCx::rt`]: super::context::EmitCx::rt

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub use super::context::{Form, MemoryIo};

/// The end of the generated code for a library form: the entry points, instead of `main`.
pub fn entry_points(
    rt: &TokenStream,
    form: &Form<'_>,
    memory: &MemoryIo,
    preview: bool,
    generator: bool,
) -> TokenStream {
    match form {
        // A preview build (`weir run --limit`) says so before it parses `--limit`, and a
        // pipeline without a Nexmark source refuses `--events` rather than ignore it.
        Form::Binary => quote! {
            fn main() -> ::std::process::ExitCode {
                #rt::run::Binary { preview: #preview, generator: #generator }.main(build)
            }
        },
        Form::Library => quote! {
            /// Runs the pipeline with its own sources and sinks; returns when the input ends.
            pub fn run(args: #rt::run::RunArgs) -> ::std::result::Result<(), #rt::embed::Error> {
                #rt::embed::run(args, build)
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
                pub struct Inputs { #(pub #in_fields: #rt::embed::Records<#in_types>,)* }
                /// The rows each sink received.
                #[derive(Debug, Default)]
                pub struct Outputs { #(pub #out_fields: ::std::vec::Vec<#out_types>,)* }
                struct Io {
                    #(#io_in: #rt::embed::Input<#in_types>,)*
                    #(#io_out: #rt::embed::Output<#out_types>,)*
                }
                /// Runs the pipeline on `inputs` and returns what every sink received.
                pub fn run(args: #rt::run::RunArgs, inputs: Inputs) -> ::std::result::Result<Outputs, #rt::embed::Error> {
                    let io = Io {
                        #(#io_in: #rt::embed::input(inputs.#in_fields),)*
                        #(#io_out: ::std::default::Default::default(),)*
                    };
                    #rt::embed::run(args, |rt| build(rt, &io))?;
                    Ok(Outputs { #(#out_fields: #rt::embed::take_output(&io.#io_out),)* })
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
