//! A part read back for a restore: mapped from its file rather than copied into memory, so
//! that restoring state larger than memory (a disk backend's) never holds the whole part.
//!
//! A part as large as `--checkpoint-buffer` or larger is mapped read-only from its file (an
//! object store's is first downloaded to a temporary file, unlinked once mapped); a smaller
//! one is read into memory. Its pages come from the
//! page cache as the operator reads them, and [`release`] lets them go behind the reader:
//! while [`reading`] runs an operator's load over a mapped part, the loops that read entries
//! (the collections' [`State`](crate::state::State) impls and the disk backends' loaders) call
//! [`release`], which gives back the pages already read once there are [`RELEASE_EVERY`] of
//! them. The process then holds at most a few megabytes of any part, however large.
//!
//! Checkpoint files are never changed once written (a new checkpoint writes new files), which
//! is what makes mapping them sound; a file removed while mapped stays readable until unmapped.

use std::cell::Cell;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;

/// How many bytes read of a mapped part [`release`] lets accumulate before giving them back.
pub const RELEASE_EVERY: usize = 8 << 20;

/// Why a part could not be read back.
#[derive(Debug)]
pub enum ReadError {
    /// The store failed to give its bytes: the checkpoint counts as damaged.
    Store(String),
    /// This machine could not hold them (a temporary file, a mapping): the checkpoint is
    /// fine, and the run cannot start until the machine can.
    Local(String),
}

/// A part's bytes: read into memory, or mapped from its file; from `start` on.
#[derive(Default)]
pub struct Bytes {
    inner: Inner,
    start: usize,
}

#[derive(Default)]
enum Inner {
    #[default]
    Empty,
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Bytes {
    pub fn owned(bytes: Vec<u8>) -> Bytes {
        Bytes {
            inner: Inner::Owned(bytes),
            start: 0,
        }
    }

    /// Maps `file` (`len` bytes) if it holds `map_from` bytes or more, else reads it.
    pub fn of_file(
        mut file: File,
        len: u64,
        path: &Path,
        map_from: u64,
    ) -> Result<Bytes, ReadError> {
        if len < map_from.max(1) {
            use std::io::{Read, Seek};
            let failed = |e: std::io::Error| {
                ReadError::Store(format!("cannot read {}: {e}", path.display()))
            };
            file.rewind().map_err(failed)?;
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).map_err(failed)?;
            return Ok(Bytes::owned(bytes));
        }
        // SAFETY: checkpoint files are written once, synced, and never changed afterwards
        // (see the module docs); weir only reads this mapping.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| ReadError::Local(format!("cannot map {}: {e}", path.display())))?;
        Ok(Bytes {
            inner: Inner::Mapped(map),
            start: 0,
        })
    }

    /// The same bytes without the first `n` (a delta's header).
    pub fn skip(mut self, n: usize) -> Bytes {
        self.start = (self.start + n).min(self.whole().len());
        self
    }

    fn whole(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty => &[],
            Inner::Owned(bytes) => bytes,
            Inner::Mapped(map) => map,
        }
    }

    /// The checksum of the bytes (see [`super::manifest::checksum`]), read a stretch at a
    /// time: a mapped part's pages are given back behind the reading, so checking a part
    /// never holds it whole.
    pub fn checksum(&self) -> u64 {
        if !matches!(self.inner, Inner::Mapped(_)) {
            return super::manifest::checksum(self);
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        reading(self, || {
            let mut rest: &[u8] = self;
            while !rest.is_empty() {
                let (stretch, after) = rest.split_at(rest.len().min(RELEASE_EVERY));
                hasher.update(stretch);
                rest = after;
                release(rest);
            }
        });
        self.release_all();
        hasher.digest()
    }

    /// Gives back the pages of a mapped part that were read: they come back from the page
    /// cache if read again.
    pub fn release_all(&self) {
        if let Inner::Mapped(map) = &self.inner {
            // SAFETY: the mapping is read-only and its file never changes: dropping its
            // pages only makes the next read fetch them from the file (or page cache) again.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self.inner {
            Inner::Owned(mut bytes) if self.start == 0 => {
                bytes.shrink_to_fit();
                bytes
            }
            _ => self.to_vec(),
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.whole()[self.start..]
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.inner {
            Inner::Mapped(_) => "mapped",
            _ => "in memory",
        };
        write!(f, "Bytes({} bytes {how})", self.len())
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

thread_local! {
    /// The mapped part being read on this thread: (first address, end address, first
    /// address not yet given back). Empty (0, 0, 0) when none.
    static READING: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

/// Runs `load` while `bytes` is the part being read on this thread, so that [`release`] can
/// give back what it has read.
pub fn reading<T>(bytes: &Bytes, load: impl FnOnce() -> T) -> T {
    let Inner::Mapped(map) = &bytes.inner else {
        return load();
    };
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            READING.set((0, 0, 0));
        }
    }
    let first = map.as_ptr() as usize;
    let _done = Done;
    READING.set((first, first + map.len(), first));
    load()
}

/// Between two entries of a load: once [`RELEASE_EVERY`] bytes of the mapped part being read
/// lie behind `input`, gives their pages back. A no-op for any other input, and cheap enough
/// for every entry.
#[inline]
pub fn release(input: &[u8]) {
    let at = input.as_ptr() as usize;
    let (first, end, kept) = READING.get();
    if at >= kept + RELEASE_EVERY && at <= end && at >= first {
        give_back(kept, at);
    }
}

#[cold]
fn give_back(kept: usize, at: usize) {
    let page = page_size();
    // Whole pages only, from the first one not given back to the last one fully read.
    let from = kept.next_multiple_of(page);
    let to = at / page * page;
    if to > from {
        // SAFETY: [from, to) lies in the read-only mapping `reading` registered (checked by
        // the caller), which outlives this call, of a file that never changes: dropping pages
        // of it only makes the next read of them fetch them from the file again.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
        }
        let (first, end, _) = READING.get();
        READING.set((first, end, to));
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    /// A large part is mapped and reads back what was written; the pages read are given
    /// back as the load goes (its resident size stays small); a small one is read.
    #[test]
    fn a_large_part_is_mapped_and_given_back_as_it_is_read() {
        let values: Vec<u64> = (0..4_000_000u64).collect(); // 32 MB
        let mut bytes = Vec::new();
        values.save(&mut bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let part = Bytes::of_file(file, bytes.len() as u64, &path, 1 << 20).unwrap();
        assert!(matches!(part.inner, Inner::Mapped(_)));
        assert!(*part == bytes[..]);
        assert_eq!(part.checksum(), super::super::manifest::checksum(&bytes));
        assert!(resident_pages(&part) * page_size() <= RELEASE_EVERY + 2 * page_size());
        let loaded = reading(&part, || {
            let mut input = &part[..];
            Vec::<u64>::load(&mut input).unwrap()
        });
        assert_eq!(loaded, values);
        assert_eq!(
            READING.get(),
            (0, 0, 0),
            "nothing is registered after the load"
        );
        // Pages were given back behind the reader: at most the last stretch is resident.
        let resident = resident_pages(&part) * page_size();
        assert!(
            resident <= RELEASE_EVERY + 2 * page_size(),
            "{resident} bytes resident"
        );

        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        let part = Bytes::of_file(File::open(&small).unwrap(), 3, &small, 1 << 20).unwrap();
        assert!(matches!(part.inner, Inner::Owned(_)));
        assert_eq!(&*part.skip(1), b"bc");
    }

    /// The pages of `part`'s mapping this process holds (from /proc/self/smaps).
    fn resident_pages(part: &Bytes) -> usize {
        let Inner::Mapped(map) = &part.inner else {
            return 0;
        };
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", map.as_ptr() as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        lines.next().expect("the mapping is listed");
        let rss_kib = lines
            .find(|l| l.starts_with("Rss:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
            .unwrap();
        rss_kib * 1024 / page_size()
    }
}
