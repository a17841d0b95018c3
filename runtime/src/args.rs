//! The command line every generated pipeline binary accepts: [`RunArgs`], its parsing and
//! its usage text. [`crate::run`] turns the parsed options into a run.

use std::path::PathBuf;

/// Options every generated binary accepts.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// Overrides the number of events of every Nexmark source.
    pub events: Option<u64>,
    /// Overrides the number of generator splits of every Nexmark source.
    pub generators: Option<u32>,
    /// Instances of keyed operators and Kafka source consumers; default: the largest source
    /// parallelism (Kafka: the pipeline's `parallelism:`, else 1).
    pub parallelism: Option<usize>,
    pub dead_letters: Option<PathBuf>,
    /// After this long without a message, an upstream instance stops holding watermarks back.
    pub idle_timeout: Option<std::time::Duration>,
    /// How soon buffered output reaches stdout and files when input trickles, and how often
    /// an idle source wakes up (see [`crate::tick`]).
    pub flush_interval: std::time::Duration,
    /// No summary and no progress line on stderr.
    pub quiet: bool,
    /// Where checkpoints go; none: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_interval: std::time::Duration,
    pub checkpoints_kept: usize,
    /// Operators with large keyed state write what changed since the last checkpoint
    /// (a delta) between full parts (`--checkpoint-incremental true|false`, default true).
    pub checkpoint_incremental: bool,
    /// How much of a checkpoint part is held in memory before it is written out
    /// (`--checkpoint-buffer`, default 4 MiB).
    pub checkpoint_buffer: usize,
    /// Records (generator: events) per second of each source (0: unlimited).
    pub rate_limit: u64,
    /// librdkafka properties for every Kafka source and sink (`--kafka-property key=value`,
    /// repeatable), applied after the pipeline's own `properties:`.
    pub kafka_properties: Vec<(String, String)>,
    /// A Kafka source that has received nothing for this long, once it has joined its
    /// group, ends (bounded runs, tests).
    pub kafka_stop_after_idle: Option<std::time::Duration>,
    /// Run as a scale-out supervisor: join the Kafka group and run one task (a child process)
    /// per assigned partition, with its checkpoints in `checkpoint_dir/partition-N`
    /// (see [`crate::scale_out`]).
    pub scale_out: bool,
    /// Set by the supervisor in the task it starts: the partition this process reads, and the
    /// supervisor's process id (the task dies with it).
    pub task_partition: Option<i32>,
    pub task_parent: Option<u32>,
    /// A preview build (`weir run FILE --limit N`): each sink prints its first N rows, and the
    /// run stops once every sink has (see [`crate::sinks::preview`]).
    pub limit: Option<u64>,
    /// How messages are printed on stderr (`--log-format text|json`).
    pub log_format: crate::log::LogFormat,
    /// The end-of-run summary as one JSON object instead of the table (`--summary json`).
    pub summary_json: bool,
    /// Serve `/metrics` and `/api/pipeline` on this address while the run goes on (see
    /// [`crate::http`]); none: no endpoint, and no thread for it.
    pub http: Option<String>,
    /// Where keyed state lives (`--state memory|disk`).
    pub state: StateBackend,
    /// With `--state disk`: the folder of the spill store (`--state-dir`; default: the
    /// system's temporary folder).
    pub state_dir: Option<PathBuf>,
    /// With `--state disk`: the memory budget of keyed state in bytes (`--state-memory`).
    pub state_memory: u64,
    /// An embedded run: the handle that follows its metrics (see [`crate::embed::Watch`]).
    pub watch: Option<crate::embed::Watch>,
}

/// Where keyed state lives (see [`crate::keyed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateBackend {
    Memory,
    Disk,
}

/// The default of `--state-memory`.
pub const DEFAULT_STATE_MEMORY: u64 = 256 << 20;

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            events: None,
            generators: None,
            parallelism: None,
            dead_letters: None,
            idle_timeout: None,
            flush_interval: crate::tick::DEFAULT_FLUSH_INTERVAL,
            quiet: false,
            checkpoint_dir: None,
            checkpoint_interval: std::time::Duration::from_secs(10),
            checkpoints_kept: 3,
            checkpoint_incremental: true,
            checkpoint_buffer: crate::checkpoint::spill::SPILL_AT,
            rate_limit: 0,
            kafka_properties: Vec::new(),
            kafka_stop_after_idle: None,
            scale_out: false,
            task_partition: None,
            task_parent: None,
            limit: None,
            http: None,
            watch: None,
            log_format: crate::log::LogFormat::Text,
            summary_json: false,
            state: StateBackend::Memory,
            state_dir: None,
            state_memory: DEFAULT_STATE_MEMORY,
        }
    }
}

const USAGE: &str = "options:
  --events N          events of every nexmark source (overrides the pipeline)
  --generators G      generator splits of every nexmark source
  --parallelism P     instances of keyed operators (and consumers of kafka sources)
  --dead-letters PATH where malformed input records go, for every source (default:
                      a source's `dead_letters:`, else dead_letters.jsonl)
  --idle-timeout MS   an input silent this long (ms) stops holding event time back
  --flush-interval TIME        write out buffered output (stdout, files) this often while
                               input trickles or pauses: 100ms (default), 1s, 5ms
  --checkpoint-dir DIR         take checkpoints in DIR; restart from the latest one there
                               (a folder, file:///abs/path, or s3://bucket/prefix in a
                               binary built with `weir build --object-store`)
  --checkpoint-interval TIME   time between checkpoints: 10s (default), 500ms, 2m, 1h;
                               needs --checkpoint-dir
  --checkpoints-kept K         complete checkpoints kept (default 3)
  --checkpoint-incremental true|false
                               joins and top-N write only what changed since
                               the last checkpoint, with a full copy at times
                               (default true); false: every checkpoint is full
  --checkpoint-buffer SIZE     memory an operator's checkpoint part may take: past it
                               the part is written out as it is saved, and mapped
                               from its file on restore: 4MiB (default)
  --rate-limit N      records per second of each source (default: unlimited)
  --kafka-property K=V
                      a librdkafka property for every kafka source and sink (repeatable)
  --kafka-stop-after-idle MS
                      a kafka source ends after MS ms without a message, once it
                      has read every partition to its end (bounded runs)
  --scale-out         run one task per kafka partition the consumer group assigns this
                      process, each with its checkpoints in DIR/partition-N, so that
                      several processes share the partitions and their state
                      (needs --checkpoint-dir on a folder every process sees, or s3://)
  --limit N           (a preview build: `weir run FILE --limit N`) each sink prints its
                      first N rows, and the run stops once every sink has
  --http ADDR         serve Prometheus metrics (/metrics) and a JSON view of the run
                      (/api/pipeline) on ADDR while it runs, e.g. 127.0.0.1:9464;
                      port 0 picks a free port (said on stderr); POST /checkpoint
                      takes a checkpoint now, POST /stop stops after a last one
  --state B          where keyed state (joins) lives: `memory` (default) or `disk`,
                      which keeps the recently used keys in memory and spills the
                      others to an on-disk LSM store (a binary built with
                      `weir build --state-disk`)
  --state-dir DIR     the folder of the disk store (default: the temporary folder);
                      scratch space, removed at the end: checkpoints hold the state
  --state-memory SIZE memory for keyed state with `--state disk`: 256MiB (default),
                      1GiB, 64MiB
  --log-format F      messages on stderr as `text` (default: weir: ... lines) or
                      `json` (one JSON object per line)
  --summary F         the run summary at the end as `text` (a table; the default
                      unless --log-format json) or `json` (one JSON object on a
                      line of its own, on stderr)
  --quiet             no run summary on stderr, and no progress line (which is drawn
                      on stderr only when it is a terminal)
  --help              this text";

impl RunArgs {
    /// These options, with `watch` following the run's metrics (an embedded run; see
    /// [`crate::embed::Watch`]).
    pub fn watched(mut self, watch: &crate::embed::Watch) -> Self {
        self.watch = Some(watch.clone());
        self
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<RunArgs, String> {
        let mut out = RunArgs::default();
        let mut summary_given = false;
        // Checkpoint settings given without a folder would be ignored: refused instead.
        let mut checkpoint_setting: Option<&'static str> = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--events" => out.events = Some(parse_num(&value("--events")?, "--events")?),
                "--generators" => {
                    let g: u64 = parse_num(&value("--generators")?, "--generators")?;
                    if g == 0 || g > 1024 {
                        return Err("--generators must be between 1 and 1024".into());
                    }
                    out.generators = Some(g as u32);
                }
                "--parallelism" => {
                    let p: u64 = parse_num(&value("--parallelism")?, "--parallelism")?;
                    if p == 0 || p > 1024 {
                        return Err("--parallelism must be between 1 and 1024".into());
                    }
                    out.parallelism = Some(p as usize);
                }
                "--dead-letters" => {
                    out.dead_letters = Some(PathBuf::from(value("--dead-letters")?))
                }
                "--idle-timeout" => {
                    let ms: u64 = parse_num(&value("--idle-timeout")?, "--idle-timeout")?;
                    out.idle_timeout = Some(std::time::Duration::from_millis(ms.max(1)));
                }
                "--flush-interval" => {
                    out.flush_interval =
                        parse_duration(&value("--flush-interval")?, "--flush-interval")?;
                }
                "--checkpoint-dir" => {
                    out.checkpoint_dir = Some(PathBuf::from(value("--checkpoint-dir")?))
                }
                "--checkpoint-interval" => {
                    checkpoint_setting = Some("--checkpoint-interval");
                    out.checkpoint_interval =
                        parse_duration(&value("--checkpoint-interval")?, "--checkpoint-interval")?
                }
                "--checkpoints-kept" => {
                    checkpoint_setting = Some("--checkpoints-kept");
                    let k: u64 = parse_num(&value("--checkpoints-kept")?, "--checkpoints-kept")?;
                    if k < 2 {
                        return Err("--checkpoints-kept must be at least 2 (a restart may need \
                                    the checkpoint before the newest)"
                            .into());
                    }
                    out.checkpoints_kept = k as usize;
                }
                "--checkpoint-incremental" => {
                    checkpoint_setting = Some("--checkpoint-incremental");
                    out.checkpoint_incremental = match value("--checkpoint-incremental")?.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(format!(
                                "--checkpoint-incremental takes true or false, not `{other}`"
                            ))
                        }
                    };
                }
                "--checkpoint-buffer" => {
                    checkpoint_setting = Some("--checkpoint-buffer");
                    let size = parse_size(&value("--checkpoint-buffer")?, "--checkpoint-buffer")?;
                    out.checkpoint_buffer = usize::try_from(size.max(1)).unwrap_or(usize::MAX);
                }
                "--rate-limit" => {
                    out.rate_limit = parse_num(&value("--rate-limit")?, "--rate-limit")?
                }
                "--kafka-property" => {
                    let pair = value("--kafka-property")?;
                    match pair.split_once('=') {
                        Some((key, v)) if !key.trim().is_empty() => out
                            .kafka_properties
                            .push((key.trim().to_string(), v.trim().to_string())),
                        _ => {
                            return Err(format!(
                                "--kafka-property: `{pair}` is not of the form key=value"
                            ))
                        }
                    }
                }
                "--kafka-stop-after-idle" => {
                    let flag = "--kafka-stop-after-idle";
                    let ms: u64 = parse_num(&value(flag)?, flag)?;
                    out.kafka_stop_after_idle = Some(std::time::Duration::from_millis(ms.max(1)));
                }
                "--scale-out" => out.scale_out = true,
                "--task-partition" => {
                    let p: u64 = parse_num(&value("--task-partition")?, "--task-partition")?;
                    out.task_partition = Some(
                        i32::try_from(p)
                            .map_err(|_| "--task-partition is too large".to_string())?,
                    );
                }
                "--task-parent" => {
                    let pid: u64 = parse_num(&value("--task-parent")?, "--task-parent")?;
                    out.task_parent = Some(
                        u32::try_from(pid).map_err(|_| "--task-parent is too large".to_string())?,
                    );
                }
                "--limit" => {
                    let n: u64 = parse_num(&value("--limit")?, "--limit")?;
                    if n == 0 {
                        return Err("--limit must be at least 1".into());
                    }
                    out.limit = Some(n);
                }
                "--http" => {
                    let addr = value("--http")?;
                    if addr.parse::<std::net::SocketAddr>().is_err() {
                        return Err(format!(
                            "--http: `{addr}` is not an address like 127.0.0.1:9464 or \
                             0.0.0.0:9464 (port 0: any free port)"
                        ));
                    }
                    out.http = Some(addr);
                }
                "--log-format" => {
                    out.log_format = match value("--log-format")?.as_str() {
                        "text" => crate::log::LogFormat::Text,
                        "json" => crate::log::LogFormat::Json,
                        other => {
                            return Err(format!("--log-format: `{other}` is not `text` or `json`"))
                        }
                    }
                }
                "--summary" => {
                    summary_given = true;
                    out.summary_json = match value("--summary")?.as_str() {
                        "text" => false,
                        "json" => true,
                        other => {
                            return Err(format!("--summary: `{other}` is not `text` or `json`"))
                        }
                    }
                }
                "--state" => {
                    out.state = match value("--state")?.as_str() {
                        "memory" => StateBackend::Memory,
                        "disk" => StateBackend::Disk,
                        other => {
                            return Err(format!("--state: `{other}` is not `memory` or `disk`"))
                        }
                    }
                }
                "--state-dir" => out.state_dir = Some(PathBuf::from(value("--state-dir")?)),
                "--state-memory" => {
                    out.state_memory = parse_size(&value("--state-memory")?, "--state-memory")?;
                    if out.state_memory < 4 << 20 {
                        return Err("--state-memory must be at least 4MiB".into());
                    }
                }
                "--quiet" | "-q" => out.quiet = true,
                "--help" | "-h" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown option `{other}`\n{USAGE}")),
            }
        }
        // JSON logs: every line on stderr is JSON, the summary too unless asked otherwise.
        if out.log_format == crate::log::LogFormat::Json && !summary_given {
            out.summary_json = true;
        }
        if out.scale_out && out.checkpoint_dir.is_none() {
            return Err(
                "--scale-out needs --checkpoint-dir: the folder every process of the \
                        group shares, where each partition's state is kept"
                    .into(),
            );
        }
        if out.scale_out && out.http.is_some() {
            // Each task is a process of its own, started with the supervisor's arguments:
            // they would all ask for the one address.
            return Err(
                "--http and --scale-out exclude each other for now: every task \
                        process would serve on the same address"
                    .into(),
            );
        }
        if out.scale_out && out.task_partition.is_some() {
            return Err("--scale-out and --task-partition exclude each other".into());
        }
        if let Some(flag) = checkpoint_setting.filter(|_| out.checkpoint_dir.is_none()) {
            return Err(format!(
                "{flag} needs --checkpoint-dir DIR: without a folder no checkpoint is taken"
            ));
        }
        if out.task_partition.is_some() && out.checkpoint_dir.is_none() {
            return Err("--task-partition needs --checkpoint-dir".into());
        }
        Ok(out)
    }
}

/// `256MiB`, `1GiB`, `512KiB`, `64MB` (decimal units), or a bare number of bytes.
fn parse_size(s: &str, flag: &str) -> Result<u64, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '_') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => 0,
    };
    let n = if scale == 0 {
        None
    } else {
        parse_num(num, flag).ok().and_then(|n| n.checked_mul(scale))
    };
    n.ok_or_else(|| format!("{flag}: `{s}` is not a size like 256MiB, 1GiB or 64MB"))
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of milliseconds.
fn parse_duration(s: &str, flag: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '_') {
        Some(i) => s.split_at(i),
        None => (s, "ms"),
    };
    let n = parse_num(num, flag)?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("{flag}: `{s}` is not a duration like 10s, 500ms, 2m or 1h"))?;
    if ms == 0 {
        return Err(format!("{flag} must be more than 0"));
    }
    Ok(std::time::Duration::from_millis(ms))
}

fn parse_num(s: &str, flag: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: `{s}` is not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, String> {
        RunArgs::parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn durations_take_hours() {
        let args = parse(&["--checkpoint-dir", "c", "--checkpoint-interval", "1h"]).unwrap();
        assert_eq!(
            args.checkpoint_interval,
            std::time::Duration::from_secs(3600)
        );
        let err = parse(&["--checkpoint-dir", "c", "--checkpoint-interval", "1d"]).unwrap_err();
        assert!(err.contains("500ms, 2m or 1h"), "{err}");
    }

    /// Checkpoint settings without a folder would be ignored (no checkpoint is taken).
    #[test]
    fn checkpoint_settings_need_a_folder() {
        for flags in [["--checkpoint-interval", "5s"], ["--checkpoints-kept", "4"]] {
            let err = parse(&flags).unwrap_err();
            assert!(
                err.contains(&format!("{} needs --checkpoint-dir", flags[0])),
                "{err}"
            );
            let mut with_dir = flags.to_vec();
            with_dir.extend(["--checkpoint-dir", "c"]);
            assert!(parse(&with_dir).is_ok());
        }
    }
}
