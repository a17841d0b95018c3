//! The in-memory forms of the source and sink operators ([`Form::Memory`]): a file or stdin
//! source reads Rust records handed to `run` (`Inputs`), and every sink collects its rows
//! into a `Vec` of `Outputs`, so a pipeline embedded in a user's crate can be unit-tested
//! without files. `ops/source.rs` and `ops/sink.rs` call these in that form.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{Emitted, Role};
use crate::codegen::context::{EmitCx, Form};
use crate::codegen::namer::{camel, field_ident};
use crate::ir::OpId;
use crate::sema::types::Type;
use crate::sema::{SinkDef, SourceDef};

/// A file or stdin source in [`Form::Memory`]: reads the records of `Inputs::<source>`.
pub fn memory_source(cx: &mut EmitCx<'_>, op: OpId, def: &SourceDef) -> Emitted {
    let rt = cx.rt.clone();
    let ty = cx.graph.node(op).ty.clone();
    let name = def.name.as_str();
    let record = cx
        .names
        .record(op)
        .expect("naming pass: a source names its records");
    cx.set_output_type(op, quote!(#record));
    let mut items = vec![crate::codegen::records::record_struct(
        &rt, &record, &ty.schema,
    )];
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
            // (A nested field is left to rustc: its type is a generated struct the Rust
            // type's field must be.)
            for f in def.ty.schema.fields.iter().filter(|f| !f.ty.is_nested()) {
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
                        #rt::embed::has_field::<#path>(#fname, #rt::embed::FieldType::#t, #nullable),
                        #msg
                    );
                });
            }
            quote!(#path)
        }
        None => {
            let full = format_ident!("{}Input", camel(name));
            items.push(crate::codegen::records::record_struct(
                &rt,
                &full,
                &def.ty.schema,
            ));
            quote!(#full)
        }
    };
    let project = cx.namer.fresh(&format!("project_{name}"));
    let fields = ty.schema.fields.iter().map(|f| {
        let id = field_ident(&f.name);
        let t = crate::codegen::expr::field_type(f.ty, f.nullable);
        quote!(#id: <_ as #rt::embed::Field<#t>>::get(&r.#id))
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
            let range = crate::codegen::records::EventTimeCheck {
                field: time,
                range: def.event_time_range,
            }
            .range_tokens(&rt);
            quote!(#rt::formats::time::check_event_time(r.#field, #time, #range).map(|_| ()))
        }
        _ => quote!({
            let _ = r;
            Ok(())
        }),
    };
    items.push(quote! {
        fn #check(r: &#record) -> ::std::result::Result<(), #rt::formats::DecodeError> { #check_body }
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
                #rt::embed::run_iter(#source_name, #rt::embed::take_input(&#input_var), &#metrics, &#dead_var, #project, #check, #event_time, #chain)
            }
        })),
    }
}

/// A sink in [`Form::Memory`]: collects its rows (changes, for an updating stream) into
/// `Outputs::<name>`.
pub fn memory_sink(cx: &mut EmitCx<'_>, op: OpId, _def: &SinkDef) -> Emitted {
    let rt = cx.rt.clone();
    let row = cx.input_type(op);
    let metrics = cx.metrics_handle(op);
    let name = crate::codegen::names::sink_name(cx.graph, op);
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
        role: Role::Leaf(quote!(#rt::embed::Collect::new(#metrics.clone(), #out.clone()))),
    }
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
            Type::Record(_) | Type::Array(_) => unreachable!("nested fields are filtered out"),
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
        Type::Record(_) | Type::Array(_) => "a nested type",
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
