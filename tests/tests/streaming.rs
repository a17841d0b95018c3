//! Pipelines on input that trickles: stdin fed one line at a time through a pipe that stays
//! open, and a Kafka topic that receives one record while the pipeline runs. Each result must
//! reach stdout while the input is still open, within a generous deadline (a run that only
//! writes at the end of input, or when a buffer fills, misses it by far).

use std::time::{Duration, Instant};

use weir_tests::build;
use weir_tests::kafka::{broker, consume, create_topic, produce, unique, GROUP_PROPERTIES};
use weir_tests::running::Running;

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

const FILTER: &str = r#"
schema Reading { sensor: string, value: i64 }
source readings: Reading = stdin() format json
let high = readings |> filter value > 10 |> select { sensor, doubled: value * 2 }
sink high -> stdout() format json
"#;

/// A plain filter (no event time): each line that passes is printed before the next line is
/// written, and a line that does not pass prints nothing.
#[test]
fn a_filter_on_stdin_prints_each_result_while_stdin_is_open() {
    let binary = build("streaming_filter", FILTER, false);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&binary, dir.path(), &[]);
    let inputs = [("a", 11), ("b", 3), ("c", 50), ("d", 10), ("e", 12)];
    for (sensor, value) in inputs {
        run.send(&format!(r#"{{"sensor":"{sensor}","value":{value}}}"#));
        if value > 10 {
            let row = json(&run.expect_line(&format!("line {sensor}")));
            assert_eq!(row["sensor"], sensor);
            assert_eq!(row["doubled"], value * 2);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(run.close(), Vec::<String>::new(), "nothing was held back");
}

const REFRESH: &str = r#"
schema Reading { sensor: string, value: i64 }
schema Place { sensor: string, room: string }
source readings: Reading = stdin() format json
source places: Place = file(path: "places.csv", refresh: 200ms) format csv(header: true)
let located = readings |> lookup_join places as p on sensor = p.sensor
    |> select { sensor, room: p.room, value }
sink located -> stdout() format json
"#;

/// A lookup table read again every 200 ms (`refresh:`): once its file changes, records join
/// the new rows, and every record before that joined the old ones. The test probes with one
/// record at a time until the new row shows (a generous deadline for a slow machine), then
/// checks that the switch happened once and for good.
#[test]
fn a_refreshed_lookup_table_joins_new_rows_once_its_file_changes() {
    let binary = build("streaming_refresh", REFRESH, false);
    let dir = tempfile::tempdir().unwrap();
    let places = dir.path().join("places.csv");
    std::fs::write(&places, "sensor,room\na,kitchen\n").unwrap();
    let mut run = Running::start(&binary, dir.path(), &[]);
    let mut seen = Vec::new();
    for value in 0..3 {
        run.send(&format!(r#"{{"sensor":"a","value":{value}}}"#));
        let row = json(&run.expect_line("before the change"));
        assert_eq!(row["room"], "kitchen", "{row}");
        seen.push(row);
    }
    // A new file in place of the old (written aside, then renamed: never read half-written).
    let next = dir.path().join("places.next");
    std::fs::write(&next, "sensor,room\na,attic\nb,cellar\n").unwrap();
    std::fs::rename(&next, &places).unwrap();
    let started = Instant::now();
    let mut value = 3;
    loop {
        run.send(&format!(r#"{{"sensor":"a","value":{value}}}"#));
        let row = json(&run.expect_line("while the table changes"));
        value += 1;
        if row["room"] == "attic" {
            break;
        }
        assert_eq!(row["room"], "kitchen", "{row}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the table was not read again within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // From now on the new rows hold, including a key the old table did not have.
    for _ in 0..3 {
        run.send(&format!(r#"{{"sensor":"a","value":{value}}}"#));
        assert_eq!(json(&run.expect_line("after the change"))["room"], "attic");
        value += 1;
    }
    run.send(r#"{"sensor":"b","value":99}"#);
    let row = json(&run.expect_line("a key only the new table has"));
    assert_eq!(
        (row["sensor"].as_str(), row["room"].as_str()),
        (Some("b"), Some("cellar"))
    );
    assert_eq!(run.close(), Vec::<String>::new(), "nothing was held back");
}

/// A refreshed table is read again only when its file changed: a malformed line is one dead
/// letter, not one per refresh (the table is read every 200 ms for over a second here).
#[test]
fn a_refreshed_table_that_does_not_change_is_not_read_again() {
    let binary = build("streaming_refresh", REFRESH, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("places.csv"),
        "sensor,room\na,kitchen\nnot a row\n",
    )
    .unwrap();
    let mut run = Running::start(&binary, dir.path(), &["--dead-letters", "dead.jsonl"]);
    for value in 0..6 {
        run.send(&format!(r#"{{"sensor":"a","value":{value}}}"#));
        assert_eq!(json(&run.expect_line("a joined record"))["room"], "kitchen");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(run.close(), Vec::<String>::new(), "nothing was held back");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("not a row"), "{dead}");
}

const WINDOW: &str = r#"
schema Click { page: string, ts: timestamp }
source clicks: Click = stdin() format json event_time ts watermark 0s
let views = clicks |> window tumble(10s) |> aggregate { n: count() }
sink views -> stdout() format json
"#;

fn click(page: &str, ts: i64) -> String {
    format!(r#"{{"page":"{page}","ts":{ts}}}"#)
}

/// Event time on stdin: the window fires as soon as a line carries the watermark past its end,
/// while stdin stays open and no other line comes.
#[test]
fn a_window_on_stdin_fires_when_the_watermark_passes_it_while_stdin_is_open() {
    let binary = build("streaming_window", WINDOW, false);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&binary, dir.path(), &[]);
    let base = 1_700_000_000_000i64; // a multiple of 10 s
    for (i, offset) in [1_000, 2_500, 9_999].into_iter().enumerate() {
        run.send(&click(&format!("p{i}"), base + offset));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Carries the watermark to base + 10.5 s: the window [base, base + 10 s) is complete.
    run.send(&click("p3", base + 10_500));
    let row = json(&run.expect_line("the first window"));
    assert_eq!(row["n"], 3);
    // Nothing in between: the next window fires with the next line past its end.
    run.send(&click("p4", base + 21_000));
    let row = json(&run.expect_line("the second window"));
    assert_eq!(row["n"], 1);
    let rest = run.close();
    assert_eq!(rest.len(), 1, "the last window fires at the end: {rest:?}");
    assert_eq!(json(&rest[0])["n"], 1);
}

const RUNNING_COUNT: &str = r#"
schema Click { page: string, ts: timestamp }
source clicks: Click = stdin() format json
let counts = clicks |> aggregate by page { n: count() }
sink counts -> stdout() format json
"#;

/// An updating aggregate keyed on another task: each change crosses a channel and is printed
/// while stdin is open (no watermark ever flows: nothing but the flush interval moves it).
#[test]
fn a_running_count_on_stdin_prints_each_change_while_stdin_is_open() {
    let binary = build("streaming_running_count", RUNNING_COUNT, false);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&binary, dir.path(), &["--parallelism", "2"]);
    let mut want = std::collections::BTreeMap::<&str, i64>::new();
    for (i, page) in ["home", "cart", "home", "home", "cart"]
        .into_iter()
        .enumerate()
    {
        run.send(&click(page, 1_700_000_000_000 + i as i64));
        *want.entry(page).or_default() += 1;
        let row = json(&run.expect_line(&format!("change {i}")));
        assert_eq!(row["op"], "+U");
        assert_eq!(row["page"], page);
        assert_eq!(row["n"], want[page]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(run.close(), Vec::<String>::new(), "nothing was held back");
}

const TOP_PER_WINDOW: &str = r#"
schema Click { page: string, ts: timestamp }
source clicks: Click = stdin() format json event_time ts watermark 0s
let top = clicks
    |> key_by page
    |> window tumble(10s)
    |> aggregate { n: count() }
    |> top 2 by window_end order by n desc, page
    |> filter n > 1
sink top -> stdout() format json
"#;

/// A top-N keyed by its window is final when the window closes: an append stream (it takes
/// a `filter`, rows carry no `op`), each window's rows printed once, as soon as the watermark
/// passes the window's end, while stdin stays open; nothing before.
#[test]
fn a_top_n_per_window_prints_its_final_rows_when_the_window_closes() {
    let binary = build("streaming_top_per_window", TOP_PER_WINDOW, false);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&binary, dir.path(), &["--parallelism", "2"]);
    let base = 1_700_000_000_000i64; // a multiple of 10 s
    for (i, page) in ["a", "b", "a", "c", "b", "c", "b", "d"]
        .into_iter()
        .enumerate()
    {
        run.send(&click(page, base + 1_000 * i as i64));
    }
    assert!(
        run.quiet_for(Duration::from_millis(500)),
        "nothing may be printed before the window closes"
    );
    // Carries the watermark past base + 10 s: b (3), then a (2) before c (2) by page.
    run.send(&click("e", base + 10_500));
    let first = json(&run.expect_line("rank 1 of the first window"));
    let second = json(&run.expect_line("rank 2 of the first window"));
    assert_eq!(
        (&first["page"], &first["n"], &first["rank"]),
        (&"b".into(), &3.into(), &1.into())
    );
    assert_eq!(
        (&second["page"], &second["n"], &second["rank"]),
        (&"a".into(), &2.into(), &2.into())
    );
    assert!(
        first.get("op").is_none(),
        "an append stream has no op: {first}"
    );
    run.send(&click("e", base + 12_000));
    let rest = run.close();
    // The second window closes at the end of input: e (2) at rank 1.
    assert_eq!(rest.len(), 1, "{rest:?}");
    let last = json(&rest[0]);
    assert_eq!((&last["page"], &last["n"]), (&"e".into(), &2.into()));
}

/// Kafka: a lone record produced while the pipeline runs reaches stdout and a (plain) Kafka
/// sink within the deadline, with nothing after it to push it out.
#[test]
fn a_lone_kafka_record_reaches_the_sinks_while_the_pipeline_runs() {
    let Some(brokers) = broker() else { return };
    let input = unique("lone-in");
    let output = unique("lone-out");
    let group = unique("lone-group");
    create_topic(&brokers, &input, 1);
    create_topic(&brokers, &output, 1);
    let text = format!(
        r#"
schema Order {{ id: i64, amount: i64 }}
source orders: Order = kafka(topic: "{input}", brokers: "{brokers}", group: "{group}",
    start: "earliest", properties: "{GROUP_PROPERTIES}") format json
let big = orders |> filter amount >= 10
sink big -> stdout() format json
sink big -> kafka(topic: "{output}", brokers: "{brokers}") format json
"#
    );
    let binary = build("streaming_kafka_lone_record", &text, false);
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&binary, dir.path(), &[]);
    let order = |id: i64, amount: i64| format!(r#"{{"id":{id},"amount":{amount}}}"#);
    // The first record also waits for the consumer to join its group.
    produce(&brokers, &input, &[(0, order(1, 50))]);
    let row = json(&run.expect_line_within(Duration::from_secs(30), "the first record"));
    assert_eq!(row["id"], 1);
    // Joined and idle: the next lone record (after one the filter drops) comes promptly.
    std::thread::sleep(Duration::from_millis(500));
    produce(&brokers, &input, &[(0, order(2, 3)), (0, order(3, 70))]);
    let row = json(&run.expect_line("the lone record"));
    assert_eq!(row["id"], 3);
    let sent: Vec<i64> = consume(&brokers, &output, 2)
        .iter()
        .map(|(_, payload)| json(payload)["id"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, vec![1, 3]);
    // The pipeline is still running: a Kafka source has no end (the drop kills it).
    drop(run);
}
