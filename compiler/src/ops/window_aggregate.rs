//! `window_aggregate`: keyed aggregation over event-time windows (tumble, hop, cumulate,
//! session), or processing-time ones. Stateful and blocking: accumulators per (window, key)
//! are updated as records arrive and emitted when the watermark passes the window's end. The
//! emitter generates the accumulator struct and the `WindowAggregate` impl (`aggregate.rs`);
//! the runtime's `WindowAggregateOp` holds the state. With allowed lateness the output is an
//! updating stream (a late record revises its window's row).

use quote::quote;

use super::aggregate::aggregate_code;
use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::ir::OpId;
use crate::sema::{Window, WindowAggregate};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "window_aggregate",
    n_inputs: 1,
    has_output: true,
    stateful: true,
    checkpointed: true,
    doc: "aggregates per key and event-time window; emits when the watermark passes the window",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, agg: &WindowAggregate) -> Emitted {
    let rt = cx.rt.clone();
    let code = aggregate_code(cx, op, agg);
    let (agg_ty, metrics, with_overflows) = (code.agg_ty, code.metrics, code.with_overflows);
    let processing = agg.processing_time;
    let lateness = agg.lateness_ms;
    let has_late_output = agg.late_output.is_some();
    let zone = agg
        .zone
        .as_deref()
        .map(|name| cx.statics.zone(&mut cx.namer, &cx.rt, name));
    let windows = match agg.window {
        Window::Tumble { size_ms } => match zone {
            Some(zone) => quote!(Windows::TumbleIn { size: #size_ms, zone: &*#zone }),
            None => quote!(Windows::Tumble { size: #size_ms }),
        },
        Window::Hop { size_ms, slide_ms } => {
            quote!(Windows::Hop { size: #size_ms, slide: #slide_ms })
        }
        Window::Cumulate { step_ms, size_ms } => {
            quote!(Windows::Cumulate { step: #step_ms, size: #size_ms })
        }
        Window::Session { gap_ms } => quote!(Windows::Session { gap: #gap_ms }),
        // Lowering makes an aggregate without a window a `group_aggregate`,
        // `final_aggregate` or `retract_aggregate`, and validation holds it to that.
        Window::Unbounded => quote!(::core::compile_error!(
            "internal error: a window aggregate without a window"
        )),
    };
    Emitted {
        items: vec![code.item],
        setup: code.setup,
        captures: code.captures,
        moves: Vec::new(),
        role: Role::StageWithLate(Box::new(move |next, late| {
            let next = if lateness > 0 {
                quote!(#rt::ops::Upserts::new(#next))
            } else {
                next
            };
            let lateness_setting = if lateness > 0 {
                quote!(.allowed_lateness(#lateness))
            } else {
                quote!()
            };
            // Late records go to the side output when the pipeline names one.
            let ctor = if has_late_output {
                quote!(with_late_output(#metrics.clone(), #windows, #next, #late))
            } else {
                quote!(new(#metrics.clone(), #windows, #next))
            };
            if processing {
                quote!(WindowAggregateOp::<#agg_ty, _, _>::#ctor.on_processing_time() #lateness_setting #with_overflows)
            } else {
                quote!(WindowAggregateOp::<#agg_ty, _, _>::#ctor #lateness_setting #with_overflows)
            }
        })),
    }
}
