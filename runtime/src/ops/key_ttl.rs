//! State time-to-live per key for dedup, top-N and unbounded aggregates
//! (`dedup by k keep first ttl(1h)`, `top 3 by k order by price desc ttl(10m)`,
//! `aggregate by k { ... } ttl(1h)`).
//!
//! A key's state lives until the watermark passes the time of its last write plus the TTL:
//! on watermark `w` a key last written at `t` with `t + ttl < w` is dropped (the same rule
//! as a regular join's records). A write is a record that changed the key's state (entered
//! its top N, or replaced its dedup row), not one that was only compared and discarded; the
//! time of a write is the record's event time, or over an updating input, which has none,
//! the watermark when the change arrived. The last write is the latest such time.
//!
//! On processing time (`ttl(1h, processing)`) the time of a write is the wall clock when it
//! happens, and keys expire on the runtime's ticks (every flush interval), by the wall clock,
//! whether the stream has event time or not. Saved last writes are wall-clock times, so the
//! time a run was stopped counts towards expiry after a restore.
//!
//! Expiry is silent: nothing is emitted for a dropped key. A later record for it starts from
//! empty state, as the key's first record did.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::hash::FastMap;
use crate::ops::window_aggregate::now_ms;
use crate::state::{State, StateError};

/// When each key was last written, and the keys in the order they expire.
pub struct KeyTtl<K> {
    ttl: i64,
    /// Writes and expiry on the wall clock (`ttl(1h, processing)`) instead of event time.
    processing: bool,
    written: FastMap<K, i64>,
    /// `(last write, key)` for every key in `written`.
    queue: BTreeSet<(i64, K)>,
}

impl<K: Hash + Eq + Ord + Clone + State> KeyTtl<K> {
    /// Approximate bytes of its bookkeeping (see [`crate::metrics::table_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        crate::metrics::table_bytes(&self.written)
            + crate::metrics::entries_bytes::<(i64, K)>(self.queue.len())
    }

    /// A negative TTL counts as 0.
    pub fn new(ttl_ms: i64) -> Self {
        KeyTtl {
            ttl: ttl_ms.max(0),
            processing: false,
            written: FastMap::default(),
            queue: BTreeSet::new(),
        }
    }

    /// Counts on the wall clock: [`write_now`](Self::write_now) stamps writes with it and
    /// [`tick`](Self::tick) expires by it; watermarks expire nothing
    /// ([`on_watermark`](Self::on_watermark)).
    pub fn on_processing_time(mut self) -> Self {
        self.processing = true;
        self
    }

    /// Whether writes and expiry count on the wall clock.
    pub fn is_processing_time(&self) -> bool {
        self.processing
    }

    /// Records a write of `key` at event time `time`, or at the wall clock's now on
    /// processing time.
    pub fn write_now(&mut self, key: &K, time: i64) {
        let time = if self.processing { now_ms() } else { time };
        self.write(key, time);
    }

    /// On event time, removes the keys the watermark expires ([`expire`](Self::expire)).
    pub fn on_watermark(&mut self, watermark: i64, drop: impl FnMut(K)) {
        if !self.processing {
            self.expire(watermark, drop);
        }
    }

    /// On processing time, removes the keys the wall clock expires.
    pub fn tick(&mut self, drop: impl FnMut(K)) {
        if self.processing && !self.queue.is_empty() {
            self.expire(now_ms(), drop);
        }
    }

    /// Records a write of `key` at `time` (the last write stays the latest time).
    pub fn write(&mut self, key: &K, time: i64) {
        match self.written.get_mut(key) {
            Some(last) if *last >= time => {}
            Some(last) => {
                self.queue.remove(&(*last, key.clone()));
                *last = time;
                self.queue.insert((time, key.clone()));
            }
            None => {
                self.written.insert(key.clone(), time);
                self.queue.insert((time, key.clone()));
            }
        }
    }

    /// Forgets `key` (its state is gone for another reason).
    pub fn forget(&mut self, key: &K) {
        if let Some(last) = self.written.remove(key) {
            self.queue.remove(&(last, key.clone()));
        }
    }

    /// Removes the keys with `last write + ttl < watermark`, calling `drop` for each.
    pub fn expire(&mut self, watermark: i64, mut drop: impl FnMut(K)) {
        while let Some((last, _)) = self.queue.first() {
            if last.saturating_add(self.ttl) >= watermark {
                break;
            }
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            self.written.remove(&key);
            drop(key);
        }
    }

    /// Moves the writes stamped `from` to `to` (writes stamped with the watermark before the
    /// first one arrived, `i64::MIN`, count from the first watermark), calling `moved` with
    /// each key moved.
    pub fn restamp(&mut self, from: i64, to: i64, mut moved: impl FnMut(&K)) {
        while let Some((last, _)) = self.queue.first() {
            if *last != from {
                break;
            }
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            moved(&key);
            self.written.insert(key.clone(), to);
            self.queue.insert((to, key));
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// Each key with its last write, by key (for tests).
    #[cfg(test)]
    pub(crate) fn last_writes(&self) -> Vec<(K, i64)> {
        let mut all: Vec<_> = self.written.iter().map(|(k, t)| (k.clone(), *t)).collect();
        all.sort();
        debug_assert_eq!(self.queue.len(), all.len());
        all
    }

    /// The last writes (the queue is rebuilt from them on load).
    pub fn save(&self, out: &mut Vec<u8>) {
        self.written.save(out);
    }

    /// The last writes of `keys` (those that changed since the last checkpoint), for a delta:
    /// each key with its last write, or as gone when it has none (expired or removed).
    pub fn save_delta(&self, keys: &BTreeSet<K>, out: &mut Vec<u8>) {
        crate::checkpoint::delta::save_keyed(keys, out, |key, out| match self.written.get(key) {
            Some(last) => {
                last.save(out);
                true
            }
            None => false,
        });
    }

    /// Applies what [`save_delta`](Self::save_delta) wrote: a listed key's last write becomes
    /// the saved one (or the key is forgotten).
    pub fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        crate::checkpoint::delta::load_keyed(input, "a TTL delta's entry", |key: K, value| {
            self.forget(&key);
            if let Some(input) = value {
                let last = i64::load(input)?;
                self.written.insert(key.clone(), last);
                self.queue.insert((last, key));
            }
            Ok(())
        })
    }

    pub fn load(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.written = State::load(input)?;
        self.queue = self
            .written
            .iter()
            .map(|(key, last)| (*last, key.clone()))
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(ttl: &mut KeyTtl<i64>, watermark: i64) -> Vec<i64> {
        let mut keys = Vec::new();
        ttl.expire(watermark, |k| keys.push(k));
        keys
    }

    #[test]
    fn a_key_expires_when_its_last_write_plus_ttl_falls_below_the_watermark() {
        let mut ttl = KeyTtl::<i64>::new(10);
        ttl.write(&1, 100);
        ttl.write(&2, 105);
        ttl.write(&1, 90); // older than the last write: no change
        assert_eq!(expired(&mut ttl, 110), Vec::<i64>::new()); // 100 + 10 is not < 110
        assert_eq!(expired(&mut ttl, 111), vec![1]);
        ttl.write(&2, 120); // a newer write postpones key 2
        assert_eq!(expired(&mut ttl, 116), Vec::<i64>::new());
        assert_eq!(expired(&mut ttl, 131), vec![2]);
        assert!(ttl.is_empty() && ttl.queue.is_empty());
    }

    #[test]
    fn forget_restamp_and_a_saved_state_keep_the_order() {
        let mut ttl = KeyTtl::<i64>::new(5);
        ttl.write(&1, i64::MIN);
        ttl.write(&2, i64::MIN);
        ttl.write(&3, 50);
        ttl.forget(&3);
        ttl.restamp(i64::MIN, 40, |_| {});
        let mut bytes = Vec::new();
        ttl.save(&mut bytes);
        let mut restored = KeyTtl::<i64>::new(5);
        restored.load(&mut bytes.as_slice()).unwrap();
        assert_eq!(expired(&mut restored, 45), Vec::<i64>::new());
        assert_eq!(expired(&mut restored, 46), vec![1, 2]);
        assert_eq!(restored.len(), 0);
    }

    #[test]
    fn on_processing_time_keys_expire_by_the_wall_clock_at_ticks_only() {
        let mut ttl = KeyTtl::<i64>::new(200).on_processing_time();
        ttl.write_now(&1, 0); // the event time given is ignored
        let mut keys = Vec::new();
        ttl.on_watermark(i64::MAX, |k| keys.push(k)); // watermarks expire nothing
        ttl.tick(|k| keys.push(k)); // not 200 ms yet
        std::thread::sleep(std::time::Duration::from_millis(400));
        ttl.write_now(&2, 0);
        ttl.tick(|k| keys.push(k));
        assert_eq!(keys, vec![1]);
        assert_eq!(ttl.len(), 1);
    }
}
