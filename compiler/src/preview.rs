//! The preview build behind `weir run FILE --limit N`: a user checking a pipeline before a
//! long run wants to see its first rows, not to half-write its files or Kafka topics. So
//! every sink is rewritten to print to stdout in its own format (a checksum sink as JSON
//! lines), behind the runtime's `sinks::preview::Limit`; with several sinks each line starts
//! with `[stream] `. Everything else (sources, windows, dead letters) is the pipeline's own.

use crate::sema::{Format, Program, SinkKind, SinkPreview};

/// Rewrites every sink of `program` into a preview sink.
pub fn rewrite_sinks(program: &mut Program) {
    // The sink labels read `sinkN stream -> target` (sema); the stream is the sink's name.
    let names: Vec<String> = program
        .sinks
        .iter()
        .map(|s| {
            let head = s.label.split(" -> ").next().unwrap_or_default();
            head.split_once(' ')
                .map_or(head, |(_, name)| name)
                .to_string()
        })
        .collect();
    let several = program.sinks.len() > 1;
    for (index, sink) in program.sinks.iter_mut().enumerate() {
        let format = match &sink.kind {
            // Avro is binary: its rows are previewed as JSON lines.
            SinkKind::Stdout { format }
            | SinkKind::File { format, .. }
            | SinkKind::Kafka { format, .. } => match format {
                Format::Avro(_) => Format::JSON,
                other => other.clone(),
            },
            SinkKind::Checksum | SinkKind::Postgres { .. } | SinkKind::Parquet { .. } => {
                Format::JSON
            }
        };
        sink.kind = SinkKind::Stdout { format };
        let name = &names[index];
        let unique = names.iter().filter(|n| *n == name).count() == 1;
        let prefix = match (several, unique) {
            (false, _) => None,
            (true, true) => Some(format!("[{name}] ")),
            (true, false) => Some(format!("[{name} {index}] ")),
        };
        sink.preview = Some(SinkPreview { prefix });
        sink.label = format!("sink{index} {name} -> stdout (preview)");
    }
}
