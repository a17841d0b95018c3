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
    let input = cx.input_row_type(op);
    let output = cx.row_type(op);
    let updating = cx.input_updating(op).is_some();
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
