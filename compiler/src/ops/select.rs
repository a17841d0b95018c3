//! `select`: builds a new record from expressions over the input. Stateless. A record whose
//! expressions overflow goes to the dead letters (on an updating stream: the change).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::expr::{may_overflow, overflow_check};
use crate::ir::OpId;
use crate::sema::TExpr;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "select",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    checkpointed: false,
    doc: "computes a new record with the listed fields",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, items: &[(String, TExpr)]) -> Emitted {
    let input = cx.input_row_type(op);
    let output = cx.row_type(op);
    let updating = cx.input_updating(op).is_some();
    let name = cx.namer.fresh(&format!("{}_select", cx.names.prefix(op)));
    let ty = cx.graph.node(op).ty.clone();
    let build = cx.build_record(&output, &ty, items, quote::format_ident!("r"));
    let metrics = cx.metrics_handle(op);
    if items.iter().any(|(_, e)| may_overflow(e)) {
        return emit_checked(cx, op, &input, &output, items, build, updating);
    }
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input) -> #output { #build }
    };
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(move |next| {
            if updating {
                // On an updating stream the projection maps each change's row.
                quote!(Map::new(#metrics.clone(), |c: &Change<#input>| match c {
                    Change::Upsert(r) => Change::Upsert(#name(r)),
                    Change::Delete(r) => Change::Delete(#name(r)),
                }, #next))
            } else {
                quote!(Map::new(#metrics.clone(), #name, #next))
            }
        })),
    }
}

/// A select whose expressions can overflow: a `FilterMap` that sends a record whose
/// evaluation overflowed to the dead letters instead of passing it on.
fn emit_checked(
    cx: &mut EmitCx<'_>,
    op: OpId,
    input: &TokenStream,
    output: &TokenStream,
    items: &[(String, TExpr)],
    build: TokenStream,
    updating: bool,
) -> Emitted {
    let rt = cx.rt.clone();
    let name = cx
        .namer
        .fresh(&format!("{}_select_checked", cx.names.prefix(op)));
    let metrics = cx.metrics_handle(op);
    let (overflows, setup) = cx.overflows(op);
    let check = overflow_check(
        &rt,
        items.iter().map(|(_, e)| e),
        &format_ident!("overflows"),
        &format_ident!("r"),
        quote!(return None;),
    );
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input, overflows: &#rt::overflow::Overflows) -> ::std::option::Option<#output> {
            let out = #build;
            #check
            Some(out)
        }
    };
    let input = input.clone();
    Emitted {
        items: vec![item],
        setup: vec![setup],
        captures: vec![metrics.clone(), overflows.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(move |next| {
            if updating {
                quote!(FilterMap::new(#metrics.clone(), {
                    let overflows = #overflows.clone();
                    move |c: &Change<#input>| match c {
                        Change::Upsert(r) => #name(r, &overflows).map(Change::Upsert),
                        Change::Delete(r) => #name(r, &overflows).map(Change::Delete),
                    }
                }, #next))
            } else {
                quote!(FilterMap::new(#metrics.clone(), {
                    let overflows = #overflows.clone();
                    move |r: &#input| #name(r, &overflows)
                }, #next))
            }
        })),
    }
}
