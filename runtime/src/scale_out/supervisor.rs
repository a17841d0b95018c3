//! The scale-out supervisor (see [`crate::scale_out`]): a member of the first Kafka source's
//! consumer group that reads nothing itself. For each partition the group assigns it, it runs
//! this same binary as a task (a child process reading only that partition, checkpointing into
//! `DIR/partition-N`); it stops a task (a drain: a last checkpoint, committed) before the
//! partition is released; it restarts a task
//! that failed (at most [`MAX_FAILURES`] times in a row); it commits the offsets the tasks'
//! checkpoints cover to the group, for monitoring; and it ends on SIGTERM, or with
//! `--kafka-stop-after-idle` once every partition's task has finished.
//!
//! The default assignment strategy is `cooperative-sticky`, so a rebalance stops only the
//! tasks whose partitions move (an eager strategy, if configured, stops them all).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use super::{offsets_key, read_offsets, task_dir, task_folder};
use crate::run::RunArgs;
use crate::sources::kafka::KafkaSourceConfig;

/// A task that fails this many times in a row fails the supervisor.
pub const MAX_FAILURES: u32 = 5;
const POLL: Duration = Duration::from_millis(200);
const COMMIT_EVERY: Duration = Duration::from_secs(1);
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A running task.
struct Task {
    child: Child,
}

/// How long a task may take to drain (a last checkpoint and its commits) before it is killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Stops tasks and waits until they are gone: only then may their partitions go to another
/// process. SIGTERM asks each to drain: take a last checkpoint, commit it and exit, so that
/// the next owner resumes exactly there. One that does not exit in time is killed, which loses
/// nothing either: the next owner resumes from the last checkpoint, and what was written after
/// it was never committed.
fn stop_all(mut tasks: Vec<Task>) {
    for task in &tasks {
        // SAFETY: kill(2) on our own child's pid; the child is not reaped yet, so the pid is
        // still its own.
        unsafe {
            libc::kill(task.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline && !tasks.is_empty() {
        tasks.retain_mut(|t| !matches!(t.child.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut task in tasks {
        let _ = task.child.kill();
        let _ = task.child.wait();
    }
}

/// What the poll loop and the rebalance callback share (the callback runs inside `poll`, on
/// the same thread).
#[derive(Default)]
struct Shared {
    /// Partitions of the topic the group assigned to this process.
    assigned: BTreeSet<i32>,
    running: BTreeMap<i32, Task>,
    warnings: Vec<String>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

struct Context {
    topic: String,
    shared: Arc<Mutex<Shared>>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        let mut shared = lock(&self.shared);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    shared
                        .warnings
                        .push(format!("assigning partitions failed: {e}"));
                }
                // The tasks read; the supervisor only holds the assignment.
                if let Err(e) = consumer.pause(tpl) {
                    shared
                        .warnings
                        .push(format!("pausing partitions failed: {e}"));
                }
                shared.assigned.extend(partitions.iter().copied());
                tracing::info!(
                    "scale-out: partitions {partitions:?} of `{}` assigned; this process \
                     now runs {:?}",
                    self.topic,
                    shared.assigned
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut stopping = Vec::new();
                for p in &partitions {
                    shared.assigned.remove(p);
                    stopping.extend(shared.running.remove(p));
                }
                stop_all(stopping);
                tracing::info!(
                    "scale-out: partitions {partitions:?} of `{}` revoked{}",
                    self.topic,
                    if consumer.assignment_lost() {
                        " (assignment lost)"
                    } else {
                        ""
                    }
                );
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    shared
                        .warnings
                        .push(format!("unassigning partitions failed: {e}"));
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                shared.warnings.push(format!("rebalance failed: {code}"));
                stop_all(std::mem::take(&mut shared.running).into_values().collect());
                shared.assigned.clear();
                let _ = if cooperative {
                    consumer
                        .assignment()
                        .and_then(|current| consumer.incremental_unassign(&current))
                } else {
                    consumer.unassign()
                };
            }
        }
    }
}

/// Runs the supervisor until SIGTERM (or until every partition's task has finished, with
/// `--kafka-stop-after-idle`); the exit code says whether every task succeeded.
pub fn run(args: &RunArgs, sources: Vec<KafkaSourceConfig>) -> ExitCode {
    match supervise(args, sources) {
        // Stopped by SIGTERM or Ctrl-C (its tasks drained): the signal's exit code.
        Ok(()) => crate::stop::signal().map_or(ExitCode::SUCCESS, |(_, code)| ExitCode::from(code)),
        Err(err) => {
            tracing::error!("scale-out: {err}");
            ExitCode::FAILURE
        }
    }
}

fn supervise(args: &RunArgs, sources: Vec<KafkaSourceConfig>) -> Result<(), String> {
    let dir = args
        .checkpoint_dir
        .clone()
        .ok_or("--scale-out needs --checkpoint-dir")?;
    let store = crate::checkpoint::Store::open(&dir)?;
    store.create()?;
    let first = sources.first().ok_or("the pipeline has no Kafka source")?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let config = crate::kafka::client_config(
        &first.brokers,
        &[
            ("group.id", &first.group),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ],
        &first.properties,
        &[],
    );
    let consumer: BaseConsumer<Context> = config
        .create_with_context(Context {
            topic: first.topic.clone(),
            shared: shared.clone(),
        })
        .map_err(|e| format!("kafka: {e}"))?;
    let partitions = co_partitioned(&consumer, &sources)?;
    consumer
        .subscribe(&[first.topic.as_str()])
        .map_err(|e| format!("kafka: {e}"))?;
    tracing::info!(
        "scale-out: joining group `{}` for `{}` ({partitions} partitions); tasks \
         checkpoint into {}",
        first.group,
        first.topic,
        dir.display()
    );
    let task_args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--scale-out")
        .collect();
    let mut failures: BTreeMap<i32, u32> = BTreeMap::new();
    let mut retry_at: BTreeMap<i32, Instant> = BTreeMap::new();
    let mut finished: BTreeSet<i32> = BTreeSet::new();
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let mut started_tasks = 0u64;
    let mut reported: Vec<String> = Vec::new();
    let outcome = loop {
        if let Some(Err(err)) = consumer.poll(POLL) {
            if let Some((code, reason)) = consumer.client().fatal_error() {
                break Err(format!("kafka: fatal error {code}: {reason}"));
            }
            let text = err.to_string();
            if !reported.contains(&text) {
                tracing::warn!("scale-out: kafka: {text}");
                reported.push(text);
            }
        }
        let now = Instant::now();
        let mut shared_now = lock(&shared);
        for w in std::mem::take(&mut shared_now.warnings) {
            tracing::warn!("scale-out: kafka: {w}");
        }
        // Tasks that ended.
        let mut ended = Vec::new();
        for (p, task) in shared_now.running.iter_mut() {
            if let Ok(Some(status)) = task.child.try_wait() {
                ended.push((*p, status));
            }
        }
        let mut failed = None;
        for (p, status) in ended {
            shared_now.running.remove(&p);
            if status.success() {
                finished.insert(p);
                failures.remove(&p);
                continue;
            }
            if status.code() == Some(crate::checkpoint::DRAINED_EXIT_CODE) {
                // Stopped by someone else's SIGTERM: still ours, so it starts again.
                continue;
            }
            let n = failures.entry(p).or_default();
            *n += 1;
            tracing::warn!("scale-out: the task of partition {p} failed ({status}), try {n}");
            if *n >= MAX_FAILURES {
                failed = Some(format!(
                    "the task of partition {p} failed {n} times in a row; see its messages above"
                ));
            }
            retry_at.insert(p, now + RETRY_AFTER);
        }
        if let Some(err) = failed {
            break Err(err);
        }
        // Tasks to start.
        let due: Vec<i32> = shared_now
            .assigned
            .iter()
            .copied()
            .filter(|p| !shared_now.running.contains_key(p) && !finished.contains(p))
            .filter(|p| retry_at.get(p).is_none_or(|t| *t <= now))
            .collect();
        let mut cannot_start = None;
        for p in due {
            match start_task(&task_args, &dir, p) {
                Ok(task) => {
                    started_tasks += 1;
                    shared_now.running.insert(p, task);
                }
                Err(err) => {
                    cannot_start = Some(err);
                    break;
                }
            }
        }
        drop(shared_now);
        if let Some(err) = cannot_start {
            break Err(err);
        }
        if now.duration_since(last_commit) >= COMMIT_EVERY {
            last_commit = now;
            commit_offsets(
                &consumer,
                &first.topic,
                &store,
                &shared,
                &mut committed,
                false,
            );
        }
        if crate::stop::requested() {
            break Ok(());
        }
        if args.kafka_stop_after_idle.is_some()
            && (0..partitions).all(|p| crate::checkpoint::finished(&store.child(&task_folder(p))))
        {
            break Ok(());
        }
    };
    stop_all(
        std::mem::take(&mut lock(&shared).running)
            .into_values()
            .collect(),
    );
    commit_offsets(
        &consumer,
        &first.topic,
        &store,
        &shared,
        &mut committed,
        true,
    );
    tracing::info!(
        "scale-out: {started_tasks} tasks started; partitions finished here: {finished:?}"
    );
    outcome
}

/// The partition count of the first source's topic, after checking that every source's topic
/// has the same (a task reads partition N of each: co-partitioned input).
fn co_partitioned(
    consumer: &BaseConsumer<Context>,
    sources: &[KafkaSourceConfig],
) -> Result<i32, String> {
    let mut counts = Vec::new();
    for source in sources {
        let topic = source.topic.as_str();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("kafka: cannot read topic `{topic}`: {e}"))?;
        let n = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        if n == 0 {
            return Err(format!(
                "kafka: topic `{topic}` has no partitions (does it exist?)"
            ));
        }
        counts.push((topic, n));
    }
    let (first_topic, first_n) = counts[0];
    if let Some((topic, n)) = counts.iter().find(|(_, n)| *n != first_n) {
        return Err(format!(
            "the tasks of a scale-out run read partition N of every source's topic, so the \
             topics must have the same number of partitions: `{first_topic}` has {first_n}, \
             `{topic}` has {n}"
        ));
    }
    i32::try_from(first_n).map_err(|_| format!("`{first_topic}` has too many partitions"))
}

/// Starts the task of `partition`: this binary with the same options, reading that partition
/// only and checkpointing into its folder. Its messages go to stderr prefixed with the
/// partition.
fn start_task(args: &[String], dir: &Path, partition: i32) -> Result<Task, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let folder: PathBuf = task_dir(dir, partition);
    let mut child = Command::new(exe)
        .args(args)
        .arg("--checkpoint-dir")
        .arg(&folder)
        .arg("--task-partition")
        .arg(partition.to_string())
        .arg("--task-parent")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the task of partition {partition}: {e}"))?;
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => tracing::info!(partition, "{line}"),
                    Err(_) => break,
                }
            }
        });
    }
    Ok(Task { child })
}

/// Commits, for each partition assigned here, the offset its task's complete checkpoints
/// cover (what a new task would resume from), when it changed.
fn commit_offsets(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    store: &crate::checkpoint::Store,
    shared: &Mutex<Shared>,
    committed: &mut BTreeMap<i32, i64>,
    last: bool,
) {
    let assigned = lock(shared).assigned.clone();
    let mut list = TopicPartitionList::new();
    let mut changed = Vec::new();
    for p in assigned {
        let task = store.child(&task_folder(p));
        for (partition, offset) in read_offsets(&task, &offsets_key(topic)) {
            if partition == p && committed.get(&p) != Some(&offset) {
                let _ = list.add_partition_offset(topic, p, Offset::Offset(offset));
                changed.push((p, offset));
            }
        }
    }
    if changed.is_empty() {
        return;
    }
    // Synchronous, so that a failed commit is tried again at the next round (once a second:
    // cheap).
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => committed.extend(changed),
        Err(e) if last => tracing::warn!("scale-out: kafka: committing offsets failed: {e}"),
        Err(_) => {}
    }
}
