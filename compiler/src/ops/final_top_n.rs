//! `final_top_n`: dedup and top-N per key where the key names a window upstream
//! (`RankDef::final_at`). Stateful and blocking: each partition's rows go out once, when the
//! watermark passes the window's end, so the output is an append stream (a TTL is moot
//! there). The `RankSpec` is `top_n`'s, with the window's end as its event time; the
//! runtime's `FinalTopNOp` holds the open partitions.

use quote::quote;

use super::top_n::{rank_code, RankCode};
use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::ir::OpId;
use crate::sema::RankDef;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "final_top_n",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "keeps the first, last or best N rows per key where the key names a window; emits them when it closes",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &RankDef) -> Emitted {
    let RankCode {
        spec,
        metrics,
        item,
        n,
        newer_wins_ties,
        with_ttl,
    } = rank_code(cx, op, def);
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(move |next| {
            if newer_wins_ties {
                quote!(FinalTopNOp::<#spec, _>::new(#metrics.clone(), #n, #next).newer_wins_ties() #with_ttl)
            } else {
                quote!(FinalTopNOp::<#spec, _>::new(#metrics.clone(), #n, #next) #with_ttl)
            }
        })),
    }
}
