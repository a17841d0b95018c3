//! Nested record and array types in generated code.
//!
//! A nested record type (`payload: { user: { id: i64 } }`) becomes one struct per distinct
//! structure, named from the structure itself (`Nested` and a stable hash of its text), so any
//! record holding the same structure holds the same Rust type and a `select` copies it as is. An
//! array is a `Vec` of its element's field type. Each struct carries its JSON reader and
//! writer, called by the records' decoders and encoders (`records.rs`) for its fields.
//!
//! Inside nested records, timestamps are read in the default forms (text or epoch
//! milliseconds) and written as the default text: a format's `timestamps:` applies to
//! top-level fields only.

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::expr::field_type;
use super::namer::field_ident;
use crate::ir::Dataflow;
use crate::sema::types::{Schema, Type};

/// The struct name of a nested record type: `Nested` and 16 hex digits of a hash of the
/// type's text (FNV-1a, so the name is the same in every build).
pub fn struct_name(ty: Type) -> Ident {
    let text = ty.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format_ident!("Nested{:016x}", hash)
}

/// Every nested record type `ty` holds, itself included, into `out` by struct name.
fn collect(ty: Type, out: &mut BTreeMap<String, Type>) {
    match ty {
        Type::Record(record) => {
            out.insert(struct_name(ty).to_string(), ty);
            for f in &record.fields {
                collect(f.ty, out);
            }
        }
        Type::Array(array) => collect(array.element, out),
        _ => {}
    }
}

/// The nested record types of `schema`, by struct name.
pub fn of_schema(schema: &Schema, out: &mut BTreeMap<String, Type>) {
    for f in &schema.fields {
        collect(f.ty, out);
    }
}

/// The definitions of every nested record type of the graph's records (none for a flat
/// pipeline), in the order of their names.
pub fn definitions(rt: &TokenStream, graph: &Dataflow) -> TokenStream {
    let mut types = BTreeMap::new();
    for op in graph.ops() {
        let node = graph.node(op);
        of_schema(&node.ty.schema, &mut types);
        if let crate::ir::Op::Source { def, .. } = &node.op {
            of_schema(&def.ty.schema, &mut types);
        }
    }
    let defs = types.values().map(|ty| definition(rt, *ty));
    quote!(#(#defs)*)
}

/// `pub struct NestedX { ... }` with its state encoding and JSON reader and writer.
fn definition(rt: &TokenStream, ty: Type) -> TokenStream {
    let Type::Record(record) = ty else {
        return TokenStream::new();
    };
    let name = struct_name(ty);
    let doc = format!(" `{ty}`");
    let fields = record.fields.iter().map(|f| {
        let id = field_ident(&f.name);
        let t = field_type(f.ty, f.nullable);
        quote!(pub #id: #t)
    });
    let names: Vec<Ident> = record.fields.iter().map(|f| field_ident(&f.name)).collect();
    let slots: Vec<Ident> = (0..record.fields.len())
        .map(|i| format_ident!("slot_{}", i))
        .collect();
    let arms = record.fields.iter().zip(&slots).map(|(f, slot)| {
        let key = &f.name;
        let read = read_value(rt, f.ty, f.nullable);
        quote!(#key => #slot = Some(#read.map_err(|e| e.in_field(#key))?),)
    });
    let finish = record.fields.iter().zip(&slots).map(|(f, slot)| {
        let id = field_ident(&f.name);
        let msg = format!("missing field `{}`", f.name);
        if f.nullable {
            quote!(#id: #slot.unwrap_or(None))
        } else {
            quote!(#id: match #slot { Some(v) => v, None => return Err(DecodeError::new(#msg)) })
        }
    });
    let writes = record.fields.iter().enumerate().map(|(i, f)| {
        let mut prefix = vec![if i == 0 { b'{' } else { b',' }];
        super::records::json_key(&mut prefix, &f.name);
        let prefix = proc_macro2::Literal::byte_string(&prefix);
        let id = field_ident(&f.name);
        let write = write_value(f.ty, f.nullable, quote!(&self.#id));
        quote! {
            out.extend_from_slice(#prefix);
            #write;
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct #name { #(#fields,)* }
        #rt::state_struct!(#name { #(#names),* });
        impl #name {
            /// Reads the record from a JSON object; errors name the path of the field.
            pub fn read_json(value: #rt::formats::json::JsonValue<'_>) -> ::std::result::Result<Self, #rt::formats::DecodeError> {
                use #rt::formats::{json, DecodeError};
                #(let mut #slots = None;)*
                json::for_each_field(value.object()?, |member, value| {
                    match member {
                        #(#arms)*
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok(#name { #(#finish,)* })
            }
            /// Appends the record as a JSON object.
            pub fn write_json(&self, out: &mut ::std::vec::Vec<u8>) {
                use #rt::formats::json;
                #(#writes)*
                out.push(b'}');
            }
        }
    }
}

/// An expression of type `Result<T, DecodeError>` reading the JSON value `value` (in scope)
/// as a value of the field type of (`ty`, `nullable`), in the default timestamp forms.
pub fn read_value(rt: &TokenStream, ty: Type, nullable: bool) -> TokenStream {
    let plain = read_plain(rt, ty);
    if nullable {
        quote!(if value.is_null() { Ok(None) } else { #plain.map(Some) })
    } else {
        quote!(if value.is_null() { Err(#rt::formats::DecodeError::new("null in a field that is not optional")) } else { #plain })
    }
}

/// [`read_value`] of a value that is not null.
pub fn read_plain(rt: &TokenStream, ty: Type) -> TokenStream {
    match ty {
        Type::I64 | Type::Duration => quote!(value.as_i64()),
        Type::F64 => quote!(value.as_f64()),
        Type::Bool => quote!(value.as_bool()),
        Type::Timestamp => quote!(value.as_timestamp()),
        Type::String | Type::Null => quote!(value.as_string()),
        Type::Record(_) => {
            let name = struct_name(ty);
            quote!(#name::read_json(value))
        }
        Type::Array(array) => {
            let element = read_value(rt, array.element, array.nullable);
            quote!(#rt::formats::json::read_array(value, |value| #element))
        }
    }
}

/// An expression of type `String`: the value `v` (a reference to a nested record or array)
/// as JSON text, for checksums and for formats that hold it as text.
pub fn json_text(rt: &TokenStream, ty: Type, v: TokenStream) -> TokenStream {
    let write = write_value(ty, false, v);
    quote!({
        use #rt::formats::json;
        let mut out = ::std::vec::Vec::new();
        #write;
        ::std::string::String::from_utf8(out).unwrap_or_default()
    })
}

/// A statement appending the value `v` (a reference to a field of (`ty`, `nullable`)) to
/// `out` as JSON, timestamps in the default text form.
pub fn write_value(ty: Type, nullable: bool, v: TokenStream) -> TokenStream {
    if nullable {
        let inner = write_value(ty, false, quote!(v));
        return quote!(match #v { Some(v) => { #inner; } None => json::write_null(out) });
    }
    match ty {
        Type::I64 | Type::Duration => quote!(json::write_i64(out, *#v)),
        Type::F64 => quote!(json::write_f64(out, *#v)),
        Type::Bool => quote!(json::write_bool(out, *#v)),
        Type::Timestamp => quote!(json::write_timestamp(out, *#v)),
        Type::String | Type::Null => quote!(json::write_string(out, #v)),
        Type::Record(_) => quote!((#v).write_json(out)),
        Type::Array(array) => {
            let element = write_value(array.element, array.nullable, quote!(v));
            quote! {{
                out.push(b'[');
                for (i, v) in (#v).iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    #element;
                }
                out.push(b']');
            }}
        }
    }
}
