//! The generator proper: splits and their event numbering, event ids, event time, and the
//! fields of persons, auctions and bids as pure functions of the event id.
//!
//! A [`Split`] hands out [`EventMeta`]s (id, kind, time) in its event order; the fields are
//! generated separately, by [`person`], [`auction`], [`bid`] or [`event`] (or their `fill_*`
//! forms that reuse a buffer), from the configuration and the meta alone. The random draws
//! of an event come from a generator seeded by its id and the configured seed, so the same
//! id gives the same fields for any parallelism and any restart point.

use super::model::{Auction, Bid, Event, EventKind, EventMeta, NexmarkConfig, Person};
use super::rng::{price, Rng};
use super::strings::{
    channel_url, hot_url, push_extra, push_string, CHANNELS, CITIES, FIRST_NAMES, HOT_CHANNELS,
    LAST_NAMES, STATES,
};

/// Events per proportion cycle: 1 person, 3 auctions, 46 bids.
const PROPORTION_DENOMINATOR: u64 = 50;
/// Auctions per proportion cycle.
const AUCTION_PROPORTION: u64 = 3;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
/// How far past the last person/auction a random person/auction may reach.
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
/// Hot sellers, bidders and auctions are the first of each batch of 100 ids.
const HOT_BATCH: i64 = 100;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
/// 1 in `ratio` draws picks a random id, the others the hot one.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_SELLER_RATIO: u64 = 4;
const AVG_PERSON_BYTES: u64 = 200;
const AVG_AUCTION_BYTES: u64 = 500;
const AVG_BID_BYTES: u64 = 100;
/// Events it takes to generate `NUM_IN_FLIGHT_AUCTIONS` auctions: 100 * 50 / 3 = 1666.
const AUCTION_HORIZON_EVENTS: u64 =
    NUM_IN_FLIGHT_AUCTIONS as u64 * PROPORTION_DENOMINATOR / AUCTION_PROPORTION;
/// The out-of-order permutation multiplier (a prime).
const OUT_OF_ORDER_MULTIPLIER: u64 = 953;

// ---------------------------------------------------------------------------------------------
// Time

/// Event time of event number `n` of a split: `base + floor(n * d) / 1000` ms with
/// `d = G * 1e6 / R` µs, computed exactly as `base + floor(n * G * 1000 / R)` in integers (the
/// two floors collapse into one). Exact integer arithmetic, rather than Flink's `f64` delay,
/// means no drift and no rounding surprises for rates that do not divide 1e6: at R = 3000,
/// event 195 is at exactly 65 ms, where `195 * (1e6 / 3000)` in `f64` gives 64 999.99… µs,
/// i.e. 64 ms.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base: i64,
    /// `G * 1000`.
    scale: u64,
    rate: u64,
}

impl Clock {
    fn new(config: &NexmarkConfig) -> Clock {
        Clock {
            base: config.base_time_ms,
            scale: u64::from(config.generators.max(1)) * 1000,
            rate: config.rate.max(1),
        }
    }

    #[inline]
    fn time(&self, n: u64) -> i64 {
        let ms = match n.checked_mul(self.scale) {
            Some(p) => p / self.rate,
            None => {
                let q = n as u128 * self.scale as u128 / self.rate as u128;
                q.min(u64::MAX as u128) as u64
            }
        };
        self.base.saturating_add(ms.min(i64::MAX as u64) as i64)
    }
}

/// The event time of the last event the configuration generates (the base time if none): the
/// latest of all, since the last split is the longest and times grow with event numbers.
pub fn last_event_time(config: &NexmarkConfig) -> i64 {
    let (_, len) = split_range(config, config.generators.max(1) - 1);
    match len.checked_sub(1) {
        Some(last) => Clock::new(config).time(last),
        None => config.base_time_ms,
    }
}

/// Refuses, before anything runs, a configuration whose events would leave the default
/// event-time range (1900-01-01 .. 2200-01-01): at `rate: 1` that takes some 5.8 billion
/// events. Generated times are not checked one by one like times read from input.
pub fn check_time_range(source: &str, config: &NexmarkConfig) -> Result<(), String> {
    let range = crate::formats::time::TimeRange::EVENT_TIME;
    let last = last_event_time(config);
    if range.contains(config.base_time_ms) && range.contains(last) {
        return Ok(());
    }
    let mut at = String::new();
    crate::formats::time::format_timestamp(last, &mut at);
    Err(format!(
        "source `{source}`: the generator's last event would be at {at}, outside the \
         event-time range {range}; generate fewer events or raise `rate`"
    ))
}

// ---------------------------------------------------------------------------------------------
// Splits

/// The first event id and the number of events of split `index`: `floor(N / G)` events from
/// `index * floor(N / G)`, the last split taking the rest. `generators` 0 counts as 1.
fn split_range(config: &NexmarkConfig, index: u32) -> (u64, u64) {
    let generators = u64::from(config.generators.max(1));
    let per = config.events / generators;
    let first = u64::from(index) * per;
    let len = if u64::from(index) + 1 >= generators {
        config.events.saturating_sub(first)
    } else {
        per
    };
    (first, len)
}

/// The first event id of the split that owns event `id` (ids past the end belong to the last
/// split).
fn split_first_id_of(config: &NexmarkConfig, id: u64) -> u64 {
    let generators = u64::from(config.generators.max(1));
    let per = config.events / generators;
    match id.checked_div(per) {
        Some(split) => split.min(generators - 1) * per,
        // per == 0: every split but the last is empty, and the last starts at 0.
        None => 0,
    }
}

/// One of G parallel splits of the event stream.
///
/// Split `i` owns the event ids `[i * floor(N/G), (i+1) * floor(N/G))` (the last split also
/// takes the remainder). Its event number `k` (the count of events it has handed out) maps to
/// the adjusted number `a = floor(k/g)*g + (k*953 mod g)` (a permutation within each group of
/// `g` numbers; identity for `g = 1`), the event id `first + a` and the event time
/// `base + floor(a * G * 1000 / R)` ms, so all splits start at the base time.
///
/// Two cases the formula alone leaves open are decided as follows. When `N` is not a
/// multiple of `g` the last group of a split is shorter, of size `m < g`; it is permuted with
/// `m` in place of `g` so that the split still produces exactly its own ids. When the group
/// size is a multiple of 953, `k*953 mod g` is not a permutation; such a group is left in
/// order.
#[derive(Clone, Debug)]
pub struct Split {
    first_id: u64,
    len: u64,
    pos: u64,
    group: u64,
    clock: Clock,
}

impl Split {
    /// Split `index` of `config.generators`.
    ///
    /// # Panics
    /// If `index >= config.generators`: asking for a split that does not exist is a
    /// programming error.
    pub fn new(config: &NexmarkConfig, index: u32) -> Split {
        assert!(
            index < config.generators,
            "Nexmark split index {index} out of range: there are {} generators",
            config.generators
        );
        let (first_id, len) = split_range(config, index);
        Split {
            first_id,
            len,
            pos: 0,
            group: config.out_of_order_group.max(1),
            clock: Clock::new(config),
        }
    }

    /// Number of events in this split.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether this split has no events at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many events this split has handed out so far (its next event number `k`).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Resumes at event number `k`, as if `k` events had been handed out (used to restore a
    /// checkpoint). `k` past the end leaves the split exhausted.
    pub fn seek(&mut self, k: u64) {
        self.pos = k.min(self.len);
    }

    /// The adjusted event number of event number `k < len`.
    #[inline]
    fn adjusted(&self, k: u64) -> u64 {
        let g = self.group;
        if g == 1 {
            return k;
        }
        let base = k / g * g;
        let r = k - base;
        let m = g.min(self.len - base);
        let offset = match m % OUT_OF_ORDER_MULTIPLIER {
            // 953 divides the group size: r * 953 mod m is not a permutation; keep the order.
            0 => r,
            _ => match r.checked_mul(OUT_OF_ORDER_MULTIPLIER) {
                Some(p) => p % m,
                None => (r as u128 * OUT_OF_ORDER_MULTIPLIER as u128 % m as u128) as u64,
            },
        };
        base + offset
    }

    /// The next event's id, kind and time, advancing by one event; `None` at the end.
    #[inline]
    pub fn next_meta(&mut self) -> Option<EventMeta> {
        if self.pos >= self.len {
            return None;
        }
        let a = self.adjusted(self.pos);
        self.pos += 1;
        let id = self.first_id + a;
        Some(EventMeta {
            id,
            kind: EventKind::of_id(id),
            date_time: self.clock.time(a),
        })
    }

    /// The split's exact watermark after the events handed out so far: the time of event
    /// number `floor(k/g)*g` where `k` is [`position`](Self::position). No event still to come
    /// is earlier than this (events exactly at it may still come); `i64::MAX` once the split
    /// is exhausted (also for an empty split).
    pub fn watermark(&self) -> i64 {
        if self.pos >= self.len {
            i64::MAX
        } else {
            self.clock.time(self.pos / self.group * self.group)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ids

/// `(epoch, offset) = (e div 50, e mod 50)`.
#[inline]
fn epoch_offset(id: u64) -> (i64, u64) {
    (
        (id / PROPORTION_DENOMINATOR) as i64,
        id % PROPORTION_DENOMINATOR,
    )
}

/// The last person id (base 0) generated by event `id`'s time: its epoch.
#[inline]
fn last_person(epoch: i64) -> i64 {
    epoch
}

/// The last auction id (base 0) generated by event `id`'s time (-1 before the first auction).
#[inline]
fn last_auction(epoch: i64, offset: u64) -> i64 {
    match offset {
        0 => 3 * (epoch - 1) + 2,
        1..=3 => 3 * epoch + offset as i64 - 1,
        _ => 3 * epoch + 2,
    }
}

/// A random person (base 0) among the 1000 most recent ones, up to 10 ahead of the last.
#[inline]
fn random_person(rng: &mut Rng, last_person: i64) -> i64 {
    let people = last_person + 1;
    let active = people.min(NUM_ACTIVE_PEOPLE);
    people - active + rng.below(active as u64 + PERSON_ID_LEAD) as i64
}

/// A random auction (base 0) among the 100 most recent ones, up to 10 ahead of the last.
#[inline]
fn random_auction(rng: &mut Rng, last_auction: i64) -> i64 {
    let max = last_auction;
    let min = (max - NUM_IN_FLIGHT_AUCTIONS).max(0);
    min + rng.below((max - min + 1) as u64 + AUCTION_ID_LEAD) as i64
}

// ---------------------------------------------------------------------------------------------
// Events

/// `h = time(a + 1666) - time(a)` for the adjusted number `a` of event `id` in its split:
/// how long the split takes to generate about 100 more auctions.
fn auction_horizon_ms(config: &NexmarkConfig, id: u64) -> u64 {
    let clock = Clock::new(config);
    let a = id - split_first_id_of(config, id);
    clock
        .time(a.saturating_add(AUCTION_HORIZON_EVENTS))
        .saturating_sub(clock.time(a)) as u64
}

/// Generates the person `meta` describes into `out`, reusing its strings.
///
/// Draw order: first name, last name, email (`string(7)`, `string(5)`), credit card (four
/// groups), city, state, extra. The extra brings `8 + name + email + credit card + city +
/// state` bytes (as Flink's generator counts) to about 200. `meta.kind` should be
/// [`EventKind::Person`]; debug builds check it.
pub fn fill_person(config: &NexmarkConfig, meta: &EventMeta, out: &mut Person) {
    debug_assert_eq!(
        meta.kind,
        EventKind::Person,
        "event {} is not a person",
        meta.id
    );
    let mut rng = Rng::for_event(config.seed, meta.id);
    let (epoch, _) = epoch_offset(meta.id);
    out.id = FIRST_PERSON_ID + last_person(epoch);

    out.name.clear();
    out.name
        .push_str(FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize]);
    out.name.push(' ');
    out.name
        .push_str(LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize]);

    out.email_address.clear();
    push_string(&mut rng, 7, b' ', &mut out.email_address);
    out.email_address.push('@');
    push_string(&mut rng, 5, b' ', &mut out.email_address);
    out.email_address.push_str(".com");

    out.credit_card.clear();
    for group in 0..4 {
        if group > 0 {
            out.credit_card.push(' ');
        }
        let n = rng.below(10_000) as u32;
        for div in [1000, 100, 10, 1] {
            out.credit_card
                .push(char::from(b'0' + (n / div % 10) as u8));
        }
    }

    out.city.clear();
    out.city
        .push_str(CITIES[rng.below(CITIES.len() as u64) as usize]);
    out.state.clear();
    out.state
        .push_str(STATES[rng.below(STATES.len() as u64) as usize]);
    out.date_time = meta.date_time;

    let current = 8
        + out.name.len()
        + out.email_address.len()
        + out.credit_card.len()
        + out.city.len()
        + out.state.len();
    out.extra.clear();
    push_extra(&mut rng, current as u64, AVG_PERSON_BYTES, &mut out.extra);
}

/// Generates the auction `meta` describes into `out`, reusing its strings.
///
/// Draw order: item name (`string(20)`), description (`string(100)`), initial bid, reserve,
/// expires, seller, category, extra. `expires = date_time + 1 + uniform[0, 2h)` with
/// `h = time(a + 1666) - time(a)` for the event's adjusted number `a` in its split. The extra
/// brings `48 + item name + description` bytes (as Flink's generator counts) to about 500.
/// `meta.kind` should be [`EventKind::Auction`]; debug builds check it.
pub fn fill_auction(config: &NexmarkConfig, meta: &EventMeta, out: &mut Auction) {
    debug_assert_eq!(
        meta.kind,
        EventKind::Auction,
        "event {} is not an auction",
        meta.id
    );
    let mut rng = Rng::for_event(config.seed, meta.id);
    let (epoch, offset) = epoch_offset(meta.id);
    out.id = FIRST_AUCTION_ID + last_auction(epoch, offset);

    out.item_name.clear();
    push_string(&mut rng, 20, b' ', &mut out.item_name);
    out.description.clear();
    push_string(&mut rng, 100, b' ', &mut out.description);
    out.initial_bid = price(&mut rng);
    out.reserve = out.initial_bid + price(&mut rng);
    out.date_time = meta.date_time;
    let horizon = auction_horizon_ms(config, meta.id);
    out.expires = meta
        .date_time
        .saturating_add(1 + rng.below(horizon.saturating_mul(2)) as i64);

    let last_person = last_person(epoch);
    out.seller = FIRST_PERSON_ID
        + if rng.below(HOT_SELLER_RATIO) > 0 {
            last_person / HOT_BATCH * HOT_BATCH
        } else {
            random_person(&mut rng, last_person)
        };
    out.category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;

    let current = 8 + out.item_name.len() + out.description.len() + 40;
    out.extra.clear();
    push_extra(&mut rng, current as u64, AVG_AUCTION_BYTES, &mut out.extra);
}

/// Generates the bid `meta` describes into `out`, reusing its strings.
///
/// Draw order: auction, bidder, price, channel, extra. The extra brings 32 bytes (the four
/// integer fields, as Flink's generator counts: channel and url are not counted) to about
/// 100. `meta.kind` should be [`EventKind::Bid`]; debug builds check it.
pub fn fill_bid(config: &NexmarkConfig, meta: &EventMeta, out: &mut Bid) {
    debug_assert_eq!(meta.kind, EventKind::Bid, "event {} is not a bid", meta.id);
    let mut rng = Rng::for_event(config.seed, meta.id);
    let (epoch, offset) = epoch_offset(meta.id);

    let last_auction = last_auction(epoch, offset);
    out.auction = FIRST_AUCTION_ID
        + if rng.below(HOT_AUCTION_RATIO) > 0 {
            last_auction / HOT_BATCH * HOT_BATCH
        } else {
            random_auction(&mut rng, last_auction)
        };
    let last_person = last_person(epoch);
    out.bidder = FIRST_PERSON_ID
        + if rng.below(HOT_BIDDER_RATIO) > 0 {
            last_person / HOT_BATCH * HOT_BATCH + 1
        } else {
            random_person(&mut rng, last_person)
        };
    out.price = price(&mut rng);

    out.channel.clear();
    out.url.clear();
    if rng.below(2) == 0 {
        let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
        out.channel.push_str(HOT_CHANNELS[i]);
        out.url.push_str(hot_url(i));
    } else {
        let c = rng.below(CHANNELS);
        out.channel.push_str("channel-");
        out.channel.push_str(itoa::Buffer::new().format(c));
        out.url.push_str(channel_url(c));
    }
    out.date_time = meta.date_time;

    out.extra.clear();
    push_extra(&mut rng, 32, AVG_BID_BYTES, &mut out.extra);
}

/// The person `meta` describes; see [`fill_person`].
pub fn person(config: &NexmarkConfig, meta: &EventMeta) -> Person {
    let mut out = Person::default();
    fill_person(config, meta, &mut out);
    out
}

/// The auction `meta` describes; see [`fill_auction`].
pub fn auction(config: &NexmarkConfig, meta: &EventMeta) -> Auction {
    let mut out = Auction::default();
    fill_auction(config, meta, &mut out);
    out
}

/// The bid `meta` describes; see [`fill_bid`].
pub fn bid(config: &NexmarkConfig, meta: &EventMeta) -> Bid {
    let mut out = Bid::default();
    fill_bid(config, meta, &mut out);
    out
}

/// The event `meta` describes, of the kind `meta.kind`.
pub fn event(config: &NexmarkConfig, meta: &EventMeta) -> Event {
    match meta.kind {
        EventKind::Person => Event::Person(person(config, meta)),
        EventKind::Auction => Event::Auction(auction(config, meta)),
        EventKind::Bid => Event::Bid(bid(config, meta)),
    }
}
