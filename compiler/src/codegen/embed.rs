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

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote};

use super::namer::{camel, field_ident};
use super::EmitCx;
use crate::ir::{Op, OpId};
use crate::ops::{Emitted, Role};
use crate::sema::types::Type;
use crate::sema::{SinkDef, SourceDef};

/// What the generated code is.
#[derive(Clone, Copy, Debug, Default)]
pub enum Form<'a> {
    /// A binary's `main.rs`.
    #[default]
    Binary,
    /// A module body with `pub fn run(args)`.
    Library,
    /// A module body with `pub fn run(args, inputs) -> outputs`, records in memory.
    Memory {
        /// Source name → the Rust type (a path) its records have, for schemas bound to a
        /// `#[derive(weir::Record)]` type.
        records: &'a BTreeMap<String, String>,
    },
}

impl Form<'_> {
    pub fn is_memory(&self) -> bool {
        matches!(self, Form::Memory { .. })
    }
}

/// The in-memory inputs and outputs of a [`Form::Memory`] pipeline, gathered while emitting.
#[derive(Default)]
pub struct MemoryIo {
    /// `(field of Inputs, record type)`, one per file or stdin source.
    pub inputs: Vec<(Ident, TokenStream)>,
    /// `(field of Outputs, row type)`, one per sink.
    pub outputs: Vec<(Ident, TokenStream)>,
}

/// A file or stdin source in [`Form::Memory`]: reads the records of `Inputs::<source>`.
pub fn memory_source(cx: &mut EmitCx<'_>, op: OpId, def: &SourceDef) -> Emitted {
    let ty = cx.graph.node(op).ty.clone();
    let name = def.name.as_str();
    let record = cx.namer.fresh(&format!("{}Record", camel(name)));
    cx.set_output_type(op, quote!(#record));
    let mut items = vec![super::records::record_struct(&record, &ty.schema)];
    let bound = match cx.form {
        Form::Memory { records } => records.get(name).cloned(),
        _ => None,
    };
    // The caller's record type: the user's, or a generated struct of the whole schema.
    let full: TokenStream = match &bound {
        Some(text) => {
            let path: syn::Path = match syn::parse_str(text) {
                Ok(p) => p,
                Err(_) => {
                    let msg = format!("`{text}` is not a Rust type path");
                    items.push(quote!(::core::compile_error!(#msg);));
                    syn::parse_quote!(())
                }
            };
            // Every field of the schema must exist in the Rust type with the same type.
            for f in &def.ty.schema.fields {
                let (fname, nullable) = (&f.name, f.nullable);
                let t = field_type_variant(f.ty);
                let rust = rust_field_type(f.ty, nullable);
                let msg = format!(
                    "the Rust type `{text}` does not match the schema of source `{name}`: it needs a field `{fname}: {rust}` (weir `{}{}`)",
                    f.ty,
                    if nullable { "?" } else { "" }
                );
                items.push(quote! {
                    const _: () = ::core::assert!(
                        ::weir_runtime::embed::has_field::<#path>(#fname, ::weir_runtime::embed::FieldType::#t, #nullable),
                        #msg
                    );
                });
            }
            quote!(#path)
        }
        None => {
            let full = format_ident!("{}Input", camel(name));
            items.push(super::records::record_struct(&full, &def.ty.schema));
            quote!(#full)
        }
    };
    let project = cx.namer.fresh(&format!("project_{name}"));
    let fields = ty.schema.fields.iter().map(|f| {
        let id = field_ident(&f.name);
        let t = super::expr::field_type(f.ty, f.nullable);
        quote!(#id: <_ as ::weir_runtime::embed::Field<#t>>::get(&r.#id))
    });
    items.push(quote! {
        fn #project(r: &#full) -> #record { #record { #(#fields,)* } }
    });
    let input = format_ident!("input_{}", op.index());
    let field = field_ident(name);
    cx.memory.inputs.push((field.clone(), full));
    let field = format_ident!("in_{}", field);
    let event_time = match (def.watermark_ms, ty.time_field) {
        (Some(bound), Some(t)) => {
            let field = field_ident(&ty.schema.fields[t].name);
            quote!(Some(EventTime { time: |r: &#record| r.#field, max_out_of_orderness_ms: #bound }))
        }
        _ => quote!(None),
    };
    // Records from Rust are not decoded: their event time is checked against the range here.
    let check = cx.namer.fresh(&format!("check_{name}"));
    let check_body = match (def.watermark_ms, ty.time_field) {
        (Some(_), Some(t)) => {
            let time = &ty.schema.fields[t].name;
            let field = field_ident(time);
            let range = super::records::EventTimeCheck {
                field: time,
                range: def.event_time_range,
            }
            .range_tokens();
            quote!(::weir_runtime::formats::time::check_event_time(r.#field, #time, #range).map(|_| ()))
        }
        _ => quote!({
            let _ = r;
            Ok(())
        }),
    };
    items.push(quote! {
        fn #check(r: &#record) -> ::std::result::Result<(), ::weir_runtime::formats::DecodeError> { #check_body }
    });
    let dead = format_ident!("dead_letters_{}", op.index());
    let dead_setup = match &def.dead_letters {
        Some(path) => quote! {
            let #dead = rt.source_dead_letters(#path);
        },
        None => quote!(let #dead = rt.dead_letters().clone();),
    };
    let metrics = format_ident!("metrics");
    let input_var = input.clone();
    let dead_var = dead.clone();
    let source_name = name.to_string();
    Emitted {
        items,
        setup: vec![quote!(let #input = io.#field.clone();), dead_setup],
        captures: vec![metrics.clone(), input, dead],
        moves: Vec::new(),
        role: Role::Source(Box::new(move |chain, _instance| {
            quote! {
                ::weir_runtime::embed::run_iter(#source_name, ::weir_runtime::embed::take_input(&#input_var), &#metrics, &#dead_var, #project, #check, #event_time, #chain)
            }
        })),
    }
}

/// A sink in [`Form::Memory`]: collects its rows (changes, for an updating stream) into
/// `Outputs::<name>`.
pub fn memory_sink(cx: &mut EmitCx<'_>, op: OpId, _def: &SinkDef) -> Emitted {
    let row = cx.input_type(op);
    let metrics = cx.metrics_handle(op);
    let name = sink_name(cx, op);
    let field = field_ident(&name);
    let out = format_ident!("output_{}", op.index());
    let alias = format_ident!("{}Row", camel(&name));
    cx.memory.outputs.push((field.clone(), row.clone()));
    let field = format_ident!("out_{}", field);
    Emitted {
        items: vec![quote!(pub type #alias = #row;)],
        setup: vec![quote!(let #out = io.#field.clone();)],
        captures: vec![metrics.clone(), out.clone()],
        moves: Vec::new(),
        role: Role::Leaf(
            quote!(::weir_runtime::embed::Collect::new(#metrics.clone(), #out.clone())),
        ),
    }
}

/// A sink's field in `Outputs`: the name of the stream it sends (`sink alerts -> ...` is
/// `alerts`), with the sink's index when several sinks send the same stream (`alerts_2`).
fn sink_name(cx: &EmitCx<'_>, op: OpId) -> String {
    let sink_of = |op: OpId| match &cx.graph.node(op).op {
        Op::Sink(sink) => Some(sink),
        _ => None,
    };
    let Some(sink) = sink_of(op) else {
        unreachable!("sink_name is asked of sinks only");
    };
    let shared = cx
        .graph
        .ops()
        .into_iter()
        .filter_map(sink_of)
        .filter(|other| other.name == sink.name)
        .count()
        > 1;
    if shared {
        format!("{}_{}", sink.name, sink.index)
    } else {
        sink.name.clone()
    }
}

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

/// The variant of `weir_runtime::embed::FieldType` for a weir type.
fn field_type_variant(ty: Type) -> Ident {
    format_ident!(
        "{}",
        match ty {
            Type::I64 | Type::Duration | Type::Null => "I64",
            Type::F64 => "F64",
            Type::Bool => "Bool",
            Type::String => "String",
            Type::Timestamp => "Timestamp",
        }
    )
}

/// The Rust field type a derived record needs for a weir type (for messages).
fn rust_field_type(ty: Type, nullable: bool) -> String {
    let t = match ty {
        Type::I64 | Type::Duration | Type::Null => "i64",
        Type::F64 => "f64",
        Type::Bool => "bool",
        Type::String => "String",
        Type::Timestamp => "i64",
    };
    let t = if nullable {
        format!("Option<{t}>")
    } else {
        t.to_string()
    };
    if ty == Type::Timestamp {
        format!("{t}` marked `#[weir(timestamp)]")
    } else {
        t
    }
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
