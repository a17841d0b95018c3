//! Checkpoint state encodings side by side, on the state two stateful Nexmark queries keep:
//!
//! * a keyed window aggregate (`hot_auctions`: count, min, max, avg per auction and 10 s
//!   window): open windows, each a hash map from key to accumulator;
//! * a top-N (`top 10 by auction order by price desc`): each key's rows, whole bids.
//!
//! Each is saved and loaded with weir's [`State`] encoding (what operators' `snapshot_fields!`
//! and the generated `state_struct!` write) and with serde derive into postcard, the compact
//! binary serde format, which issue 13 item 4 names as the alternative. Both round trips must
//! give back the state they were given.
//!
//! ```sh
//! cargo run --release -p weir-bench-state -- [KEYS] [ROUNDS]
//! ```
//!
//! It prints, per state and encoding, the bytes written and the best-of-ROUNDS time and MB/s
//! of saving and of loading.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_runtime::hash::FastMap;
use weir_runtime::nexmark::{fill_bid, Bid, EventKind, NexmarkConfig, Split};
use weir_runtime::state::{decode, State};

/// The accumulator the compiler generates for `count(), min(price), max(price), avg(price)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Acc {
    a0: i64,
    a1: Option<i64>,
    a2: Option<i64>,
    a3: (i128, i64),
}
weir_runtime::state_struct!(Acc { a0, a1, a2, a3 });

/// A bid as a generated record type holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Row {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    url: String,
    date_time: i64,
    extra: String,
}
weir_runtime::state_struct!(Row {
    auction,
    bidder,
    price,
    channel,
    url,
    date_time,
    extra
});

/// Open windows by (start, end), each with its accumulators by key.
type WindowState = BTreeMap<(i64, i64), FastMap<i64, Acc>>;
/// Each key's best rows.
type TopState = FastMap<i64, Vec<Row>>;

fn bids(n: usize) -> Vec<Bid> {
    let config = NexmarkConfig {
        events: (n as u64) * 50 / 46 + 100,
        ..NexmarkConfig::default()
    };
    let mut split = Split::new(&config, 0);
    let mut out = Vec::with_capacity(n);
    while let Some(meta) = split.next_meta() {
        if out.len() == n {
            break;
        }
        if meta.kind != EventKind::Bid {
            continue;
        }
        let mut bid = Bid::default();
        fill_bid(&config, &meta, &mut bid);
        out.push(bid);
    }
    out
}

/// Ten open 10 s windows, the bids spread over them by event time, aggregated by auction.
fn window_state(bids: &[Bid]) -> WindowState {
    let mut state = WindowState::new();
    for (i, bid) in bids.iter().enumerate() {
        let start = (i % 10) as i64 * 10_000;
        let acc = state
            .entry((start, start + 10_000))
            .or_default()
            .entry(bid.auction)
            .or_default();
        acc.a0 += 1;
        acc.a1 = Some(acc.a1.map_or(bid.price, |m| m.min(bid.price)));
        acc.a2 = Some(acc.a2.map_or(bid.price, |m| m.max(bid.price)));
        acc.a3.0 += bid.price as i128;
        acc.a3.1 += 1;
    }
    state
}

/// The ten highest bids per auction.
fn top_state(bids: &[Bid]) -> TopState {
    let mut state = TopState::default();
    for bid in bids {
        let rows = state.entry(bid.auction).or_default();
        rows.push(Row {
            auction: bid.auction,
            bidder: bid.bidder,
            price: bid.price,
            channel: bid.channel.clone(),
            url: bid.url.clone(),
            date_time: bid.date_time,
            extra: bid.extra.clone(),
        });
        rows.sort_by_key(|r| std::cmp::Reverse(r.price));
        rows.truncate(10);
    }
    state
}

struct Timing {
    bytes: usize,
    save: Duration,
    load: Duration,
}

fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn weir<T: State + PartialEq>(value: &T, rounds: usize) -> Timing {
    let mut bytes = Vec::new();
    value.save(&mut bytes);
    let back: T = decode(&bytes).expect("weir's encoding reads back");
    assert!(back == *value, "weir's encoding changed the state");
    let save = best(rounds, || {
        let mut out = Vec::new();
        black_box(value).save(&mut out);
        black_box(out);
    });
    let load = best(rounds, || {
        black_box(decode::<T>(black_box(&bytes)).expect("reads back"));
    });
    Timing {
        bytes: bytes.len(),
        save,
        load,
    }
}

fn postcard<T: Serialize + for<'de> Deserialize<'de> + PartialEq>(
    value: &T,
    rounds: usize,
) -> Timing {
    let bytes = postcard::to_stdvec(value).expect("postcard writes");
    let back: T = postcard::from_bytes(&bytes).expect("postcard reads back");
    assert!(back == *value, "postcard changed the state");
    let save = best(rounds, || {
        black_box(postcard::to_stdvec(black_box(value)).expect("writes"));
    });
    let load = best(rounds, || {
        black_box(postcard::from_bytes::<T>(black_box(&bytes)).expect("reads back"));
    });
    Timing {
        bytes: bytes.len(),
        save,
        load,
    }
}

fn report(state: &str, encoding: &str, t: &Timing) {
    let mb = t.bytes as f64 / 1e6;
    println!(
        "{state:<16} {encoding:<9} {:>9.1} MB   save {:>8.1} ms {:>7.0} MB/s   load {:>8.1} ms {:>7.0} MB/s",
        mb,
        t.save.as_secs_f64() * 1e3,
        mb / t.save.as_secs_f64(),
        t.load.as_secs_f64() * 1e3,
        mb / t.load.as_secs_f64(),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let bids = bids(n);
    let windows = window_state(&bids);
    let top = top_state(&bids);
    println!(
        "{n} bids: {} window accumulators, {} top-N rows; best of {rounds}",
        windows.values().map(|w| w.len()).sum::<usize>(),
        top.values().map(|r| r.len()).sum::<usize>()
    );
    report("window aggregate", "weir", &weir(&windows, rounds));
    report("window aggregate", "postcard", &postcard(&windows, rounds));
    report("top-N", "weir", &weir(&top, rounds));
    report("top-N", "postcard", &postcard(&top, rounds));
}
