//! Record formats side by side, on the same Nexmark bids, in one run:
//!
//! * JSON-lines decoders (this file): weir's decoder (the code `codegen::records::decoder`
//!   generates, written out here for the bid schema), serde_json, sonic-rs and simd-json, each
//!   into a typed record, for a pipeline that reads every field and one that reads two
//!   (`auction`, `price`: the filter+project case). The floor is the lines merely split.
//! * CSV decoders ([`csv_decoders`]): weir's generated decoder against the one it replaced.
//! * Encoders ([`encoders`]): weir's JSON-lines and CSV encoders and serde_json's `to_writer`,
//!   in MB/s of output; the floor is the encoded lines merely copied.
//!
//! ```sh
//! cargo run --release -p weir-bench-decoders -- [LINES] [ROUNDS] [json|csv|encode|all|weir]
//! ```
//!
//! It prints MB/s and lines/s per decoder or encoder (best of ROUNDS), and the ratio to the
//! floor. Every decoder must agree with weir's on the checksum of what it decoded, and
//! serde_json must write the bytes weir writes, so no one wins by skipping work. Issue 11 asks
//! for this to choose by measurement.

mod csv_decoders;
mod encoders;

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use weir_runtime::formats::json;
use weir_runtime::formats::DecodeError;
use weir_runtime::nexmark::{fill_bid, Bid, EventKind, NexmarkConfig, Split};

/// Every field of a bid, strings borrowed where they have no escapes.
#[derive(Deserialize)]
struct FullBid<'a> {
    auction: i64,
    bidder: i64,
    price: i64,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    date_time: Cow<'a, str>,
    #[serde(borrow)]
    extra: Cow<'a, str>,
}

/// The two fields a filter+project pipeline reads; the others are skipped.
#[derive(Deserialize)]
struct TwoFields {
    auction: i64,
    price: i64,
}

fn full_sum(auction: i64, bidder: i64, price: i64, strings: [&str; 4]) -> u64 {
    let mut h = (auction as u64)
        .wrapping_mul(31)
        .wrapping_add(bidder as u64)
        .wrapping_mul(31)
        .wrapping_add(price as u64);
    for s in strings {
        h = h.wrapping_mul(31).wrapping_add(s.len() as u64);
    }
    h
}

/// weir's fast path for every field, as generated: the members in declared order, keys
/// matched byte for byte.
fn weir_full_in_order(line: &str) -> Option<u64> {
    let mut m = json::InOrder::start(line)?;
    let a = m.member_i64(b"\"auction\":")?;
    let b = m.member_i64(b",\"bidder\":")?;
    let p = m.member_i64(b",\"price\":")?;
    let c = m.member(b",\"channel\":")?.as_str_cow().ok()?;
    let u = m.member(b",\"url\":")?.as_str_cow().ok()?;
    let d = m.member(b",\"date_time\":")?.as_timestamp().ok()?;
    let e = m.member(b",\"extra\":")?.as_str_cow().ok()?;
    m.end().then(|| full_sum(a, b, p ^ d, [&c, &u, "", &e]))
}

/// weir's decoder for every field, as generated: the fast path, then (for a line it does not
/// take) one pass over the members, each converted only if its name is wanted.
fn weir_full(line: &str) -> Result<u64, DecodeError> {
    if let Some(sum) = weir_full_in_order(line) {
        return Ok(sum);
    }
    weir_full_general(line)
}

/// The general path alone: members looked up by name, in any order.
fn weir_full_general(line: &str) -> Result<u64, DecodeError> {
    let (mut a, mut b, mut p) = (None, None, None);
    let (mut c, mut u, mut d, mut e) = (None, None, None, None);
    json::for_each_field(line, |member, value| {
        match member {
            "auction" => a = Some(value.as_i64()?),
            "bidder" => b = Some(value.as_i64()?),
            "price" => p = Some(value.as_i64()?),
            "channel" => c = Some(value.as_str_cow()?),
            "url" => u = Some(value.as_str_cow()?),
            "date_time" => d = Some(value.as_timestamp()?),
            "extra" => e = Some(value.as_str_cow()?),
            _ => {}
        }
        Ok(())
    })?;
    let missing = || DecodeError::new("missing field");
    let (c, u, e) = (
        c.ok_or_else(missing)?,
        u.ok_or_else(missing)?,
        e.ok_or_else(missing)?,
    );
    let d = d.ok_or_else(missing)?;
    Ok(full_sum(
        a.ok_or_else(missing)?,
        b.ok_or_else(missing)?,
        p.ok_or_else(missing)? ^ d,
        [&c, &u, "", &e],
    ))
}

fn weir_two_in_order(line: &str) -> Option<u64> {
    let mut m = json::InOrder::start(line)?;
    let a = m.member_i64(b"\"auction\":")?;
    m.member(b",\"bidder\":")?;
    let p = m.member_i64(b",\"price\":")?;
    m.member(b",\"channel\":")?;
    m.member(b",\"url\":")?;
    m.member(b",\"date_time\":")?;
    m.member(b",\"extra\":")?;
    m.end().then(|| (a as u64).wrapping_mul(31) ^ p as u64)
}

fn weir_two(line: &str) -> Result<u64, DecodeError> {
    if let Some(sum) = weir_two_in_order(line) {
        return Ok(sum);
    }
    weir_two_general(line)
}

fn weir_two_general(line: &str) -> Result<u64, DecodeError> {
    let (mut a, mut p) = (None, None);
    json::for_each_field(line, |member, value| {
        match member {
            "auction" => a = Some(value.as_i64()?),
            "price" => p = Some(value.as_i64()?),
            _ => {}
        }
        Ok(())
    })?;
    let missing = || DecodeError::new("missing field");
    Ok((a.ok_or_else(missing)? as u64).wrapping_mul(31) ^ p.ok_or_else(missing)? as u64)
}

/// The timestamp text of a full decode, parsed the way weir parses it (serde-based decoders
/// hand over the string; the conversion is part of decoding a bid).
fn ts(text: &str) -> i64 {
    weir_runtime::formats::time::parse_timestamp(text).unwrap_or(0)
}

fn full_of(b: FullBid<'_>) -> u64 {
    full_sum(
        b.auction,
        b.bidder,
        b.price ^ ts(&b.date_time),
        [&b.channel, &b.url, "", &b.extra],
    )
}

fn two_of(b: TwoFields) -> u64 {
    (b.auction as u64).wrapping_mul(31) ^ b.price as u64
}

/// `n` bids from the Nexmark generator.
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

/// The lines of `bids` as weir's encoder for `format` writes them.
fn lines_of(bids: &[Bid], encode: fn(&Bid, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(bids.len() * 260);
    for bid in bids {
        encode(bid, &mut out);
    }
    out
}

/// Runs `decode` over every line `rounds` times; the best time and the checksum.
fn measure(text: &[u8], rounds: usize, mut decode: impl FnMut(&mut [u8]) -> u64) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut sum = 0;
    // simd-json decodes in place: each round gets a fresh copy (copied outside the clock).
    let mut buf = text.to_vec();
    for _ in 0..rounds {
        buf.copy_from_slice(text);
        let started = Instant::now();
        let mut s = 0u64;
        // Lines found with memchr, as weir's line sources find them.
        let mut start = 0;
        while start < buf.len() {
            let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
            if end > start {
                s = s.wrapping_add(decode(&mut buf[start..end]));
            }
            start = end + 1;
        }
        best = best.min(started.elapsed().as_secs_f64());
        sum = s;
    }
    (best, sum)
}

fn utf8(line: &[u8]) -> &str {
    std::str::from_utf8(line).expect("UTF-8")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // `weir` runs weir's JSON decoders only: what `perf record` wants.
    let what = args.next().unwrap_or_else(|| String::from("all"));
    let bids = bids(lines);
    if matches!(what.as_str(), "json" | "all" | "weir") {
        let text = lines_of(&bids, encoders::weir_json);
        compare(&text, lines, rounds, what == "weir");
    }
    if matches!(what.as_str(), "csv" | "all") {
        let text = lines_of(&bids, encoders::weir_csv);
        csv_decoders::compare(utf8(&text), lines, rounds);
    }
    if matches!(what.as_str(), "encode" | "all") {
        encoders::compare(&bids, rounds);
    }
}

/// Prints the table; panics if a decoder disagrees with weir's.
fn compare(text: &[u8], lines: usize, rounds: usize, weir_only: bool) {
    let mb = text.len() as f64 / 1e6;
    println!(
        "== JSON decoders: {lines} bid lines, {:.1} MB ({:.0} bytes a line), best of {rounds} rounds, one core",
        mb,
        text.len() as f64 / lines as f64
    );
    println!(
        "{:<36} {:>10} {:>12} {:>10}",
        "decoder", "MB/s", "lines/s", "vs floor"
    );
    let (floor, _) = measure(text, rounds, |line| line.len() as u64);
    let row = |name: &str, secs: f64| {
        println!(
            "{name:<36} {:>10.0} {:>12.0} {:>10.2}",
            mb / secs,
            lines as f64 / secs,
            floor / secs
        );
    };
    row("floor: lines split, nothing decoded", floor);
    for (case, want_full) in [
        ("every field", true),
        ("two fields (auction, price)", false),
    ] {
        println!("-- {case}");
        let weir: Box<dyn Fn(&str) -> u64> = if want_full {
            Box::new(|l| weir_full(l).expect("weir decodes"))
        } else {
            Box::new(|l| weir_two(l).expect("weir decodes"))
        };
        let (t, reference) = measure(text, rounds, |l| weir(utf8(l)));
        row("weir (generated decoder)", t);
        let (t, sum) = measure(text, rounds, |l| {
            let line = utf8(l);
            if want_full {
                weir_full_general(line).expect("weir decodes")
            } else {
                weir_two_general(line).expect("weir decodes")
            }
        });
        assert_eq!(sum, reference, "weir's general path decoded something else");
        row("weir (general path only)", t);
        if weir_only {
            continue;
        }
        let (t, sum) = measure(text, rounds, |l| {
            if want_full {
                full_of(serde_json::from_str(utf8(l)).expect("serde_json"))
            } else {
                two_of(serde_json::from_str(utf8(l)).expect("serde_json"))
            }
        });
        assert_eq!(sum, reference, "serde_json decoded something else");
        row("serde_json (derive)", t);
        let (t, sum) = measure(text, rounds, |l| {
            if want_full {
                full_of(sonic_rs::from_str(utf8(l)).expect("sonic-rs"))
            } else {
                two_of(sonic_rs::from_str(utf8(l)).expect("sonic-rs"))
            }
        });
        assert_eq!(sum, reference, "sonic-rs decoded something else");
        row("sonic-rs (derive)", t);
        let (t, sum) = measure(text, rounds, |l| {
            if want_full {
                full_of(simd_json::serde::from_slice(l).expect("simd-json"))
            } else {
                two_of(simd_json::serde::from_slice(l).expect("simd-json"))
            }
        });
        assert_eq!(sum, reference, "simd-json decoded something else");
        row("simd-json (serde, in place)", t);
        if !want_full {
            // sonic-rs's lazy access: it finds the two members and skips the others without
            // checking them, so it does not reject a malformed line (not a verdict weir can
            // give): the price of full validation, by comparison.
            let mut tree = sonic_rs::PointerTree::new();
            tree.add_path(["auction"]);
            tree.add_path(["price"]);
            let (t, sum) = measure(text, rounds, |l| {
                let found = sonic_rs::get_many(utf8(l), &tree).expect("sonic-rs");
                let int = |i: usize| {
                    let v = found[i].as_ref().expect("member");
                    v.as_raw_str().parse::<i64>().expect("integer")
                };
                (int(0) as u64).wrapping_mul(31) ^ int(1) as u64
            });
            assert_eq!(sum, reference, "sonic-rs get_many decoded something else");
            row("sonic-rs get_many (no validation)", t);
        }
    }
}

#[cfg(test)]
mod tests {
    /// CI runs the comparison on a few lines: every decoder agrees with weir's.
    #[test]
    fn every_decoder_agrees_on_a_few_lines() {
        let bids = super::bids(2_000);
        super::compare(
            &super::lines_of(&bids, super::encoders::weir_json),
            2_000,
            1,
            false,
        );
    }

    /// The CSV decoders agree, and serde_json writes the bytes weir's JSON encoder writes.
    #[test]
    fn csv_decoders_and_encoders_agree_on_a_few_lines() {
        let bids = super::bids(2_000);
        let text = super::lines_of(&bids, super::encoders::weir_csv);
        super::csv_decoders::compare(super::utf8(&text), 2_000, 1);
        super::encoders::compare(&bids, 1);
    }
}
