//! `select`: builds a new record from expressions over the input. Stateless.

use quote::quote;

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::EmitCx;
use crate::ir::OpId;
use crate::sema::TExpr;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "select",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    blocking: false,
    doc: "computes a new record with the listed fields",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, items: &[(String, TExpr)]) -> Emitted {
    let input = cx.input_type(op);
    let output = cx.output_type(op);
    let name = cx.namer.fresh(&format!("{op}_select"));
    let ty = cx.graph.node(op).ty.clone();
    let build = cx.build_record(&output, &ty, items, quote::format_ident!("r"));
    let metrics = cx.metrics_handle(op);
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input) -> #output { #build }
    };
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(Map::new(#metrics.clone(), #name, #next)),
        )),
    }
}
