//! `group_aggregate`: keyed aggregation without a window over an append stream
//! (`aggregate by k { ... }`). Stateful, not blocking: its output is an updating stream, one
//! row per key, revised as records arrive (changes go out in mini-batches at watermarks,
//! ticks and barriers). The generated code is the window aggregate's (`aggregate.rs`, rows
//! without window bounds); the runtime's `GroupAggregateOp` holds the accumulators, and with
//! `ttl(...)` drops a key's once its last record is older than the TTL.

use quote::quote;

use super::aggregate::aggregate_code;
use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::ir::OpId;
use crate::sema::WindowAggregate;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "group_aggregate",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "aggregates per key without a window: an updating stream, one row per key",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, agg: &WindowAggregate) -> Emitted {
    let rt = cx.rt.clone();
    let code = aggregate_code(cx, op, agg);
    let (agg_ty, metrics, with_overflows) = (code.agg_ty, code.metrics, code.with_overflows);
    let with_ttl = agg.ttl.as_ref().map(super::top_n::ttl_call);
    Emitted {
        items: vec![code.item],
        setup: code.setup,
        captures: code.captures,
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(#rt::ops::GroupAggregateOp::<#agg_ty, _>::new(#metrics.clone(), #next) #with_overflows #with_ttl),
        )),
    }
}
