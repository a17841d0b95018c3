//! The SQL functions and operators of issue 12 (numbers, strings, digests, `in`, `between`,
//! `like`, `||`, calendar functions and time zones), run end to end over a CSV file and
//! compared with DuckDB running the same expressions in SQL over the same file. DuckDB's time
//! zones come from ICU, weir's from jiff's copy of the IANA database: two independent
//! implementations of the same rules.
//!
//! Floats from `sqrt`, `ln`, `exp` and `power` are compared to a relative 1e-12 (two libms);
//! everything else exactly. `round(x, n)` of a double is `round(x * 10^n) / 10^n` in both;
//! the inputs are multiples of 1/8 (exact ties: half away from zero must show) and values
//! with six decimals.

use std::path::Path;

use serde_json::{json, Value};
use weir_tests::duckdb::{self, assert_same_rows, sql_string};
use weir_tests::{build, dead_letter_reasons, format_ts, json_rows, run};

const WORDS: [&str; 10] = [
    "alpha", "beta", "gamma", "Delta", "ba", "50%off", "50_off", "é-clair", "a,b", "zz",
];

/// `rows` lines of `id,x,n,s,ts`: `s` empty (null) one time in 7; times every 7h 13m 17.5s
/// from 2024-01-01, so they cross both of 2024's DST changes in Europe and North America.
fn write_rows(path: &Path, rows: i64) {
    let mut text = String::new();
    let mut state = 0x1234_5678_u64;
    for id in 1..=rows {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = if id % 2 == 0 {
            ((state >> 40) % 801) as f64 / 8.0 - 50.0
        } else {
            ((state >> 20) % 200_000_000) as f64 / 1e6 - 100.0
        };
        let n = ((state >> 50) % 61) as i64 - 30;
        let s = if id % 7 == 0 {
            String::new()
        } else {
            format!("\"{}\"", WORDS[((state >> 33) % 10) as usize])
        };
        let ts = format_ts(1_704_067_200_000 + id * 25_997_500);
        text.push_str(&format!("{id},{x},{n},{s},{ts}\n"));
    }
    std::fs::write(path, text).expect("write rows");
}

fn read_rows(path: &Path) -> String {
    format!(
        "read_csv({}, header = false, \
         columns = {{'id': 'BIGINT', 'x': 'DOUBLE', 'n': 'BIGINT', 's': 'VARCHAR', 'ts': 'TIMESTAMP'}})",
        sql_string(&path.display().to_string())
    )
}

const SCHEMA: &str = "schema R { id: i64, x: f64, n: i64, s: string?, ts: timestamp }\n\
                      source r: R = file(path: \"rows.csv\") format csv\n";

/// Builds `select` over the rows, runs it and compares its rows with `sql` (`{rows}` stands
/// for the table) in DuckDB.
fn compare(name: &str, select: &str, sql: &str, approx: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("rows.csv");
    write_rows(&csv, 400);
    let text =
        format!("{SCHEMA}let o = r |> select {{ {select} }}\nsink o -> stdout() format json\n");
    let binary = build(name, &text, false);
    let result = run(&binary, &["--quiet"], dir.path(), None);
    assert!(result.success, "{name}: {}", result.stderr);
    let want = duckdb::query(&sql.replace("{rows}", &read_rows(&csv)));
    let got = json_rows(&result.stdout);
    assert_same_rows(name, &got, &want, approx);
    assert!(dead_letter_reasons(dir.path()).is_empty());
    want
}

#[test]
fn numbers_match_duckdb() {
    let want = compare(
        "fn_numbers",
        "id, x, r0: round(x), r2: round(x, 2), r1: round(x, 1), rn: round(x, -1), \
         ri: round(n * 37, -2), fl: floor(x), ce: ceil(x), fli: floor(n), \
         sq: sqrt(abs(x)), pw: power(1.5, n), lnx: ln(abs(x) + 1), ex: exp(x / 100), \
         g: greatest(x, n, 0.5), l: least(n, id, 7), ni: nullif(n % 5, 0), \
         inn: n in (1, 2, 3, -7), btw: x between -10 and 10.5, nbtw: n not between -5 and 5",
        "SELECT id, x, round(x) AS r0, round(x, 2) AS r2, round(x, 1) AS r1, round(x, -1) AS rn, \
                round(n * 37, -2) AS ri, floor(x) AS fl, ceil(x) AS ce, CAST(floor(n) AS BIGINT) AS fli, \
                sqrt(abs(x)) AS sq, pow(1.5, n) AS pw, ln(abs(x) + 1) AS lnx, exp(x / 100) AS ex, \
                greatest(x, n, 0.5) AS g, least(n, id, 7) AS l, nullif(n % 5, 0) AS ni, \
                n IN (1, 2, 3, -7) AS inn, x BETWEEN -10 AND 10.5 AS btw, \
                n NOT BETWEEN -5 AND 5 AS nbtw \
         FROM {rows}",
        &["sq", "pw", "lnx", "ex"],
    );
    // The data has exact ties for `round` and both answers of each predicate.
    let ties: Vec<&Value> = want
        .iter()
        .filter(|r| r["x"].as_f64().is_some_and(|x| x.fract().abs() == 0.5))
        .collect();
    assert!(ties.len() > 10, "too few ties: {}", ties.len());
    for r in ties {
        let x = r["x"].as_f64().unwrap_or_default();
        assert_eq!(
            r["r0"],
            json!(x + x.signum() * 0.5),
            "half away from zero: {r}"
        );
    }
    assert!(want.iter().any(|r| r["ni"].is_null()));
    for field in ["inn", "btw", "nbtw"] {
        assert!(want.iter().any(|r| r[field] == json!(true)), "{field}");
        assert!(want.iter().any(|r| r[field] == json!(false)), "{field}");
    }
}

#[test]
fn strings_match_duckdb() {
    let want = compare(
        "fn_strings",
        "id, gs: greatest(s, \"m\"), ls: least(s, \"m\"), ns: nullif(s, \"beta\"), \
         rep: replace(s, \"a\", \"<A>\"), lp: lpad(s, 7, \"xy\"), rp: rpad(s, 3), \
         lp0: lpad(cast(n as string), 4, \"0\"), cc: s || \"-\" || cast(id as string), \
         h: md5(s), sh: sha256(s), ins: s in (\"alpha\", \"beta\", null), \
         nis: s not in (\"alpha\", \"gamma\"), lk: s like \"%a_\", nlk: s not like 'b%', \
         lke: s like \"50!%%\" escape \"!\", lku: s like \"50_off\"",
        "SELECT id, greatest(s, 'm') AS gs, least(s, 'm') AS ls, nullif(s, 'beta') AS ns, \
                replace(s, 'a', '<A>') AS rep, lpad(s, 7, 'xy') AS lp, rpad(s, 3, ' ') AS rp, \
                lpad(CAST(n AS VARCHAR), 4, '0') AS lp0, s || '-' || CAST(id AS VARCHAR) AS cc, \
                md5(s) AS h, sha256(s) AS sh, s IN ('alpha', 'beta', NULL) AS ins, \
                s NOT IN ('alpha', 'gamma') AS nis, s LIKE '%a_' AS lk, s NOT LIKE 'b%' AS nlk, \
                s LIKE '50!%%' ESCAPE '!' AS lke, s LIKE '50_off' AS lku \
         FROM {rows}",
        &[],
    );
    // Three-valued `in` with a null item: true, null (no match) and null (null `s`) all occur.
    assert!(want.iter().any(|r| r["ins"] == json!(true)));
    assert!(want.iter().any(|r| r["ins"].is_null() && !r["h"].is_null()));
    assert!(want.iter().any(|r| r["lke"] == json!(true)));
    assert!(want
        .iter()
        .any(|r| r["lke"] == json!(false) && r["lku"] == json!(true)));
}

#[test]
fn calendar_functions_match_duckdb() {
    compare(
        "fn_calendar",
        "id, dth: date_trunc(\"hour\", ts), dtd: date_trunc(\"day\", ts), \
         dtw: date_trunc(\"week\", ts), dtm: date_trunc('month', ts), \
         dtq: date_trunc(\"quarter\", ts), dty: date_trunc(\"year\", ts), \
         eh: extract(\"hour\", ts), edow: extract(\"dow\", ts), edoy: extract(\"doy\", ts), \
         ewk: extract(\"week\", ts), ems: extract(\"millisecond\", ts), \
         eq: date_part(\"quarter\", ts), fu: from_unixtime(id * 100000), \
         ut: unix_timestamp(ts), \
         tt: to_timestamp(date_format(ts, \"dd/MM/yyyy HH:mm:ss\"), \"dd/MM/yyyy HH:mm:ss\"), \
         gap: cast(ts - date_trunc(\"day\", ts) as i64), \
         early: ts - date_trunc(\"day\", ts) < 6h",
        "SELECT id, date_trunc('hour', ts) AS dth, CAST(date_trunc('day', ts) AS TIMESTAMP) AS dtd, \
                CAST(date_trunc('week', ts) AS TIMESTAMP) AS dtw, \
                CAST(date_trunc('month', ts) AS TIMESTAMP) AS dtm, \
                CAST(date_trunc('quarter', ts) AS TIMESTAMP) AS dtq, \
                CAST(date_trunc('year', ts) AS TIMESTAMP) AS dty, \
                extract('hour' FROM ts) AS eh, extract('dow' FROM ts) AS edow, \
                extract('doy' FROM ts) AS edoy, extract('week' FROM ts) AS ewk, \
                extract('millisecond' FROM ts) AS ems, extract('quarter' FROM ts) AS eq, \
                epoch_ms(id * 100000 * 1000) AS fu, \
                CAST(floor(epoch_ms(ts) / 1000) AS BIGINT) AS ut, \
                strptime(strftime(ts, '%d/%m/%Y %H:%M:%S'), '%d/%m/%Y %H:%M:%S') AS tt, \
                epoch_ms(ts) - epoch_ms(date_trunc('day', ts)) AS gap, \
                ts - date_trunc('day', ts) < INTERVAL 6 HOUR AS early \
         FROM {rows}",
        &[],
    );
}

#[test]
fn time_zones_match_duckdb() {
    // DuckDB: `ts AT TIME ZONE 'UTC'` reads the UTC wall clock as an instant; `timezone(z, t)`
    // turns an instant into z's wall clock and a wall clock in z back into an instant.
    let local = |zone: &str| format!("timezone('{zone}', ts AT TIME ZONE 'UTC')");
    let sql = format!(
        "SELECT id, hour({paris}) AS hp, day({ny}) AS dny, \
                strftime({kolkata}, '%Y-%m-%d %H:%M') AS dfk, \
                timezone('America/New_York', CAST(date_trunc('day', {ny}) AS TIMESTAMP)) AS tdz, \
                timezone('Europe/Paris', date_trunc('hour', {paris})) AS thz, \
                extract('dow' FROM {howe}) AS ewz, extract('week' FROM {paris}) AS wkp \
         FROM {{rows}}",
        paris = local("Europe/Paris"),
        ny = local("America/New_York"),
        kolkata = local("Asia/Kolkata"),
        howe = local("Australia/Lord_Howe"),
    );
    let want = compare(
        "fn_zones",
        "id, hp: hour(ts, \"Europe/Paris\"), dny: day(ts, \"America/New_York\"), \
         dfk: date_format(ts, \"yyyy-MM-dd HH:mm\", \"Asia/Kolkata\"), \
         tdz: date_trunc(\"day\", ts, \"America/New_York\"), \
         thz: date_trunc(\"hour\", ts, \"europe/paris\"), \
         ewz: extract(\"dow\", ts, \"Australia/Lord_Howe\"), \
         wkp: extract(\"week\", ts, \"Europe/Paris\")",
        &sql,
        &[],
    );
    // Local midnights in New York are 04:00 or 05:00 UTC depending on summer time.
    let midnights: std::collections::BTreeSet<&str> = want
        .iter()
        .filter_map(|r| r["tdz"].as_str())
        .map(|t| &t[11..])
        .collect();
    assert_eq!(
        midnights.into_iter().collect::<Vec<_>>(),
        ["04:00:00.000", "05:00:00.000"]
    );
}

#[test]
fn domain_errors_are_dead_letters_with_their_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("rows.csv"),
        "1,4.0,2,a,2024-01-01 00:00:00.000\n\
         2,-1.0,2,b,2024-01-01 00:00:00.000\n\
         3,0.0,2,c,2024-01-01 00:00:00.000\n\
         4,1e300,2,d,2024-01-01 00:00:00.000\n\
         5,9.0,2,e,2024-01-01 00:00:00.000\n",
    )
    .expect("write rows");
    let text = format!(
        "{SCHEMA}let o = r |> select {{ id, root: sqrt(x), log: ln(x), big: power(x, n) }}\n\
         sink o -> stdout() format json\n"
    );
    let binary = build("fn_domain", &text, false);
    let result = run(&binary, &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let got = json_rows(&result.stdout);
    assert_eq!(
        got,
        [
            json!({"id": 1, "root": 2.0, "log": 4f64.ln(), "big": 16.0}),
            json!({"id": 5, "root": 3.0, "log": 9f64.ln(), "big": 81.0}),
        ]
    );
    let letters = std::fs::read_to_string(dir.path().join("dead_letters.jsonl"))
        .expect("dead letters written");
    let reasons: Vec<String> = json_rows(&letters)
        .iter()
        .map(|l| l["reason"].as_str().expect("a reason").to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "square root of a negative number in `sqrt(x)`",
            "logarithm of zero or a negative number in `ln(x)`",
            "power out of the f64 range in `power(x, n)`",
        ]
    );
}

#[test]
fn tumbling_days_in_a_time_zone_match_duckdb() {
    // 1300 rows every 7h13m: all of 2024, both of New York's summer-time changes.
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("rows.csv");
    write_rows(&csv, 1300);
    let text = "schema R { id: i64, x: f64, n: i64, s: string?, ts: timestamp }\n\
                source r: R = file(path: \"rows.csv\") format csv event_time ts watermark 1h\n\
                let days = r |> window tumble(1d, zone: \"America/New_York\")\n\
                    |> aggregate { rows: count(), total: sum(n), first: min(id) }\n\
                sink days -> stdout() format json\n";
    let binary = build("fn_zoned_days", text, false);
    let result = run(&binary, &["--quiet"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let day = "date_trunc('day', timezone('America/New_York', ts AT TIME ZONE 'UTC'))";
    let want = duckdb::query(&format!(
        "SELECT timezone('America/New_York', CAST({day} AS TIMESTAMP)) AS window_start, \
                timezone('America/New_York', CAST({day} + INTERVAL 1 DAY AS TIMESTAMP)) AS window_end, \
                count(*) AS rows, sum(n) AS total, min(id) AS first \
         FROM {} GROUP BY {day}",
        read_rows(&csv)
    ));
    assert_same_rows("zoned days", &json_rows(&result.stdout), &want, &[]);
    // Days of 23 and 25 hours are among them.
    let hours: std::collections::BTreeSet<i64> = want
        .iter()
        .map(|r| {
            let ms = |f: &str| weir_runtime::formats::parse_timestamp(r[f].as_str().unwrap());
            (ms("window_end").unwrap() - ms("window_start").unwrap()) / 3_600_000
        })
        .collect();
    assert_eq!(hours.into_iter().collect::<Vec<_>>(), [23, 24, 25]);
}

/// Rows every minute through the night Paris sets its clocks back (2024-10-27, 03:00 CEST
/// is 02:00 CET at 01:00 UTC, so 02:00..03:00 local happens twice): `id,ts` from 23:00 UTC.
fn write_fall_back_minutes(path: &Path) {
    let start = 1_729_983_600_000; // 2024-10-26 23:00:00 UTC
    let text: String = (0..240)
        .map(|i| format!("{i},{}\n", format_ts(start + i * 60_000)))
        .collect();
    std::fs::write(path, text).expect("write rows");
}

/// Quarter-hour and hour windows in Europe/Paris through the repeated hour. Paris' offsets
/// are whole hours, so its quarters and hours start where UTC's do: the oracle is UTC
/// windows of the same rows, each quarter holding its 15 rows and each hour its 60. (A
/// quarter in the repeated hour was given the bounds of the local time's first occurrence,
/// an hour before its rows: 02:20 CET, 01:20 UTC, went to [00:15, 00:30) UTC, a window
/// already closed, and the quarter 02:45 CEST spanned [00:45, 02:00) UTC.)
#[test]
fn quarter_hour_windows_in_a_zone_hold_their_rows_when_clocks_go_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_fall_back_minutes(&dir.path().join("rows.csv"));
    let text = "schema R { id: i64, ts: timestamp }\n\
                source r: R = file(path: \"rows.csv\") format csv event_time ts watermark 1s\n\
                let quarters = r |> window tumble(15m, zone: \"Europe/Paris\")\n\
                    |> aggregate { rows: count(), first: min(id) }\n\
                    |> select { kind: \"quarter\", window_start, window_end, rows, first }\n\
                sink quarters -> stdout() format json\n\
                let hours = r |> window tumble(1h, zone: \"Europe/Paris\")\n\
                    |> aggregate { rows: count(), first: min(id) }\n\
                    |> select { kind: \"hour\", window_start, window_end, rows, first }\n\
                sink hours -> file(path: \"hours.jsonl\") format json\n";
    let binary = build("fn_zoned_quarters", text, false);
    let result = run(&binary, &["--quiet"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let hours = std::fs::read_to_string(dir.path().join("hours.jsonl")).expect("hours");
    let start = 1_729_983_600_000i64;
    let mut want: Vec<Value> = Vec::new();
    for (kind, minutes) in [("quarter", 15i64), ("hour", 60)] {
        for w in 0..240 / minutes {
            let from = start + w * minutes * 60_000;
            want.push(json!({
                "kind": kind,
                "window_start": format_ts(from),
                "window_end": format_ts(from + minutes * 60_000),
                "rows": minutes,
                "first": w * minutes,
            }));
        }
    }
    let key = |v: &Value| (v["kind"].to_string(), v["window_start"].to_string());
    let mut got = json_rows(&result.stdout);
    got.extend(json_rows(&hours));
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
}

/// `date_trunc` in a zone through the repeated hour: the start of the hour or minute holding
/// the time, never after it nor an hour before it. Paris' offsets are whole hours, so these
/// starts are UTC's. (02:30 CET, 01:30 UTC, was truncated to the first 02:00, 00:00 UTC.)
#[test]
fn date_trunc_in_a_zone_is_the_start_of_the_unit_holding_the_time_when_clocks_go_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_fall_back_minutes(&dir.path().join("rows.csv"));
    let text = "schema R { id: i64, ts: timestamp }\n\
                source r: R = file(path: \"rows.csv\") format csv\n\
                let o = r |> select { id, h: date_trunc(\"hour\", ts, \"Europe/Paris\"), \
                    m: date_trunc(\"minute\", ts, \"Europe/Paris\"), hu: date_trunc(\"hour\", ts), \
                    mu: date_trunc(\"minute\", ts) }\n\
                sink o -> stdout() format json\n";
    let binary = build("fn_zoned_trunc", text, false);
    let result = run(&binary, &["--quiet"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let rows = json_rows(&result.stdout);
    assert_eq!(rows.len(), 240);
    for row in rows {
        assert_eq!(row["h"], row["hu"], "{row}");
        assert_eq!(row["m"], row["mu"], "{row}");
    }
}
