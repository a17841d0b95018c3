//! Keyed aggregation over event-time windows: tumbling, hopping, cumulating and session.
//!
//! Accumulators are updated as records arrive (incremental aggregation: records are never
//! buffered) and a window's rows are emitted when the watermark reaches its end, in order of
//! window end, then window start, then key. Then its state is dropped.
//!
//! - `Tumble { size }`: `[floor(t, size), +size)`.
//! - `Hop { size, slide }`: every window `[s, s + size)` with `s` a multiple of `slide` and
//!   `s <= t < s + size` (size/slide windows per record).
//! - `Cumulate { step, size }`: windows that start at `floor(t, size)` and end at each multiple
//!   of `step` up to `size`; a record belongs to those that end after it.
//! - `Session { gap }`: per key, a record opens `[t, t + gap)`; overlapping sessions merge
//!   (their accumulators too); a session ends `gap` after its last record.
//!
//! A record is late when every window it belongs to has already fired (its window end is at or
//! below the watermark). Late records are counted and handed to the late-record output, if the
//! pipeline declared one, else dropped.
//!
//! Window bounds are exact: `start = t - t.rem_euclid(size)` (aligned to the epoch, for
//! negative times too) and `end = start + size`, in checked arithmetic. Event times and sizes
//! are bounded (see `docs/time.md`), so these never overflow; a window that could not be
//! represented in `i64` would not be shifted to fit: its record would count as late. The only
//! extreme values are watermarks (`i64::MIN` before the first, `i64::MAX` at the end of
//! input): sums compared with a watermark (`end + lateness`) saturate, which compares exactly.
//!
//! With `--state disk` the accumulators of open fixed windows are kept in the process's LSM
//! store (`window_aggregate/disk.rs`), and so are each key's open sessions (a [`Keyed`] map;
//! their ends stay listed in memory); fired windows kept for their allowed lateness stay in
//! memory. A checkpoint writes the same format from either backend. Checkpoints are always
//! full: the state is bounded by the open windows.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{snapshot, Snapshot, StateSlot};
use crate::collector::{Collector, Discard};
use crate::functions::floor_to;
use crate::hash::FastMap;
use crate::keyed::Keyed;
use crate::metrics::{OpCounters, OpMetrics};
use crate::overflow::Overflows;
use crate::state::{State, StateError};

#[cfg(feature = "state-disk")]
mod disk;

/// The per-query part of a windowed aggregation, generated for each `aggregate` step.
pub trait WindowAggregate {
    type In;
    type Key: Hash + Eq + Ord + Clone + State;
    type Acc: State;
    type Out;
    /// The grouping key of a record (`()` for a global aggregate).
    fn key(record: &Self::In) -> Self::Key;
    /// The record's event time in ms.
    fn event_time(record: &Self::In) -> i64;
    fn new_acc() -> Self::Acc;
    fn add(acc: &mut Self::Acc, record: &Self::In);
    /// Folds `later` (the accumulator of a later session) into `acc` (session merging).
    fn merge(acc: &mut Self::Acc, later: Self::Acc);
    fn output(key: &Self::Key, window_start: i64, window_end: i64, acc: &Self::Acc) -> Self::Out;
    /// About how many bytes the accumulator's encoded form has beyond its fixed part (its
    /// sets and strings), cheap to compute: the disk backend weighs a growing accumulator by
    /// it without encoding it. The default (0) is for accumulators of a fixed size.
    #[inline(always)]
    fn acc_size(acc: &Self::Acc) -> usize {
        let _ = acc;
        0
    }
    /// Evaluates the record's aggregate arguments and conditions: when one overflows, sends
    /// the record to the dead letters and returns true (the record is left out). Generated
    /// only for aggregates whose expressions can overflow ([`crate::overflow`]).
    #[inline(always)]
    fn reject_overflow(record: &Self::In, overflows: &Overflows) -> bool {
        let _ = (record, overflows);
        false
    }
}

/// The wall clock in ms since the epoch (processing time); a clock before 1970 reads 0.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Which windows a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windows {
    Tumble {
        size: i64,
    },
    /// Tumbling windows aligned to a time zone's wall clock: `tumble(1d, zone: ...)` days
    /// run from local midnight to local midnight (23 or 25 hours on a summer-time change).
    #[cfg(feature = "tz")]
    TumbleIn {
        size: i64,
        zone: &'static crate::zone::Zone,
    },
    Hop {
        size: i64,
        slide: i64,
    },
    Cumulate {
        step: i64,
        size: i64,
    },
    Session {
        gap: i64,
    },
}

/// One session of one key.
struct Session<Acc> {
    start: i64,
    end: i64,
    acc: Acc,
}

impl<Acc: State> State for Session<Acc> {
    fn save(&self, out: &mut Vec<u8>) {
        self.start.save(out);
        self.end.save(out);
        self.acc.save(out);
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Session {
            start: State::load(input)?,
            end: State::load(input)?,
            acc: State::load(input)?,
        })
    }
}

pub struct WindowAggregateOp<A: WindowAggregate, N, L = Discard> {
    windows: Windows,
    /// Fixed windows: (end, start) -> key -> accumulator. Ordered so firing walks a prefix.
    fixed: BTreeMap<(i64, i64), FastMap<A::Key, A::Acc>>,
    /// Sessions per key, sorted by start, and an index (end, key) for firing.
    /// (On disk with `--state disk`, see [`Keyed`].)
    sessions: Keyed<A::Key, Vec<Session<A::Acc>>>,
    session_ends: BTreeMap<(i64, A::Key), ()>,
    watermark: i64,
    /// Processing time: records are stamped with the wall clock on arrival and windows fire
    /// when the wall clock passes their end (checked as records and watermarks arrive).
    processing_time: bool,
    /// Allowed lateness: a fixed window keeps its state this long after it fired; a record
    /// arriving in that time updates it and the window's row for its key is emitted again.
    lateness: i64,
    /// The newest event time seen (for the watermark lag metric).
    max_seen: i64,
    /// Fired windows still within their allowed lateness, and the keys to emit again.
    fired: BTreeMap<(i64, i64), FastMap<A::Key, A::Acc>>,
    redo: BTreeMap<(i64, i64), std::collections::BTreeSet<A::Key>>,
    next: N,
    late: L,
    stats: OpCounters,
    metrics: OpMetrics,
    scratch: Vec<(i64, i64)>,
    slot: StateSlot,
    /// Where records whose aggregate arguments overflow go, and overflowing sums are counted.
    overflows: Option<Overflows>,
    /// With `--state disk`: the open fixed windows, in the LSM store (`fixed` stays empty).
    #[cfg(feature = "state-disk")]
    disk: Option<disk::OnDisk<A>>,
}

impl<A: WindowAggregate, N: Collector<A::Out>> WindowAggregateOp<A, N, Discard> {
    pub fn new(metrics: OpMetrics, windows: Windows, next: N) -> Self {
        Self::with_late_output(metrics, windows, next, Discard)
    }
}

impl<A: WindowAggregate, N: Collector<A::Out>, L: Collector<A::In>> WindowAggregateOp<A, N, L> {
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): groups (a
    /// key in a window, or a key with open sessions), and the windows' tables (a walk over
    /// the open windows; sessions counted on a sample of the keys).
    fn measure_state(&mut self, force: bool) {
        use crate::metrics::{entries_bytes, table_bytes};
        if self.stats.state.due(force) {
            let windows = self.fixed.values().chain(self.fired.values());
            let (mut keys, mut bytes) = (0, 0);
            for groups in windows {
                keys += groups.len();
                bytes += table_bytes(groups);
            }
            keys += self.sessions.len();
            let session = entries_bytes::<Session<A::Acc>>(1);
            bytes += self.sessions.memory_bytes(|list| list.len() * session)
                + entries_bytes::<(i64, A::Key)>(self.session_ends.len());
            self.stats.state.set(keys, bytes);
        }
    }

    /// Late records go to `late` (a side output) instead of being dropped.
    pub fn with_late_output(metrics: OpMetrics, windows: Windows, next: N, late: L) -> Self {
        let windows = match windows {
            Windows::Tumble { size } => Windows::Tumble { size: size.max(1) },
            #[cfg(feature = "tz")]
            Windows::TumbleIn { size, zone } => Windows::TumbleIn {
                size: size.max(1),
                zone,
            },
            Windows::Hop { size, slide } => Windows::Hop {
                size: size.max(1),
                slide: slide.max(1),
            },
            Windows::Cumulate { step, size } => {
                let step = step.max(1);
                Windows::Cumulate {
                    step,
                    size: size.max(step),
                }
            }
            Windows::Session { gap } => Windows::Session { gap: gap.max(1) },
        };
        WindowAggregateOp {
            windows,
            fixed: BTreeMap::new(),
            sessions: Keyed::new(),
            session_ends: BTreeMap::new(),
            watermark: i64::MIN,
            processing_time: false,
            lateness: 0,
            max_seen: i64::MIN,
            fired: BTreeMap::new(),
            redo: BTreeMap::new(),
            next,
            late,
            stats: metrics.counters(),
            metrics,
            scratch: Vec::new(),
            slot: StateSlot::inert(),
            overflows: None,
            #[cfg(feature = "state-disk")]
            disk: match windows {
                Windows::Session { .. } => None,
                _ => disk::OnDisk::open(),
            },
        }
    }

    /// Checks records and results for integer overflow ([`WindowAggregate::reject_overflow`],
    /// sums that leave the range).
    pub fn with_overflows(mut self, overflows: Overflows) -> Self {
        self.overflows = Some(overflows);
        self
    }

    /// Keeps fixed windows open for late records this long after they fire (their rows are
    /// emitted again, updated: the output is then an updating stream).
    pub fn allowed_lateness(mut self, lateness_ms: i64) -> Self {
        self.lateness = lateness_ms.max(0);
        self
    }

    /// Windows on processing time instead of event time.
    pub fn on_processing_time(mut self) -> Self {
        self.processing_time = true;
        self
    }

    /// Keys with live state (for tests and metrics).
    pub fn state_size(&self) -> usize {
        #[cfg(feature = "state-disk")]
        let on_disk = self.disk.as_ref().map_or(0, disk::OnDisk::len);
        #[cfg(not(feature = "state-disk"))]
        let on_disk = 0;
        self.fixed.values().map(FastMap::len).sum::<usize>() + self.session_ends.len() + on_disk
    }

    /// Fills `scratch` with the (start, end) of every fixed window holding `ts`. `None` (and
    /// `scratch` left partial) when one of them does not fit in `i64`, which times within the
    /// accepted ranges never reach.
    #[inline]
    fn assign(&mut self, ts: i64) -> Option<()> {
        self.scratch.clear();
        match self.windows {
            Windows::Tumble { size } => {
                let start = floor_to(ts, size)?;
                self.scratch.push((start, start.checked_add(size)?));
            }
            #[cfg(feature = "tz")]
            Windows::TumbleIn { size, zone } => {
                // Aligned on the local clock, turned back into the instants of the window that
                // holds `ts` (in the hour repeated when clocks go back, the occurrence on its
                // side). Window bounds in accepted time ranges never come near the `i64` ends
                // (docs/time.md).
                let local = ts.checked_add(zone.offset_ms(ts))?;
                let local_start = floor_to(local, size)?;
                let start = zone.start_of(local_start, ts, "tumble");
                let end = zone.end_of(local_start.checked_add(size)?, ts, "tumble");
                self.scratch.push((start, end));
            }
            Windows::Hop { size, slide } => {
                let mut start = floor_to(ts, slide)?;
                loop {
                    let end = start.checked_add(size)?;
                    if end <= ts {
                        break;
                    }
                    self.scratch.push((start, end));
                    // The window a slide earlier holds `ts` too when its end is above it (an
                    // end below `i64::MIN` is not).
                    match end.checked_sub(slide) {
                        Some(earlier_end) if earlier_end > ts => {}
                        _ => break,
                    }
                    start = start.checked_sub(slide)?;
                }
            }
            Windows::Cumulate { step, size } => {
                let start = floor_to(ts, size)?;
                let last = start.checked_add(size)?;
                // `last` is a multiple of `step` (sema: size is a whole number of steps).
                let mut end = floor_to(ts, step)?.checked_add(step)?;
                while end <= last {
                    self.scratch.push((start, end));
                    match end.checked_add(step) {
                        Some(next) => end = next,
                        None => break,
                    }
                }
            }
            Windows::Session { .. } => {}
        }
        Some(())
    }

    fn add_session(&mut self, record: &A::In, ts: i64, gap: i64) -> bool {
        let Some(end) = ts.checked_add(gap) else {
            return false;
        };
        let key = A::key(record);
        // A record whose own session has ended by the watermark is late, unless it touches a
        // session of its key still open (every session held is: fired ones are gone), which
        // it then joins, as Flink merges a record's session before asking whether it is late.
        if end <= self.watermark
            && !self
                .sessions
                .get_mut(&key)
                .is_some_and(|list| list.iter().any(|s| s.start <= end && ts <= s.end))
        {
            return false;
        }
        let session_ends = &mut self.session_ends;
        let size = |list: &Vec<Session<A::Acc>>| {
            let each = std::mem::size_of::<Session<A::Acc>>();
            list.iter().map(|s| each + A::acc_size(&s.acc)).sum()
        };
        self.sessions.update(key.clone(), Vec::new, size, |list| {
            add_to_sessions::<A>(list, session_ends, (key, record), (ts, end));
        });
        true
    }
}

/// Adds `record` (of `key`, time `ts`, its own session ending at `end`) to its key's
/// sessions `list`, merging those it overlaps or touches; `session_ends` follows.
fn add_to_sessions<A: WindowAggregate>(
    list: &mut Vec<Session<A::Acc>>,
    session_ends: &mut BTreeMap<(i64, A::Key), ()>,
    (key, record): (A::Key, &A::In),
    (ts, end): (i64, i64),
) {
    {
        // Sessions overlapping or touching [ts, end) merge with the new record's own session
        // (as Flink's: a record exactly `gap` after a session's last one extends it).
        let mut start = ts;
        let mut new_end = end;
        let mut acc: Option<A::Acc> = None;
        let mut i = 0;
        let mut merged = Vec::new();
        while i < list.len() {
            let s = &list[i];
            if s.start <= end && ts <= s.end {
                let s = list.remove(i);
                start = start.min(s.start);
                new_end = new_end.max(s.end);
                merged.push(s);
            } else {
                i += 1;
            }
        }
        for s in merged {
            session_ends.remove(&(s.end, key.clone()));
            match acc.as_mut() {
                None => acc = Some(s.acc),
                Some(a) => A::merge(a, s.acc),
            }
        }
        let mut acc = acc.unwrap_or_else(A::new_acc);
        A::add(&mut acc, record);
        let at = list.partition_point(|s| s.start < start);
        list.insert(
            at,
            Session {
                start,
                end: new_end,
                acc,
            },
        );
        session_ends.insert((new_end, key), ());
    }
}

impl<A: WindowAggregate, N: Collector<A::Out>, L: Collector<A::In>> WindowAggregateOp<A, N, L> {
    fn fire_until(&mut self, watermark: i64) {
        // Rows of fired windows that late records updated, emitted again.
        for ((end, start), keys) in std::mem::take(&mut self.redo) {
            if let Some(groups) = self.fired.get(&(end, start)) {
                for key in keys {
                    if let Some(acc) = groups.get(&key) {
                        let out = A::output(&key, start, end, acc);
                        if let Some(overflows) = &self.overflows {
                            overflows.count_taken();
                        }
                        self.stats.records_out += 1;
                        self.next.push(&out);
                    }
                }
            }
        }
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            while let Some(((end, start), groups)) = disk.take_first(watermark) {
                for (key, acc) in &groups {
                    let out = A::output(key, start, end, acc);
                    if let Some(overflows) = &self.overflows {
                        overflows.count_taken();
                    }
                    self.stats.records_out += 1;
                    self.next.push(&out);
                }
                if self.lateness > 0 {
                    self.fired
                        .insert((end, start), groups.into_iter().collect());
                }
            }
        }
        while let Some(entry) = self.fixed.first_entry() {
            let (end, start) = *entry.key();
            if end > watermark {
                break;
            }
            let groups = entry.remove();
            let mut keys: Vec<&A::Key> = groups.keys().collect();
            keys.sort_unstable();
            for key in keys {
                let out = A::output(key, start, end, &groups[key]);
                if let Some(overflows) = &self.overflows {
                    overflows.count_taken();
                }
                self.stats.records_out += 1;
                self.next.push(&out);
            }
            if self.lateness > 0 {
                self.fired.insert((end, start), groups);
            }
        }
        // Windows past their allowed lateness are done.
        while let Some(entry) = self.fired.first_entry() {
            if entry.key().0.saturating_add(self.lateness) > watermark {
                break;
            }
            entry.remove();
        }
        while let Some(entry) = self.session_ends.first_entry() {
            let (end, ref key) = *entry.key();
            if end > watermark {
                break;
            }
            let key = key.clone();
            entry.remove();
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            if let Some(pos) = list.iter().position(|s| s.end == end) {
                let s = list.remove(pos);
                let out = A::output(&key, s.start, s.end, &s.acc);
                if let Some(overflows) = &self.overflows {
                    overflows.count_taken();
                }
                self.stats.records_out += 1;
                self.next.push(&out);
            }
            if list.is_empty() {
                self.sessions.remove(&key);
            }
        }
    }
}

impl<A: WindowAggregate, N: Collector<A::Out>, L: Collector<A::In>> Collector<A::In>
    for WindowAggregateOp<A, N, L>
{
    #[inline]
    fn push(&mut self, record: &A::In) {
        self.stats.records_in += 1;
        if let Some(overflows) = &self.overflows {
            if A::reject_overflow(record, overflows) {
                return;
            }
        }
        let ts = if self.processing_time {
            let now = now_ms();
            if now > self.watermark {
                self.watermark = now;
                self.fire_until(now);
            }
            now
        } else {
            A::event_time(record)
        };
        self.max_seen = self.max_seen.max(ts);
        let accepted = match self.windows {
            Windows::Session { gap } => self.add_session(record, ts, gap),
            _ => {
                let mut accepted = false;
                if self.assign(ts).is_none() {
                    self.scratch.clear();
                }
                for i in 0..self.scratch.len() {
                    let (start, end) = self.scratch[i];
                    if end.saturating_add(self.lateness) <= self.watermark {
                        continue;
                    }
                    if end <= self.watermark {
                        // Fired, but within the allowed lateness: update and emit again.
                        accepted = true;
                        let key = A::key(record);
                        // (A window that fired empty has no entry yet.)
                        let groups = self.fired.entry((end, start)).or_default();
                        A::add(groups.entry(key.clone()).or_insert_with(A::new_acc), record);
                        self.redo.entry((end, start)).or_default().insert(key);
                        continue;
                    }
                    accepted = true;
                    #[cfg(feature = "state-disk")]
                    if let Some(disk) = &mut self.disk {
                        disk.add((end, start), record);
                        continue;
                    }
                    let groups = self.fixed.entry((end, start)).or_default();
                    let acc = groups.entry(A::key(record)).or_insert_with(A::new_acc);
                    A::add(acc, record);
                }
                accepted
            }
        };
        if !accepted {
            self.stats.late += 1;
            self.late.push(record);
        }
    }

    fn watermark(&mut self, watermark: i64) {
        if self.processing_time {
            // Event time does not drive these windows; the wall clock does. At the end of
            // input (the final watermark) every window fires.
            let now = if watermark == i64::MAX {
                i64::MAX
            } else {
                now_ms()
            };
            if now > self.watermark {
                self.watermark = now;
                self.fire_until(now);
            }
            self.measure_state(watermark == i64::MAX);
            self.next.watermark(watermark);
            self.late.watermark(watermark);
            return;
        }
        if watermark <= self.watermark {
            return;
        }
        if watermark < i64::MAX && self.max_seen > watermark {
            self.stats.watermark_lag_ms.raise(self.max_seen - watermark);
        }
        self.watermark = watermark;
        self.fire_until(watermark);
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
        self.late.watermark(watermark);
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.measure_state(true);
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
        self.late.barrier(checkpoint);
    }

    /// Processing-time windows fire as the wall clock passes their end, also while no input
    /// comes; event-time windows wait for the watermark.
    fn tick(&mut self) {
        self.measure_state(false);
        if self.processing_time {
            let now = now_ms();
            if now > self.watermark {
                self.watermark = now;
                self.fire_until(now);
            }
        }
        self.next.tick();
        self.late.tick();
    }

    fn finish(&mut self) {
        // A stopped run (SIGTERM, Ctrl-C) did not see the end of its input: open windows are
        // not complete.
        if !crate::stop::stopped_early() {
            self.fire_until(i64::MAX);
        }
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
        self.late.finish();
    }
}

impl<A: WindowAggregate, N, L> Snapshot for WindowAggregateOp<A, N, L> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            disk.save(out);
        } else {
            self.fixed.save(out);
        }
        #[cfg(not(feature = "state-disk"))]
        self.fixed.save(out);
        self.sessions.save(out);
        self.session_ends.save(out);
        self.watermark.save(out);
        self.max_seen.save(out);
        self.fired.save(out);
        self.redo.save(out);
    }

    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.load(input)?;
        } else {
            self.fixed = State::load(input)?;
        }
        #[cfg(not(feature = "state-disk"))]
        {
            self.fixed = State::load(input)?;
        }
        self.sessions = State::load(input)?;
        self.session_ends = State::load(input)?;
        self.watermark = State::load(input)?;
        self.max_seen = State::load(input)?;
        self.fired = State::load(input)?;
        self.redo = State::load(input)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Counts records per key and window; input is (key, timestamp).
    struct CountPerKey;

    impl WindowAggregate for CountPerKey {
        type In = (i64, i64);
        type Key = i64;
        type Acc = i64;
        type Out = (i64, i64, i64, i64);
        fn key(r: &(i64, i64)) -> i64 {
            r.0
        }
        fn event_time(r: &(i64, i64)) -> i64 {
            r.1
        }
        fn new_acc() -> i64 {
            0
        }
        fn add(acc: &mut i64, _r: &(i64, i64)) {
            *acc += 1;
        }
        fn merge(acc: &mut i64, later: i64) {
            *acc += later;
        }
        fn output(key: &i64, start: i64, end: i64, acc: &i64) -> (i64, i64, i64, i64) {
            (*key, start, end, *acc)
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Rc<RefCell<Vec<String>>>);

    impl Collector<(i64, i64, i64, i64)> for Sink {
        fn push(&mut self, r: &(i64, i64, i64, i64)) {
            self.0.borrow_mut().push(format!("row {:?}", r));
        }
        fn watermark(&mut self, wm: i64) {
            self.0.borrow_mut().push(format!("wm {wm}"));
        }
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {
            self.0.borrow_mut().push("end".into());
        }
    }

    fn run(windows: Windows, input: &[(i64, i64)], watermarks: &[(usize, i64)]) -> Vec<String> {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op =
            WindowAggregateOp::<CountPerKey, _>::new(metrics.op("w"), windows, sink.clone());
        for (i, r) in input.iter().enumerate() {
            for (at, wm) in watermarks {
                if *at == i {
                    op.watermark(*wm);
                }
            }
            op.push(r);
        }
        op.watermark(i64::MAX);
        op.finish();
        let out = sink.0.borrow().clone();
        out
    }

    /// The windows holding `t`, computed in `i128` from the definitions.
    fn oracle(windows: Windows, t: i64) -> Vec<(i64, i64)> {
        let t = i128::from(t);
        let floor = |unit: i64| t.div_euclid(i128::from(unit)) * i128::from(unit);
        let mut out = Vec::new();
        match windows {
            Windows::Tumble { size } => out.push((floor(size), floor(size) + i128::from(size))),
            Windows::Hop { size, slide } => {
                let mut start = floor(slide);
                while start + i128::from(size) > t {
                    out.push((start, start + i128::from(size)));
                    start -= i128::from(slide);
                }
            }
            Windows::Cumulate { step, size } => {
                let start = floor(size);
                for j in 1..=size / step {
                    let end = start + i128::from(j * step);
                    if end > t {
                        out.push((start, end));
                    }
                }
            }
            #[cfg(feature = "tz")]
            Windows::TumbleIn { .. } => unreachable!("the oracle covers epoch-aligned windows"),
            Windows::Session { .. } => {}
        }
        out.into_iter()
            .map(|(s, e)| (i64::try_from(s).unwrap(), i64::try_from(e).unwrap()))
            .collect()
    }

    #[test]
    fn windows_are_aligned_for_negative_times_and_at_the_ends_of_the_ranges() {
        // The first and last instants of the input range (years 0000 to 9999) and of the
        // default event-time range, around the epoch, and the largest durations sema allows.
        let (first, last) = (-62_167_219_200_000, 253_402_300_799_999);
        let (et_first, et_last) = (-2_208_988_800_000, 7_258_118_399_999);
        let longest = 315_569_520_000_000; // 3652425d, the checker's limit
        let times = [
            first,
            first + 1,
            et_first,
            -86_400_001,
            -1001,
            -1000,
            -999,
            -1,
            0,
            1,
            et_last,
            last - 1,
            last,
        ];
        let windows = [
            Windows::Tumble { size: 1000 },
            Windows::Tumble { size: 7 },
            Windows::Tumble { size: longest },
            Windows::Hop {
                size: 3000,
                slide: 1000,
            },
            Windows::Hop {
                size: longest,
                slide: longest / 5,
            },
            Windows::Cumulate {
                step: 250,
                size: 1000,
            },
            Windows::Cumulate {
                step: longest / 3,
                size: longest,
            },
        ];
        let metrics = Metrics::new();
        for w in windows {
            let mut op = WindowAggregateOp::<CountPerKey, _>::new(metrics.op("w"), w, Discard);
            for t in times {
                assert_eq!(op.assign(t), Some(()), "{w:?} at {t}");
                assert_eq!(op.scratch, oracle(w, t), "{w:?} at {t}");
                for &(start, end) in &op.scratch {
                    assert!(start <= t && t < end, "{w:?} at {t}: [{start}, {end})");
                }
            }
        }
    }

    #[test]
    fn a_window_that_does_not_fit_in_i64_makes_its_record_late_never_shifted() {
        let metrics = Metrics::new();
        let mut assign = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("a"),
            Windows::Tumble { size: 1000 },
            Discard,
        );
        // i64::MIN is not a multiple of 1000; i64::MAX's window would end past i64::MAX.
        assert_eq!(assign.assign(i64::MIN), None);
        assert_eq!(assign.assign(i64::MAX), None);
        assert_eq!(assign.assign(i64::MIN + 808), Some(()));
        assert_eq!(assign.scratch, vec![(i64::MIN + 808, i64::MIN + 1808)]);
        for (w, rows) in [
            (Windows::Tumble { size: 1000 }, vec!["row (1, 0, 1000, 1)"]),
            (
                Windows::Hop {
                    size: 2000,
                    slide: 1000,
                },
                vec!["row (1, -1000, 1000, 1)", "row (1, 0, 2000, 1)"],
            ),
            (
                Windows::Cumulate {
                    step: 500,
                    size: 1000,
                },
                vec!["row (1, 0, 500, 1)", "row (1, 0, 1000, 1)"],
            ),
        ] {
            let sink = Sink::default();
            let metrics = Metrics::new();
            let mut op = WindowAggregateOp::<CountPerKey, _>::new(metrics.op("w"), w, sink.clone());
            for r in [(1, i64::MAX), (1, i64::MIN), (1, 5)] {
                op.push(&r);
            }
            op.finish();
            let out = sink.0.borrow().clone();
            assert_eq!(out[..out.len() - 1], rows, "{w:?}");
            assert_eq!(metrics.ops()[0].1.late, 2, "{w:?}");
        }
        // A session starts at its record's time; one at i64::MAX could not end.
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("s"),
            Windows::Session { gap: 10 },
            sink.clone(),
        );
        op.push(&(1, i64::MAX));
        op.push(&(1, -5));
        op.finish();
        assert_eq!(*sink.0.borrow(), vec!["row (1, -5, 5, 1)", "end"]);
        assert_eq!(metrics.ops()[0].1.late, 1);
    }

    #[test]
    fn allowed_lateness_updates_fired_windows_then_closes_them() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("l"),
            Windows::Tumble { size: 10 },
            sink.clone(),
        )
        .allowed_lateness(5);
        op.push(&(1, 3));
        op.watermark(10); // [0, 10) fires with 1
        op.push(&(1, 4)); // late but allowed: the row is emitted again with 2
        op.watermark(12);
        op.watermark(15); // 10 + 5 <= 15: the window closes
        op.push(&(1, 5)); // too late now
        op.watermark(i64::MAX);
        op.finish();
        let out = sink.0.borrow().clone();
        assert_eq!(
            out,
            vec![
                "row (1, 0, 10, 1)",
                "wm 10",
                "row (1, 0, 10, 2)",
                "wm 12",
                "wm 15",
                "wm 9223372036854775807",
                "end"
            ]
        );
        assert_eq!(metrics.ops()[0].1.late, 1);
        assert_eq!(op.state_size(), 0);
    }

    #[test]
    fn hopping_windows_hold_each_record_size_over_slide_times() {
        let out = run(Windows::Hop { size: 10, slide: 5 }, &[(1, 7), (1, 12)], &[]);
        assert_eq!(
            out,
            vec![
                "row (1, 0, 10, 1)",
                "row (1, 5, 15, 2)",
                "row (1, 10, 20, 1)",
                "wm 9223372036854775807",
                "end"
            ]
        );
    }

    #[test]
    fn cumulating_windows_grow_by_step_within_size() {
        let out = run(
            Windows::Cumulate { step: 10, size: 30 },
            &[(1, 3), (1, 15), (1, 31)],
            &[],
        );
        assert_eq!(
            out,
            vec![
                "row (1, 0, 10, 1)",
                "row (1, 0, 20, 2)",
                "row (1, 0, 30, 2)",
                "row (1, 30, 40, 1)",
                "row (1, 30, 50, 1)",
                "row (1, 30, 60, 1)",
                "wm 9223372036854775807",
                "end"
            ]
        );
    }

    #[test]
    fn sessions_merge_when_records_bridge_them() {
        // Key 1: 0 and 20 are separate sessions (gap 10) until 9 and 15 bridge them.
        let input = [(1, 0), (1, 20), (2, 5), (1, 9), (1, 15), (1, 50)];
        let out = run(Windows::Session { gap: 10 }, &input, &[(5, 40)]);
        assert_eq!(
            out,
            vec![
                "row (2, 5, 15, 1)",
                "row (1, 0, 30, 4)",
                "wm 40",
                "row (1, 50, 60, 1)",
                "wm 9223372036854775807",
                "end"
            ]
        );
    }

    #[test]
    fn a_record_behind_the_watermark_joins_the_open_session_it_touches() {
        // Key 1's records at 0 and 8 make the session [0, 18), open while the watermark is
        // 11: the record at 1 belongs to it, although its own session [1, 11) has ended by
        // then (it was dropped as late: a count of 2, not 3). The record at -20 touches no
        // open session and is late.
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("s"),
            Windows::Session { gap: 10 },
            sink.clone(),
        );
        op.push(&(1, 0));
        op.push(&(1, 8));
        op.watermark(11);
        op.push(&(1, 1));
        op.push(&(1, -20));
        op.finish();
        assert_eq!(*sink.0.borrow(), vec!["wm 11", "row (1, 0, 18, 3)", "end"]);
        assert_eq!(metrics.ops()[0].1.late, 1);
    }

    #[test]
    fn session_records_past_the_watermark_are_late() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("s"),
            Windows::Session { gap: 10 },
            sink.clone(),
        );
        op.push(&(1, 100));
        op.watermark(200);
        op.push(&(1, 150)); // its own session would end at 160 <= 200
        op.finish();
        assert_eq!(metrics.ops()[0].1.late, 1);
        assert_eq!(op.state_size(), 0);
    }

    #[test]
    fn windows_fire_in_order_when_the_watermark_passes_their_end() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = WindowAggregateOp::<CountPerKey, _>::new(
            metrics.op("t"),
            Windows::Tumble { size: 10 },
            sink.clone(),
        );
        for r in [(2, 1), (1, 3), (2, 12), (1, 9), (1, 10), (3, -1)] {
            op.push(&r);
        }
        op.watermark(9); // [-10, 0) ends at 0 <= 9: it fires before the watermark goes on
        op.watermark(10); // [0, 10) fires, keys in order
        op.push(&(1, 5)); // late: its window has fired
        op.push(&(1, 15));
        op.finish();
        let out = sink.0.borrow().clone();
        assert_eq!(
            out,
            vec![
                "row (3, -10, 0, 1)",
                "wm 9",
                "row (1, 0, 10, 2)",
                "row (2, 0, 10, 1)",
                "wm 10",
                "row (1, 10, 20, 2)",
                "row (2, 10, 20, 1)",
                "end",
            ]
        );
        let stats = metrics.ops();
        assert_eq!(stats[0].1.late, 1);
        assert_eq!(stats[0].1.records_in, 8);
        assert_eq!(stats[0].1.records_out, 5);
    }

    /// Open fixed windows and sessions on disk (a cache so small that most accumulators are
    /// written and read back) emit the in-memory rows in the same order, with allowed
    /// lateness too; and
    /// a checkpoint taken halfway on either backend, restored on the other, resumes to the
    /// same rows.
    #[cfg(feature = "state-disk")]
    #[test]
    fn open_windows_on_disk_give_the_in_memory_rows_and_checkpoints_cross_backends() {
        use crate::keyed::Keyed;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 11);
        let mut seed = 0x9e37_79b9_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // (key, time) records, times out of order by up to 12, a watermark now and then.
        let mut steps: Vec<Result<(i64, i64), i64>> = Vec::new();
        for i in 0..3000i64 {
            steps.push(Ok(((next() % 40) as i64, i - (next() % 12) as i64)));
            if next() % 8 == 0 {
                steps.push(Err(i - 15));
            }
        }
        let windows = [
            Windows::Tumble { size: 10 },
            Windows::Hop { size: 20, slide: 5 },
            Windows::Cumulate { step: 4, size: 20 },
            Windows::Session { gap: 6 },
        ];
        type Op = WindowAggregateOp<CountPerKey, Sink>;
        let make = |windows: Windows, lateness: i64, disk: bool| {
            let sink = Sink::default();
            let metrics = Metrics::new();
            let mut op = Op::new(metrics.op("w"), windows, sink.clone()).allowed_lateness(lateness);
            let session = matches!(windows, Windows::Session { .. });
            op.disk = if disk && !session {
                disk::OnDisk::with(Keyed::spilled_to(&store))
            } else {
                None
            };
            if disk && session {
                op.sessions = Keyed::spilled_to(&store);
            }
            (op, sink)
        };
        let feed = |op: &mut Op, steps: &[Result<(i64, i64), i64>]| {
            for step in steps {
                match step {
                    Ok(r) => op.push(r),
                    Err(w) => op.watermark(*w),
                }
            }
        };
        for windows in windows {
            for lateness in [0, 7] {
                let what = format!("{windows:?} lateness {lateness}");
                let (mut memory, sink) = make(windows, lateness, false);
                feed(&mut memory, &steps);
                memory.watermark(i64::MAX);
                memory.finish();
                let want = sink.0.borrow().clone();
                assert!(want.len() > 1000, "{what}");
                let (mut on_disk, sink) = make(windows, lateness, true);
                assert!(on_disk.disk.is_some() || on_disk.sessions.weighs());
                feed(&mut on_disk, &steps);
                on_disk.watermark(i64::MAX);
                on_disk.finish();
                assert_eq!(*sink.0.borrow(), want, "{what}");
                assert_eq!(on_disk.state_size(), 0, "{what}");
                for (from_disk, to_disk) in [(true, false), (false, true), (true, true)] {
                    let (first, rest) = steps.split_at(steps.len() / 2);
                    let (mut a, sink_a) = make(windows, lateness, from_disk);
                    feed(&mut a, first);
                    let mut bytes = Vec::new();
                    a.save_state(&mut bytes);
                    let (mut b, sink_b) = make(windows, lateness, to_disk);
                    b.load_state(&mut &bytes[..]).unwrap();
                    assert_eq!(b.state_size(), a.state_size(), "{what}");
                    feed(&mut b, rest);
                    b.watermark(i64::MAX);
                    b.finish();
                    let mut got = sink_a.0.borrow().clone();
                    got.extend(sink_b.0.borrow().iter().cloned());
                    assert_eq!(got, want, "{what} from disk {from_disk} to {to_disk}");
                }
            }
        }
    }
}
