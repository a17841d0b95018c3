//! Source tasks: they produce records, assign watermarks from event time, and push both into
//! the task's chain.

#[cfg(feature = "avro")]
pub mod avro;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod nexmark;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;

/// Holds a source instance to its share of its run's `--rate-limit` (records per second of
/// each source; a generator: events, over all its splits; 0: as fast as possible) by sleeping
/// when it runs ahead.
pub(crate) struct Pacer {
    per_second: u64,
    started: std::time::Instant,
}

impl Pacer {
    pub(crate) fn new(splits: u32) -> Pacer {
        let total = crate::context::with(|c| c.rate_limit());
        Pacer {
            per_second: if total == 0 {
                0
            } else {
                (total / splits.max(1) as u64).max(1)
            },
            started: std::time::Instant::now(),
        }
    }

    /// `done` events have been produced since the start.
    #[inline]
    pub(crate) fn wait(&mut self, done: u64) {
        if self.per_second == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(done as f64 / self.per_second as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Event time of a source: which field carries it and the bounded out-of-orderness.
#[cfg(any(feature = "parquet", feature = "avro"))]
use crate::collector::Collector;

/// Ends a source's chain after an error (the watermark at the end of time, then finish) and
/// returns the error, for record-at-a-time sources that fail part way.
#[cfg(any(feature = "parquet", feature = "avro"))]
pub(crate) fn fail<T, C: Collector<T>>(
    chain: &mut crate::metrics::SourceMeter<C>,
    message: String,
) -> Result<(), String> {
    chain.watermark(i64::MAX);
    chain.finish();
    Err(message)
}

/// What a record-at-a-time source does every so many records: waits for the rate limit,
/// then, when the tick is due, sends the watermark owed and ticks the chain. `false`: the run
/// is stopping its sources (noted), so the source ends.
#[cfg(any(feature = "parquet", feature = "avro"))]
pub(crate) fn pace_and_tick<T, C: Collector<T>>(
    pace: &mut Pacer,
    produced: u64,
    ticker: &mut crate::tick::Ticker,
    tracker: Option<&mut WatermarkTracker>,
    chain: &mut crate::metrics::SourceMeter<C>,
) -> bool {
    pace.wait(produced);
    if crate::stop::sources_stopped() {
        crate::stop::note_stopped_early();
        return false;
    }
    let now = std::time::Instant::now();
    if ticker.due(now) {
        if let Some(wm) = tracker.and_then(|t| t.tick(now)) {
            chain.watermark(wm);
        }
        chain.tick();
        ticker.ticked(now);
    }
    true
}

pub struct EventTime<T> {
    pub time: fn(&T) -> i64,
    pub max_out_of_orderness_ms: i64,
}

/// Tracks the highest timestamp seen and emits `max - bound` as the watermark when it has
/// advanced: every `WATERMARK_INTERVAL` records, and, for sources that can trickle (stdin,
/// Kafka, Avro from a named pipe), also when `WATERMARK_PERIOD` of wall-clock time has passed: checked
/// every 16th record while records come, and at every tick of the flush interval
/// ([`tick`](Self::tick)) while none do, so the last record before a pause moves event time
/// as far as it can. The watermark never runs ahead of the records: no wall-clock time is
/// added to it.
pub(crate) struct WatermarkTracker {
    bound: i64,
    max_seen: i64,
    emitted: i64,
    countdown: u32,
    periodic: Option<std::time::Instant>,
}

pub(crate) const WATERMARK_INTERVAL: u32 = 256;
const WATERMARK_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);

impl WatermarkTracker {
    pub(crate) fn new(bound: i64) -> Self {
        WatermarkTracker {
            bound,
            max_seen: i64::MIN,
            emitted: i64::MIN,
            countdown: WATERMARK_INTERVAL,
            periodic: None,
        }
    }

    /// A tracker that also emits on a wall-clock period.
    pub(crate) fn periodic(bound: i64) -> Self {
        WatermarkTracker {
            periodic: Some(std::time::Instant::now()),
            ..Self::new(bound)
        }
    }

    /// The tracker's state for a checkpoint: the highest timestamp seen, the last watermark.
    pub(crate) fn position(&self) -> (i64, i64) {
        (self.max_seen, self.emitted)
    }

    /// [`position`](Self::position) of an optional tracker (none: no event time).
    pub(crate) fn position_of(tracker: Option<&WatermarkTracker>) -> (i64, i64) {
        tracker.map_or((i64::MIN, i64::MIN), WatermarkTracker::position)
    }

    /// Resumes from a checkpointed [`position`](Self::position).
    pub(crate) fn restore(&mut self, max_seen: i64, emitted: i64) {
        self.max_seen = max_seen;
        self.emitted = emitted;
    }

    /// Observes a record's timestamp; returns a watermark to emit, if one is due.
    #[inline]
    pub(crate) fn observe(&mut self, ts: i64) -> Option<i64> {
        if ts > self.max_seen {
            self.max_seen = ts;
        }
        self.countdown -= 1;
        let due = self.countdown == 0
            || self.periodic.is_some_and(|last| {
                self.countdown.is_multiple_of(16) && last.elapsed() >= WATERMARK_PERIOD
            });
        if !due {
            return None;
        }
        self.countdown = WATERMARK_INTERVAL;
        if let Some(last) = self.periodic.as_mut() {
            *last = std::time::Instant::now();
        }
        self.owed()
    }

    /// A tick of the flush interval at `now`: the watermark a periodic tracker owes, if the
    /// period has passed since it last emitted (a tracker without a period emits by count
    /// alone).
    pub(crate) fn tick(&mut self, now: std::time::Instant) -> Option<i64> {
        let last = self.periodic?;
        if now.saturating_duration_since(last) < WATERMARK_PERIOD {
            return None;
        }
        let wm = self.owed()?;
        self.periodic = Some(now);
        self.countdown = WATERMARK_INTERVAL;
        Some(wm)
    }

    /// `max - bound`, if it is above the last watermark emitted.
    fn owed(&mut self) -> Option<i64> {
        let wm = self.max_seen.saturating_sub(self.bound);
        if wm > self.emitted {
            self.emitted = wm;
            return Some(wm);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_trails_the_maximum_by_the_bound() {
        let mut t = WatermarkTracker::new(1000);
        let mut emitted = Vec::new();
        for i in 0..(WATERMARK_INTERVAL as i64 * 3) {
            // Out of order: every other record is 500 ms behind.
            let ts = 10_000 + i * 10 - if i % 2 == 1 { 500 } else { 0 };
            if let Some(wm) = t.observe(ts) {
                emitted.push(wm);
            }
        }
        assert_eq!(emitted.len(), 3);
        // After 256 records the highest timestamp is 10_000 + 254 * 10.
        assert_eq!(emitted[0], 10_000 + 254 * 10 - 1000);
        assert!(emitted.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_tick_emits_the_watermark_owed_once_the_period_has_passed() {
        let mut t = WatermarkTracker::periodic(1000);
        // Fewer records than the every-16th check: nothing emitted by `observe`.
        for ts in [5_000, 7_000, 6_000] {
            assert_eq!(t.observe(ts), None);
        }
        let later = std::time::Instant::now() + WATERMARK_PERIOD;
        assert_eq!(t.tick(later), Some(6_000));
        // Nothing new: nothing owed.
        assert_eq!(t.tick(later + WATERMARK_PERIOD), None);
        t.observe(9_000);
        // Within the period of the last emission: not yet.
        let soon = later + WATERMARK_PERIOD / 2;
        assert_eq!(t.tick(soon), None);
        assert_eq!(t.tick(later + WATERMARK_PERIOD), Some(8_000));
        // A tracker without a period emits by count only.
        let mut counted = WatermarkTracker::new(0);
        counted.observe(10);
        assert_eq!(counted.tick(later), None);
    }

    #[test]
    fn watermark_never_goes_back() {
        let mut t = WatermarkTracker::new(0);
        let mut last = i64::MIN;
        for i in 0..2000i64 {
            let ts = if i < 1000 { i * 5 } else { 100 };
            if let Some(wm) = t.observe(ts) {
                assert!(wm > last);
                last = wm;
            }
        }
    }
}
