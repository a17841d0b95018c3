//! Checking the options of `top` and `dedup` steps (`ttl`, `within`).

use weir_dsl::ast;
use weir_dsl::Diagnostic;

use super::args::Args;
use super::types::StreamType;
use super::Checker;

impl Checker {
    /// The options of a dedup or top-N step: `ttl(duration)`, the state TTL, with the
    /// event-time field it counts by (`None` over an updating stream: the watermark at
    /// arrival). `None` after an error.
    #[allow(clippy::type_complexity)]
    pub(super) fn rank_options(
        &mut self,
        options: &[ast::Call],
        ty: &StreamType,
        step: &str,
    ) -> Option<(Option<i64>, Option<String>)> {
        let mut ttl_ms = None;
        for option in options {
            if option.name.name != "ttl" {
                self.error(
                    Diagnostic::error(
                        "E0445",
                        option.name.span,
                        format!("`{}` is not an option of `{step}`", option.name.name),
                    )
                    .with_hint("its options: `ttl(duration)`, e.g. `ttl(1h)`"),
                );
                return None;
            }
            let args = Args::new(option, "`ttl`", &["duration"], &mut self.diagnostics);
            let ttl = args.duration("duration", &mut self.diagnostics);
            let ttl = args.required("duration", ttl, &mut self.diagnostics)?;
            if ttl_ms.replace(ttl).is_some() {
                self.error(Diagnostic::error(
                    "E0445",
                    option.span,
                    format!("`{step}` has two `ttl` options"),
                ));
                return None;
            }
            if ty.time_field.is_none() && ty.updating.is_none() {
                self.error(
                    Diagnostic::error(
                        "E0446",
                        option.span,
                        format!("a `{step}`'s `ttl` counts in event time, and this stream has none"),
                    )
                    .with_hint(
                        "declare `event_time FIELD watermark ...` on the source and keep the field in every `select` before this step, or drop the ttl",
                    ),
                );
                return None;
            }
        }
        let time = ttl_ms.and(ty.time_field.map(|t| ty.schema.fields[t].name.clone()));
        Some((ttl_ms, time))
    }
}
