//! Checking `window` steps: the window's kind and sizes, and whether it runs on event or
//! processing time.

use weir_dsl::ast;
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::Diagnostic;

use super::args::Args;
use super::functions;
use super::program::Window;
use super::Checker;

impl Checker {
    /// `time: event` (the default) or `time: processing`.
    pub(super) fn time_mode(&mut self, args: &Args<'_>) -> Option<bool> {
        self.lateness = args
            .duration("lateness", &mut self.diagnostics)
            .unwrap_or(0);
        self.late_output = args
            .string("late", &mut self.diagnostics)
            .map(|name| (name, args.span_of("late")));
        match args.string("time", &mut self.diagnostics).as_deref() {
            None | Some("event") => Some(false),
            Some("processing") => Some(true),
            Some(other) => {
                self.error(
                    Diagnostic::error(
                        "E0418",
                        args.span_of("time"),
                        format!("unknown time `{other}`"),
                    )
                    .with_hint("windows run on `time: event` (the default) or `time: processing`"),
                );
                None
            }
        }
    }

    pub(super) fn window(&mut self, call: &ast::Call) -> Option<Window> {
        self.processing = false;
        self.lateness = 0;
        self.late_output = None;
        self.window_zone = None;
        match call.name.name.as_str() {
            "tumble" => {
                let args = Args::new(
                    call,
                    "window `tumble`",
                    &["size", "time", "lateness", "late", "zone"],
                    &mut self.diagnostics,
                );
                let size = args.duration("size", &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics)?;
                self.processing = self.time_mode(&args)?;
                // `zone: "America/New_York"`: windows aligned to that zone's wall clock.
                if let Some(zone) = args.string("zone", &mut self.diagnostics) {
                    if let Err(message) = functions::check_zone(&zone) {
                        let names = functions::zone_names();
                        let hint = match did_you_mean(&zone, names.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean \"{s}\"?"),
                            None => "zones are IANA names such as \"Europe/Paris\" or \"UTC\""
                                .to_string(),
                        };
                        self.error(
                            Diagnostic::error("E0213", args.span_of("zone"), message)
                                .with_hint(hint),
                        );
                        return None;
                    }
                    self.window_zone = Some(zone);
                }
                Some(Window::Tumble { size_ms: size })
            }
            "hop" => {
                let args = Args::new(
                    call,
                    "window `hop`",
                    &["size", "slide", "time", "lateness", "late"],
                    &mut self.diagnostics,
                );
                let size = args.duration("size", &mut self.diagnostics);
                let slide = args.duration("slide", &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics);
                let slide = args.required("slide", slide, &mut self.diagnostics);
                let (size, slide) = (size?, slide?);
                if slide > size || size % slide != 0 {
                    self.error(
                        Diagnostic::error(
                            "E0417",
                            call.span,
                            "a hop's size must be a whole multiple of its slide",
                        )
                        .with_hint(format!(
                            "e.g. `hop(size: {}ms, slide: {}ms)`",
                            slide * (size / slide).max(1),
                            slide
                        )),
                    );
                    return None;
                }
                self.processing = self.time_mode(&args)?;
                Some(Window::Hop {
                    size_ms: size,
                    slide_ms: slide,
                })
            }
            "cumulate" => {
                let args = Args::new(
                    call,
                    "window `cumulate`",
                    &["step", "size", "time", "lateness", "late"],
                    &mut self.diagnostics,
                );
                let step = args.duration("step", &mut self.diagnostics);
                let size = args.duration("size", &mut self.diagnostics);
                let step = args.required("step", step, &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics);
                let (step, size) = (step?, size?);
                if step > size || size % step != 0 {
                    self.error(
                        Diagnostic::error(
                            "E0417",
                            call.span,
                            "a cumulate window's size must be a whole multiple of its step",
                        )
                        .with_hint("e.g. `cumulate(step: 1m, size: 1h)`"),
                    );
                    return None;
                }
                self.processing = self.time_mode(&args)?;
                Some(Window::Cumulate {
                    step_ms: step,
                    size_ms: size,
                })
            }
            "session" => {
                let args = Args::new(
                    call,
                    "window `session`",
                    &["gap", "time", "late"],
                    &mut self.diagnostics,
                );
                let gap = args.duration("gap", &mut self.diagnostics);
                let gap = args.required("gap", gap, &mut self.diagnostics)?;
                self.processing = self.time_mode(&args)?;
                Some(Window::Session { gap_ms: gap })
            }
            other => {
                let mut d =
                    Diagnostic::error("E0411", call.name.span, format!("unknown window `{other}`"));
                d = match did_you_mean(other, ["tumble", "hop", "session", "cumulate"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("windows are: tumble(size), hop(size, slide), cumulate(step, size), session(gap)"),
                };
                self.error(d);
                None
            }
        }
    }
}
