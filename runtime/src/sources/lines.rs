//! Line-oriented sources: files and stdin, in JSON lines or CSV. Each line is decoded by a
//! generated decoder that parses only the fields the pipeline uses; a line that fails to
//! decode goes to the dead-letter output with its line number and the reason, and the source
//! goes on.
//!
//! Input is read in blocks ([`BLOCK`] bytes) into one buffer; line ends are found with
//! `memchr` and each line is handed to the decoder where it lies, so nothing is allocated or
//! copied per line. The partial line at the end of a block moves to the front before the next
//! read; a line longer than the buffer grows it. Lines are validated as UTF-8 a stretch of
//! whole lines (up to 64 KiB) at a time, not one by one; a line in a stretch that is not valid
//! is checked alone, so its verdict and reason are those it would get alone. A file is read with positioned reads
//! (`pread`), so the instances reading one file share its handle. Stdin is read as it comes:
//! a read returns what is available, so a line is decoded when it arrives; before each read
//! the reader waits for input with `poll(2)` only until the next tick of the flush interval
//! ([`crate::tick`]), so a quiet stdin still ticks: the source emits the watermark it owes
//! and the sinks write what they hold, and a stop (SIGTERM) is noticed.
//!
//! A file source runs one instance per split ([`Split`]): instance `i` of `n` reads the lines
//! that *start* in bytes `[len·i/n, len·(i+1)/n)` of the file as it was when the pipeline
//! started (the last one reads to the end, even if the file has grown). An instance whose
//! range starts inside a line skips to the next line start, and reads the line that
//! straddles its end. Each instance checkpoints its own position. Dead letters carry the
//! file's true line numbers: an instance after the first counts the lines before its range
//! the first time it writes one (one pass over those bytes, only when a line is bad).
//! Stdin and lookup tables ([`read_all`]) are read by one reader.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::DecodeError;
use crate::metrics::Metrics;
use crate::sources::{EventTime, WatermarkTracker};
use crate::tick::Ticker;

/// Where a line source reads from.
#[derive(Clone)]
pub enum Input {
    /// A file opened by [`open_file`] before any sink opened its output, shared by the
    /// source's instances.
    File(Arc<OpenedFile>),
    Stdin,
}

/// A source's input file, opened when the pipeline starts.
pub struct OpenedFile {
    path: PathBuf,
    file: File,
    /// Its length when it was opened: what splits divide.
    len: u64,
    /// A regular file (not a device): it never trickles. (A named pipe cannot be read here:
    /// the reader reads at offsets.)
    regular: bool,
}

/// Opens the input file of source `name`. Called before any sink opens its output, so that
/// a missing input (or a folder given as one) fails the start before an output file is
/// truncated.
pub fn open_file(name: &str, path: &Path) -> Result<Input, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("source `{name}`: cannot open {}: {e}", path.display());
    crate::context::claim_file(
        path,
        crate::context::FileUse::Reads,
        &format!("source `{name}`"),
    )
    .map_err(|e| format!("source `{name}`: {e}"))?;
    let file = File::open(path).map_err(|e| fail(&e))?;
    let metadata = file.metadata().map_err(|e| fail(&e))?;
    if metadata.is_dir() {
        return Err(fail(&"it is a folder, not a file"));
    }
    Ok(Input::File(Arc::new(OpenedFile {
        path: path.to_path_buf(),
        file,
        len: metadata.len(),
        regular: metadata.is_file(),
    })))
}

/// A line source's decoder, made once its input's header is known: called with the header
/// line (without its line end) when the format has one (`csv(header: true)`), with `None`
/// otherwise. A header that does not fit the schema is an error that stops the run.
///
/// A decoder writes a line's fields into a record it is given (every field, when it succeeds):
/// a source decodes every line into the same record, so its strings' buffers are reused
/// instead of allocated and freed per line.
pub trait MakeDecoder<T>: FnOnce(Option<&str>) -> Result<Self::Decode, String> {
    type Decode: FnMut(&str, &mut T) -> Result<(), DecodeError>;
}

impl<T, D, M> MakeDecoder<T> for M
where
    M: FnOnce(Option<&str>) -> Result<D, String>,
    D: FnMut(&str, &mut T) -> Result<(), DecodeError>,
{
    type Decode = D;
}

/// The decoder of a format without a header (JSON lines, headerless CSV): `decode` as it is.
pub fn by_position<T, D>(decode: D) -> impl FnOnce(Option<&str>) -> Result<D, String> + Copy
where
    D: FnMut(&str, &mut T) -> Result<(), DecodeError> + Copy,
{
    move |_| Ok(decode)
}

/// The text of a header line: its line end and a UTF-8 byte-order mark dropped.
fn header_text(bytes: &[u8]) -> Result<&str, String> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text =
        crate::formats::utf8(bytes).map_err(|e| format!("invalid UTF-8 in the header: {e}"))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Checks, when the pipeline starts (before any sink opens its output), that the header of
/// source `name`'s file fits the schema: `make` is the source's decoder. Stdin's header is
/// checked when it arrives; an empty file has nothing to check.
pub fn check_header<T, M: MakeDecoder<T>>(
    name: &str,
    input: &Input,
    make: M,
) -> Result<(), String> {
    if let Input::File(file) = input {
        if let Some(header) = read_header(name, file)? {
            let _decode = make(Some(&header)).map_err(|e| in_file(name, file, e))?;
        }
    }
    Ok(())
}

/// The first line of `file` as a header; `None` when the file is empty.
fn read_header(name: &str, file: &Arc<OpenedFile>) -> Result<Option<String>, String> {
    let mut reader = LineReader::new(Bytes::File {
        file: file.clone(),
        pos: 0,
    });
    match reader.next_line() {
        Ok(Next::Line(line)) => header_text(line.bytes)
            .map(|h| Some(h.to_string()))
            .map_err(|e| in_file(name, file, e)),
        // (A file never idles.)
        Ok(Next::End | Next::Idle) => Ok(None),
        Err(e) => Err(format!(
            "source `{name}`: cannot read {}: {e}",
            file.path.display()
        )),
    }
}

/// An error about the input of source `name`, naming its file.
fn in_file(name: &str, file: &OpenedFile, e: String) -> String {
    format!("source `{name}`: {}: {e}", file.path.display())
}

/// Which share of its input a line source instance reads: instance `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub index: usize,
    pub count: usize,
}

impl Split {
    /// The whole input, read by one instance.
    pub const WHOLE: Split = Split { index: 0, count: 1 };

    /// The bytes `[start, end)` of a file of `len` bytes in which this split's lines start;
    /// the last split's end is open (`u64::MAX`).
    fn range(self, len: u64) -> (u64, u64) {
        let count = self.count.max(1) as u128;
        let at = |i: usize| (len as u128 * i as u128 / count) as u64;
        let end = if self.index + 1 >= self.count {
            u64::MAX
        } else {
            at(self.index + 1)
        };
        (at(self.index), end)
    }
}

/// The size of a line source's read buffer (and of each read).
const BLOCK: usize = 1 << 20;

/// Where a [`LineReader`]'s bytes come from.
enum Bytes {
    /// Positioned reads of a file, from `pos` on.
    File { file: Arc<OpenedFile>, pos: u64 },
    /// Stdin, read once input is there or `deadline` has passed.
    Stdin {
        lock: std::io::StdinLock<'static>,
        deadline: Instant,
    },
}

/// What [`LineReader::next_line`] found.
enum Next<'a> {
    /// A line with its `\n` (the input's last line may have none).
    Line(Line<'a>),
    /// Nothing more before the deadline (stdin only): time to tick.
    Idle,
    /// The end of the input.
    End,
}

/// Waits until stdin has input (or an end, or an error, which the read then reports), for at
/// most `timeout`; `false` when it has none in that time (or a signal came: the caller looks
/// at the stop flag and comes back).
fn stdin_ready(timeout: std::time::Duration) -> bool {
    let mut fds = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up: waking before the deadline would only come back here.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid `pollfd`, and its count.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    n != 0 && !(n < 0 && std::io::Error::last_os_error().kind() == ErrorKind::Interrupted)
}

/// One line of the input, as [`LineReader::next_line`] hands it out.
#[derive(Clone, Copy)]
struct Line<'a> {
    /// The line's bytes, with its `\n` (the input's last line may have none).
    bytes: &'a [u8],
    /// Whether the line is known to be valid UTF-8: it lay in a stretch of lines validated
    /// together. `false` says nothing: the line has yet to be checked on its own.
    utf8: bool,
}

impl<'a> Line<'a> {
    /// The line without its line end (`\n` or `\r\n`).
    #[inline]
    fn without_end(self) -> Line<'a> {
        let bytes = self.bytes.strip_suffix(b"\n").unwrap_or(self.bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        Line { bytes, ..self }
    }

    /// The line as text, or why it is not UTF-8: the error of
    /// [`crate::formats::utf8`] on the line alone, so a reason never depends on the lines
    /// around it.
    #[inline]
    fn text(self) -> Result<&'a str, std::str::Utf8Error> {
        if self.utf8 {
            // SAFETY: `utf8` is only set for bytes that `LineReader::validate_ahead` found to
            // be valid UTF-8, and a line is a whole stretch of them cut at `\n` bytes, which
            // never fall inside a multi-byte character (nor does the `\r` `without_end` may
            // cut).
            Ok(unsafe { std::str::from_utf8_unchecked(self.bytes) })
        } else {
            crate::formats::utf8(self.bytes)
        }
    }
}

/// How many bytes of lines [`LineReader`] validates as UTF-8 in one call: a stretch long
/// enough that the SIMD validator runs at full speed (one call per ~200-byte line costs
/// several times more), short enough to stay in the CPU's cache for the decoder that follows.
const VALIDATE_AHEAD: usize = 64 << 10;

/// Splits its input into lines inside one reused buffer: `buf[start..end]` holds the bytes
/// read and not handed out yet.
///
/// It also validates the lines as UTF-8 a stretch of whole lines at a time: `buf[..valid_to]`
/// is known to be valid UTF-8 (or handed out already). A stretch that is not valid marks the
/// lines before its first invalid byte valid and leaves the line holding it to be checked on
/// its own ([`Line::text`]), so every line gets the verdict and the reason it would get alone.
/// The work stays linear: a failed stretch is validated a second time to find its first
/// invalid byte, its lines after that byte once more in the next stretch, and the line
/// holding it alone: a byte is looked at three times at most.
struct LineReader {
    from: Bytes,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the search for the next line end resumes (bytes before it hold none).
    scanned: usize,
    /// Lines that end at or before this index of `buf` are valid UTF-8.
    valid_to: usize,
    eof: bool,
}

impl LineReader {
    fn new(from: Bytes) -> LineReader {
        LineReader {
            from,
            buf: vec![0; BLOCK],
            start: 0,
            end: 0,
            scanned: 0,
            valid_to: 0,
            eof: false,
        }
    }

    /// The line `buf[line_start..line_end]`, with whether it is known to be UTF-8: if it lies
    /// past what is validated, the stretch of whole lines from its start up to
    /// [`VALIDATE_AHEAD`] bytes further is validated first.
    #[inline]
    fn line(&mut self, line_start: usize, line_end: usize) -> Line<'_> {
        let utf8 = line_end <= self.valid_to || self.validate_ahead(line_start, line_end);
        Line {
            bytes: &self.buf[line_start..line_end],
            utf8,
        }
    }

    /// Validates whole lines from `line_start` (where a line starts): at least up to
    /// `line_end`, the end of that line, and on to the last line end within
    /// [`VALIDATE_AHEAD`] bytes. Returns whether the line `line_start..line_end` is valid.
    fn validate_ahead(&mut self, line_start: usize, line_end: usize) -> bool {
        let limit = self.end.min(line_start + VALIDATE_AHEAD).max(line_end);
        // A stretch ends at a line end (or at the end of the first line, even the input's
        // last line without one): `\n` is never part of a multi-byte character, so the
        // stretch is valid exactly when each of its lines is.
        let stretch_end = memchr::memrchr(b'\n', &self.buf[line_end..limit])
            .map_or(line_end, |i| line_end + i + 1);
        let stretch = &self.buf[line_start..stretch_end];
        if simdutf8::basic::from_utf8(stretch).is_ok() {
            self.valid_to = stretch_end;
            return true;
        }
        // The lines wholly before the first invalid byte are valid.
        let valid_up_to = match simdutf8::compat::from_utf8(stretch) {
            Ok(_) => stretch.len(),
            Err(e) => e.valid_up_to(),
        };
        if let Some(i) = memchr::memrchr(b'\n', &stretch[..valid_up_to]) {
            self.valid_to = line_start + i + 1;
        }
        line_end <= self.valid_to
    }

    /// The next line, or [`Next::Idle`] when stdin has nothing before its deadline.
    #[inline]
    fn next_line(&mut self) -> std::io::Result<Next<'_>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let line_start = self.start;
                self.start = self.scanned + i + 1;
                self.scanned = self.start;
                return Ok(Next::Line(self.line(line_start, self.start)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(Next::End);
                }
                let line_start = self.start;
                (self.start, self.scanned) = (self.end, self.end);
                return Ok(Next::Line(self.line(line_start, self.end)));
            }
            if !self.refill()? {
                return Ok(Next::Idle);
            }
        }
    }

    /// When stdin stops waiting for input (the next tick).
    fn set_deadline(&mut self, at: Instant) {
        if let Bytes::Stdin { deadline, .. } = &mut self.from {
            *deadline = at;
        }
    }

    /// Reads more: the partial line moves to the front, and the buffer doubles when it holds
    /// more than half of it. One read: stdin's returns what has arrived. `false`: stdin had
    /// nothing before its deadline (or the deadline had passed), nothing was read.
    #[cold]
    fn refill(&mut self) -> std::io::Result<bool> {
        let partial = self.end - self.start;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.valid_to = self.valid_to.saturating_sub(self.start);
            (self.start, self.end) = (0, partial);
        }
        self.scanned = partial;
        if partial > self.buf.len() / 2 {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        if let Bytes::Stdin { deadline, .. } = &self.from {
            let now = Instant::now();
            if now >= *deadline || !stdin_ready(deadline.duration_since(now)) {
                return Ok(false);
            }
        }
        let room = &mut self.buf[self.end..];
        let n = loop {
            let read = match &mut self.from {
                Bytes::File { file, pos } => file.file.read_at(room, *pos),
                // The lock's own buffer stays empty: every read asks for more than it holds.
                Bytes::Stdin { lock, .. } => lock.read(room),
            };
            match read {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if let Bytes::File { pos, .. } = &mut self.from {
            *pos += n as u64;
        }
        self.end += n;
        self.eof = n == 0;
        Ok(true)
    }
}

/// Lines (`\n`) in the first `upto` bytes of `file`.
fn count_lines(file: &File, upto: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let (mut pos, mut lines) = (0u64, 0u64);
    while pos < upto {
        let want = (upto - pos).min(BLOCK as u64) as usize;
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        pos += n as u64;
    }
    Ok(lines)
}

/// How many bytes at the start of a file and before a checkpointed position are checked on
/// restore: enough to tell a replaced file from the one the checkpoint read, cheap to read at
/// every checkpoint.
const SAMPLE: u64 = 4096;

/// The checksum of the (up to) [`SAMPLE`] first bytes of `file` and the (up to) [`SAMPLE`]
/// bytes before `offset`: what a checkpoint keeps to recognise its input.
fn position_checksum(file: &File, offset: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let head = offset.min(SAMPLE);
    let start = offset.saturating_sub(SAMPLE).max(head);
    let mut buf = vec![0u8; (head + offset - start) as usize];
    file.read_exact_at(&mut buf[..head as usize], 0)?;
    file.read_exact_at(&mut buf[head as usize..], start)?;
    Ok(crate::checkpoint::manifest::checksum(&buf))
}

/// Checks that `input` is still the file a checkpoint read up to `offset`: as long, with the
/// same first bytes and the same bytes just before that position.
fn check_position(name: &str, input: &OpenedFile, offset: u64, sample: u64) -> Result<(), String> {
    let path = input.path.display();
    let len = input
        .file
        .metadata()
        .map_err(|e| format!("source `{name}`: cannot read {path}: {e}"))?
        .len();
    let advice = "restore the file the checkpoint read, or remove the checkpoint folder to \
                  start over";
    if len < offset {
        return Err(format!(
            "source `{name}`: {path} is {len} bytes, but the checkpoint had read {offset} bytes \
             of it: it was replaced or cut short, so weir cannot tell where to resume; {advice}"
        ));
    }
    let now = position_checksum(&input.file, offset)
        .map_err(|e| format!("source `{name}`: cannot read {path}: {e}"))?;
    if now != sample {
        return Err(format!(
            "source `{name}`: the first bytes of {path}, or those before position {offset} \
             where the checkpoint resumes, are not the ones the checkpoint read: the file was \
             replaced or changed, so weir cannot tell where to resume; {advice}"
        ));
    }
    Ok(())
}

/// A line source's position in a checkpoint: bytes consumed (up to and including the last line
/// handed on), lines read, the highest event time seen, the last watermark, and the checksum
/// of the bytes before the position (checked on restore). A split of several also keeps where
/// its first line starts and where its range ends (the file may have grown since).
type Position = (u64, u64, i64, i64, u64);
type SplitPosition = (u64, u64, i64, i64, u64, u64, u64);

/// Reads lines from `input` (the share `split` of a file), decodes each with the decoder
/// `make` returns and pushes the records into `chain`. With a `header`, the input's first line
/// is the header `make` is given (and not a record). Empty lines are skipped. With `quotes`
/// (CSV, with that delimiter), a line whose quoted field is still open at its end goes on
/// through the lines that follow until the field closes: one record (see [`quote_open`]).
/// Returns an error only when the input cannot be read, or is not the
/// one a restored checkpoint read.
#[allow(clippy::too_many_arguments)]
pub fn run<T, M, C>(
    name: &str,
    input: Input,
    split: Split,
    header: bool,
    quotes: Option<u8>,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    make: M,
    event_time: Option<EventTime<T>>,
    mut slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    T: Default,
    M: MakeDecoder<T>,
    C: Collector<T>,
{
    let mut chain = metrics.source(name, chain);
    // Watermarks by count alone from a regular file, so that a run over the same file sees
    // them at the same records whatever its speed; also on the wall clock from what can
    // trickle (stdin, a device).
    let trickles = match &input {
        Input::File(file) => !file.regular,
        Input::Stdin => true,
    };
    let mut tracker = event_time.as_ref().map(|et| {
        let bound = et.max_out_of_orderness_ms;
        if trickles {
            WatermarkTracker::periodic(bound)
        } else {
            WatermarkTracker::new(bound)
        }
    });
    let fail = |chain: &mut crate::metrics::SourceMeter<C>, message: String| {
        chain.watermark(i64::MAX);
        chain.finish();
        Err(message)
    };
    let file = match &input {
        Input::File(file) => Some(file.clone()),
        Input::Stdin => None,
    };
    let several = split.count > 1;
    // Position: bytes consumed, lines read since `first` (where the split's first line
    // starts; `None` until a split that starts inside the file has found it), and the end of
    // the split's range.
    let (mut offset, mut line_no) = (0u64, 0u64);
    let (mut first, mut end) = (Some(0u64), u64::MAX);
    if let Some(bytes) = slot.take_restored() {
        let restored = if several {
            crate::state::decode::<SplitPosition>(&bytes)
        } else {
            crate::state::decode::<Position>(&bytes)
                .map(|(o, l, m, e, s)| (o, l, m, e, s, 0, u64::MAX))
        };
        let (o, l, max_seen, emitted, sample, f, e) = match restored {
            Ok(position) => position,
            Err(e) => {
                return fail(
                    &mut chain,
                    format!("source `{name}`: cannot restore its position: {e}"),
                )
            }
        };
        if let Some(file) = &file {
            if let Err(e) = check_position(name, file, o, sample) {
                return fail(&mut chain, e);
            }
        }
        (offset, line_no, first, end) = (o, l, Some(f), e);
        if let Some(t) = tracker.as_mut() {
            t.restore(max_seen, emitted);
        }
    } else if let Some(file) = &file {
        let (start, e) = split.range(file.len);
        (offset, end) = (start, e);
        if start > 0 {
            first = None;
        }
    }
    let from = match &file {
        // A split starting inside the file reads from the byte before its start: the line
        // through that byte belongs to the split before (it starts there, or ends there).
        Some(file) => Bytes::File {
            file: file.clone(),
            pos: if first.is_none() { offset - 1 } else { offset },
        },
        None if slot.is_active() => {
            return fail(
                &mut chain,
                format!(
                    "source `{name}`: stdin cannot be read again after a restart, so it cannot \
                     be checkpointed; read from a file (or Kafka) to use --checkpoint-dir"
                ),
            );
        }
        None => Bytes::Stdin {
            lock: std::io::stdin().lock(),
            deadline: Instant::now(),
        },
    };
    // The decoder: made now, unless it waits for a header that has not been read (stdin's
    // first line, or a file that was empty at the start).
    let mut make = Some(make);
    let mut decode = None;
    // Every line is decoded into this record (see `MakeDecoder`).
    let mut record = T::default();
    let input_name = file
        .as_ref()
        .map_or_else(|| "stdin".to_string(), |f| f.path.display().to_string());
    let header_now = match &file {
        _ if !header => Ok(None),
        Some(file) => read_header(name, file),
        None => Ok(None),
    };
    match header_now {
        Ok(text) if !header || text.is_some() => {
            if let Some(make) = make.take() {
                match make(text.as_deref()) {
                    Ok(d) => decode = Some(d),
                    Err(e) => {
                        return fail(&mut chain, format!("source `{name}`: {input_name}: {e}"))
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => return fail(&mut chain, e),
    }
    // How far this instance has read of its range, for the progress line.
    let cursor = file.as_ref().map(|f| {
        let start = offset;
        (
            metrics.input_file(end.min(f.len).saturating_sub(start)),
            start,
        )
    });
    let mut reader = LineReader::new(from);
    let read_error = |line_no: u64, err: std::io::Error| {
        format!("source `{name}`: read error after line {line_no}: {err}")
    };
    let first = match first {
        Some(first) => first,
        // A file: never idle.
        None => match reader.next_line() {
            Ok(skipped) => {
                let skipped = match skipped {
                    Next::Line(s) => s.bytes.len() as u64,
                    Next::Idle | Next::End => 0,
                };
                offset = offset - 1 + skipped;
                offset
            }
            Err(err) => return fail(&mut chain, read_error(0, err)),
        },
    };
    // The file's line number of the split's first line, less one (counted when first needed).
    let mut lines_before = (first == 0).then_some(0u64);
    let mut line_number = |line_no: u64| -> Result<u64, String> {
        if let (None, Some(file)) = (lines_before, &file) {
            let n = count_lines(&file.file, first).map_err(|err| {
                format!(
                    "source `{name}`: cannot read {}: {err}",
                    file.path.display()
                )
            })?;
            lines_before = Some(n);
        }
        Ok(lines_before.unwrap_or(0) + line_no)
    };
    let mut produced = 0u64;
    let mut result = Ok(());
    let mut pace = super::Pacer::new(split.count as u32);
    let mut ticker = Ticker::new();
    reader.set_deadline(ticker.deadline());
    let part = |offset: u64, line_no: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        let sample = file
            .as_ref()
            .and_then(|f| position_checksum(&f.file, offset).ok())
            .unwrap_or(0);
        if several {
            crate::state::encode(&(offset, line_no, max_seen, emitted, sample, first, end))
        } else {
            crate::state::encode(&(offset, line_no, max_seen, emitted, sample))
        }
    };
    // The tick: the watermark owed, then everything buffered downstream goes out.
    let mut tick = |chain: &mut crate::metrics::SourceMeter<C>,
                    tracker: Option<&mut WatermarkTracker>,
                    reader: &mut LineReader,
                    offset: u64| {
        let now = Instant::now();
        if !ticker.due(now) {
            return;
        }
        if let Some((cursor, start)) = &cursor {
            cursor.publish(offset.saturating_sub(*start));
        }
        if let Some(wm) = tracker.and_then(|t| t.tick(now)) {
            chain.watermark(wm);
        }
        chain.tick();
        ticker.ticked(now);
        reader.set_deadline(ticker.deadline());
    };
    let mut joined: Vec<u8> = Vec::new();
    'lines: loop {
        if line_no.is_multiple_of(64) {
            pace.wait(produced);
            if crate::stop::sources_stopped() {
                crate::stop::note_stopped_early();
                break;
            }
            tick(&mut chain, tracker.as_mut(), &mut reader, offset);
        }
        if let Some(id) = slot.barrier_due() {
            // The dead letters of what the checkpoint covers are durable once it completes
            // (a restart replays only what follows).
            dead_letters.flush();
            slot.save(id, &part(offset, line_no, tracker.as_ref()), Vec::new());
            chain.barrier(id);
        }
        // The line starting at `offset` belongs to the next split.
        if offset >= end {
            break;
        }
        let line = match reader.next_line() {
            Ok(Next::Line(line)) => line,
            Ok(Next::Idle) => {
                if crate::stop::sources_stopped() {
                    crate::stop::note_stopped_early();
                    break;
                }
                tick(&mut chain, tracker.as_mut(), &mut reader, offset);
                continue;
            }
            Ok(Next::End) => break,
            Err(err) => {
                result = Err(read_error(line_number(line_no).unwrap_or(line_no), err));
                break;
            }
        };
        let bytes = line.bytes;
        let line_start = offset;
        offset += bytes.len() as u64;
        line_no += 1;
        if header && line_start == 0 {
            if let Some(make) = make.take() {
                match header_text(bytes).and_then(|h| make(Some(h))) {
                    Ok(d) => decode = Some(d),
                    Err(e) => {
                        result = Err(format!("source `{name}`: {input_name}: {e}"));
                        break;
                    }
                }
            }
            continue;
        }
        let Some(decode) = decode.as_mut() else {
            // (Cannot happen: the header line comes first.)
            result = Err(format!("source `{name}`: a line came before the header"));
            break;
        };
        // The line the record starts on (a CSV record may go on over several).
        let first_line = line_no;
        let mut outcome = decode_line(line, decode, &mut record);
        // A CSV line that does not decode and ends inside a quoted field starts a record
        // that goes on through the lines after it, up to the line that closes the field.
        // (Checked only for a line the decoder refused, which such a line always is: most
        // lines hold no quote and pay nothing for the rule.)
        let open = match (&outcome, quotes) {
            (Err(_), Some(delimiter)) if quote_open(line.bytes, delimiter, false) => {
                Some(delimiter)
            }
            _ => None,
        };
        let mut raw_line = line.without_end().bytes;
        if let Some(delimiter) = open {
            if several {
                let at = line_number(first_line).unwrap_or(first_line);
                result = Err(format!(
                    "source `{name}`: line {at}: a quoted field holds a line end; a CSV file \
                     with such fields is read by one reader (`parallelism: 1` on the source), \
                     as a reader starting inside one could not tell"
                ));
                break;
            }
            joined.clear();
            joined.extend_from_slice(line.bytes);
            let mut open = true;
            while open && joined.len() <= MAX_RECORD_BYTES {
                match reader.next_line() {
                    Ok(Next::Line(more)) => {
                        offset += more.bytes.len() as u64;
                        line_no += 1;
                        open = quote_open(more.bytes, delimiter, true);
                        joined.extend_from_slice(more.bytes);
                    }
                    Ok(Next::Idle) if crate::stop::sources_stopped() => break,
                    Ok(Next::Idle) => {}
                    Ok(Next::End) => break,
                    Err(err) => {
                        result = Err(read_error(line_number(line_no).unwrap_or(line_no), err));
                        break 'lines;
                    }
                }
            }
            let whole = Line {
                bytes: &joined,
                utf8: false,
            };
            raw_line = whole.without_end().bytes;
            outcome = if !open {
                decode_line(whole, decode, &mut record)
            } else if joined.len() > MAX_RECORD_BYTES {
                Err("a quoted field is still open after 16 MiB".to_string())
            } else {
                Err("a quoted field is not closed by the end of the input".to_string())
            };
        }
        match outcome {
            Ok(false) => {}
            Ok(true) => {
                produced += 1;
                chain.push(&record);
                if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
                    if let Some(wm) = tracker.observe((et.time)(&record)) {
                        chain.watermark(wm);
                    }
                }
            }
            Err(reason) => match line_number(first_line) {
                Ok(at) => {
                    let raw = String::from_utf8_lossy(raw_line);
                    dead_letters.write(name, at, &reason, &raw)
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
        }
    }
    metrics.add_source_records(produced);
    if let Some((cursor, _)) = &cursor {
        cursor.done();
    }
    if result.is_err() {
        chain.watermark(i64::MAX);
        chain.finish();
        return result;
    }
    // Every dead letter of what was read is out before the final position is saved.
    dead_letters.flush();
    slot.end_of_input(|| part(offset, line_no, tracker.as_ref()), &mut chain);
    result
}

/// Decodes one line (with its line end) into `record`: whether it held a record (`false`: a
/// blank line), or why it is a dead letter.
#[inline]
fn decode_line<T>(
    line: Line<'_>,
    decode: &mut impl FnMut(&str, &mut T) -> Result<(), DecodeError>,
    record: &mut T,
) -> Result<bool, String> {
    let text = line
        .without_end()
        .text()
        .map_err(|err| format!("invalid UTF-8: {err}"))?;
    if blank(text) {
        return Ok(false);
    }
    decode(text, record).map_err(|err| err.to_string())?;
    Ok(true)
}

/// The most a CSV record whose quoted field holds line ends may take before it is given up
/// (a dead letter): a quote left open by mistake must not swallow the rest of the file.
const MAX_RECORD_BYTES: usize = 16 << 20;

/// Whether a CSV quoted field is open at the end of `line` (RFC 4180: a field that starts
/// with `"` is quoted, `""` inside it is a quote, the next `"` closes it; a `"` inside an
/// unquoted field is a character). `in_quotes`: the line starts inside a quoted field.
fn quote_open(line: &[u8], delimiter: u8, mut in_quotes: bool) -> bool {
    let mut field_start = !in_quotes;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if in_quotes {
            if c == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                in_quotes = false;
            }
            field_start = false;
        } else if c == b'"' && field_start {
            in_quotes = true;
            field_start = false;
        } else {
            field_start = c == delimiter;
        }
        i += 1;
    }
    in_quotes
}

/// Whether a line holds nothing but white space (and is skipped). Most lines start with a
/// printable ASCII character, which settles it without the Unicode `trim`.
#[inline]
fn blank(line: &str) -> bool {
    match line.as_bytes().first() {
        Some(&c) if c > b' ' && c.is_ascii() => false,
        _ => line.trim().is_empty(),
    }
}

/// Reads a whole file of lines into memory (the table of a lookup join), decoding each line
/// with the decoder `make` returns (given the first line when the file has a `header`);
/// malformed lines go to the dead-letter output like a source's. With `quotes` (CSV, with
/// that delimiter), a line that does not decode and ends inside a quoted field goes on
/// through the lines after it, as in [`run`].
pub fn read_all<T: Default, M: MakeDecoder<T>>(
    name: &str,
    path: &Path,
    header: bool,
    quotes: Option<u8>,
    dead_letters: &DeadLetters,
    make: M,
) -> Result<Vec<T>, String> {
    let text = read_settled(name, path)?.1;
    decode_all(name, path, &text, header, quotes, dead_letters, make)
}

/// What a file's metadata say of its contents: length, modification time and inode. Equal
/// stamps are taken to mean the same bytes (how `make` and `rsync` decide too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// How long a table file must have gone unmodified before it is read: a writer rewriting it in
/// place is then most likely done.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// Reads a lookup table's file whole, once it has settled: not modified for [`SETTLE`], and
/// the same before and after the read (else it is read again, a few times, then refused). A
/// file rewritten in place is so never taken half-written while its writer is busy; a writer
/// that pauses longer than [`SETTLE`] can still be read half-done, which is why the docs say
/// to write the new file aside and rename it into place.
fn read_settled(name: &str, path: &Path) -> Result<(FileStamp, Vec<u8>), String> {
    let cannot =
        |err: std::io::Error| format!("table `{name}`: cannot read {}: {err}", path.display());
    for _ in 0..40 {
        let before = stamp(path).map_err(cannot)?;
        let age = before
            .modified
            .and_then(|m| std::time::SystemTime::now().duration_since(m).ok());
        if let Some(age) = age {
            if age < SETTLE {
                std::thread::sleep(SETTLE - age);
                continue;
            }
        }
        let bytes = std::fs::read(path).map_err(cannot)?;
        let after = stamp(path).map_err(cannot)?;
        if before == after && bytes.len() as u64 == after.len {
            return Ok((after, bytes));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(format!(
        "table `{name}`: {} kept changing while it was read; write the new table to another \
         file and rename it into place",
        path.display()
    ))
}

/// [`read_all`] for a table read again (`refresh:`): `None` when the file is as it was at the
/// read that set `last` (its rows, and its dead letters, were taken then), else its rows.
pub fn read_if_changed<T: Default, M: MakeDecoder<T>>(
    name: &str,
    path: &Path,
    header: bool,
    quotes: Option<u8>,
    dead_letters: &DeadLetters,
    make: M,
    last: &mut Option<FileStamp>,
) -> Result<Option<Vec<T>>, String> {
    if let (Some(last), Ok(now)) = (*last, stamp(path)) {
        if last == now {
            return Ok(None);
        }
    }
    let (now, text) = read_settled(name, path)?;
    let rows = decode_all(name, path, &text, header, quotes, dead_letters, make)?;
    *last = Some(now);
    Ok(Some(rows))
}

/// The rows of a table file's bytes, malformed lines to the dead letters (see [`read_all`]).
fn decode_all<T: Default, M: MakeDecoder<T>>(
    name: &str,
    path: &Path,
    text: &[u8],
    header: bool,
    quotes: Option<u8>,
    dead_letters: &DeadLetters,
    make: M,
) -> Result<Vec<T>, String> {
    // Every line with its `\n` (the last may have none).
    let mut lines = text.split_inclusive(|b| *b == b'\n').enumerate().peekable();
    let in_table = |e: String| format!("table `{name}`: {}: {e}", path.display());
    let header = match header {
        false => None,
        true => match lines.next() {
            Some((_, line)) => Some(header_text(line).map_err(in_table)?),
            None => return Ok(Vec::new()),
        },
    };
    let mut decode = make(header).map_err(in_table)?;
    let mut out = Vec::new();
    let mut joined = Vec::new();
    while let Some((i, bytes)) = lines.next() {
        let line_no = i as u64 + 1;
        let line = Line { bytes, utf8: false };
        let mut record = T::default();
        let mut outcome = decode_line(line, &mut decode, &mut record);
        let mut raw = line.without_end().bytes;
        if let (Err(_), Some(delimiter)) = (&outcome, quotes) {
            if quote_open(bytes, delimiter, false) {
                joined.clear();
                joined.extend_from_slice(bytes);
                let mut open = true;
                while open && joined.len() <= MAX_RECORD_BYTES {
                    let Some((_, more)) = lines.next() else { break };
                    open = quote_open(more, delimiter, true);
                    joined.extend_from_slice(more);
                }
                let whole = Line {
                    bytes: &joined,
                    utf8: false,
                };
                raw = whole.without_end().bytes;
                outcome = if !open {
                    decode_line(whole, &mut decode, &mut record)
                } else if joined.len() > MAX_RECORD_BYTES {
                    Err("a quoted field is still open after 16 MiB".to_string())
                } else {
                    Err("a quoted field is not closed by the end of the input".to_string())
                };
            }
        }
        match outcome {
            Ok(true) => out.push(record),
            Ok(false) => {}
            Err(reason) => {
                dead_letters.write(name, line_no, &reason, &String::from_utf8_lossy(raw))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// A table file rewritten in place, in chunks over 600 ms, is read whole once its writer is
    /// done, never as the part written so far; read again unchanged, it is not read at all.
    #[test]
    fn a_table_rewritten_in_place_is_read_once_settled() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "old\n").unwrap();
        let whole: String = (0..12).map(|i| format!("row {i}\n")).collect();
        let writer = {
            let (path, whole) = (path.clone(), whole.clone());
            std::thread::spawn(move || {
                let mut file = std::fs::File::create(&path).unwrap();
                for line in whole.lines() {
                    writeln!(file, "{line}").unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(120));
        let (first, bytes) = read_settled("t", &path).unwrap();
        writer.join().unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), whole);
        let mut last = Some(first);
        let dead = DeadLetters::new(
            dir.path().join("dead.jsonl"),
            crate::metrics::Metrics::new(),
        );
        let make = by_position(|line: &str, out: &mut String| {
            *out = line.to_string();
            Ok(())
        });
        let again = read_if_changed("t", &path, false, None, &dead, make, &mut last).unwrap();
        assert!(again.is_none(), "an unchanged file is not read again");
    }

    #[test]
    fn quoted_fields_may_hold_line_ends() {
        let open = |l: &str| quote_open(l.as_bytes(), b',', false);
        assert!(!open("1,plain,x\n"));
        assert!(open("1,\"call first,\n"));
        assert!(!open("1,\"a \"\"b\"\" c\",x\n"));
        assert!(open("1,\"a \"\"b\n"));
        // A quote inside an unquoted field is a character.
        assert!(!open("1,ab\"c,x\n"));
        // Continuing inside a quoted field: closed, or still open.
        assert!(!quote_open(b"9, ring twice\",Oslo\n", b',', true));
        assert!(quote_open(b"more text\n", b',', true));
        assert!(quote_open(b"a \"\" b\n", b',', true));
        assert!(quote_open(b"1;\"x\n", b';', false));
    }

    use super::*;

    fn reader_over(bytes: &[u8]) -> (tempfile::NamedTempFile, LineReader) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        let opened = OpenedFile {
            path: file.path().to_path_buf(),
            file: File::open(file.path()).unwrap(),
            len: bytes.len() as u64,
            regular: true,
        };
        let reader = LineReader::new(Bytes::File {
            file: Arc::new(opened),
            pos: 0,
        });
        (file, reader)
    }

    #[test]
    fn lines_come_whole_across_blocks_and_longer_than_the_buffer() {
        let long = vec![b'x'; BLOCK * 3 + 17];
        let mut text = Vec::new();
        let mut want: Vec<Vec<u8>> = Vec::new();
        for i in 0..200_000 {
            let line = if i == 1234 {
                let mut l = long.clone();
                l.push(b'\n');
                l
            } else {
                format!("line {i}\r\n").into_bytes()
            };
            text.extend_from_slice(&line);
            want.push(line);
        }
        text.extend_from_slice(b"last");
        want.push(b"last".to_vec());
        let (_file, mut reader) = reader_over(&text);
        let mut got = Vec::new();
        while let Next::Line(line) = reader.next_line().unwrap() {
            got.push(line.bytes.to_vec());
        }
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    #[test]
    fn lines_validated_together_get_the_verdict_they_get_alone() {
        // Lines of plain text, multi-byte characters and invalid bytes (a stray continuation
        // byte, a truncated character, one cut by `\r`), over several blocks and stretches.
        let pieces: [&[u8]; 8] = [
            b"plain ascii text",
            "caf\u{e9} \u{1f600} \u{4e2d}".as_bytes(),
            b"bad \x80 continuation",
            b"truncated \xe2\x82",
            b"cut by cr \xc3\r",
            b"",
            b"  ",
            b"\xff\xfe",
        ];
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut text = Vec::new();
        let mut want = Vec::new();
        while text.len() < BLOCK * 2 + 3 * VALIDATE_AHEAD {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly valid lines, so that stretches are both valid and not.
            let piece = if x % 100 < 97 {
                pieces[(x % 2) as usize]
            } else {
                pieces[(x % 8) as usize]
            };
            let mut line = piece.repeat(1 + (x >> 40) as usize % 20);
            line.extend_from_slice(if x.is_multiple_of(3) { b"\r\n" } else { b"\n" });
            text.extend_from_slice(&line);
            want.push(line);
        }
        text.extend_from_slice(b"last \xc3");
        want.push(b"last \xc3".to_vec());
        let (_file, mut reader) = reader_over(&text);
        let mut seen = 0;
        while let Next::Line(line) = reader.next_line().unwrap() {
            assert_eq!(line.bytes, &want[seen][..]);
            let alone = line.without_end().bytes;
            let expected = crate::formats::utf8(alone).map_err(|e| e.to_string());
            assert_eq!(
                line.without_end().text().map_err(|e| e.to_string()),
                expected,
                "line {seen}"
            );
            if line.utf8 {
                assert!(std::str::from_utf8(line.bytes).is_ok(), "line {seen}");
            }
            seen += 1;
        }
        assert_eq!(seen, want.len());
    }

    #[test]
    fn blank_lines_are_white_space_only() {
        for (line, want) in [
            ("", true),
            ("  \t", true),
            ("\u{b}", true),
            ("\u{a0}\u{3000}", true),
            ("a", false),
            (" a", false),
            ("\u{e9}", false),
            ("\u{a0}x", false),
        ] {
            assert_eq!(blank(line), want, "{line:?}");
            assert_eq!(blank(line), line.trim().is_empty(), "{line:?}");
        }
    }

    #[test]
    fn an_empty_input_has_no_lines() {
        let (_file, mut reader) = reader_over(b"");
        assert!(matches!(reader.next_line().unwrap(), Next::End));
        let (_file, mut reader) = reader_over(b"\n");
        assert!(matches!(
            reader.next_line().unwrap(),
            Next::Line(Line { bytes: b"\n", .. })
        ));
        assert!(matches!(reader.next_line().unwrap(), Next::End));
    }

    #[test]
    fn split_ranges_tile_the_file() {
        for len in [0u64, 1, 7, 100, 1 << 40] {
            for count in 1..=9usize {
                let ranges: Vec<_> = (0..count)
                    .map(|index| Split { index, count }.range(len))
                    .collect();
                assert_eq!(ranges[0].0, 0);
                assert_eq!(ranges[count - 1].1, u64::MAX);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].1, pair[1].0);
                    assert!(pair[0].0 <= pair[0].1);
                }
            }
        }
        assert_eq!(Split::WHOLE.range(10), (0, u64::MAX));
    }

    #[test]
    fn lines_before_a_position_are_counted() {
        let (file, _reader) = reader_over(b"a\nb\r\n\nccc\n");
        let f = File::open(file.path()).unwrap();
        assert_eq!(count_lines(&f, 0).unwrap(), 0);
        assert_eq!(count_lines(&f, 2).unwrap(), 1);
        assert_eq!(count_lines(&f, 6).unwrap(), 3);
        assert_eq!(count_lines(&f, 1000).unwrap(), 4);
    }
}
