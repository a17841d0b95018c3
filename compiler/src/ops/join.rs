//! `join`: two streams joined on key equalities (plus an optional residual condition).
//! Interval joins match records whose times are within bounds, window joins records of the
//! same tumbling window, regular joins everything (state optionally expired by a TTL), lookup
//! joins each record against a table read from a file when the task starts. The emitter
//! generates a `JoinSpec` (or `LookupSpec`) impl; the runtime's join operators hold the state.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use weir_dsl::ast::JoinKind;

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::expr::field_type;
use crate::codegen::namer::{camel, field_ident};
use crate::codegen::records;
use crate::ir::OpId;
use crate::sema::types::Type;
use crate::sema::{Format, JoinDef, SourceDef, SourceKind};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "join",
    n_inputs: 2,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "joins two streams on equal keys: interval, window, or regular (state optionally expired by a TTL)",
};

/// A lookup join: one input, its table read from a file when the task starts (held, but not
/// checkpointed: read again on restart).
pub const LOOKUP_SPEC: OperatorSpec = OperatorSpec {
    name: "lookup_join",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: false,
    doc: "joins each record against a table read when the task starts",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &JoinDef, table: Option<&SourceDef>) -> Emitted {
    let rt = cx.rt.clone();
    let inputs = cx.graph.inputs(op);
    let left = cx.record_type(inputs[0].1);
    let output = cx.output_type(op);
    let out_schema = cx.graph.node(op).ty.schema.clone();
    let metrics = cx.metrics_handle(op);
    let prefix = format!("{}.", def.alias);
    let spec = cx.namer.fresh(&format!("{}Join", cx.names.camel(op)));
    let mut items = Vec::new();
    let mut captures = vec![metrics.clone()];
    let mut setup = Vec::new();

    // The joined side's record type: an upstream operator's, or the table's own struct.
    let (right, table_load) = match table {
        None => (cx.record_type(inputs[1].1), None),
        Some(source) if matches!(source.kind, SourceKind::Postgres { .. }) => {
            let record = cx
                .namer
                .fresh(&format!("{}TableRecord", camel(&source.name)));
            items.push(records::record_struct(&rt, &record, &source.ty.schema));
            let SourceKind::Postgres { url, query } = &source.kind else {
                unreachable!("matched above");
            };
            // Each field from its column, by position.
            let from_row = cx.namer.fresh(&format!("table_row_{}", source.name));
            let fields = source.ty.schema.fields.iter().enumerate().map(|(i, f)| {
                let id = field_ident(&f.name);
                let get = match f.ty {
                    Type::I64 | Type::Duration => quote!(c.i64(#i)),
                    Type::F64 => quote!(c.f64(#i)),
                    Type::Bool => quote!(c.bool(#i)),
                    Type::Timestamp => quote!(c.timestamp(#i)),
                    Type::String | Type::Null => quote!(c.text(#i)),
                    Type::Record(_) | Type::Array(_) => {
                        unreachable!("sema refuses nested fields in a PostgreSQL table")
                    }
                };
                if f.nullable {
                    quote!(#id: #get?)
                } else {
                    quote!(#id: c.required(#i, #get)?)
                }
            });
            items.push(quote! {
                fn #from_row(c: &#rt::sources::postgres::Columns<'_>) -> ::std::result::Result<#record, ::std::string::String> {
                    Ok(#record { #(#fields,)* })
                }
            });
            let name = source.name.clone();
            let n_fields = source.ty.schema.fields.len();
            let read = quote!(#rt::sources::postgres::read_table(#name, #url, #query, #n_fields, &dead_letters, #from_row));
            let reread = quote!(#read.map(Some));
            let table = read_table(
                &rt,
                op,
                &name,
                source.refresh_ms,
                (read, reread),
                &mut setup,
                &mut captures,
            );
            (quote!(#record), Some(table))
        }
        Some(source) => {
            let record = cx
                .namer
                .fresh(&format!("{}TableRecord", camel(&source.name)));
            items.push(records::record_struct(&rt, &record, &source.ty.schema));
            let format = match &source.kind {
                SourceKind::File { format, .. } => format.clone(),
                _ => Format::JSON,
            };
            let decode = cx.namer.fresh(&format!("decode_table_{}", source.name));
            items.push(records::decoder(
                &rt,
                &decode,
                &record,
                &source.ty.schema,
                &source.ty.schema,
                &format,
                None,
            ));
            let path = match &source.kind {
                SourceKind::File { path, .. } => path.clone(),
                _ => String::new(),
            };
            let header = matches!(format, Format::Csv { header: true, .. });
            let make = if header {
                quote!(#decode)
            } else {
                quote!(#rt::sources::lines::by_position(#decode))
            };
            // A CSV table's quoted cells may hold line ends, as a CSV source's may.
            let quotes = match format {
                Format::Csv { delimiter, .. } => quote!(Some(#delimiter)),
                _ => quote!(None),
            };
            let name = source.name.clone();
            let read = quote!(#rt::sources::lines::read_all(#name, ::std::path::Path::new(#path), #header, #quotes, &dead_letters, #make));
            // Read again only when the file changed (its malformed lines are dead letters
            // once), from the stamp the first read took.
            let reread = quote!(#rt::sources::lines::read_if_changed(#name, ::std::path::Path::new(#path), #header, #quotes, &dead_letters, #make, &mut stamp));
            let read = match source.refresh_ms {
                Some(_) => {
                    setup.push(quote!(let mut stamp = None;));
                    quote!(#reread.map(::std::option::Option::unwrap_or_default))
                }
                None => read,
            };
            let table = read_table(
                &rt,
                op,
                &name,
                source.refresh_ms,
                (read, reread),
                &mut setup,
                &mut captures,
            );
            (quote!(#record), Some(table))
        }
    };

    // Keys: one as itself, several as a tuple; strings owned.
    let key_value = |gen: &mut crate::codegen::expr::ExprGen<'_>,
                     keys: &[crate::sema::TExpr]|
     -> (TokenStream, TokenStream) {
        let types: Vec<TokenStream> = keys.iter().map(|k| field_type(k.ty, false)).collect();
        let values: Vec<TokenStream> = keys
            .iter()
            .map(|k| crate::codegen::expr::unflagged(&rt, k, gen.coerce(k, k.ty, false)))
            .collect();
        if keys.len() == 1 {
            (types[0].clone(), values[0].clone())
        } else {
            (quote!((#(#types,)*)), quote!((#(#values,)*)))
        }
    };
    let (key_type, left_key) = key_value(&mut cx.expr(format_ident!("l")), &def.left_keys);
    let (_, right_key) = key_value(&mut cx.expr(format_ident!("r")), &def.right_keys);
    let time = |field: &Option<String>, var: &str| match field {
        Some(f) => {
            let f = field_ident(f);
            let v = format_ident!("{}", var);
            quote!(#v.#f)
        }
        None => quote!(0),
    };
    let left_time = time(&def.left_time, "l");
    let right_time = time(&def.right_time, "r");
    let condition = match &def.condition {
        Some(c) => {
            let c = crate::codegen::expr::unflagged(&rt, c, cx.join_expr(&prefix).condition(c));
            quote!(if !(#c) { return None; })
        }
        None => quote!(),
    };
    // Output: left fields from `l`, joined fields (`alias.f`, stored as `alias__f`) from `r`.
    // Fields projection pushdown removed from an input (nobody downstream reads them) are
    // left at their defaults.
    let n_left = def.left_ty.schema.fields.len();
    let input_schema = |i: usize| {
        crate::passes::projection_pushdown::edge_type(cx.graph, inputs[i].0, inputs[i].1).schema
    };
    let left_present = input_schema(0);
    let right_present = match table {
        None => input_schema(1),
        Some(source) => source.ty.schema.clone(),
    };
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    for (i, f) in out_schema.fields.iter().enumerate() {
        let id = field_ident(&f.name);
        if i < n_left {
            let v = if left_present.field(&f.name).is_some() {
                quote!(::std::clone::Clone::clone(&l.#id))
            } else {
                quote!(::std::default::Default::default())
            };
            matched.push(quote!(#id: #v));
            unmatched.push(quote!(#id: #v));
        } else if right_present.field(&f.name[prefix.len()..]).is_none() {
            matched.push(quote!(#id: ::std::default::Default::default()));
            unmatched.push(quote!(#id: ::std::default::Default::default()));
        } else {
            let src = field_ident(&f.name[prefix.len()..]);
            let right_nullable = def
                .right_ty
                .schema
                .field(&f.name[prefix.len()..])
                .is_some_and(|(_, rf)| rf.nullable);
            let v = quote!(::std::clone::Clone::clone(&r.#src));
            let v = if f.nullable && !right_nullable {
                quote!(Some(#v))
            } else {
                v
            };
            matched.push(quote!(#id: #v));
            let none_ty = field_type(f.ty, false);
            let _ = Type::Null;
            unmatched.push(quote!(#id: None::<#none_ty>));
        }
    }
    let left_only = if def.left_outer {
        quote!(#output { #(#unmatched,)* })
    } else {
        quote!(unreachable!("an inner join never emits unmatched rows"))
    };
    let left_outer = def.left_outer;
    let role_stage: Box<dyn Fn(TokenStream) -> TokenStream> = match def.kind {
        JoinKind::Lookup => {
            let build_table = cx.namer.fresh(&format!("{}_table", cx.names.prefix(op)));
            items.push(quote! {
                pub struct #spec;
                impl #rt::ops::LookupSpec for #spec {
                    type In = #left;
                    type Row = #right;
                    type Key = #key_type;
                    type Out = #output;
                    #[inline(always)]
                    fn key(l: &#left) -> Self::Key { #left_key }
                    #[inline(always)]
                    fn join(l: &#left, r: &#right) -> ::std::option::Option<#output> {
                        #condition
                        Some(#output { #(#matched,)* })
                    }
                    fn left_only(l: &#left) -> #output { #left_only }
                }
                fn #build_table(rows: ::std::vec::Vec<#right>) -> #rt::hash::FastMap<#key_type, ::std::vec::Vec<#right>> {
                    let mut table: #rt::hash::FastMap<#key_type, ::std::vec::Vec<#right>> = ::std::default::Default::default();
                    for r in rows {
                        let key = { let r = &r; #right_key };
                        table.entry(key).or_default().push(r);
                    }
                    table
                }
            });
            let (load, feed) = table_load.expect("a lookup join has a table");
            let metrics = metrics.clone();
            // A table read again (`refresh:`) takes each new version on a tick.
            let refreshed = feed.map(|feed| quote!(.refreshed_by(#feed.clone(), #build_table)));
            Box::new(
                move |next| quote!(#rt::ops::LookupJoin::<#spec, _>::new(#metrics.clone(), #build_table(#load.clone()), #left_outer, #next)#refreshed),
            )
        }
        kind => {
            items.push(quote! {
                pub struct #spec;
                impl JoinSpec for #spec {
                    type Left = #left;
                    type Right = #right;
                    type Key = #key_type;
                    type Out = #output;
                    #[inline(always)]
                    fn left_key(l: &#left) -> Self::Key { #left_key }
                    #[inline(always)]
                    fn right_key(r: &#right) -> Self::Key { #right_key }
                    #[inline(always)]
                    fn left_time(l: &#left) -> i64 { #left_time }
                    #[inline(always)]
                    fn right_time(r: &#right) -> i64 { #right_time }
                    #[inline(always)]
                    fn join(l: &#left, r: &#right) -> ::std::option::Option<#output> {
                        #condition
                        Some(#output { #(#matched,)* })
                    }
                    fn left_only(l: &#left) -> #output { #left_only }
                }
            });
            cx.join_specs.insert(op, spec.clone());
            let metrics = metrics.clone();
            let spec = spec.clone();
            match kind {
                JoinKind::Interval => {
                    let (lower, upper) = def.within.unwrap_or((0, 0));
                    Box::new(
                        move |next| quote!(#rt::ops::IntervalJoin::<#spec, _>::new(#metrics.clone(), #lower, #upper, #left_outer, #next)),
                    )
                }
                JoinKind::Window => {
                    let size = def.window_ms.unwrap_or(1);
                    Box::new(
                        move |next| quote!(#rt::ops::WindowJoin::<#spec, _>::new(#metrics.clone(), #size, #left_outer, #next)),
                    )
                }
                _ => {
                    let ttl = match def.ttl_ms {
                        Some(t) => quote!(Some(#t)),
                        None => quote!(None),
                    };
                    let outer = if left_outer {
                        quote!(.left_outer())
                    } else {
                        quote!()
                    };
                    let clock = if def.ttl_processing && def.ttl_ms.is_some() {
                        quote!(.on_processing_time())
                    } else {
                        quote!()
                    };
                    Box::new(
                        move |next| quote!(#rt::ops::RegularJoin::<#spec, _>::new(#metrics.clone(), #ttl, #next)#outer #clock),
                    )
                }
            }
        }
    };
    Emitted {
        items,
        setup,
        captures,
        moves: Vec::new(),
        role: Role::Stage(role_stage),
    }
}

/// The setup that reads lookup table `name` with `read` (an expression of its rows, which may
/// use `dead_letters`) when the pipeline starts, before any sink opens its output, into
/// `table_<op>`; and with `refresh:` the runtime's `TableFeed` that reads it again that often
/// with `reread` (its rows, or `None` when unchanged) (`table_feed_<op>`). Returns both names.
fn read_table(
    rt: &TokenStream,
    op: OpId,
    name: &str,
    refresh_ms: Option<i64>,
    (read, reread): (TokenStream, TokenStream),
    setup: &mut Vec<TokenStream>,
    captures: &mut Vec<proc_macro2::Ident>,
) -> (TokenStream, Option<proc_macro2::Ident>) {
    captures.push(format_ident!("dead_letters"));
    setup.push(quote!(let dead_letters = rt.dead_letters().clone();));
    let table = format_ident!("table_{}", op.index());
    setup.push(quote!(let #table = #read?;));
    captures.push(table.clone());
    let Some(every) = refresh_ms else {
        return (quote!(#table), None);
    };
    let feed = format_ident!("table_feed_{}", op.index());
    setup.push(quote! {
        let #feed = {
            let dead_letters = dead_letters.clone();
            #rt::ops::TableFeed::start(#name, #every, #table.clone(), move || #reread)?
        };
    });
    captures.push(feed.clone());
    (quote!(#table), Some(feed))
}
