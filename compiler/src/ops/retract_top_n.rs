//! `retract_top_n`: top-N per key over an updating stream (its upsert key is
//! `RankDef::retract_key`). Stateful, not blocking, one instance: a revised row leaves its
//! rank (found by the input's upsert key) and enters again at its new place, so every row is
//! kept, not only the N best. The emitter adds the input's upsert key (`UpsertKey`) to
//! `top_n`'s `RankSpec`; the runtime's `RetractTopNOp` moves revised rows between ranks.

use quote::quote;

use super::top_n::{rank_code, RankCode};
use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::namer::field_ident;
use crate::ir::OpId;
use crate::sema::RankDef;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "retract_top_n",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "keeps the best N rows per key of an updating stream, moving revised rows between ranks",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &RankDef) -> Emitted {
    let input_schema = cx.input_stream_type(op).schema;
    let input = cx.input_row_type(op);
    let RankCode {
        spec,
        metrics,
        item,
        n,
        with_ttl,
        ..
    } = rank_code(cx, op, def);
    let mut items = vec![item];
    let up_key = def.retract_key.clone().unwrap_or_default();
    // Over an updating stream: revised rows leave their rank by the input's upsert key.
    let types: Vec<_> = up_key
        .iter()
        .map(|k| {
            let f = input_schema
                .field(k)
                .map(|(_, f)| f.clone())
                .expect("sema checked the upsert key");
            crate::codegen::expr::field_type(f.ty, f.nullable)
        })
        .collect();
    let values = up_key.iter().map(|k| {
        let id = field_ident(k);
        quote!(::std::clone::Clone::clone(&r.#id))
    });
    items.push(quote! {
        impl UpsertKey for #spec {
            type UpKey = (#(#types,)*);
            fn up_key(r: &#input) -> Self::UpKey { (#(#values,)*) }
        }
    });
    Emitted {
        items,
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(RetractTopNOp::<#spec, _>::new(#metrics.clone(), #n, #next) #with_ttl),
        )),
    }
}
