//! Reading a state TTL option (`ttl(1h)`, `ttl(1h, time: processing)`) of the steps whose
//! state grows without bound: regular joins, dedup, top-N and unbounded aggregates.

use weir_dsl::ast;
use weir_dsl::Diagnostic;

use super::args::Args;
use super::program::{StateTtl, TtlClock};
use super::types::StreamType;
use super::Checker;

impl Checker {
    /// The TTL `option` sets for a `step` over a stream of type `ty`: in event time by the
    /// stream's event-time field (or, over an updating stream, whose rows carry none, by the
    /// watermark when a change arrives), or on the wall clock with `time: processing`.
    /// `None` after an error.
    pub(super) fn state_ttl(
        &mut self,
        option: &ast::Call,
        ty: &StreamType,
        step: &str,
    ) -> Option<StateTtl> {
        let args = Args::new(
            option,
            "`ttl`",
            &["duration", "time"],
            &mut self.diagnostics,
        );
        let ms = args.duration("duration", &mut self.diagnostics);
        let ms = args.required("duration", ms, &mut self.diagnostics)?;
        let processing = self.ttl_on_processing_time(&args)?;
        let clock = if processing {
            TtlClock::Processing
        } else if let Some(t) = ty.time_field {
            TtlClock::EventTime(ty.schema.fields[t].name.clone())
        } else if ty.updating.is_some() {
            TtlClock::Watermark
        } else {
            self.error(
                Diagnostic::error(
                    "E0446",
                    option.span,
                    format!("the `ttl` of `{step}` counts in event time, and this stream has none"),
                )
                .with_hint(
                    "declare `event_time FIELD watermark ...` on the source and keep the field in every `select` before this step, count on the wall clock with `ttl(..., time: processing)`, or drop the ttl",
                ),
            );
            return None;
        };
        Some(StateTtl { ms, clock })
    }

    /// Reads a `ttl`'s `time:` argument: `Some(true)` for `processing`, `Some(false)` for
    /// `event` or none; `None` after an error (`E0447`).
    pub(super) fn ttl_on_processing_time(&mut self, args: &Args<'_>) -> Option<bool> {
        match args.string("time", &mut self.diagnostics).as_deref() {
            None | Some("event") => Some(false),
            Some("processing") => Some(true),
            Some(other) => {
                self.error(
                    Diagnostic::error(
                        "E0447",
                        args.span_of("time"),
                        format!("unknown time `{other}` for a `ttl`"),
                    )
                    .with_hint(
                        "a ttl counts in `time: event` (the default) or `time: processing`, e.g. `ttl(1h, time: processing)`",
                    ),
                );
                None
            }
        }
    }

    /// The one `ttl(...)` among a step's `options`, none of which may be anything else
    /// (`E0445`). `Some(None)` without one; `None` after an error.
    pub(super) fn ttl_options(
        &mut self,
        options: &[ast::Call],
        ty: &StreamType,
        step: &str,
    ) -> Option<Option<StateTtl>> {
        let mut ttl = None;
        for option in options {
            if option.name.name != "ttl" {
                self.error(
                    Diagnostic::error(
                        "E0445",
                        option.name.span,
                        format!("`{}` is not an option of `{step}`", option.name.name),
                    )
                    .with_hint("its options: `ttl(duration)`, e.g. `ttl(1h)` or `ttl(1h, time: processing)`"),
                );
                return None;
            }
            let this = self.state_ttl(option, ty, step)?;
            if ttl.replace(this).is_some() {
                self.error(Diagnostic::error(
                    "E0445",
                    option.span,
                    format!("`{step}` has two `ttl` options"),
                ));
                return None;
            }
        }
        Some(ttl)
    }
}
