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

/// `eprintln!` and `eprint!` that do not panic when stderr has gone away (a closed pipe, as
/// `2>&1 | head` leaves it): what the run prints there is not worth failing it for.
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! stderr_text {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub use crate::args::RunArgs;
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
    /// The progress line on a terminal (see [`crate::progress`]), cleared before the summary.
    progress: Option<crate::progress::Progress>,
    /// With `--scale-out`: the Kafka sources the supervisor runs tasks for.
    #[cfg(feature = "kafka")]
    supervised: Option<Vec<crate::sources::kafka::KafkaSourceConfig>>,
}

impl Runtime {
    /// A run inside a library: it never ends the process.
    pub fn new(args: RunArgs) -> Self {
        Runtime::with_owner(args, false, None)
    }

    /// `owns_process`: a pipeline binary's run, which may end the process when it must stop
    /// at once (see [`crate::context::abort_run`]). `checkpoints`: the run's coordinator
    /// (`--checkpoint-dir`), opened already.
    fn with_owner(
        args: RunArgs,
        owns_process: bool,
        checkpoints: Option<std::sync::Arc<crate::checkpoint::Coordinator>>,
    ) -> Self {
        let context = RunContext::new(Settings {
            idle_timeout: args.idle_timeout,
            rate_limit: args.rate_limit,
            flush_interval: args.flush_interval,
            owns_process,
        });
        if let Some(c) = checkpoints {
            let _ = context.set_coordinator(c); // a new context has none
        }
        let metrics = Metrics::new();
        let path = args
            .dead_letters
            .clone()
            .unwrap_or_else(|| PathBuf::from("dead_letters.jsonl"));
        // Emptied (or kept, by a run that resumes) once `build` has checked the run's files.
        let dead_letters = DeadLetters::new(path, metrics.clone());
        Runtime {
            args,
            context,
            metrics,
            dead_letters,
            source_dead_letters: std::sync::Mutex::new(Vec::new()),
            tasks: Vec::new(),
            progress: None,
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
    pub(crate) fn all_dead_letters(&self) -> Vec<DeadLetters> {
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

    /// Starts the HTTP endpoint of `--http` (none: nothing starts).
    pub(crate) fn serve_http(&self, started: Instant) -> Result<(), String> {
        let Some(addr) = &self.args.http else {
            return Ok(());
        };
        #[cfg(feature = "http")]
        {
            let view = crate::http::View {
                metrics: self.metrics.clone(),
                program: crate::http::program_name(),
                started,
                checkpoints: self.context.coordinator().cloned(),
            };
            let local = crate::http::serve(addr, view)?;
            tracing::info!(
                address = %local,
                "http: serving /metrics and /api/pipeline on http://{local}"
            );
            tracing::info!("http: the web UI is at http://{local}/");
            Ok(())
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = (addr, started);
            Err(
                "--http: this binary was built without the HTTP endpoint (the weir-runtime \
                 feature `http`)"
                    .into(),
            )
        }
    }

    /// The plan, for the HTTP endpoint (generated code calls it first).
    pub fn describe(&self, plan: &'static crate::plan::Plan) {
        self.metrics.set_plan(plan);
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
        match self.context.coordinator() {
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
                tracing::error!("internal error: task {name} panicked");
                failed = true;
            }
        }
        if let Some(progress) = self.progress.take() {
            progress.finish();
        }
        for letters in self.all_dead_letters() {
            letters.flush();
        }
        let succeeded = !failed && self.context.errors().all().is_empty();
        // Stopped by a signal before the end of the input: not finished.
        let stopped = self.context.stopped_early();
        let mut checkpoint_line = None;
        let mut checkpoint_json = None;
        let mut stopped_after = None;
        if let Some(c) = self.context.coordinator().cloned() {
            // Publish what sinks wrote since the last checkpoint, only when every task
            // succeeded and the input was read to its end: otherwise a restart resumes from
            // the last checkpoint.
            if succeeded && !stopped {
                if let Err(err) = c.finish() {
                    tracing::error!("cannot commit the output: {err}");
                    failed = true;
                }
            }
            // The run writes no more checkpoints: the next one may take the location now.
            c.release();
            let s = c.stats();
            stopped_after = s.stopped_after;
            // Full and delta checkpoints (incremental), each with its count, average size
            // and time.
            let kinds: Vec<String> = [s.full.describe("full"), s.delta.describe("delta")]
                .into_iter()
                .flatten()
                .collect();
            checkpoint_line = Some(format!(
                "  checkpoints: {} completed{} (last {:.1} ms, {} bytes {}; slowest {:.1} ms{}) \
                 in {}\n",
                s.completed,
                s.restored_from
                    .map(|id| format!(", resumed from checkpoint {id}"))
                    .unwrap_or_default(),
                s.last_duration.as_secs_f64() * 1e3,
                s.last_bytes,
                if s.last_delta { "delta" } else { "full" },
                s.max_duration.as_secs_f64() * 1e3,
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!("; {}", kinds.join(", "))
                },
                c.store().describe()
            ));
            checkpoint_json = Some(crate::metrics::CheckpointSummary {
                dir: c.store().describe(),
                completed: s.completed,
                restored_from: s.restored_from,
                last_duration_ms: s.last_duration.as_secs_f64() * 1e3,
                last_bytes: s.last_bytes,
                max_duration_ms: s.max_duration.as_secs_f64() * 1e3,
            });
        }
        let elapsed = started.elapsed();
        for (sink, rows, sum) in self.metrics.checksums() {
            println!("checksum {sink}: rows={rows} checksum={sum:016x}");
        }
        let errors = self.context.errors().all();
        for err in &errors {
            tracing::error!("{err}");
        }
        if !self.args.quiet && self.args.summary_json {
            let files: Vec<_> = self
                .all_dead_letters()
                .iter()
                .map(|letters| {
                    let (written, lost) = letters.counts();
                    (letters.path().display().to_string(), written, lost)
                })
                .collect();
            let summary = self.metrics.summary_json(
                elapsed,
                &crate::metrics::RunOutcome {
                    errors: &errors,
                    failed: failed || !errors.is_empty(),
                    stopped,
                    checkpoints: checkpoint_json.as_ref(),
                    dead_letter_files: &files,
                },
            );
            stderr_line!("{summary}");
        } else if !self.args.quiet {
            stderr_text!("{}", self.metrics.summary(started, elapsed));
            if let Some(line) = &checkpoint_line {
                stderr_text!("{line}");
            }
            for letters in self.all_dead_letters() {
                let (written, lost) = letters.counts();
                if written > 0 {
                    stderr_line!(
                        "  {written} dead letters written to {}",
                        letters.path().display()
                    );
                }
                if lost > 0 {
                    stderr_line!(
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
            tracing::info!("{}", crate::sinks::preview::reached_message());
            return ExitCode::SUCCESS;
        }
        if stopped {
            return stopped_exit(stopped_after);
        }
        if let (Some(limit), true) = (self.args.limit, crate::sinks::preview::is_preview()) {
            tracing::info!("preview: the input ended before every sink had {limit} rows");
        }
        ExitCode::SUCCESS
    }
}

/// Says how a run stopped by a signal ended, and exits with the code the signal calls for (a
/// scale-out task that drained: [`crate::checkpoint::DRAINED_EXIT_CODE`]).
fn stopped_exit(after: Option<u64>) -> ExitCode {
    if crate::scale_out::task_partition().is_some() {
        match after {
            Some(id) => tracing::info!("stopped after checkpoint {id}, for a handover"),
            None => tracing::info!("stopped without a last checkpoint, for a handover"),
        }
        return ExitCode::from(crate::checkpoint::DRAINED_EXIT_CODE as u8);
    }
    let (name, code) = crate::stop::signal().unwrap_or(("SIGTERM", 143));
    match after {
        Some(id) => tracing::info!(
            "stopped by {name} after checkpoint {id}; start again with the same \
             --checkpoint-dir to resume from there"
        ),
        None => tracing::info!(
            "stopped by {name} before the end of the input; windows and joins still open \
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
            stderr_text!("{}", self.metrics.summary(started, started.elapsed()));
        }
        crate::keyed::close_store(&self.context);
        let mut task_errors = self.context.errors().all();
        task_errors.append(&mut errors);
        task_errors
    }
}

/// What a generated binary tells its `main` of itself, for options it has no use for.
#[derive(Clone, Copy, Debug)]
pub struct Binary {
    /// A preview build (`weir run FILE --limit N`), whose sinks all print to stdout.
    pub preview: bool,
    /// The pipeline has a Nexmark source (`--events`, `--generators` act on it).
    pub generator: bool,
}

impl Binary {
    /// `main` of a generated binary: parses the options, lets `build` spawn the tasks, waits.
    pub fn main(self, build: impl FnOnce(&mut Runtime) -> Result<(), String>) -> ExitCode {
        run_main(build, self)
    }
}

fn run_main(build: impl FnOnce(&mut Runtime) -> Result<(), String>, binary: Binary) -> ExitCode {
    let preview = binary.preview;
    let args = match RunArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            stderr_line!("{message}");
            return ExitCode::from(2);
        }
    };
    crate::tune_allocator(args.state == crate::args::StateBackend::Disk);
    // Before anything opens an output: a binary whose sinks write files would otherwise
    // have created (emptied) them by the time it found out.
    if args.limit.is_some() && !preview {
        eprintln!(
            "--limit needs a preview build, whose sinks all print to stdout: \
             `weir run FILE --limit N`"
        );
        return ExitCode::from(2);
    }
    // Options for a kind of connector the pipeline does not have would be ignored; a user who
    // passes one expects it to act. (The `kafka` feature is on exactly when the pipeline
    // reads or writes Kafka.)
    if let Some(option) = unused_kafka_option(&args) {
        eprintln!(
            "{option}: this pipeline has no Kafka source or sink, so the option would do nothing"
        );
        return ExitCode::from(2);
    }
    if let Some(option) = unused_generator_option(&args, binary.generator) {
        eprintln!(
            "{option}: this pipeline has no nexmark source, so the option would do nothing \
             (the number of records comes from its input)"
        );
        return ExitCode::from(2);
    }
    crate::log::install(args.log_format);
    let started = Instant::now();
    if let Some(partition) = args.task_partition {
        if let Err(err) = crate::scale_out::become_task(partition, args.task_parent) {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    }
    let mut resuming = None;
    let mut checkpoints = None;
    // A supervisor takes no checkpoints itself: its tasks do, each in its own folder.
    let checkpoint_dir = args.checkpoint_dir.as_ref().filter(|_| !args.scale_out);
    if let Some(dir) = checkpoint_dir {
        #[allow(unused_mut)]
        let mut verifiers = crate::checkpoint::Verifiers::default();
        #[cfg(feature = "kafka")]
        {
            let properties = args.kafka_properties.clone();
            verifiers.add("kafka-txn", move |note, id| {
                crate::sinks::kafka::verify_transaction(note, id, &properties)
            });
        }
        #[cfg(feature = "postgres")]
        verifiers.add("pg-txn", crate::sinks::postgres::verify_commit);
        let config = crate::checkpoint::Config {
            dir: dir.clone(),
            interval: args.checkpoint_interval,
            keep: args.checkpoints_kept,
            incremental: args.checkpoint_incremental,
            buffer: args.checkpoint_buffer,
            verifiers,
        };
        match crate::checkpoint::Coordinator::open(config) {
            Err(err) => {
                tracing::error!("checkpoints: {err}");
                return ExitCode::FAILURE;
            }
            Ok((c, crate::checkpoint::Start::Finished(id))) => {
                c.release();
                tracing::info!(
                    "{} holds a run that finished (checkpoint {id}) and its output is \
                     committed; remove the folder to run again",
                    dir.display()
                );
                return ExitCode::SUCCESS;
            }
            Ok((c, start)) => {
                if let crate::checkpoint::Start::Restored(id) = start {
                    resuming = Some((id, dir.clone()));
                }
                checkpoints = Some(std::sync::Arc::new(c));
            }
        }
    }
    // SIGTERM and Ctrl-C stop the run gracefully (see `stop`): at once without checkpoints,
    // after one last checkpoint with them.
    if let Err(err) = crate::stop::install(checkpoints.is_none()) {
        tracing::error!("{err}");
        return ExitCode::FAILURE;
    }
    let mut runtime = Runtime::with_owner(args, true, checkpoints);
    // Before `build`: every keyed map an operator makes lands on the chosen backend.
    if let Err(err) = crate::keyed::install(&runtime.args, &runtime.context) {
        tracing::error!("{err}");
        return ExitCode::from(2);
    }
    // The file `--dead-letters` names is the run's before any sink or source opens its own
    // (which `build` does, checking them against it).
    if let Some(path) = &runtime.args.dead_letters {
        let path = crate::scale_out::task_path(path);
        if let Err(err) = runtime.context.claim_file(
            &path,
            crate::context::FileUse::Writes,
            "the dead-letter output (--dead-letters)",
        ) {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    }
    if let Err(err) = runtime.serve_http(started) {
        tracing::error!("{err}");
        return ExitCode::FAILURE;
    }
    // Without `--idle-timeout`, `build` may set a default (Kafka sources do) before it starts
    // any task; the first setting wins, and none is none. It runs in the run's context: the
    // operators it builds find the run's checkpoints and state store there.
    let context = runtime.context.clone();
    let built = {
        let _run = context.enter();
        build(&mut runtime)
    };
    runtime.context.default_idle_timeout(None);
    if let Err(err) = built {
        tracing::error!("{err}");
        return ExitCode::FAILURE;
    }
    {
        let _run = context.enter();
        for letters in runtime.all_dead_letters() {
            letters.start();
        }
    }
    // Said once the plan is known to fit the checkpoint.
    if let Some((id, dir)) = resuming.filter(|_| !runtime.args.quiet) {
        tracing::info!("resuming from checkpoint {id} in {}", dir.display());
    }
    if runtime.args.scale_out {
        #[cfg(feature = "kafka")]
        if let Some(sources) = runtime.supervised.take() {
            return crate::scale_out::supervisor::run(&runtime.args, sources);
        }
        tracing::error!("--scale-out needs a pipeline whose sources are Kafka topics");
        return ExitCode::FAILURE;
    }
    if let Some(c) = runtime.context.coordinator() {
        if let Err(err) = c.start(runtime.context.clone()) {
            tracing::error!("checkpoints: {err}");
            return ExitCode::FAILURE;
        }
    }
    if !runtime.args.quiet && !crate::progress::rows_on_the_terminal(&runtime.metrics) {
        runtime.progress = crate::progress::start(runtime.metrics.clone());
    }
    let code = runtime.join(started);
    crate::keyed::close_store(&context);
    code
}

/// The first generator option given to a binary without a Nexmark source, if any.
fn unused_generator_option(args: &RunArgs, generator: bool) -> Option<&'static str> {
    if generator {
        None
    } else if args.events.is_some() {
        Some("--events")
    } else if args.generators.is_some() {
        Some("--generators")
    } else {
        None
    }
}

/// The first Kafka option given to a binary without Kafka, if any.
fn unused_kafka_option(args: &RunArgs) -> Option<&'static str> {
    if cfg!(feature = "kafka") {
        return None;
    }
    if !args.kafka_properties.is_empty() {
        Some("--kafka-property")
    } else if args.kafka_stop_after_idle.is_some() {
        Some("--kafka-stop-after-idle")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_options_without_a_generator_are_refused() {
        let parse = |a: &[&str]| RunArgs::parse(a.iter().map(|s| s.to_string())).unwrap();
        let events = parse(&["--events", "10"]);
        let generators = parse(&["--generators", "2"]);
        assert_eq!(unused_generator_option(&events, false), Some("--events"));
        assert_eq!(
            unused_generator_option(&generators, false),
            Some("--generators")
        );
        assert_eq!(unused_generator_option(&events, true), None);
        assert_eq!(unused_generator_option(&parse(&[]), false), None);
    }

    #[test]
    fn kafka_options_without_kafka_are_refused() {
        let parse = |a: &[&str]| RunArgs::parse(a.iter().map(|s| s.to_string())).unwrap();
        let with = parse(&["--kafka-property", "a=b"]);
        let idle = parse(&["--kafka-stop-after-idle", "100"]);
        let without = parse(&["--events", "10"]);
        assert_eq!(unused_kafka_option(&without), None);
        if cfg!(feature = "kafka") {
            assert_eq!(unused_kafka_option(&with), None);
            assert_eq!(unused_kafka_option(&idle), None);
        } else {
            assert_eq!(unused_kafka_option(&with), Some("--kafka-property"));
            assert_eq!(unused_kafka_option(&idle), Some("--kafka-stop-after-idle"));
        }
    }

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
        let http = RunArgs::parse(["--http", "127.0.0.1:0"].map(String::from)).unwrap();
        assert_eq!(http.http.as_deref(), Some("127.0.0.1:0"));
        assert!(RunArgs::parse(["--http", "localhost"].map(String::from)).is_err());
        let both = ["--http=127.0.0.1:0", "--scale-out", "--checkpoint-dir", "d"];
        let err = RunArgs::parse(both.map(String::from)).unwrap_err();
        assert!(err.contains("--http and --scale-out"), "{err}");
    }

    #[test]
    fn state_backend_options_parse() {
        use crate::args::StateBackend;
        let parse = |list: &[&str]| RunArgs::parse(list.iter().map(|a| a.to_string()));
        let default = parse(&[]).unwrap();
        assert_eq!(default.state, StateBackend::Memory);
        assert_eq!(default.state_memory, 256 << 20);
        let disk = parse(&[
            "--state",
            "disk",
            "--state-dir=/tmp/s",
            "--state-memory",
            "1GiB",
        ]);
        let disk = disk.unwrap();
        assert_eq!(disk.state, StateBackend::Disk);
        assert_eq!(
            disk.state_dir.as_deref(),
            Some(std::path::Path::new("/tmp/s"))
        );
        assert_eq!(disk.state_memory, 1 << 30);
        assert_eq!(
            parse(&["--state-memory", "64MB"]).unwrap().state_memory,
            64_000_000
        );
        for bad in [
            &["--state", "ssd"][..],
            &["--state-memory", "12"],
            &["--state-memory", "1TiB"],
            &["--state-memory", "lots"],
            &["--state-memory", "1MiB"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
