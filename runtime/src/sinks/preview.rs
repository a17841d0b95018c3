//! The preview mode of `weir run FILE --limit N`: the CLI builds the pipeline with every sink
//! writing to stdout, each behind a [`Limit`], and runs it with `--limit N`. A sink prints
//! its first N rows (changes, for an updating stream) and then nothing; once every sink has
//! printed N, the sources stop and the run ends with exit code 0 and a line saying the limit
//! was reached. Files and Kafka topics are never written by a preview.
//!
//! A preview is a pipeline binary (one run per process), so what its sinks share is kept per
//! process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::collector::Collector;

/// What every preview sink of the run shares.
struct Shared {
    limit: Option<u64>,
    /// Sinks registered, and those that have printed their `limit` rows.
    sinks: AtomicUsize,
    full: AtomicUsize,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// Set when every sink has printed its rows (the run is stopped, and that is a success).
static REACHED: AtomicBool = AtomicBool::new(false);

/// How long the sources get to stop on their own once the limit is reached, before the
/// process exits anyway (a source may be blocked reading stdin or a silent topic).
const GRACE: Duration = Duration::from_secs(2);

/// Registers one preview sink; `limit` is the run's `--limit` (none: every row is printed).
pub fn register(limit: Option<u64>) -> Gate {
    let shared = SHARED.get_or_init(|| Shared {
        limit,
        sinks: AtomicUsize::new(0),
        full: AtomicUsize::new(0),
    });
    shared.sinks.fetch_add(1, Ordering::SeqCst);
    Gate {
        limit: shared.limit,
    }
}

/// Whether this binary is a preview build (it registered preview sinks).
pub fn is_preview() -> bool {
    SHARED.get().is_some()
}

/// Whether the run stopped because every sink reached the limit.
pub fn limit_reached() -> bool {
    REACHED.load(Ordering::SeqCst)
}

/// The line the run ends with when the limit was reached.
pub fn reached_message() -> String {
    let (limit, sinks) = SHARED.get().map_or((0, 0), |s| {
        (s.limit.unwrap_or(0), s.sinks.load(Ordering::SeqCst))
    });
    let each = if sinks == 1 { "the sink" } else { "each sink" };
    format!("preview limit reached: {limit} rows from {each}; stopped")
}

fn sink_full() {
    let Some(shared) = SHARED.get() else { return };
    let full = shared.full.fetch_add(1, Ordering::SeqCst) + 1;
    if full < shared.sinks.load(Ordering::SeqCst) {
        return;
    }
    REACHED.store(true, Ordering::SeqCst);
    crate::stop::note_stopped_early();
    crate::stop::stop_sources();
    // Sources blocked on input that may never come (stdin, a quiet topic) cannot see the
    // stop: after a grace period the process ends without them. Every sink has flushed. Only
    // a pipeline binary's run ends its process.
    let Some(run) = crate::context::current().filter(|c| c.owns_process()) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("preview-stop".into())
        .spawn(move || {
            let _run = run.enter();
            std::thread::sleep(GRACE);
            tracing::info!("{}", reached_message());
            crate::context::exit_or_stop(0, "the preview limit was reached");
        });
}

/// A preview sink's share of the run: how many rows it may print.
#[derive(Clone, Copy, Debug)]
pub struct Gate {
    limit: Option<u64>,
}

/// Passes the first `limit` records to the sink it wraps, then finishes that sink (so its
/// rows are flushed) and drops everything after.
pub struct Limit<C> {
    inner: C,
    left: Option<u64>,
    finished: bool,
}

impl<C> Limit<C> {
    pub fn new(gate: Gate, inner: C) -> Self {
        Limit {
            inner,
            left: gate.limit,
            finished: false,
        }
    }
}

impl<T: ?Sized, C: Collector<T>> Collector<T> for Limit<C> {
    #[inline]
    fn push(&mut self, record: &T) {
        if self.finished {
            return;
        }
        self.inner.push(record);
        if let Some(left) = &mut self.left {
            *left -= 1;
            if *left == 0 {
                self.finished = true;
                self.inner.finish();
                sink_full();
            }
        }
    }

    fn tick(&mut self) {
        if !self.finished {
            self.inner.tick();
        }
    }

    fn watermark(&mut self, watermark: i64) {
        if !self.finished {
            self.inner.watermark(watermark);
        }
    }

    fn barrier(&mut self, checkpoint: u64) {
        if !self.finished {
            self.inner.barrier(checkpoint);
        }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.inner.finish();
        }
    }
}
