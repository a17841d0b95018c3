//! `final_aggregate`: keyed aggregation without a window whose key names a window upstream
//! (`aggregate by window_end, k { ... }` over a window's rows; `WindowAggregate::final_at`).
//! Stateful and blocking: each group's row goes out once, final, when the watermark passes
//! the group's end, so the output is an append stream. The generated code is the window
//! aggregate's (`aggregate.rs`); the runtime's `FinalAggregateOp` holds the open groups.

use quote::quote;

use super::aggregate::aggregate_code;
use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::ir::OpId;
use crate::sema::WindowAggregate;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "final_aggregate",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "aggregates per key where the key names a window upstream; one final row per group when it closes",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, agg: &WindowAggregate) -> Emitted {
    let code = aggregate_code(cx, op, agg);
    let (agg_ty, metrics, with_overflows) = (code.agg_ty, code.metrics, code.with_overflows);
    Emitted {
        items: vec![code.item],
        setup: code.setup,
        captures: code.captures,
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(FinalAggregateOp::<#agg_ty, _>::new(#metrics.clone(), #next) #with_overflows),
        )),
    }
}
