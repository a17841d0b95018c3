//! The interval join on the disk backend: its records are lists of the process's LSM store
//! (see `ops::join::disk`); a probe skips the partners outside the interval by their time
//! before decoding them, and the watermark removes each side's expired records.

use crate::collector::Collector;
use crate::ops::join::disk::{broken, encoded, LEFT, RIGHT};
use crate::ops::join::{Either, Held, JoinSpec};
use crate::state::decode;

use super::{in_interval, IntervalJoin};

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    IntervalJoin<S, N, D>
{
    /// Probes the right records of `key` with a left record of time `time`, and stores it if
    /// `store`; true if it matched.
    pub(super) fn push_left_disk(
        &mut self,
        l: &S::Left,
        key: &S::Key,
        time: i64,
        store: bool,
    ) -> bool {
        let Some(disk) = self.records.disk.as_mut() else {
            return false;
        };
        let bytes = encoded(key);
        let bounds = (self.lower, self.upper);
        let fits = |rt: i64| in_interval(time, rt, bounds);
        let (next, stats) = (&mut self.next, &mut self.stats);
        let matched = disk.probe_rights::<S, N>(&bytes, l, fits, next, stats);
        if store {
            disk.store((key, &bytes), LEFT, (time, matched), l);
        }
        matched
    }

    /// Probes the left records of `key` with a right record of time `time`, and stores it if
    /// `store`.
    pub(super) fn push_right_disk(&mut self, r: &S::Right, key: &S::Key, time: i64, store: bool) {
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        let bytes = encoded(key);
        let bounds = (self.lower, self.upper);
        let fits = |lt: i64| in_interval(lt, time, bounds);
        let (next, stats, mark) = (&mut self.next, &mut self.stats, self.left_outer);
        disk.probe_lefts::<S, N>((key, &bytes), r, mark, fits, next, stats);
        if store {
            disk.store((key, &bytes), RIGHT, (time, false), r);
        }
    }

    /// Removes what watermark `w` makes unmatchable from the keys the expiry indexes name;
    /// a left outer join's unmatched left records go to `unmatched` with their time, by key
    /// and then arrival.
    pub(super) fn expire_disk(&mut self, w: i64, unmatched: &mut Vec<(i64, S::Out)>) {
        let (lower, upper, outer) = (self.lower, self.upper, self.left_outer);
        let lefts = self.left_expiry.take_expired(w);
        let rights = self.right_expiry.take_expired(w);
        let Some(disk) = self.records.disk.as_mut() else {
            return;
        };
        for key in lefts {
            let dead = |lt: i64| lt.saturating_add(upper) < w;
            self.buffered -= disk.remove_where(&key, LEFT, dead, |value| {
                if outer {
                    match decode::<Held<S::Left>>(value) {
                        Ok(h) if !h.matched => unmatched.push((h.time, S::left_only(&h.record))),
                        Ok(_) => {}
                        Err(e) => broken(e),
                    }
                }
            });
        }
        for key in rights {
            let dead = |rt: i64| rt.saturating_sub(lower) < w;
            self.buffered -= disk.remove_where(&key, RIGHT, dead, |_| {});
        }
    }
}
