//! What the aggregates over append streams share (`window_aggregate`, `group_aggregate`,
//! `final_aggregate`): the key, one accumulator per aggregate, and the runtime's
//! `WindowAggregate` impl (add, merge for sessions, output) that their operators call. Not an
//! operator itself.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::codegen::context::EmitCx;
use crate::codegen::expr::{field_type, may_overflow, overflow_check, render, rust_type};
use crate::codegen::namer::field_ident;
use crate::ir::OpId;
use crate::sema::functions::AggFunc;
use crate::sema::types::Type;
use crate::sema::{Window, WindowAggregate};

/// The generated part of an aggregate: its `WindowAggregate` impl and what its operator's
/// constructor needs.
pub(super) struct AggregateCode {
    /// The type implementing `WindowAggregate`.
    pub agg_ty: Ident,
    pub metrics: Ident,
    /// The accumulator struct and the impl.
    pub item: TokenStream,
    /// `.with_overflows(..)` when results or records are range-checked, else nothing.
    pub with_overflows: TokenStream,
    pub setup: Vec<TokenStream>,
    pub captures: Vec<Ident>,
}

/// The accumulator struct and `WindowAggregate` impl of `agg`: its key (one field as itself,
/// several as a tuple, none as `()`), one accumulator per aggregate, the rejection of records
/// whose arguments overflow, and the output row (with the window's bounds when it has a
/// window).
pub(super) fn aggregate_code(
    cx: &mut EmitCx<'_>,
    op: OpId,
    agg: &WindowAggregate,
) -> AggregateCode {
    let rt = cx.rt.clone();
    let input = cx.input_type(op);
    let output = cx.row_type(op);
    let input_schema = cx.input_stream_type(op).schema;
    let base = cx.names.camel(op);
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
    let mut acc_names = Vec::new();
    let mut adds = Vec::new();
    let mut merges = Vec::new();
    let mut outs = Vec::new();
    let mut sizes = Vec::new();
    // `first_value`/`last_value` order by the event time where there is one.
    let order_time = agg.value_order_time().map(|time| {
        let f = field_ident(time);
        quote!(r.#f)
    });
    for (i, item) in agg.aggs.iter().enumerate() {
        let parts = accumulator(cx, i, item, order_time.as_ref());
        let slot = format_ident!("a{}", i);
        let out_field = field_ident(&item.name);
        let acc_ty = parts.ty;
        acc_fields.push(quote!(#slot: #acc_ty));
        acc_names.push(slot.clone());
        let update = parts.add;
        adds.push(match &item.filter {
            Some(cond) => {
                let c = cx.expr(format_ident!("r")).condition(cond);
                quote!(if #c { #update })
            }
            None => quote!({ #update }),
        });
        let merge = parts.merge;
        merges.push(quote!({ #merge }));
        let out = parts.output;
        outs.push(quote!(#out_field: #out));
        sizes.extend(parts.size);
    }
    // Only accumulators that grow say by how much (the default is a fixed size).
    let acc_size = (!sizes.is_empty()).then(|| {
        quote! {
            #[inline(always)]
            fn acc_size(acc: &#acc_ty) -> usize { 0 #(+ #sizes)* }
        }
    });
    // Records whose aggregate arguments or conditions overflow are rejected before any
    // accumulator sees them; integer sums that leave the range are counted.
    let checked_exprs: Vec<&crate::sema::TExpr> = agg
        .aggs
        .iter()
        .flat_map(|item| item.arg.iter().chain(item.filter.iter()))
        .collect();
    let reject_overflow = if checked_exprs.iter().any(|e| may_overflow(e)) {
        let values: Vec<_> = checked_exprs
            .iter()
            .map(|e| cx.expr(format_ident!("r")).value(e))
            .collect();
        let check = overflow_check(
            &rt,
            checked_exprs.iter().copied(),
            &format_ident!("overflows"),
            &format_ident!("r"),
            quote!(return true;),
        );
        quote! {
            fn reject_overflow(r: &#input, overflows: &#rt::overflow::Overflows) -> bool {
                #(let _ = #values;)*
                #check
                false
            }
        }
    } else {
        quote!()
    };
    // Sums and float averages can be null by leaving the range: counted.
    let range_checked = agg.aggs.iter().any(|item| {
        item.func == AggFunc::Sum
            || item.func == AggFunc::Avg && item.arg.as_ref().is_some_and(|a| a.ty == Type::F64)
    });
    let (with_overflows, overflows_setup, overflows_var) =
        if range_checked || !reject_overflow.is_empty() {
            let (var, setup) = cx.overflows(op);
            (
                quote!(.with_overflows(#var.clone())),
                vec![setup],
                Some(var),
            )
        } else {
            (quote!(), Vec::new(), None)
        };
    // An unbounded aggregate's TTL in event time stamps writes with the record's time.
    let ttl_time = agg.ttl.as_ref().and_then(|t| t.time_field());
    let time = if let Some(field) = ttl_time.filter(|_| agg.window == Window::Unbounded) {
        let f = field_ident(field);
        quote!(r.#f)
    } else if agg.processing_time {
        quote!(0)
    } else {
        let f = field_ident(&agg.time_field);
        quote!(r.#f)
    };
    // Only a window's rows carry its bounds.
    let window_fields = if agg.window == Window::Unbounded {
        quote!()
    } else {
        quote!(window_start, window_end,)
    };
    let item = quote! {
        #[derive(Clone, Debug, Default)]
        pub struct #acc_ty { #(#acc_fields,)* }
        #rt::state_struct!(#acc_ty { #(#acc_names),* });
        pub struct #agg_ty;
        impl WindowAggregate for #agg_ty {
            type In = #input;
            type Key = #key_type;
            type Acc = #acc_ty;
            type Out = #output;
            #[inline(always)]
            fn key(r: &#input) -> Self::Key { #key_expr }
            #[inline(always)]
            fn event_time(r: &#input) -> i64 { #time }
            #[inline(always)]
            fn new_acc() -> #acc_ty { ::std::default::Default::default() }
            #[inline(always)]
            fn add(acc: &mut #acc_ty, r: &#input) { #(#adds)* }
            fn merge(acc: &mut #acc_ty, later: #acc_ty) { #(#merges)* }
            fn output(key: &Self::Key, window_start: i64, window_end: i64, acc: &#acc_ty) -> #output {
                #output { #(#key_outputs,)* #window_fields #(#outs,)* }
            }
            #reject_overflow
            #acc_size
        }
    };
    let mut captures = vec![metrics.clone()];
    captures.extend(overflows_var);
    AggregateCode {
        agg_ty,
        metrics,
        item,
        with_overflows,
        setup: overflows_setup,
        captures,
    }
}

/// The code of one aggregate: its accumulator type, how a record updates it (`r` is the
/// record, `acc` the accumulators), how a later session's accumulator folds in (`later`), and
/// the output value.
///
/// `time` is the record's event time (`None` on processing time or without one): with it,
/// `first_value`/`last_value` keep the value of the earliest/latest record by event time,
/// with its time in the accumulator (ties: the first arrival for `first_value`, the last for
/// `last_value`); without it, by arrival.
struct AccParts {
    ty: proc_macro2::TokenStream,
    add: proc_macro2::TokenStream,
    merge: proc_macro2::TokenStream,
    output: proc_macro2::TokenStream,
    /// About the bytes the slot adds to the accumulator's encoded size as it grows (sets,
    /// strings, a UDF's state), cheap to compute; `None` for a slot of fixed size. The disk
    /// backend weighs accumulators by it ([`crate::ops`]: `WindowAggregate::acc_size`).
    size: Option<proc_macro2::TokenStream>,
}

fn accumulator(
    cx: &mut EmitCx<'_>,
    i: usize,
    item: &crate::sema::AggItem,
    time: Option<&proc_macro2::TokenStream>,
) -> AccParts {
    let rt = cx.rt.clone();
    let slot = format_ident!("a{}", i);
    let arg = item.arg.as_ref();
    let value = arg.map(|a| cx.expr(format_ident!("r")).value(a));
    let arg_nullable = arg.is_some_and(|a| a.nullable);
    let arg_ty = arg.map_or(Type::I64, |a| a.ty);
    let t = rust_type(arg_ty);
    let is_string = arg_ty == Type::String;
    let owned = |v: proc_macro2::TokenStream| {
        if is_string {
            quote!(::std::string::String::from(#v))
        } else {
            v
        }
    };
    // `with_value(body)`: runs `body` with `v` bound to the argument's non-null value.
    let with_value = |body: proc_macro2::TokenStream| match &value {
        None => body,
        Some(v) if arg_nullable => quote!(if let Some(v) = #v { #body }),
        Some(v) => quote!(let v = #v; #body),
    };
    // A string slot grows with its string; other slots of these kinds keep their size.
    let string_size = |len: proc_macro2::TokenStream| is_string.then_some(len);
    let unwrap = |nullable: bool| {
        if nullable {
            quote!(acc.#slot.clone())
        } else {
            quote!(acc.#slot.clone().unwrap_or_default())
        }
    };
    match item.func {
        AggFunc::Count if item.distinct => {
            let elem = set_element_size(is_string, &t);
            let add = if is_string {
                quote!(if !acc.#slot.contains(&*v) { acc.#slot.insert(::std::string::String::from(v)); })
            } else {
                quote!(acc.#slot.insert(v);)
            };
            AccParts {
                ty: quote!(#rt::hash::FastSet<#t>),
                add: with_value(add),
                merge: quote!(acc.#slot.extend(later.#slot);),
                output: quote!(acc.#slot.len() as i64),
                size: Some(quote!(acc.#slot.len() * #elem)),
            }
        }
        AggFunc::Count => AccParts {
            ty: quote!(i64),
            add: with_value(quote!(acc.#slot += 1;)),
            merge: quote!(acc.#slot += later.#slot;),
            output: quote!(acc.#slot),
            size: None,
        },
        // A float total that is not finite makes the sum null (sema types float sums
        // nullable) and is counted.
        AggFunc::Sum if arg_ty == Type::F64 => {
            let update = quote!(acc.#slot = Some(acc.#slot.unwrap_or_default() + v););
            let text = format!("sum({})", arg.map(render).unwrap_or_default());
            AccParts {
                ty: quote!(::std::option::Option<#t>),
                add: with_value(update.clone()),
                merge: quote!(if let Some(v) = later.#slot { #update }),
                output: quote!(acc.#slot.and_then(|s| #rt::overflow::finite_total(s, #text))),
                size: None,
            }
        }
        // Integers add up in `i128` (no i64 values can overflow it); a total outside the i64
        // range makes the sum null (sema types integer sums nullable) and is counted.
        AggFunc::Sum => {
            let text = format!("sum({})", arg.map(render).unwrap_or_default());
            AccParts {
                ty: quote!(::std::option::Option<i128>),
                add: with_value(
                    quote!(acc.#slot = Some(acc.#slot.unwrap_or_default() + v as i128);),
                ),
                merge: quote!(if let Some(v) = later.#slot { acc.#slot = Some(acc.#slot.unwrap_or_default() + v); }),
                output: quote!(acc.#slot.and_then(|s| #rt::overflow::sum_total(s, #text))),
                size: None,
            }
        }
        AggFunc::Min | AggFunc::Max => {
            let better = if item.func == AggFunc::Min {
                quote!(<)
            } else {
                quote!(>)
            };
            let update = if is_string {
                quote! {
                    if acc.#slot.as_deref().is_none_or(|m| &*v #better m) {
                        acc.#slot = Some(::std::string::String::from(v));
                    }
                }
            } else {
                quote! {
                    if acc.#slot.is_none_or(|m| v #better m) {
                        acc.#slot = Some(v);
                    }
                }
            };
            AccParts {
                ty: quote!(::std::option::Option<#t>),
                add: with_value(update.clone()),
                merge: quote!(if let Some(v) = later.#slot { #update }),
                output: unwrap(item.nullable),
                size: string_size(quote!(acc.#slot.as_ref().map_or(0, |s| s.len()))),
            }
        }
        AggFunc::Avg => {
            let (sum_t, conv) = if arg_ty == Type::F64 {
                (quote!(f64), quote!(as f64))
            } else {
                (quote!(i128), quote!(as i128))
            };
            // A float total that is not finite makes the average null (sema types float
            // averages nullable) and is counted; an integer total in i128 cannot overflow.
            let text = format!("avg({})", arg.map(render).unwrap_or_default());
            let output = if arg_ty == Type::F64 {
                quote!(if acc.#slot.1 == 0 { None } else { #rt::overflow::finite_total(acc.#slot.0, #text).map(|s| s / acc.#slot.1 as f64) })
            } else if item.nullable {
                quote!(if acc.#slot.1 == 0 { None } else { Some(acc.#slot.0 as f64 / acc.#slot.1 as f64) })
            } else {
                quote!(acc.#slot.0 as f64 / acc.#slot.1.max(1) as f64)
            };
            AccParts {
                ty: quote!((#sum_t, i64)),
                add: with_value(quote!(acc.#slot.0 += (v) #conv; acc.#slot.1 += 1;)),
                merge: quote!(acc.#slot.0 += later.#slot.0; acc.#slot.1 += later.#slot.1;),
                output,
                size: None,
            }
        }
        AggFunc::FirstValue | AggFunc::LastValue if time.is_some() => {
            let set = owned(quote!(v));
            // The held value gives way to a strictly earlier record (first) or to one at the
            // same time or later (last); a later session's value likewise.
            let wins = if item.func == AggFunc::FirstValue {
                quote!(<)
            } else {
                quote!(>=)
            };
            let value = quote!(acc.#slot.as_ref().map(|(_, v)| ::std::clone::Clone::clone(v)));
            AccParts {
                ty: quote!(::std::option::Option<(i64, #t)>),
                add: with_value(quote! {
                    let t: i64 = #time;
                    if acc.#slot.as_ref().is_none_or(|(held, _)| t #wins *held) {
                        acc.#slot = Some((t, #set));
                    }
                }),
                merge: quote! {
                    if let Some((t, v)) = later.#slot {
                        if acc.#slot.as_ref().is_none_or(|(held, _)| t #wins *held) {
                            acc.#slot = Some((t, v));
                        }
                    }
                },
                output: if item.nullable {
                    value
                } else {
                    quote!(#value.unwrap_or_default())
                },
                size: string_size(quote!(acc.#slot.as_ref().map_or(0, |(_, s)| s.len()))),
            }
        }
        AggFunc::FirstValue => {
            let set = owned(quote!(v));
            AccParts {
                ty: quote!(::std::option::Option<#t>),
                add: with_value(quote!(if acc.#slot.is_none() { acc.#slot = Some(#set); })),
                merge: quote!(if acc.#slot.is_none() { acc.#slot = later.#slot; }),
                output: unwrap(item.nullable),
                size: string_size(quote!(acc.#slot.as_ref().map_or(0, |s| s.len()))),
            }
        }
        AggFunc::LastValue => {
            let set = owned(quote!(v));
            AccParts {
                ty: quote!(::std::option::Option<#t>),
                add: with_value(quote!(acc.#slot = Some(#set);)),
                merge: quote!(if later.#slot.is_some() { acc.#slot = later.#slot; }),
                output: unwrap(item.nullable),
                size: string_size(quote!(acc.#slot.as_ref().map_or(0, |s| s.len()))),
            }
        }
        // A Rust `weir::Accumulator`: the accumulator is the user's type.
        AggFunc::Udf => {
            let path = item.udf.as_deref().unwrap_or("()");
            let path: proc_macro2::TokenStream = match syn::parse_str::<syn::Path>(path) {
                Ok(p) => quote!(#p),
                Err(_) => {
                    let msg = format!("`{path}` is not a Rust path");
                    quote!(::core::compile_error!(#msg))
                }
            };
            let acc = quote!(#rt::embed::Accumulator);
            let set = owned(quote!(v));
            AccParts {
                ty: path.clone(),
                add: with_value(quote!(<#path as #acc>::add(&mut acc.#slot, #set);)),
                merge: quote!(<#path as #acc>::merge(&mut acc.#slot, later.#slot);),
                output: quote!(<#path as #acc>::result(&acc.#slot)),
                size: Some(quote!(#rt::state::encode(&acc.#slot).len())),
            }
        }
    }
}

/// About the encoded bytes of one element of a distinct set: its size, or for a string its
/// length prefix and a guessed 16 bytes (the sets are weighed without reading their
/// elements).
pub(crate) fn set_element_size(
    is_string: bool,
    t: &proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    if is_string {
        quote!(24)
    } else {
        quote!(::std::mem::size_of::<#t>())
    }
}
