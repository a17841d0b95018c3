//! `fused`: a chain of filters and selects compiled into one function (made by the
//! `fuse_stateless` pass). Emitted as a `Filter` (only conditions), a `Map` (only projections)
//! or a `FilterMap` (both): the record flows through every step in straight-line code.

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::EmitCx;
use crate::ir::{OpId, Stateless};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "fused",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    blocking: false,
    doc: "filters and selects composed into one function",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, steps: &[Stateless]) -> Emitted {
    let input = cx.input_type(op);
    let output = cx.output_type(op);
    let name = cx.namer.fresh(&format!("{op}_fused"));
    let metrics = cx.metrics_handle(op);
    let has_filter = steps.iter().any(|s| matches!(s, Stateless::Filter(_)));
    let n_selects = steps
        .iter()
        .filter(|s| matches!(s, Stateless::Select(..)))
        .count();
    let mut body = Vec::new();
    // `r` is always a reference to the current record; `owned` names the last select's value.
    let mut current = format_ident!("r");
    let mut owned = None;
    let mut selects_seen = 0;
    for (k, step) in steps.iter().enumerate() {
        match step {
            Stateless::Filter(pred) => {
                let cond = cx.expr(current.clone()).condition(pred);
                if n_selects == 0 {
                    body.push(quote!(if !(#cond) { return false; }));
                } else {
                    body.push(quote!(if !(#cond) { return None; }));
                }
            }
            Stateless::Select(items, ty) => {
                selects_seen += 1;
                let record_ty = if selects_seen == n_selects {
                    output.clone()
                } else {
                    let struct_name = cx.namer.fresh(&format!("Op{}Step{k}Record", op.index()));
                    cx.push_item(crate::codegen::records::record_struct(
                        &struct_name,
                        &ty.schema,
                    ));
                    quote!(#struct_name)
                };
                let value = format_ident!("s{}", k);
                let build = cx.build_record(&record_ty, ty, items, current.clone());
                body.push(quote!(let #value: #record_ty = #build;));
                let next = format_ident!("r{}", k);
                body.push(quote!(let #next = &#value;));
                current = next;
                owned = Some(value);
            }
        }
    }
    let (item, stage): (
        _,
        Box<dyn Fn(proc_macro2::TokenStream) -> proc_macro2::TokenStream>,
    ) = match (has_filter, owned) {
        (true, None) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input) -> bool { #(#body)* true }
            },
            Box::new(move |next| quote!(Filter::new(#metrics.clone(), #name, #next))),
        ),
        (false, Some(value)) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input) -> #output { #(#body)* #value }
            },
            Box::new(move |next| quote!(Map::new(#metrics.clone(), #name, #next))),
        ),
        (_, Some(value)) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input) -> ::std::option::Option<#output> { #(#body)* Some(#value) }
            },
            Box::new(move |next| quote!(FilterMap::new(#metrics.clone(), #name, #next))),
        ),
        (false, None) => (quote!(), Box::new(|next| next)),
    };
    let metrics = cx.metrics_handle(op);
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics],
        moves: Vec::new(),
        role: Role::Stage(stage),
    }
}
