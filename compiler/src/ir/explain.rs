//! `weir explain`: the dataflow graph as text, Graphviz DOT or Mermaid.
//!
//! Each operator shows what it is, its parallelism, task and output type, and the properties
//! that decide its results: a source's event-time field and watermark, a window's kind and
//! sizes, its lateness and where late records go, a join's time bound, and whether the stream
//! it emits is append-only or updating (with the upsert key and the operator that made it so).

use std::fmt::Write;

use weir_dsl::ast::JoinKind;

use super::{Dataflow, EdgeKind, Op, OpId, Stateless};
use crate::sema::{StateTtl, TtlClock, Window, WindowAggregate};

/// Which rendering `explain` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExplainFormat {
    Text,
    Dot,
    Mermaid,
}

fn describe(graph: &Dataflow, op: super::OpId) -> String {
    let node = graph.node(op);
    match &node.op {
        Op::Fused(steps) => {
            let kinds: Vec<&str> = steps
                .iter()
                .map(|s| match s {
                    Stateless::Filter(_) => "filter",
                    Stateless::Select(..) => "select",
                })
                .collect();
            format!("fused[{}]: {}", kinds.join("+"), node.label)
        }
        Op::Source {
            projection: Some(fields),
            ..
        } => format!("{} (reads only: {})", node.label, fields.join(", ")),
        Op::Sink(_) | Op::Source { .. } => node.label.clone(),
        op => format!("{}: {}", op.kind_name(), node.label),
    }
}

/// A duration in the largest unit that divides it: `10s`, `1500ms`, `2h`, `-5s`.
fn duration(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    if ms == 0 {
        return "0s".into();
    }
    UNITS
        .iter()
        .find(|(unit, _)| ms % unit == 0)
        .map_or(format!("{ms}ms"), |(unit, name)| {
            format!("{}{name}", ms / unit)
        })
}

fn window(w: &WindowAggregate, graph: &Dataflow, op: OpId) -> String {
    let kind = match w.window {
        Window::Tumble { size_ms } => format!("tumble(size {})", duration(size_ms)),
        Window::Hop { size_ms, slide_ms } => {
            format!(
                "hop(size {}, slide {})",
                duration(size_ms),
                duration(slide_ms)
            )
        }
        Window::Cumulate { step_ms, size_ms } => {
            format!(
                "cumulate(step {}, size {})",
                duration(step_ms),
                duration(size_ms)
            )
        }
        Window::Session { gap_ms } => format!("session(gap {})", duration(gap_ms)),
        // Lowering gives an aggregate without a window an operator of its own.
        Window::Unbounded => "none".into(),
    };
    let time = match w.processing_time {
        true => "processing time".to_string(),
        false => format!("event time `{}`", w.time_field),
    };
    let lateness = match w.lateness_ms {
        0 => String::new(),
        ms => format!(
            ", lateness {} (a late record revises its window's row)",
            duration(ms)
        ),
    };
    // Late records leave on output 1, if anything reads it.
    let late_consumers: Vec<String> = graph
        .outputs(op)
        .into_iter()
        .filter(|(edge, _)| graph.edge(*edge).from_port == 1)
        .map(|(_, to)| to.to_string())
        .collect();
    let late = match (&w.late_output, w.processing_time) {
        (_, true) => String::new(),
        (Some(name), false) if !late_consumers.is_empty() => {
            format!(", late records -> `{name}` ({})", late_consumers.join(", "))
        }
        (Some(name), false) => format!(", late records -> `{name}`"),
        (None, false) => ", late records dropped (counted)".to_string(),
    };
    format!("window: {kind} on {time}{lateness}{late}")
}

/// How a state TTL expires a `what` (key, group), if there is one.
fn ttl_line(ttl: Option<&StateTtl>, what: &str) -> Option<String> {
    let ttl = ttl?;
    let clock = match ttl.clock {
        TtlClock::Processing => "the wall clock",
        _ => "the watermark",
    };
    Some(format!(
        "state: a {what}'s kept until {clock} passes its last write + {}",
        duration(ttl.ms)
    ))
}

/// The lines that describe how an operator treats time and what kind of stream it emits
/// (also what a binary's HTTP endpoint shows of each operator: `codegen::describe_plan`).
pub(crate) fn properties(graph: &Dataflow, op: OpId) -> Vec<String> {
    let node = graph.node(op);
    let mut lines = Vec::new();
    match &node.op {
        Op::Source { def, .. } => {
            let field = node
                .ty
                .time_field
                .map(|i| node.ty.schema.fields[i].name.clone());
            lines.push(match (field, def.watermark_ms) {
                (Some(field), Some(ms)) => format!(
                    "event time: `{field}`, watermark {} behind the newest event time",
                    duration(ms)
                ),
                (Some(field), None) => format!("event time: `{field}`, no watermark"),
                _ => "event time: none".to_string(),
            });
        }
        Op::WindowAggregate(w) => lines.push(window(w, graph, op)),
        Op::GroupAggregate(w) => {
            lines.push("aggregate: no window; one row per key, revised by every record".into());
            lines.extend(ttl_line(w.ttl.as_ref(), "key"));
        }
        Op::FinalAggregate(w) => lines.push(format!(
            "final: the key names a window; one row per key when the watermark passes `{}`",
            w.final_at.as_deref().unwrap_or_default()
        )),
        Op::RetractAggregate(w) => {
            lines.push(
                "aggregate: no window; each change of the input retracts the row it revises".into(),
            );
            lines.extend(ttl_line(w.ttl.as_ref(), "group"));
        }
        Op::Join { def, .. } => {
            let outer = if def.left_outer { "left outer, " } else { "" };
            lines.push(match def.kind {
                JoinKind::Regular => match def.ttl_ms {
                    Some(ms) if def.ttl_processing => format!(
                        "join: {outer}regular, state kept for {} of wall-clock time since arrival",
                        duration(ms)
                    ),
                    Some(ms) => format!(
                        "join: {outer}regular, state kept for {} of event time",
                        duration(ms)
                    ),
                    None => format!("join: {outer}regular, state kept until the end of input"),
                },
                JoinKind::Interval => {
                    let (lower, upper) = def.within.unwrap_or_default();
                    format!(
                        "join: {outer}interval, joined time - this time in [{}, {}]",
                        duration(lower),
                        duration(upper)
                    )
                }
                JoinKind::Window => format!(
                    "join: {outer}window, tumble(size {})",
                    duration(def.window_ms.unwrap_or_default())
                ),
                JoinKind::Lookup => format!("join: {outer}lookup, a table read at start"),
            });
        }
        Op::FinalTopN(def) => lines.push(format!(
            "final: the key names a window; its rows go out once, when the watermark passes `{}`",
            def.final_at.as_deref().unwrap_or_default()
        )),
        Op::TopN(def) | Op::RetractTopN(def) => lines.extend(ttl_line(def.ttl.as_ref(), "key")),
        _ => {}
    }
    let what = if matches!(node.op, Op::Sink(_)) {
        "input"
    } else {
        "stream"
    };
    lines.push(match &node.ty.updating {
        None => format!("{what}: append"),
        Some(up) => format!(
            "{what}: updating, upsert key ({}), made so by `{}`",
            up.key.join(", "),
            up.operator
        ),
    });
    lines
}

pub fn text(graph: &Dataflow) -> String {
    let mut out = String::new();
    for op in graph.topo_order() {
        let node = graph.node(op);
        let task = node.task.map_or(String::new(), |t| format!(" task={t}"));
        let _ = writeln!(out, "{op}: {}", describe(graph, op));
        let _ = writeln!(
            out,
            "    parallelism={}{task} out={}",
            node.parallelism, node.ty.schema
        );
        for line in properties(graph, op) {
            let _ = writeln!(out, "    {line}");
        }
        for (edge, from) in graph.inputs(op) {
            let edge = graph.edge(edge);
            let late = if edge.from_port == 1 {
                ", late records"
            } else {
                ""
            };
            let _ = writeln!(out, "    <- {from} ({}{late})", edge.kind);
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn dot(graph: &Dataflow) -> String {
    let mut out = String::from(
        "digraph weir {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for op in graph.ops() {
        let node = graph.node(op);
        let task = node.task.map_or(String::new(), |t| format!("\\ntask {t}"));
        let props: String = properties(graph, op)
            .iter()
            .map(|p| format!("\\n{}", escape(p)))
            .collect();
        let _ = writeln!(
            out,
            "  {op} [label=\"{op}: {}{props}{task}\"];",
            escape(&describe(graph, op))
        );
    }
    for (edge, from, to) in graph.edges() {
        let kind = &graph.edge(edge).kind;
        let style = if *kind == EdgeKind::Forward {
            ""
        } else {
            ", style=bold"
        };
        let _ = writeln!(
            out,
            "  {from} -> {to} [label=\"{}\"{style}];",
            escape(&kind.to_string())
        );
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(graph: &Dataflow) -> String {
    let mut out = String::from("flowchart LR\n");
    for op in graph.ops() {
        let mut label = describe(graph, op);
        for p in properties(graph, op) {
            label.push_str("<br>");
            label.push_str(&p);
        }
        let label = label.replace('"', "#quot;");
        let _ = writeln!(out, "  {op}[\"{op}: {label}\"]");
    }
    for (edge, from, to) in graph.edges() {
        let kind = &graph.edge(edge).kind;
        let arrow = if *kind == EdgeKind::Forward {
            "-->"
        } else {
            "==>"
        };
        let _ = writeln!(out, "  {from} {arrow}|{kind}| {to}");
    }
    out
}

pub fn render(graph: &Dataflow, format: ExplainFormat) -> String {
    match format {
        ExplainFormat::Text => text(graph),
        ExplainFormat::Dot => dot(graph),
        ExplainFormat::Mermaid => mermaid(graph),
    }
}
