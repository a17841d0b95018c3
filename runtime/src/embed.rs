//! What pipelines embedded in a Rust crate use besides the rest of the runtime: an in-memory
//! source (records from a Rust iterator), a collecting sink (rows into a shared `Vec`), the
//! [`Accumulator`] trait of aggregate UDFs, the [`Record`] trait that `#[derive(weir::Record)]`
//! implements, and [`run`], the library counterpart of [`crate::run::Binary::main`] that returns the
//! run's errors instead of exiting.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::DecodeError;
use crate::metrics::{Metrics, OpMetrics};
use crate::run::{RunArgs, Runtime};
use crate::sources::{EventTime, WatermarkTracker};

/// Pushes every record of `records` into `chain`, with watermarks from event time like a file
/// source, then the final watermark and the end of input. `project` turns the caller's record
/// (the source's full schema) into the record the pipeline reads (only the fields it uses).
/// A record that `check` rejects (an event time outside the source's range) is a dead letter,
/// like a malformed line of a file: numbered by its position in the input (from 1) and shown
/// as the pipeline's record (`Debug`); it never moves the watermark.
#[allow(clippy::too_many_arguments)]
pub fn run_iter<I, T, U, C>(
    source: &str,
    records: I,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    project: fn(&T) -> U,
    check: fn(&U) -> Result<(), DecodeError>,
    event_time: Option<EventTime<U>>,
    chain: C,
) -> Result<(), String>
where
    I: IntoIterator<Item = T>,
    U: std::fmt::Debug,
    C: Collector<U>,
{
    let mut chain = metrics.source(source, chain);
    let mut tracker = event_time
        .as_ref()
        .map(|et| WatermarkTracker::new(et.max_out_of_orderness_ms));
    let mut produced = 0u64;
    for (index, record) in records.into_iter().enumerate() {
        let record = project(&record);
        if let Err(err) = check(&record) {
            let number = index as u64 + 1;
            dead_letters.write(source, number, &err.to_string(), &format!("{record:?}"));
            continue;
        }
        produced += 1;
        chain.push(&record);
        if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
            if let Some(wm) = tracker.observe((et.time)(&record)) {
                chain.watermark(wm);
            }
        }
    }
    metrics.add_source_records(produced);
    chain.watermark(i64::MAX);
    chain.finish();
    Ok(())
}

/// The records of one in-memory source: a `Vec` (`vec.into()`), any iterator
/// ([`Records::iter`]), or the receiving end of a channel ([`Records::channel`], which ends
/// when every sender is dropped). The source reads them on its own thread.
pub struct Records<T>(Box<dyn Iterator<Item = T> + Send>);

impl<T: Send + 'static> Records<T> {
    pub fn iter<I>(records: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Records(Box::new(records.into_iter()))
    }

    pub fn channel(receiver: std::sync::mpsc::Receiver<T>) -> Self {
        Records(Box::new(receiver.into_iter()))
    }
}

impl<T: Send + 'static> From<Vec<T>> for Records<T> {
    fn from(records: Vec<T>) -> Self {
        Records::iter(records)
    }
}

impl<T: Send + 'static> Default for Records<T> {
    fn default() -> Self {
        Records::iter(Vec::new())
    }
}

impl<T> Iterator for Records<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.next()
    }
}

/// The records given to one in-memory source: taken once by the source task.
pub type Input<T> = Arc<Mutex<Option<Records<T>>>>;

/// Wraps records for an in-memory source.
pub fn input<T>(records: Records<T>) -> Input<T> {
    Arc::new(Mutex::new(Some(records)))
}

/// Takes the records of an in-memory source (none if taken already).
pub fn take_input<T: Send + 'static>(input: &Input<T>) -> Records<T> {
    input
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

/// Rows collected by a sink, shared between the sink task and the caller.
pub type Output<T> = Arc<Mutex<Vec<T>>>;

/// Takes the rows a collecting sink gathered.
pub fn take_output<T>(output: &Output<T>) -> Vec<T> {
    std::mem::take(&mut *output.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A sink that appends clones of its rows to a shared `Vec`.
pub struct Collect<T> {
    rows: Vec<T>,
    output: Output<T>,
    metrics: OpMetrics,
}

impl<T> Collect<T> {
    pub fn new(metrics: OpMetrics, output: Output<T>) -> Self {
        Collect {
            rows: Vec::new(),
            output,
            metrics,
        }
    }
}

impl<T: Clone> Collector<T> for Collect<T> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.rows.push(record.clone());
    }

    fn watermark(&mut self, _watermark: i64) {}
    fn tick(&mut self) {}

    /// In-memory runs take no checkpoints.
    fn barrier(&mut self, _checkpoint: u64) {}

    fn finish(&mut self) {
        let n = self.rows.len() as u64;
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut self.rows);
        let mut counters = self.metrics.counters();
        counters.records_in.set(n);
        counters.records_out.set(n);
        self.metrics.report(&counters);
    }
}

/// Runs a pipeline inside the calling process: lets `build` spawn the tasks, waits for them,
/// and returns every task's error. Prints the run summary on stderr unless `args.quiet`.
/// Embedded runs take no checkpoints yet (their in-memory sources send no barriers):
/// `checkpoint_dir` is refused rather than ignored. `--state disk` gives the run a disk store
/// of its own under `state_dir`.
pub fn run(
    args: RunArgs,
    build: impl FnOnce(&mut Runtime) -> Result<(), String>,
) -> Result<(), Error> {
    if args.scale_out || args.task_partition.is_some() {
        return Err(Error {
            messages: vec![
                "--scale-out runs from a pipeline binary (the weir CLI), not from a pipeline \
                 embedded in a crate"
                    .to_string(),
            ],
        });
    }
    if let Some(dir) = &args.checkpoint_dir {
        return Err(Error {
            messages: vec![format!(
                "checkpoints ({}) are not supported in a pipeline embedded in a crate yet; run it with the weir CLI",
                dir.display()
            )],
        });
    }
    let started = Instant::now();
    let mut runtime = Runtime::new(args);
    if let Some(watch) = &runtime.args.watch {
        watch.attach(runtime.metrics(), started);
    }
    if let Err(err) = runtime.serve_http(started) {
        return Err(Error {
            messages: vec![err],
        });
    }
    // Before `build`: every keyed map an operator makes lands on the run's backend.
    if let Err(err) = crate::keyed::install(&runtime.args, runtime.context()) {
        return Err(Error {
            messages: vec![err],
        });
    }
    // In the run's context: the operators `build` makes find the run's state store there.
    let context = runtime.context().clone();
    let built = {
        let _run = context.enter();
        build(&mut runtime)
    };
    runtime.context().default_idle_timeout(None);
    if let Err(err) = built {
        return Err(Error {
            messages: vec![err],
        });
    }
    {
        let _run = context.enter();
        for letters in runtime.all_dead_letters() {
            letters.start();
        }
    }
    let messages = runtime.wait(started);
    if messages.is_empty() {
        Ok(())
    } else {
        Err(Error { messages })
    }
}

/// A handle on the live metrics of embedded runs: give it to a run
/// ([`RunArgs::watched`]), then read them from any thread while the run goes on and after it
/// ends ([`Watch::metrics`]; [`Watch::prometheus_text`] and [`Watch::serve_http`] with the
/// runtime's feature `http`, the facade's `weir/http`). A watch follows the last run given
/// it; clones share it. Reading takes relaxed loads of the counters the operators keep anyway
/// (see [`crate::metrics`]): the run does not know it is watched.
#[derive(Clone, Default)]
pub struct Watch(Arc<Mutex<Option<(Metrics, Instant)>>>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attached = self.current().is_some();
        f.debug_struct("Watch")
            .field("attached", &attached)
            .finish()
    }
}

/// The metrics of an embedded run at one moment (see [`Watch::metrics`]).
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    /// Time since the run started.
    pub elapsed: std::time::Duration,
    /// Per operator, in plan order: its name (`op4 aggregate { ... }`, `exchange op2->op4
    /// hash(k)`: the run summary's) and its counters over its instances.
    pub operators: Vec<(String, crate::metrics::OpStats)>,
    pub sources: Vec<crate::metrics::SourceStats>,
    pub dead_letters: u64,
    /// The partitions Kafka sources read, with their lag.
    pub kafka_partitions: Vec<crate::metrics::KafkaPartition>,
}

impl MetricsSnapshot {
    /// The counters of operator `id` (`op4`, as `weir explain` numbers them).
    pub fn operator(&self, id: &str) -> Option<&crate::metrics::OpStats> {
        let named = |name: &str| name.split(' ').next() == Some(id);
        self.operators
            .iter()
            .find(|(name, _)| named(name))
            .map(|(_, stats)| stats)
    }

    /// The counters of source `name`.
    pub fn source(&self, name: &str) -> Option<&crate::metrics::SourceStats> {
        self.sources.iter().find(|s| s.name == name)
    }
}

impl Watch {
    pub fn new() -> Self {
        Watch::default()
    }

    /// Follows a run that started at `started` and reports to `metrics`.
    pub(crate) fn attach(&self, metrics: &Metrics, started: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((metrics.clone(), started));
    }

    fn current(&self) -> Option<(Metrics, Instant)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The metrics of the run it follows, now (none before a run was given it).
    pub fn metrics(&self) -> Option<MetricsSnapshot> {
        let (metrics, started) = self.current()?;
        Some(MetricsSnapshot {
            elapsed: started.elapsed(),
            operators: metrics
                .ops()
                .into_iter()
                .map(|(name, stats)| (name.to_string(), stats))
                .collect(),
            sources: metrics.sources(),
            dead_letters: metrics.dead_letters(),
            kafka_partitions: metrics.kafka_partitions(),
        })
    }

    /// What the endpoint answers: the run it follows, or an empty one before any.
    #[cfg(feature = "http")]
    fn view(&self) -> crate::http::View {
        let (metrics, started) = self
            .current()
            .unwrap_or_else(|| (Metrics::new(), Instant::now()));
        crate::http::View {
            metrics,
            program: crate::http::program_name(),
            started,
            checkpoints: None,
        }
    }

    /// The metrics in Prometheus's text format, as a pipeline binary's `/metrics` has them.
    #[cfg(feature = "http")]
    pub fn prometheus_text(&self) -> Result<String, Error> {
        crate::http::prometheus_text(&self.view()).map_err(|e| Error {
            messages: vec![format!("cannot encode the metrics: {e}")],
        })
    }

    /// Serves the runs this watch follows on `addr` (`127.0.0.1:0`: any free port) with a
    /// pipeline binary's endpoint (`/metrics`, `/api/pipeline`, the web UI at `/`; `POST
    /// /stop` and `POST /checkpoint` answer 409: an embedded run is stopped by its program
    /// and takes no checkpoints) and returns the address it listens on. The endpoint runs on
    /// a thread of its own for as long as the process.
    #[cfg(feature = "http")]
    pub fn serve_http(&self, addr: &str) -> Result<std::net::SocketAddr, Error> {
        let watch = self.clone();
        crate::http::serve_current(addr, Arc::new(move || watch.view()))
            .map_err(|e| Error { messages: vec![e] })
    }
}

/// A failed embedded run: the message of every task that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub messages: Vec<String>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.messages.join("; "))
    }
}

impl std::error::Error for Error {}

/// A user-defined aggregate function: a `Default` (and `Clone`, `Debug`, and
/// [`State`](crate::state::State) for checkpoints: `weir::state_struct!(Spread { min, max });`
/// implements it field by field) accumulator that takes the argument values
/// of each record (`add`), combines with an accumulator of later records (`merge`, for
/// session windows) and produces the aggregate's value (`result`).
///
/// A pipeline declares it with its signature, e.g.
/// `aggregate fn p90(amount: f64) -> f64 = crate::udf::P90;`; `Input` is then `f64` (a tuple
/// for several arguments, `Option<T>` for nullable ones).
pub trait Accumulator:
    Default + Clone + std::fmt::Debug + crate::state::State + Send + 'static
{
    type Input;
    type Output;
    fn add(&mut self, input: Self::Input);
    fn merge(&mut self, later: Self);
    fn result(&self) -> Self::Output;
}

/// The weir type of a field of a Rust record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    I64,
    F64,
    Bool,
    String,
    /// Milliseconds since the epoch (an `i64` field marked `#[weir(timestamp)]`).
    Timestamp,
}

impl FieldType {
    pub const fn name(self) -> &'static str {
        match self {
            FieldType::I64 => "i64",
            FieldType::F64 => "f64",
            FieldType::Bool => "bool",
            FieldType::String => "string",
            FieldType::Timestamp => "timestamp",
        }
    }
}

/// One field of a [`Record`]: its name, weir type and whether it may be null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    pub name: &'static str,
    pub ty: FieldType,
    pub nullable: bool,
}

/// A Rust type usable as a pipeline schema: implemented by `#[derive(weir::Record)]`.
pub trait Record: Sized {
    /// The fields, in declaration order.
    const FIELDS: &'static [FieldDesc];
    /// Appends one JSON line (without the newline).
    fn write_json(&self, out: &mut Vec<u8>);
    /// Appends one CSV line (comma-separated, without the newline).
    fn write_csv(&self, out: &mut Vec<u8>);
    /// Decodes one JSON line (members in any order; unknown members are skipped).
    fn from_json(line: &str) -> Result<Self, crate::formats::DecodeError>;
    /// Decodes one comma-separated CSV line (columns in field order).
    fn from_csv(line: &str) -> Result<Self, crate::formats::DecodeError>;
}

/// Reads a field of a caller's record as the type the pipeline's record holds (a clone; a
/// trait so that a mismatched field type is reported as a missing `Field<T>` impl).
pub trait Field<T> {
    fn get(&self) -> T;
}

impl<T: Clone> Field<T> for T {
    #[inline]
    fn get(&self) -> T {
        self.clone()
    }
}

/// Whether `T`'s field `name` exists with this weir type and nullability: the generated code
/// of a pipeline asserts it at compile time for every field of a schema bound to a Rust type.
pub const fn has_field<T: Record>(name: &str, ty: FieldType, nullable: bool) -> bool {
    let mut i = 0;
    while i < T::FIELDS.len() {
        let f = &T::FIELDS[i];
        if str_eq(f.name, name) {
            return f.ty as u8 == ty as u8 && f.nullable == nullable;
        }
        i += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Default)]
    struct Sum(f64);

    impl crate::state::State for Sum {
        fn save(&self, out: &mut Vec<u8>) {
            self.0.save(out);
        }
        fn load(input: &mut &[u8]) -> Result<Self, crate::state::StateError> {
            Ok(Sum(f64::load(input)?))
        }
    }

    impl Accumulator for Sum {
        type Input = f64;
        type Output = f64;
        fn add(&mut self, input: f64) {
            self.0 += input;
        }
        fn merge(&mut self, later: Self) {
            self.0 += later.0;
        }
        fn result(&self) -> f64 {
            self.0
        }
    }

    #[test]
    fn iterator_source_into_collecting_sink() {
        let metrics = Metrics::new();
        let output: Output<i64> = Arc::default();
        let sink = Collect::new(metrics.op("sink"), output.clone());
        let dead = DeadLetters::new("unused.jsonl".into(), metrics.clone());
        run_iter(
            "s",
            vec![(1, "a"), (5, "b"), (3, "c")],
            &metrics,
            &dead,
            |r: &(i64, &str)| r.0 * 10,
            |_| Ok(()),
            Some(EventTime {
                time: |r: &i64| *r,
                max_out_of_orderness_ms: 0,
            }),
            sink,
        )
        .unwrap();
        assert_eq!(take_output(&output), vec![10, 50, 30]);
        assert_eq!(metrics.source_records(), 3);
    }

    #[test]
    fn records_outside_the_event_time_range_are_dead_letters() {
        use crate::formats::time::{check_event_time, TimeRange};
        let dir = std::env::temp_dir().join(format!("weir-embed-dead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let metrics = Metrics::new();
        let output: Output<i64> = Arc::default();
        let sink = Collect::new(metrics.op("sink"), output.clone());
        let dead = DeadLetters::new(path.clone(), metrics.clone());
        let day = 86_400_000;
        run_iter(
            "s",
            vec![day, i64::MAX, 2 * day, i64::MIN, 3 * day],
            &metrics,
            &dead,
            |r: &i64| *r,
            |r| check_event_time(*r, "ts", TimeRange::EVENT_TIME).map(|_| ()),
            Some(EventTime {
                time: |r: &i64| *r,
                max_out_of_orderness_ms: 0,
            }),
            sink,
        )
        .unwrap();
        dead.flush();
        assert_eq!(take_output(&output), vec![day, 2 * day, 3 * day]);
        assert_eq!(metrics.source_records(), 3);
        assert_eq!(metrics.dead_letters(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains(r#""line":2"#), "{text}");
        assert!(
            lines[0].contains("event time +292278994-08-17 07:12:55.807 of field `ts`"),
            "{text}"
        );
        assert!(lines[1].contains(r#""line":4"#), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn embedded_runs_refuse_checkpoints() {
        let args = RunArgs {
            checkpoint_dir: Some("ckpt".into()),
            ..RunArgs::default()
        };
        let err = run(args, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
        let quiet = RunArgs {
            quiet: true,
            ..RunArgs::default()
        };
        assert_eq!(run(quiet, |_| Ok(())), Ok(()));
    }

    fn quiet() -> RunArgs {
        RunArgs {
            quiet: true,
            ..RunArgs::default()
        }
    }

    #[test]
    fn a_failed_run_leaves_later_runs_alone() {
        let failed = run(quiet(), |rt| {
            rt.spawn("fails".into(), || Err("boom".into()));
            Ok(())
        });
        assert_eq!(failed.unwrap_err().messages, ["boom"]);
        let later = run(quiet(), |rt| {
            rt.spawn("works".into(), || Ok(()));
            Ok(())
        });
        assert_eq!(later, Ok(()));
    }

    #[test]
    fn concurrent_runs_keep_their_errors_apart() {
        let (failed_tx, failed_rx) = std::sync::mpsc::channel::<()>();
        let healthy = std::thread::spawn(move || {
            run(quiet(), move |rt| {
                // Ends only once the other run has failed.
                rt.spawn("waits".into(), move || {
                    failed_rx.recv().map_err(|e| e.to_string())
                });
                Ok(())
            })
        });
        let failed = run(quiet(), |rt| {
            rt.spawn("fails".into(), || Err("boom".into()));
            Ok(())
        });
        assert_eq!(failed.unwrap_err().messages, ["boom"]);
        failed_tx.send(()).unwrap();
        assert_eq!(healthy.join().unwrap(), Ok(()));
    }

    /// What reaches the end of a chain, in order.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Collector<i64> for Log {
        fn push(&mut self, r: &i64) {
            self.0.lock().unwrap().push(format!("r{r}"));
        }
        fn watermark(&mut self, wm: i64) {
            self.0.lock().unwrap().push(format!("wm{wm}"));
        }
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    /// An input loop of a run with `idle_timeout` behind two upstream instances, the second
    /// of which goes quiet for a while: what reaches its chain.
    fn input_loop_with(idle_timeout: Option<std::time::Duration>) -> Vec<String> {
        use crate::channel::{channels, run_input, Exchange};
        let log = Log::default();
        let args = RunArgs {
            idle_timeout,
            ..quiet()
        };
        run(args, |rt| {
            let (senders, mut receivers) = channels::<i64>(1);
            let receiver = receivers.pop().expect("one receiver");
            let chain = log.clone();
            rt.spawn("input".into(), move || {
                run_input(receiver, 2, chain);
                Ok(())
            });
            let metrics = Metrics::new();
            let mut a = Exchange::new(metrics.op("a"), 0, senders.clone(), |_: &i64| 0, |r| *r);
            let mut b = Exchange::new(metrics.op("b"), 1, senders, |_: &i64| 0, |r| *r);
            b.watermark(10);
            a.watermark(100); // b holds it at 10
            std::thread::sleep(std::time::Duration::from_millis(200)); // b is quiet
            a.watermark(150); // passes only where b counts as idle
            a.finish();
            b.finish();
            Ok(())
        })
        .unwrap();
        let seen = log.0.lock().unwrap().clone();
        seen
    }

    #[test]
    fn each_run_has_its_own_idle_timeout() {
        let idle = input_loop_with(Some(std::time::Duration::from_millis(50)));
        assert!(idle.contains(&"wm150".to_string()), "{idle:?}");
        let patient = input_loop_with(None);
        assert!(!patient.contains(&"wm150".to_string()), "{patient:?}");
        let idle_again = input_loop_with(Some(std::time::Duration::from_millis(50)));
        assert!(idle_again.contains(&"wm150".to_string()), "{idle_again:?}");
    }

    #[test]
    fn each_run_has_its_own_rate_limit() {
        use std::time::Duration;
        // How long a source of a run with `rate_limit` waits for its 10th record.
        let pace = |rate_limit: u64| {
            let took: Arc<Mutex<Duration>> = Arc::default();
            let args = RunArgs {
                rate_limit,
                ..quiet()
            };
            let out = took.clone();
            std::thread::spawn(move || {
                run(args, |rt| {
                    rt.spawn("source".into(), move || {
                        let started = Instant::now();
                        crate::sources::Pacer::new(1).wait(10);
                        *out.lock().unwrap() = started.elapsed();
                        Ok(())
                    });
                    Ok(())
                })
            })
            .join()
            .unwrap()
            .unwrap();
            let took = *took.lock().unwrap();
            took
        };
        let limited = std::thread::spawn(move || pace(20));
        let free = pace(0);
        assert!(free < Duration::from_millis(100), "{free:?}");
        let limited = limited.join().unwrap();
        assert!(limited >= Duration::from_millis(450), "{limited:?}");
    }

    #[test]
    fn inputs_are_taken_once() {
        let input = input(vec![1, 2].into());
        assert_eq!(take_input(&input).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(take_input(&input).count(), 0);
    }

    #[test]
    fn records_from_a_channel_end_when_senders_are_gone() {
        let (tx, rx) = std::sync::mpsc::channel();
        let feeder = std::thread::spawn(move || {
            for i in 0..5 {
                tx.send(i).unwrap();
            }
        });
        let records = Records::channel(rx);
        feeder.join().unwrap();
        assert_eq!(records.sum::<i32>(), 10);
    }

    #[test]
    fn accumulator_merges() {
        let mut a = Sum::default();
        a.add(1.5);
        let mut b = Sum::default();
        b.add(2.0);
        a.merge(b);
        assert_eq!(a.result(), 3.5);
    }
}
