//! The progress line of a pipeline binary on a terminal: records read, their rate, and for
//! file input the bytes read with an ETA, redrawn four times a second on stderr.
//!
//! Only when stderr is a TTY and `--quiet` is not given, and not when the run prints its rows
//! on that terminal too (a `stdout()` sink, a preview); nothing otherwise (no thread). It
//! reads what the HTTP endpoint reads (the sources' published counts and the file sources'
//! cursors, relaxed loads) from a thread of its own: the data path does not know it exists.
//! It is cleared before the run summary is printed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, HumanFloatCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::Metrics;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// The rate is taken over this much of the recent past.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// A progress line being drawn; [`Progress::finish`] clears it.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Whether the run prints its rows on the terminal (a `stdout()` sink, or a preview, with
/// stdout a terminal): the progress line would be drawn through them, so there is none.
pub fn rows_on_the_terminal(metrics: &Metrics) -> bool {
    let prints_rows = crate::sinks::preview::is_preview()
        || metrics.plan().is_some_and(|plan| {
            plan.operators
                .iter()
                .any(|op| op.kind == "sink" && op.label.ends_with("-> stdout"))
        });
    prints_rows && std::io::stdout().is_terminal()
}

/// Starts the progress line of a run when stderr is a terminal (none otherwise).
pub fn start(metrics: Metrics) -> Option<Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("weir-progress".into())
        .spawn(move || draw(&metrics, &stopped))
        .ok()?;
    Some(Progress { stop, thread })
}

impl Progress {
    /// Stops drawing and clears the line (before the summary is printed).
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn draw(metrics: &Metrics, stop: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
        .with_message("0 records");
    let counting = ProgressStyle::with_template("{spinner} {msg} · {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let reading = ProgressStyle::with_template(
        "{spinner} {msg} · [{bar:16}] {bytes}/{total_bytes} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(counting);
    let mut files = false;
    // (when, records) of the recent past, oldest first.
    let mut past: std::collections::VecDeque<(Instant, u64)> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let records: u64 = metrics.sources().iter().map(|s| s.records).sum();
        while past.len() > 1 && now.duration_since(past[0].0) > RATE_WINDOW {
            past.pop_front();
        }
        let rate = past.front().and_then(|(then, before)| {
            let secs = now.duration_since(*then).as_secs_f64();
            (secs > 0.2).then(|| records.saturating_sub(*before) as f64 / secs)
        });
        past.push_back((now, records));
        let mut message = format!("{} records", HumanCount(records));
        if let Some(rate) = rate {
            message.push_str(&format!(" · {}/s", HumanFloatCount(rate.round())));
        }
        if let Some(lag) = metrics.kafka_lag(None) {
            message.push_str(&format!(" · kafka lag {}", HumanCount(lag)));
        }
        bar.set_message(message);
        if let Some((read, total)) = metrics.input_bytes() {
            bar.set_length(total);
            bar.set_position(read);
            if !files {
                bar.set_style(reading.clone());
                files = true;
            }
        }
        bar.tick();
        // Woken early by `finish`, so the end of a run is not held back.
        std::thread::park_timeout(EVERY);
    }
    bar.finish_and_clear();
}
