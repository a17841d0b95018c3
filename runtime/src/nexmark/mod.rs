//! The built-in Nexmark event generator (the `nexmark` source), following
//! `shared/nexmark/SPEC.md`, section "Generator".
//!
//! An online auction emits persons, auctions and bids (1, 3 and 46 events in every 50 ids).
//! The stream is split among G parallel sources: a [`Split`] hands out [`EventMeta`]s (event
//! id, kind, event time) and its exact watermark; the fields of an event are then generated
//! by pure functions of the configuration and the meta ([`person`], [`auction`], [`bid`],
//! [`event`], and the allocation-free `fill_*` forms). Every event's random draws come from a
//! generator seeded by its id (and [`NexmarkConfig::seed`]), so the same id gives the same
//! event for any parallelism and restart point, and the whole stream is bit-for-bit the same
//! on every platform.
//!
//! Modules:
//! * `model`: the records, [`Event`], [`EventKind`], [`EventMeta`] and [`NexmarkConfig`].
//! * `generator`: [`Split`] (numbering, out-of-order groups, time, watermark), ids and the
//!   field generation of each kind.
//! * `strings`: random strings, extra padding, word lists, channel urls.
//! * `rng`: the per-event random generator (xoshiro256** seeded by SplitMix64) and prices.

mod generator;
mod model;
mod rng;
mod strings;

pub use generator::{
    auction, bid, check_time_range, event, fill_auction, fill_bid, fill_person, last_event_time,
    person, Split,
};
pub use model::{Auction, Bid, Event, EventKind, EventMeta, NexmarkConfig, Person};

#[cfg(test)]
mod tests;
