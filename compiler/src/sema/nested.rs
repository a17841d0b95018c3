//! Where nested records and arrays may go: JSON holds them (sources, sinks, Kafka values);
//! CSV, Avro, Parquet, PostgreSQL, Kafka message keys and embedded pipelines' Rust records
//! do not (yet), and a pipeline that puts one there is refused here, naming the field and how
//! to flatten it.

use weir_dsl::ast;
use weir_dsl::{Diagnostic, Span};

use super::expr::{ExprChecker, TExpr, TExprKind};
use super::program::{Format, SinkKind, SourceKind, TStep, TStepKind};
use super::types::{Field, Schema, StreamType};
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

    /// Keys written as paths (`key_by payload.user.id`) that are no field of the stream: each
    /// becomes a field appended to the stream by a select before the keyed step, named by the
    /// path's last part (`id`), or the whole path with `_` (`payload_user_id`) when the
    /// stream has that name already; the keys returned name those fields. `None` after
    /// reporting a path that does not check or leads to a record or an array.
    pub(super) fn key_paths(
        &mut self,
        keys: &[ast::Ident],
        ty: &mut StreamType,
        steps: &mut Vec<TStep>,
        span: Span,
    ) -> Option<Vec<ast::Ident>> {
        let is_path = |k: &ast::Ident, ty: &StreamType| {
            k.name.contains('.') && ty.schema.field(&k.name).is_none()
        };
        if ty.updating.is_some() || !keys.iter().any(|k| is_path(k, ty)) {
            return Some(keys.to_vec());
        }
        let mut items: Vec<(String, TExpr)> = ty
            .schema
            .fields
            .iter()
            .map(|f| {
                let e = TExpr {
                    kind: TExprKind::Field(f.name.clone()),
                    ty: f.ty,
                    nullable: f.nullable,
                    span,
                };
                (f.name.clone(), e)
            })
            .collect();
        let mut added: Vec<Field> = Vec::new();
        let mut out = Vec::new();
        for key in keys {
            if !is_path(key, ty) {
                out.push(key.clone());
                continue;
            }
            let mut checker = ExprChecker {
                schema: &ty.schema,
                diagnostics: &mut self.diagnostics,
            };
            let path = ast::Expr {
                kind: ast::ExprKind::Field(key.clone()),
                span: key.span,
            };
            let e = checker.check(&path)?;
            if e.ty.is_nested() {
                self.error(super::expr::nested_value(key.span, e.ty));
                return None;
            }
            let taken = |name: &str| {
                ty.schema.field(name).is_some() || added.iter().any(|f| f.name == name)
            };
            let last = key.name.rsplit('.').next().unwrap_or_default();
            let name = if taken(last) {
                key.name.replace('.', "_")
            } else {
                last.to_string()
            };
            if taken(&name) {
                self.error(
                    Diagnostic::error(
                        "E0403",
                        key.span,
                        format!(
                            "the key `{}` would be the field `{name}`, which the stream has",
                            key.name
                        ),
                    )
                    .with_hint(format!(
                        "select it under another name first: `|> select {{ *, k: {} }}`",
                        key.name
                    )),
                );
                return None;
            }
            added.push(Field {
                name: name.clone(),
                ty: e.ty,
                nullable: e.nullable,
            });
            items.push((name.clone(), e));
            out.push(ast::Ident {
                name,
                span: key.span,
            });
        }
        ty.schema.fields.extend(added);
        steps.push(TStep {
            kind: TStepKind::Select(items),
            span,
            ty: ty.clone(),
        });
        Some(out)
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
