//! Checkpoints: consistent snapshots of a running pipeline, and recovery from them.
//!
//! The scheme is aligned barriers (Chandy–Lamport as Flink does it):
//! 1. A trigger thread asks for checkpoint `n` by raising its run's request counter
//!    ([`StateSlot::barrier_due`] reads it). Each source instance
//!    notices between records, saves its position (generator offset, file offset) and
//!    watermark, and sends a barrier down its chain ([`Collector::barrier`](crate::collector::Collector::barrier)).
//! 2. Operators in a chain save their state when the barrier passes and forward it. An
//!    exchange sends it to every downstream instance; an input loop with several upstream
//!    instances holds back the records of those that already sent barrier `n` until all have
//!    (alignment), so every part describes the same cut of the stream.
//! 3. Sinks save what they must publish: a file sink closes the epoch's pending file and
//!    hands over the append that will publish it.
//! 4. When every registered part is in, the manifest is written (temporary name, sync,
//!    rename; in an object store, created with put-if-absent): the checkpoint is complete.
//!    Then the commit actions run and older checkpoints beyond the kept count are deleted.
//!
//! On start with a checkpoint directory, the latest complete manifest is read, its commit
//! actions run again (idempotent), its plan is compared with this binary's, and every slot
//! gets its saved bytes back. A run that ends normally writes a `final` manifest whose
//! actions publish the output written since the last checkpoint; starting again on a
//! directory that holds one does nothing.
//!
//! The [`Coordinator`] is one run's: it lives in the run's
//! [`RunContext`](crate::context::RunContext), and the free functions here ([`slot`],
//! [`enabled`], ...) find it through the context of the calling thread, so two runs in one
//! process checkpoint each to its own folder.
//!
//! Layout: `DIR/chk-<n>/MANIFEST` and `DIR/chk-<n>/<slot>-<instance>.state` (in an object
//! store `<slot>-<instance>-<checksum>.state`, see [`store`]).

#[cfg(feature = "object-store")]
mod aws_files;
pub mod commit;
pub mod compat;
pub mod delta;
mod folder;
pub mod manifest;
pub mod mapped;
#[cfg(feature = "object-store")]
mod object;
mod recover;
mod slot;
pub mod spill;
pub mod store;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use commit::CommitAction;
pub use folder::finished;
use folder::*;
use manifest::{Kind, Link, Manifest, PartEntry, SlotEntry};
pub use recover::{inspect, Inspection};
pub(crate) use slot::snapshot_fields;
pub use slot::{restore, snapshot, snapshot_incremental, Snapshot, StateSlot};
pub use store::Store;
pub use verify::{Verdict, Verifier, Verifiers};

use crate::state::StateError;

/// The coordinator of the calling thread's run, when it takes checkpoints.
pub fn coordinator() -> Option<Arc<Coordinator>> {
    crate::context::with(|c| c.coordinator().cloned())
}

/// The slot of instance `instance` of participant `id` (inert when checkpointing is off).
pub fn slot(id: &'static str, instance: usize) -> StateSlot {
    match coordinator() {
        Some(c) => c.slot(id, instance),
        None => StateSlot::inert(),
    }
}

/// Whether this run resumed from a checkpoint (its outputs add to what earlier runs wrote).
pub fn resumed() -> bool {
    coordinator().is_some_and(|c| c.restored.is_some())
}

/// Whether this run takes checkpoints.
pub fn enabled() -> bool {
    crate::context::with(|c| c.coordinator().is_some())
}

/// A source instance has read all its input. Checkpoints go on while other sources still
/// read (the ended one keeps passing barriers with its final position, see
/// [`StateSlot::end_of_input`]); once every source instance has ended, none is asked for any
/// more: the run drains and ends with its `final` manifest.
///
/// Call it before the source's last barrier check: afterwards no checkpoint may be asked for,
/// and one asked for before is visible in [`requested`], so the source can still send its
/// barrier (a checkpoint in flight then completes, and no sink waits for it forever).
pub fn source_ended() {
    if let Some(c) = coordinator() {
        c.source_ended();
    }
}

/// Whether a checkpoint of this run was given up (a task or a sink failed): the run is failing,
/// and sources that never end (Kafka) stop reading, so that the process exits and a restart
/// resumes from the last complete checkpoint.
pub fn given_up() -> bool {
    coordinator().is_some_and(|c| c.abandoned.load(Ordering::Relaxed))
}

/// `--checkpoint-dir`, `--checkpoint-interval`, `--checkpoints-kept`.
#[derive(Clone, Debug)]
pub struct Config {
    /// A folder, `file:///abs/path` or `s3://bucket/prefix` (see [`store`]).
    pub dir: PathBuf,
    pub interval: Duration,
    pub keep: usize,
    /// Whether operators that track their changes write deltas between full parts
    /// (`--checkpoint-incremental`, on by default; see [`delta`]).
    pub incremental: bool,
    /// How much of a part is held in memory: while it is saved, before it is written out to
    /// its file (see [`spill`]); on restore, parts this large are mapped (see [`mapped`])
    /// (`--checkpoint-buffer`).
    pub buffer: usize,
    /// What checks the external commits checkpoints note (a Kafka transaction).
    pub verifiers: Verifiers,
}

/// Where a checkpoint stands (see [`StateSlot::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Complete,
    /// Still being taken.
    Pending,
    /// Given up (a task failed, or it was never asked for): it will never complete.
    GivenUp,
}

/// What a restart found in the checkpoint directory.
pub enum Start {
    /// No checkpoint: start from the beginning.
    Fresh,
    /// Resume from this checkpoint.
    Restored(u64),
    /// The directory holds a run that finished; nothing to do.
    Finished(u64),
}

#[derive(Default)]
struct InFlight {
    id: u64,
    started: Option<Instant>,
    parts: BTreeMap<(String, u32), Part>,
}

/// One instance's part of a checkpoint: state size and checksum, commit actions, notes.
struct Part {
    bytes: u64,
    checksum: u64,
    /// A delta: the checksum of the file it builds on (the newest of the instance's chain).
    base: Option<u64>,
    commits: Vec<CommitAction>,
    notes: Vec<String>,
}

#[derive(Default, Clone)]
pub struct Stats {
    pub completed: u64,
    /// Checkpoints given up (a task or a sink failed while one was in flight).
    pub failed: u64,
    /// The newest complete checkpoints of this run, oldest first (at most [`HISTORY`]).
    pub history: std::collections::VecDeque<Completed>,
    pub restored_from: Option<u64>,
    pub last_duration: Duration,
    pub max_duration: Duration,
    pub last_bytes: u64,
    /// Whether the last checkpoint wrote a delta for some instance (else it was full).
    pub last_delta: bool,
    /// Complete checkpoints that wrote only full parts, their bytes and time in all.
    pub full: Totals,
    /// Complete checkpoints that wrote a delta for some instance (incremental), in all.
    pub delta: Totals,
    /// The last checkpoint of a run asked to stop (see `Coordinator::drain`).
    pub stopped_after: Option<u64>,
}

/// Checkpoints of one kind (full or delta) taken by a run, in all.
#[derive(Default, Clone, Copy, Debug)]
pub struct Totals {
    pub count: u64,
    pub bytes: u64,
    pub duration: Duration,
}

impl Totals {
    fn add(&mut self, bytes: u64, duration: Duration) {
        self.count += 1;
        self.bytes += bytes;
        self.duration += duration;
    }

    /// `3 full (avg 1.2 MiB, 40.1 ms)`, or `None` when there were none.
    pub fn describe(&self, kind: &str) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} {kind} (avg {} bytes, {:.1} ms)",
                self.count,
                self.bytes / self.count,
                self.duration.as_secs_f64() * 1e3 / self.count as f64
            )
        })
    }
}

/// How many complete checkpoints [`Stats::history`] keeps.
pub const HISTORY: usize = 16;

/// One complete checkpoint, as the HTTP endpoint shows it.
#[derive(Clone, Debug)]
pub struct Completed {
    pub id: u64,
    /// When its manifest was written (ms since the Unix epoch).
    pub completed_ms: i64,
    pub duration: Duration,
    /// State bytes over every part.
    pub bytes: u64,
    /// Whether some part was a delta.
    pub delta: bool,
}

struct Inner {
    plan: Vec<SlotEntry>,
    /// Source instances in the plan, and how many have read all their input.
    sources: usize,
    sources_ended: usize,
    fingerprint: String,
    expected: usize,
    next_id: u64,
    in_flight: Option<InFlight>,
    /// Actions sinks hand over when their input ends, published by the final manifest.
    final_commits: BTreeMap<(String, u32), Vec<CommitAction>>,
    /// External commits of the last epoch (a Kafka transaction), run by [`Coordinator::finish`]
    /// with the final manifest's id, before it is written.
    final_hooks: Vec<(String, u32, String, FinalHook)>,
    stats: Stats,
    /// Each instance's chain in the latest complete checkpoint (a full part and the deltas
    /// after it, oldest first): what its next delta builds on.
    chains: BTreeMap<(String, u32), Vec<Link>>,
    /// The checkpoints whose folders the chains of each complete checkpoint read from (those
    /// read so far; see [`Coordinator::prune`]).
    references: BTreeMap<u64, std::collections::BTreeSet<u64>>,
}

/// An external commit of a run's last epoch, given the id the final manifest takes.
pub type FinalHook = Box<dyn FnOnce(u64) -> Result<(), String> + Send>;

/// An external commit of the epochs up to a complete checkpoint (its id).
pub type CompleteHook = Box<dyn Fn(u64) -> Result<(), String> + Send>;

/// How a scale-out task that drained for a handover exits (neither finished nor failed).
pub const DRAINED_EXIT_CODE: i32 = 3;

/// Takes checkpoints and restores them (one per run, see the module docs).
pub struct Coordinator {
    config: Config,
    /// The id of the latest checkpoint asked for (0: none yet). Sources poll it between
    /// records ([`StateSlot::barrier_due`]).
    requested: AtomicU64,
    /// The run is over: the checkpoint thread ends.
    over: AtomicBool,
    restored: Option<Manifest>,
    /// What each (slot, instance) restores, handed out once.
    restored_parts: Mutex<BTreeMap<(String, u32), delta::Restored>>,
    inner: Mutex<Inner>,
    /// Signalled when a checkpoint completes or is given up.
    changed: std::sync::Condvar,
    completed: AtomicU64,
    stopped: AtomicBool,
    /// A checkpoint was given up: the run is failing.
    abandoned: AtomicBool,
    /// One was asked for now (`POST /checkpoint`), ahead of the interval.
    asked: AtomicBool,
    /// External commits to make as soon as a checkpoint is complete (a Kafka transaction), and
    /// the checkpoint they were last made for.
    complete_hooks: Mutex<Vec<CompleteHook>>,
    hooks_done: AtomicU64,
    /// What the instances of one participant share in this run (a sink's transaction), by
    /// key (see [`StateSlot::shared`]).
    shared: Mutex<BTreeMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
    /// Where checkpoints go: `config.dir` opened.
    store: Store,
    /// `DIR/LOCK`, locked for the life of the process: one run per checkpoint folder (in an
    /// object store, a lease renewed until the run ends).
    lock: store::Lock,
    /// `DIR/ID`: a name made when the folder is first used. External commit markers carry it,
    /// so that a marker left by an earlier folder (removed, made again) is never taken for
    /// one of this folder's.
    folder_id: String,
}

impl Coordinator {
    /// Opens (or creates) the checkpoint directory and recovers the latest complete
    /// checkpoint (running its commit actions again). The run it is for holds it in its
    /// context ([`RunContext::set_coordinator`](crate::context::RunContext::set_coordinator)).
    pub fn open(config: Config) -> Result<(Coordinator, Start), String> {
        let store = Store::open(&config.dir)?;
        store.create()?;
        let lock = store.lock()?;
        let folder_id = folder_id(&store)?;
        let mut restored = None;
        let mut parts = BTreeMap::new();
        let mut start = Start::Fresh;
        if let Some(loaded) =
            recover::choose(&store, &config.verifiers, config.buffer.max(1) as u64)?
        {
            let (id, m) = (loaded.manifest.id, loaded.manifest);
            for action in &m.commits {
                action
                    .apply()
                    .map_err(|e| format!("recovering checkpoint {id}: {e}"))?;
            }
            if m.kind == Kind::Final {
                mark_final_done(&store, &m)?;
                start = Start::Finished(id);
            } else {
                parts = loaded.parts;
                start = Start::Restored(id);
            }
            restored = Some(m);
        }
        let next_id = restored.as_ref().map_or(1, |m| m.id + 1);
        let restored_id = restored
            .as_ref()
            .filter(|m| m.kind == Kind::Checkpoint)
            .map_or(0, |m| m.id);
        let stats = Stats {
            restored_from: restored.as_ref().map(|m| m.id),
            ..Stats::default()
        };
        let chains = restored
            .as_ref()
            .filter(|m| m.kind == Kind::Checkpoint)
            .map(chains_of)
            .unwrap_or_default();
        let coordinator = Coordinator {
            config,
            requested: AtomicU64::new(0),
            over: AtomicBool::new(false),
            restored,
            restored_parts: Mutex::new(parts),
            changed: std::sync::Condvar::new(),
            inner: Mutex::new(Inner {
                plan: Vec::new(),
                sources: 0,
                sources_ended: 0,
                fingerprint: String::new(),
                expected: 0,
                next_id,
                in_flight: None,
                final_commits: BTreeMap::new(),
                final_hooks: Vec::new(),
                stats,
                chains,
                references: BTreeMap::new(),
            }),
            completed: AtomicU64::new(restored_id),
            stopped: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            asked: AtomicBool::new(false),
            complete_hooks: Mutex::new(Vec::new()),
            // The restored checkpoint's commits were made by the run that took it; the sinks'
            // transactions now hold the next epoch, which only a new checkpoint may commit.
            hooks_done: AtomicU64::new(restored_id),
            shared: Mutex::new(BTreeMap::new()),
            store,
            lock,
            folder_id,
        };
        Ok((coordinator, start))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest checkpoint asked for; a source that has not yet sent a barrier for it does
    /// so.
    #[inline]
    fn requested(&self) -> u64 {
        self.requested.load(Ordering::Relaxed)
    }

    /// Whether this run resumed from a checkpoint.
    pub fn resumed(&self) -> bool {
        self.restored.is_some()
    }

    /// A source instance has read all its input (see [`source_ended`]).
    pub fn source_ended(&self) {
        let mut inner = self.lock();
        inner.sources_ended += 1;
        if inner.sources_ended >= inner.sources {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }

    /// Whether every source instance of the run has read all its input (read under the lock
    /// that [`source_ended`] and the checkpoint thread take, so a checkpoint asked for before
    /// is visible afterwards).
    fn all_sources_ended(&self) -> bool {
        let inner = self.lock();
        inner.sources_ended >= inner.sources
    }

    /// The value shared in this run under `key`, made by `make` the first time (under a
    /// lock: one caller makes it, the others wait and get it).
    fn shared<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Arc<T>, String>,
    ) -> Result<Arc<T>, String> {
        let mut all = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = all.get(key) {
            return found
                .clone()
                .downcast::<T>()
                .map_err(|_| format!("internal error: `{key}` is shared as another type"));
        }
        let made = make()?;
        all.insert(key.to_string(), made.clone());
        Ok(made)
    }

    /// Whether a checkpoint of this run was given up (see [`given_up`]).
    pub fn given_up(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Declares every slot of this binary's plan; when restoring, refuses a checkpoint taken by
    /// a different plan, saying what changed.
    pub fn plan(&self, fingerprint: &str, slots: Vec<SlotEntry>) -> Result<(), String> {
        if let Some(m) = self
            .restored
            .as_ref()
            .filter(|m| m.kind == Kind::Checkpoint)
        {
            compat::check(m, &slots, fingerprint, &self.store.describe())?;
        }
        let mut inner = self.lock();
        inner.expected = slots.iter().map(|s| s.instances).sum();
        inner.sources = slots
            .iter()
            .filter(|s| s.is_source())
            .map(|s| s.instances)
            .sum();
        inner.plan = slots;
        inner.fingerprint = fingerprint.to_string();
        Ok(())
    }

    /// The slot of one operator instance, with its restored bytes if any.
    pub fn slot(self: &Arc<Self>, id: &'static str, instance: usize) -> StateSlot {
        let restored = self
            .restored_parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(id.to_string(), instance as u32));
        StateSlot {
            id,
            instance: instance as u32,
            restored,
            coordinator: Some(self.clone()),
            passed: 0,
            tracked: None,
        }
    }

    /// Whether instances whose operators track their changes write deltas.
    pub fn incremental(&self) -> bool {
        self.config.incremental
    }

    /// The checksum a delta of instance `instance` of `slot` builds on (the newest file of its
    /// chain) and the size of the chain's full part, when its next file may be a delta;
    /// `None`: it writes a full part.
    fn delta_base(&self, slot: &str, instance: u32) -> Option<(u64, u64)> {
        if !self.config.incremental {
            return None;
        }
        let inner = self.lock();
        let chain = inner.chains.get(&(slot.to_string(), instance))?;
        let (full, last) = (chain.first()?, chain.last()?);
        delta::Policy::default()
            .delta_after(chain)
            .then_some((last.checksum, full.bytes))
    }

    /// Starts the thread that asks for a checkpoint every interval, in the context of the run
    /// `context` (where its failures go, whose sources it stops).
    /// The thread ends when the run is over ([`release`](Self::release)).
    pub fn start(self: &Arc<Self>, context: crate::context::RunContext) -> Result<(), String> {
        let interval = self.config.interval;
        #[cfg(feature = "object-store")]
        if let store::Lock::Object(lease) = &self.lock {
            lease.attach(context.clone());
        }
        let coordinator = self.clone();
        std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                let _run = context.enter();
                coordinator.trigger_loop(interval)
            })
            .map(|_| ())
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))
    }

    /// The checkpoint thread: asks for a checkpoint every interval until the run stops.
    fn trigger_loop(&self, interval: Duration) {
        let over = || self.over.load(Ordering::Relaxed);
        while !over() {
            let slept = Instant::now();
            while slept.elapsed() < interval
                && !crate::stop::requested()
                && !self.asked.load(Ordering::Relaxed)
                && !over()
            {
                std::thread::sleep(interval.min(Duration::from_millis(20)));
                self.run_complete_hooks();
            }
            if over() {
                return;
            }
            if crate::stop::requested() {
                self.drain();
            }
            if crate::stop::requested() || self.stopped.load(Ordering::Relaxed) {
                // No more checkpoints (the run is stopping, or every source has ended, or
                // one was given up); a checkpoint still in flight completes, and its
                // external commits are made here, until the run is over.
                while !over() {
                    std::thread::sleep(Duration::from_millis(20));
                    self.run_complete_hooks();
                }
                return;
            }
            let mut inner = self.lock();
            if self.stopped.load(Ordering::Relaxed) {
                continue;
            }
            if inner.in_flight.is_some() || inner.expected == 0 {
                if self.asked.load(Ordering::Relaxed) {
                    // Asked for one now: the next as soon as this one is complete.
                    drop(inner);
                    std::thread::sleep(Duration::from_millis(5));
                }
                continue; // the previous one is still being taken
            }
            self.asked.store(false, Ordering::Relaxed);
            let id = inner.next_id;
            inner.next_id += 1;
            inner.in_flight = Some(InFlight {
                id,
                started: Some(Instant::now()),
                parts: BTreeMap::new(),
            });
            self.requested.store(id, Ordering::Release);
        }
    }

    /// Makes the external commits of the latest complete checkpoint, once.
    fn run_complete_hooks(&self) {
        let done = self.completed();
        if done <= self.hooks_done.load(Ordering::Relaxed) {
            return;
        }
        let hooks = self
            .complete_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for hook in hooks.iter() {
            if let Err(e) = hook(done) {
                crate::context::report_error(e);
                self.abandon();
            }
        }
        self.hooks_done.store(done, Ordering::Relaxed);
    }

    /// The run was asked to stop (SIGTERM or Ctrl-C; for a scale-out task, its partition
    /// moves to another process): takes one more checkpoint (after the one in flight, if
    /// any), makes its external commits, then lets the sources stop, so that the next start
    /// resumes exactly there instead of replaying from the last periodic checkpoint. With
    /// nothing to take (every source has ended: the run finishes by itself; or a checkpoint
    /// was given up: it fails) it does nothing. A checkpoint that does not complete in time
    /// ends the process at once: the next start resumes from the last complete one, as after
    /// a kill.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut id = None;
        while Instant::now() < deadline {
            let mut inner = self.lock();
            // Under the lock, as `source_ended` sets it: no barrier would come.
            if self.stopped.load(Ordering::Relaxed) && id.is_none() {
                return;
            }
            match (&inner.in_flight, id) {
                (None, None) if inner.expected > 0 => {
                    let next = inner.next_id;
                    inner.next_id += 1;
                    inner.in_flight = Some(InFlight {
                        id: next,
                        started: Some(Instant::now()),
                        parts: BTreeMap::new(),
                    });
                    self.requested.store(next, Ordering::Release);
                    id = Some(next);
                }
                (None, Some(_)) => break, // complete or given up
                _ => {}
            }
            drop(inner);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.run_complete_hooks();
        match id {
            Some(id) if self.completed() >= id && !self.abandoned.load(Ordering::Relaxed) => {
                self.lock().stats.stopped_after = Some(id);
                crate::stop::stop_sources();
            }
            _ if self.abandoned.load(Ordering::Relaxed) => {} // the run fails on its own
            _ => {
                let code = if crate::scale_out::task_partition().is_some() {
                    tracing::info!("stopped without a last checkpoint, for a handover");
                    DRAINED_EXIT_CODE
                } else {
                    tracing::info!(
                        "stopped without a last checkpoint (it did not complete in time); \
                         the next start resumes from checkpoint {}",
                        self.completed()
                    );
                    crate::stop::signal().map_or(1, |(_, code)| code as i32)
                };
                self.release();
                crate::context::exit_or_stop(
                    code,
                    "stopped without a last checkpoint (it did not complete in time)",
                )
            }
        }
    }

    /// No more checkpoints (a source has ended: a checkpoint needs every source's barrier).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Gives up the checkpoint being taken (a task failed: it will never complete) and takes
    /// no more.
    pub fn abandon(&self) {
        self.stop();
        self.abandoned.store(true, Ordering::Relaxed);
        let mut inner = self.lock();
        if inner.in_flight.take().is_some() {
            inner.stats.failed += 1;
        }
        drop(inner);
        self.changed.notify_all();
    }

    fn status(&self, checkpoint: u64) -> Status {
        if self.completed() >= checkpoint {
            return Status::Complete;
        }
        // Completion takes the checkpoint out of flight and then sets `completed`, both under
        // the lock: look at both under it, or a completion in between looks given up.
        let inner = self.lock();
        if self.completed() >= checkpoint {
            return Status::Complete;
        }
        if inner.in_flight.as_ref().map(|f| f.id) == Some(checkpoint) {
            Status::Pending
        } else {
            Status::GivenUp
        }
    }

    /// Blocks until `checkpoint` is complete (`true`) or given up (`false`).
    fn wait_complete(&self, checkpoint: u64) -> bool {
        let mut inner = self.lock();
        loop {
            if self.completed() >= checkpoint {
                return true;
            }
            if inner.in_flight.as_ref().map(|f| f.id) != Some(checkpoint) {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Asks for a checkpoint now, ahead of the interval (after the one in flight, if any);
    /// the interval then counts from it. `false`: no more are taken (the run is stopping, or
    /// every source has ended).
    pub fn checkpoint_now(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) || crate::stop::requested() {
            return false;
        }
        self.asked.store(true, Ordering::Relaxed);
        true
    }

    /// The latest complete checkpoint's id (0: none).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Where the checkpoints go.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Lets the next run take the location at once: an object store's lease is given up
    /// (a folder's lock goes when the coordinator is dropped), and the checkpoint thread
    /// ends. Called when the run is over.
    pub fn release(&self) {
        self.over.store(true, Ordering::Relaxed);
        #[cfg(feature = "object-store")]
        if let store::Lock::Object(lease) = &self.lock {
            lease.release();
        }
        let _ = &self.lock;
    }

    /// Refuses to write when the object store's lease was lost: another run may own the
    /// location now.
    fn check_lease(&self) -> Result<(), String> {
        #[cfg(feature = "object-store")]
        if let store::Lock::Object(lease) = &self.lock {
            if lease.lost() {
                return Err(format!(
                    "lost the lease on {}: another run may own the checkpoints now",
                    self.store.describe()
                ));
            }
        }
        Ok(())
    }

    /// See [`Coordinator::folder_id`](#structfield.folder_id).
    pub fn folder_id(&self) -> &str {
        &self.folder_id
    }

    /// How much of a part is held in memory before it goes to its file.
    fn spill_at(&self) -> usize {
        self.config.buffer
    }

    /// Whether `checkpoint` is being taken: a part saved for any other is thrown away (see
    /// [`Coordinator::save_part`]), so it need not be saved at all.
    fn wants(&self, checkpoint: u64) -> bool {
        self.lock().in_flight.as_ref().map(|f| f.id) == Some(checkpoint)
    }

    /// Where instance `instance` of `slot` writes its part of `checkpoint` while saving it, if
    /// the part grows large (see [`spill`]): beside the part's place in a folder (moved there
    /// when complete); in the system's temporary folder for an object store (uploaded from
    /// there, then removed).
    fn spill_path(&self, slot: &str, instance: u32, checkpoint: u64) -> Result<PathBuf, String> {
        let chk = chk_name(checkpoint);
        match &self.store {
            Store::Folder(dir) => {
                self.store.begin(&chk)?;
                Ok(dir
                    .join(&chk)
                    .join(format!("{slot}-{instance}.state.partial")))
            }
            #[cfg(feature = "object-store")]
            Store::Object(_) => {
                // What a killed run staged is removed by the next process that stages one.
                static SWEPT: std::sync::Once = std::sync::Once::new();
                let tmp = std::env::temp_dir();
                SWEPT.call_once(|| {
                    crate::stop::remove_left_by_gone_processes(&tmp, "weir-part-", ".staged")
                });
                Ok(tmp.join(format!(
                    "weir-part-{}-{}-{chk}-{slot}-{instance}.staged",
                    std::process::id(),
                    self.folder_id
                )))
            }
        }
    }

    /// Writes instance `instance` of `slot`'s file of `checkpoint` (a delta on the file
    /// whose checksum is `base`, or a full part), whose checksum is `state_checksum`; the
    /// last part in completes the checkpoint.
    #[allow(clippy::too_many_arguments)]
    fn save_part(
        &self,
        slot: &str,
        instance: u32,
        checkpoint: u64,
        state: spill::View<'_>,
        state_checksum: u64,
        base: Option<u64>,
        commits: Vec<CommitAction>,
        notes: Vec<String>,
    ) -> Result<(), String> {
        if !self.wants(checkpoint) {
            return Ok(());
        }
        self.check_lease()?;
        let chk = chk_name(checkpoint);
        self.store.begin(&chk)?;
        let key = self.store.part_key(&chk, slot, instance, state_checksum);
        self.store.put_part(&key, state)?;
        let mut inner = self.lock();
        let Some(flight) = inner.in_flight.as_mut().filter(|f| f.id == checkpoint) else {
            return Ok(());
        };
        flight.parts.insert(
            (slot.to_string(), instance),
            Part {
                bytes: state.bytes(),
                checksum: state_checksum,
                base,
                commits,
                notes,
            },
        );
        if flight.parts.len() < inner.expected {
            return Ok(());
        }
        let flight = inner.in_flight.take().expect("checked above");
        let mut parts = Vec::with_capacity(flight.parts.len());
        for ((s, i), p) in &flight.parts {
            let links = match p.base {
                None => Vec::new(),
                Some(base) => {
                    let chain = inner.chains.get(&(s.clone(), *i));
                    match chain {
                        Some(chain) if chain.last().map(|l| l.checksum) == Some(base) => {
                            chain.clone()
                        }
                        _ => {
                            return Err(format!(
                                "internal error: the delta of {s}-{i} builds on a file that is not the \
                                 newest of its chain"
                            ))
                        }
                    }
                }
            };
            parts.push(PartEntry {
                slot: s.clone(),
                instance: *i,
                bytes: p.bytes,
                checksum: p.checksum,
                links,
            });
        }
        let manifest = Manifest {
            id: checkpoint,
            kind: Kind::Checkpoint,
            created_ms: now_ms(),
            fingerprint: inner.fingerprint.clone(),
            slots: inner.plan.clone(),
            parts,
            commits: flight
                .parts
                .values()
                .flat_map(|p| p.commits.iter().cloned())
                .collect(),
            notes: flight
                .parts
                .iter()
                .flat_map(|((s, i), p)| p.notes.iter().map(|n| (s.clone(), *i, n.clone())))
                .collect(),
        };
        write_manifest(&self.store, checkpoint, &manifest, true)?;
        inner.chains = chains_of(&manifest);
        inner
            .references
            .insert(checkpoint, references_of(&manifest));
        self.completed.store(checkpoint, Ordering::Release);
        self.changed.notify_all();
        for action in &manifest.commits {
            action.apply()?;
        }
        let elapsed = flight.started.map(|s| s.elapsed()).unwrap_or_default();
        let bytes: u64 = manifest.parts.iter().map(|p| p.bytes).sum();
        let delta = manifest.parts.iter().any(PartEntry::is_delta);
        let stats = &mut inner.stats;
        stats.completed += 1;
        stats.last_duration = elapsed;
        stats.max_duration = stats.max_duration.max(elapsed);
        stats.last_bytes = bytes;
        stats.last_delta = delta;
        if delta {
            stats.delta.add(bytes, elapsed);
        } else {
            stats.full.add(bytes, elapsed);
        }
        if stats.history.len() == HISTORY {
            stats.history.pop_front();
        }
        stats.history.push_back(Completed {
            id: checkpoint,
            completed_ms: manifest.created_ms,
            duration: elapsed,
            bytes,
            delta,
        });
        drop(inner);
        self.prune(checkpoint);
        Ok(())
    }

    /// Keeps the newest `keep` complete checkpoints, and the older ones whose files their
    /// chains read (see [`delta`]): a folder goes only when no kept checkpoint reads from it.
    fn prune(&self, newest: u64) {
        // Two at least: recovery may reject the newest (its external commit never happened)
        // and resume from the one before.
        let keep = self.config.keep.max(2) as u64;
        let Ok(ids) = complete_checkpoints(&self.store, newest) else {
            return;
        };
        let mut referenced = std::collections::BTreeSet::new();
        for &id in ids.iter().filter(|&&id| id + keep > newest) {
            let known = self.lock().references.get(&id).cloned();
            let refs = match known {
                Some(refs) => refs,
                None => {
                    // A checkpoint of an earlier run: read its manifest once.
                    let read = self
                        .store
                        .get(&format!("{}/MANIFEST", chk_name(id)))
                        .ok()
                        .flatten()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .and_then(|text| Manifest::parse(&text).ok());
                    let Some(m) = read else {
                        return; // unreadable: delete nothing it might read from
                    };
                    let refs = references_of(&m);
                    self.lock().references.insert(id, refs.clone());
                    refs
                }
            };
            referenced.extend(refs);
        }
        for id in ids {
            if id + keep <= newest
                && !referenced.contains(&id)
                && self.store.remove_all(&chk_name(id)).is_ok()
            {
                self.lock().references.remove(&id);
            }
        }
    }

    /// Called once every task has ended without error: publishes what sinks wrote since the
    /// last checkpoint, under a `final` manifest.
    pub fn finish(&self) -> Result<(), String> {
        self.stop();
        let mut inner = self.lock();
        inner.in_flight = None;
        let hooks = std::mem::take(&mut inner.final_hooks);
        let id = inner.next_id;
        inner.next_id += 1;
        let manifest = Manifest {
            id,
            kind: Kind::Final,
            created_ms: now_ms(),
            fingerprint: inner.fingerprint.clone(),
            slots: inner.plan.clone(),
            parts: Vec::new(),
            commits: inner
                .final_commits
                .values()
                .flat_map(|c| c.iter().cloned())
                .collect(),
            notes: hooks
                .iter()
                .map(|(slot, instance, note, _)| (slot.clone(), *instance, note.clone()))
                .collect(),
        };
        drop(inner);
        self.check_lease()?;
        self.store.begin(&chk_name(id))?;
        // The manifest first, noting the external commits it is waiting for; then those
        // commits, marked with its id; then the files. A crash before the external commits
        // leaves a final manifest whose marker is behind: recovery rejects it and resumes
        // from the last checkpoint. A crash after them finds it verified and finishes the
        // files.
        write_manifest(&self.store, id, &manifest, true)?;
        for (_, _, _, hook) in hooks {
            hook(id)?;
        }
        for action in &manifest.commits {
            action.apply()?;
        }
        mark_final_done(&self.store, &manifest)?;
        self.prune(id);
        Ok(())
    }
}

/// Each instance's chain in `m`: the files it links to, then its own.
fn chains_of(m: &Manifest) -> BTreeMap<(String, u32), Vec<Link>> {
    m.parts
        .iter()
        .map(|p| {
            let own = Link {
                checkpoint: m.id,
                bytes: p.bytes,
                checksum: p.checksum,
            };
            let chain = p.links.iter().copied().chain([own]).collect();
            ((p.slot.clone(), p.instance), chain)
        })
        .collect()
}

/// The earlier checkpoints whose folders `m`'s chains read from.
fn references_of(m: &Manifest) -> std::collections::BTreeSet<u64> {
    m.parts
        .iter()
        .flat_map(|p| p.links.iter().map(|l| l.checkpoint))
        .filter(|&id| id != m.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn chk_dir(dir: &Path, id: u64) -> PathBuf {
        dir.join(chk_name(id))
    }

    /// Writes `m` as the manifest of the checkpoint folder `chk`, as a run does.
    fn write_manifest(chk: &Path, m: &Manifest) -> Result<(), String> {
        let store = Store::Folder(chk.parent().unwrap().to_path_buf());
        let name = chk.file_name().unwrap().to_str().unwrap();
        store.put_manifest(name, m.render().as_bytes(), false)
    }

    fn finished(dir: &Path) -> bool {
        super::finished(&Store::Folder(dir.to_path_buf()))
    }

    /// Recovers `dir` as a run keeping 3 checkpoints would, with the test verifiers.
    fn open(dir: &Path) -> Result<(Coordinator, Start), String> {
        let mut verifiers = Verifiers::default();
        verifiers.add("test-txn", verify);
        verifiers.add("none-txn", verify_none);
        verifiers.add("lone-none", verify_none);
        verifiers.add("lone-behind", verify_behind);
        verifiers.add("final-txn", verify_committed);
        verifiers.add("never-txn", verify_behind);
        verifiers.add("gone-txn", verify_none);
        verifiers.add("damaged-txn", verify_committed);
        Coordinator::open(Config {
            dir: dir.to_path_buf(),
            interval: Duration::from_secs(1),
            keep: 3,
            incremental: true,
            buffer: spill::SPILL_AT,
            verifiers,
        })
    }

    fn manifest(dir: &Path, id: u64, notes: Vec<(String, u32, String)>) {
        let chk = chk_dir(dir, id);
        std::fs::create_dir_all(&chk).unwrap();
        std::fs::write(chk.join("s-0.state"), [id as u8]).unwrap();
        let m = Manifest {
            id,
            kind: Kind::Checkpoint,
            created_ms: 0,
            fingerprint: "f".into(),
            slots: vec![SlotEntry {
                id: "s".into(),
                instances: 1,
                label: "op".into(),
                shape: "operator: aggregate\n".into(),
            }],
            parts: vec![PartEntry {
                slot: "s".into(),
                instance: 0,
                bytes: 1,
                checksum: manifest::checksum(&[id as u8]),
                links: Vec::new(),
            }],
            commits: Vec::new(),
            notes,
        };
        write_manifest(&chk, &m).unwrap();
    }

    /// Commits of checkpoints up to 4 happened; 5's did not.
    fn verify(note: &str, checkpoint: u64) -> Result<Verdict, String> {
        assert!(note.starts_with("test-txn"));
        Ok(if checkpoint <= 4 {
            Verdict::Committed
        } else {
            Verdict::Behind
        })
    }

    #[test]
    fn a_checkpoint_whose_external_commit_never_happened_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let note = || vec![("s".to_string(), 0, "test-txn t1".to_string())];
        manifest(dir.path(), 4, note());
        manifest(dir.path(), 5, note());
        // An incomplete one (no manifest) is deleted too.
        std::fs::create_dir_all(chk_dir(dir.path(), 6)).unwrap();
        let (c, start) = open(dir.path()).unwrap();
        assert!(matches!(start, Start::Restored(4)));
        assert!(!chk_dir(dir.path(), 5).exists());
        assert!(!chk_dir(dir.path(), 6).exists());
        assert_eq!(c.completed(), 4);
        let parts = c.restored_parts.lock().unwrap();
        assert_eq!(
            parts.get(&("s".to_string(), 0)).map(|r| &r.full[..]),
            Some(&[4u8][..])
        );
    }

    /// Commits of no checkpoint happened.
    fn verify_none(_: &str, _: u64) -> Result<Verdict, String> {
        Ok(Verdict::NoMarker)
    }

    /// Markers exist, none as far as any checkpoint.
    fn verify_behind(_: &str, _: u64) -> Result<Verdict, String> {
        Ok(Verdict::Behind)
    }

    #[test]
    fn with_no_verified_checkpoint_the_run_starts_over_and_keeps_them_aside() {
        let dir = tempfile::tempdir().unwrap();
        manifest(
            dir.path(),
            1,
            vec![("s".to_string(), 0, "none-txn t".to_string())],
        );
        let (c, start) = open(dir.path()).unwrap();
        assert!(matches!(start, Start::Fresh));
        assert_eq!(c.completed(), 0);
        assert!(!chk_dir(dir.path(), 1).exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("rejected-chk-1-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].path().join("MANIFEST").exists());
    }

    /// A lone checkpoint other than the first without a marker, or a lone one whose marker is
    /// behind: something was committed that no checkpoint here covers; recovery stops.
    #[test]
    fn a_lone_checkpoint_that_cannot_be_trusted_stops_recovery() {
        for (id, note) in [(3, "lone-none x"), (1, "lone-behind x")] {
            let dir = tempfile::tempdir().unwrap();
            manifest(dir.path(), id, vec![("s".to_string(), 0, note.to_string())]);
            let err = open(dir.path()).err().unwrap();
            assert!(err.contains("weir stops"), "{note}: {err}");
            assert!(chk_dir(dir.path(), id).exists());
        }
    }

    fn verify_committed(_: &str, _: u64) -> Result<Verdict, String> {
        Ok(Verdict::Committed)
    }

    /// A final manifest notes the last external commit until it is done; a restart that finds
    /// it committed finishes the run and drops the notes, and the folder then counts as
    /// finished without asking again.
    #[test]
    fn a_final_manifest_is_finished_once_its_commit_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        manifest(dir.path(), 4, Vec::new());
        let chk5 = chk_dir(dir.path(), 5);
        std::fs::create_dir_all(&chk5).unwrap();
        let m = Manifest {
            id: 5,
            kind: Kind::Final,
            created_ms: 0,
            fingerprint: "f".into(),
            slots: Vec::new(),
            parts: Vec::new(),
            commits: Vec::new(),
            notes: vec![("s".to_string(), 0, "final-txn t".to_string())],
        };
        write_manifest(&chk5, &m).unwrap();
        assert!(!finished(dir.path()));
        let (_c, start) = open(dir.path()).unwrap();
        assert!(matches!(start, Start::Finished(5)));
        assert!(finished(dir.path()));
    }

    /// Only the newest checkpoint can lack its external commit (a sink commits an epoch before
    /// saving its part of the next checkpoint): recovery checks it alone, takes back its file
    /// appends, and resumes from the one before without asking again.
    #[test]
    fn an_uncommitted_newest_checkpoint_is_taken_back_and_the_one_before_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, "abcde").unwrap();
        let note = || vec![("s".to_string(), 0, "never-txn t".to_string())];
        manifest(dir.path(), 4, note());
        manifest(dir.path(), 5, note());
        // Checkpoint 5 appended "de" to the 3 bytes committed before it.
        let chk5 = chk_dir(dir.path(), 5);
        let mut m =
            Manifest::parse(&std::fs::read_to_string(chk5.join("MANIFEST")).unwrap()).unwrap();
        m.commits = vec![CommitAction::Append {
            pending: dir.path().join("gone.pending"),
            target: target.clone(),
            before: 3,
            size: 2,
        }];
        write_manifest(&chk5, &m).unwrap();
        let (c, start) = open(dir.path()).unwrap();
        assert!(matches!(start, Start::Restored(4)));
        assert_eq!(c.completed(), 4);
        assert!(!chk5.exists());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "abc");
    }

    /// A missing marker when an older checkpoint exists means it expired (or other brokers):
    /// recovery stops instead of guessing.
    #[test]
    fn a_missing_marker_behind_an_older_checkpoint_stops_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let note = || vec![("s".to_string(), 0, "gone-txn t".to_string())];
        manifest(dir.path(), 1, note());
        manifest(dir.path(), 2, note());
        let err = open(dir.path()).err().unwrap();
        assert!(err.contains("marker is missing"), "{err}");
        assert!(chk_dir(dir.path(), 2).exists() && chk_dir(dir.path(), 1).exists());
    }

    #[test]
    fn a_checkpoint_folder_is_locked_while_a_run_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_folder(dir.path()).unwrap();
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("LOCK"))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    /// Names of the folder's entries that start with `prefix`.
    fn entries(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// A flipped bit in the newest checkpoint's state file or manifest, or a missing state
    /// file: the run falls back to the newest intact checkpoint and keeps the damaged one
    /// aside.
    #[test]
    fn a_damaged_checkpoint_falls_back_to_the_newest_intact_one() {
        type Damage = fn(&Path);
        let damages: [(&str, Damage); 4] = [
            ("flipped state bit", |chk| {
                std::fs::write(chk.join("s-0.state"), [0x80u8 ^ 6]).unwrap()
            }),
            ("flipped manifest bit", |chk| {
                let mut m = std::fs::read(chk.join("MANIFEST")).unwrap();
                m[40] ^= 0x04;
                std::fs::write(chk.join("MANIFEST"), m).unwrap();
            }),
            ("missing state file", |chk| {
                std::fs::remove_file(chk.join("s-0.state")).unwrap()
            }),
            ("truncated state file", |chk| {
                std::fs::write(chk.join("s-0.state"), []).unwrap()
            }),
        ];
        for (what, damage) in damages {
            let dir = tempfile::tempdir().unwrap();
            for id in 4..=6 {
                manifest(dir.path(), id, Vec::new());
            }
            damage(&chk_dir(dir.path(), 6));
            let (c, start) = open(dir.path()).unwrap();
            assert!(matches!(start, Start::Restored(5)), "{what}");
            let parts = c.restored_parts.lock().unwrap();
            assert_eq!(
                parts.get(&("s".to_string(), 0)).map(|r| &r.full[..]),
                Some(&[5u8][..]),
                "{what}"
            );
            assert!(!chk_dir(dir.path(), 6).exists(), "{what}");
            assert_eq!(entries(dir.path(), "damaged-chk-6-").len(), 1, "{what}");
        }
    }

    #[test]
    fn with_no_intact_checkpoint_the_run_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=2 {
            manifest(dir.path(), id, Vec::new());
            std::fs::write(chk_dir(dir.path(), id).join("s-0.state"), [9u8]).unwrap();
        }
        let err = open(dir.path()).err().unwrap();
        assert!(err.contains("no checkpoint in"), "{err}");
        assert!(err.contains("checkpoint 2: s-0.state is damaged"), "{err}");
        assert!(err.contains("checkpoint 1: s-0.state is damaged"), "{err}");
        // Nothing was moved or deleted.
        assert!(chk_dir(dir.path(), 1).exists() && chk_dir(dir.path(), 2).exists());
    }

    /// Output an external commit published cannot be taken back: no fall back over it.
    #[test]
    fn no_fall_back_over_a_damaged_checkpoint_when_commits_go_outside_weir() {
        let dir = tempfile::tempdir().unwrap();
        let note = || vec![("s".to_string(), 0, "damaged-txn t".to_string())];
        manifest(dir.path(), 4, note());
        manifest(dir.path(), 5, note());
        std::fs::write(chk_dir(dir.path(), 5).join("s-0.state"), [0u8]).unwrap();
        let err = open(dir.path()).err().unwrap();
        assert!(err.contains("outside weir"), "{err}");
        assert!(chk_dir(dir.path(), 5).exists());
    }

    /// A run of one operator instance with its own coordinator on `dir`: its task saves
    /// `tag` and the checkpoint id until `checkpoints` checkpoints are complete. Returns what
    /// the run restored from `dir`, if anything.
    fn checkpointed_run(dir: &Path, tag: u8, checkpoints: u64) -> Option<Vec<u8>> {
        let (c, _) = Coordinator::open(Config {
            dir: dir.to_path_buf(),
            interval: Duration::from_millis(10),
            keep: 2,
            incremental: true,
            buffer: spill::SPILL_AT,
            verifiers: Verifiers::default(),
        })
        .unwrap();
        let c = Arc::new(c);
        let context = crate::context::RunContext::new(crate::context::Settings::default());
        context.set_coordinator(c.clone()).unwrap();
        c.plan(
            "f",
            vec![SlotEntry {
                id: "s".into(),
                instances: 1,
                label: "op".into(),
                shape: "operator: aggregate\n".into(),
            }],
        )
        .unwrap();
        let task = {
            let context = context.clone();
            std::thread::spawn(move || {
                let _run = context.enter();
                // What generated code does: the slot comes from the thread's run.
                let mut slot = slot("s", 0);
                let restored = slot.take_restored();
                while slot.completed() < checkpoints {
                    if let Some(id) = slot.barrier_due() {
                        slot.save(id, &[tag, id as u8], Vec::new());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                restored
            })
        };
        c.start(context.clone()).unwrap();
        let restored = task.join().unwrap();
        c.release();
        assert_eq!(c.completed(), checkpoints);
        restored
    }

    /// Two runs in one process, at the same time and then one after another, each with its
    /// own coordinator and folder: each completes its own checkpoints, and a later run in
    /// the process resumes from its own folder (there was one coordinator per process, and
    /// a second run could not take checkpoints at all).
    #[test]
    fn runs_in_one_process_checkpoint_each_to_its_own_folder() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        let first_a = std::thread::spawn(move || checkpointed_run(&pa, b'a', 3));
        let first_b = std::thread::spawn(move || checkpointed_run(&pb, b'b', 5));
        assert_eq!(first_a.join().unwrap(), None);
        assert_eq!(first_b.join().unwrap(), None);
        // The next runs, in the same process, resume each from its own last checkpoint.
        assert_eq!(checkpointed_run(a.path(), b'a', 4), Some(vec![b'a', 3]));
        assert_eq!(checkpointed_run(b.path(), b'b', 6), Some(vec![b'b', 5]));
        // A thread outside any run has no coordinator.
        assert!(!enabled() && coordinator().is_none());
        assert!(!slot("s", 0).is_active());
    }

    /// What the instances of a participant share (a sink's transaction) is per run: one
    /// value per key within a run, a different one in another run.
    #[test]
    fn shared_values_are_per_run() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ca, _) = open(a.path()).unwrap();
        let (cb, _) = open(b.path()).unwrap();
        let (ca, cb) = (Arc::new(ca), Arc::new(cb));
        let made = AtomicU64::new(0);
        let make = || Ok(Arc::new(made.fetch_add(1, Ordering::Relaxed)));
        let a0 = ca.slot("s", 0).shared("txn", make).unwrap();
        let a1 = ca.slot("s", 1).shared("txn", make).unwrap();
        let b0 = cb.slot("s", 0).shared("txn", make).unwrap();
        assert!(Arc::ptr_eq(&a0, &a1));
        assert!(!Arc::ptr_eq(&a0, &b0));
        assert_eq!((*a0, *b0), (0, 1));
        let wrong = ca
            .slot("s", 0)
            .shared::<String>("txn", || Ok(Arc::new(String::new())));
        assert!(wrong.unwrap_err().contains("another type"));
    }

    /// Verifiers are the run's: the same folder contents, checked by two runs whose
    /// verifiers disagree, resume from different checkpoints.
    #[test]
    fn verifiers_are_per_run() {
        let outcome = |verifier: fn(&str, u64) -> Result<Verdict, String>| {
            let dir = tempfile::tempdir().unwrap();
            let note = || vec![("s".to_string(), 0, "test-txn run".to_string())];
            manifest(dir.path(), 4, note());
            manifest(dir.path(), 5, note());
            let mut verifiers = Verifiers::default();
            verifiers.add("test-txn", verifier);
            let (c, _) = Coordinator::open(Config {
                dir: dir.path().to_path_buf(),
                interval: Duration::from_secs(1),
                keep: 3,
                incremental: true,
                buffer: spill::SPILL_AT,
                verifiers,
            })
            .unwrap();
            c.completed()
        };
        assert_eq!(outcome(verify_committed), 5);
        assert_eq!(outcome(verify), 4);
    }

    /// An operator with a keyed map that writes deltas: per changed key its value, or a
    /// tombstone.
    struct Counts {
        map: BTreeMap<u32, u32>,
        changed: Option<std::collections::BTreeSet<u32>>,
        slot: StateSlot,
    }

    impl Counts {
        fn new() -> Counts {
            Counts {
                map: BTreeMap::new(),
                changed: None,
                slot: StateSlot::inert(),
            }
        }

        fn set(&mut self, key: u32, value: Option<u32>) {
            match value {
                Some(v) => self.map.insert(key, v),
                None => self.map.remove(&key),
            };
            if let Some(changed) = &mut self.changed {
                changed.insert(key);
            }
        }
    }

    impl Snapshot for Counts {
        fn slot_mut(&mut self) -> &mut StateSlot {
            &mut self.slot
        }
        fn save_state(&self, out: &mut Vec<u8>) {
            crate::state::State::save(&self.map, out);
        }
        fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
            self.map = crate::state::State::load(input)?;
            Ok(())
        }
        fn track_changes(&mut self) {
            self.changed = Some(Default::default());
        }
        fn delta_ready(&self) -> bool {
            self.changed.is_some()
        }
        fn save_delta(&mut self, out: &mut Vec<u8>) {
            use crate::state::State;
            let changed = std::mem::take(self.changed.as_mut().unwrap());
            changed.len().save(out);
            for key in changed {
                key.save(out);
                self.map.get(&key).copied().save(out);
            }
        }
        fn saved_full(&mut self) {
            if let Some(changed) = &mut self.changed {
                changed.clear();
            }
        }
        fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
            use crate::state::State;
            for _ in 0..usize::load(input)? {
                let key = u32::load(input)?;
                match Option::<u32>::load(input)? {
                    Some(v) => self.map.insert(key, v),
                    None => self.map.remove(&key),
                };
            }
            Ok(())
        }
    }

    fn open_incremental(dir: &Path, incremental: bool) -> Arc<Coordinator> {
        try_open_incremental(dir, incremental).unwrap()
    }

    fn try_open_incremental(dir: &Path, incremental: bool) -> Result<Arc<Coordinator>, String> {
        let (c, _) = Coordinator::open(Config {
            dir: dir.to_path_buf(),
            interval: Duration::from_secs(3600),
            keep: 2,
            incremental,
            buffer: 64, // every part of a few entries goes through its file
            verifiers: Verifiers::default(),
        })?;
        let c = Arc::new(c);
        c.plan(
            "f",
            vec![SlotEntry {
                id: "s".into(),
                instances: 1,
                label: "op".into(),
                shape: "operator: join\n".into(),
            }],
        )
        .unwrap();
        Ok(c)
    }

    /// Takes one checkpoint of `op` alone (what the trigger thread and a barrier do).
    fn take(c: &Arc<Coordinator>, op: &mut Counts) -> u64 {
        let id = {
            let mut inner = c.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            inner.in_flight = Some(InFlight {
                id,
                started: Some(Instant::now()),
                parts: BTreeMap::new(),
            });
            id
        };
        snapshot_incremental(op, id);
        assert_eq!(c.completed(), id, "checkpoint {id} completed");
        id
    }

    fn read_manifest(dir: &Path, id: u64) -> Manifest {
        let text = std::fs::read_to_string(chk_dir(dir, id).join("MANIFEST")).unwrap();
        Manifest::parse(&text).unwrap()
    }

    /// Restores `dir` into a new `Counts` as a run does (`None`: the run starts fresh).
    fn restore_counts(dir: &Path) -> Result<Option<(u64, Counts)>, String> {
        let c = try_open_incremental(dir, true)?;
        let Some(id) = c.restored.as_ref().map(|m| m.id) else {
            return Ok(None);
        };
        let mut op = Counts::new().with_state(c.slot("s", 0))?;
        op.slot = StateSlot::inert(); // lets the folder's lock go with the coordinator
        c.release();
        Ok(Some((id, op)))
    }

    /// Checkpoints write a full part, then deltas that name it in their manifests' links,
    /// then a full part again after `Policy::max_deltas` deltas; every checkpoint restores
    /// to the state it was taken of, tombstones included; folders the kept chains read
    /// from stay, the others go.
    #[test]
    fn incremental_checkpoints_chain_deltas_on_a_full_part_and_restore_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_incremental(dir.path(), true);
        let mut op = Counts::new().with_state(c.slot("s", 0)).unwrap();
        assert!(op.delta_ready());
        let max = delta::Policy::default().max_deltas as u64;
        let mut states = BTreeMap::new();
        for round in 0..max + 5 {
            // Many keys at first, then a few changed and one removed per checkpoint.
            if round == 0 {
                for k in 0..1000 {
                    op.set(k, Some(k));
                }
            } else {
                op.set(round as u32, Some(7_000 + round as u32));
                op.set(500 + round as u32, None);
            }
            let id = take(&c, &mut op);
            states.insert(id, op.map.clone());
            let m = read_manifest(dir.path(), id);
            let part = &m.parts[0];
            let links: Vec<u64> = part.links.iter().map(|l| l.checkpoint).collect();
            match id {
                1 => assert!(links.is_empty()),
                id if id <= max + 1 => {
                    assert_eq!(links, (1..id).collect::<Vec<_>>(), "checkpoint {id}");
                    assert!(
                        part.bytes < 100,
                        "a delta of two keys: {} bytes",
                        part.bytes
                    );
                }
                id if id == max + 2 => assert!(links.is_empty(), "a full part again"),
                id => assert_eq!(links, ((max + 2)..id).collect::<Vec<_>>()),
            }
        }
        let stats = c.stats();
        assert_eq!((stats.full.count, stats.delta.count), (2, max + 3));
        c.release();
        drop(c);
        drop(op);
        // Checkpoint 1 was the base of checkpoints up to max + 1, none of them kept: gone.
        assert!(!chk_dir(dir.path(), 1).exists());
        assert!(chk_dir(dir.path(), max + 2).exists());
        let newest = max + 5;
        let (id, restored) = restore_counts(dir.path()).unwrap().unwrap();
        assert_eq!(id, newest);
        assert_eq!(restored.map, states[&newest]);
        // The newest delta damaged: the run falls back to the one before, kept, whose chain
        // it shares, and restores its state exactly.
        std::fs::write(
            chk_dir(dir.path(), newest).join("s-0.state"),
            b"weir-delta 1\nxxxxxxxx",
        )
        .unwrap();
        let (id, restored) = restore_counts(dir.path()).unwrap().unwrap();
        assert_eq!(id, newest - 1);
        assert_eq!(restored.map, states[&(newest - 1)]);
        assert_eq!(
            entries(dir.path(), &format!("damaged-chk-{newest}-")).len(),
            1
        );
    }

    /// A delta larger than its chain's full part is written as a full part instead (here
    /// every key is removed and a new one set: a tombstone and a value per key, against a
    /// value per key), and the next checkpoint builds on it; a restore gives the state.
    #[test]
    fn a_delta_larger_than_the_full_part_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_incremental(dir.path(), true);
        let mut op = Counts::new().with_state(c.slot("s", 0)).unwrap();
        for k in 0..100 {
            op.set(k, Some(k));
        }
        take(&c, &mut op);
        for k in 0..100 {
            op.set(k, None);
            op.set(1000 + k, Some(k));
        }
        let id = take(&c, &mut op);
        let part = &read_manifest(dir.path(), id).parts[0];
        assert!(part.links.is_empty(), "a full part, not a delta");
        op.set(5000, Some(1));
        let id = take(&c, &mut op);
        let part = &read_manifest(dir.path(), id).parts[0];
        let links: Vec<u64> = part.links.iter().map(|l| l.checkpoint).collect();
        assert_eq!(links, [2], "a small delta on the full part of checkpoint 2");
        let stats = c.stats();
        assert_eq!((stats.full.count, stats.delta.count), (2, 1));
        c.release();
        let want = op.map.clone();
        drop((c, op));
        let (_, restored) = restore_counts(dir.path()).unwrap().unwrap();
        assert_eq!(restored.map, want);
    }

    /// A chain missing a file, or with a delta that builds on another file, is damaged: no
    /// checkpoint that reads it is restored in part; the run falls back to the newest one
    /// whose chain is whole, and with none left it refuses to start, naming the file.
    #[test]
    fn a_chain_with_a_missing_or_foreign_file_is_refused() {
        let run = |damage: &dyn Fn(&Path)| {
            let dir = tempfile::tempdir().unwrap();
            let c = open_incremental(dir.path(), true);
            let mut op = Counts::new().with_state(c.slot("s", 0)).unwrap();
            for k in 100..1100 {
                op.set(k, Some(k));
            }
            for round in 0..4 {
                op.set(round, Some(round));
                take(&c, &mut op);
            }
            c.release();
            drop((c, op));
            damage(dir.path());
            let why = recover::load(&Store::Folder(dir.path().to_path_buf()), 4, 1)
                .unwrap()
                .err()
                .unwrap();
            let restored = restore_counts(dir.path()).map(|r| r.map(|(id, op)| (id, op.map)));
            (dir, why, restored)
        };
        // The full part gone: every checkpoint reads it.
        let (_dir, why, restored) =
            run(&|dir| std::fs::remove_file(chk_dir(dir, 1).join("s-0.state")).unwrap());
        assert!(why.contains("chk-1/s-0.state: it is missing"), "{why}");
        let err = restored.err().unwrap();
        assert!(err.contains("no checkpoint in"), "{err}");
        assert!(
            err.contains("checkpoint 2: cannot read chk-1/s-0.state"),
            "{err}"
        );
        // Checkpoint 3's delta replaced by one that builds on checkpoint 1's file (its size
        // and checksum in the manifests made to match): 3 and 4 are damaged, 2 restores.
        let (dir, why, restored) = run(&|dir| {
            let full = std::fs::read(chk_dir(dir, 1).join("s-0.state")).unwrap();
            let mut foreign = Vec::new();
            delta::header(manifest::checksum(&full), &mut foreign);
            foreign.extend(0usize.to_le_bytes());
            for id in [3, 4] {
                let chk = chk_dir(dir, id);
                if id == 3 {
                    std::fs::write(chk.join("s-0.state"), &foreign).unwrap();
                }
                let mut m = read_manifest(dir, id);
                let p = &mut m.parts[0];
                if id == 3 {
                    p.bytes = foreign.len() as u64;
                    p.checksum = manifest::checksum(&foreign);
                } else {
                    p.links[2].bytes = foreign.len() as u64;
                    p.links[2].checksum = manifest::checksum(&foreign);
                }
                write_manifest(&chk, &m).unwrap();
            }
        });
        assert!(why.contains("builds on another file"), "{why}");
        let (id, map) = restored.unwrap().unwrap();
        assert_eq!((id, map.len()), (2, 1002));
        assert_eq!(entries(dir.path(), "damaged-chk-").len(), 2);
    }

    /// With `--checkpoint-incremental false` every part is full.
    #[test]
    fn without_incremental_checkpoints_every_part_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_incremental(dir.path(), false);
        let mut op = Counts::new().with_state(c.slot("s", 0)).unwrap();
        assert!(!op.delta_ready());
        for round in 0..3 {
            op.set(round, Some(round));
            let id = take(&c, &mut op);
            assert!(read_manifest(dir.path(), id).parts[0].links.is_empty());
        }
        assert_eq!(c.stats().delta.count, 0);
    }

    #[test]
    fn a_note_nobody_can_check_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        manifest(
            dir.path(),
            1,
            vec![("s".to_string(), 0, "unknown-kind x".to_string())],
        );
        let err = open(dir.path()).err().unwrap();
        assert!(err.contains("cannot check"), "{err}");
    }
}
