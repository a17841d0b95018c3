//! `weir bench --input postgres`: throughput of the PostgreSQL sink, next to the same rows
//! written to a CSV file in the same run (the baseline: everything but the database).
//!
//! The Nexmark generator makes N bids; each pipeline selects five of their fields and writes
//! them to a fresh table (at least once: binary `COPY` per batch; exactly once: one
//! transaction per checkpoint, every second), or keeps `aggregate by bidder { n, top }` as a
//! live table (one upsert per change). Tables are named `weir_bench_<pid>_<n>`; they are
//! dropped at the end with `psql` when it is on the PATH (else they are listed). CPU time is
//! the pipeline process's alone: the server's work is in the wall time only.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};

use super::bench::build;
use super::bench_files::{events_for, run_timed, Measured};

/// What the PostgreSQL benchmark was asked to do.
pub struct PostgresBench {
    /// Bids generated.
    pub records: u64,
    /// `postgresql://user:password@host:port/database`.
    pub url: String,
    /// Runs per configuration; the fastest is reported.
    pub repeat: u32,
}

/// The server from `--postgres` or `WEIR_POSTGRES_URL`.
pub fn url(flag: Option<&str>) -> Result<String> {
    match flag {
        Some(u) => Ok(u.to_string()),
        None => match std::env::var("WEIR_POSTGRES_URL") {
            Ok(u) if !u.trim().is_empty() => Ok(u),
            _ => bail!("--input postgres needs a server: --postgres URL or WEIR_POSTGRES_URL"),
        },
    }
}

fn run_once(binary: &Path, dir: &Path, extra: &[&str]) -> Result<Measured> {
    let args: Vec<&str> = std::iter::once("--quiet")
        .chain(extra.iter().copied())
        .collect();
    Ok(run_timed(binary, dir, &args)?.0)
}

pub fn run_bench(bench: &PostgresBench) -> Result<ExitCode> {
    let events = events_for(bench.records);
    let dir = tempfile_dir()?;
    let select = "bids |> select { auction, bidder, price, channel, at: date_time }";
    let source = format!("source bids = nexmark(stream: \"bid\", events: {events})\n");
    let mut tables = Vec::new();
    let mut table = || {
        let name = format!("weir_bench_{}_{}", std::process::id(), tables.len());
        tables.push(name.clone());
        name
    };
    // (name, pipeline text, extra arguments, a table per run)
    let url = &bench.url;
    let configs: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "csv file (baseline)",
            format!("{source}sink {select} -> file(path: \"out.csv\") format csv\n"),
            vec![],
        ),
        (
            "postgres, at least once",
            format!("{source}sink {select} -> postgres(url: \"{url}\", table: \"TABLE\")\n"),
            vec![],
        ),
        (
            "postgres, exactly once",
            format!(
                "{source}sink {select} -> postgres(url: \"{url}\", table: \"TABLE\", delivery: \"exactly_once\")\n"
            ),
            vec!["--checkpoint-dir", "chk", "--checkpoint-interval", "1s"],
        ),
        (
            "postgres, upserts",
            format!(
                "{source}sink bids |> aggregate by bidder {{ n: count(), top: max(price) }} -> postgres(url: \"{url}\", table: \"TABLE\")\n"
            ),
            vec![],
        ),
    ];
    println!(
        "{:<26} {:>10} {:>9} {:>8} {:>12} {:>9}",
        "pipeline", "rows", "wall s", "CPU s", "rows/s", "/file"
    );
    let mut baseline = None;
    for (i, (name, text, extra)) in configs.iter().enumerate() {
        let mut best: Option<Measured> = None;
        for _ in 0..bench.repeat.max(1) {
            let text = text.replace("TABLE", &table());
            let binary = build(&format!("postgres_{i}"), &text, false)?;
            let _ = std::fs::remove_dir_all(dir.join("chk"));
            let m = run_once(&binary, &dir, extra)?;
            if best.as_ref().is_none_or(|b| m.wall < b.wall) {
                best = Some(m);
            }
        }
        let best = best.expect("one run at least");
        let rate = bench.records as f64 / best.wall;
        let base = *baseline.get_or_insert(rate);
        println!(
            "{name:<26} {:>10} {:>9.3} {:>8.3} {:>12.0} {:>9.3}",
            bench.records,
            best.wall,
            best.cpu,
            rate,
            rate / base
        );
    }
    println!("(upserts: the rows/s column counts input bids; the table holds one row per bidder)");
    let _ = std::fs::remove_dir_all(&dir);
    let dropped = tables.iter().all(|t| {
        Command::new("psql")
            .args([
                url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP TABLE IF EXISTS {t}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !dropped {
        eprintln!(
            "tables left on the server (no psql to drop them): {}",
            tables.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh folder under the system's temporary one for the pipelines' files.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("weir-bench-postgres-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
