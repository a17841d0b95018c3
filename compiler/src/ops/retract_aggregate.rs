//! `retract_aggregate`: keyed aggregation without a window over an updating stream (its
//! upsert key is `WindowAggregate::retract_key`). Stateful, not blocking, one instance: each
//! change first takes the previous version of its row back out of its group's accumulators,
//! then adds the new one, so accumulators here can retract (counts, sums, multisets for
//! min/max). The emitter generates them and a `RetractAggregate` impl; the runtime's
//! `RetractAggregateOp` holds the previous rows and the groups (and with `ttl(...)` drops a
//! group that has not changed for the TTL).

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::expr::{field_type, rust_type};
use crate::codegen::namer::field_ident;
use crate::ir::OpId;
use crate::sema::functions::AggFunc;
use crate::sema::types::Type;
use crate::sema::WindowAggregate;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "retract_aggregate",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "aggregates an updating stream per key: each change retracts the row it revises",
};

/// Accumulators that can take a row back out, run by the runtime's `RetractAggregateOp`.
pub fn emit(cx: &mut EmitCx<'_>, op: OpId, agg: &WindowAggregate) -> Emitted {
    let rt = cx.rt.clone();
    let input = cx.input_row_type(op);
    let output = cx.row_type(op);
    let input_schema = cx.input_stream_type(op).schema;
    let spec = cx
        .namer
        .fresh(&format!("{}RetractAggregate", cx.names.camel(op)));
    let acc_ty = cx
        .namer
        .fresh(&format!("{}Accumulator", cx.names.camel(op)));
    let metrics = cx.metrics_handle(op);
    let owned_tuple = |cx: &EmitCx<'_>, names: &[String]| {
        let _ = cx;
        let types: Vec<_> = names
            .iter()
            .map(|k| {
                let f = input_schema
                    .field(k)
                    .map(|(_, f)| f.clone())
                    .expect("sema checked the key");
                field_type(f.ty, f.nullable)
            })
            .collect();
        let values: Vec<_> = names
            .iter()
            .map(|k| {
                let id = field_ident(k);
                quote!(::std::clone::Clone::clone(&r.#id))
            })
            .collect();
        (quote!((#(#types,)*)), quote!((#(#values,)*)))
    };
    let (key_type, key_value) = owned_tuple(cx, &agg.keys);
    let up_key = agg.retract_key.clone().unwrap_or_default();
    let (up_key_type, up_key_value) = owned_tuple(cx, &up_key);
    let key_outputs: Vec<_> = agg
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let id = field_ident(k);
            let idx = syn::Index::from(i);
            quote!(#id: key.#idx.clone())
        })
        .collect();
    let mut fields = vec![quote!(rows: i64)];
    let mut names = vec![format_ident!("rows")];
    let mut adds = Vec::new();
    let mut retracts = Vec::new();
    let mut outs = Vec::new();
    let mut sizes = Vec::new();
    for (i, item) in agg.aggs.iter().enumerate() {
        let slot = format_ident!("a{}", i);
        let arg = item.arg.as_ref();
        let value = arg.map(|a| cx.expr(format_ident!("r")).value(a));
        let arg_nullable = arg.is_some_and(|a| a.nullable);
        let arg_ty = arg.map_or(Type::I64, |a| a.ty);
        let t = rust_type(arg_ty);
        let is_string = arg_ty == Type::String;
        let owned = if is_string {
            quote!(::std::string::String::from(v))
        } else {
            quote!(v)
        };
        let with_value = |body: proc_macro2::TokenStream| match &value {
            None => body,
            Some(v) if arg_nullable => quote!(if let Some(v) = #v { #body }),
            Some(v) => quote!(let v = #v; #body),
        };
        // Sets and multisets grow with their values: about `elem` encoded bytes each.
        let elem = super::aggregate::set_element_size(is_string, &t);
        if item.distinct || matches!(item.func, AggFunc::Min | AggFunc::Max) {
            sizes.push(quote!(acc.#slot.len() * (#elem + 8)));
        }
        let (ty, add, retract, out) = match item.func {
            AggFunc::Count if item.distinct => (
                quote!(#rt::hash::FastMap<#t, i64>),
                with_value(quote!(*acc.#slot.entry(#owned).or_insert(0) += 1;)),
                with_value(quote! {
                    let key = #owned;
                    if let Some(n) = acc.#slot.get_mut(&key) {
                        *n -= 1;
                        if *n <= 0 { acc.#slot.remove(&key); }
                    }
                }),
                quote!(acc.#slot.len() as i64),
            ),
            AggFunc::Count => (
                quote!(i64),
                with_value(quote!(acc.#slot += 1;)),
                with_value(quote!(acc.#slot -= 1;)),
                quote!(acc.#slot),
            ),
            AggFunc::Sum | AggFunc::Avg => {
                let (add_op, sub_op) = if arg_ty == Type::F64 {
                    (
                        quote!(acc.#slot.0.add(v as f64);),
                        quote!(acc.#slot.0.remove(v as f64);),
                    )
                } else {
                    (
                        quote!(acc.#slot.0 = acc.#slot.0.wrapping_add(v as i128 as _);),
                        quote!(acc.#slot.0 = acc.#slot.0.wrapping_sub(v as i128 as _);),
                    )
                };
                // A float total keeps what rounding lost (see `FloatSum`): rows are taken back.
                let sum_t = if arg_ty == Type::F64 {
                    quote!(#rt::ops::retract_aggregate::FloatSum)
                } else {
                    quote!(i128)
                };
                let out = match (item.func, item.nullable) {
                    // A float total that is not finite (also after retractions: `inf - inf`
                    // is NaN) makes the sum or average null.
                    (AggFunc::Avg, true) if arg_ty == Type::F64 => {
                        quote!(if acc.#slot.1 == 0 || !acc.#slot.0.value().is_finite() { None } else { Some(acc.#slot.0.value() / acc.#slot.1 as f64) })
                    }
                    (AggFunc::Avg, true) => {
                        quote!(if acc.#slot.1 == 0 { None } else { Some(acc.#slot.0 as f64 / acc.#slot.1 as f64) })
                    }
                    (AggFunc::Avg, false) if arg_ty == Type::F64 => {
                        quote!(acc.#slot.0.value() / acc.#slot.1.max(1) as f64)
                    }
                    (AggFunc::Avg, false) => quote!(acc.#slot.0 as f64 / acc.#slot.1.max(1) as f64),
                    // An integer total outside the i64 range is null.
                    (_, true) if arg_ty != Type::F64 => {
                        quote!(if acc.#slot.1 == 0 { None } else { i64::try_from(acc.#slot.0).ok() })
                    }
                    (_, true) => {
                        quote!(if acc.#slot.1 == 0 || !acc.#slot.0.value().is_finite() { None } else { Some(acc.#slot.0.value()) })
                    }
                    (_, false) if arg_ty == Type::F64 => quote!(acc.#slot.0.value()),
                    (_, false) => quote!(acc.#slot.0 as #t),
                };
                (
                    quote!((#sum_t, i64)),
                    with_value(quote!(#add_op acc.#slot.1 += 1;)),
                    with_value(quote!(#sub_op acc.#slot.1 -= 1;)),
                    out,
                )
            }
            AggFunc::Min | AggFunc::Max => {
                let pick = if item.func == AggFunc::Min {
                    quote!(first_key_value)
                } else {
                    quote!(last_key_value)
                };
                let value = quote!(acc.#slot.#pick().map(|(k, _)| ::std::clone::Clone::clone(k)));
                let out = if item.nullable {
                    value
                } else {
                    quote!(#value.unwrap_or_default())
                };
                (
                    quote!(#rt::ops::retract_aggregate::Multiset<#t>),
                    with_value(
                        quote!(#rt::ops::retract_aggregate::multiset_add(&mut acc.#slot, #owned);),
                    ),
                    with_value(
                        quote!(#rt::ops::retract_aggregate::multiset_remove(&mut acc.#slot, &#owned);),
                    ),
                    out,
                )
            }
            AggFunc::FirstValue | AggFunc::LastValue | AggFunc::Udf => {
                unreachable!("sema rejects them over updating streams")
            }
        };
        let (add, retract) = match &item.filter {
            Some(cond) => {
                let c = cx.expr(format_ident!("r")).condition(cond);
                (quote!(if #c { #add }), quote!(if #c { #retract }))
            }
            None => (quote!({ #add }), quote!({ #retract })),
        };
        fields.push(quote!(#slot: #ty));
        names.push(slot.clone());
        adds.push(add);
        retracts.push(retract);
        let out_field = field_ident(&item.name);
        outs.push(quote!(#out_field: #out));
    }
    let acc_size =
        (!sizes.is_empty()).then(|| quote!(fn acc_size(acc: &#acc_ty) -> usize { 0 #(+ #sizes)* }));
    let item = quote! {
        #[derive(Clone, Debug, Default)]
        pub struct #acc_ty { #(#fields,)* }
        #rt::state_struct!(#acc_ty { #(#names),* });
        pub struct #spec;
        impl #rt::ops::RetractAggregate for #spec {
            type In = #input;
            type UpKey = #up_key_type;
            type Key = #key_type;
            type Acc = #acc_ty;
            type Out = #output;
            fn up_key(r: &#input) -> Self::UpKey { #up_key_value }
            fn key(r: &#input) -> Self::Key { #key_value }
            fn new_acc() -> #acc_ty { ::std::default::Default::default() }
            fn add(acc: &mut #acc_ty, r: &#input) { acc.rows += 1; #(#adds)* }
            fn retract(acc: &mut #acc_ty, r: &#input) { acc.rows -= 1; #(#retracts)* }
            fn rows(acc: &#acc_ty) -> i64 { acc.rows }
            #acc_size
            fn output(key: &Self::Key, acc: &#acc_ty) -> #output {
                #output { #(#key_outputs,)* #(#outs,)* }
            }
        }
    };
    let with_ttl = agg.ttl.as_ref().map(super::top_n::ttl_call);
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(#rt::ops::RetractAggregateOp::<#spec, _>::new(#metrics.clone(), #next) #with_ttl),
        )),
    }
}
