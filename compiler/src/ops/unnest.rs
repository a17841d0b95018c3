//! `unnest items as item`: one row per element of an array, the input's fields followed by
//! the element. Stateless. A row whose array is empty or null gives no row (as SQL's
//! `CROSS JOIN UNNEST`).

use quote::quote;

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::namer::field_ident;
use crate::ir::OpId;
use crate::sema::UnnestDef;

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "unnest",
    n_inputs: 1,
    has_output: true,
    stateful: false,
    checkpointed: false,
    doc: "emits one row per element of an array field, with the element as a new field",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &UnnestDef) -> Emitted {
    let input = cx.input_row_type(op);
    let output = cx.row_type(op);
    let name = cx.namer.fresh(&format!("{}_unnest", cx.names.prefix(op)));
    let ty = cx.graph.node(op).ty.clone();
    let metrics = cx.metrics_handle(op);
    let array = cx.expr(quote::format_ident!("r")).value(&def.array);
    let array = if def.array.nullable {
        quote!(match #array { Some(array) => array, None => return })
    } else {
        array
    };
    // Every field but the last is the input's, copied; the last is the element.
    let n = ty.schema.fields.len() - 1;
    let copies = ty.schema.fields[..n].iter().map(|f| {
        let id = field_ident(&f.name);
        quote!(#id: ::std::clone::Clone::clone(&r.#id))
    });
    let element = field_ident(&def.alias);
    let item = quote! {
        #[inline(always)]
        fn #name(r: &#input, emit: &mut dyn FnMut(&#output)) {
            let array = #array;
            for element in array.iter() {
                let out = #output {
                    #(#copies,)*
                    #element: ::std::clone::Clone::clone(element),
                };
                emit(&out);
            }
        }
    };
    Emitted {
        items: vec![item],
        setup: Vec::new(),
        captures: vec![metrics.clone()],
        moves: Vec::new(),
        role: Role::Stage(Box::new(
            move |next| quote!(Unnest::new(#metrics.clone(), #name, #next)),
        )),
    }
}
