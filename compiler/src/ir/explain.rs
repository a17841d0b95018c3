//! `weir explain`: the dataflow graph as text, Graphviz DOT or Mermaid.

use std::fmt::Write;

use super::{Dataflow, EdgeKind, Op, Stateless};

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
        for (edge, from) in graph.inputs(op) {
            let _ = writeln!(out, "    <- {from} ({})", graph.edge(edge).kind);
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
        let _ = writeln!(
            out,
            "  {op} [label=\"{op}: {}{task}\"];",
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
        let label = describe(graph, op).replace('"', "#quot;");
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
