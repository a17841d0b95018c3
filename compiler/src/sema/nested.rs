//! Where nested records and arrays may go: JSON holds them (sources, sinks, Kafka values);
//! CSV, Avro, Parquet, PostgreSQL, Kafka message keys and embedded pipelines' Rust records
//! do not (yet), and a pipeline that puts one there is refused here, naming the field and how
//! to flatten it.

use weir_dsl::{Diagnostic, Span};

use super::program::{Format, SinkKind, SourceKind};
use super::types::Schema;
use super::Checker;

/// What a source or sink reads or writes, when it cannot hold a nested field.
fn flat_only_source(kind: &SourceKind) -> Option<&'static str> {
    let format = match kind {
        SourceKind::File { format, .. } | SourceKind::Stdin { format } => format,
        SourceKind::Kafka(kafka) => &kafka.format,
        SourceKind::Parquet { .. } => return Some("a Parquet source"),
        SourceKind::Postgres { .. } => return Some("a PostgreSQL table"),
        SourceKind::Nexmark { .. } => return None,
    };
    flat_only_format(format)
}

fn flat_only_format(format: &Format) -> Option<&'static str> {
    match format {
        Format::Json { .. } => None,
        Format::Csv { .. } => Some("CSV"),
        Format::Avro(_) => Some("Avro (in weir, so far)"),
    }
}

impl Checker {
    /// Refuses nested fields in a source that cannot read them.
    pub(super) fn nested_source_fits(&mut self, kind: &SourceKind, schema: &Schema, span: Span) {
        if let Some(what) = flat_only_source(kind) {
            self.flat_only(schema, what, span, "declare the source `format json`");
        }
    }

    /// Refuses nested fields in a sink that cannot write them, and as a Kafka message key.
    pub(super) fn nested_sink_fits(&mut self, kind: &SinkKind, schema: &Schema, span: Span) {
        let what = match kind {
            SinkKind::Stdout { format } | SinkKind::File { format, .. } => flat_only_format(format),
            SinkKind::Kafka { format, key, .. } => {
                if let Some(key) = key {
                    if let Some((_, f)) = schema.field(key).filter(|(_, f)| f.ty.is_nested()) {
                        self.error(
                            Diagnostic::error(
                                "E0449",
                                span,
                                format!(
                                    "the Kafka key `{key}` is a {}, which cannot be a message key",
                                    f.ty.name()
                                ),
                            )
                            .with_hint("key by a scalar field: select one before the sink (`user_id: payload.user.id`)"),
                        );
                    }
                }
                flat_only_format(format)
            }
            SinkKind::Parquet { .. } => Some("a Parquet sink (in weir, so far)"),
            SinkKind::Postgres { .. } => Some("a PostgreSQL sink (in weir, so far)"),
            SinkKind::Checksum => None,
        };
        if let Some(what) = what {
            self.flat_only(
                schema,
                what,
                span,
                "flatten it with a `select` before the sink (`user_id: payload.user.id`, `first_tag: tags[1]`), or write `format json`",
            );
        }
    }

    fn flat_only(&mut self, schema: &Schema, what: &str, span: Span, hint: &str) {
        if let Some(f) = schema.fields.iter().find(|f| f.ty.is_nested()) {
            self.error(
                Diagnostic::error(
                    "E0449",
                    span,
                    format!(
                        "field `{}` is a nested {}, which {what} cannot hold",
                        f.name,
                        f.ty.name()
                    ),
                )
                .with_label(format!("`{}` is {}", f.name, f.ty))
                .with_hint(hint.to_string()),
            );
        }
    }
}
