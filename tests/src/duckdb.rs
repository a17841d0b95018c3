//! DuckDB as a second, independent oracle: the tests write their input events to files, run
//! the same query as SQL in DuckDB (its Python package, through `python3`) and compare the
//! rows with what the pipeline printed.
//!
//! DuckDB is required, not optional: without it these helpers panic (CI must fail, not skip).
//! `.ci/run` installs the pinned version from PyPI.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use weir_runtime::nexmark::{self, Auction, Bid, EventKind, NexmarkConfig, Person, Split};

/// Runs `sys.argv[1]` in an in-memory DuckDB and prints one JSON object per row (column name
/// -> value). Timestamps become `yyyy-MM-dd HH:mm:ss.SSS` text in UTC, weir's output format;
/// integers stay integers (HUGEINT sums too), floats stay floats, decimals become floats.
/// Exit code 3: the `duckdb` module cannot be imported.
const SCRIPT: &str = r#"
import sys
try:
    import duckdb
except ImportError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(3)
import datetime, decimal, json

def cell(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
                f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v

def unsupported(v):
    raise TypeError(f"the DuckDB oracle cannot print a {type(v).__name__} ({v!r}): cast it in SQL")

# No progress bar: DuckDB draws one on stdout for queries that run over 2 s.
con = duckdb.connect(":memory:")
con.execute("SET enable_progress_bar = false")
cur = con.execute(sys.argv[1])
names = [d[0] for d in cur.description]
if len(set(names)) != len(names):
    sys.exit(f"duplicate column names in the result: {names}")
out = sys.stdout
while True:
    rows = cur.fetchmany(8192)
    if not rows:
        break
    for row in rows:
        obj = dict(zip(names, map(cell, row)))
        out.write(json.dumps(obj, allow_nan=False, default=unsupported))
        out.write("\n")
print(f"duckdb {duckdb.__version__}", file=sys.stderr)
"#;

/// The `duckdb` version `.ci/run` pins (its `DUCKDB_VERSION=` line), for error messages.
fn pinned_version() -> String {
    std::fs::read_to_string(crate::workspace().join(".ci/run"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("DUCKDB_VERSION=").map(str::to_string))
        })
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .unwrap_or_else(|| "<the version .ci/run pins>".to_string())
}

/// Runs `sql` in a fresh in-memory DuckDB and returns its rows as JSON objects (column name ->
/// value), in DuckDB's order. Panics, saying how to install it, when `duckdb` is missing; panics
/// with DuckDB's message when the query fails.
pub fn query(sql: &str) -> Vec<Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 for the DuckDB oracle ({e}): the DuckDB tests need python3 with the `duckdb` package")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!(
            "the DuckDB oracle needs the `duckdb` Python package, which python3 cannot import \
             ({}): install it with `python3 -m pip install duckdb=={}` (what .ci/run does)",
            stderr.trim(),
            pinned_version()
        );
    }
    assert!(out.status.success(), "DuckDB failed on\n{sql}\n{stderr}");
    String::from_utf8(out.stdout)
        .expect("the oracle prints UTF-8")
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON from DuckDB {l:?}: {e}"))
        })
        .collect()
}

/// `s` as a SQL string literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A CSV field, always quoted (`"` doubled), so commas, quotes and newlines in the generator's
/// strings survive.
fn csv_text(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Every bid of the generator run `config` describes, split by split: what a pipeline binary
/// whose Nexmark source has the same parameters (and `--events`, `--generators`) reads.
pub fn nexmark_bids(config: &NexmarkConfig) -> Vec<Bid> {
    let mut out = Vec::new();
    for index in 0..config.generators {
        let mut split = Split::new(config, index);
        while let Some(meta) = split.next_meta() {
            if meta.kind == EventKind::Bid {
                out.push(nexmark::bid(config, &meta));
            }
        }
    }
    out
}

/// All three streams of a generator run, split by split.
#[derive(Debug, Default)]
pub struct NexmarkEvents {
    pub persons: Vec<Person>,
    pub auctions: Vec<Auction>,
    pub bids: Vec<Bid>,
}

/// Every event of the generator run `config` describes, split by split: what the Nexmark
/// sources of a pipeline binary with the same parameters (and `--events`, `--generators`)
/// read, each source keeping its own kind.
pub fn nexmark_events(config: &NexmarkConfig) -> NexmarkEvents {
    let mut out = NexmarkEvents::default();
    for index in 0..config.generators {
        let mut split = Split::new(config, index);
        while let Some(meta) = split.next_meta() {
            match meta.kind {
                EventKind::Person => out.persons.push(nexmark::person(config, &meta)),
                EventKind::Auction => out.auctions.push(nexmark::auction(config, &meta)),
                EventKind::Bid => out.bids.push(nexmark::bid(config, &meta)),
            }
        }
    }
    out
}

/// Writes a CSV file: the `header` line, then one line per row, which `row` writes without
/// its line end.
fn write_csv<T>(
    path: &Path,
    header: &str,
    rows: &[T],
    row: impl Fn(&mut BufWriter<File>, &T) -> std::io::Result<()>,
) {
    let file =
        File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut w = BufWriter::new(file);
    let mut write = || -> std::io::Result<()> {
        writeln!(w, "{header}")?;
        for r in rows {
            row(&mut w, r)?;
            writeln!(w)?;
        }
        w.flush()
    };
    write().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A DuckDB table expression reading a CSV file written by [`write_csv`]: `columns` (name,
/// DuckDB type) in file order, every type given (nothing sniffed), and a quoted empty field
/// read as an empty string, not NULL (DuckDB's default would make it NULL). `select` is the
/// select list over the raw columns (to convert epoch milliseconds to timestamps).
fn read_csv(path: &Path, columns: &[(&str, &str)], select: &str) -> String {
    let types: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{}: {}", sql_string(name), sql_string(ty)))
        .collect();
    format!(
        "(SELECT {select} \
         FROM read_csv({}, header = true, delim = ',', quote = '\"', escape = '\"', \
         auto_detect = false, allow_quoted_nulls = false, columns = {{{}}}))",
        sql_string(&path.display().to_string()),
        types.join(", ")
    )
}

/// Writes `bids` to `path` as CSV with a header, `date_time` in epoch milliseconds. Read it
/// back with [`read_bids`].
pub fn write_bids_csv(path: &Path, bids: &[Bid]) {
    write_csv(
        path,
        "auction,bidder,price,channel,url,date_time,extra",
        bids,
        |w, b| {
            write!(
                w,
                "{},{},{},{},{},{},{}",
                b.auction,
                b.bidder,
                b.price,
                csv_text(&b.channel),
                csv_text(&b.url),
                b.date_time,
                csv_text(&b.extra)
            )
        },
    );
}

/// A DuckDB table expression over a [`write_bids_csv`] file, with every column's type given
/// (nothing sniffed) and `date_time` converted from epoch milliseconds to a `TIMESTAMP`.
pub fn read_bids(path: &Path) -> String {
    read_csv(
        path,
        &[
            ("auction", "BIGINT"),
            ("bidder", "BIGINT"),
            ("price", "BIGINT"),
            ("channel", "VARCHAR"),
            ("url", "VARCHAR"),
            ("date_time", "BIGINT"),
            ("extra", "VARCHAR"),
        ],
        "auction, bidder, price, channel, url, epoch_ms(date_time) AS date_time, extra",
    )
}

/// Writes `auctions` to `path` as CSV with a header, `date_time` and `expires` in epoch
/// milliseconds. Read it back with [`read_auctions`].
pub fn write_auctions_csv(path: &Path, auctions: &[Auction]) {
    write_csv(
        path,
        "id,item_name,description,initial_bid,reserve,date_time,expires,seller,category,extra",
        auctions,
        |w, a| {
            write!(
                w,
                "{},{},{},{},{},{},{},{},{},{}",
                a.id,
                csv_text(&a.item_name),
                csv_text(&a.description),
                a.initial_bid,
                a.reserve,
                a.date_time,
                a.expires,
                a.seller,
                a.category,
                csv_text(&a.extra)
            )
        },
    );
}

/// A DuckDB table expression over a [`write_auctions_csv`] file: every column's type given,
/// `date_time` and `expires` converted from epoch milliseconds to `TIMESTAMP`s.
pub fn read_auctions(path: &Path) -> String {
    read_csv(
        path,
        &[
            ("id", "BIGINT"),
            ("item_name", "VARCHAR"),
            ("description", "VARCHAR"),
            ("initial_bid", "BIGINT"),
            ("reserve", "BIGINT"),
            ("date_time", "BIGINT"),
            ("expires", "BIGINT"),
            ("seller", "BIGINT"),
            ("category", "BIGINT"),
            ("extra", "VARCHAR"),
        ],
        "id, item_name, description, initial_bid, reserve, epoch_ms(date_time) AS date_time, \
         epoch_ms(expires) AS expires, seller, category, extra",
    )
}

/// Writes `persons` to `path` as CSV with a header, `date_time` in epoch milliseconds. Read it
/// back with [`read_persons`].
pub fn write_persons_csv(path: &Path, persons: &[Person]) {
    write_csv(
        path,
        "id,name,email_address,credit_card,city,state,date_time,extra",
        persons,
        |w, p| {
            write!(
                w,
                "{},{},{},{},{},{},{},{}",
                p.id,
                csv_text(&p.name),
                csv_text(&p.email_address),
                csv_text(&p.credit_card),
                csv_text(&p.city),
                csv_text(&p.state),
                p.date_time,
                csv_text(&p.extra)
            )
        },
    );
}

/// A DuckDB table expression over a [`write_persons_csv`] file: every column's type given,
/// `date_time` converted from epoch milliseconds to a `TIMESTAMP`.
pub fn read_persons(path: &Path) -> String {
    read_csv(
        path,
        &[
            ("id", "BIGINT"),
            ("name", "VARCHAR"),
            ("email_address", "VARCHAR"),
            ("credit_card", "VARCHAR"),
            ("city", "VARCHAR"),
            ("state", "VARCHAR"),
            ("date_time", "BIGINT"),
            ("extra", "VARCHAR"),
        ],
        "id, name, email_address, credit_card, city, state, epoch_ms(date_time) AS date_time, \
         extra",
    )
}

/// The row with the `approx` fields taken out, as text: the sort and match key.
fn exact_part(row: &Value, approx: &[&str]) -> String {
    match row {
        Value::Object(map) => {
            let kept: BTreeMap<&String, &Value> = map
                .iter()
                .filter(|(k, _)| !approx.contains(&k.as_str()))
                .collect();
            serde_json::to_string(&kept).expect("JSON values serialize")
        }
        other => other.to_string(),
    }
}

/// Whether two floats agree to a relative 1e-12 (both null also agrees).
fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// Asserts that `got` (the pipeline's rows) and `want` (DuckDB's) are the same multiset of
/// rows: both are sorted by their JSON text and compared row by row, exactly, except the
/// `approx` fields, which may differ by a relative 1e-12 (for float sums DuckDB adds in another
/// order). Rows are sorted and matched on their other fields, so those must identify a row.
pub fn assert_same_rows(what: &str, got: &[Value], want: &[Value], approx: &[&str]) {
    assert!(
        !want.is_empty(),
        "{what}: DuckDB returned no rows; the comparison would prove nothing"
    );
    let sorted = |rows: &[Value]| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = rows
            .iter()
            .map(|r| (exact_part(r, approx), r.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (got, want) = (sorted(got), sorted(want));
    for pair in want.windows(2) {
        assert!(
            pair[0].0 != pair[1].0 || approx.is_empty(),
            "{what}: two DuckDB rows agree on every exact field, the match would be ambiguous: {}",
            pair[0].0
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: the pipeline printed {} rows, DuckDB {}",
        got.len(),
        want.len()
    );
    for (i, ((gk, g), (wk, w))) in got.iter().zip(&want).enumerate() {
        assert_eq!(gk, wk, "{what}: sorted row {i} differs from DuckDB's");
        for field in approx {
            assert!(
                close(&g[*field], &w[*field]),
                "{what}: sorted row {i}, field `{field}`: pipeline {} vs DuckDB {} (row {g})",
                g[*field],
                w[*field]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_sql_and_csv_text() {
        assert_eq!(sql_string("it's"), "'it''s'");
        assert_eq!(csv_text("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn matches_rows_as_multisets_with_tolerance_on_approx_fields() {
        let got = [
            json!({"k": "b", "m": 1.0}),
            json!({"k": "a", "m": 0.1 + 0.2}),
        ];
        let want = [json!({"k": "a", "m": 0.3}), json!({"k": "b", "m": 1.0})];
        assert_same_rows("test", &got, &want, &["m"]);
    }

    #[test]
    #[should_panic(expected = "field `m`")]
    fn a_float_outside_the_tolerance_fails() {
        assert_same_rows(
            "test",
            &[json!({"k": "a", "m": 0.3001})],
            &[json!({"k": "a", "m": 0.3})],
            &["m"],
        );
    }
}
