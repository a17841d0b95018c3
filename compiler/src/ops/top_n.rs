//! `top_n`: dedup (`dedup by k keep first|last`) and top-N (`top N by k order by ...`) per
//! key over an append stream. Stateful, not blocking; its output is an updating stream keyed
//! by the key (and the rank). The emitter generates a `RankSpec` (key, ordering, output row),
//! which `final_top_n` and `retract_top_n` share; the runtime's `TopNOp` holds the best rows
//! per key. With `ttl(...)` it drops a key's state once the watermark passes its last write
//! plus the TTL.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::namer::field_ident;
use crate::ir::OpId;
use crate::sema::types::Type;
use crate::sema::{RankDef, StateTtl};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "top_n",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "keeps the first, last or best N rows per key (an updating stream)",
};

/// The generated `RankSpec` and what the operators' constructors need.
pub(super) struct RankCode {
    pub spec: Ident,
    pub metrics: Ident,
    /// The `RankSpec` impl.
    pub item: TokenStream,
    pub n: usize,
    pub newer_wins_ties: bool,
    /// `.with_ttl(..)` with a TTL (never for a final top-N), else nothing.
    pub with_ttl: TokenStream,
}

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &RankDef) -> Emitted {
    let code = rank_code(cx, op, def);
    let RankCode {
        spec,
        metrics,
        item,
        n,
        newer_wins_ties,
        with_ttl,
    } = code;
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(move |next| {
            if newer_wins_ties {
                quote!(TopNOp::<#spec, _>::new(#metrics.clone(), #n, #next).newer_wins_ties() #with_ttl)
            } else {
                quote!(TopNOp::<#spec, _>::new(#metrics.clone(), #n, #next) #with_ttl)
            }
        })),
    }
}

/// The `RankSpec` all three ranking operators run on: the key, the order within a key (a
/// lexicographic compare over the order expressions), the output row and, where a time is
/// read (a window's end for a final top-N, a write's time for a TTL), the event time.
pub(super) fn rank_code(cx: &mut EmitCx<'_>, op: OpId, def: &RankDef) -> RankCode {
    let rt = cx.rt.clone();
    let input = cx.input_row_type(op);
    let output = cx.row_type(op);
    let input_schema = cx.input_stream_type(op).schema;
    let metrics = cx.metrics_handle(op);
    let spec = cx.namer.fresh(&format!("{}Rank", cx.names.camel(op)));
    let key_types: Vec<_> = def
        .keys
        .iter()
        .map(|k| {
            let f = input_schema
                .field(k)
                .map(|(_, f)| f.clone())
                .expect("sema checked the key");
            crate::codegen::expr::field_type(f.ty, f.nullable)
        })
        .collect();
    let key_values: Vec<_> = def
        .keys
        .iter()
        .map(|k| {
            let id = field_ident(k);
            quote!(::std::clone::Clone::clone(&r.#id))
        })
        .collect();
    // Lexicographic over the order expressions; `desc` reverses one.
    let mut compares = Vec::new();
    for (e, desc) in &def.order {
        let a = crate::codegen::expr::unflagged(&rt, e, cx.expr(format_ident!("a")).value(e));
        let b = crate::codegen::expr::unflagged(&rt, e, cx.expr(format_ident!("b")).value(e));
        let (x, y) = if e.ty == Type::String && !e.nullable {
            (quote!((&*#a)), quote!((&*#b)))
        } else {
            (a, b)
        };
        let ord = quote!(::std::cmp::PartialOrd::partial_cmp(&#x, &#y).unwrap_or(::std::cmp::Ordering::Equal));
        let ord = if *desc { quote!(#ord.reverse()) } else { ord };
        compares.push(quote! {
            match #ord {
                ::std::cmp::Ordering::Equal => {}
                other => return other,
            }
        });
    }
    // The record's event time: its window's end when the key names a window (the partition
    // is final then), else, with a TTL over an append stream, when a write happens.
    let time_field = def
        .final_at
        .as_deref()
        .or(def.ttl.as_ref().and_then(|t| t.time_field()));
    let event_time = match time_field {
        Some(time) => {
            let f = field_ident(time);
            quote! {
                #[inline(always)]
                fn event_time(r: &#input) -> i64 { r.#f }
            }
        }
        None => quote!(),
    };
    let with_ttl = match &def.ttl {
        Some(ttl) if def.final_at.is_none() => ttl_call(ttl),
        _ => quote!(),
    };
    let out_value = if def.with_rank {
        let fields = input_schema.fields.iter().map(|f| {
            let id = field_ident(&f.name);
            quote!(#id: ::std::clone::Clone::clone(&r.#id))
        });
        quote!(#output { #(#fields,)* rank })
    } else {
        quote!(::std::clone::Clone::clone(r))
    };
    let item = quote! {
        pub struct #spec;
        impl RankSpec for #spec {
            type In = #input;
            type Key = (#(#key_types,)*);
            type Out = #output;
            #[inline(always)]
            fn key(r: &#input) -> Self::Key { (#(#key_values,)*) }
            #[inline(always)]
            fn compare(a: &#input, b: &#input) -> ::std::cmp::Ordering {
                #(#compares)*
                ::std::cmp::Ordering::Equal
            }
            fn output(r: &#input, rank: i64) -> #output { #out_value }
            #event_time
        }
    };
    RankCode {
        spec,
        metrics,
        item,
        n: def.n,
        newer_wins_ties: def.newer_wins_ties,
        with_ttl,
    }
}

/// `.with_ttl(ms)` or `.with_processing_ttl(ms)`: the builder call that sets a state TTL on
/// a runtime operator (dedup, top-N, unbounded aggregates).
pub fn ttl_call(ttl: &StateTtl) -> TokenStream {
    let builder = format_ident!("{}", ttl.builder());
    let ms = ttl.ms;
    quote!(.#builder(#ms))
}
