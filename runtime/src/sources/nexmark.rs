//! The Nexmark generator as a source: one task per split, generating one kind of event into a
//! reused buffer (no allocation per event) and skipping the other kinds without generating them.

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::Metrics;
use crate::nexmark::{self, Auction, Bid, EventKind, EventMeta, NexmarkConfig, Person, Split};
use crate::sources::{EventTime, WatermarkTracker};

/// One of the three Nexmark record types.
pub trait NexmarkRecord: Default {
    const KIND: EventKind;
    fn fill(config: &NexmarkConfig, meta: &EventMeta, out: &mut Self);
}

impl NexmarkRecord for Person {
    const KIND: EventKind = EventKind::Person;
    #[inline]
    fn fill(config: &NexmarkConfig, meta: &EventMeta, out: &mut Self) {
        nexmark::fill_person(config, meta, out)
    }
}

impl NexmarkRecord for Auction {
    const KIND: EventKind = EventKind::Auction;
    #[inline]
    fn fill(config: &NexmarkConfig, meta: &EventMeta, out: &mut Self) {
        nexmark::fill_auction(config, meta, out)
    }
}

impl NexmarkRecord for Bid {
    const KIND: EventKind = EventKind::Bid;
    #[inline]
    fn fill(config: &NexmarkConfig, meta: &EventMeta, out: &mut Self) {
        nexmark::fill_bid(config, meta, out)
    }
}

/// Runs split `index` of the generator, pushing records of type `R` into `chain`.
pub fn run<R: NexmarkRecord, C: Collector<R>>(
    source: &'static str,
    metrics: &Metrics,
    config: &NexmarkConfig,
    index: usize,
    event_time: Option<EventTime<R>>,
    mut slot: StateSlot,
    chain: C,
) -> Result<(), String> {
    let mut chain = metrics.source(source, chain);
    let mut split = Split::new(config, index as u32);
    let mut record = R::default();
    let mut tracker = event_time
        .as_ref()
        .map(|et| WatermarkTracker::new(et.max_out_of_orderness_ms));
    if let Some(bytes) = slot.take_restored() {
        let (position, max_seen, emitted): (u64, i64, i64) = crate::state::decode(&bytes)
            .map_err(|e| format!("source `{source}`: cannot restore its position: {e}"))?;
        split.seek(position);
        if let Some(t) = tracker.as_mut() {
            t.restore(max_seen, emitted);
        }
    }
    let start = split.position();
    let mut pace = super::Pacer::new(config.generators);
    let mut produced = 0u64;
    let mut countdown = 0u32;
    // A checkpoint's part: the split position, the highest time seen, the last watermark.
    let part = |position: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        crate::state::encode(&(position, max_seen, emitted))
    };
    let mut ticker = crate::tick::Ticker::new();
    while let Some(meta) = split.next_meta() {
        if countdown == 0 {
            countdown = 64;
            pace.wait(split.position() - start);
            // A rate-limited generator trickles: its output goes out with the flush interval.
            tick_if_due(&mut ticker, &mut chain);
            if crate::stop::sources_stopped() {
                crate::stop::note_stopped_early();
                // `meta` is not consumed: the position is before it.
                metrics.add_generator_events(source, split.position() - 1 - start);
                let position = split.position() - 1;
                slot.end_of_input(|| part(position, tracker.as_ref()), &mut chain);
                return Ok(());
            }
            if let Some(id) = slot.barrier_due() {
                // `meta` is not consumed yet: the position to resume from is before it.
                slot.save(
                    id,
                    &part(split.position() - 1, tracker.as_ref()),
                    Vec::new(),
                );
                chain.barrier(id);
            }
        }
        countdown -= 1;
        if meta.kind != R::KIND {
            continue;
        }
        R::fill(config, &meta, &mut record);
        produced += 1;
        chain.push(&record);
        if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
            if let Some(wm) = tracker.observe((et.time)(&record)) {
                chain.watermark(wm);
            }
        }
    }
    // Throughput counts generator events, as Nexmark figures do (bids are 46 of every 50).
    let _ = produced;
    metrics.add_generator_events(source, split.position() - start);
    let position = split.position();
    slot.end_of_input(|| part(position, tracker.as_ref()), &mut chain);
    Ok(())
}

/// Ticks `chain` when the flush interval has passed. Out of line: inlined into the generator's
/// loop, it cost that loop about 9 % (measured on a 20 M-bid select, old vs new binary), far
/// more than its clock read every 64 records.
#[cold]
#[inline(never)]
fn tick_if_due<R: ?Sized, C: Collector<R>>(ticker: &mut crate::tick::Ticker, chain: &mut C) {
    let now = std::time::Instant::now();
    if ticker.due(now) {
        ticker.ticked(now);
        chain.tick();
    }
}
