//! Which lists of a [`Lists`](super::Lists) may hold records: Bloom filters of list prefixes
//! (`key ‖ list`), so that a caller need not count each key's records in memory for the lists
//! to read nothing they need not read.
//!
//! - **`stored`**: every list that entered the cache with nothing in the store, which every
//!   list with chunks in the store once did. A list it has not seen has no records, in the
//!   cache or the store: a join probing a side with nothing under the key looks nowhere, not
//!   even in the cache (in Nexmark's q20 most bids find no auction), and a list it has not
//!   seen starts whole in the cache.
//! - **`split`**: every list a chunk other than chunk 0 was written for (a list appended to
//!   while it was out of the cache, see `lists`). A list it has not seen is at most chunk 0,
//!   which a point read finds through the store's own filters; the others need a search.
//!
//! A Bloom filter answers "maybe" for a list it has seen and, for under 1 % of the others,
//! falsely: a false "maybe" costs a read that finds nothing (or, of `split`, a search where a
//! point read would do), never a wrong answer. Each is a chain of filters that **grows**
//! without reading the store: when the newest is full, a filter four times its size, with a
//! quarter of its false positives, is added (so the chain's false positives stay under
//! 0.7 %, and a lookup of a list it does not hold, which looks in each, looks in few). 12 to
//! 75 bits a list of `stored` (2 to 9 bytes), as full as the newest is, and `split` holds only
//! split lists; a count per key weighed some 40 bytes.
//!
//! A Bloom filter cannot forget, and lists go (a join's TTL, a window join's fired windows).
//! The lists count those left with no records when they leave the cache or are removed;
//! once they are half of what the filters hold, the filters are **built again**: from the
//! lists in the cache at once, and from the store a slice of its keys ([`SLICE`], values read
//! with them) when the rebuild begins and at each record appended or chunk written; lists
//! that enter the cache and split chunks written meanwhile go into both the old filters and
//! the new (a chunk 0 written meanwhile is of a list the new filters hold, or lies ahead of
//! the scan), and the old answer until the new have seen every key. A store that only grows is never read for them. Keys that empty
//! and fill again (a steady set of keys under a TTL) are counted each time they empty, so a
//! rebuild then comes after every half of them did, and finds them all again: one read of
//! the store per that many emptied lists.

use fastbloom::BloomFilter;
use foldhash::fast::FixedState;

/// Lists the first filter of a chain holds: about 40 KiB.
pub(super) const MIN_LISTS: usize = 32_768;

/// The share of lists they do not hold that the filters may falsely say they hold.
const FALSE_POSITIVES: f64 = 0.01;

/// Store entries a rebuild reads when it begins and at each record appended or chunk written.
pub(super) const SLICE: usize = 64;

/// Fixed, so that the same input reads the same lists in every run (and every filter hashes
/// a list alike: one hash serves the whole chain).
const SEED: u64 = 0x7765_6972_206c_6973;

/// A growing Bloom filter: filters of four times the size and a quarter of the false
/// positives of the one before.
struct Chain {
    filters: Vec<BloomFilter<FixedState>>,
    /// Lists the newest filter was made for, and how many more it may take.
    capacity: usize,
    room: usize,
}

impl Chain {
    fn new(first: usize) -> Chain {
        let mut chain = Chain {
            filters: Vec::new(),
            capacity: 0,
            room: 0,
        };
        chain.grow(first);
        chain
    }

    fn grow(&mut self, lists: usize) {
        let fp = FALSE_POSITIVES / 2.0 / 4f64.powi(self.filters.len().min(20) as i32);
        self.filters.push(
            BloomFilter::with_false_pos(fp)
                .hasher(FixedState::with_seed(SEED))
                .expected_items(lists),
        );
        self.capacity = lists;
        self.room = lists;
    }

    fn hash(&self, prefix: &[u8]) -> u64 {
        self.filters[0].source_hash(prefix)
    }

    #[inline]
    fn contains(&self, hash: u64) -> bool {
        self.filters.iter().any(|f| f.contains_hash(hash))
    }

    /// Adds a list; true if it was not there (nor falsely said to be). `new`: the caller
    /// knows it was not.
    fn add(&mut self, hash: u64, new: bool) -> bool {
        if !new && self.contains(hash) {
            return false;
        }
        if self.room == 0 {
            self.grow(self.capacity * 4);
        }
        if let Some(newest) = self.filters.last_mut() {
            newest.insert_hash(hash);
        }
        self.room -= 1;
        true
    }
}

/// The two chains (see the module docs).
struct Pair {
    stored: Chain,
    split: Chain,
}

impl Pair {
    fn new(lists: usize) -> Pair {
        Pair {
            stored: Chain::new(lists),
            split: Chain::new(lists),
        }
    }

    /// Notes a chunk of a list (`zero`: the chunk keyed 0); true if the list is new.
    fn add(&mut self, hash: u64, zero: bool) -> bool {
        if !zero {
            self.split.add(hash, false);
        }
        self.stored.add(hash, false)
    }
}

/// A rebuild under way: new filters, and how far the scan of the store has gone.
struct Rebuild {
    new: Pair,
    /// The last entry key the scan read (`None`: it has read none).
    after: Option<Vec<u8>>,
    /// Lists the scan found (a list's chunks are next to each other in key order), lists
    /// new to the new filters that were in the cache or entered it meanwhile, and lists gone
    /// meanwhile.
    found: usize,
    added: usize,
    gone: usize,
    last_prefix: Vec<u8>,
}

/// The filters of one [`Lists`](super::Lists) (see the module docs).
pub(super) struct Filters {
    now: Pair,
    /// Lists their first filters are made for ([`MIN_LISTS`]; fewer in tests).
    min: usize,
    /// Lists the filters hold, and lists they hold that left the store since.
    held: usize,
    gone: usize,
    rebuild: Option<Rebuild>,
    /// Rebuilds done.
    pub rebuilt: usize,
}

impl Filters {
    pub fn new(min: usize) -> Filters {
        Filters {
            now: Pair::new(min),
            min,
            held: 0,
            gone: 0,
            rebuild: None,
            rebuilt: 0,
        }
    }

    /// Lists their first filters are made for.
    pub fn min(&self) -> usize {
        self.min
    }

    /// The list `prefix` may have records, in the cache or the store.
    #[inline]
    pub fn stored(&self, prefix: &[u8]) -> bool {
        self.now.stored.contains(self.now.stored.hash(prefix))
    }

    /// The store may hold chunks of the list `prefix` besides the one keyed 0.
    #[cfg(test)]
    pub fn split(&self, prefix: &[u8]) -> bool {
        self.now.split.contains(self.now.split.hash(prefix))
    }

    /// What the store may hold of the list `prefix`: `None`, nothing; `Some(false)`, at most
    /// the chunk keyed 0; `Some(true)`, other chunks too (one hash for both filters).
    #[inline]
    pub fn chunks(&self, prefix: &[u8]) -> Option<bool> {
        let hash = self.now.stored.hash(prefix);
        self.now
            .stored
            .contains(hash)
            .then(|| self.now.split.contains(hash))
    }

    /// Notes that the list `prefix` enters the cache other than from the store (a record is
    /// added to it); true if the filters did not hold it: then it has no other records.
    pub fn enters(&mut self, prefix: &[u8]) -> bool {
        let hash = self.now.stored.hash(prefix);
        let unseen = !self.now.stored.contains(hash);
        if unseen {
            self.held += usize::from(self.now.stored.add(hash, true));
        }
        if let Some(r) = &mut self.rebuild {
            r.added += usize::from(r.new.stored.add(hash, false));
        }
        unseen
    }

    /// Notes that a chunk of the list `prefix` other than the one keyed 0 is written.
    pub fn split_written(&mut self, prefix: &[u8]) {
        let hash = self.now.split.hash(prefix);
        self.now.split.add(hash, false);
        if let Some(r) = &mut self.rebuild {
            r.new.split.add(hash, false);
        }
    }

    /// Adds a list in the cache to a rebuild that just began. (A list read back from the
    /// store during the rebuild needs no call: the scan finds its chunks, which stay in the
    /// store while it is cached.)
    pub fn cached_at_rebuild(&mut self, prefix: &[u8]) {
        if let Some(r) = &mut self.rebuild {
            let hash = r.new.stored.hash(prefix);
            r.added += usize::from(r.new.stored.add(hash, false));
        }
    }

    /// Notes that a list has no records left in the cache or the store; once such lists are
    /// half of those the filters hold, a rebuild begins, and true is returned: the caller
    /// then names each list in its cache ([`Filters::cached_at_rebuild`]).
    pub fn gone(&mut self) -> bool {
        self.gone += 1;
        if let Some(r) = &mut self.rebuild {
            r.gone += 1;
            false
        } else if self.gone > self.min.max(self.held / 2) {
            let live = self.held.saturating_sub(self.gone);
            self.rebuild = Some(Rebuild {
                // Room for the lists there are, and as many again before the chain grows.
                new: Pair {
                    stored: Chain::new((2 * live).max(self.min)),
                    // Few lists are split: it grows on its own.
                    split: Chain::new(self.min),
                },
                after: None,
                found: 0,
                added: 0,
                gone: 0,
                last_prefix: Vec::new(),
            });
            true
        } else {
            false
        }
    }

    /// Where the rebuild under way reads next: after this entry key (`Some(None)`: from the
    /// start); `None` when there is no rebuild.
    pub fn rebuilding(&self) -> Option<Option<&[u8]>> {
        self.rebuild.as_ref().map(|r| r.after.as_deref())
    }

    /// Adds to the new filters the entries a slice of the rebuild's scan read (keys in
    /// order, `key ‖ list ‖ arrival`); fewer than [`SLICE`] means the scan reached the end,
    /// and the new filters replace the old.
    pub fn scanned(&mut self, keys: &[Vec<u8>]) {
        let Some(r) = &mut self.rebuild else {
            return;
        };
        for key in keys {
            let (prefix, arrival) = key.split_at(key.len() - 8);
            let hash = r.new.stored.hash(prefix);
            r.new.add(hash, arrival == [0; 8]);
            if r.last_prefix != prefix {
                r.found += 1;
                r.last_prefix.clear();
                r.last_prefix.extend_from_slice(prefix);
            }
        }
        if let Some(last) = keys.last() {
            r.after = Some(last.clone());
        }
        if keys.len() < SLICE {
            if let Some(r) = self.rebuild.take() {
                self.now = r.new;
                // A cached list with chunks is counted by both: the next rebuild comes a
                // little late.
                self.held = r.found + r.added;
                self.gone = r.gone;
                self.rebuilt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(i: u64) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn entry(i: u64, arrival: u64) -> Vec<u8> {
        let mut key = prefix(i);
        key.extend_from_slice(&arrival.to_be_bytes());
        key
    }

    /// A list entering the cache, then written (as chunk 0, or another chunk too).
    fn add(filters: &mut Filters, i: u64, zero: bool) {
        filters.enters(&prefix(i));
        if !zero {
            filters.split_written(&prefix(i));
        }
    }

    /// Of `n` lists never added from `from` on, how many the filters say the store holds.
    fn falsely_stored(filters: &Filters, from: u64, n: u64) -> usize {
        (from..from + n)
            .filter(|&i| filters.stored(&prefix(i)))
            .count()
    }

    /// Lists added are always said to be there, far past what the first filters were made
    /// for, and lists never added seldom are (under 1 %, as the chain grows); nothing is
    /// rebuilt while no list leaves the store.
    #[test]
    fn filters_grow_without_false_negatives() {
        let mut filters = Filters::new(1_000);
        for i in 0..50_000u64 {
            add(&mut filters, i, i % 3 != 0);
            if i % 10_000 == 9_999 {
                let false_stored = falsely_stored(&filters, 1 << 40, 20_000);
                assert!(false_stored < 200, "{false_stored} of 20,000 after {i}");
            }
        }
        assert!(filters.now.stored.filters.len() >= 3, "the chain grew");
        assert!((0..50_000u64).all(|i| filters.stored(&prefix(i))));
        assert!((0..50_000u64)
            .filter(|i| i % 3 == 0)
            .all(|i| filters.split(&prefix(i))));
        let false_split = (0..50_000u64)
            .filter(|i| i % 3 != 0 && filters.split(&prefix(*i)))
            .count();
        assert!(
            false_split < 340,
            "{false_split} of 33,333 whole lists said split"
        );
        assert!(filters.rebuilding().is_none(), "no list left the store");
    }

    /// Once half the lists have left the store, a rebuild starts; lists in the cache then
    /// and lists that enter it during the scan go into both, the old filters answer until it
    /// ends, and then lists gone from the store are forgotten.
    #[test]
    fn a_rebuild_forgets_lists_gone_from_the_store() {
        let mut filters = Filters::new(100);
        for i in 0..4_000u64 {
            add(&mut filters, i, i % 4 != 2);
        }
        // The store now holds only the even lists, each as chunk 0 (and those ≡ 2 mod 4
        // also a chunk at arrival 7).
        let mut gone = 0;
        while filters.rebuilding().is_none() {
            filters.gone();
            gone += 1;
        }
        // Half of what they hold (a list falsely said to be there is not counted).
        assert!(
            (1_950..=2_001).contains(&gone),
            "a rebuild after {gone} gone"
        );
        assert_eq!(filters.rebuilding(), Some(None), "a rebuild from the start");
        filters.cached_at_rebuild(&prefix(3));
        assert!(filters.enters(&prefix(5_000_000)), "new");
        assert!(!filters.enters(&prefix(5)), "held by the old filters");
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for i in (0..4_000u64).step_by(2) {
            keys.push(entry(i, 0));
            if i % 4 == 2 {
                keys.push(entry(i, 7));
            }
        }
        for slice in keys.chunks(SLICE) {
            assert!(filters.rebuilding().is_some());
            assert!(filters.stored(&prefix(1)), "the old filters answer");
            filters.scanned(slice);
        }
        if keys.len().is_multiple_of(SLICE) {
            filters.scanned(&[]);
        }
        assert!(filters.rebuilding().is_none(), "done");
        assert!((0..4_000u64).step_by(2).all(|i| filters.stored(&prefix(i))));
        assert!(
            filters.stored(&prefix(5_000_000)),
            "entered during the scan"
        );
        assert!(filters.stored(&prefix(3)), "cached when the rebuild began");
        assert!(filters.stored(&prefix(5)), "entered again during the scan");
        assert!((2..4_000u64).step_by(4).all(|i| filters.split(&prefix(i))));
        let gone = (1..4_000u64)
            .step_by(2)
            .filter(|&i| filters.stored(&prefix(i)))
            .count();
        assert!(
            gone < 40,
            "{gone} of 2,000 lists gone still said to be there"
        );
        let not_split = (0..4_000u64)
            .step_by(4)
            .filter(|&i| filters.split(&prefix(i)))
            .count();
        assert!(
            not_split < 20,
            "{not_split} of 1,000 whole lists said split"
        );
        assert_eq!(filters.held, 2_003);
    }
}
