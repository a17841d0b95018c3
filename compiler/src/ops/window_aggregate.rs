//! `window_aggregate`: keyed aggregation over tumbling event-time windows. Stateful and
//! blocking: accumulators per (window, key) are updated as records arrive and emitted when the
//! watermark passes the window's end. The emitter generates the accumulator struct and the
//! `WindowAggregate` impl; the runtime's `TumbleAggregate` holds the state.

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::expr::{field_type, rust_type};
use crate::codegen::namer::field_ident;
use crate::codegen::EmitCx;
use crate::ir::OpId;
use crate::sema::functions::AggFunc;
use crate::sema::types::Type;
use crate::sema::{Window, WindowAggregate};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "window_aggregate",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    blocking: true,
    doc: "aggregates per key and tumbling event-time window; emits when the watermark passes the window",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, agg: &WindowAggregate) -> Emitted {
    let input = cx.input_type(op);
    let output = cx.output_type(op);
    let input_schema = cx.input_stream_type(op).schema;
    let base = format!("Op{}", op.index());
    let agg_ty = cx.namer.fresh(&format!("{base}Aggregate"));
    let acc_ty = cx.namer.fresh(&format!("{base}Accumulator"));
    let metrics = cx.metrics_handle(op);

    // The key: one field as itself, several as a tuple, none as ().
    let key_types: Vec<_> = agg
        .keys
        .iter()
        .map(|k| {
            let f = input_schema
                .field(k)
                .map(|(_, f)| f.clone())
                .expect("sema checked the key");
            field_type(f.ty, f.nullable)
        })
        .collect();
    let key_values: Vec<_> = agg
        .keys
        .iter()
        .map(|k| {
            let id = field_ident(k);
            let f = input_schema
                .field(k)
                .map(|(_, f)| f.clone())
                .expect("sema checked the key");
            if f.ty == Type::String {
                quote!(r.#id.clone())
            } else {
                quote!(r.#id)
            }
        })
        .collect();
    let (key_type, key_expr) = match key_types.len() {
        0 => (quote!(()), quote!(())),
        1 => (key_types[0].clone(), key_values[0].clone()),
        _ => (quote!((#(#key_types,)*)), quote!((#(#key_values,)*))),
    };
    let key_outputs: Vec<_> = agg
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let id = field_ident(k);
            if agg.keys.len() == 1 {
                quote!(#id: key.clone())
            } else {
                let idx = syn::Index::from(i);
                quote!(#id: key.#idx.clone())
            }
        })
        .collect();

    let mut acc_fields = Vec::new();
    let mut adds = Vec::new();
    let mut outs = Vec::new();
    for (i, item) in agg.aggs.iter().enumerate() {
        let slot = format_ident!("a{}", i);
        let out_field = field_ident(&item.name);
        let arg = item.arg.as_ref();
        let value = arg.map(|a| cx.expr(format_ident!("r")).value(a));
        let arg_nullable = arg.is_some_and(|a| a.nullable);
        let arg_ty = arg.map_or(Type::I64, |a| a.ty);
        // `apply(v)` updates the accumulator with a non-null value `v`.
        let (acc_field, apply, out): (
            _,
            Box<dyn Fn(proc_macro2::TokenStream) -> proc_macro2::TokenStream>,
            _,
        ) = match item.func {
            AggFunc::Count => (
                quote!(i64),
                Box::new(|_| quote!(acc.#slot += 1;)),
                quote!(acc.#slot),
            ),
            AggFunc::Sum => {
                let t = rust_type(arg_ty);
                let add = if arg_ty == Type::F64 {
                    quote!(+)
                } else {
                    quote!(.wrapping_add)
                };
                let add_expr = move |a: proc_macro2::TokenStream, b: proc_macro2::TokenStream| {
                    if arg_ty == Type::F64 {
                        quote!(#a #add #b)
                    } else {
                        quote!((#a)#add(#b))
                    }
                };
                let slot2 = slot.clone();
                let apply = Box::new(move |v: proc_macro2::TokenStream| {
                    let sum = add_expr(quote!(acc.#slot2.unwrap_or_default()), v);
                    quote!(acc.#slot2 = Some(#sum);)
                });
                let out = if item.nullable {
                    quote!(acc.#slot)
                } else {
                    quote!(acc.#slot.unwrap_or_default())
                };
                (quote!(::std::option::Option<#t>), apply, out)
            }
            AggFunc::Min | AggFunc::Max => {
                let t = rust_type(arg_ty);
                let better = if item.func == AggFunc::Min {
                    quote!(<)
                } else {
                    quote!(>)
                };
                let slot2 = slot.clone();
                let apply: Box<dyn Fn(proc_macro2::TokenStream) -> proc_macro2::TokenStream> =
                    if arg_ty == Type::String {
                        Box::new(move |v| {
                            quote! {
                                let v = #v;
                                if acc.#slot2.as_deref().is_none_or(|m| &*v #better m) {
                                    acc.#slot2 = Some(::std::string::String::from(v));
                                }
                            }
                        })
                    } else {
                        Box::new(move |v| {
                            quote! {
                                let v = #v;
                                if acc.#slot2.is_none_or(|m| v #better m) {
                                    acc.#slot2 = Some(v);
                                }
                            }
                        })
                    };
                let out = if item.nullable {
                    quote!(acc.#slot.clone())
                } else {
                    quote!(acc.#slot.clone().unwrap_or_default())
                };
                (quote!(::std::option::Option<#t>), apply, out)
            }
            AggFunc::Avg => {
                let (sum_t, conv) = if arg_ty == Type::F64 {
                    (quote!(f64), quote!(as f64))
                } else {
                    (quote!(i128), quote!(as i128))
                };
                let slot2 = slot.clone();
                let apply = Box::new(move |v: proc_macro2::TokenStream| {
                    quote! { acc.#slot2.0 += (#v) #conv; acc.#slot2.1 += 1; }
                });
                let out = if item.nullable {
                    quote!(if acc.#slot.1 == 0 { None } else { Some(acc.#slot.0 as f64 / acc.#slot.1 as f64) })
                } else {
                    quote!(acc.#slot.0 as f64 / acc.#slot.1.max(1) as f64)
                };
                (quote!((#sum_t, i64)), apply, out)
            }
        };
        acc_fields.push(quote!(#slot: #acc_field));
        let update = match value {
            None => apply(quote!(())),
            Some(v) if arg_nullable => {
                let body = apply(quote!(v));
                quote!(if let Some(v) = #v { #body })
            }
            Some(v) if item.func == AggFunc::Count => {
                let _ = v;
                apply(quote!(()))
            }
            Some(v) => apply(v),
        };
        adds.push(quote!({ #update }));
        outs.push(quote!(#out_field: #out));
    }
    let time = field_ident(&agg.time_field);
    let Window::Tumble { size_ms } = agg.window;
    let item = quote! {
        #[derive(Clone, Debug, Default)]
        pub struct #acc_ty { #(#acc_fields,)* }
        pub struct #agg_ty;
        impl WindowAggregate for #agg_ty {
            type In = #input;
            type Key = #key_type;
            type Acc = #acc_ty;
            type Out = #output;
            #[inline(always)]
            fn key(r: &#input) -> Self::Key { #key_expr }
            #[inline(always)]
            fn event_time(r: &#input) -> i64 { r.#time }
            #[inline(always)]
            fn new_acc() -> #acc_ty { ::std::default::Default::default() }
            #[inline(always)]
            fn add(acc: &mut #acc_ty, r: &#input) { #(#adds)* }
            fn output(key: &Self::Key, window_start: i64, window_end: i64, acc: &#acc_ty) -> #output {
                #output { #(#key_outputs,)* window_start, window_end, #(#outs,)* }
            }
        }
    };
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(TumbleAggregate::<#agg_ty, _>::new(#metrics.clone(), #size_ms, #next)),
        )),
    }
}
