//! Helpers for weir's end-to-end tests: compile a pipeline text through the real compiler and
//! driver (cargo, shared cache), run the binary, and read its output.
//!
//! The tests compare what generated pipelines produce with independent oracles written in the
//! tests themselves (plain Rust over the same input), never with weir's own evaluation, and,
//! for windowed queries, with DuckDB SQL over the same events written to files ([`duckdb`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use weir_compiler::driver::{self, BuildConfig};
use weir_compiler::{Options, SourceMap};

pub mod avro;
pub mod duckdb;
pub mod kafka;
pub mod postgres;
pub mod running;
pub mod s3;

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Reads a file under `examples/`.
pub fn example(path: &str) -> String {
    let full = workspace().join("examples").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// Compiles `text` and builds its binary. `name` must be unique per test (it names the crate).
pub fn build(name: &str, text: &str, no_fusion: bool) -> PathBuf {
    build_with(name, text, no_fusion, false, false, false)
}

/// [`build`] with the runtime's HTTP endpoint compiled in (`weir build --http`).
pub fn build_http(name: &str, text: &str) -> PathBuf {
    build_with(name, text, false, true, false, false)
}

/// [`build`] with checkpoints on object storage compiled in (`weir build --object-store`).
pub fn build_object_store(name: &str, text: &str) -> PathBuf {
    build_with(name, text, false, false, true, false)
}

/// [`build`] with the disk state backend compiled in (`weir build --state-disk`).
pub fn build_state_disk(name: &str, text: &str) -> PathBuf {
    build_with(name, text, false, false, false, true)
}

/// [`build_state_disk`] with the system's allocator instead of mimalloc
/// (`WEIR_SYSTEM_ALLOCATOR=1`).
pub fn build_state_disk_system_allocator(name: &str, text: &str) -> PathBuf {
    build_configured(name, text, false, |config| {
        config.state_disk = true;
        config.system_allocator = true;
    })
}

fn build_with(
    name: &str,
    text: &str,
    no_fusion: bool,
    http: bool,
    object_store: bool,
    state_disk: bool,
) -> PathBuf {
    build_configured(name, text, no_fusion, |config| {
        config.http = http;
        config.object_store = object_store;
        config.state_disk = state_disk;
    })
}

fn build_configured(
    name: &str,
    text: &str,
    no_fusion: bool,
    configure: impl FnOnce(&mut BuildConfig),
) -> PathBuf {
    let mut sources = SourceMap::new();
    let id = sources.add(format!("{name}.weir"), text.to_string());
    let compiled = match weir_compiler::compile(
        &sources,
        id,
        &Options {
            no_fusion,
            ..Options::default()
        },
    ) {
        Ok(c) => c,
        Err(diags) => panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &diags, false)
        ),
    };
    let suffix = if no_fusion { "_unfused" } else { "" };
    let mut config = BuildConfig::from_env().expect("a cache directory");
    configure(&mut config);
    let built = driver::build(&compiled.rust, &format!("test_{name}{suffix}"), &config)
        .unwrap_or_else(|e| panic!("{e}"));
    built.binary
}

/// What a pipeline run printed.
#[derive(Debug)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
    /// The exit code (none: killed by a signal).
    pub code: Option<i32>,
}

/// Runs a built pipeline in `cwd` with `args`, feeding `stdin`.
pub fn run(binary: &Path, args: &[&str], cwd: &Path, stdin: Option<&str>) -> RunOutput {
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_string();
        // Write from a thread so a pipeline that fills its stdout cannot deadlock the test.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    // Read both pipes from threads, so that a run that hangs can be killed and reported
    // instead of hanging the suite.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let status = loop {
        let polled = child.try_wait().unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("cannot read the status of {}: {e}", binary.display())
        });
        match polled {
            Some(status) => break status,
            None if started.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {args:?} did not finish within {RUN_TIMEOUT:?} (killed); it printed:\n{}",
                    binary.display(),
                    stderr.join().unwrap_or_default()
                );
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    RunOutput {
        stdout: stdout.join().expect("stdout is read"),
        stderr: stderr.join().expect("stderr is read"),
        success: status.success(),
        code: status.code(),
    }
}

/// How long [`run`] waits for a pipeline before it kills it and fails the test: far beyond
/// any test's run (the longest take a minute), so that a hang fails one test instead of
/// holding the suite until CI's own limit.
pub const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

/// Parses JSON lines, skipping the `checksum ...` lines checksum sinks print.
pub fn json_rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A keyed tumbling window over `bids.jsonl` (see [`window_bids`]) into `out.jsonl`: the
/// pipeline the fault and split tests kill, restart and compare.
pub const WINDOW_PIPELINE: &str = r#"
schema Bid { auction: i64, price: i64, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 1s
let w = bids
    |> key_by auction
    |> window tumble(5s)
    |> aggregate { n: count(), top: max(price) }
sink w -> file(path: "out.jsonl")
"#;

/// `n` bid lines for [`WINDOW_PIPELINE`], 10 ms apart; with `bad_every > 0`, every
/// `bad_every`-th line is malformed (a dead letter).
pub fn window_bids(n: i64, bad_every: i64) -> String {
    let mut text = String::new();
    for i in 0..n {
        if bad_every > 0 && i % bad_every == bad_every - 1 {
            text.push_str(&format!("{{\"auction\":\"broken-{i}\"}}\n"));
            continue;
        }
        text.push_str(&format!(
            "{{\"auction\":{},\"price\":{},\"ts\":{}}}\n",
            i % 50,
            (i * 7) % 1000 + 20,
            1_700_000_000_000 + i * 10
        ));
    }
    text
}

/// The dead letters in `dir/dead_letters.jsonl` (none if it does not exist): line number to
/// reason.
pub fn dead_letter_reasons(dir: &Path) -> std::collections::BTreeMap<u64, String> {
    std::fs::read_to_string(dir.join("dead_letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let line = v["line"].as_u64().unwrap();
            (line, v["reason"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The `rows=N checksum=X` of the first checksum line.
pub fn checksum_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("checksum "))
        .and_then(|l| l.split_once(": "))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no checksum line in {stdout:?}"))
}

/// Replaces every `-> checksum()` sink with JSON on stdout.
pub fn to_stdout(text: &str) -> String {
    text.replace("-> checksum()", "-> stdout() format json")
}

/// `yyyy-MM-dd HH:mm:ss.SSS` for epoch milliseconds: an oracle independent of weir's own
/// formatting (Howard Hinnant's civil-from-days algorithm, written out here).
pub fn format_ts(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// The lines of a file, sorted (outputs whose order depends on parallel instances).
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The id of the newest complete checkpoint in a checkpoint folder (0: none).
pub fn newest_checkpoint(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("MANIFEST").exists())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("chk-")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Starts `binary` in `cwd` with `args`, its input and output thrown away (runs that are
/// killed: only their files count).
fn spawn_silent(binary: &Path, cwd: &Path, args: &[&str]) -> std::process::Child {
    Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// Starts `binary` in `cwd` with `args` and kills it (SIGKILL) once its checkpoint folder
/// `cwd/chk` holds checkpoint `at_least` or a newer one.
pub fn kill_at_checkpoint(binary: &Path, cwd: &Path, args: &[&str], at_least: u64) {
    kill_at_checkpoint_in(binary, cwd, args, at_least, || {
        newest_checkpoint(&cwd.join("chk"))
    })
}

/// [`kill_at_checkpoint`] for checkpoints anywhere: `newest` says the newest complete one.
pub fn kill_at_checkpoint_in(
    binary: &Path,
    cwd: &Path,
    args: &[&str],
    at_least: u64,
    newest: impl Fn() -> u64,
) {
    let mut child = spawn_silent(binary, cwd, args);
    let started = std::time::Instant::now();
    while newest() < at_least {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no checkpoint {at_least} in 60 s"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the run ended before checkpoint {at_least}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the run ended before it could be killed (a slow machine? give it more input)"
    );
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// A small deterministic generator (xorshift64*) for kill times and test data.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Starts `binary` in `cwd` with `args` again and again, killing each run with SIGKILL after
/// `delay()`, until `kills` kills have landed or a run ends before its kill (it had nothing
/// left to do). Returns the kills that landed; the caller then lets a last run finish.
pub fn kill_repeatedly(
    binary: &Path,
    cwd: &Path,
    args: &[&str],
    kills: usize,
    mut delay: impl FnMut() -> std::time::Duration,
) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let mut landed = 0;
    while landed < kills {
        assert!(
            std::time::Instant::now() < deadline,
            "the kill loop took too long"
        );
        let mut child = spawn_silent(binary, cwd, args);
        std::thread::sleep(delay());
        if child.try_wait().expect("poll").is_some() {
            break; // finished before this kill
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        landed += 1;
    }
    landed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_timestamps() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_ts(1_436_918_400_000), "2015-07-15 00:00:00.000");
        assert_eq!(format_ts(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(format_ts(-1), "1969-12-31 23:59:59.999");
    }
}

/// One input line of [`ttl_events`].
#[derive(Clone, Debug)]
pub struct TtlEvent {
    pub id: i64,
    pub price: i64,
    pub ts: i64,
}

/// The pipeline the TTL tests run over `events.jsonl` (see [`ttl_events`]): per id, the
/// first row, the two highest prices and the count and sum of prices, each with a 10 s TTL,
/// into `first.jsonl`, `top.jsonl` and `sums.jsonl` (final tables).
pub const TTL_PIPELINE: &str = r#"
schema E { id: i64, price: i64, ts: timestamp }
source e: E = file(path: "events.jsonl", parallelism: 1) format json
    event_time ts watermark 1s
sink e |> dedup by id keep first ttl(10s) -> file(path: "first.jsonl")
sink e |> top 2 by id order by price desc ttl(10s) -> file(path: "top.jsonl")
sink e |> aggregate by id { n: count(), total: sum(price) } ttl(10s) -> file(path: "sums.jsonl")
"#;

/// Events in event-time order for [`TTL_PIPELINE`]: each of `ids` ids comes in generations,
/// one to four records within 10 s of the generation's start, and the next generation starts
/// 30 to 50 s after that start. With the 10 s TTL a generation's key state (last written at
/// most 10 s after its start) always expires before the next generation's first record,
/// whatever the moments watermarks are sent (the watermark trails the newest time by 1 s plus
/// at most the 256 records between two watermarks, about 2 s of event time with 2000 ids),
/// and never within a generation (a record at `t` sees a watermark of at most `t - 1s`), so
/// the expected output does not depend on timing. Returns the events and the file's lines.
pub fn ttl_events(ids: i64, seconds: i64) -> (Vec<TtlEvent>, String) {
    let mut rng = Rng(0x7717_u64);
    let base = 1_700_000_000_000i64;
    let mut events = Vec::new();
    for id in 0..ids {
        let mut start = rng.below(30_000) as i64;
        while start < seconds * 1000 {
            for _ in 0..=rng.below(4) {
                events.push(TtlEvent {
                    id,
                    price: rng.below(1_000_000) as i64,
                    ts: base + start + rng.below(10_001) as i64,
                });
            }
            start += 30_000 + rng.below(20_001) as i64;
        }
    }
    events.sort_by_key(|e| (e.ts, e.id));
    let text: String = events
        .iter()
        .map(|e| {
            format!(
                "{{\"id\":{},\"price\":{},\"ts\":{}}}\n",
                e.id, e.price, e.ts
            )
        })
        .collect();
    (events, text)
}

/// The final tables [`TTL_PIPELINE`] must write for `events` (a naive reference: a generation
/// is the records of an id at most 10 s after its first one),
/// as sorted JSON lines: (first rows, top rows), and the number of generations in all.
pub fn ttl_expected(events: &[TtlEvent]) -> (Vec<String>, Vec<String>, usize) {
    use std::collections::BTreeMap;
    // id -> generations, each its records in arrival order.
    let mut gens: BTreeMap<i64, Vec<Vec<&TtlEvent>>> = BTreeMap::new();
    for e in events {
        let list = gens.entry(e.id).or_default();
        match list.last_mut() {
            Some(g) if e.ts - g[0].ts <= 10_000 => g.push(e),
            _ => list.push(vec![e]),
        }
    }
    let row = |e: &TtlEvent| {
        serde_json::json!({"id": e.id, "price": e.price, "ts": format_ts(e.ts)}).to_string()
    };
    let mut first = Vec::new();
    let mut top = Vec::new();
    let mut n_gens = 0;
    for list in gens.values() {
        n_gens += list.len();
        // Dedup: the last generation's first record replaced every earlier row.
        first.push(row(list.last().expect("a generation")[0]));
        // Top 2: each rank holds the row of the last generation that filled it.
        let mut ranks: BTreeMap<usize, &TtlEvent> = BTreeMap::new();
        for g in list {
            let mut best = g.clone();
            // Price descending; equal prices keep arrival order.
            best.sort_by_key(|e| std::cmp::Reverse(e.price));
            for (i, e) in best.into_iter().take(2).enumerate() {
                ranks.insert(i + 1, e);
            }
        }
        for (rank, e) in ranks {
            top.push(
                serde_json::json!({"id": e.id, "price": e.price, "ts": format_ts(e.ts), "rank": rank})
                    .to_string(),
            );
        }
    }
    first.sort();
    top.sort();
    (first, top, n_gens)
}

/// The final table of [`TTL_PIPELINE`]'s aggregate for `events`, as sorted JSON lines: per
/// id, the count and sum of its last generation (a generation as in [`ttl_expected`]: each
/// starts a fresh aggregate, whose row replaces the earlier one).
pub fn ttl_expected_sums(events: &[TtlEvent]) -> Vec<String> {
    use std::collections::BTreeMap;
    // id -> (first time of the generation, count, sum)
    let mut live: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for e in events {
        let g = live.entry(e.id).or_insert((e.ts, 0, 0));
        if e.ts - g.0 > 10_000 {
            *g = (e.ts, 0, 0);
        }
        g.1 += 1;
        g.2 += e.price;
    }
    let mut rows: Vec<String> = live
        .iter()
        .map(|(id, (_, n, total))| {
            serde_json::json!({"id": id, "n": n, "total": total}).to_string()
        })
        .collect();
    rows.sort();
    rows
}
