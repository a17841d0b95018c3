//! `weir bench --input json|csv|both`: throughput of pipelines reading Nexmark bids from files.
//!
//! A weir pipeline over the Nexmark generator first writes the bids as JSON lines and as CSV
//! into a temporary folder; then four pipelines read each file (pass-through to part files,
//! one per reader, filter+project, tumbling max, hop count per key), next to the floor: the
//! same file read with a 1 MiB buffer and split into lines (`memchr`), nothing decoded, in
//! this process.
//! With `--readers N` each pipeline also runs with N readers of its file (`--parallelism N`:
//! one byte range each), and the speed-up over one reader is printed.
//! Every number comes from the same run, so the ratios to the floor hold on a noisy machine.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::bench::build;

/// Which file formats the file-input benchmark reads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Json,
    Csv,
    Both,
}

/// What the file-input benchmark was asked to do.
pub struct FileBench {
    pub input: InputFormat,
    /// Bids written to each input file.
    pub records: u64,
    /// Runs per configuration; the best (wall time) is reported.
    pub repeat: u32,
    /// Keep the temporary folder (input files and the pass-through output).
    pub keep_files: bool,
    /// Readers of the file (`--parallelism`) of a second run of each pipeline (1: none).
    pub readers: u32,
}

/// One input format: the file the generator writes and the clause that reads or writes it.
struct Format {
    name: &'static str,
    file: &'static str,
    clause: &'static str,
    /// Lines before the first record.
    header_lines: u64,
}

const JSON: Format = Format {
    name: "json",
    file: "bids.jsonl",
    clause: "format json",
    header_lines: 0,
};

const CSV: Format = Format {
    name: "csv",
    file: "bids.csv",
    clause: "format csv(header: true)",
    header_lines: 1,
};

/// The Nexmark bid's seven fields, as read from a file.
const SCHEMA: &str = "schema Bid { auction: i64, bidder: i64, price: i64, channel: string, \
url: string, date_time: timestamp, extra: string }";

/// The pipelines: name, whether they need event time, and their sink (`{format}` and
/// `{ext}` are replaced by the input's format clause and file extension).
const PIPELINES: [(&str, bool, &str); 4] = [
    (
        "pass-through",
        false,
        "sink bids -> file(path: \"out-{ext}\", parts: true) {format}",
    ),
    (
        "filter+project",
        false,
        "sink bids |> filter auction % 123 = 0 |> select { auction, price } -> checksum()",
    ),
    (
        "tumble max",
        true,
        "sink bids |> window tumble(10s) |> aggregate { top: max(price) } -> checksum()",
    ),
    (
        "hop count/key",
        true,
        "sink bids |> key_by auction |> window hop(size: 10s, slide: 2s) \
         |> aggregate { n: count() } -> checksum()",
    ),
];

/// The text of pipeline `sink` reading `format`'s file.
fn pipeline_text(format: &Format, event_time: bool, sink: &str) -> String {
    let ext = format.file.rsplit('.').next().unwrap_or("out");
    let event_time = if event_time {
        "\n    event_time date_time watermark 4s"
    } else {
        ""
    };
    format!(
        "// weir bench: file input\n{SCHEMA}\n\
         source bids: Bid = file(path: \"{}\") {}{event_time}\n{}\n",
        format.file,
        format.clause,
        sink.replace("{ext}", ext)
            .replace("{format}", format.clause)
    )
}

/// Generator events holding exactly `bids` bids: ids `mod 50` in `4..=49` are bids.
pub(super) fn events_for(bids: u64) -> u64 {
    let (cycles, rest) = (bids / 46, bids % 46);
    cycles * 50 + if rest > 0 { rest + 4 } else { 0 }
}

/// CPU time (user + system, seconds) of this process or of its waited-for children.
pub(super) fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One measured run: wall seconds and CPU seconds.
#[derive(Clone, Copy)]
pub(super) struct Measured {
    pub(super) wall: f64,
    pub(super) cpu: f64,
}

/// Runs `binary` in `dir` with `args` to its end: its wall and CPU time, and its stderr. A
/// run that fails is an error carrying that stderr.
pub(super) fn run_timed(binary: &Path, dir: &Path, args: &[&str]) -> Result<(Measured, String)> {
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    let out = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("{} failed: {}\n{stderr}", binary.display(), out.status);
    }
    Ok((Measured { wall, cpu }, stderr))
}

/// Runs a pipeline binary in `dir` to its end with `readers` readers of its input file; wall
/// time and the child's CPU time.
fn run_pipeline(binary: &Path, dir: &Path, readers: u32) -> Result<Measured> {
    let (measured, stderr) = run_timed(binary, dir, &["--parallelism", &readers.to_string()])?;
    // A rejected line would make the figures those of a different input.
    let dead = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("dead letters: "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if dead > 0 {
        bail!("{} sent {dead} lines to dead letters", binary.display());
    }
    Ok(measured)
}

/// The floor: reads `path` with a 1 MiB buffer and finds every line end; returns the lines.
fn split_lines(path: &Path) -> Result<(u64, Measured)> {
    let cpu_before = cpu_seconds(libc::RUSAGE_SELF);
    let started = Instant::now();
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu_before;
    Ok((lines, Measured { wall, cpu }))
}

/// The best of `repeat` runs by wall time.
fn best(repeat: u32, mut once: impl FnMut() -> Result<Measured>) -> Result<Measured> {
    let mut best: Option<Measured> = None;
    for _ in 0..repeat.max(1) {
        let m = once()?;
        if best.is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    Ok(best.expect("at least one run"))
}

/// A temporary folder removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("weir bench: files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(bench: &FileBench) -> Result<ExitCode> {
    let formats: Vec<Format> = match bench.input {
        InputFormat::Json => vec![JSON],
        InputFormat::Csv => vec![CSV],
        InputFormat::Both => vec![JSON, CSV],
    };
    let dir = TempDir {
        path: std::env::temp_dir().join(format!("weir-bench-files-{}", std::process::id())),
        keep: bench.keep_files,
    };
    std::fs::create_dir_all(&dir.path)
        .with_context(|| format!("cannot create {}", dir.path.display()))?;

    // Paths are relative and every binary runs in the folder, so the texts (and the cached
    // binaries) do not depend on where the folder is.
    eprintln!("weir bench: building the generator and the pipelines...");
    let mut generator =
        String::from("// weir bench: bids to files\nsource bids = nexmark(stream: \"bid\")\n");
    for format in &formats {
        generator.push_str(&format!(
            "sink bids -> file(path: \"{}\") {}\n",
            format.file, format.clause
        ));
    }
    let generator_name = format!("files_generator_{}", formats.len());
    let generator_bin = build(&generator_name, &generator, false)?;
    let mut binaries = Vec::new();
    for format in &formats {
        for (pipeline_idx, (_, event_time, sink)) in PIPELINES.iter().enumerate() {
            let text = pipeline_text(format, *event_time, sink);
            let name = format!("files_{}_{pipeline_idx}", format.name);
            binaries.push(build(&name, &text, false)?);
        }
    }

    eprintln!(
        "weir bench: writing {} bids as {} into {}...",
        bench.records,
        formats
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(" and "),
        dir.path.display()
    );
    let started = Instant::now();
    let out = Command::new(&generator_bin)
        .args(["--events", &events_for(bench.records).to_string()])
        .current_dir(&dir.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", generator_bin.display()))?;
    if !out.status.success() {
        bail!(
            "writing the input files failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "weir bench: input written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!(
        "{:<6} {:<20} {:>12} {:>10} {:>10} {:>9} {:>12} {:>8}",
        "input", "pipeline", "records", "events/s", "MB/s", "CPU s", "MB/s/CPU-s", "/floor"
    );
    let mut binaries = binaries.into_iter();
    let mut sizes = Vec::new();
    let mut speedups = Vec::new();
    for format in &formats {
        let input = dir.path.join(format.file);
        let bytes = std::fs::metadata(&input)
            .with_context(|| format!("cannot read {}", input.display()))?
            .len() as f64;
        let mut lines = 0;
        let floor = best(bench.repeat, || {
            let (n, m) = split_lines(&input)?;
            lines = n;
            Ok(m)
        })?;
        let records = lines.saturating_sub(format.header_lines);
        if records != bench.records {
            bail!(
                "{} holds {records} records, not {}",
                input.display(),
                bench.records
            );
        }
        sizes.push(format!(
            "input {}: {:.1} MB, {:.0} bytes a record",
            format.name,
            bytes / 1e6,
            bytes / records.max(1) as f64
        ));
        let floor_mbs = bytes / floor.wall / 1e6;
        let row = |name: &str, m: Measured| {
            println!(
                "{:<6} {:<20} {:>12} {:>10.0} {:>10.1} {:>9.4} {:>12.1} {:>8.3}",
                format.name,
                name,
                records,
                records as f64 / m.wall,
                bytes / m.wall / 1e6,
                m.cpu,
                bytes / m.cpu.max(1e-6) / 1e6,
                (bytes / m.wall / 1e6) / floor_mbs
            );
        };
        row("floor (lines)", floor);
        for (name, _, _) in PIPELINES {
            let binary = binaries.next().expect("one binary per pipeline and format");
            let one = best(bench.repeat, || run_pipeline(&binary, &dir.path, 1))?;
            row(name, one);
            if bench.readers > 1 {
                let many = best(bench.repeat, || {
                    run_pipeline(&binary, &dir.path, bench.readers)
                })?;
                row(&format!("{name} x{}", bench.readers), many);
                speedups.push(format!(
                    "{} {name}: {:.2}x with {} readers",
                    format.name,
                    one.wall / many.wall,
                    bench.readers
                ));
            }
        }
        // The pass-through's output (a part file per reader) is as large as its input: do
        // not keep it around.
        let _ = std::fs::remove_dir_all(dir.path.join(format!(
            "out-{}",
            format.file.rsplit('.').next().unwrap_or("out")
        )));
    }
    for size in sizes {
        println!("{size}");
    }
    for speedup in speedups {
        println!("speed-up {speedup} (wall time of one reader / of several, same run)");
    }
    println!(
        "(MB = 10^6 bytes of input; the floor reads the file with a 1 MiB buffer and finds \
         its line ends, nothing decoded, in the bench's own process)"
    );
    Ok(ExitCode::SUCCESS)
}
