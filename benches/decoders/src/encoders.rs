//! Encoders side by side on the same bids: weir's JSON-lines and CSV encoders (the code
//! `codegen::records::encoder` generates for the bid schema, written out), serde_json's
//! `to_writer` of the same record, and the floor: the encoded lines merely copied
//! (`extend_from_slice` of each line into the output buffer, as a sink appends them).
//! Figures are MB/s of output.

use std::cell::RefCell;
use std::time::Instant;

use serde::{Serialize, Serializer};
use weir_runtime::formats::{csv, json, time};
use weir_runtime::nexmark::Bid;

/// weir's JSON encoder for the bid schema, as the compiler generates it.
pub fn weir_json(r: &Bid, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"auction\":");
    json::write_i64(out, r.auction);
    out.extend_from_slice(b",\"bidder\":");
    json::write_i64(out, r.bidder);
    out.extend_from_slice(b",\"price\":");
    json::write_i64(out, r.price);
    out.extend_from_slice(b",\"channel\":");
    json::write_string(out, &r.channel);
    out.extend_from_slice(b",\"url\":");
    json::write_string(out, &r.url);
    out.extend_from_slice(b",\"date_time\":");
    json::write_timestamp(out, r.date_time);
    out.extend_from_slice(b",\"extra\":");
    json::write_string(out, &r.extra);
    out.extend_from_slice(b"}\n");
}

/// weir's CSV encoder for the bid schema (delimiter `,`), as the compiler generates it.
pub fn weir_csv(r: &Bid, out: &mut Vec<u8>) {
    csv::write_i64(out, r.auction);
    out.push(b',');
    csv::write_i64(out, r.bidder);
    out.push(b',');
    csv::write_i64(out, r.price);
    out.push(b',');
    csv::write_cell(out, &r.channel, b',');
    out.push(b',');
    csv::write_cell(out, &r.url, b',');
    out.push(b',');
    csv::write_timestamp(out, r.date_time);
    out.push(b',');
    csv::write_cell(out, &r.extra, b',');
    out.push(b'\n');
}

/// A timestamp that serde writes as weir does (`"yyyy-MM-dd HH:mm:ss.SSS"`), formatted into a
/// reused buffer so serde pays no allocation weir does not.
struct Timestamp(i64);

thread_local! {
    static TS_TEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TS_TEXT.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            time::write_timestamp_bytes(self.0, &mut buf);
            s.serialize_str(std::str::from_utf8(&buf).unwrap_or(""))
        })
    }
}

/// The same record for serde, borrowing the bid's strings.
#[derive(Serialize)]
struct SerdeBid<'a> {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: &'a str,
    url: &'a str,
    date_time: Timestamp,
    extra: &'a str,
}

fn serde_json_line(r: &Bid, out: &mut Vec<u8>) {
    let bid = SerdeBid {
        auction: r.auction,
        bidder: r.bidder,
        price: r.price,
        channel: &r.channel,
        url: &r.url,
        date_time: Timestamp(r.date_time),
        extra: &r.extra,
    };
    serde_json::to_writer(&mut *out, &bid).expect("writing to a Vec cannot fail");
    out.push(b'\n');
}

/// Encodes every bid `rounds` times into a buffer cleared every 64 KiB (as the file sink
/// flushes); the best time and all the bytes of one round.
fn measure(bids: &[Bid], rounds: usize, encode: impl Fn(&Bid, &mut Vec<u8>)) -> (f64, Vec<u8>) {
    let mut best = f64::MAX;
    let mut all = Vec::new();
    let mut out = Vec::with_capacity(1 << 17);
    for round in 0..rounds {
        let started = Instant::now();
        for bid in bids {
            encode(bid, &mut out);
            if out.len() >= 1 << 16 {
                if round == 0 {
                    all.extend_from_slice(&out);
                }
                out.clear();
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
        if round == 0 {
            all.extend_from_slice(&out);
        }
        out.clear();
    }
    (best, all)
}

/// The floor: the encoded lines copied into a buffer the same way.
fn copy_floor(text: &[u8], rounds: usize) -> f64 {
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let mut best = f64::MAX;
    let mut out = Vec::with_capacity(1 << 17);
    for _ in 0..rounds {
        let started = Instant::now();
        for line in &lines {
            out.extend_from_slice(line);
            if out.len() >= 1 << 16 {
                std::hint::black_box(&out);
                out.clear();
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
        out.clear();
    }
    best
}

/// Prints the table; panics if serde_json's lines differ from weir's (so both do the same
/// work).
pub fn compare(bids: &[Bid], rounds: usize) {
    println!(
        "== encoders: {} bids, best of {rounds} rounds, one core",
        bids.len()
    );
    println!(
        "{:<36} {:>10} {:>12} {:>10}",
        "encoder", "MB/s out", "records/s", "vs floor"
    );
    for (format, weir) in [
        ("JSON lines", weir_json as fn(&Bid, &mut Vec<u8>)),
        ("CSV", weir_csv),
    ] {
        let (t, text) = measure(bids, rounds, weir);
        let mb = text.len() as f64 / 1e6;
        let floor = copy_floor(&text, rounds);
        println!(
            "-- {format}: {:.1} MB, {:.0} bytes a record",
            mb,
            text.len() as f64 / bids.len() as f64
        );
        let row = |name: &str, secs: f64| {
            println!(
                "{name:<36} {:>10.0} {:>12.0} {:>10.2}",
                mb / secs,
                bids.len() as f64 / secs,
                floor / secs
            );
        };
        row("floor: lines copied", floor);
        row("weir (generated encoder)", t);
        if format == "JSON lines" {
            let (t, serde_text) = measure(bids, rounds, serde_json_line);
            assert!(serde_text == text, "serde_json wrote other bytes than weir");
            row("serde_json (derive, to_writer)", t);
        }
    }
}
