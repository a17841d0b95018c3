//! The Nexmark records (Flink's variant, snake_case field names), the generator's parameters
//! and the metadata of an event that is known before its fields are generated.

/// A new person registered with the auction site. Timestamps are `i64` milliseconds since
/// the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Person {
    /// Person id; the first person is 1000.
    pub id: i64,
    /// First name, a space and last name, e.g. `"Peter Jones"`.
    pub name: String,
    /// `string(7) + "@" + string(5) + ".com"`.
    pub email_address: String,
    /// Four groups of four digits separated by spaces.
    pub credit_card: String,
    /// One of 10 US cities.
    pub city: String,
    /// One of `AZ CA ID OR WA WY`, independent of the city.
    pub state: String,
    /// Event time in milliseconds since the Unix epoch.
    pub date_time: i64,
    /// Padding letters bringing the record to about 200 bytes.
    pub extra: String,
}

/// A new auction opened by a seller. Timestamps are `i64` milliseconds since the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Auction {
    /// Auction id; the first auction is 1000.
    pub id: i64,
    /// `string(20)`.
    pub item_name: String,
    /// `string(100)`.
    pub description: String,
    /// Initial bid in cents, log-uniform in `[100, 100_000_000]`.
    pub initial_bid: i64,
    /// `initial_bid` plus another price.
    pub reserve: i64,
    /// Event time in milliseconds since the Unix epoch.
    pub date_time: i64,
    /// When the auction closes, strictly after `date_time`.
    pub expires: i64,
    /// Person id of the seller.
    pub seller: i64,
    /// Category id in `[10, 15)`.
    pub category: i64,
    /// Padding letters bringing the record to about 500 bytes.
    pub extra: String,
}

/// A bid on an auction. Timestamps are `i64` milliseconds since the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bid {
    /// Auction id the bid is for.
    pub auction: i64,
    /// Person id of the bidder.
    pub bidder: i64,
    /// Price in cents, log-uniform in `[100, 100_000_000]`.
    pub price: i64,
    /// `Google`, `Facebook`, `Baidu`, `Apple` or `channel-<c>` with `c` in `[0, 10000)`.
    pub channel: String,
    /// `https://www.nexmark.com/<s1>/<s2>/<s3>/item.htm?query=1`, fixed per channel; 90 % of
    /// the `channel-<c>` urls end with `&channel_id=<abs(bit-reverse(c))>`.
    pub url: String,
    /// Event time in milliseconds since the Unix epoch.
    pub date_time: i64,
    /// Padding letters bringing the record to about 100 bytes.
    pub extra: String,
}

/// One generated event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A person registration (1 event in 50).
    Person(Person),
    /// A new auction (3 events in 50).
    Auction(Auction),
    /// A bid (46 events in 50).
    Bid(Bid),
}

/// The kind of an event, a function of its id alone: `id mod 50` is 0 for a person, 1..=3 for
/// an auction and 4..=49 for a bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `id mod 50 == 0`.
    Person,
    /// `id mod 50` in `1..=3`.
    Auction,
    /// `id mod 50` in `4..=49`.
    Bid,
}

impl EventKind {
    /// The kind of the event with id `id`.
    #[inline]
    pub fn of_id(id: u64) -> EventKind {
        match id % 50 {
            0 => EventKind::Person,
            1..=3 => EventKind::Auction,
            _ => EventKind::Bid,
        }
    }
}

/// Generator parameters.
///
/// Degenerate values are tolerated rather than rejected: `rate` 0 is treated as 1 and
/// `out_of_order_group` 0 as 1. `generators` 0 leaves no valid split index, so
/// [`Split::new`](super::Split::new) panics for every index.
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkConfig {
    /// Total number of events N over all splits. Default 10 000 000.
    pub events: u64,
    /// Event-time rate R in events per second of event time, summed over all splits. Default
    /// 10 000.
    pub rate: u64,
    /// Number of generators (source splits) G. Default 1.
    pub generators: u32,
    /// Out-of-order group size g: events are permuted within consecutive groups of g event
    /// numbers of a split. Default 1 (in order).
    pub out_of_order_group: u64,
    /// Event time of the first event of every split, in milliseconds since the Unix epoch.
    /// Default 1 436 918 400 000 (2015-07-15T00:00:00Z).
    pub base_time_ms: i64,
    /// Mixed into every event's random seed: 0 is the default stream, any other value gives a
    /// different but equally deterministic stream. Kinds, ids and timestamps do not depend on
    /// it; every random draw does.
    pub seed: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: 10_000_000,
            rate: 10_000,
            generators: 1,
            out_of_order_group: 1,
            base_time_ms: 1_436_918_400_000,
            seed: 0,
        }
    }
}

/// What an event is, known without generating its fields: enough to route it, to time it and
/// to generate its fields later with [`person`](super::person), [`auction`](super::auction),
/// [`bid`](super::bid) or [`event`](super::event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMeta {
    /// The event id `e` (global over all splits).
    pub id: u64,
    /// The kind, [`EventKind::of_id`] of `id`.
    pub kind: EventKind,
    /// Event time in milliseconds since the Unix epoch.
    pub date_time: i64,
}
