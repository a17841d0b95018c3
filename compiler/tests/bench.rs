//! `weir bench --input both --readers 2` (and `--input kafka`, given a broker) on a tiny
//! input: the benchmark works, and its table has every row (one reader and two) with positive
//! numbers. The figures themselves are not checked (a benchmark, not a timed test); the real
//! runs' tables are in docs/performance.md.

use std::process::Command;

#[test]
fn file_input_bench_prints_every_row() {
    let records = 20_000;
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "bench",
            "--input",
            "both",
            "--records",
            &records.to_string(),
            "--readers",
            "2",
        ])
        .output()
        .expect("the weir binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for input in ["json", "csv"] {
        for pipeline in [
            "floor (lines)",
            "pass-through",
            "filter+project",
            "tumble max",
            "hop count/key",
            "pass-through x2",
            "filter+project x2",
            "tumble max x2",
            "hop count/key x2",
        ] {
            let prefix = format!("{input} ");
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&prefix) && l.contains(pipeline))
                .unwrap_or_else(|| panic!("no row for {input} {pipeline}:\n{stdout}"));
            // records, events/s, MB/s, CPU s, MB/s per CPU-s, ratio to the floor
            let numbers: Vec<f64> = line
                .split_whitespace()
                .rev()
                .take(6)
                .map(|n| {
                    n.parse()
                        .unwrap_or_else(|_| panic!("not a number in {line}"))
                })
                .collect();
            assert_eq!(numbers.len(), 6, "{line}");
            assert!(numbers.iter().all(|&n| n > 0.0), "{line}");
            assert_eq!(numbers[5], records as f64, "{line}");
        }
        assert!(
            stdout.contains(&format!("speed-up {input} filter+project: ")),
            "{stdout}"
        );
    }
}

/// `weir bench --input kafka` on a tiny topic, when a broker is configured
/// (`WEIR_KAFKA_BROKERS`, as for the Kafka tests; under CI one must be): every row is there
/// with positive numbers.
#[test]
fn kafka_input_bench_prints_every_row() {
    let brokers = match std::env::var("WEIR_KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("WEIR_KAFKA_BROKERS is not set: under CI the Kafka bench needs a broker")
        }
        _ => {
            eprintln!("skipping: no Kafka broker (set WEIR_KAFKA_BROKERS=host:port)");
            return;
        }
    };
    let records = 20_000;
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "bench",
            "--input",
            "kafka",
            "--records",
            &records.to_string(),
            "--partitions",
            "2",
            "--brokers",
            &brokers,
        ])
        .output()
        .expect("the weir binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for pipeline in ["floor (rdkafka)", "filter+project", "pass-through"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("kafka ") && l.contains(pipeline))
            .unwrap_or_else(|| panic!("no row for {pipeline}:\n{stdout}"));
        let numbers: Vec<f64> = line
            .split_whitespace()
            .rev()
            .take(6)
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("not a number in {line}"))
            })
            .collect();
        assert_eq!(numbers.len(), 6, "{line}");
        assert!(numbers.iter().all(|&n| n > 0.0), "{line}");
        assert_eq!(numbers[5], records as f64, "{line}");
    }
}

#[test]
fn kafka_input_bench_says_when_no_broker_is_reachable() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "--input", "kafka", "--records", "10", "--brokers"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("the weir binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no Kafka broker reachable at 127.0.0.1:"),
        "{stderr}"
    );
}

/// `weir bench --input postgres` on a few rows, when a server is configured
/// (`WEIR_POSTGRES_URL`, as for the PostgreSQL tests; under CI one must be): every row is there
/// with positive numbers, and the tables it made are gone.
#[test]
fn postgres_bench_prints_every_row() {
    let url = match std::env::var("WEIR_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("WEIR_POSTGRES_URL is not set: under CI the PostgreSQL bench needs a server")
        }
        _ => {
            eprintln!("skipping: no PostgreSQL server (set WEIR_POSTGRES_URL)");
            return;
        }
    };
    let records = 5_000;
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "bench",
            "--input",
            "postgres",
            "--records",
            &records.to_string(),
        ])
        .args(["--postgres", &url])
        .output()
        .expect("the weir binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for pipeline in [
        "csv file (baseline)",
        "postgres, at least once",
        "postgres, exactly once",
        "postgres, upserts",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(pipeline))
            .unwrap_or_else(|| panic!("no row for {pipeline}:\n{stdout}"));
        let numbers: Vec<f64> = line[pipeline.len()..]
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("not a number in {line}"))
            })
            .collect();
        assert_eq!(numbers.len(), 5, "{line}");
        assert!(numbers.iter().all(|&n| n > 0.0), "{line}");
        assert_eq!(numbers[0], records as f64, "{line}");
    }
    assert!(!stderr.contains("tables left"), "{stderr}");
}
