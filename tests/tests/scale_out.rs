//! Scale-out with state (`--scale-out`): processes running one compiled pipeline in one
//! consumer group, each running a task per assigned partition with the partition's state in a
//! shared checkpoint folder. Partitions move between processes twice in a run (a graceful
//! rebalance when the second process joins, and a SIGKILL of the first), and the windowed
//! output must still equal an oracle over the input exactly: every window once, none short.
//!
//! Needs a broker (`WEIR_KAFKA_BROKERS`, see `weir_tests::kafka`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_tests::kafka::{
    broker, committed, consume, create_topic, keyed_window_rows, produce, unique, window_row,
    window_totals, GROUP_PROPERTIES,
};
use weir_tests::s3::Checkpoints;
use weir_tests::{build, run};

const PARTITIONS: i32 = 4;
const CUSTOMERS: i64 = 12;

/// Orders `(partition, customer, amount, ts)`, co-partitioned by customer (customer `k` is
/// always in partition `k % 4`), timestamps increasing within each partition.
fn orders(n: i64) -> Vec<(i32, String, i64, i64)> {
    let base = 1_700_000_000_000i64;
    (0..n)
        .map(|i| {
            let k = i % CUSTOMERS;
            let partition = (k % PARTITIONS as i64) as i32;
            (partition, format!("c{k}"), (i * 37) % 50, base + i * 250)
        })
        .collect()
}

const PIPELINE: &str = r#"
schema Order { customer: string, amount: i64, ts: timestamp }
source orders: Order = kafka(topic: "IN", brokers: "BROKERS", group: "GROUP",
    properties: "PROPS")
    event_time ts watermark 1s
let per_customer = orders
    |> filter amount >= 5
    |> key_by customer
    |> window tumble(10s)
    |> aggregate { n: count(), total: sum(amount) }
    |> select { customer, window_start, n, total }
sink per_customer -> file(path: "out/windows.jsonl")
sink per_customer -> kafka(topic: "OUT", brokers: "BROKERS", key: customer,
    delivery: "exactly_once") format json
"#;

/// `customer,window_start,n,total` rows computed here from the input.
fn oracle(rows: &[(i32, String, i64, i64)]) -> BTreeSet<String> {
    window_totals(rows.iter().map(|(_, c, a, ts)| (c.as_str(), *a, *ts)), 5)
}

/// Produces `rows` as JSON orders, each to its partition.
fn produce_orders(brokers: &str, topic: &str, rows: &[(i32, String, i64, i64)]) {
    let messages: Vec<(i32, String)> = rows
        .iter()
        .map(|(p, c, a, ts)| {
            (
                *p,
                format!(r#"{{"customer":"{c}","amount":{a},"ts":{ts}}}"#),
            )
        })
        .collect();
    produce(brokers, topic, &messages);
}

/// Every row of every task's output file (`out/windows.pN.jsonl`), as the oracle's rows.
fn output_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for p in 0..PARTITIONS {
        let path = dir.join(format!("out/windows.p{p}.jsonl"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rows.extend(text.lines().map(window_row));
    }
    rows
}

/// Starts a supervisor in `dir` (both share it: outputs and the checkpoint folder, or the
/// checkpoints' S3 location); its stderr goes to `log`.
fn supervisor(binary: &Path, dir: &Path, log: &str, at: &Checkpoints) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new(binary)
        .args([
            "--scale-out",
            "--checkpoint-dir",
            at.arg(),
            "--checkpoint-interval",
            "200ms",
            "--rate-limit",
            "70",
            "--kafka-stop-after-idle",
            "2500",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("supervisor starts")
}

/// Waits until `log` in `dir` contains `text` (or panics after `secs`).
fn wait_for(dir: &Path, log: &str, text: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let content = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        if content.contains(text) {
            return;
        }
        if Instant::now() >= deadline {
            let others: String = ["a.log", "b.log"]
                .iter()
                .filter(|l| **l != log)
                .map(|l| {
                    format!(
                        "{l}:\n{}",
                        std::fs::read_to_string(dir.join(l)).unwrap_or_default()
                    )
                })
                .collect();
            panic!("no `{text}` in {log} after {secs} s:\n{content}\n{others}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records the tasks of `partition` read, from their summaries in a supervisor's log.
fn events_read(log: &str, partition: i32) -> u64 {
    let prefix = format!("[partition {partition}]   events: ");
    log.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A completed checkpoint of `partition`'s task exists.
fn has_checkpoint(at: &Checkpoints, dir: &Path, partition: i32) -> bool {
    match at {
        Checkpoints::Folder => std::fs::read_dir(dir.join(format!("chk/partition-{partition}")))
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().join("MANIFEST").exists())
            })
            .unwrap_or(false),
        Checkpoints::S3(url) => {
            Checkpoints::S3(format!("{url}/partition-{partition}")).newest(dir) > 0
        }
    }
}

#[test]
fn partitions_move_between_processes_with_their_window_state() {
    partitions_move_with_their_state(&Checkpoints::Folder);
}

/// Item 6 of issue 15: the same handover with the tasks' checkpoints in an S3 bucket instead
/// of a shared folder (a new owner's task takes the partition's lease over, and commits
/// offsets the supervisor reads from the bucket).
#[test]
fn partitions_move_between_processes_through_object_storage() {
    if broker().is_none() {
        return;
    }
    if let Some(at) = Checkpoints::s3("scale-out") {
        partitions_move_with_their_state(&at);
    }
}

fn partitions_move_with_their_state(at: &Checkpoints) {
    let Some(brokers) = broker() else { return };
    let input = unique("scale-state-in");
    let output = unique("scale-state-out");
    let group = unique("scale-state-group");
    create_topic(&brokers, &input, PARTITIONS);
    create_topic(&brokers, &output, 2);
    let rows = orders(8_000);
    produce_orders(&brokers, &input, &rows);
    let text = PIPELINE
        .replace("IN", &input)
        .replace("OUT", &output)
        .replace("BROKERS", &brokers)
        .replace("GROUP", &group)
        .replace("PROPS", GROUP_PROPERTIES);
    let binary = at.build("scale_out_state", &text);
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();

    // A alone: all four partitions, a task each.
    let mut a = supervisor(&binary, dir, "a.log", at);
    wait_for(dir, "a.log", "now runs {0, 1, 2, 3}", 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(0..PARTITIONS).all(|p| has_checkpoint(at, dir, p)) {
        assert!(Instant::now() < deadline, "A's tasks took no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    // B joins: the group moves some partitions to B, whose tasks resume from A's checkpoints.
    let b = supervisor(&binary, dir, "b.log", at);
    wait_for(dir, "b.log", "resuming from checkpoint", 30);
    // A dies with its tasks, mid-stream; after the session timeout B takes A's partitions
    // over.
    a.kill().expect("SIGKILL A");
    a.wait().expect("A is gone");
    let b = b.wait_with_output().expect("B ends");
    let a_log = std::fs::read_to_string(dir.join("a.log")).unwrap_or_default();
    let _ = std::fs::copy(
        dir.join("a.log"),
        std::env::temp_dir().join("weir-scale-a.log"),
    );
    let _ = std::fs::copy(
        dir.join("b.log"),
        std::env::temp_dir().join("weir-scale-b.log"),
    );
    let b_log = std::fs::read_to_string(dir.join("b.log")).unwrap_or_default();
    assert!(b.status.success(), "B failed:\n{b_log}\nA:\n{a_log}");
    assert!(
        b_log.contains("now runs {0, 1, 2, 3}"),
        "B never ran every partition:\n{b_log}"
    );
    // Tasks in B resumed partitions from checkpoints A's tasks took.
    let resumed: BTreeSet<i32> = (0..PARTITIONS)
        .filter(|p| b_log.contains(&format!("[partition {p}] weir: resuming from checkpoint")))
        .collect();
    assert_eq!(
        resumed.len(),
        PARTITIONS as usize,
        "B resumed only {resumed:?} from checkpoints:\n{b_log}"
    );

    // The partitions the group moved while A was alive were drained: A's task took a last
    // checkpoint and committed it, and B's resumed from exactly that one.
    let drained: Vec<(i32, String)> = (0..PARTITIONS)
        .filter_map(|p| {
            let prefix = format!("[partition {p}] weir: stopped after checkpoint ");
            let line = a_log.lines().find_map(|l| l.strip_prefix(&prefix))?;
            Some((p, line.split(',').next()?.to_string()))
        })
        .collect();
    assert!(!drained.is_empty(), "no task of A drained:\n{a_log}");
    for (p, id) in &drained {
        let at = format!("[partition {p}] weir: resuming from checkpoint {id} ");
        assert!(
            b_log.contains(&at),
            "A drained partition {p} at checkpoint {id}, B did not resume there:\n{b_log}"
        );
    }

    // Every partition was read partly by A and partly by B: each handover was mid-stream.
    for p in 0..PARTITIONS {
        let total = rows.iter().filter(|r| r.0 == p).count() as u64;
        let read = events_read(&b_log, p);
        assert!(
            read > 0 && read < total,
            "partition {p}: B read {read} of {total}:\n{b_log}"
        );
    }
    assert!(
        !dir.join("out/windows.jsonl").exists(),
        "a supervisor opened the sink's file (only tasks write, to windows.pN.jsonl)"
    );
    let got = output_rows(dir);
    let unique_rows: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique_rows.len(), got.len(), "windows written twice");
    let want = oracle(&rows);
    let missing: Vec<&String> = want.difference(&unique_rows).take(5).collect();
    let extra: Vec<&String> = unique_rows.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} rows, {} wanted; missing {missing:?}, unexpected {extra:?}",
        unique_rows.len(),
        want.len()
    );

    // The same windows through the exactly-once Kafka sink, whose transactional ids are per
    // task (`weir-<sink>-pN`), so a task's new owner fences the old one (aborting what A's
    // task left open): each window once, none lost.
    let messages = consume(&brokers, &output, want.len());
    let kafka_rows = keyed_window_rows(&messages);
    let distinct: BTreeSet<String> = kafka_rows.iter().cloned().collect();
    let missing: Vec<&String> = want.difference(&distinct).collect();
    let extra: Vec<&String> = distinct.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "windows through Kafka: {} missing {:?}, {} unexpected {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    let duplicates = kafka_rows.len() - distinct.len();
    assert_eq!(duplicates, 0, "duplicate windows through Kafka");

    // The supervisors committed the tasks' checkpointed offsets to the group (monitoring).
    let offsets = committed(&brokers, &input, &group, PARTITIONS);
    for p in 0..PARTITIONS {
        let total = rows.iter().filter(|r| r.0 == p).count() as i64;
        let at = offsets.get(&p).copied().unwrap_or(0);
        assert!(
            at > 0 && at <= total,
            "partition {p}: committed {at} of {total}"
        );
    }
}

/// Scale-out splits a pipeline by Kafka partition: a pipeline with another source is refused
/// with a message naming it, before anything runs.
#[test]
fn scale_out_refuses_a_pipeline_with_a_source_that_is_not_kafka() {
    let text = r#"
source bids = nexmark(stream: "bid", events: 100)
sink bids -> stdout format json
"#;
    let binary = build("scale_out_refused", text, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(
        &binary,
        &["--scale-out", "--checkpoint-dir", "chk"],
        dir.path(),
        None,
    );
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("every source must be a Kafka topic: `bids` is a nexmark generator"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "it ran: {}", out.stdout);
    let out = run(&binary, &["--scale-out"], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr.contains("--scale-out needs --checkpoint-dir"),
        "{}",
        out.stderr
    );
}

/// Throughput of one process running four partition tasks (`--scale-out`) against one process
/// reading the four partitions itself, both with checkpoints every second, on the same topic
/// in the same run. Each is timed on a small and a large input, and the difference is the
/// reading time (group joins, start-up and the idle wait at the end cancel out).
#[test]
#[ignore = "a measurement, not a check: cargo test -p weir-tests --test scale_out -- --ignored --nocapture"]
fn scale_out_throughput() {
    let Some(brokers) = broker() else { return };
    let n: i64 = std::env::var("WEIR_SCALE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let mut times = std::collections::BTreeMap::<(&str, i64), f64>::new();
    for count in [2_000, n] {
        let input = unique("scale-bench-in");
        create_topic(&brokers, &input, PARTITIONS);
        let rows = orders(count);
        produce_orders(&brokers, &input, &rows);
        let text = PIPELINE
            .lines()
            .filter(|l| !l.contains("kafka(topic: \"OUT\"") && !l.contains("delivery:"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("IN", &input)
            .replace("BROKERS", &brokers)
            .replace("PROPS", GROUP_PROPERTIES);
        for mode in ["single", "single-p4", "scale-out"] {
            let text = text.replace("GROUP", &unique("scale-bench-group"));
            let size = if count == n { "large" } else { "small" };
            let name = format!("scale_out_bench_{}_{size}", mode.replace('-', "_"));
            let binary = build(&name, &text, false);
            let dir = tempfile::tempdir().expect("temp dir");
            let mut args = vec![
                "--checkpoint-dir",
                "chk",
                "--checkpoint-interval",
                "1s",
                "--kafka-stop-after-idle",
                "1500",
                "--quiet",
            ];
            match mode {
                "scale-out" => args.push("--scale-out"),
                "single-p4" => args.extend(["--parallelism", "4"]),
                _ => {}
            }
            let started = Instant::now();
            let out = run(&binary, &args, dir.path(), None);
            times.insert((mode, count), started.elapsed().as_secs_f64());
            assert!(out.success, "{mode}: {}", out.stderr);
            if count == n {
                let mut got: Vec<String> = if mode != "scale-out" {
                    std::fs::read_to_string(dir.path().join("out/windows.jsonl"))
                        .expect("output")
                        .lines()
                        .map(String::from)
                        .collect()
                } else {
                    (0..PARTITIONS)
                        .flat_map(|p| {
                            std::fs::read_to_string(
                                dir.path().join(format!("out/windows.p{p}.jsonl")),
                            )
                            .expect("output")
                            .lines()
                            .map(String::from)
                            .collect::<Vec<_>>()
                        })
                        .collect()
                };
                got.sort();
                let want = oracle(&rows).len();
                assert_eq!(got.len(), want, "{mode}: windows");
            }
        }
    }
    let reading = |mode| (times[&(mode, n)] - times[&(mode, 2_000)]).max(1e-3);
    let (single, p4, scaled) = (
        reading("single"),
        reading("single-p4"),
        reading("scale-out"),
    );
    eprintln!(
        "{n} records over {PARTITIONS} partitions: one process {:.0} records/s, one process \
         with --parallelism 4 {:.0} records/s, {PARTITIONS} tasks under --scale-out {:.0} \
         records/s (scale-out / parallelism 4: {:.2}); runs {times:?}",
        n as f64 / single,
        n as f64 / p4,
        n as f64 / scaled,
        p4 / scaled
    );
}
