//! The emit context: what every operator's emitter reads and fills while code is generated
//! (the graph, the names chosen before emitting, the record types of each operator's
//! output, the statics, the form of the output and the path it names the runtime by). A leaf of `codegen`: it depends on the
//! graph, the namer and the expression generator, never on `codegen`'s driver or on `ops/`,
//! so the emitters in `ops/` and the driver both depend on it and not on each other.

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::expr::{ExprGen, Statics};
use super::namer::{self, Namer};
use super::names::Names;
use crate::ir::{Dataflow, OpId, Parallelism};
use crate::sema::{StreamType, TExpr};

/// The path generated code names the runtime by in a pipeline's own crate (the binaries the
/// CLI builds, where the runtime is a dependency): the one place in the compiler this path is
/// written (the test `the_runtime_path_is_written_once` refuses it anywhere else).
pub const CRATE_RUNTIME: &str = "::weir_runtime";

/// The runtime's path in a user's crate that embeds a pipeline: through the `weir` facade.
pub const FACADE_RUNTIME: &str = "::weir::runtime";

/// A runtime path ([`CRATE_RUNTIME`], [`FACADE_RUNTIME`]) as tokens, for `#rt::module::Item`.
pub fn runtime_path(path: &str) -> TokenStream {
    path.parse()
        .unwrap_or_else(|e| panic!("internal error: `{path}` is not a Rust path: {e}"))
}

/// What the generated code is.
#[derive(Clone, Copy, Debug, Default)]
pub enum Form<'a> {
    /// A binary's `main.rs`.
    #[default]
    Binary,
    /// A module body with `pub fn run(args)`.
    Library,
    /// A module body with `pub fn run(args, inputs) -> outputs`, records in memory.
    Memory {
        /// Source name → the Rust type (a path) its records have, for schemas bound to a
        /// `#[derive(weir::Record)]` type.
        records: &'a BTreeMap<String, String>,
    },
}

impl Form<'_> {
    pub fn is_memory(&self) -> bool {
        matches!(self, Form::Memory { .. })
    }
}

/// The in-memory inputs and outputs of a [`Form::Memory`] pipeline, gathered while emitting.
#[derive(Default)]
pub struct MemoryIo {
    /// `(field of Inputs, record type)`, one per file or stdin source.
    pub inputs: Vec<(Ident, TokenStream)>,
    /// `(field of Outputs, row type)`, one per sink.
    pub outputs: Vec<(Ident, TokenStream)>,
}

/// State shared by the operator emitters.
pub struct EmitCx<'a> {
    pub graph: &'a Dataflow,
    /// The path of the runtime crate (`::weir_runtime`, or `::weir::runtime` through the
    /// facade): every emitter writes `#rt::module::Item`, never the path itself.
    pub rt: TokenStream,
    pub namer: Namer,
    /// The names the naming pass chose for each operator ([`super::names`]).
    pub names: Names,
    pub statics: Statics,
    /// The Rust type of each operator's output records.
    pub(super) types: BTreeMap<OpId, TokenStream>,
    pub(super) metrics: BTreeMap<OpId, Ident>,
    /// The `JoinSpec` type of each two-input join (exchanges into it route by its keys).
    pub join_specs: BTreeMap<OpId, Ident>,
    /// The row type of each operator's output (for an updating stream, `types` holds
    /// `Change<row>`).
    pub(super) rows: BTreeMap<OpId, TokenStream>,
    /// Checkpoint ids of the operators that save state (see [`super::state`]).
    pub state_ids: BTreeMap<OpId, String>,
    /// Binary or one of the library forms ([`super::embed`]).
    pub form: Form<'a>,
    /// The in-memory inputs and outputs of [`Form::Memory`].
    pub memory: MemoryIo,
}

impl<'a> EmitCx<'a> {
    pub fn expr(&mut self, record: Ident) -> ExprGen<'_> {
        ExprGen {
            namer: &mut self.namer,
            statics: &mut self.statics,
            rt: &self.rt,
            record,
            joined: None,
        }
    }

    /// Expressions over a left record `l` and a joined record `r` whose fields are `prefix`+name.
    pub fn join_expr(&mut self, prefix: &str) -> ExprGen<'_> {
        ExprGen {
            namer: &mut self.namer,
            statics: &mut self.statics,
            rt: &self.rt,
            record: format_ident!("l"),
            joined: Some((prefix.to_string(), format_ident!("r"))),
        }
    }

    pub fn record_type(&self, op: OpId) -> TokenStream {
        self.types[&op].clone()
    }

    /// The row type of `op`'s output (without `Change`).
    pub fn row_type(&self, op: OpId) -> TokenStream {
        self.rows
            .get(&op)
            .cloned()
            .unwrap_or_else(|| self.types[&op].clone())
    }

    pub fn input_row_type(&self, op: OpId) -> TokenStream {
        self.row_type(self.input_op(op))
    }

    /// Whether `op`'s input is an updating stream.
    pub fn input_updating(&self, op: OpId) -> Option<crate::sema::Updating> {
        self.graph.node(self.input_op(op)).ty.updating.clone()
    }

    /// The operator whose records `op` reads: its (first) input, or, for records that leave a
    /// window as late records (output port 1), the window's own input.
    pub(super) fn input_op(&self, op: OpId) -> OpId {
        let (edge, from) = *self
            .graph
            .inputs(op)
            .first()
            .expect("validated: operator has an input");
        self.record_source(edge, from)
    }

    /// The operator whose record type flows on `edge` (leaving `from`).
    pub(super) fn record_source(&self, edge: crate::ir::EdgeId, from: OpId) -> OpId {
        if self.graph.edge(edge).from_port == 1 {
            self.input_op(from)
        } else {
            from
        }
    }

    pub fn input_type(&self, op: OpId) -> TokenStream {
        self.types[&self.input_op(op)].clone()
    }

    pub fn input_stream_type(&self, op: OpId) -> StreamType {
        self.graph.node(self.input_op(op)).ty.clone()
    }

    pub fn output_type(&self, op: OpId) -> TokenStream {
        self.types.get(&op).cloned().unwrap_or_else(|| quote!(()))
    }

    /// Sets the row type of `op`'s output (a source names its own); an updating stream
    /// carries changes of its rows (an upsert-Kafka source's).
    pub fn set_output_type(&mut self, op: OpId, ty: TokenStream) {
        let rt = &self.rt;
        self.rows.insert(op, ty.clone());
        let ty = if self.graph.node(op).ty.updating.is_some() {
            quote!(#rt::ops::Change<#ty>)
        } else {
            ty
        };
        self.types.insert(op, ty);
    }

    pub fn metrics_handle(&mut self, op: OpId) -> Ident {
        self.metrics
            .entry(op)
            .or_insert_with(|| format_ident!("m_{}", op.to_string()))
            .clone()
    }

    /// The dead-letter output for records of `op` whose expressions overflow: the variable
    /// and the setup statement that creates it ([`weir_runtime::overflow::Overflows`]).
    pub fn overflows(&mut self, op: OpId) -> (Ident, TokenStream) {
        let metrics = self.metrics_handle(op);
        let rt = &self.rt;
        let var = format_ident!("overflows_{}", op.to_string());
        let setup = quote! {
            let #var = #rt::overflow::Overflows::new(rt.dead_letters().clone(), #metrics.clone());
        };
        (var, setup)
    }

    /// The variable holding source `index`'s split count.
    pub fn splits_var(&self, index: usize) -> Ident {
        format_ident!("splits_{}", index)
    }

    /// `Record { field: expr, ... }` for a select.
    pub fn build_record(
        &mut self,
        record: &TokenStream,
        ty: &StreamType,
        items: &[(String, TExpr)],
        input: Ident,
    ) -> TokenStream {
        let mut gen = self.expr(input);
        let fields = items
            .iter()
            .zip(&ty.schema.fields)
            .map(|((name, e), field)| {
                let id = namer::field_ident(name);
                let v = gen.coerce(e, field.ty, field.nullable);
                quote!(#id: #v)
            });
        let fields: Vec<_> = fields.collect();
        quote!(#record { #(#fields,)* })
    }
}

/// The parallelism of a class, as an expression evaluated in `build()`.
pub fn parallelism(p: Parallelism) -> TokenStream {
    match p {
        Parallelism::Splits(s) => {
            let v = format_ident!("splits_{}", s);
            quote!(#v)
        }
        Parallelism::Keyed => quote!(keyed),
        Parallelism::One => quote!(1usize),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, sorted.
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    /// Generated code names the runtime through the emit context (`#rt::...`), so that one
    /// emitter serves a binary's crate and a crate embedding the pipeline: the crate's path is
    /// written in code once, in [`super::CRATE_RUNTIME`]. A literal path anywhere else in the
    /// compiler or the macros would name a crate an embedding user does not depend on.
    #[test]
    fn the_runtime_path_is_written_once() {
        let needle = concat!("::", "weir_runtime");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        rust_files(&root.join("src"), &mut files);
        rust_files(&root.join("../macros/src"), &mut files);
        let mut found = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || code.starts_with("pub const CRATE_RUNTIME") {
                    continue;
                }
                if line.contains(needle) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, code));
                }
            }
        }
        assert!(
            found.is_empty(),
            "write `#rt::...` with the emit context's runtime path (`cx.rt`), not `{needle}`:\n{}",
            found.join("\n")
        );
    }
}
