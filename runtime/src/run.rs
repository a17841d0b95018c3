//! The entry point of a generated pipeline binary: command-line options, task threads, and
//! the summary at the end.
//!
//! Each task is an OS thread running one statically composed chain. Threads suit this
//! workload: tasks are CPU-bound loops that block only on bounded channels, so a thread per
//! task gives backpressure and parallelism without a scheduler in the way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::context::{RunContext, Settings};
use crate::dead_letter::DeadLetters;
use crate::metrics::{Metrics, OpMetrics};

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
    /// No summary on stderr.
    pub quiet: bool,
    /// Where checkpoints go; none: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_interval: std::time::Duration,
    pub checkpoints_kept: usize,
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
}

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
            rate_limit: 0,
            kafka_properties: Vec::new(),
            kafka_stop_after_idle: None,
            scale_out: false,
            task_partition: None,
            task_parent: None,
            limit: None,
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
  --checkpoint-interval TIME   time between checkpoints: 10s (default), 500ms, 2m
  --checkpoints-kept K         complete checkpoints kept (default 3)
  --rate-limit N      records per second of each source (default: unlimited)
  --kafka-property K=V
                      a librdkafka property for every kafka source and sink (repeatable)
  --kafka-stop-after-idle MS
                      a kafka source ends after MS ms without a message (bounded runs)
  --scale-out         run one task per kafka partition the consumer group assigns this
                      process, each with its checkpoints in DIR/partition-N, so that
                      several processes share the partitions and their state
                      (needs --checkpoint-dir on a folder every process sees)
  --limit N           (a preview build: `weir run FILE --limit N`) each sink prints its
                      first N rows, and the run stops once every sink has
  --quiet             no run summary on stderr
  --help              this text";

impl RunArgs {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<RunArgs, String> {
        let mut out = RunArgs::default();
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
                    out.checkpoint_interval =
                        parse_duration(&value("--checkpoint-interval")?, "--checkpoint-interval")?
                }
                "--checkpoints-kept" => {
                    let k: u64 = parse_num(&value("--checkpoints-kept")?, "--checkpoints-kept")?;
                    if k < 2 {
                        return Err("--checkpoints-kept must be at least 2 (a restart may need \
                                    the checkpoint before the newest)"
                            .into());
                    }
                    out.checkpoints_kept = k as usize;
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
                "--quiet" | "-q" => out.quiet = true,
                "--help" | "-h" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown option `{other}`\n{USAGE}")),
            }
        }
        if out.scale_out && out.checkpoint_dir.is_none() {
            return Err(
                "--scale-out needs --checkpoint-dir: the folder every process of the \
                        group shares, where each partition's state is kept"
                    .into(),
            );
        }
        if out.scale_out && out.task_partition.is_some() {
            return Err("--scale-out and --task-partition exclude each other".into());
        }
        if out.task_partition.is_some() && out.checkpoint_dir.is_none() {
            return Err("--task-partition needs --checkpoint-dir".into());
        }
        Ok(out)
    }
}

/// `10s`, `500ms`, `2m`, or a bare number of milliseconds.
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
        _ => None,
    }
    .ok_or_else(|| format!("{flag}: `{s}` is not a duration like 10s, 500ms or 2m"))?;
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

pub use crate::context::Errors;

/// The running pipeline: spawns tasks and collects their failures. Each runtime is one run,
/// with its own [`RunContext`] (errors, settings, stop flags) that its tasks run in.
pub struct Runtime {
    pub args: RunArgs,
    context: RunContext,
    metrics: Metrics,
    dead_letters: DeadLetters,
    /// The dead-letter files sources named with `dead_letters:` (one writer per path).
    source_dead_letters: std::sync::Mutex<Vec<DeadLetters>>,
    tasks: Vec<(String, JoinHandle<()>)>,
    /// With `--scale-out`: the Kafka sources the supervisor runs tasks for.
    #[cfg(feature = "kafka")]
    supervised: Option<Vec<crate::sources::kafka::KafkaSourceConfig>>,
}

impl Runtime {
    /// A run inside a library: it never ends the process.
    pub fn new(args: RunArgs) -> Self {
        Runtime::with_owner(args, false)
    }

    /// `owns_process`: a pipeline binary's run, which may end the process when it must stop
    /// at once (see [`crate::context::abort_run`]).
    fn with_owner(args: RunArgs, owns_process: bool) -> Self {
        let context = RunContext::new(Settings {
            idle_timeout: args.idle_timeout,
            rate_limit: args.rate_limit,
            flush_interval: args.flush_interval,
            owns_process,
        });
        let metrics = Metrics::new();
        let path = args
            .dead_letters
            .clone()
            .unwrap_or_else(|| PathBuf::from("dead_letters.jsonl"));
        let dead_letters = DeadLetters::new(path, metrics.clone());
        Runtime {
            args,
            context,
            metrics,
            dead_letters,
            source_dead_letters: std::sync::Mutex::new(Vec::new()),
            tasks: Vec::new(),
            #[cfg(feature = "kafka")]
            supervised: None,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// The dead-letter output of a source that names its own file (`dead_letters: "path"`).
    /// `--dead-letters` on the command line wins over it: whoever runs the binary decides
    /// where its output goes, as for every other run-time option, so every source then writes
    /// to that one file (each letter names its source). Sources naming the same file share
    /// one writer.
    pub fn source_dead_letters(&self, path: &str) -> DeadLetters {
        if self.args.dead_letters.is_some() {
            return self.dead_letters.clone();
        }
        let mut named = self
            .source_dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let wanted = crate::scale_out::task_path(std::path::Path::new(path));
        if let Some(found) = std::iter::once(&self.dead_letters)
            .chain(named.iter())
            .find(|d| d.path() == wanted)
        {
            return found.clone();
        }
        let letters = DeadLetters::new(PathBuf::from(path), self.metrics.clone());
        named.push(letters.clone());
        letters
    }

    /// Every dead-letter output of the run: the default one first.
    fn all_dead_letters(&self) -> Vec<DeadLetters> {
        let named = self
            .source_dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::iter::once(self.dead_letters.clone())
            .chain(named.iter().cloned())
            .collect()
    }

    /// Where a sink reports a failure that must fail the run.
    pub fn errors(&self) -> Errors {
        self.context.errors().clone()
    }

    /// This run's context, which its tasks run in.
    pub fn context(&self) -> &RunContext {
        &self.context
    }

    /// Registers an operator for the summary.
    pub fn op(&self, name: &'static str) -> OpMetrics {
        self.metrics.op(name)
    }

    /// Declares the checkpoint participants of this binary's plan (a no-op without
    /// `--checkpoint-dir`); refuses to resume from a checkpoint of a different plan.
    pub fn checkpoint_plan(
        &mut self,
        fingerprint: &str,
        slots: &[(&'static str, &'static str, &'static str, usize)],
    ) -> Result<(), String> {
        match crate::checkpoint::coordinator() {
            None => Ok(()),
            Some(c) => c.plan(
                fingerprint,
                slots
                    .iter()
                    .map(
                        |(id, label, shape, instances)| crate::checkpoint::manifest::SlotEntry {
                            id: id.to_string(),
                            instances: *instances,
                            label: label.to_string(),
                            shape: shape.to_string(),
                        },
                    )
                    .collect(),
            ),
        }
    }

    /// Called by generated code before any task starts, in a pipeline whose sources all read
    /// Kafka. With `--scale-out` it keeps `sources` for the supervisor and returns `true`: the
    /// build then returns without starting anything, and [`main`] supervises tasks instead.
    #[cfg(feature = "kafka")]
    pub fn scale_out(
        &mut self,
        sources: &[&crate::sources::kafka::KafkaSourceConfig],
    ) -> Result<bool, String> {
        if !self.args.scale_out {
            return Ok(false);
        }
        self.supervised = Some(sources.iter().map(|s| (*s).clone()).collect());
        Ok(true)
    }

    /// Called by generated code in a pipeline that has a source other than Kafka (`why` names
    /// it): such a pipeline cannot be split by partition, so `--scale-out` is refused.
    pub fn single_process(&self, why: &str) -> Result<(), String> {
        if self.args.scale_out {
            return Err(format!(
                "--scale-out splits a pipeline by Kafka partition, and every source must be \
                 a Kafka topic: {why}"
            ));
        }
        Ok(())
    }

    /// Keyed operators' instance count: `--parallelism`, else `default`.
    pub fn parallelism(&self, default: usize) -> usize {
        self.args.parallelism.unwrap_or(default).max(1)
    }

    /// Starts a task thread. A task that returns `Err` fails the run with its message.
    pub fn spawn(
        &mut self,
        name: String,
        task: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) {
        let context = self.context.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let _run = context.enter();
                // A failed task never passes another barrier: give up the checkpoint being
                // taken so that nothing waits for it (a restart resumes from the last one).
                struct AbandonOnPanic;
                impl Drop for AbandonOnPanic {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            if let Some(c) = crate::checkpoint::coordinator() {
                                c.abandon();
                            }
                        }
                    }
                }
                let _guard = AbandonOnPanic;
                if let Err(err) = task() {
                    if let Some(c) = crate::checkpoint::coordinator() {
                        c.abandon();
                    }
                    context.errors().report(err);
                }
            })
            .unwrap_or_else(|err| panic!("cannot start a thread for task {name}: {err}"));
        self.tasks.push((name, handle));
    }

    /// Waits for every task, prints the summary, and returns the exit code.
    pub fn join(mut self, started: Instant) -> ExitCode {
        let mut failed = false;
        for (name, handle) in std::mem::take(&mut self.tasks) {
            if handle.join().is_err() {
                eprintln!("weir: internal error: task {name} panicked");
                failed = true;
            }
        }
        for letters in self.all_dead_letters() {
            letters.flush();
        }
        let succeeded = !failed && self.context.errors().all().is_empty();
        // Stopped by a signal before the end of the input: not finished.
        let stopped = self.context.stopped_early();
        let mut checkpoint_line = None;
        let mut stopped_after = None;
        if let Some(c) = crate::checkpoint::coordinator() {
            // Publish what sinks wrote since the last checkpoint, only when every task
            // succeeded and the input was read to its end: otherwise a restart resumes from
            // the last checkpoint.
            if succeeded && !stopped {
                if let Err(err) = c.finish() {
                    eprintln!("weir: error: cannot commit the output: {err}");
                    failed = true;
                }
            }
            let s = c.stats();
            stopped_after = s.stopped_after;
            checkpoint_line = Some(format!(
                "  checkpoints: {} completed{} (last {:.1} ms, {} bytes; slowest {:.1} ms) in {}\n",
                s.completed,
                s.restored_from
                    .map(|id| format!(", resumed from checkpoint {id}"))
                    .unwrap_or_default(),
                s.last_duration.as_secs_f64() * 1e3,
                s.last_bytes,
                s.max_duration.as_secs_f64() * 1e3,
                c.dir().display()
            ));
        }
        let elapsed = started.elapsed();
        for (sink, rows, sum) in self.metrics.checksums() {
            println!("checksum {sink}: rows={rows} checksum={sum:016x}");
        }
        let errors = self.context.errors().all();
        for err in &errors {
            eprintln!("weir: error: {err}");
        }
        if !self.args.quiet {
            eprint!("{}", self.metrics.summary(started, elapsed));
            if let Some(line) = &checkpoint_line {
                eprint!("{line}");
            }
            for letters in self.all_dead_letters() {
                let (written, lost) = letters.counts();
                if written > 0 {
                    eprintln!(
                        "  {written} dead letters written to {}",
                        letters.path().display()
                    );
                }
                if lost > 0 {
                    eprintln!(
                        "  {lost} dead letters could not be written to {}",
                        letters.path().display()
                    );
                }
            }
        }
        if failed || !errors.is_empty() {
            return ExitCode::FAILURE;
        }
        if crate::sinks::preview::limit_reached() {
            eprintln!("{}", crate::sinks::preview::reached_message());
            return ExitCode::SUCCESS;
        }
        if stopped {
            return stopped_exit(stopped_after);
        }
        if let (Some(limit), true) = (self.args.limit, crate::sinks::preview::is_preview()) {
            eprintln!("weir: preview: the input ended before every sink had {limit} rows");
        }
        ExitCode::SUCCESS
    }
}

/// Says how a run stopped by a signal ended, and exits with the code the signal calls for (a
/// scale-out task that drained: [`crate::checkpoint::DRAINED_EXIT_CODE`]).
fn stopped_exit(after: Option<u64>) -> ExitCode {
    if crate::scale_out::task_partition().is_some() {
        match after {
            Some(id) => eprintln!("weir: stopped after checkpoint {id}, for a handover"),
            None => eprintln!("weir: stopped without a last checkpoint, for a handover"),
        }
        return ExitCode::from(crate::checkpoint::DRAINED_EXIT_CODE as u8);
    }
    let (name, code) = crate::stop::signal().unwrap_or(("SIGTERM", 143));
    match after {
        Some(id) => eprintln!(
            "weir: stopped by {name} after checkpoint {id}; start again with the same \
             --checkpoint-dir to resume from there"
        ),
        None => eprintln!(
            "weir: stopped by {name} before the end of the input; windows and joins still open \
             were not emitted"
        ),
    }
    ExitCode::from(code)
}

impl Runtime {
    /// Waits for every task and returns their errors (a panicked task is one), for pipelines
    /// run inside a library ([`crate::embed::run`]); prints the summary unless `quiet`.
    pub fn wait(mut self, started: Instant) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, handle) in std::mem::take(&mut self.tasks) {
            if handle.join().is_err() {
                errors.push(format!("internal error: task {name} panicked"));
            }
        }
        for letters in self.all_dead_letters() {
            letters.flush();
        }
        if !self.args.quiet {
            eprint!("{}", self.metrics.summary(started, started.elapsed()));
        }
        let mut task_errors = self.context.errors().all();
        task_errors.append(&mut errors);
        task_errors
    }
}

/// `main` of a generated binary: parses the options, lets `build` spawn the tasks, waits.
pub fn main(build: impl FnOnce(&mut Runtime) -> Result<(), String>) -> ExitCode {
    let args = match RunArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    if let Some(partition) = args.task_partition {
        if let Err(err) = crate::scale_out::become_task(partition, args.task_parent) {
            eprintln!("weir: error: {err}");
            return ExitCode::FAILURE;
        }
    }
    let mut resuming = None;
    // A supervisor takes no checkpoints itself: its tasks do, each in its own folder.
    let checkpoint_dir = args.checkpoint_dir.as_ref().filter(|_| !args.scale_out);
    if let Some(dir) = checkpoint_dir {
        #[cfg(feature = "kafka")]
        {
            let _ = crate::sinks::kafka::VERIFY_PROPERTIES.set(args.kafka_properties.clone());
            crate::checkpoint::register_verifier(
                "kafka-txn",
                crate::sinks::kafka::verify_transaction,
            );
        }
        let config = crate::checkpoint::Config {
            dir: dir.clone(),
            interval: args.checkpoint_interval,
            keep: args.checkpoints_kept,
        };
        match crate::checkpoint::Coordinator::install(config) {
            Err(err) => {
                eprintln!("weir: error: checkpoints: {err}");
                return ExitCode::FAILURE;
            }
            Ok(crate::checkpoint::Start::Finished(id)) => {
                eprintln!(
                    "weir: {} holds a run that finished (checkpoint {id}) and its output is \
                     committed; remove the folder to run again",
                    dir.display()
                );
                return ExitCode::SUCCESS;
            }
            Ok(crate::checkpoint::Start::Restored(id)) => resuming = Some((id, dir.clone())),
            Ok(crate::checkpoint::Start::Fresh) => {}
        }
    }
    // SIGTERM and Ctrl-C stop the run gracefully (see `stop`): at once without checkpoints,
    // after one last checkpoint with them.
    if let Err(err) = crate::stop::install(crate::checkpoint::coordinator().is_none()) {
        eprintln!("weir: error: {err}");
        return ExitCode::FAILURE;
    }
    let mut runtime = Runtime::with_owner(args, true);
    // Without `--idle-timeout`, `build` may set a default (Kafka sources do) before it starts
    // any task; the first setting wins, and none is none.
    let built = build(&mut runtime);
    runtime.context.default_idle_timeout(None);
    if let Err(err) = built {
        eprintln!("weir: error: {err}");
        return ExitCode::FAILURE;
    }
    if runtime.args.limit.is_some() && !crate::sinks::preview::is_preview() {
        eprintln!(
            "weir: error: --limit needs a preview build, whose sinks all print to stdout: \
             `weir run FILE --limit N`"
        );
        return ExitCode::from(2);
    }
    // Said once the plan is known to fit the checkpoint.
    if let Some((id, dir)) = resuming.filter(|_| !runtime.args.quiet) {
        eprintln!("weir: resuming from checkpoint {id} in {}", dir.display());
    }
    if runtime.args.scale_out {
        #[cfg(feature = "kafka")]
        if let Some(sources) = runtime.supervised.take() {
            return crate::scale_out::supervisor::run(&runtime.args, sources);
        }
        eprintln!("weir: error: --scale-out needs a pipeline whose sources are Kafka topics");
        return ExitCode::FAILURE;
    }
    if let Some(c) = crate::checkpoint::coordinator() {
        c.start(runtime.context.clone());
    }
    runtime.join(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args = RunArgs::parse(
            [
                "--events",
                "1_000",
                "--idle-timeout=250",
                "--parallelism",
                "3",
                "--quiet",
                "--kafka-property",
                "session.timeout.ms=6000",
                "--kafka-property=fetch.min.bytes = 1",
                "--kafka-stop-after-idle",
                "1500",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            args.kafka_properties,
            [
                ("session.timeout.ms".to_string(), "6000".to_string()),
                ("fetch.min.bytes".to_string(), "1".to_string())
            ]
        );
        assert_eq!(
            args.kafka_stop_after_idle,
            Some(std::time::Duration::from_millis(1500))
        );
        assert!(RunArgs::parse(["--kafka-property", "novalue"].map(String::from)).is_err());
        assert_eq!(args.events, Some(1000));
        assert_eq!(
            args.idle_timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(args.parallelism, Some(3));
        assert!(args.quiet);
        assert!(RunArgs::parse(["--bogus"].map(String::from)).is_err());
        assert!(RunArgs::parse(["--parallelism", "0"].map(String::from)).is_err());
        assert_eq!(args.limit, None);
        let preview = RunArgs::parse(["--limit", "5"].map(String::from)).unwrap();
        assert_eq!(preview.limit, Some(5));
        assert!(RunArgs::parse(["--limit", "0"].map(String::from)).is_err());
    }
}
