//! Code generation: a validated dataflow graph becomes one Rust file (a `main.rs`) that links to
//! `weir_runtime`. Each operator's emitter (in `ops/`) fills its slots; this driver names the
//! record types, stitches every task's operators into one statically composed chain, creates
//! the channels between tasks, and formats the result with prettyplease. The output depends
//! only on the graph: same input, same bytes.

pub mod embed;
pub mod expr;
pub mod namer;
pub mod records;
pub mod state;

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::ir::validate::GraphInfo;
use crate::ir::{Dataflow, EdgeKind, Op, OpId, Parallelism, Stateless};
use crate::ops::{self, Emitted, Role};
use crate::sema::{SourceKind, StreamType, TExpr};
use expr::{ExprGen, Statics};
use namer::Namer;

/// State shared by the operator emitters.
pub struct EmitCx<'a> {
    pub graph: &'a Dataflow,
    pub namer: Namer,
    pub statics: Statics,
    items: Vec<TokenStream>,
    /// The Rust type of each operator's output records.
    types: BTreeMap<OpId, TokenStream>,
    metrics: BTreeMap<OpId, Ident>,
    emitted_sources: BTreeMap<OpId, Emitted>,
    /// The `JoinSpec` type of each two-input join (exchanges into it route by its keys).
    pub join_specs: BTreeMap<OpId, Ident>,
    /// The row type of each operator's output (for an updating stream, `types` holds
    /// `Change<row>`).
    rows: BTreeMap<OpId, TokenStream>,
    /// Checkpoint ids of the operators that save state (see [`state`]).
    pub state_ids: BTreeMap<OpId, String>,
    /// Binary or one of the library forms ([`embed`]).
    pub form: embed::Form<'a>,
    /// The in-memory inputs and outputs of [`embed::Form::Memory`].
    pub memory: embed::MemoryIo,
}

impl<'a> EmitCx<'a> {
    pub fn expr(&mut self, record: Ident) -> ExprGen<'_> {
        ExprGen {
            namer: &mut self.namer,
            statics: &mut self.statics,
            record,
            joined: None,
        }
    }

    /// Expressions over a left record `l` and a joined record `r` whose fields are `prefix`+name.
    pub fn join_expr(&mut self, prefix: &str) -> ExprGen<'_> {
        ExprGen {
            namer: &mut self.namer,
            statics: &mut self.statics,
            record: format_ident!("l"),
            joined: Some((prefix.to_string(), format_ident!("r"))),
        }
    }

    pub fn record_type(&self, op: OpId) -> TokenStream {
        self.types[&op].clone()
    }

    pub fn push_item(&mut self, item: TokenStream) {
        self.items.push(item);
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
    fn input_op(&self, op: OpId) -> OpId {
        let (edge, from) = *self
            .graph
            .inputs(op)
            .first()
            .expect("validated: operator has an input");
        self.record_source(edge, from)
    }

    /// The operator whose record type flows on `edge` (leaving `from`).
    fn record_source(&self, edge: crate::ir::EdgeId, from: OpId) -> OpId {
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
        self.rows.insert(op, ty.clone());
        let ty = if self.graph.node(op).ty.updating.is_some() {
            quote!(::weir_runtime::ops::Change<#ty>)
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
        let var = format_ident!("overflows_{}", op.to_string());
        let setup = quote! {
            let #var = ::weir_runtime::overflow::Overflows::new(rt.dead_letters().clone(), #metrics.clone());
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

/// Generates the pipeline's `main.rs`, formatted.
pub fn generate(graph: &Dataflow, info: &GraphInfo) -> String {
    let (tokens, statics) = generate_parts(graph, info, embed::Form::Binary);
    let file = format_file(tokens);
    let mut features = runtime_features(graph);
    if statics.uses_regexes() {
        features.push("regex");
    }
    if statics.uses_zones() {
        features.push("tz");
    }
    if features.is_empty() {
        return file;
    }
    // After the `// @generated` line.
    let (head, body) = file.split_once('\n').unwrap_or((&file, ""));
    format!("{head}\n{FEATURES_LINE}{}\n{body}", features.join(", "))
}

/// Formats generated tokens as a file headed `// @generated`.
pub fn format_file(tokens: TokenStream) -> String {
    let file: syn::File = match syn::parse2(tokens.clone()) {
        Ok(file) => file,
        // An emitter produced invalid syntax: a weir bug. Return the raw tokens so rustc
        // reports where.
        Err(_) => return format!("// @generated by weir (unformatted: internal error)\n{tokens}"),
    };
    let body = prettyplease::unparse(&file);
    format!("// @generated by weir. Do not edit: change the pipeline and rebuild.\n{body}")
}

/// The line of a generated `main.rs` that lists the runtime's cargo features it needs (the
/// driver enables them in the pipeline crate's manifest).
pub const FEATURES_LINE: &str = "// weir-runtime features: ";

/// Optional runtime features the graph's connectors need, in this order: `kafka` when a source or a
/// sink is a Kafka one (librdkafka is compiled only for such pipelines), `postgres` when a
/// sink writes to PostgreSQL or a lookup join reads it, `parquet` for a Parquet file sink,
/// `avro` for a source or sink in `format avro`.
/// ([`generate`] adds `regex` after them when an expression
/// matches a pattern, then `tz` when one names a time zone.)
pub fn runtime_features(graph: &Dataflow) -> Vec<&'static str> {
    let ops = graph.ops();
    let kafka = ops.iter().any(|&op| match &graph.node(op).op {
        Op::Source { def, .. } => matches!(def.kind, SourceKind::Kafka(_)),
        Op::Sink(def) => matches!(def.kind, crate::sema::SinkKind::Kafka { .. }),
        _ => false,
    });
    let postgres = ops.iter().any(|&op| match &graph.node(op).op {
        Op::Sink(def) => matches!(def.kind, crate::sema::SinkKind::Postgres { .. }),
        Op::Join {
            table: Some(def), ..
        } => matches!(def.kind, SourceKind::Postgres { .. }),
        _ => false,
    });
    let parquet = ops.iter().any(|&op| match &graph.node(op).op {
        Op::Sink(def) => matches!(def.kind, crate::sema::SinkKind::Parquet { .. }),
        Op::Source { def, .. } => matches!(def.kind, SourceKind::Parquet { .. }),
        _ => false,
    });
    let is_avro = |f: &crate::sema::Format| matches!(f, crate::sema::Format::Avro(_));
    let avro = ops.iter().any(|&op| match &graph.node(op).op {
        Op::Source { def, .. } => match &def.kind {
            SourceKind::File { format, .. } | SourceKind::Stdin { format } => is_avro(format),
            SourceKind::Kafka(k) => is_avro(&k.format),
            _ => false,
        },
        Op::Sink(def) => match &def.kind {
            crate::sema::SinkKind::File { format, .. }
            | crate::sema::SinkKind::Stdout { format }
            | crate::sema::SinkKind::Kafka { format, .. } => is_avro(format),
            _ => false,
        },
        _ => false,
    });
    let mut features = Vec::new();
    if kafka {
        features.push("kafka");
    }
    if postgres {
        features.push("postgres");
    }
    if parquet {
        features.push("parquet");
    }
    if avro {
        features.push("avro");
    }
    features
}

/// The generated code of `form`, unformatted.
pub fn generate_tokens(graph: &Dataflow, info: &GraphInfo, form: embed::Form<'_>) -> TokenStream {
    generate_parts(graph, info, form).0
}

/// The generated code of `form`, unformatted, and its statics (which say whether it names a
/// time zone or compiles a regular expression).
fn generate_parts(
    graph: &Dataflow,
    info: &GraphInfo,
    form: embed::Form<'_>,
) -> (TokenStream, expr::Statics) {
    let mut cx = EmitCx {
        form,
        memory: embed::MemoryIo::default(),
        graph,
        namer: Namer::default(),
        statics: Statics::default(),
        items: Vec::new(),
        types: BTreeMap::new(),
        metrics: BTreeMap::new(),
        emitted_sources: BTreeMap::new(),
        join_specs: BTreeMap::new(),
        rows: BTreeMap::new(),
        state_ids: BTreeMap::new(),
    };
    // In-memory runs take no checkpoints (their sources are Rust iterators): no participants.
    let state_plan = if cx.form.is_memory() {
        state::StatePlan::empty()
    } else {
        state::plan(graph, &info.topo_order)
    };
    cx.state_ids = state_plan.ids.clone();
    // Record types, in topological order: a filter passes its input type on.
    for op in &info.topo_order {
        let node = graph.node(*op);
        let ty = match &node.op {
            Op::Source { def, .. } => match &def.kind {
                SourceKind::Nexmark { stream, .. } => {
                    let t = format_ident!("{}", stream.rust_type());
                    quote!(::weir_runtime::nexmark::#t)
                }
                // Named by the source emitter.
                _ => quote!(()),
            },
            Op::Filter(_) => cx.input_type(*op),
            Op::Fused(steps) if !steps.iter().any(|s| matches!(s, Stateless::Select(..))) => {
                cx.input_type(*op)
            }
            Op::Select(_)
            | Op::Fused(_)
            | Op::WindowAggregate(_)
            | Op::GroupAggregate(_)
            | Op::FinalAggregate(_)
            | Op::RetractAggregate(_)
            | Op::Join { .. } => {
                let name = cx.namer.fresh(&format!("Op{}Record", op.index()));
                cx.items
                    .push(records::record_struct(&name, &node.ty.schema));
                quote!(#name)
            }
            Op::TopN(def) | Op::FinalTopN(def) | Op::RetractTopN(def) if !def.with_rank => {
                cx.row_type(cx.input_op(*op))
            }
            Op::TopN(_) | Op::FinalTopN(_) | Op::RetractTopN(_) => {
                let name = cx.namer.fresh(&format!("Op{}Record", op.index()));
                cx.items
                    .push(records::record_struct(&name, &node.ty.schema));
                quote!(#name)
            }
            Op::Sink(_) => quote!(()),
        };
        // An updating stream carries changes of its rows.
        cx.rows.insert(*op, ty.clone());
        let ty = if node.ty.updating.is_some() && !matches!(node.op, Op::Sink(_)) {
            quote!(::weir_runtime::ops::Change<#ty>)
        } else {
            ty
        };
        cx.types.insert(*op, ty);
        // Sources name their own record type; emit them first so later types can refer to it.
        if let Op::Source {
            source_index,
            def,
            projection,
        } = &node.op
        {
            let emitted =
                ops::source::emit(&mut cx, *op, *source_index, def, projection.as_deref());
            cx.emitted_sources.insert(*op, emitted);
        }
    }
    let mut emitted: BTreeMap<OpId, Emitted> = std::mem::take(&mut cx.emitted_sources);
    for op in &info.topo_order {
        let node = graph.node(*op);
        let e = match &node.op {
            Op::Source { .. } => continue,
            Op::Filter(pred) => ops::filter::emit(&mut cx, *op, pred),
            Op::Select(items) => ops::select::emit(&mut cx, *op, items),
            Op::Fused(steps) => ops::fused::emit(&mut cx, *op, steps),
            Op::WindowAggregate(agg) => ops::window_aggregate::emit(&mut cx, *op, agg),
            Op::GroupAggregate(agg) => ops::group_aggregate::emit(&mut cx, *op, agg),
            Op::FinalAggregate(agg) => ops::final_aggregate::emit(&mut cx, *op, agg),
            Op::RetractAggregate(agg) => ops::retract_aggregate::emit(&mut cx, *op, agg),
            Op::Join { def, table } => ops::join::emit(&mut cx, *op, def, table.as_ref()),
            Op::TopN(def) => ops::top_n::emit(&mut cx, *op, def),
            Op::FinalTopN(def) => ops::final_top_n::emit(&mut cx, *op, def),
            Op::RetractTopN(def) => ops::retract_top_n::emit(&mut cx, *op, def),
            Op::Sink(def) => ops::sink::emit(&mut cx, *op, def),
        };
        emitted.insert(*op, e);
    }
    let build = wiring(&mut cx, info, &mut emitted, &state_plan);
    let mut items = std::mem::take(&mut cx.items);
    for e in emitted.values_mut() {
        items.append(&mut e.items);
    }
    let statics = &cx.statics.items;
    let preview = graph
        .ops()
        .into_iter()
        .any(|op| matches!(&graph.node(op).op, Op::Sink(def) if def.preview.is_some()));
    let entry = embed::entry_points(&cx.form, &cx.memory, preview);
    let tokens = quote! {
        #![allow(unused, non_camel_case_types, non_snake_case, clippy::all)]
        use ::weir_runtime::prelude::*;
        #(#statics)*
        #(#items)*
        #build
        #entry
    };
    (tokens, cx.statics)
}

/// The parallelism of a class, as an expression evaluated in `build()`.
pub(crate) fn parallelism(p: Parallelism) -> TokenStream {
    match p {
        Parallelism::Splits(s) => {
            let v = format_ident!("splits_{}", s);
            quote!(#v)
        }
        Parallelism::Keyed => quote!(keyed),
        Parallelism::One => quote!(1usize),
    }
}

/// `fn build(rt)`: options, channels, and one spawn loop per task.
fn wiring(
    cx: &mut EmitCx<'_>,
    info: &GraphInfo,
    emitted: &mut BTreeMap<OpId, Emitted>,
    state_plan: &state::StatePlan,
) -> TokenStream {
    let graph = cx.graph;
    checkpointed(emitted, state_plan);
    let mut setup = Vec::new();
    // Split counts of generator and Kafka sources, the keyed parallelism (default: the
    // largest), and the split counts of file sources (their own, or the keyed parallelism).
    let mut split_vars = Vec::new();
    let mut file_splits = Vec::new();
    for op in &info.topo_order {
        if let Op::Source {
            source_index, def, ..
        } = &graph.node(*op).op
        {
            let v = format_ident!("splits_{}", source_index);
            match &def.kind {
                SourceKind::Nexmark { params, .. } => {
                    let g = params.generators as usize;
                    setup.push(
                        quote!(let #v: usize = rt.args.generators.map_or(#g, |g| g as usize);),
                    );
                    split_vars.push(v);
                }
                // Consumers in one group: `--parallelism` overrides the pipeline's count.
                SourceKind::Kafka(k) => {
                    let n = k.parallelism as usize;
                    setup.push(quote!(let #v: usize = rt.parallelism(#n);));
                    split_vars.push(v);
                }
                // An Avro file has one reader.
                SourceKind::File {
                    format: crate::sema::Format::Avro(_),
                    ..
                } => file_splits.push((v, Some(1))),
                SourceKind::File { parallelism, .. } | SourceKind::Parquet { parallelism, .. } => {
                    file_splits.push((v, *parallelism))
                }
                // (A postgres source is a lookup table, never an operator: sema.)
                SourceKind::Stdin { .. } | SourceKind::Postgres { .. } => {}
            }
        }
    }
    let default_keyed = split_vars
        .iter()
        .fold(quote!(1usize), |acc, v| quote!(#acc.max(#v)));
    setup.push(quote!(let keyed: usize = rt.parallelism(#default_keyed);));
    // A file is split among as many readers as the job has instances (as a Flink file
    // source's parallelism follows the job's), unless the source fixes its own.
    for (v, fixed) in file_splits {
        match fixed {
            Some(n) => {
                let n = n as usize;
                setup.push(quote!(let #v: usize = #n;));
            }
            None => setup.push(quote!(let #v: usize = keyed;)),
        }
    }
    setup.push(quote!(let metrics = rt.metrics().clone();));
    setup.push(describe_plan(graph, &cx.metrics));
    // Metrics handles, in operator order.
    for (op, handle) in &cx.metrics {
        let label = metric_label(graph, *op);
        setup.push(quote!(let #handle = rt.op(#label);));
    }
    // Sources first, then the scale-out decision, then the rest: a scale-out supervisor must
    // not open the sinks' files (its tasks write them).
    for (op, e) in emitted.iter_mut() {
        if matches!(graph.node(*op).op, Op::Source { .. }) {
            setup.append(&mut e.setup);
        }
    }
    setup.push(scale_out(cx, info));
    // Sinks last: their outputs are opened (a file truncated) only once every input has
    // opened and every lookup table has been read, so a failed start destroys no output.
    for (op, e) in emitted.iter_mut() {
        if !matches!(graph.node(*op).op, Op::Sink(_)) {
            setup.append(&mut e.setup);
        }
    }
    for e in emitted.values_mut() {
        setup.append(&mut e.setup);
    }
    // Channels: one set per operator fed from other tasks (a join's two inputs share it, as
    // `Either::Left`/`Right`), and an exchange per edge that leaves a task.
    let mut consumers: BTreeMap<OpId, (Ident, Ident, TokenStream)> = BTreeMap::new();
    let mut channel_edges: Vec<ChannelEdge> = Vec::new();
    for (edge, from, to) in graph.edges() {
        if graph.node(from).task == graph.node(to).task {
            continue;
        }
        let id = edge.0.index();
        let (m, route) = (
            format_ident!("m_edge_{}", id),
            format_ident!("route_{}", id),
        );
        let ty = cx.types[&cx.record_source(edge, from)].clone();
        let kind = graph.edge(edge).kind.clone();
        let port = graph.edge(edge).port;
        let join_spec = cx.join_specs.get(&to).cloned();
        // Instances upstream of this edge's port come after those of lower ports.
        let inputs = graph.inputs(to);
        let mut offset = quote!(0usize);
        for (e, f) in &inputs {
            if graph.edge(*e).port < port {
                let p = parallelism(graph.node(*f).parallelism);
                offset = quote!(#offset + #p);
            }
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = consumers.entry(to) {
            let (tx, rx) = (
                format_ident!("tx_op{}", to.index()),
                format_ident!("rx_op{}", to.index()),
            );
            let message = match &join_spec {
                Some(spec) => quote!(Either<<#spec as JoinSpec>::Left, <#spec as JoinSpec>::Right>),
                None => ty.clone(),
            };
            let par_to = parallelism(graph.node(to).parallelism);
            setup.push(quote!(let (#tx, #rx) = channels::<#message>(#par_to);));
            let mut n_upstream = quote!(0usize);
            for (e, f) in &inputs {
                let p = if graph.edge(*e).kind == EdgeKind::Forward {
                    quote!(1usize)
                } else {
                    parallelism(graph.node(*f).parallelism)
                };
                n_upstream = quote!(#n_upstream + #p);
            }
            slot.insert((tx, rx, n_upstream));
        }
        let label = format!("exchange op{}->op{} {}", from.index(), to.index(), kind);
        setup.push(quote!(let #m = rt.op(#label);));
        let (route_fn, wrap) = match (&join_spec, port) {
            (Some(spec), 0) => (
                quote!(::weir_runtime::hash::route(&<#spec as JoinSpec>::left_key(r))),
                quote!(|r: &#ty| Either::Left(::std::clone::Clone::clone(r))),
            ),
            (Some(spec), _) => (
                quote!(::weir_runtime::hash::route(&<#spec as JoinSpec>::right_key(r))),
                quote!(|r: &#ty| Either::Right(::std::clone::Clone::clone(r))),
            ),
            (None, _) => {
                let route = match &kind {
                    EdgeKind::Hash(keys) => {
                        let fields = keys.iter().map(|k| namer::field_ident(k));
                        quote!(::weir_runtime::hash::route(&(#(&r.#fields,)*)))
                    }
                    _ => quote!(0),
                };
                (route, quote!(|r: &#ty| ::std::clone::Clone::clone(r)))
            }
        };
        cx.items.push(quote! {
            #[inline(always)]
            fn #route(r: &#ty) -> u64 { #route_fn }
        });
        let tx = consumers[&to].0.clone();
        channel_edges.push(ChannelEdge {
            edge,
            from,
            to,
            tx,
            m,
            route,
            wrap,
            offset,
            kind,
            here: None,
        });
    }
    // Edges whose consumer may run in its producer's task: a one-instance consumer with this
    // single input and no channel of its own downstream. Whether it does is decided at run
    // time, when the producer's instance count is known (`weir_runtime::inline`).
    let task_of = |op: OpId| {
        info.tasks
            .iter()
            .position(|t| t.contains(&op))
            .expect("every operator is in a task")
    };
    let feeds: Vec<usize> = channel_edges.iter().map(|c| task_of(c.from)).collect();
    for c in channel_edges.iter_mut() {
        let consumer = task_of(c.to);
        let eligible = info.inline_exchanges
            && graph.node(c.to).parallelism == Parallelism::One
            && graph.inputs(c.to).len() == 1
            && !cx.join_specs.contains_key(&c.to)
            && info.tasks[consumer][0] == c.to
            && !feeds.contains(&consumer);
        if eligible {
            let flag = format_ident!("inline_op{}", c.to.index());
            let from = parallelism(graph.node(c.from).parallelism);
            setup.push(quote!(let #flag = #from == 1usize;));
            c.here = Some((format_ident!("here_op{}", c.to.index()), flag, consumer));
        }
    }
    // What each task captures and builds: clones per instance, values taken once, the senders
    // of the channels it feeds, and its chain.
    let mut parts = Vec::new();
    for ops_in_task in &info.tasks {
        // Captured handles: clone per instance; moved values: taken once.
        let mut clones = Vec::new();
        let mut moves = Vec::new();
        for op in ops_in_task {
            let e = &emitted[op];
            for c in &e.captures {
                if !clones.contains(c) {
                    clones.push(c.clone());
                }
            }
            moves.extend(e.moves.iter().cloned());
        }
        // Senders and exchange metrics of the channels this task feeds.
        let mut sender_setup = Vec::new();
        let mut done: Vec<Ident> = Vec::new();
        for c in &channel_edges {
            if ops_in_task.contains(&c.from) {
                let (tx, m) = (&c.tx, &c.m);
                let local = format_ident!("{}_e{}", tx, c.edge.0.index());
                if c.kind == EdgeKind::Forward {
                    sender_setup.push(quote!(let #local = vec![#tx[instance].clone()];));
                } else {
                    sender_setup.push(quote!(let #local = #tx.clone();));
                }
                if !done.contains(m) {
                    sender_setup.push(quote!(let #m = #m.clone();));
                    done.push(m.clone());
                }
            }
        }
        let chain = chain_expr(graph, ops_in_task[0], ops_in_task, emitted, &channel_edges);
        let clone_stmts: Vec<TokenStream> = clones
            .iter()
            .map(|c| quote!(let #c = #c.clone();))
            .collect();
        let take_stmts: Vec<TokenStream> = moves.iter().map(|m| {
            quote!(let #m = #m.take().ok_or_else(|| "internal error: a task started twice".to_string())?;)
        }).collect();
        parts.push((clone_stmts, take_stmts, sender_setup, chain));
    }
    // One spawn loop per task.
    let mut spawns = Vec::new();
    for (task_index, ops_in_task) in info.tasks.iter().enumerate() {
        let root = ops_in_task[0];
        let root_node = graph.node(root);
        let par = parallelism(root_node.parallelism);
        let task_name = format!("task{task_index}-{}", root_node.op.kind_name());
        let (clone_stmts, take_stmts, sender_setup, chain) = &parts[task_index];
        // The consumers that may run here: built in this task when they do.
        let mut here_setup = Vec::new();
        for c in &channel_edges {
            if let (true, Some((here, flag, consumer))) = (ops_in_task.contains(&c.from), &c.here) {
                let (clones, takes, senders, chain) = &parts[*consumer];
                here_setup.push(quote! {
                    let #here = if #flag {
                        #(#clones)*
                        #(#takes)*
                        #(#senders)*
                        Some(move || -> ::std::result::Result<_, ::std::string::String> {
                            Ok(#chain)
                        })
                    } else {
                        None
                    };
                });
            }
        }
        let name_expr = quote!(format!("{}-{}", #task_name, instance));
        match &emitted[&root].role {
            Role::Source(drive) => {
                let body = drive(quote!(chain), quote!(instance));
                spawns.push(quote! {
                    for instance in 0..#par {
                        #(#clone_stmts)*
                        #(#take_stmts)*
                        #(#sender_setup)*
                        #(#here_setup)*
                        rt.spawn(#name_expr, move || {
                            let chain = #chain;
                            #body
                        });
                    }
                });
            }
            _ => {
                let (_, rx, n_upstream) = consumers
                    .get(&root)
                    .expect("validated: a task root that is not a source has an input channel");
                let spawn = quote! {
                    for (instance, receiver) in #rx.into_iter().enumerate() {
                        #(#clone_stmts)*
                        #(#take_stmts)*
                        #(#sender_setup)*
                        #(#here_setup)*
                        rt.spawn(#name_expr, move || {
                            let chain = #chain;
                            run_input(receiver, #n_upstream, chain);
                            Ok(())
                        });
                    }
                };
                // A consumer that runs in its producer's task has no task of its own.
                let here = channel_edges.iter().find_map(|c| match &c.here {
                    Some((_, flag, consumer)) if *consumer == task_index => Some(flag),
                    _ => None,
                });
                spawns.push(match here {
                    Some(flag) => quote!(if !#flag { #spawn }),
                    None => spawn,
                });
            }
        }
    }
    let params = embed::build_params(&cx.form);
    // Every participant of checkpoints, declared before any task starts (a restore compares
    // them with the checkpoint's).
    let fingerprint = &state_plan.fingerprint;
    let slots = state_plan.participants(graph).into_iter().map(|p| {
        let (id, label, shape) = (p.id, p.label, p.shape);
        let instances = parallelism(graph.node(p.op).parallelism);
        quote!((#id, #label, #shape, #instances))
    });
    quote! {
        fn build(#params) -> ::std::result::Result<(), ::std::string::String> {
            #(#setup)*
            rt.checkpoint_plan(#fingerprint, &[#(#slots),*])?;
            #(#spawns)*
            Ok(())
        }
    }
}

/// Before any task starts: a pipeline whose sources are all Kafka topics hands them to the
/// scale-out supervisor under `--scale-out` (and starts nothing); any other pipeline refuses
/// `--scale-out`, naming the first source that is not Kafka. In-memory runs have neither.
fn scale_out(cx: &EmitCx<'_>, info: &GraphInfo) -> TokenStream {
    if cx.form.is_memory() {
        return quote!();
    }
    let mut kafka = Vec::new();
    let mut other = None;
    for op in &info.topo_order {
        if let Op::Source {
            source_index, def, ..
        } = &cx.graph.node(*op).op
        {
            match &def.kind {
                SourceKind::Kafka(_) => kafka.push(format_ident!("kafka_source_{}", source_index)),
                SourceKind::Nexmark { .. } => {
                    other.get_or_insert(format!("`{}` is a nexmark generator", def.name));
                }
                SourceKind::File { path, .. } | SourceKind::Parquet { path, .. } => {
                    other.get_or_insert(format!("`{}` reads the file {path}", def.name));
                }
                SourceKind::Stdin { .. } => {
                    other.get_or_insert(format!("`{}` reads stdin", def.name));
                }
                SourceKind::Postgres { .. } => {
                    other.get_or_insert(format!("`{}` reads PostgreSQL", def.name));
                }
            }
        }
    }
    match other {
        Some(why) => quote!(rt.single_process(#why)?;),
        None => quote! {
            if rt.scale_out(&[#(&#kafka),*])? {
                return Ok(());
            }
        },
    }
}

/// Chain elements of participants other than sources restore and save their state through a
/// slot: `constructor.with_state(slot(id, instance))?`.
fn checkpointed(emitted: &mut BTreeMap<OpId, Emitted>, state_plan: &state::StatePlan) {
    for (op, id) in &state_plan.ids {
        let Some(e) = emitted.get_mut(op) else {
            continue;
        };
        let id = id.clone();
        let slot = quote!(::weir_runtime::checkpoint::slot(#id, instance));
        let role = std::mem::replace(&mut e.role, Role::Leaf(quote!()));
        e.role = match role {
            Role::Source(drive) => Role::Source(drive),
            Role::Leaf(leaf) => Role::Leaf(quote!(#leaf.with_state(#slot)?)),
            Role::Stage(build) => Role::Stage(Box::new(move |next| {
                let e = build(next);
                quote!(#e.with_state(#slot)?)
            })),
            Role::StageWithLate(build) => Role::StageWithLate(Box::new(move |next, late| {
                let e = build(next, late);
                quote!(#e.with_state(#slot)?)
            })),
        };
    }
}

/// An edge between tasks: the consumer's senders, the exchange's metrics, routing and wrapping.
struct ChannelEdge {
    edge: crate::ir::EdgeId,
    from: OpId,
    tx: Ident,
    m: Ident,
    route: Ident,
    wrap: TokenStream,
    /// Index of this edge's first upstream instance among all instances feeding `to`.
    offset: TokenStream,
    kind: EdgeKind,
    to: OpId,
    /// When the consumer may run in the producer's task: the producer's variable holding the
    /// consumer's chain builder, the flag that says it does, and the consumer's task index.
    here: Option<(Ident, Ident, usize)>,
}

/// What follows `op` within its task: successors in the task nested in, edges leaving the
/// task as exchanges, several consumers combined with `Tee`, none as `Discard`.
fn next_expr(
    graph: &Dataflow,
    op: OpId,
    task: &[OpId],
    emitted: &BTreeMap<OpId, Emitted>,
    channels: &[ChannelEdge],
) -> TokenStream {
    next_expr_port(graph, op, 0, task, emitted, channels)
}

/// [`next_expr`] for the consumers of one output port (1: a window's late records).
fn next_expr_port(
    graph: &Dataflow,
    op: OpId,
    port: u8,
    task: &[OpId],
    emitted: &BTreeMap<OpId, Emitted>,
    channels: &[ChannelEdge],
) -> TokenStream {
    let mut nexts = Vec::new();
    for (edge, to) in graph.outputs(op) {
        if graph.edge(edge).from_port != port {
            continue;
        }
        if task.contains(&to) {
            nexts.push(stage_expr(graph, to, task, emitted, channels));
        } else if let Some(c) = channels.iter().find(|c| c.edge == edge) {
            let (m, route, wrap, offset) = (&c.m, &c.route, &c.wrap, &c.offset);
            let tx = format_ident!("{}_e{}", c.tx, c.edge.0.index());
            let from = if c.kind == EdgeKind::Forward {
                quote!(#offset)
            } else {
                quote!(#offset + instance)
            };
            let exchange = quote!(Exchange::new(#m.clone(), #from, #tx.clone(), #route, #wrap));
            nexts.push(match &c.here {
                Some((here, _, _)) => quote! {
                    match #here {
                        Some(make) => Route::Here(Inline::new(#m.clone(), make()?)),
                        None => Route::Channel(#exchange),
                    }
                },
                None => exchange,
            });
        }
    }
    let mut it = nexts.into_iter().rev();
    match it.next() {
        None => quote!(Discard),
        Some(last) => it.fold(last, |acc, n| quote!(Tee::new(#n, #acc))),
    }
}

/// The chain of a task: for a source, what follows it; otherwise the root operator itself.
fn chain_expr(
    graph: &Dataflow,
    root: OpId,
    task: &[OpId],
    emitted: &BTreeMap<OpId, Emitted>,
    channels: &[ChannelEdge],
) -> TokenStream {
    match &emitted[&root].role {
        Role::Source(_) => next_expr(graph, root, task, emitted, channels),
        _ => stage_expr(graph, root, task, emitted, channels),
    }
}

/// An operator's chain element with everything after it.
fn stage_expr(
    graph: &Dataflow,
    op: OpId,
    task: &[OpId],
    emitted: &BTreeMap<OpId, Emitted>,
    channels: &[ChannelEdge],
) -> TokenStream {
    match &emitted[&op].role {
        Role::Leaf(leaf) => leaf.clone(),
        Role::Stage(build) => build(next_expr(graph, op, task, emitted, channels)),
        Role::StageWithLate(build) => build(
            next_expr(graph, op, task, emitted, channels),
            next_expr_port(graph, op, 1, task, emitted, channels),
        ),
        Role::Source(_) => next_expr(graph, op, task, emitted, channels),
    }
}

/// The operator's name in the run summary: id, kind and the pipeline text, shortened.
/// The call that hands the run its plan (`weir_runtime::plan`): every operator in
/// topological order with what `weir explain` says of it, every edge, and the names the
/// operators and exchanges register their counters under, so the HTTP endpoint can show
/// the graph with its live values.
fn describe_plan(graph: &Dataflow, counters: &BTreeMap<OpId, Ident>) -> TokenStream {
    let operators = graph.topo_order().into_iter().map(|op| {
        let node = graph.node(op);
        let id = op.to_string();
        let kind = node.op.kind_name();
        let label = node.label.as_str();
        let parallelism = node.parallelism.to_string();
        let task = match node.task {
            Some(t) => quote!(::std::option::Option::Some(#t)),
            None => quote!(::std::option::Option::None),
        };
        let stream = match node.ty.updating {
            Some(_) => "updating",
            None => "append",
        };
        let properties = crate::ir::explain::properties(graph, op);
        let counters = match counters.contains_key(&op) {
            true => {
                let name = metric_label(graph, op);
                quote!(::std::option::Option::Some(#name))
            }
            false => quote!(::std::option::Option::None),
        };
        let source = match &node.op {
            Op::Source { def, .. } => {
                let name = def.name.as_str();
                quote!(::std::option::Option::Some(#name))
            }
            _ => quote!(::std::option::Option::None),
        };
        quote!(::weir_runtime::plan::PlanOp {
            id: #id,
            kind: #kind,
            label: #label,
            parallelism: #parallelism,
            task: #task,
            stream: #stream,
            properties: &[#(#properties),*],
            counters: #counters,
            source: #source,
        })
    });
    let edges = graph.edges().into_iter().map(|(edge, from, to)| {
        let kind = graph.edge(edge).kind.to_string();
        // The label the exchange of an edge between tasks registers (see `generate`).
        let exchange = match graph.node(from).task == graph.node(to).task {
            true => quote!(::std::option::Option::None),
            false => {
                let name = format!("exchange op{}->op{} {}", from.index(), to.index(), kind);
                quote!(::std::option::Option::Some(#name))
            }
        };
        let (from, to) = (from.to_string(), to.to_string());
        quote!(::weir_runtime::plan::PlanEdge {
            from: #from,
            to: #to,
            kind: #kind,
            exchange: #exchange,
        })
    });
    quote!(rt.describe(&::weir_runtime::plan::Plan {
        pipeline: ::std::option_env!("WEIR_PIPELINE"),
        operators: &[#(#operators),*],
        edges: &[#(#edges),*],
    });)
}

fn metric_label(graph: &Dataflow, op: OpId) -> String {
    let node = graph.node(op);
    let mut label = format!("{op} {}", node.label);
    if label.chars().count() > 44 {
        label = label.chars().take(43).collect::<String>() + "…";
    }
    label
}
