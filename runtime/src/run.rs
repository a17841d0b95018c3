//! The entry point of a generated pipeline binary: command-line options, task threads, and
//! the summary at the end.
//!
//! Each task is an OS thread running one statically composed chain. Threads suit this
//! workload: tasks are CPU-bound loops that block only on bounded channels, so a thread per
//! task gives backpressure and parallelism without a scheduler in the way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::dead_letter::DeadLetters;
use crate::metrics::{Metrics, OpMetrics};

/// Options every generated binary accepts.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    /// Overrides the number of events of every Nexmark source.
    pub events: Option<u64>,
    /// Overrides the number of generator splits of every Nexmark source.
    pub generators: Option<u32>,
    /// Instances of keyed operators; default: the largest source parallelism.
    pub parallelism: Option<usize>,
    pub dead_letters: Option<PathBuf>,
    /// After this long without a message, an upstream instance stops holding watermarks back.
    pub idle_timeout: Option<std::time::Duration>,
    /// No summary on stderr.
    pub quiet: bool,
}

const USAGE: &str = "options:
  --events N          events of every nexmark source (overrides the pipeline)
  --generators G      generator splits of every nexmark source
  --parallelism P     instances of keyed operators
  --dead-letters PATH where malformed input records go (default: dead_letters.jsonl)
  --idle-timeout MS   an input silent this long (ms) stops holding event time back
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
                "--quiet" | "-q" => out.quiet = true,
                "--help" | "-h" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown option `{other}`\n{USAGE}")),
            }
        }
        Ok(out)
    }
}

fn parse_num(s: &str, flag: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: `{s}` is not a non-negative integer"))
}

/// The running pipeline: spawns tasks and collects their failures.
pub struct Runtime {
    pub args: RunArgs,
    metrics: Metrics,
    dead_letters: DeadLetters,
    tasks: Vec<(String, JoinHandle<()>)>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Runtime {
    pub fn new(args: RunArgs) -> Self {
        let metrics = Metrics::new();
        let path = args
            .dead_letters
            .clone()
            .unwrap_or_else(|| PathBuf::from("dead_letters.jsonl"));
        let dead_letters = DeadLetters::new(path, metrics.clone());
        Runtime {
            args,
            metrics,
            dead_letters,
            tasks: Vec::new(),
            errors: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// Registers an operator for the summary.
    pub fn op(&self, name: &'static str) -> OpMetrics {
        self.metrics.op(name)
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
        let errors = self.errors.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if let Err(err) = task() {
                    errors.lock().unwrap_or_else(|e| e.into_inner()).push(err);
                }
            })
            .unwrap_or_else(|err| panic!("cannot start a thread for task {name}: {err}"));
        self.tasks.push((name, handle));
    }

    /// Waits for every task, prints the summary, and returns the exit code.
    pub fn join(self, started: Instant) -> ExitCode {
        let mut failed = false;
        for (name, handle) in self.tasks {
            if handle.join().is_err() {
                eprintln!("weir: internal error: task {name} panicked");
                failed = true;
            }
        }
        self.dead_letters.flush();
        let elapsed = started.elapsed();
        for (sink, rows, sum) in self.metrics.checksums() {
            println!("checksum {sink}: rows={rows} checksum={sum:016x}");
        }
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for err in &errors {
            eprintln!("weir: error: {err}");
        }
        if !self.args.quiet {
            eprint!("{}", self.metrics.summary(started, elapsed));
            if self.metrics.dead_letters() > 0 {
                eprintln!(
                    "  dead letters written to {}",
                    self.dead_letters.path().display()
                );
            }
        }
        if failed || !errors.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

impl Runtime {
    /// Waits for every task and returns their errors (a panicked task is one), for pipelines
    /// run inside a library ([`crate::embed::run`]); prints the summary unless `quiet`.
    pub fn wait(self, started: Instant) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, handle) in self.tasks {
            if handle.join().is_err() {
                errors.push(format!("internal error: task {name} panicked"));
            }
        }
        self.dead_letters.flush();
        if !self.args.quiet {
            eprint!("{}", self.metrics.summary(started, started.elapsed()));
        }
        let mut task_errors = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
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
    crate::channel::set_idle_timeout(args.idle_timeout);
    let mut runtime = Runtime::new(args);
    if let Err(err) = build(&mut runtime) {
        eprintln!("weir: error: {err}");
        return ExitCode::FAILURE;
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
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(args.events, Some(1000));
        assert_eq!(
            args.idle_timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(args.parallelism, Some(3));
        assert!(args.quiet);
        assert!(RunArgs::parse(["--bogus"].map(String::from)).is_err());
        assert!(RunArgs::parse(["--parallelism", "0"].map(String::from)).is_err());
    }
}
