//! An ordered set of byte strings, taken from its low end, that keeps only its soonest
//! entries in memory and the rest in files of the run's store folder: the expiry order of a
//! state TTL on the disk backend ([`KeyTtl`](crate::ops::KeyTtl), a join's expiry index), so
//! that an order over millions of keys costs a bounded amount of memory.
//!
//! The queue holds a sorted set in memory; when it weighs more than [`IN_MEMORY`], its later
//! half is written out as one chunk (a file), and a chunk is read back whole, and its file
//! removed, once the front reaches its first entry. Entries come in about the order they are
//! taken (times near the watermark), so the entries due next are in memory and a write
//! carries tens of thousands of entries.
//!
//! Two designs were measured and dropped (a dedup, an aggregate and a join with `ttl(60s)`
//! at 5 M Nexmark events, `--state disk`, 93–111 k events/s with the orders in memory):
//! - one fjall entry per order entry, taken with a range scan: 16 k events/s. fjall's
//!   memtables filled faster than they were flushed and every writer stalled.
//! - chunks as values of a fjall keyspace: 46 k events/s. A keyspace written this rarely
//!   never fills its memtable, so it is never flushed, and the journal it pins grew until
//!   fjall stalled all writers for 500 ms at a time.
//!
//! Chunks are written without `fsync`: the store is scratch, and a checkpoint saves what the
//! order is built from (a join's records, the last writes beside a TTL's keys), from which a
//! restore builds it again. An entry may be held twice (in memory and in a chunk); callers
//! skip stale entries anyway.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{current, failed, Store};
use crate::state::{State, StateError};

/// What the entries held in memory may weigh (an entry weighs its bytes plus
/// [`PER_ENTRY`]): past it, the later half is written out as a chunk.
const IN_MEMORY: usize = 2 << 20;
/// What an entry held in memory costs besides its bytes (its allocation and tree node).
const PER_ENTRY: usize = 48;

/// Entries an order holds in memory before it moves to a queue on a run with a disk store
/// (`--state disk`): a small order (an interval join's, a short TTL's) stays a plain sorted
/// map, which costs no allocation per entry (q7 on disk, an interval join: 0.72x the
/// throughput with its expiry indexes in a queue from the start).
pub const MOVE_TO_DISK_AT: usize = 1 << 18;

/// See the module docs.
pub struct Queue {
    /// The chunks' folder, in the store's.
    folder: PathBuf,
    /// Kept open (its folder kept) for as long as the queue is.
    _store: Arc<Store>,
    /// The entries held in memory, and what they weigh.
    memory: BTreeSet<Vec<u8>>,
    weight: usize,
    /// The chunks in the store: each one's first entry and number (its key in the store).
    chunks: BTreeSet<(Vec<u8>, u64)>,
    next_chunk: u64,
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Queue {
    /// A queue with a keyspace of its own, if the calling thread's run has a store.
    pub fn open() -> Option<Queue> {
        Queue::on(current()?)
    }

    pub(crate) fn on(store: Arc<Store>) -> Option<Queue> {
        let id = store.next_keyspace.fetch_add(1, Ordering::Relaxed);
        let folder = store.folder().join(format!("queue-{id}"));
        match std::fs::create_dir_all(&folder) {
            Ok(()) => Some(Queue {
                folder,
                _store: store,
                memory: BTreeSet::new(),
                weight: 0,
                chunks: BTreeSet::new(),
                next_chunk: 0,
            }),
            Err(e) => {
                failed(&format!("create {}", folder.display()), e);
                None
            }
        }
    }

    /// The file of chunk `number`.
    fn chunk_file(&self, number: u64) -> PathBuf {
        self.folder.join(format!("{number}.chunk"))
    }

    /// Adds `entry` (adding one already held changes nothing, or holds it twice).
    pub fn insert(&mut self, entry: &[u8]) {
        self.hold(entry.to_vec());
        if self.weight > IN_MEMORY {
            self.write_later_half();
        }
    }

    fn hold(&mut self, entry: Vec<u8>) {
        let weight = entry.len() + PER_ENTRY;
        if self.memory.insert(entry) {
            self.weight += weight;
        }
    }

    /// Writes the later half (by weight) of the entries held in memory as one chunk. The
    /// first entry always stays, so that a pop that reads a chunk back never writes the
    /// same chunk again (an entry that weighs half the limit on its own would be).
    fn write_later_half(&mut self) {
        let mut kept = 0;
        let split = self.memory.iter().enumerate().find(|(i, e)| {
            kept += e.len() + PER_ENTRY;
            *i > 0 && kept > IN_MEMORY / 2
        });
        let Some((_, split)) = split else {
            return;
        };
        let split = split.clone();
        let later = self.memory.split_off(&split);
        let mut value = Vec::new();
        for entry in &later {
            self.weight -= entry.len() + PER_ENTRY;
            (entry.len() as u32).save(&mut value);
            value.extend_from_slice(entry);
        }
        let number = self.next_chunk;
        self.next_chunk += 1;
        match std::fs::write(self.chunk_file(number), &value) {
            Ok(()) => {
                let first = later.first().cloned().unwrap_or_default();
                self.chunks.insert((first, number));
            }
            Err(e) => {
                failed("write a TTL's order", e);
                // Kept in memory: the run fails, but the order stays whole.
                for entry in later {
                    self.hold(entry);
                }
            }
        }
    }

    /// Reads back the first chunk into memory, and removes its file.
    fn read_first_chunk(&mut self) {
        let Some((_, number)) = self.chunks.pop_first() else {
            return;
        };
        let file = self.chunk_file(number);
        let value = match std::fs::read(&file) {
            Ok(value) => value,
            Err(e) => {
                failed("read a TTL's order", e);
                return;
            }
        };
        if let Err(e) = std::fs::remove_file(&file) {
            failed("remove a chunk of a TTL's order", e);
        }
        chunk_entries(&value, |entry| self.hold(entry.to_vec()));
        if self.weight > IN_MEMORY {
            self.write_later_half();
        }
    }

    /// Removes every entry that sorts before `bound`, in order, and calls `f` with each. `f`
    /// may insert: an entry it adds before `bound` is taken by the same call. Chunks are read
    /// back one at a time, when the front reaches them, so a pop of everything (the end of
    /// the input) holds no more than a pop of a few.
    pub fn pop_below(&mut self, bound: &[u8], mut f: impl FnMut(&mut Self, &[u8])) {
        loop {
            // The first chunk's first entry, if it is due.
            let chunk = self
                .chunks
                .first()
                .map(|(first, _)| first.clone())
                .filter(|first| first.as_slice() < bound);
            if let Some(first) = &chunk {
                if self.memory.first().is_none_or(|m| first <= m) {
                    self.read_first_chunk();
                    continue;
                }
            }
            // What memory holds before the bound and before that chunk.
            let limit = chunk.as_deref().unwrap_or(bound);
            let later = self.memory.split_off(limit);
            let due = std::mem::replace(&mut self.memory, later);
            if due.is_empty() {
                break;
            }
            for entry in &due {
                self.weight -= entry.len() + PER_ENTRY;
            }
            for entry in &due {
                f(self, entry);
            }
        }
        if self.weight > IN_MEMORY {
            self.write_later_half();
        }
    }

    /// Adds the entry of `key` at `time`: the time's bytes (which sort as the times do), then
    /// the key's encoding.
    pub fn insert_timed<K: State>(&mut self, time: i64, key: &K) {
        let mut entry = Vec::with_capacity(16);
        entry.extend_from_slice(&time_bytes(time));
        key.save(&mut entry);
        self.insert(&entry);
    }

    /// [`pop_below`](Self::pop_below) for entries of [`insert_timed`](Self::insert_timed):
    /// those with a time before `bound`, decoded.
    pub fn pop_timed_below<K: State>(&mut self, bound: i64, mut f: impl FnMut(&mut Self, i64, K)) {
        self.pop_below(&time_bytes(bound), |queue, entry| match timed(entry) {
            Ok((time, key)) => f(queue, time, key),
            Err(e) => failed("decode a key of a TTL's order", e),
        });
    }

    /// Calls `f` with every entry of [`insert_timed`](Self::insert_timed), leaving them in
    /// place (checkpoints): in order within memory and within each chunk, not across them,
    /// and an entry held twice is seen twice.
    pub fn for_each_timed<K: State>(&self, mut f: impl FnMut(i64, K)) {
        let mut each = |entry: &[u8]| match timed(entry) {
            Ok((time, key)) => f(time, key),
            Err(e) => failed("decode a key of a TTL's order", e),
        };
        self.memory.iter().for_each(|e| each(e));
        for (_, number) in &self.chunks {
            match std::fs::read(self.chunk_file(*number)) {
                Ok(value) => chunk_entries(&value, &mut each),
                Err(e) => failed("read a TTL's order", e),
            }
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for (_, number) in std::mem::take(&mut self.chunks) {
            let _ = std::fs::remove_file(self.chunk_file(number));
        }
        self.memory.clear();
        self.weight = 0;
    }

    /// What the entries held in memory weigh.
    pub fn memory_bytes(&self) -> usize {
        self.weight
    }

    /// Chunks in the store (for tests).
    #[cfg(test)]
    fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// Calls `f` with each entry of a chunk's file (each one's length, then its bytes); a damaged
/// file is reported and read no further.
fn chunk_entries(mut input: &[u8], mut f: impl FnMut(&[u8])) {
    while !input.is_empty() {
        let entry = u32::load(&mut input).ok().and_then(|len| {
            let (entry, rest) = input.split_at_checked(len as usize)?;
            input = rest;
            Some(entry)
        });
        let Some(entry) = entry else {
            failed("read a TTL's order", "a damaged chunk");
            return;
        };
        f(entry);
    }
}

/// A time as bytes that sort as the times do.
fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time and key of an entry [`Queue::insert_timed`] wrote.
fn timed<K: State>(entry: &[u8]) -> Result<(i64, K), StateError> {
    let (time, mut key) = entry
        .split_first_chunk::<8>()
        .ok_or(StateError::Truncated)?;
    let key = K::load(&mut key)?;
    Ok(((u64::from_be_bytes(*time) ^ (1 << 63)) as i64, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popped(queue: &mut Queue, bound: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        queue.pop_below(bound, |_, e| out.push(e.to_vec()));
        out
    }

    /// Entries come out in order, only those before the bound, each once, whether they were
    /// held in memory or written out in chunks; an insert behind the front (a late time) is
    /// found again, and so is one `f` adds before the bound.
    #[test]
    fn entries_are_taken_in_order_from_memory_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::tests::store(dir.path(), 1 << 20);
        let mut queue = Queue::on(store).expect("opens");
        const N: u32 = 400_000;
        for i in (0..N).rev() {
            queue.insert(&i.to_be_bytes());
        }
        queue.insert(&5u32.to_be_bytes()); // held already
        assert!(queue.chunks() >= 4, "{} chunks", queue.chunks());
        assert!(queue.weight <= IN_MEMORY);
        let first = popped(&mut queue, &300_000u32.to_be_bytes());
        let want: Vec<Vec<u8>> = (0u32..300_000).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(first, want);
        assert!(popped(&mut queue, &300_000u32.to_be_bytes()).is_empty());
        queue.insert(&7u32.to_be_bytes()); // behind the front
        let mut again = Vec::new();
        queue.pop_below(&300_002u32.to_be_bytes(), |q, e| {
            again.push(e.to_vec());
            if e == 7u32.to_be_bytes() {
                q.insert(&3u32.to_be_bytes()); // before the bound: taken next
                q.insert(&(N * 10).to_be_bytes()); // after it
            }
        });
        let want: Vec<Vec<u8>> = [7u32, 300_000, 300_001, 3]
            .iter()
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(again, want);
        // Taking everything holds a chunk or two at a time, not the whole order.
        let mut rest = Vec::new();
        queue.pop_below(&u32::MAX.to_be_bytes(), |q, e| {
            assert!(q.weight <= IN_MEMORY * 2, "{} bytes held", q.weight);
            rest.push(e.to_vec());
        });
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rest.len() as u32, N - 300_002 + 1);
        assert_eq!(rest.last().unwrap(), &(N * 10).to_be_bytes().to_vec());
        assert_eq!((queue.chunks(), queue.weight), (0, 0));
        for i in 0..N {
            queue.insert(&i.to_be_bytes());
        }
        queue.clear();
        assert!(popped(&mut queue, &u32::MAX.to_be_bytes()).is_empty());
    }

    /// An entry heavier than half the memory limit on its own is read back and taken, not
    /// written out again and again (a pop of it looped for ever).
    #[test]
    fn a_huge_entry_is_taken_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::tests::store(dir.path(), 1 << 20);
        let mut queue = Queue::on(store).expect("opens");
        let mut huge = vec![1u8];
        huge.resize(IN_MEMORY * 3 / 4, 0);
        queue.insert(&huge);
        for i in 0..50_000u32 {
            queue.insert(&[&[2u8][..], &i.to_be_bytes()].concat());
        }
        queue.insert(&[0u8]);
        assert!(queue.chunks() >= 1);
        let all = popped(&mut queue, &[3u8]);
        assert_eq!(all.len(), 50_002);
        assert_eq!((all[0].as_slice(), all[1].len()), (&[0u8][..], huge.len()));
        assert_eq!((queue.chunks(), queue.weight), (0, 0));
    }

    /// Timed entries are seen by `for_each_timed` once each, decoded, in memory and in
    /// chunks, and popped by time.
    #[test]
    fn timed_entries_are_listed_and_popped_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::tests::store(dir.path(), 1 << 20);
        let mut queue = Queue::on(store).expect("opens");
        for i in 0..100_000i64 {
            queue.insert_timed(i / 10 - 5_000, &(i % 10));
        }
        assert!(queue.chunks() >= 1);
        let mut all = Vec::new();
        queue.for_each_timed(|t: i64, k: i64| all.push((t, k)));
        all.sort();
        let want: Vec<(i64, i64)> = (0..100_000i64).map(|i| (i / 10 - 5_000, i % 10)).collect();
        assert_eq!(all, want);
        let mut due = Vec::new();
        queue.pop_timed_below(-4_990, |_, t: i64, k: i64| due.push((t, k)));
        assert_eq!(due, want[..100]);
    }
}
