//! `filter`: keeps records whose condition is true (null counts as false). Stateless. A
//! record whose condition overflows goes to the dead letters.

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::expr::{may_overflow, overflow_check};
use crate::ir::OpId;
use crate::sema::TExpr;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "filter",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    checkpointed: false,
    doc: "keeps the records for which a condition holds",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, pred: &TExpr) -> Emitted {
    let rt = cx.rt.clone();
    let input = cx.input_type(op);
    let name = cx.namer.fresh(&format!("{}_filter", cx.names.prefix(op)));
    let cond = cx.expr(quote::format_ident!("r")).condition(pred);
    let metrics = cx.metrics_handle(op);
    if !may_overflow(pred) {
        let item = quote! {
            #[inline(always)]
            fn #name(r: &#input) -> bool { #cond }
        };
        return Emitted {
            items: vec![item],
            setup: Vec::new(),
            captures: vec![metrics.clone()],
            moves: Vec::new(),
            role: Role::Stage(Box::new(
                move |next| quote!(Filter::new(#metrics.clone(), #name, #next)),
            )),
        };
    }
    // A record whose condition overflows goes to the dead letters.
    let (overflows, setup) = cx.overflows(op);
    let check = overflow_check(
        &rt,
        [pred],
        &format_ident!("overflows"),
        &format_ident!("r"),
        quote!(return false;),
    );
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input, overflows: &#rt::overflow::Overflows) -> bool {
            let keep = #cond;
            #check
            keep
        }
    };
    Emitted {
        items: vec![item],
        setup: vec![setup],
        captures: vec![metrics.clone(), overflows.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(move |next| {
            quote!(Filter::new(#metrics.clone(), {
                let overflows = #overflows.clone();
                move |r: &#input| #name(r, &overflows)
            }, #next))
        })),
    }
}
