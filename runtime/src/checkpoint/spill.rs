//! Writing a part to its file while the operator saves it, so that a checkpoint of state
//! larger than memory never holds the whole part in memory.
//!
//! [`Snapshot::save_state`](super::Snapshot::save_state) writes into one `Vec<u8>`. While
//! [`save`] runs an operator's save, that buffer is the part's: between entries (the
//! collections' [`State`](crate::state::State) impls and the disk backends' loops call
//! [`between`]) a buffer that has grown past its limit (`--checkpoint-buffer`, [`SPILL_AT`]
//! by default) is appended to the part's file and emptied. Only the buffer [`save`] handed out is written this way: an entry encoded into a
//! buffer of its own is left alone, so its bytes can never land out of order.
//!
//! A count known only at the end (the number of keys a disk store holds) is reserved with
//! [`reserve`] and written with [`fill`], wherever its bytes are by then: still in the buffer,
//! or already in the file (then it is written in place once the save is over). A part that
//! never reaches the limit stays in memory and is written as before.
//!
//! The checksum of a spilled part is read back from its file once it is complete (the filled
//! counts change bytes written earlier); reading a file just written comes from the page
//! cache, a fraction of the time its writing took.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The buffer size at which a part being saved is written out to its file, unless the run
/// says otherwise (`--checkpoint-buffer`).
pub const SPILL_AT: usize = 4 << 20;

thread_local! {
    /// The buffer size at which [`between`] writes out (never, outside [`save`]).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The address of the buffer [`save`] handed out on this thread (0: none).
    static TOP: Cell<usize> = const { Cell::new(0) };
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// The file a part being saved goes to, once it has to.
struct Sink {
    path: PathBuf,
    file: Option<File>,
    /// Bytes written to the file so far (where the buffer starts in the part).
    flushed: u64,
    /// Reserved bytes to write in place once the save is over: (position, bytes).
    fills: Vec<(u64, Vec<u8>)>,
    error: Option<String>,
}

impl Sink {
    /// Appends `bytes` to the file. After an error nothing more is written, but positions
    /// go on as if it were, so reserved bytes are still found (the save then fails).
    fn write(&mut self, bytes: &[u8]) {
        self.flushed += bytes.len() as u64;
        if self.error.is_some() {
            return;
        }
        let path = &self.path;
        let file = match &mut self.file {
            Some(file) => file,
            empty => match File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
            {
                Ok(file) => empty.insert(file),
                Err(e) => {
                    self.error = Some(format!("cannot create {}: {e}", path.display()));
                    return;
                }
            },
        };
        if let Err(e) = file.write_all(bytes) {
            self.error = Some(format!("cannot write {}: {e}", path.display()));
        }
    }
}

fn is_top(out: &Vec<u8>) -> bool {
    TOP.get() == out as *const Vec<u8> as usize
}

/// Between two entries of a save: writes `out` out to the part's file if it is the part being
/// saved and has grown past the limit. A no-op otherwise, and cheap enough for every entry.
#[inline]
pub fn between(out: &mut Vec<u8>) {
    if out.len() >= LIMIT.get() && is_top(out) {
        spill(out);
    }
}

#[cold]
fn spill(out: &mut Vec<u8>) {
    SINK.with_borrow_mut(|sink| {
        if let Some(sink) = sink {
            sink.write(out);
        }
    });
    out.clear();
}

/// Where the next byte written to `out` lands: in the part, for the buffer being saved; in
/// `out`, for any other.
pub fn position(out: &Vec<u8>) -> u64 {
    let flushed = if is_top(out) {
        SINK.with_borrow(|sink| sink.as_ref().map_or(0, |s| s.flushed))
    } else {
        0
    };
    flushed + out.len() as u64
}

/// Appends `bytes` to `out` and says where they are, for [`fill`] to overwrite once what they
/// stand for (a count) is known.
pub fn reserve(out: &mut Vec<u8>, bytes: &[u8]) -> u64 {
    let at = position(out);
    out.extend_from_slice(bytes);
    at
}

/// Overwrites the bytes [`reserve`] put at `at` with `bytes` (as many), in `out` if they are
/// still there, else in the part's file once the save is over.
pub fn fill(out: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let flushed = position(out) - out.len() as u64;
    if at >= flushed {
        let i = (at - flushed) as usize;
        out[i..i + bytes.len()].copy_from_slice(bytes);
    } else {
        // Reserved bytes are written out whole with the buffer that holds them.
        debug_assert!(at + bytes.len() as u64 <= flushed);
        SINK.with_borrow_mut(|sink| {
            if let Some(sink) = sink {
                sink.fills.push((at, bytes.to_vec()));
            }
        });
    }
}

/// A saved part: in memory, or in a file of its own (removed when this is dropped, unless it
/// was moved away).
pub enum Saved {
    Memory(Vec<u8>),
    File {
        path: PathBuf,
        len: u64,
        checksum: u64,
    },
}

/// A part's bytes as [`Store::put_part`](super::Store::put_part) writes them: in memory, or
/// a complete, synced file of `len` bytes.
#[derive(Clone, Copy)]
pub enum View<'a> {
    Memory(&'a [u8]),
    File { path: &'a Path, len: u64 },
}

impl View<'_> {
    /// How many bytes the part holds.
    pub fn bytes(&self) -> u64 {
        match self {
            View::Memory(bytes) => bytes.len() as u64,
            View::File { len, .. } => *len,
        }
    }
}

impl Saved {
    pub fn view(&self) -> View<'_> {
        match self {
            Saved::Memory(bytes) => View::Memory(bytes),
            Saved::File { path, len, .. } => View::File { path, len: *len },
        }
    }

    /// How many bytes the part holds.
    pub fn bytes(&self) -> u64 {
        match self {
            Saved::Memory(bytes) => bytes.len() as u64,
            Saved::File { len, .. } => *len,
        }
    }

    pub fn checksum(&self) -> u64 {
        match self {
            Saved::Memory(bytes) => super::manifest::checksum(bytes),
            Saved::File { checksum, .. } => *checksum,
        }
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        if let Saved::File { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Takes the thread's sink down when the save is over, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        TOP.set(0);
        LIMIT.set(usize::MAX);
        // Still installed only when the save panicked: its file is of no use.
        if let Some(sink) = SINK.with_borrow_mut(Option::take) {
            if sink.file.is_some() {
                let _ = std::fs::remove_file(&sink.path);
            }
        }
    }
}

/// Runs `write` on a fresh buffer that goes to `path` whenever it grows past `limit` bytes
/// (see the module docs). `path`'s folder must exist. A save on a thread already saving one
/// (never done) keeps its part in memory.
pub fn save(path: &Path, limit: usize, write: impl FnOnce(&mut Vec<u8>)) -> Result<Saved, String> {
    let mut out = Vec::new();
    if TOP.get() != 0 {
        write(&mut out);
        return Ok(Saved::Memory(out));
    }
    let sink = {
        let _installed = Installed;
        TOP.set(&out as *const Vec<u8> as usize);
        LIMIT.set(limit.max(1));
        SINK.with_borrow_mut(|sink| {
            *sink = Some(Sink {
                path: path.to_path_buf(),
                file: None,
                flushed: 0,
                fills: Vec::new(),
                error: None,
            })
        });
        write(&mut out);
        SINK.with_borrow_mut(Option::take).expect("installed above")
    };
    if sink.file.is_none() && sink.error.is_none() {
        return Ok(Saved::Memory(out));
    }
    finish(sink, &out)
}

/// Writes the rest of a spilled part and its filled counts, syncs it and reads its checksum.
fn finish(mut sink: Sink, rest: &[u8]) -> Result<Saved, String> {
    sink.write(rest);
    let Sink {
        path,
        file,
        flushed: len,
        fills,
        error,
    } = sink;
    let saved = Saved::File {
        path: path.clone(),
        len,
        checksum: 0,
    };
    if let Some(e) = error {
        return Err(e);
    }
    let mut file = file.expect("a spilled part has a file");
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    for (at, bytes) in &fills {
        file.seek(SeekFrom::Start(*at)).map_err(failed)?;
        file.write_all(bytes).map_err(failed)?;
    }
    file.sync_data().map_err(failed)?;
    file.seek(SeekFrom::Start(0)).map_err(failed)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let mut saved = saved;
    if let Saved::File { checksum, .. } = &mut saved {
        *checksum = hasher.digest();
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    /// A part larger than [`SPILL_AT`] goes to its file, byte for byte what the same save
    /// writes into memory, counts filled in place included; a small one stays in memory.
    #[test]
    fn a_large_part_is_written_to_its_file_as_it_is_saved() {
        let map: std::collections::BTreeMap<u64, String> =
            (0..400_000u64).map(|i| (i, format!("value {i}"))).collect();
        let write = |out: &mut Vec<u8>| {
            let count = reserve(out, &0u64.to_le_bytes());
            map.save(out);
            // A buffer of its own is never spilled, however large.
            let mut own = Vec::new();
            map.save(&mut own);
            assert_eq!(position(&own), own.len() as u64);
            out.extend_from_slice(&own[..16]);
            let late = reserve(out, &[1]);
            fill(out, late, &[7]);
            fill(out, count, &42u64.to_le_bytes());
        };
        let mut expected = Vec::new();
        write(&mut expected);
        assert!(expected.len() > 2 * SPILL_AT);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        // At the default, and at limits that write out at every entry or every few.
        for limit in [SPILL_AT, 1, 1000] {
            let saved = save(&path, limit, write).unwrap();
            let Saved::File { len, checksum, .. } = &saved else {
                panic!("not spilled");
            };
            assert_eq!(*len, expected.len() as u64);
            assert_eq!(*checksum, super::super::manifest::checksum(&expected));
            assert!(std::fs::read(&path).unwrap() == expected, "limit {limit}");
            assert_eq!(&expected[..8], &42u64.to_le_bytes());
            drop(saved);
            assert!(!path.exists(), "the file goes with the part");
        }

        let small = save(&path, SPILL_AT, |out| 5u64.save(out)).unwrap();
        assert!(matches!(&small, Saved::Memory(b) if b == &5u64.to_le_bytes()));
        assert!(!path.exists());
        // The sink is gone once the save is over.
        let mut after = vec![0u8; SPILL_AT + 1];
        between(&mut after);
        assert_eq!(after.len(), SPILL_AT + 1);
    }

    /// A write that fails (a full disk) fails the save, with the counts reserved before it
    /// still found, and leaves no file behind.
    #[test]
    fn a_part_whose_write_fails_is_an_error_not_a_panic() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        // Through a link of its own: a failed part's file is removed, the link with it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let err = save(&path, 8, |out| {
            let first = reserve(out, &0u64.to_le_bytes());
            out.extend_from_slice(&[1; 16]);
            between(out);
            let second = reserve(out, &0u64.to_le_bytes());
            out.push(2);
            fill(out, second, &2u64.to_le_bytes());
            fill(out, first, &1u64.to_le_bytes());
        })
        .err()
        .expect("fails");
        assert!(err.contains("cannot write"), "{err}");
        assert!(!path.exists() && Path::new("/dev/full").exists());
    }

    #[test]
    fn a_part_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("part");
        let err = save(&path, SPILL_AT, |out| {
            out.resize(SPILL_AT, 1);
            between(out);
            out.push(2);
        })
        .err()
        .expect("fails");
        assert!(err.contains("cannot create"), "{err}");
    }
}
