//! `weir bench`: throughput of Nexmark queries on the built-in generator, each built fused and
//! unfused, next to the generator alone (the floor). Every number comes from the same run, so
//! the ratios hold on a noisy machine even when the absolute figures move.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use weir_compiler::driver::{self, BuildConfig};
use weir_compiler::{Options, SourceMap};

use super::bench_files::{self, FileBench, InputFormat};
use super::bench_kafka::{self, KafkaBench};
use super::bench_postgres::{self, PostgresBench};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Events generated per run (all kinds; bid-only queries see 46/50 of them).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Generator splits (parallel source tasks).
    #[arg(long, default_value_t = 1)]
    generators: u32,
    /// Runs per configuration; the best is reported.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Queries, by file stem in the examples folder.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q0,q1,q2,max_price_per_window"
    )]
    queries: Vec<String>,
    /// Skip the unfused builds (halves the time of `--queries all`).
    #[arg(long)]
    fused_only: bool,
    /// Folder holding the query files.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Also run each fused query taking checkpoints this often (e.g. `1s`), into a temporary
    /// folder: reports throughput with checkpoints, its ratio to the plain run, and the size
    /// of the last checkpoint.
    #[arg(long)]
    checkpoint_interval: Option<String>,
    /// Also run each fused query built with its HTTP endpoint and serving (`--http`), read once a second
    /// the way the web UI and a scraper read it (`/api/pipeline` and `/metrics`); runs with
    /// and without take turns, and the ratio of their throughputs is reported.
    #[arg(long)]
    http: bool,
    /// Benchmark file input instead: write Nexmark bids as JSON lines and/or CSV into a
    /// temporary folder, then time pass-through, filter+project, tumbling max and hop count
    /// per key over them, next to the file read and split into lines (the floor). `kafka`:
    /// bids as JSON in a Kafka topic, read by pipelines next to a bare rdkafka consumer.
    /// `postgres`: generated bids written to PostgreSQL tables, next to a CSV file.
    #[arg(long, value_enum)]
    input: Option<Input>,
    /// Bids written to each input file or to the topic (with `--input`; default 5,000,000
    /// for files, 1,000,000 for Kafka).
    #[arg(long, requires = "input")]
    records: Option<u64>,
    /// The server of `--input postgres` (`postgresql://user:password@host:port/db`);
    /// default: `WEIR_POSTGRES_URL`.
    #[arg(long, requires = "input")]
    postgres: Option<String>,
    /// Kafka brokers (`host:port,...`) of `--input kafka`; default: `WEIR_KAFKA_BROKERS`.
    #[arg(long, requires = "input")]
    brokers: Option<String>,
    /// Partitions of the topic `--input kafka` fills.
    #[arg(long, default_value_t = 4, requires = "input")]
    partitions: i32,
    /// Keep the temporary folder of `--input` (its path is printed).
    #[arg(long, requires = "input")]
    keep_files: bool,
    /// With `--input`: also run each pipeline with this many readers of its file
    /// (`--parallelism N`, one byte range each) and report the speed-up over one reader,
    /// measured in the same run.
    #[arg(long, default_value_t = 1, requires = "input", value_parser = clap::value_parser!(u32).range(1..=1024))]
    readers: u32,
}

/// What `--input` benchmarks.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Input {
    Json,
    Csv,
    Both,
    Kafka,
    Postgres,
}

/// What one configuration's best run reported.
struct Timing {
    seconds: f64,
    peak_mib: Option<f64>,
    /// Checkpoints completed and the last one's size in bytes.
    checkpoints: Option<(u64, u64)>,
}

/// The floor: the generator producing bids, read by a filter that never passes.
const FLOOR: &str = "// weir bench: the generator alone\n\
source bids = nexmark(stream: \"bid\")\n\
sink bids |> filter price < 0 -> checksum()\n";

pub(super) fn build(name: &str, text: &str, no_fusion: bool) -> Result<PathBuf> {
    build_in(name, text, no_fusion, None, false)
}

/// [`build`] for a pipeline whose relative paths are relative to `base_dir` (its folder).
/// With `http`, the binary has the HTTP endpoint compiled in.
fn build_in(
    name: &str,
    text: &str,
    no_fusion: bool,
    base_dir: Option<&Path>,
    http: bool,
) -> Result<PathBuf> {
    let mut sources = SourceMap::new();
    let id = sources.add(format!("{name}.weir"), text.to_string());
    let compiled = weir_compiler::compile(
        &sources,
        id,
        &Options {
            no_fusion,
            base_dir: base_dir.map(Path::to_path_buf),
            ..Options::default()
        },
    )
    .map_err(|d| {
        anyhow!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        )
    })?;
    let suffix = match (no_fusion, http) {
        (true, _) => "_unfused",
        (false, true) => "_http",
        (false, false) => "",
    };
    let config = BuildConfig {
        http,
        ..BuildConfig::from_env()?
    };
    let built = driver::build(&compiled.rust, &format!("bench_{name}{suffix}"), &config)?;
    Ok(built.binary)
}

/// Best wall time over the repeats, and the peak memory the pipeline reported (MiB).
fn time(binary: &Path, args: &BenchArgs) -> Result<(f64, Option<f64>)> {
    let t = time_with(binary, args, &[])?;
    Ok((t.seconds, t.peak_mib))
}

/// [`time`] with extra options for the pipeline binary: the best of the repeats.
fn time_with(binary: &Path, args: &BenchArgs, extra: &[String]) -> Result<Timing> {
    let mut best: Option<Timing> = None;
    for _ in 0..args.repeat.max(1) {
        let t = run_once(binary, args, extra)?;
        best = Some(match best {
            Some(b) if b.seconds <= t.seconds => b,
            _ => t,
        });
    }
    best.ok_or_else(|| anyhow!("no run"))
}

/// One run of the pipeline binary with `extra` options: its wall time, and the peak memory
/// and checkpoint summary lines it printed.
fn run_once(binary: &Path, args: &BenchArgs, extra: &[String]) -> Result<Timing> {
    // Each run starts from scratch: a checkpoint folder of a finished run would make the
    // next run stop at once.
    if let Some(i) = extra.iter().position(|a| a == "--checkpoint-dir") {
        if let Some(dir) = extra.get(i + 1) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let started = Instant::now();
    let out = Command::new(binary)
        .args([
            "--events",
            &args.events.to_string(),
            "--generators",
            &args.generators.to_string(),
        ])
        .args(extra)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_mib = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak memory: "))
        .and_then(|v| v.trim_end_matches(" MiB").parse::<f64>().ok());
    // "checkpoints: 12 completed (last 6.3 ms, 156611 bytes; ..."
    let checkpoints = stderr.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("checkpoints: ")?;
        let n = rest.split(' ').next()?.parse().ok()?;
        let bytes = rest.split(", ").nth(1)?.split(' ').next()?.parse().ok()?;
        Some((n, bytes))
    });
    Ok(Timing {
        seconds,
        peak_mib,
        checkpoints,
    })
}

/// The cost of the HTTP endpoint: the best run of the plain `binary` and the best run of
/// `with_http` (the same pipeline with the endpoint compiled in) serving on a free port and
/// read once a second, taking turns (so a slow stretch of the machine hits both), and how
/// many reads answered.
fn time_http(binary: &Path, with_http: &Path, args: &BenchArgs) -> Result<(f64, f64, u64)> {
    let (mut plain, mut served, mut reads) = (f64::INFINITY, f64::INFINITY, 0);
    for _ in 0..args.repeat.max(1) {
        plain = plain.min(run_once(binary, args, &[])?.seconds);
        // A free port: bound, noted and let go (the pipeline binds it a moment later).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::spawn(move || read_every_second(addr, &stop))
        };
        let t = run_once(with_http, args, &["--http".to_string(), addr.to_string()]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reads += reader.join().unwrap_or(0);
        served = served.min(t?.seconds);
    }
    Ok((plain, served, reads))
}

/// Reads `/api/pipeline` and `/metrics` from `addr` once a second until `stop`: what the
/// web UI and a scraper ask of a running pipeline. Returns how many reads answered.
fn read_every_second(addr: std::net::SocketAddr, stop: &std::sync::atomic::AtomicBool) -> u64 {
    use std::io::{Read, Write};
    let mut answered = 0;
    let mut next = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if Instant::now() >= next {
            next += std::time::Duration::from_secs(1);
            for path in ["/api/pipeline", "/metrics"] {
                // A bench client of two GETs, not a server: std's socket is enough.
                let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                    continue;
                };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                let mut response = Vec::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_end(&mut response).is_ok()
                    && response.starts_with(b"HTTP/1.1 200")
                {
                    answered += 1;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    answered
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let files = match args.input {
        Some(Input::Kafka) => {
            return bench_kafka::run_bench(&KafkaBench {
                records: args.records.unwrap_or(1_000_000),
                brokers: bench_kafka::brokers(args.brokers.as_deref())?,
                partitions: args.partitions,
                repeat: args.repeat,
            });
        }
        Some(Input::Postgres) => {
            return bench_postgres::run_bench(&PostgresBench {
                records: args.records.unwrap_or(1_000_000),
                url: bench_postgres::url(args.postgres.as_deref())?,
                repeat: args.repeat,
            });
        }
        Some(Input::Json) => Some(InputFormat::Json),
        Some(Input::Csv) => Some(InputFormat::Csv),
        Some(Input::Both) => Some(InputFormat::Both),
        None => None,
    };
    if let Some(input) = files {
        return bench_files::run(&FileBench {
            input,
            records: args.records.unwrap_or(5_000_000),
            repeat: args.repeat,
            keep_files: args.keep_files,
            readers: args.readers,
        });
    }
    let examples = args
        .examples
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark"));
    let mut queries = args.queries.clone();
    if queries.iter().any(|q| q == "all") {
        queries = (0..=22)
            .map(|n| format!("q{n}"))
            .filter(|q| examples.join(format!("{q}.weir")).exists())
            .collect();
        queries.push("max_price_per_window".into());
    }
    eprintln!(
        "weir bench: building {} queries and the floor...",
        queries.len()
    );
    let floor_bin = build("generator_floor", FLOOR, false)?;
    let mut rows = Vec::new();
    let mut http_bins = Vec::new();
    for q in &queries {
        let path = examples.join(format!("{q}.weir"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let base = std::path::absolute(&examples)?;
        let fused = build_in(q, &text, false, Some(&base), false)?;
        let unfused = if args.fused_only {
            None
        } else {
            Some(build_in(q, &text, true, Some(&base), false)?)
        };
        if args.http {
            http_bins.push(build_in(q, &text, false, Some(&base), true)?);
        }
        rows.push((q.clone(), fused, unfused));
    }
    eprintln!(
        "weir bench: running with {} events, {} generator(s)...",
        args.events, args.generators
    );
    let (floor, floor_mem) = time(&floor_bin, &args)?;
    let n = args.events as f64;
    let mem = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.0}"));
    println!(
        "{:<24} {:>14} {:>14} {:>10} {:>12} {:>10}",
        "query", "fused ev/s", "unfused ev/s", "fused/unf", "fused/floor", "peak MiB"
    );
    println!(
        "{:<24} {:>14.0} {:>14} {:>10} {:>12} {:>10}",
        "generator alone",
        n / floor,
        "-",
        "-",
        "1.00",
        mem(floor_mem)
    );
    let mut checkpointed = Vec::new();
    let mut served = Vec::new();
    for (i, (q, fused, unfused)) in rows.iter().enumerate() {
        let (tf, peak) = time(fused, &args)?;
        if let Some(with_http) = http_bins.get(i) {
            served.push((q.clone(), time_http(fused, with_http, &args)?));
        }
        if let Some(interval) = &args.checkpoint_interval {
            let dir = std::env::temp_dir().join(format!("weir-bench-chk-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let extra = [
                "--checkpoint-dir".to_string(),
                dir.display().to_string(),
                "--checkpoint-interval".to_string(),
                interval.clone(),
            ];
            let t = time_with(fused, &args, &extra)?;
            let _ = std::fs::remove_dir_all(&dir);
            checkpointed.push((q.clone(), tf, t));
        }
        match unfused {
            Some(unfused) => {
                let (tu, _) = time(unfused, &args)?;
                println!(
                    "{:<24} {:>14.0} {:>14.0} {:>10.2} {:>12.2} {:>10}",
                    q,
                    n / tf,
                    n / tu,
                    tu / tf,
                    floor / tf,
                    mem(peak)
                );
            }
            None => println!(
                "{:<24} {:>14.0} {:>14} {:>10} {:>12.2} {:>10}",
                q,
                n / tf,
                "-",
                "-",
                floor / tf,
                mem(peak)
            ),
        }
    }
    if let Some(interval) = &args.checkpoint_interval {
        println!();
        println!(
            "{:<24} {:>14} {:>12} {:>12} {:>14}",
            format!("checkpoints every {interval}"),
            "ev/s",
            "vs plain",
            "completed",
            "last size MiB"
        );
        for (q, plain, t) in &checkpointed {
            let (n_done, bytes) = t.checkpoints.unwrap_or((0, 0));
            println!(
                "{:<24} {:>14.0} {:>12.2} {:>12} {:>14.2}",
                q,
                n / t.seconds,
                plain / t.seconds,
                n_done,
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    if args.http {
        println!();
        println!(
            "{:<24} {:>14} {:>14} {:>12} {:>8}",
            "with --http, read 1/s", "plain ev/s", "served ev/s", "served/plain", "reads"
        );
        for (q, (plain, with, reads)) in &served {
            println!(
                "{:<24} {:>14.0} {:>14.0} {:>12.3} {:>8}",
                q,
                n / plain,
                n / with,
                plain / with,
                reads
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
