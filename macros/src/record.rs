//! `#[derive(weir::Record)]`: maps a struct's fields to weir types and implements
//! `weir::Record`: the field list (which pipelines binding a schema to the type check at
//! compile time) and JSON/CSV encoders and decoders. The codecs are the compiler's own
//! straight-line record codecs (`weir_compiler::codegen::records`), the same a pipeline's file
//! sources and sinks use.
//!
//! Field types: `i64`, `f64`, `bool`, `String`, and `Option` of these; an `i64` marked
//! `#[weir(timestamp)]` is a timestamp (milliseconds since the epoch).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use weir_compiler::codegen::context::{runtime_path, FACADE_RUNTIME};
use weir_compiler::codegen::records;
use weir_compiler::sema::types::{Field, Schema, Type};
use weir_compiler::sema::Format;

pub fn expand(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "`#[derive(weir::Record)]` does not support generic types",
        ));
    }
    let fields = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => &named.named,
        _ => {
            return Err(syn::Error::new(
                name.span(),
                "`#[derive(weir::Record)]` needs a struct with named fields",
            ))
        }
    };
    let mut schema = Schema::default();
    let mut errors: Option<syn::Error> = None;
    for f in fields {
        let ident = f.ident.as_ref().expect("named fields have names");
        match field(f) {
            Ok((ty, nullable)) => schema.fields.push(Field {
                name: ident.to_string(),
                ty,
                nullable,
            }),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    // A crate deriving `Record` depends on `weir`: the runtime through the facade.
    let rt = runtime_path(FACADE_RUNTIME);
    let record = quote!(#name);
    let (json_enc, csv_enc, json_dec, csv_dec) = (
        format_ident!("encode_json"),
        format_ident!("encode_csv"),
        format_ident!("decode_json"),
        format_ident!("decode_csv"),
    );
    let csv = Format::Csv {
        header: false,
        delimiter: b',',
        timestamps: Default::default(),
    };
    let codecs = [
        records::encoder(&rt, &json_enc, &record, &schema, &Format::JSON),
        records::encoder(&rt, &csv_enc, &record, &schema, &csv),
        records::decoder(&rt, &json_dec, name, &schema, &schema, &Format::JSON, None),
        records::decoder(&rt, &csv_dec, name, &schema, &schema, &csv, None),
    ];
    // What the decoders write into (every field, when they succeed); the type need not
    // implement `Default`, only its fields' types do.
    let blank_fields = fields.iter().filter_map(|f| f.ident.as_ref());
    let blank = quote!(#name { #(#blank_fields: ::std::default::Default::default(),)* });
    let descs = schema.fields.iter().map(|f| {
        let n = &f.name;
        let t = format_ident!(
            "{}",
            match f.ty {
                Type::F64 => "F64",
                Type::Bool => "Bool",
                Type::String => "String",
                Type::Timestamp => "Timestamp",
                _ => "I64",
            }
        );
        let nullable = f.nullable;
        quote!(#rt::embed::FieldDesc { name: #n, ty: #rt::embed::FieldType::#t, nullable: #nullable })
    });
    let tokens = quote! {
        const _: () = {
            #(#codecs)*
            impl #rt::embed::Record for #name {
                const FIELDS: &'static [#rt::embed::FieldDesc] = &[#(#descs,)*];
                fn write_json(&self, out: &mut ::std::vec::Vec<u8>) {
                    #json_enc(self, out);
                    out.pop();
                }
                fn write_csv(&self, out: &mut ::std::vec::Vec<u8>) {
                    #csv_enc(self, out);
                    out.pop();
                }
                fn from_json(line: &str) -> ::std::result::Result<Self, #rt::formats::DecodeError> {
                    let mut record = #blank;
                    #json_dec(line, &mut record)?;
                    Ok(record)
                }
                fn from_csv(line: &str) -> ::std::result::Result<Self, #rt::formats::DecodeError> {
                    let mut record = #blank;
                    #csv_dec(line, &mut record)?;
                    Ok(record)
                }
            }
        };
    };
    Ok(tokens)
}

/// A field's weir type and nullability.
fn field(f: &syn::Field) -> syn::Result<(Type, bool)> {
    let mut timestamp = false;
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("weir")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("timestamp") {
                timestamp = true;
                Ok(())
            } else {
                Err(meta.error("unknown weir attribute; the one there is: `#[weir(timestamp)]`"))
            }
        })?;
    }
    let (inner, nullable) = match option_inner(&f.ty) {
        Some(inner) => (inner, true),
        None => (&f.ty, false),
    };
    let unsupported = || {
        syn::Error::new(
            f.ty.span(),
            format!(
                "a weir record cannot hold `{}`: use i64, f64, bool, String, or an Option of one of these (i64 with #[weir(timestamp)] for a timestamp)",
                quote!(#inner).to_string().replace(' ', "")
            ),
        )
    };
    let ty = match inner {
        syn::Type::Path(p) if p.qself.is_none() => {
            match p
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .as_deref()
            {
                Some("i64") if timestamp => Type::Timestamp,
                Some("i64") => Type::I64,
                Some("f64") => Type::F64,
                Some("bool") => Type::Bool,
                Some("String") => Type::String,
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    };
    if timestamp && ty != Type::Timestamp {
        return Err(syn::Error::new(
            f.ty.span(),
            "`#[weir(timestamp)]` goes on an `i64` (or `Option<i64>`) field: milliseconds since the epoch",
        ));
    }
    Ok((ty, nullable))
}

/// `T` of `Option<T>`.
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}
