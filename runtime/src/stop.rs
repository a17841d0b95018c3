//! Stopping a run from outside: SIGTERM and Ctrl-C (SIGINT), for every pipeline binary.
//!
//! The first signal asks for a graceful stop: the sources stop reading (in a checkpointed run
//! only once one last checkpoint is complete, see `checkpoint`), the pipeline drains without
//! the final watermark (a stop is not the end of the input: windows still open are not
//! emitted as if complete, and a checkpointed run resumes them on its next start), sinks
//! flush and commit, the dead letters and the summary are written, and the process exits
//! 130 (SIGINT) or 143 (SIGTERM). A second signal exits at once with that code.
//!
//! `POST /stop` of the HTTP endpoint asks for the same stop ([`request_stop`]), and the
//! process then exits 0.
//!
//! The signal flags are state of the process, not of a run: signals reach a process. Embedded
//! runs never install the handlers, so no signal ever stops them. Whether a run's sources may
//! stop, and whether it stopped early, belong to the run ([`crate::context`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Set by the first signal (shared with the handlers, hence the `Arc`).
static SIGNALLED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// Which signal it was.
static WHICH: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
/// Without checkpoints, a signal stops the sources at once.
static IMMEDIATE: AtomicBool = AtomicBool::new(false);

/// Installs the handlers of SIGTERM and SIGINT. `immediate`: the sources stop at the first
/// signal (no checkpoints); otherwise only once [`stop_sources`] is called.
pub fn install(immediate: bool) -> Result<(), String> {
    IMMEDIATE.store(immediate, Ordering::Relaxed);
    let flag = SIGNALLED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    let which = WHICH.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for (signal, code) in [(SIGTERM, 143), (SIGINT, 130)] {
        // Registered first, so it sees the flag as the previous signal left it: a second
        // signal exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, code, Arc::clone(flag))
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, Arc::clone(which), signal as usize)
            })
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(flag)))
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    Ok(())
}

/// What [`WHICH`] holds after a stop asked over HTTP (`POST /stop`): no signal's number.
const HTTP_STOP: usize = usize::MAX;

/// Asks for the graceful stop a SIGTERM asks for, without a signal (`POST /stop` of the HTTP
/// endpoint); the run then exits 0. `false`: the handlers are not installed (not a pipeline
/// binary's run). A stop already asked for stays as it was.
pub fn request_stop() -> bool {
    let (Some(flag), Some(which)) = (SIGNALLED.get(), WHICH.get()) else {
        return false;
    };
    if !flag.load(Ordering::Relaxed) {
        which.store(HTTP_STOP, Ordering::Relaxed);
        flag.store(true, Ordering::Relaxed);
    }
    true
}

/// Whether a stop was asked for (a signal arrived, or `POST /stop`).
#[inline]
pub fn requested() -> bool {
    SIGNALLED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// What asked for the stop (a signal's name, or `POST /stop`), and the exit code it calls
/// for.
pub fn signal() -> Option<(&'static str, u8)> {
    if !requested() {
        return None;
    }
    match WHICH.get().map(|w| w.load(Ordering::Relaxed)) {
        Some(HTTP_STOP) => Some(("POST /stop", 0)),
        Some(w) if w == SIGINT as usize => Some(("SIGINT", 130)),
        _ => Some(("SIGTERM", 143)),
    }
}

/// Whether the sources of this thread's run must stop reading now: its run asked them to,
/// or a signal arrived in a process that takes no checkpoints.
#[inline]
pub fn sources_stopped() -> bool {
    (requested() && IMMEDIATE.load(Ordering::Relaxed))
        || crate::context::with(|c| c.sources_stop_asked())
}

/// Lets the sources of this thread's run stop (a checkpointed run: its last checkpoint is
/// complete).
pub fn stop_sources() {
    crate::context::with(|c| c.stop_sources());
}

/// A source of this thread's run stopped reading before the end of its input.
pub fn note_stopped_early() {
    crate::context::with(|c| c.note_stopped_early());
}

/// Whether the run is stopped rather than finished: some source did not read all its input.
/// Operators then emit nothing that only the end of the input may emit (the final watermark,
/// a left join's unmatched rows at the end), and no `final` manifest is written.
pub fn stopped_early() -> bool {
    crate::context::with(|c| c.stopped_early())
}

/// Removes what processes that are gone left in `dir`: the files and folders named
/// `<prefix><pid>-...<suffix>` (a killed run cannot remove its scratch files; a run names
/// them after its process id).
pub fn remove_left_by_gone_processes(dir: &std::path::Path, prefix: &str, suffix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.ends_with(suffix))
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if process_is_gone(pid) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

/// Whether the process `pid` is gone (it no longer runs).
fn process_is_gone(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only asks whether `pid` exists.
    let failed = unsafe { libc::kill(pid, 0) } != 0;
    failed && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}
