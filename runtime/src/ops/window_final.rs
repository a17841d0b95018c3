//! What the final operators share ([`FinalTopNOp`](super::FinalTopNOp),
//! [`FinalAggregateOp`](super::FinalAggregateOp)): top-N, dedup and aggregates keyed by a window
//! that closed upstream emit final rows, once, as an append stream.
//!
//! After an event-time window aggregate, every row of one window reaches the next operator
//! before the watermark passes that window's end (the window fires at that watermark and
//! sends its rows ahead of it). So a `top`, `dedup` or `aggregate by` whose key names the
//! window (its `window_end`, or the `window_start` of a fixed-size window) knows that a group
//! is complete once the watermark reaches the group's end: it emits the group's rows then,
//! once, and drops its state. The compiler picks these operators instead of the updating
//! ones ([`TopNOp`](super::TopNOp), [`GroupAggregateOp`](super::GroupAggregateOp)) when the
//! key names a window; their output can go wherever an append stream can (filters, joins,
//! Kafka, later windows). Groups close in order of their end and, within one end, of their
//! key, so the output is deterministic.
//!
//! The group's end is read from each row's event-time field (the window end). A row whose end
//! the watermark has already passed cannot come from a window upstream; should one arrive, it
//! is counted as late and dropped rather than emitted as a second final result.

use std::collections::BTreeMap;

/// The groups not yet closed, by (end, key), and the watermark that closed the others.
pub(crate) struct OpenGroups<K, V> {
    pub(crate) groups: BTreeMap<(i64, K), V>,
    pub(crate) watermark: i64,
}

impl<K: Ord, V> OpenGroups<K, V> {
    pub(crate) fn new() -> Self {
        OpenGroups {
            groups: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }

    /// The group of a record whose window ends at `end`, made by `new` if it has none; `None`
    /// when the watermark has passed `end` (the record is late).
    pub(crate) fn group(&mut self, end: i64, key: K, new: impl FnOnce() -> V) -> Option<&mut V> {
        (end > self.watermark).then(|| self.groups.entry((end, key)).or_insert_with(new))
    }

    /// Moves the watermark forward; false when it does not move.
    pub(crate) fn advance(&mut self, watermark: i64) -> bool {
        let moved = watermark > self.watermark;
        self.watermark = self.watermark.max(watermark);
        moved
    }

    /// The next group whose window ends at or before `up_to`, removed (in order of end, then
    /// key).
    pub(crate) fn pop_closed(&mut self, up_to: i64) -> Option<(K, V)> {
        let entry = self.groups.first_entry()?;
        (entry.key().0 <= up_to).then(|| {
            let ((_, key), value) = entry.remove_entry();
            (key, value)
        })
    }
}
