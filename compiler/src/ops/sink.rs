//! `sink`: the end of a pipeline. stdout and file sinks encode rows (JSON lines or CSV) with a
//! generated encoder and write them through one buffered writer; the checksum sink hashes every
//! field of every row and reports a count and an order-independent checksum.

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::{records, EmitCx};
use crate::ir::OpId;
use crate::sema::{Format, SinkDef, SinkKind};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "sink",
    n_inputs: 1,
    has_output: false,
    stateful: false,
    blocking: false,
    doc: "writes rows to stdout, a file, or a checksum",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &SinkDef) -> Emitted {
    let input = cx.input_type(op);
    let schema = cx.input_stream_type(op).schema;
    let metrics = cx.metrics_handle(op);
    let label = def.label.clone();
    match &def.kind {
        SinkKind::Checksum => {
            let hash = cx.namer.fresh(&format!("{op}_checksum"));
            let item = records::checksum(&hash, &input, &schema);
            let registry = format_ident!("metrics");
            Emitted {
                items: vec![item],
                setup: Vec::new(),
                captures: vec![metrics.clone(), registry.clone()],
                moves: Vec::new(),
                role: Role::Leaf(
                    quote!(::weir_runtime::sinks::Checksum::new(#metrics.clone(), #registry.clone(), #label, #hash)),
                ),
            }
        }
        SinkKind::Stdout { format } | SinkKind::File { format, .. } => {
            let encode = cx.namer.fresh(&format!("{op}_encode"));
            let item = records::encoder(&encode, &input, &schema, *format);
            let header = match format {
                Format::Csv {
                    header: true,
                    delimiter,
                } => records::csv_header(&schema, *delimiter),
                _ => Vec::new(),
            };
            let header = proc_macro2::Literal::byte_string(&header);
            let output = format_ident!("output_{}", op.index());
            let open = match &def.kind {
                SinkKind::File { path, .. } => quote! {
                    let mut #output = Some(::weir_runtime::sinks::open_output(Some(::std::path::Path::new(#path)))
                        .map_err(|e| format!("sink `{}`: {}", #label, e))?);
                },
                _ => quote!(let mut #output = Some(::weir_runtime::sinks::Output::Stdout);),
            };
            Emitted {
                items: vec![item],
                setup: vec![open],
                captures: vec![metrics.clone()],
                moves: vec![output.clone()],
                role: Role::Leaf(
                    quote!(::weir_runtime::sinks::Writer::new(#metrics.clone(), #output, #header, #encode)),
                ),
            }
        }
    }
}
