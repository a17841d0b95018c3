//! The part of checkpoints operators use: a [`StateSlot`] per operator instance (where it
//! saves its state and what it had when restored) and the [`Snapshot`] trait.

use super::*;

/// Where one operator instance saves its state, and the bytes it had when restored.
/// Inert when checkpointing is off.
pub struct StateSlot {
    pub(super) id: &'static str,
    pub(super) instance: u32,
    pub(super) restored: Option<delta::Restored>,
    pub(super) coordinator: Option<Arc<Coordinator>>,
    /// The last checkpoint a source passed a barrier for (see [`StateSlot::barrier_due`]).
    pub(super) passed: u64,
    /// The checksum of the file the operator's tracked changes start from (the one it last
    /// saved or restored): a delta may build only on that one.
    pub(super) tracked: Option<u64>,
}

impl StateSlot {
    /// A slot that saves nothing (checkpointing off, or an operator built outside a pipeline).
    pub fn inert() -> StateSlot {
        StateSlot {
            id: "",
            instance: 0,
            restored: None,
            coordinator: None,
            passed: 0,
            tracked: None,
        }
    }

    /// For sources, between records: the checkpoint to save a part and send a barrier for,
    /// if one was asked for since the last.
    #[inline]
    pub fn barrier_due(&mut self) -> Option<u64> {
        let wanted = self.coordinator.as_ref()?.requested();
        if wanted > self.passed {
            self.passed = wanted;
            Some(wanted)
        } else {
            None
        }
    }

    /// For sources, at the end of their input (see [`source_ended`]): `watermark` is sent
    /// (the final one, unless the run is stopping), then, while other sources still read, a
    /// barrier with `part` (the final position) for every checkpoint, so checkpoints go on
    /// after a bounded source has ended (as Flink's FLIP-147 does); then the chain ends.
    pub fn end_of_input<T, C: crate::collector::Collector<T>>(
        &mut self,
        part: impl Fn() -> Vec<u8>,
        chain: &mut C,
    ) {
        if !crate::stop::stopped_early() {
            chain.watermark(i64::MAX);
        }
        if let Some(c) = self.coordinator.clone() {
            c.source_ended();
            loop {
                let last = c.all_sources_ended() || c.given_up() || crate::stop::sources_stopped();
                if let Some(id) = self.barrier_due() {
                    self.save(id, &part(), Vec::new());
                    chain.barrier(id);
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        chain.finish();
    }

    /// The value the instances of this run share under `key` (a sink's transaction), made by
    /// `make` for the first instance that asks; the others wait for it and get it. Shared per
    /// run, never per process: two runs in one process each make their own. Without
    /// checkpoints every call makes a new one.
    pub fn shared<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Arc<T>, String>,
    ) -> Result<Arc<T>, String> {
        match &self.coordinator {
            Some(c) => c.shared(key, make),
            None => make(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.coordinator.is_some()
    }

    /// The bytes saved by the checkpoint this run restored, once. For parts that are always
    /// written whole (sources, sinks); a chain with deltas fails the run, since only the
    /// operator that wrote them can apply them (see [`restore`]).
    pub fn take_restored(&mut self) -> Option<Vec<u8>> {
        let restored = self.restored.take()?;
        if !restored.deltas.is_empty() {
            crate::context::report_error(format!(
                "cannot restore state {}: its checkpoint holds deltas, which this part cannot                  apply (written by another binary?)",
                self.label()
            ));
            self.abandon();
            return None;
        }
        Some(restored.full.into_vec())
    }

    /// Whether the operator of this slot should track its changes for deltas: the run takes
    /// incremental checkpoints (`--checkpoint-incremental`, on by default).
    pub fn incremental(&self) -> bool {
        self.coordinator.as_ref().is_some_and(|c| c.incremental())
    }

    /// Saves this instance's part of `checkpoint`, with actions that publish output once it
    /// is complete. A failure to write fails the run (the checkpoint would be incomplete).
    pub fn save(&self, checkpoint: u64, state: &[u8], commits: Vec<CommitAction>) {
        self.save_noted(checkpoint, state, commits, Vec::new())
    }

    /// [`save`](Self::save) with notes on commits made outside weir (see [`Verifier`]).
    pub fn save_noted(
        &self,
        checkpoint: u64,
        state: &[u8],
        commits: Vec<CommitAction>,
        notes: Vec<String>,
    ) {
        if let Some(c) = &self.coordinator {
            let sum = super::manifest::checksum(state);
            let saved = c.save_part(
                self.id,
                self.instance,
                checkpoint,
                spill::View::Memory(state),
                sum,
                None,
                commits,
                notes,
            );
            if let Err(e) = saved {
                crate::context::report_error(format!("checkpoint {checkpoint} failed: {e}"));
                c.abandon();
            }
        }
    }

    /// Where `checkpoint` stands, without waiting.
    pub fn status(&self, checkpoint: u64) -> Status {
        self.coordinator
            .as_ref()
            .map_or(Status::GivenUp, |c| c.status(checkpoint))
    }

    /// Gives up the checkpoint in flight: this instance cannot save its part (a failed write
    /// or delivery). No checkpoint completes without every part, and nothing may wait for it.
    pub fn abandon(&self) {
        if let Some(c) = &self.coordinator {
            c.abandon();
        }
    }

    /// Whether `checkpoint` is complete (`Some(true)`) or given up (`Some(false)`); `None`
    /// while it is pending, unless `block` waits for the verdict. For sinks that commit an
    /// epoch outside weir once its checkpoint is complete.
    pub fn decided(&self, checkpoint: u64, block: bool) -> Option<bool> {
        if block {
            return Some(self.wait_complete(checkpoint));
        }
        match self.status(checkpoint) {
            Status::Complete => Some(true),
            Status::GivenUp => Some(false),
            Status::Pending => None,
        }
    }

    /// Blocks until `checkpoint` is complete (`true`), or given up (`false`; then the output
    /// of its epoch must not be committed: a restart replays it). For sinks that commit
    /// outside weir (a Kafka transaction) once the checkpoint is durable.
    pub fn wait_complete(&self, checkpoint: u64) -> bool {
        self.coordinator
            .as_ref()
            .is_some_and(|c| c.wait_complete(checkpoint))
    }

    /// Hands over the actions that publish this instance's last output when the run ends.
    pub fn finish(&self, commits: Vec<CommitAction>) {
        if let Some(c) = &self.coordinator {
            c.lock()
                .final_commits
                .insert((self.id.to_string(), self.instance), commits);
        }
    }

    /// The latest complete checkpoint (0: none, or checkpointing off).
    pub fn completed(&self) -> u64 {
        self.coordinator.as_ref().map_or(0, |c| c.completed())
    }

    /// Hands over an external commit to make as soon as a checkpoint is complete (from the
    /// checkpoint thread, so that a task stopping for a handover leaves nothing uncommitted).
    /// Repeating it must be harmless: the sink may commit the same epoch itself.
    pub fn on_complete(&self, hook: CompleteHook) {
        if let Some(c) = &self.coordinator {
            c.complete_hooks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(hook);
        }
    }

    /// Hands over the external commit of the run's last epoch (a Kafka transaction), with the
    /// note its verifier reads: run at the end only if every task succeeded, with the final
    /// manifest's id, after that manifest (which carries the note) is written.
    pub fn on_final_commit(&self, note: String, hook: FinalHook) {
        if let Some(c) = &self.coordinator {
            c.lock()
                .final_hooks
                .push((self.id.to_string(), self.instance, note, hook));
        }
    }

    /// The checkpoint folder's id (see [`Coordinator::folder_id`]); empty without checkpoints.
    pub fn folder_id(&self) -> &str {
        self.coordinator.as_ref().map_or("", |c| c.folder_id())
    }

    /// The operator's stable id.
    pub fn id(&self) -> &str {
        self.id
    }

    pub fn label(&self) -> String {
        format!("{}-{}", self.id, self.instance)
    }

    /// This instance's index among its operator's instances.
    pub fn instance(&self) -> usize {
        self.instance as usize
    }

    /// How many instances the operator has (from the plan; 1 when checkpointing is off).
    pub fn instances(&self) -> usize {
        self.coordinator
            .as_ref()
            .and_then(|c| {
                c.lock()
                    .plan
                    .iter()
                    .find(|s| s.id == self.id)
                    .map(|s| s.instances)
            })
            .unwrap_or(1)
            .max(1)
    }
}

/// Writes an operator's [`Snapshot::save_state`] and [`Snapshot::load_state`] from one list
/// of its fields, so the two cannot disagree on what is saved or in which order: each field is
/// saved with [`State`](crate::state::State) and loaded back into place, in the order listed
/// (a path such as `open.groups` names a field of a field).
///
/// ```ignore
/// impl<S: RankSpec, N> Snapshot for TopNOp<S, N> {
///     fn slot_mut(&mut self) -> &mut StateSlot { &mut self.slot }
///     snapshot_fields!(state);
/// }
/// ```
macro_rules! snapshot_fields {
    ($($($field:ident).+),+ $(,)?) => {
        fn save_state(&self, out: &mut ::std::vec::Vec<u8>) {
            $($crate::state::State::save(&self.$($field).+, out);)+
        }
        fn load_state(
            &mut self,
            input: &mut &[u8],
        ) -> ::std::result::Result<(), $crate::state::StateError> {
            $(self.$($field).+ = $crate::state::State::load(input)?;)+
            Ok(())
        }
    };
}
pub(crate) use snapshot_fields;

/// State an operator can save and restore.
///
/// An operator with large keyed state may also write deltas (incremental checkpoints, see
/// [`super::delta`]): it tracks what changed once [`track_changes`](Snapshot::track_changes)
/// is called, says so in [`delta_ready`](Snapshot::delta_ready), saves at its barrier with
/// [`snapshot_incremental`], and applies deltas in [`load_delta`](Snapshot::load_delta). The
/// defaults write full parts only.
pub trait Snapshot {
    fn save_state(&self, out: &mut Vec<u8>);
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError>;
    /// Where the operator keeps its slot.
    fn slot_mut(&mut self) -> &mut StateSlot;

    /// Starts tracking what changes, for deltas (called once, after a restore, when the run
    /// takes incremental checkpoints).
    fn track_changes(&mut self) {}
    /// Whether the operator can write a delta now (it tracks its changes, on a backend that
    /// can list them).
    fn delta_ready(&self) -> bool {
        false
    }
    /// Writes what changed since the last save (full or delta) and forgets it: the next delta
    /// starts here.
    fn save_delta(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }
    /// After a full save: forgets the changes tracked so far.
    fn saved_full(&mut self) {}
    /// Applies a delta (what [`save_delta`](Snapshot::save_delta) wrote) on the state loaded
    /// so far.
    fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        let _ = input;
        Err(StateError::Invalid(
            "a delta, for an operator that writes none",
        ))
    }
    /// After a restore that applied `deltas` deltas: rebuilds what deltas do not carry.
    fn restored(&mut self, deltas: usize) {
        let _ = deltas;
    }

    /// Takes part in checkpoints through `slot`, restoring what it holds (what generated
    /// code calls on every stateful operator it builds).
    fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String>
    where
        Self: Sized,
    {
        restore(&mut self, &mut slot)?;
        if slot.incremental() {
            self.track_changes();
        }
        *self.slot_mut() = slot;
        Ok(self)
    }
}

/// Saves `op`'s state into `slot` for `checkpoint` (a no-op when checkpointing is off),
/// writing a large part to storage as it is saved (see [`spill`]).
pub fn snapshot<T: Snapshot + ?Sized>(op: &T, slot: &StateSlot, checkpoint: u64) {
    let Some(c) = slot.coordinator.clone() else {
        return;
    };
    if !c.wants(checkpoint) {
        return;
    }
    let part = c
        .spill_path(slot.id, slot.instance, checkpoint)
        .and_then(|path| spill::save(&path, c.spill_at(), |out| op.save_state(out)))
        .and_then(|part| {
            let sum = part.checksum();
            let view = part.view();
            c.save_part(
                slot.id,
                slot.instance,
                checkpoint,
                view,
                sum,
                None,
                Vec::new(),
                Vec::new(),
            )
        });
    if let Err(e) = part {
        crate::context::report_error(format!("checkpoint {checkpoint} failed: {e}"));
        c.abandon();
    }
}

/// Saves `op`'s state into its slot for `checkpoint`: a delta when the operator tracks its
/// changes and its chain may grow (see [`super::delta::Policy`]), else its whole state (a
/// no-op when checkpointing is off). A delta larger than the chain's full part is replaced
/// by a full part: when most keys change between checkpoints (an interval join whose
/// records live a few seconds) the full part is smaller, and restores read less.
pub fn snapshot_incremental<T: Snapshot + ?Sized>(op: &mut T, checkpoint: u64) {
    let ready = op.delta_ready();
    let slot = op.slot_mut();
    let Some(c) = slot.coordinator.clone() else {
        return;
    };
    let base = if ready {
        c.delta_base(slot.id, slot.instance)
            .filter(|&(base, _)| slot.tracked == Some(base))
    } else {
        None
    };
    let (id, instance) = (slot.id, slot.instance);
    let saved = save_incremental(op, &c, id, instance, checkpoint, base);
    if let Err(e) = saved {
        crate::context::report_error(format!("checkpoint {checkpoint} failed: {e}"));
        c.abandon();
    }
}

/// What [`snapshot_incremental`] does once it knows the chain's newest file (`base`: its
/// checksum and the size of its full part).
fn save_incremental<T: Snapshot + ?Sized>(
    op: &mut T,
    c: &Coordinator,
    id: &'static str,
    instance: u32,
    checkpoint: u64,
    base: Option<(u64, u64)>,
) -> Result<(), String> {
    if !c.wants(checkpoint) {
        // Given up: the changes tracked so far go into the next one.
        return Ok(());
    }
    let path = c.spill_path(id, instance, checkpoint)?;
    let mut chosen = None;
    if let Some((on, full)) = base {
        let delta = spill::save(&path, c.spill_at(), |out| {
            delta::header(on, out);
            op.save_delta(out);
        })?;
        if delta.bytes() <= full {
            chosen = Some((delta, Some(on)));
        }
        // Else the delta (and its file) goes here, before the full part takes its place.
    }
    let (part, base) = match chosen {
        Some(chosen) => chosen,
        None => {
            let full = spill::save(&path, c.spill_at(), |out| op.save_state(out))?;
            op.saved_full();
            (full, None)
        }
    };
    let sum = part.checksum();
    op.slot_mut().tracked = Some(sum);
    c.save_part(
        id,
        instance,
        checkpoint,
        part.view(),
        sum,
        base,
        Vec::new(),
        Vec::new(),
    )
}

/// Loads the state `slot` was restored with into `op`, if any: the full part, then each
/// delta of its chain in order.
pub fn restore<T: Snapshot + ?Sized>(op: &mut T, slot: &mut StateSlot) -> Result<(), String> {
    if let Some(restored) = slot.restored.take() {
        let label = slot.label();
        let fail = |e: StateError| format!("cannot restore state {label}: {e}");
        let mut input: &[u8] = &restored.full;
        mapped::reading(&restored.full, || op.load_state(&mut input)).map_err(fail)?;
        if !input.is_empty() {
            return Err(fail(StateError::Trailing(input.len())));
        }
        for (n, delta) in restored.deltas.iter().enumerate() {
            let fail = |e: StateError| {
                format!(
                    "cannot restore state {label}: delta {} of {}: {e}",
                    n + 1,
                    restored.deltas.len()
                )
            };
            let mut input: &[u8] = delta;
            mapped::reading(delta, || op.load_delta(&mut input)).map_err(fail)?;
            if !input.is_empty() {
                return Err(fail(StateError::Trailing(input.len())));
            }
        }
        op.restored(restored.deltas.len());
        slot.tracked = Some(restored.end);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Snapshot, StateSlot};
    use crate::state::StateError;

    struct Inner {
        groups: Vec<i64>,
    }

    /// A field of a field and two plain fields, as operators declare them.
    struct Op {
        open: Inner,
        watermark: i64,
        name: String,
        slot: StateSlot,
    }

    impl Snapshot for Op {
        fn slot_mut(&mut self) -> &mut StateSlot {
            &mut self.slot
        }
        snapshot_fields!(open.groups, watermark, name);
    }

    fn op() -> Op {
        Op {
            open: Inner { groups: Vec::new() },
            watermark: i64::MIN,
            name: String::new(),
            slot: StateSlot::inert(),
        }
    }

    /// The bytes are the fields' encodings in the order listed, without tags: what the
    /// hand-written `save_state`s wrote, so checkpoints taken before them restore.
    #[test]
    fn fields_are_saved_in_order_and_loaded_back_in_place() {
        let mut written = op();
        written.open.groups = vec![7];
        written.watermark = 5;
        written.name = "ab".into();
        let mut bytes = Vec::new();
        written.save_state(&mut bytes);
        let mut expected = Vec::new();
        expected.extend(1u64.to_le_bytes()); // one group
        expected.extend(7i64.to_le_bytes());
        expected.extend(5i64.to_le_bytes());
        expected.extend(2u64.to_le_bytes()); // "ab"
        expected.extend(b"ab");
        assert_eq!(bytes, expected);

        let mut read = op();
        let mut input = &bytes[..];
        read.load_state(&mut input).expect("loads");
        assert!(input.is_empty());
        assert_eq!(
            (read.open.groups, read.watermark, read.name),
            (vec![7], 5, "ab".to_string())
        );

        // Cut short: an error, not a panic.
        let mut short = op();
        assert_eq!(
            short.load_state(&mut &expected[..expected.len() - 1]),
            Err(StateError::Truncated)
        );
    }
}
