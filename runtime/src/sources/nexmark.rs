//! The Nexmark generator as a source: one task per split, generating one kind of event into a
//! reused buffer (no allocation per event) and skipping the other kinds without generating them.

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
    mut chain: C,
) {
    let mut split = Split::new(config, index as u32);
    let mut record = R::default();
    let mut tracker = event_time
        .as_ref()
        .map(|et| WatermarkTracker::new(et.max_out_of_orderness_ms));
    let mut produced = 0u64;
    while let Some(meta) = split.next_meta() {
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
    metrics.add_generator_events(source, split.position());
    chain.watermark(i64::MAX);
    chain.finish();
}
