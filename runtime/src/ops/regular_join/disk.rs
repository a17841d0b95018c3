//! The regular join on the disk backend: its records are lists of the process's LSM store
//! (see `ops::join::disk`), probed whole (no interval), expired by the TTL.

use crate::collector::Collector;
use crate::ops::join::disk::{broken, encoded, LEFT, RIGHT};
use crate::ops::join::{emit, Either, Held, JoinSpec};
use crate::state::decode;

use super::RegularJoin;

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    RegularJoin<S, N, D>
{
    pub(super) fn push_left_disk(&mut self, l: &S::Left, key: &S::Key, time: i64) {
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        let bytes = encoded(key);
        let (next, stats) = (&mut self.next, &mut self.stats);
        let matched = disk.probe_rights::<S, N>(&bytes, l, |_| true, next, stats);
        disk.store((key, &bytes), LEFT, (time, matched), l);
    }

    pub(super) fn push_right_disk(&mut self, r: &S::Right, key: &S::Key, time: i64) {
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        let bytes = encoded(key);
        let (next, stats) = (&mut self.next, &mut self.stats);
        disk.probe_lefts::<S, N>((key, &bytes), r, self.left_outer, |_| true, next, stats);
        disk.store((key, &bytes), RIGHT, (time, false), r);
    }

    /// Removes the records with `t + ttl < w` of the keys the expiry index names (a left
    /// outer join first emits the unmatched ones).
    pub(super) fn expire_disk(&mut self, ttl: i64, w: i64) {
        let dead = |time: i64| time.saturating_add(ttl) < w;
        let keys = self.expiry.take_expired(w);
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        let (next, stats, outer) = (&mut self.next, &mut self.stats, self.left_outer);
        for key in keys {
            let left = disk.remove_where(&key, LEFT, dead, |value| {
                if outer {
                    match decode::<Held<S::Left>>(value) {
                        Ok(h) if !h.matched => emit(next, stats, &S::left_only(&h.record)),
                        Ok(_) => {}
                        Err(e) => broken(e),
                    }
                }
            });
            let right = disk.remove_where(&key, RIGHT, dead, |_| {});
            self.buffered -= left + right;
        }
    }

    /// At the end: a left outer join's unmatched records (by key, then arrival), then the
    /// store is emptied.
    pub(super) fn finish_disk(&mut self) {
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        if self.left_outer && !crate::stop::stopped_early() {
            for (_, h) in disk.unmatched_lefts::<S::Left>() {
                emit(&mut self.next, &mut self.stats, &S::left_only(&h.record));
            }
        }
        disk.clear();
    }
}
