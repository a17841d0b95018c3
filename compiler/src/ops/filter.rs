//! `filter`: keeps records whose condition is true (null counts as false). Stateless.

use quote::quote;

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::EmitCx;
use crate::ir::OpId;
use crate::sema::TExpr;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "filter",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    blocking: false,
    doc: "keeps the records for which a condition holds",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, pred: &TExpr) -> Emitted {
    let input = cx.input_type(op);
    let name = cx.namer.fresh(&format!("{op}_filter"));
    let cond = cx.expr(quote::format_ident!("r")).condition(pred);
    let metrics = cx.metrics_handle(op);
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input) -> bool { #cond }
    };
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(Filter::new(#metrics.clone(), #name, #next)),
        )),
    }
}
