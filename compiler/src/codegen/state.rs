//! Which operators take part in checkpoints, their stable ids, and the shape of their state.
//!
//! A participant saves something at every checkpoint: a source its position, a stateful
//! operator its state, a file or checksum sink what it has committed. Each has a **shape**: one
//! `name: value` line per parameter that decides what its state means (a window's kind and
//! size, an aggregate's functions and arguments, a join's keys, condition, interval and TTL, a
//! top-N's size and order, a file source's path and format, the record types it stores), built
//! from the checked operator, never from the pipeline's text, so comments, formatting and
//! renumbered operators change nothing. The id is a hash of the shape: a changed parameter is a
//! different operator, and its old state is never read into it. The plan fingerprint hashes
//! all ids.
//!
//! The shapes travel into every checkpoint manifest; when a restore finds other ids, the
//! runtime pairs old and new operators and names the lines that differ
//! (`window: tumble(5s)` became `window: tumble(10s)`).
//!
//! What is deliberately not in a shape, because a restore stays correct when it changes
//! (docs/operations.md lists them): stateless steps (a filter's constant, a select's
//! expression) as long as the record types into and out of the stateful operators stay the
//! same; a source's watermark delay (the restored watermark never goes back); the number of
//! generator events; Kafka brokers, group and properties; where late records go.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::ir::{Dataflow, Op, OpId, Parallelism};
use crate::sema::functions::AggFunc;
use crate::sema::{
    AggItem, Format, JoinDef, RankDef, SinkKind, SourceKind, StateTtl, StreamType, TExpr,
    TExprKind, TtlClock, Window, WindowAggregate,
};

/// The participants of a plan, in operator order, and its fingerprint.
pub struct StatePlan {
    pub ids: BTreeMap<OpId, String>,
    /// Each participant's shape (see the module docs), as written into manifests.
    pub shapes: BTreeMap<OpId, String>,
    pub fingerprint: String,
}

/// One participant as a binary declares it to its checkpoints (what a manifest's slot line
/// holds but the instance count, which comes from the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    pub op: OpId,
    pub id: String,
    /// `opN` and the operator's pipeline text.
    pub label: String,
    pub shape: String,
}

impl StatePlan {
    /// A plan without participants (in-memory runs take no checkpoints).
    pub fn empty() -> StatePlan {
        StatePlan {
            ids: BTreeMap::new(),
            shapes: BTreeMap::new(),
            fingerprint: String::new(),
        }
    }

    /// The participants in id order, labelled as the generated `build` declares them (and as
    /// `weir check --against` compares them with a checkpoint's).
    pub fn participants(&self, graph: &Dataflow) -> Vec<Participant> {
        self.ids
            .iter()
            .map(|(op, id)| Participant {
                op: *op,
                id: id.clone(),
                label: format!("{op} {}", graph.node(*op).label),
                shape: self.shapes[op].clone(),
            })
            .collect()
    }
}

/// Whether `op` saves something at checkpoints (the operator table says, and a sink to
/// stdout has nothing to commit).
fn participates(op: &Op) -> bool {
    op.spec().checkpointed
        && !matches!(op, Op::Sink(def) if matches!(def.kind, SinkKind::Stdout { .. }))
}

/// `5s`, `250ms`, `1h30m` style text of a duration in milliseconds.
fn duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    if rest > 0 {
        let _ = write!(out, "{rest}ms");
    }
    out
}

fn type_text(ty: &StreamType) -> String {
    let mut out = ty.schema.to_string();
    if let Some(up) = &ty.updating {
        let _ = write!(out, " updating by ({})", up.key.join(", "));
    }
    out
}

fn format_text(format: &Format) -> String {
    let text = match format {
        Format::Json { .. } => "json".into(),
        Format::Csv {
            header, delimiter, ..
        } => format!(
            "csv(header: {header}, delimiter: {:?})",
            char::from(*delimiter)
        ),
        Format::Avro(avro) => {
            let mut text = format!("avro({}", avro.schema);
            if let Some(id) = avro.confluent_id {
                let _ = write!(text, ", confluent_id: {id}");
            }
            if let Some(codec) = &avro.codec {
                let _ = write!(text, ", codec: {codec}");
            }
            text.push(')');
            text
        }
    };
    // (Said only when not the default, so that earlier checkpoints keep their shape.)
    match format.timestamps() {
        crate::sema::Timestamps::Default => text,
        t => format!("{text} timestamps: {t:?}"),
    }
}

/// An expression as canonical text: its meaning, without spans or the way it was written.
fn expr(e: &TExpr) -> String {
    let mut out = String::new();
    write_expr(e, &mut out);
    out
}

fn write_expr(e: &TExpr, out: &mut String) {
    let binary = |a: &TExpr, op: &str, b: &TExpr, out: &mut String| {
        out.push('(');
        write_expr(a, out);
        let _ = write!(out, " {op} ");
        write_expr(b, out);
        out.push(')');
    };
    let args = |name: &str, args: &[TExpr], out: &mut String| {
        let _ = write!(out, "{name}(");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_expr(a, out);
        }
        out.push(')');
    };
    match &e.kind {
        TExprKind::Lit(lit) => {
            let _ = write!(out, "{lit:?}");
        }
        TExprKind::Field(name) => out.push_str(name),
        TExprKind::Member(a, name) => {
            out.push('(');
            write_expr(a, out);
            let _ = write!(out, ").{name}");
        }
        TExprKind::Index(a, b) => {
            out.push('(');
            write_expr(a, out);
            out.push_str(")[");
            write_expr(b, out);
            out.push(']');
        }
        TExprKind::Cardinality(a) => {
            out.push_str("cardinality(");
            write_expr(a, out);
            out.push(')');
        }
        TExprKind::ArrayContains(a, b) => {
            out.push_str("array_contains(");
            write_expr(a, out);
            out.push_str(", ");
            write_expr(b, out);
            out.push(')');
        }
        TExprKind::Neg(a) => {
            out.push_str("-(");
            write_expr(a, out);
            out.push(')');
        }
        TExprKind::Not(a) => {
            out.push_str("not (");
            write_expr(a, out);
            out.push(')');
        }
        TExprKind::Arith(op, a, b) => {
            let op = op.symbol();
            binary(a, op, b, out)
        }
        TExprKind::Compare(op, a, b) => {
            let op = op.symbol();
            binary(a, op, b, out)
        }
        TExprKind::And(a, b) => binary(a, "and", b, out),
        TExprKind::Or(a, b) => binary(a, "or", b, out),
        TExprKind::Call(func, a) => {
            let name = crate::sema::functions::FUNCTIONS
                .iter()
                .find(|s| s.func == *func)
                .map_or("?", |s| s.name);
            args(name, a, out)
        }
        TExprKind::Udf(path, a) => args(path, a, out),
        TExprKind::InList(x, list) => {
            out.push('(');
            write_expr(x, out);
            out.push_str(" in ");
            args("", list, out);
            out.push(')');
        }
        TExprKind::Case {
            branches,
            otherwise,
        } => {
            out.push_str("case");
            for (when, then) in branches {
                out.push_str(" when ");
                write_expr(when, out);
                out.push_str(" then ");
                write_expr(then, out);
            }
            if let Some(e) = otherwise {
                out.push_str(" else ");
                write_expr(e, out);
            }
            out.push_str(" end");
        }
        TExprKind::Cast(a) => {
            out.push_str("cast(");
            write_expr(a, out);
            let _ = write!(out, " as {})", e.ty);
        }
        TExprKind::IsNull { expr, negated } => {
            out.push('(');
            write_expr(expr, out);
            out.push_str(if *negated {
                " is not null)"
            } else {
                " is null)"
            });
        }
    }
}

fn opt_expr(e: Option<&TExpr>) -> String {
    e.map_or_else(|| "none".into(), expr)
}

fn window_text(w: &Window) -> String {
    match *w {
        Window::Tumble { size_ms } => format!("tumble({})", duration(size_ms)),
        Window::Hop { size_ms, slide_ms } => format!(
            "hop(size: {}, slide: {})",
            duration(size_ms),
            duration(slide_ms)
        ),
        Window::Cumulate { step_ms, size_ms } => format!(
            "cumulate(step: {}, size: {})",
            duration(step_ms),
            duration(size_ms)
        ),
        Window::Session { gap_ms } => format!("session(gap: {})", duration(gap_ms)),
        Window::Unbounded => "none".into(),
    }
}

fn agg_text(a: &AggItem) -> String {
    let mut out = format!("{}: {}(", a.name, a.udf.as_deref().unwrap_or(a.func.name()));
    if a.distinct {
        out.push_str("distinct ");
    }
    out.push_str(&a.arg.as_ref().map_or_else(String::new, expr));
    out.push(')');
    if let Some(f) = &a.filter {
        let _ = write!(out, " filter (where {})", expr(f));
    }
    out
}

/// The parameters that shape a participant's state, one `name: value` per line.
fn shape(graph: &Dataflow, op: OpId) -> String {
    let node = graph.node(op);
    let mut lines: Vec<(&str, String)> = Vec::new();
    let inputs = graph.inputs(op);
    let in_type = |port: usize| {
        inputs
            .get(port)
            .map_or_else(String::new, |(_, from)| type_text(&graph.node(*from).ty))
    };
    match &node.op {
        Op::Source { def, .. } => {
            lines.push(("operator", "source".into()));
            let (connector, format) = match &def.kind {
                SourceKind::Nexmark { stream, params } => (
                    format!(
                        "nexmark(stream: {}, rate: {}, out_of_order: {}, seed: {})",
                        stream.name(),
                        params.rate,
                        params.out_of_order_group,
                        params.seed
                    ),
                    None,
                ),
                SourceKind::File { path, format, .. } => (format!("file({path:?})"), Some(format)),
                SourceKind::Stdin { format } => ("stdin".into(), Some(format)),
                SourceKind::Parquet { path, .. } => (format!("parquet({path:?})"), None),
                SourceKind::Postgres { query, .. } => (format!("postgres(query: {query:?})"), None),
                // (The upsert key only when set, so that earlier checkpoints keep their shape.)
                SourceKind::Kafka(k) if !k.upsert_key.is_empty() => (
                    format!(
                        "kafka(topic: {:?}, upsert_key: ({}))",
                        k.topic,
                        k.upsert_key.join(", ")
                    ),
                    Some(&k.format),
                ),
                SourceKind::Kafka(k) => (format!("kafka(topic: {:?})", k.topic), Some(&k.format)),
            };
            lines.push(("connector", connector));
            if let Some(format) = format {
                lines.push(("format", format_text(format)));
            }
            let time = match (def.watermark_ms, def.ty.time_field) {
                (Some(_), Some(t)) => def.ty.schema.fields[t].name.clone(),
                _ => "none".into(),
            };
            lines.push(("event time", time));
        }
        // Every aggregate and every ranking keeps the shape it had as one operator, so that
        // checkpoints taken before the split still restore.
        Op::WindowAggregate(agg)
        | Op::GroupAggregate(agg)
        | Op::FinalAggregate(agg)
        | Op::RetractAggregate(agg) => aggregate(agg, &node.ty, &mut lines),
        Op::Join { def, .. } => join(def, &in_type(0), &in_type(1), &mut lines),
        Op::TopN(def) | Op::FinalTopN(def) | Op::RetractTopN(def) => {
            rank(def, &in_type(0), &mut lines)
        }
        Op::Sink(def) => {
            lines.push(("operator", "sink".into()));
            let target = match &def.kind {
                SinkKind::Stdout { format } => format!("stdout, {}", format_text(format)),
                SinkKind::File {
                    path,
                    format,
                    partition_by,
                    parts,
                } => {
                    let mut t = format!("file({path:?}), {}", format_text(format));
                    if !partition_by.is_empty() {
                        let _ = write!(t, ", partition_by ({})", partition_by.join(", "));
                    }
                    if *parts {
                        t.push_str(", a part file per instance");
                    }
                    t
                }
                SinkKind::Parquet {
                    path, partition_by, ..
                } => {
                    // (`roll_size` and `roll_interval` are not: files already written stay as they are.)
                    let mut t = format!("file({path:?}), parquet, files per instance");
                    if !partition_by.is_empty() {
                        let _ = write!(t, ", partition_by ({})", partition_by.join(", "));
                    }
                    t
                }
                SinkKind::Checksum => "checksum".into(),
                SinkKind::Postgres {
                    table,
                    exactly_once,
                    ..
                } => format!(
                    "postgres(table: {table:?}){}",
                    if *exactly_once { ", exactly once" } else { "" }
                ),
                SinkKind::Kafka {
                    topic,
                    format,
                    exactly_once,
                    ..
                } => format!(
                    "kafka(topic: {topic:?}), {}{}",
                    format_text(format),
                    if *exactly_once { ", exactly once" } else { "" }
                ),
            };
            lines.push(("target", target));
            lines.push(("rows", type_text(&node.ty)));
        }
        Op::Filter(_) | Op::Select(_) | Op::Fused(_) | Op::Unnest(_) => {
            lines.push(("operator", node.op.kind_name().into()));
        }
    }
    let instances = match node.parallelism {
        Parallelism::Splits(_) => "one per source split",
        Parallelism::Keyed => "keyed (--parallelism)",
        Parallelism::One => "one",
    };
    lines.push(("instances", instances.into()));
    let mut out = String::new();
    for (name, value) in lines {
        let _ = writeln!(out, "{name}: {value}");
    }
    out
}

fn aggregate(agg: &WindowAggregate, out_ty: &StreamType, lines: &mut Vec<(&str, String)>) {
    lines.push(("operator", "aggregate".into()));
    lines.push(("keys", agg.keys.join(", ")));
    lines.push(("window", window_text(&agg.window)));
    let time = if agg.processing_time {
        "processing time".to_string()
    } else if agg.time_field.is_empty() {
        "none".to_string()
    } else {
        format!("event time {}", agg.time_field)
    };
    lines.push(("time", time));
    lines.push(("lateness", duration(agg.lateness_ms)));
    if let Some(zone) = &agg.zone {
        lines.push(("zone", zone.clone()));
    }
    if let Some(key) = &agg.retract_key {
        lines.push(("updates of", key.join(", ")));
    }
    // `first_value`/`last_value` by event time hold the time next to the value.
    let by_time = agg.value_order_time().is_some();
    if let Some(end) = &agg.final_at {
        lines.push(("final at", end.clone()));
    }
    let aggs: Vec<String> = agg
        .aggs
        .iter()
        .map(|a| {
            let text = agg_text(a);
            match a.func {
                AggFunc::FirstValue | AggFunc::LastValue if by_time => {
                    format!("{text} by event time")
                }
                // Taken back from a compensated total (its state is laid out otherwise than
                // the plain total checkpoints before it held).
                AggFunc::Sum | AggFunc::Avg
                    if agg.retract_key.is_some()
                        && a.arg
                            .as_ref()
                            .is_some_and(|x| x.ty == crate::sema::Type::F64) =>
                {
                    format!("{text}, compensated, scaled")
                }
                _ => text,
            }
        })
        .collect();
    lines.push(("aggregates", aggs.join("; ")));
    // Only with a TTL, so that the shapes of aggregates without one stay what they were.
    if let Some(ttl) = &agg.ttl {
        lines.push(("ttl", ttl_text(ttl)));
        lines.push(last_writes());
    }
    lines.push(("rows", type_text(out_ty)));
}

fn join(def: &JoinDef, left: &str, right: &str, lines: &mut Vec<(&str, String)>) {
    use weir_dsl::ast::JoinKind;
    let kind = match def.kind {
        JoinKind::Regular => "regular",
        JoinKind::Interval => "interval",
        JoinKind::Window => "window",
        JoinKind::Lookup => "lookup",
    };
    let kind = if def.left_outer {
        format!("left {kind}")
    } else {
        kind.to_string()
    };
    lines.push(("operator", "join".into()));
    lines.push(("join", kind));
    let keys = |k: &[TExpr]| k.iter().map(expr).collect::<Vec<_>>().join(", ");
    lines.push((
        "keys",
        format!("({}) = ({})", keys(&def.left_keys), keys(&def.right_keys)),
    ));
    // The condition as written: the part evaluated at match time and the parts pushed
    // below the join as filters of one side.
    lines.push((
        "condition",
        format!(
            "{}; left: {}; right: {}",
            opt_expr(def.condition.as_ref()),
            opt_expr(def.left_filter.as_ref()),
            opt_expr(def.right_filter.as_ref())
        ),
    ));
    if let Some((lower, upper)) = def.within {
        lines.push((
            "interval",
            format!("within({}, {})", duration(lower), duration(upper)),
        ));
    }
    if let Some(size) = def.window_ms {
        lines.push(("window", format!("tumble({})", duration(size))));
    }
    // On the wall clock the saved times are arrival times: another shape.
    let ttl = match (def.ttl_ms, def.ttl_processing) {
        (None, _) => "none".into(),
        (Some(ms), false) => duration(ms),
        (Some(ms), true) => format!("{} by processing time", duration(ms)),
    };
    lines.push(("ttl", ttl));
    lines.push((
        "time",
        format!(
            "{}, {}",
            def.left_time.as_deref().unwrap_or("none"),
            def.right_time.as_deref().unwrap_or("none")
        ),
    ));
    lines.push(("left rows", left.to_string()));
    lines.push(("right rows", right.to_string()));
}

fn rank(def: &RankDef, input: &str, lines: &mut Vec<(&str, String)>) {
    let (operator, size) = if def.with_rank {
        ("top", def.n.to_string())
    } else {
        ("dedup", "1".to_string())
    };
    lines.push(("operator", operator.into()));
    lines.push(("keys", def.keys.join(", ")));
    lines.push(("size", size));
    let order: Vec<String> = def
        .order
        .iter()
        .map(|(e, desc)| format!("{}{}", expr(e), if *desc { " desc" } else { "" }))
        .collect();
    lines.push(("order", order.join(", ")));
    lines.push((
        "ties",
        if def.newer_wins_ties {
            "newer first (keep last)"
        } else {
            "older first (keep first)"
        }
        .into(),
    ));
    if let Some(key) = &def.retract_key {
        lines.push(("updates of", key.join(", ")));
    }
    if let Some(end) = &def.final_at {
        lines.push(("final at", end.clone()));
    }
    // Only with a TTL, so that the shapes (and checkpoints) of rank operators without one
    // stay what they were before TTLs existed. A final top-N (keyed by a window) keeps no
    // last writes: its state goes when the window closes.
    if let Some(ttl) = &def.ttl {
        lines.push(("ttl", ttl_text(ttl)));
        if def.final_at.is_none() {
            lines.push(last_writes());
        }
    }
    lines.push(("rows", input.to_string()));
}

/// A state TTL in a shape: its duration and what it counts by. Changing either changes what
/// the saved last writes mean.
fn ttl_text(ttl: &StateTtl) -> String {
    let clock = match &ttl.clock {
        TtlClock::EventTime(field) => field.as_str(),
        TtlClock::Watermark => "the watermark at arrival",
        TtlClock::Processing => "processing time",
    };
    format!("{} by {clock}", duration(ttl.ms))
}

/// Where an operator with a TTL saves its keys' last writes: with each key's value.
/// Checkpoints taken before 2026-12-05 saved them in a section of their own, which this build
/// cannot read, so the line refuses them.
fn last_writes() -> (&'static str, String) {
    ("ttl last writes", "saved with each key".into())
}

fn hex8(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn plan(graph: &Dataflow, order: &[OpId]) -> StatePlan {
    let mut ids = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for &op in order {
        if !participates(&graph.node(op).op) {
            continue;
        }
        let shape = shape(graph, op);
        let mut id = hex8(&Sha256::digest(shape.as_bytes()));
        // The same shape twice (two identical aggregates of two streams): tell them apart by
        // occurrence, in topological order.
        let n = seen.entry(id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            id = format!("{id}.{n}");
        }
        ids.insert(op, id);
        shapes.insert(op, shape);
    }
    let mut all: Vec<&String> = ids.values().collect();
    all.sort();
    let mut h = Sha256::new();
    for id in all {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    StatePlan {
        ids,
        shapes,
        fingerprint: hex8(&h.finalize()),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use crate::{compile, Options, SourceMap};

    /// The shapes of a pipeline's stateful operators, by operator id.
    fn shapes(text: &str) -> Vec<String> {
        let mut sources = SourceMap::new();
        let file = sources.add("t.weir".to_string(), text.to_string());
        let c = compile(&sources, file, &Options::default()).unwrap_or_else(|d| panic!("{d:?}"));
        let plan = super::plan(&c.physical, &c.info.topo_order);
        plan.shapes.into_values().collect()
    }

    /// An operator with a TTL says that its keys' last writes are saved with them (so that
    /// checkpoints that saved them apart are refused), one keyed by a window, which keeps
    /// none, does not.
    #[test]
    fn a_ttl_names_where_its_last_writes_are_saved() {
        let all = shapes(
            "source bids = nexmark(stream: \"bid\", events: 1000)\n\
                 event_time date_time watermark 4s\n\
             sink bids |> dedup by auction keep last ttl(1h) -> checksum()\n\
             sink bids |> aggregate by bidder { n: count() } ttl(1h) -> checksum()\n\
             sink bids |> dedup by bidder keep last ttl(1h)\n\
                 |> top 2 by auction order by price desc ttl(1h) -> checksum()\n\
             sink bids |> key_by auction |> window tumble(10s) |> aggregate { n: count() }\n\
                 |> top 1 by window_end order by n desc ttl(1h) -> checksum()\n",
        );
        let of =
            |what: &str| -> Vec<&String> { all.iter().filter(|s| s.starts_with(what)).collect() };
        let saved = |s: &&String| s.contains("ttl last writes: saved with each key");
        let dedups = of("operator: dedup");
        assert_eq!(dedups.len(), 2);
        assert!(dedups.iter().all(saved));
        let aggregates = of("operator: aggregate\nkeys: bidder");
        assert!(aggregates.len() == 1 && saved(&aggregates[0]));
        let tops = of("operator: top");
        assert_eq!(tops.len(), 2, "{all:#?}");
        // Over the dedup's updates: last writes kept. Keyed by a window: none, but a ttl line.
        let (updating, last): (Vec<&String>, Vec<&String>) =
            tops.into_iter().partition(|s| s.contains("updates of"));
        assert!(updating.len() == 1 && saved(&updating[0]));
        assert!(last.len() == 1 && !saved(&last[0]) && last[0].contains("ttl: 1h"));
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(duration(5000), "5s");
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(-5000), "-5s");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(86_400_000 + 1), "1d1ms");
    }
}
