//! `format avro(schema: "orders.avsc")`: the Avro schema of a Kafka topic or an Avro file,
//! read from a `.avsc` file (relative to the pipeline file) or written inline, parsed with the
//! `apache-avro` crate the runtime reads and writes Avro with, and checked field by field
//! against the pipeline's schema when the pipeline is checked (`E0328`).

use std::path::Path;

use apache_avro::Schema as Avro;
use weir_dsl::{Diagnostic, Span};

use super::program::{AvroField, AvroFormat, AvroKind};
use super::types::{Schema, Type};

/// The schema text of `schema:`: inline JSON (it starts with `{`), else a file's contents.
/// `Err` is the diagnostic's message.
pub(super) fn schema_text(value: &str, dir: Option<&Path>) -> Result<String, String> {
    if value.trim_start().starts_with('{') {
        return Ok(value.to_string());
    }
    let path = match dir {
        Some(dir) => dir.join(value),
        None => Path::new(value).to_path_buf(),
    };
    std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the Avro schema `{}`: {e}", path.display()))
}

/// Parses the schema (a record of fields weir can read or write) into the format's
/// description. `Err` is the diagnostic's message and hint.
pub(super) fn parse(
    text: &str,
    confluent_id: Option<u32>,
    codec: Option<String>,
) -> Result<AvroFormat, (String, String)> {
    // apache-avro 0.21 panics on a named type whose name is not a valid Avro name (it unwraps
    // its own validation): names are checked here first, so a user's schema never panics the
    // checker.
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(bad) = invalid_name(&json) {
            return Err((
                format!("not a valid Avro schema: `{bad}` is not an Avro name"),
                "a record, enum or fixed is named with letters, digits and `_` (not first), dot-separated with its namespace".to_string(),
            ));
        }
    }
    let schema = Avro::parse_str(text).map_err(|e| {
        (
            format!("not a valid Avro schema: {e}"),
            "write the schema as Avro's JSON, e.g. {\"type\": \"record\", \"name\": \"Row\", \"fields\": [{\"name\": \"id\", \"type\": \"long\"}]}".to_string(),
        )
    })?;
    let Avro::Record(record) = &schema else {
        return Err((
            "the Avro schema is not a record".to_string(),
            "a row is an Avro record: {\"type\": \"record\", \"name\": ..., \"fields\": [...]}"
                .to_string(),
        ));
    };
    let fields = record
        .fields
        .iter()
        .map(|f| {
            let (kind, union) = match &f.schema {
                Avro::Union(u) => {
                    let variants = u.variants();
                    let null = variants.iter().position(|v| matches!(v, Avro::Null));
                    match (variants.len(), null) {
                        (2, Some(n)) => (kind_of(&variants[1 - n]), Some((n as u32, 1 - n as u32))),
                        _ => (
                            AvroKind::Other("a union other than [\"null\", T]".into()),
                            None,
                        ),
                    }
                }
                other => (kind_of(other), None),
            };
            AvroField {
                name: f.name.clone(),
                kind,
                union,
            }
        })
        .collect();
    // The parsed schema written back as JSON (apache-avro serializes it as Avro defines):
    // what the binary parses again at start, with the logical types (`timestamp-millis`) that
    // the parsing canonical form would drop, without the file's comments and spacing.
    let json = serde_json::to_string(&schema).map_err(|e| {
        (
            format!("the Avro schema cannot be written back: {e}"),
            "this is a bug in weir; please report it with the schema".to_string(),
        )
    })?;
    Ok(AvroFormat {
        schema: json,
        fields,
        confluent_id,
        codec,
    })
}

/// The first name of a named type (record, enum, fixed) in the schema's JSON that is not
/// `[A-Za-z_][A-Za-z0-9_]*`, dot-separated.
fn invalid_name(json: &serde_json::Value) -> Option<String> {
    match json {
        serde_json::Value::Object(map) => {
            let named = matches!(
                map.get("type").and_then(|t| t.as_str()),
                Some("record" | "error" | "enum" | "fixed")
            );
            if named {
                if let Some(name) = map.get("name").and_then(|n| n.as_str()) {
                    let ok = name.split('.').all(|part| {
                        let mut chars = part.chars();
                        chars
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                    if !ok {
                        return Some(name.to_string());
                    }
                }
            }
            map.values().find_map(invalid_name)
        }
        serde_json::Value::Array(items) => items.iter().find_map(invalid_name),
        _ => None,
    }
}

fn kind_of(schema: &Avro) -> AvroKind {
    match schema {
        Avro::Int => AvroKind::Int,
        Avro::Long => AvroKind::Long,
        Avro::Float => AvroKind::Float,
        Avro::Double => AvroKind::Double,
        Avro::Boolean => AvroKind::Boolean,
        Avro::String => AvroKind::String,
        Avro::Enum(_) => AvroKind::Enum,
        Avro::TimestampMillis => AvroKind::TimestampMillis,
        Avro::TimestampMicros => AvroKind::TimestampMicros,
        other => AvroKind::Other(describe(other)),
    }
}

fn describe(schema: &Avro) -> String {
    match schema {
        Avro::Null => "null".into(),
        Avro::Bytes => "bytes".into(),
        Avro::Array(_) => "an array".into(),
        Avro::Map(_) => "a map".into(),
        Avro::Record(_) => "a record".into(),
        Avro::Fixed(_) => "fixed".into(),
        Avro::Decimal(_) | Avro::BigDecimal => "a decimal".into(),
        Avro::Uuid => "a uuid".into(),
        Avro::Date => "a date".into(),
        Avro::TimeMillis | Avro::TimeMicros => "a time of day".into(),
        Avro::TimestampNanos => "timestamp-nanos".into(),
        Avro::LocalTimestampMillis | Avro::LocalTimestampMicros | Avro::LocalTimestampNanos => {
            "a local timestamp".into()
        }
        Avro::Duration => "an Avro duration".into(),
        _ => "a type weir does not map".into(),
    }
}

/// The Avro types a weir type reads from (`reading`) or is written as.
fn fits(ty: Type, kind: &AvroKind, reading: bool) -> bool {
    use AvroKind as K;
    match (ty, kind) {
        (Type::I64 | Type::Duration, K::Long) => true,
        (Type::I64 | Type::Duration, K::Int) => reading,
        (Type::F64, K::Double) => true,
        (Type::F64, K::Float) => reading,
        (Type::Bool, K::Boolean) => true,
        (Type::String, K::String) => true,
        (Type::String, K::Enum) => reading,
        (Type::Timestamp, K::TimestampMillis | K::TimestampMicros) => true,
        _ => false,
    }
}

/// What a weir type is in Avro (a hint).
fn avro_name(ty: Type) -> &'static str {
    match ty {
        Type::I64 | Type::Duration => "\"long\"",
        Type::F64 => "\"double\"",
        Type::Bool => "\"boolean\"",
        Type::Timestamp => "{\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}",
        Type::String | Type::Null => "\"string\"",
        Type::Record(_) | Type::Array(_) => "(no type: nested fields are not read from Avro)",
    }
}

fn kind_name(kind: &AvroKind) -> String {
    match kind {
        AvroKind::Int => "int".into(),
        AvroKind::Long => "long".into(),
        AvroKind::Float => "float".into(),
        AvroKind::Double => "double".into(),
        AvroKind::Boolean => "boolean".into(),
        AvroKind::String => "string".into(),
        AvroKind::Enum => "an enum".into(),
        AvroKind::TimestampMillis => "timestamp-millis".into(),
        AvroKind::TimestampMicros => "timestamp-micros".into(),
        AvroKind::Other(what) => what.clone(),
    }
}

/// Every mismatch between the Avro record and the pipeline's `schema`, reported at `span`
/// (the format clause): a source (`reading`) needs each of its fields in the record, with a
/// type it reads and never null where the field is not optional; a sink writes every field of
/// the record (those it lacks only when they may be null) from fields of its type.
pub(super) fn check(
    avro: &AvroFormat,
    schema: &Schema,
    reading: bool,
    span: Span,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let err = |msg: String, hint: String| Diagnostic::error("E0328", span, msg).with_hint(hint);
    for f in &schema.fields {
        let Some(a) = avro.fields.iter().find(|a| a.name == f.name) else {
            out.push(err(
                format!("the Avro schema has no field `{}`", f.name),
                if reading {
                    "a source reads each field of its schema from the Avro record: add it to the .avsc or remove it from the schema".into()
                } else {
                    format!("add {{\"name\": \"{}\", \"type\": {}}} to the Avro schema, or drop the field with `select`", f.name, avro_name(f.ty))
                },
            ));
            continue;
        };
        if !fits(f.ty, &a.kind, reading) {
            out.push(err(
                format!(
                    "field `{}` is {} in the Avro schema but `{}` in the pipeline",
                    f.name,
                    kind_name(&a.kind),
                    f.ty
                ),
                format!("`{}` is {} in Avro", f.ty, avro_name(f.ty)),
            ));
            continue;
        }
        if reading && a.union.is_some() && !f.nullable {
            out.push(err(
                format!(
                    "field `{}` may be null in the Avro schema but not in the pipeline",
                    f.name
                ),
                format!("declare it optional: `{}: {}?`", f.name, f.ty),
            ));
        }
        if !reading && a.union.is_none() && f.nullable {
            out.push(err(
                format!(
                    "field `{}` may be null in the stream but not in the Avro schema",
                    f.name
                ),
                format!(
                    "make it [\"null\", {}] in the schema, or give a value with `coalesce`",
                    avro_name(f.ty)
                ),
            ));
        }
    }
    if !reading {
        for a in &avro.fields {
            if schema.field(&a.name).is_none() && a.union.is_none() {
                out.push(err(
                    format!("the stream has no field `{}`, which the Avro schema needs", a.name),
                    "select a field of that name into the stream, or make it optional [\"null\", ...] in the schema".into(),
                ));
            }
        }
    }
    out
}
