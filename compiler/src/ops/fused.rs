//! `fused`: a chain of filters and selects compiled into one function (made by the
//! `fuse_stateless` pass). Emitted as a `Filter` (only conditions), a `Map` (only projections)
//! or a `FilterMap` (both): the record flows through every step in straight-line code. A record
//! whose evaluation overflows goes to the dead letters (so such a chain filters).

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::expr::{may_overflow, overflow_check};
use crate::ir::{OpId, Stateless};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "fused",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    checkpointed: false,
    doc: "filters and selects composed into one function",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, steps: &[Stateless]) -> Emitted {
    let rt = cx.rt.clone();
    let input = cx.input_type(op);
    let output = cx.output_type(op);
    let name = cx.namer.fresh(&format!("{}_fused", cx.names.prefix(op)));
    let metrics = cx.metrics_handle(op);
    let has_filter = steps.iter().any(|s| matches!(s, Stateless::Filter(_)));
    let n_selects = steps
        .iter()
        .filter(|s| matches!(s, Stateless::Select(..)))
        .count();
    let checked = steps.iter().any(|s| match s {
        Stateless::Filter(pred) => may_overflow(pred),
        Stateless::Select(items, _) => items.iter().any(|(_, e)| may_overflow(e)),
    });
    // A record whose evaluation overflows goes to the dead letters: the function returns
    // `false`/`None` for it, so a projection-only chain becomes a `FilterMap` too.
    let filters = has_filter || checked;
    let overflows_param = format_ident!("overflows");
    let input_record = format_ident!("r");
    let reject = if n_selects == 0 {
        quote!(return false;)
    } else {
        quote!(return None;)
    };
    let mut body = Vec::new();
    // The record structs of selects before the last, then the function.
    let mut structs = Vec::new();
    // `r` is always a reference to the current record; `owned` names the last select's value.
    let mut current = format_ident!("r");
    let mut owned = None;
    let mut selects_seen = 0;
    // `(index in body, name)` of each `let rK = &sK;`.
    let mut bindings = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        match step {
            Stateless::Filter(pred) => {
                let cond = cx.expr(current.clone()).condition(pred);
                let check =
                    overflow_check(&rt, [pred], &overflows_param, &input_record, reject.clone());
                if check.is_empty() {
                    body.push(quote!(if !(#cond) { #reject }));
                } else {
                    body.push(quote!(let keep = #cond; #check if !keep { #reject }));
                }
            }
            Stateless::Select(items, ty) => {
                selects_seen += 1;
                let record_ty = if selects_seen == n_selects {
                    output.clone()
                } else {
                    let struct_name = cx
                        .namer
                        .fresh(&format!("{}Step{k}Record", cx.names.camel(op)));
                    structs.push(crate::codegen::records::record_struct(
                        &rt,
                        &struct_name,
                        &ty.schema,
                    ));
                    quote!(#struct_name)
                };
                let value = format_ident!("s{}", k);
                let build = cx.build_record(&record_ty, ty, items, current.clone());
                body.push(quote!(let #value: #record_ty = #build;));
                body.push(overflow_check(
                    &rt,
                    items.iter().map(|(_, e)| e),
                    &overflows_param,
                    &input_record,
                    reject.clone(),
                ));
                // A reference for the steps after this one (dropped below unless one reads it).
                let next = format_ident!("r{}", k);
                bindings.push((body.len(), next.clone()));
                body.push(quote!(let #next = &#value;));
                current = next;
                owned = Some(value);
            }
        }
    }
    for (at, name) in bindings {
        if !body[at + 1..].iter().any(|later| mentions(later, &name)) {
            body[at] = quote!();
        }
    }
    let mut setup = Vec::new();
    let mut captures = vec![metrics.clone()];
    // The function's extra parameter and how the stage passes it.
    let (param, call) = if checked {
        let (overflows, overflows_setup) = cx.overflows(op);
        setup.push(overflows_setup);
        captures.push(overflows.clone());
        (
            quote!(, overflows: &#rt::overflow::Overflows),
            quote!({
                let overflows = #overflows.clone();
                move |r: &#input| #name(r, &overflows)
            }),
        )
    } else {
        (quote!(), quote!(#name))
    };
    let (item, stage): (
        _,
        Box<dyn Fn(proc_macro2::TokenStream) -> proc_macro2::TokenStream>,
    ) = match (filters, owned) {
        (true, None) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input #param) -> bool { #(#body)* true }
            },
            Box::new(move |next| quote!(Filter::new(#metrics.clone(), #call, #next))),
        ),
        (false, Some(value)) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input #param) -> #output { #(#body)* #value }
            },
            Box::new(move |next| quote!(Map::new(#metrics.clone(), #call, #next))),
        ),
        (_, Some(value)) => (
            quote! {
                #[inline(always)]
                fn #name(r: &#input #param) -> ::std::option::Option<#output> { #(#body)* Some(#value) }
            },
            Box::new(move |next| quote!(FilterMap::new(#metrics.clone(), #call, #next))),
        ),
        (false, None) => (quote!(), Box::new(|next| next)),
    };
    structs.push(item);
    Emitted {
        items: structs,
        setup,
        captures,
        moves: Vec::new(),
        role: Role::Stage(stage),
    }
}

/// Whether `tokens` use the identifier `name` anywhere, inside groups too.
fn mentions(tokens: &TokenStream, name: &Ident) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(id) => id == *name,
        TokenTree::Group(g) => mentions(&g.stream(), name),
        _ => false,
    })
}
