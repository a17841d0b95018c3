//! Source tasks: they produce records, assign watermarks from event time, and push both into
//! the task's chain.

pub mod lines;
pub mod nexmark;

/// Event time of a source: which field carries it and the bounded out-of-orderness.
pub struct EventTime<T> {
    pub time: fn(&T) -> i64,
    pub max_out_of_orderness_ms: i64,
}

/// Tracks the highest timestamp seen and emits `max - bound` as the watermark every
/// `WATERMARK_INTERVAL` records when it has advanced.
pub(crate) struct WatermarkTracker {
    bound: i64,
    max_seen: i64,
    emitted: i64,
    countdown: u32,
}

pub(crate) const WATERMARK_INTERVAL: u32 = 256;

impl WatermarkTracker {
    pub(crate) fn new(bound: i64) -> Self {
        WatermarkTracker {
            bound,
            max_seen: i64::MIN,
            emitted: i64::MIN,
            countdown: WATERMARK_INTERVAL,
        }
    }

    /// Observes a record's timestamp; returns a watermark to emit, if one is due.
    #[inline]
    pub(crate) fn observe(&mut self, ts: i64) -> Option<i64> {
        if ts > self.max_seen {
            self.max_seen = ts;
        }
        self.countdown -= 1;
        if self.countdown == 0 {
            self.countdown = WATERMARK_INTERVAL;
            let wm = self.max_seen.saturating_sub(self.bound);
            if wm > self.emitted {
                self.emitted = wm;
                return Some(wm);
            }
        }
        None
    }
}
