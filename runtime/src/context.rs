//! The run a task belongs to: its errors, its settings (idle timeout, rate limit, flush
//! interval), its stop flags, whether it may end the process, its checkpoint coordinator and
//! its disk state store.
//!
//! A [`Runtime`](crate::run::Runtime) owns one [`RunContext`] and hands it to every task it
//! starts: [`Runtime::spawn`](crate::run::Runtime::spawn) enters the context on the task's
//! thread before the task runs, and the checkpoint thread enters its run's context too. What
//! an operator or connector needs from its run (report a failure that must fail the run, read
//! the idle timeout or the rate limit, see that its sources were asked to stop) it reads from
//! the context of the thread it runs on, so code deep in a sink or a source needs no handle
//! threaded through every constructor, and two runs in one process (pipelines embedded in a
//! library, run one after another or at the same time) never see each other's state.
//!
//! Nothing here is process-wide: what truly is (signal handlers, which reach a process, and
//! the scale-out task identity, which a supervisor gives a child process) lives in
//! [`crate::stop`] and [`crate::scale_out`].
//!
//! A thread that no run started (a unit test driving an operator directly) has no context:
//! it reads the defaults, keeps its stop flags to itself, and its errors go to stderr.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Where tasks and sinks report failures that must fail the run (a sink's `finish` cannot
/// return an error: it reports here). Cheap to clone; one per run.
#[derive(Clone, Default)]
pub struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    pub fn report(&self, message: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    /// Every error reported so far, in order.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The settings a run starts with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--idle-timeout`; without it a run may set a default before its tasks start (Kafka
    /// sources do, see [`RunContext::default_idle_timeout`]).
    pub idle_timeout: Option<Duration>,
    /// `--rate-limit`: records per second of each source (0: unlimited).
    pub rate_limit: u64,
    /// `--flush-interval` (at least 1 ms).
    pub flush_interval: Duration,
    /// Whether the run is a pipeline binary's (`run::Binary::main`), which may end the process when
    /// it must stop at once; a run inside a library never does.
    pub owns_process: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: None,
            rate_limit: 0,
            flush_interval: crate::tick::DEFAULT_FLUSH_INTERVAL,
            owns_process: false,
        }
    }
}

/// One run's shared state. Cheap to clone.
#[derive(Clone, Default)]
pub struct RunContext(Arc<Inner>);

#[derive(Default)]
struct Inner {
    errors: Errors,
    /// Set once: from `--idle-timeout` when the run starts, else by the first default, else
    /// frozen to `None` once the run is built.
    idle_timeout: OnceLock<Option<Duration>>,
    rate_limit: u64,
    /// In microseconds.
    flush_interval_us: AtomicU64,
    owns_process: bool,
    /// The sources may stop now (a checkpointed run after its last checkpoint, a preview
    /// whose sinks have their rows, a run that must end at once).
    sources_stop: AtomicBool,
    /// A source stopped before the end of its input: the run is stopped, not finished.
    stopped_early: AtomicBool,
    /// The run's checkpoint coordinator (`--checkpoint-dir`), set before its tasks start.
    coordinator: OnceLock<Arc<crate::checkpoint::Coordinator>>,
    /// The run's disk state store (`--state disk`), set before its operators are built.
    #[cfg(feature = "state-disk")]
    state_store: OnceLock<Arc<crate::keyed::disk::Store>>,
    /// The files the run reads and writes, as they are opened (see [`RunContext::claim_file`]).
    files: Mutex<Vec<Claim>>,
}

/// A file the run reads or writes: where it is, whether it is written, and what uses it.
struct Claim {
    path: std::path::PathBuf,
    writes: bool,
    user: String,
}

/// How a file is used (see [`RunContext::claim_file`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileUse {
    Reads,
    Writes,
}

impl RunContext {
    pub fn new(settings: Settings) -> RunContext {
        let idle_timeout = OnceLock::new();
        if settings.idle_timeout.is_some() {
            let _ = idle_timeout.set(settings.idle_timeout);
        }
        let us = settings
            .flush_interval
            .max(Duration::from_millis(1))
            .as_micros();
        RunContext(Arc::new(Inner {
            errors: Errors::default(),
            idle_timeout,
            rate_limit: settings.rate_limit,
            flush_interval_us: AtomicU64::new(u64::try_from(us).unwrap_or(u64::MAX)),
            owns_process: settings.owns_process,
            sources_stop: AtomicBool::new(false),
            stopped_early: AtomicBool::new(false),
            coordinator: OnceLock::new(),
            #[cfg(feature = "state-disk")]
            state_store: OnceLock::new(),
            files: Mutex::new(Vec::new()),
        }))
    }

    /// Gives this run its checkpoint coordinator (once, before its tasks start).
    pub fn set_coordinator(
        &self,
        coordinator: Arc<crate::checkpoint::Coordinator>,
    ) -> Result<(), String> {
        self.0
            .coordinator
            .set(coordinator)
            .map_err(|_| "checkpointing was set up twice for one run".to_string())
    }

    /// The run's checkpoint coordinator, when it takes checkpoints.
    pub fn coordinator(&self) -> Option<&Arc<crate::checkpoint::Coordinator>> {
        self.0.coordinator.get()
    }

    /// Gives this run its disk state store (once, before its operators are built).
    #[cfg(feature = "state-disk")]
    pub(crate) fn set_state_store(
        &self,
        store: Arc<crate::keyed::disk::Store>,
    ) -> Result<(), String> {
        self.0
            .state_store
            .set(store)
            .map_err(|_| "the state store of this run is open already".to_string())
    }

    /// The run's disk state store, when it spills state to disk.
    #[cfg(feature = "state-disk")]
    pub(crate) fn state_store(&self) -> Option<&Arc<crate::keyed::disk::Store>> {
        self.0.state_store.get()
    }

    /// Notes that `user` (a sink, a source, the dead-letter output, as a message names it)
    /// reads or writes `path`, or says why it may not: another part of the run writes that
    /// file, or reads the file it would write. Two writers would interleave their bytes, and
    /// a writer truncates what a reader is reading (`--dead-letters` naming a sink's file or
    /// a source's input), so either would lose data while the run ends well. The pipeline's
    /// own paths are checked when it compiles (E0330); this catches what only the command
    /// line says. Paths are compared as absolute paths with their folder's links resolved.
    pub fn claim_file(
        &self,
        path: &std::path::Path,
        how: FileUse,
        user: &str,
    ) -> Result<(), String> {
        // A device (`/dev/null`, `/dev/full`, a terminal) or a pipe is not a file anything
        // truncates or interleaves into a wrong file: several parts of a run may share it.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Ok(());
        }
        let path = file_identity(path);
        let writes = how == FileUse::Writes;
        let mut files = self.0.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = files
            .iter()
            .find(|c| c.path == path && (c.writes || writes))
        {
            let (a, b) = (&other.user, user);
            return Err(format!(
                "{b} and {a} both use the file {}, and {} writes it: give one of them another \
                 path",
                path.display(),
                if other.writes { a } else { b }
            ));
        }
        files.push(Claim {
            path,
            writes,
            user: user.to_string(),
        });
        Ok(())
    }

    /// Where this run's failures go.
    pub fn errors(&self) -> &Errors {
        &self.0.errors
    }

    /// Sets the idle timeout of this run unless it is set already (`--idle-timeout`, or an
    /// earlier default). Call before starting tasks.
    pub fn default_idle_timeout(&self, timeout: Option<Duration>) {
        let _ = self.0.idle_timeout.set(timeout);
    }

    /// How long an upstream instance may stay silent before an input loop stops waiting for
    /// its watermark (`None`: wait forever).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.0.idle_timeout.get().copied().flatten()
    }

    /// Records (generator: events) per second of each source (0: unlimited).
    pub fn rate_limit(&self) -> u64 {
        self.0.rate_limit
    }

    /// How soon buffered output reaches stdout and files when input trickles.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_micros(self.0.flush_interval_us.load(Ordering::Relaxed))
    }

    /// Whether this run may end the process (a pipeline binary's run).
    pub fn owns_process(&self) -> bool {
        self.0.owns_process
    }

    /// Lets this run's sources stop.
    pub fn stop_sources(&self) {
        self.0.sources_stop.store(true, Ordering::Relaxed);
    }

    pub(crate) fn sources_stop_asked(&self) -> bool {
        self.0.sources_stop.load(Ordering::Relaxed)
    }

    /// A source of this run stopped reading before the end of its input.
    pub fn note_stopped_early(&self) {
        self.0.stopped_early.store(true, Ordering::Relaxed);
    }

    /// Whether this run is stopped rather than finished.
    pub fn stopped_early(&self) -> bool {
        self.0.stopped_early.load(Ordering::Relaxed)
    }

    /// Makes this the context of the calling thread for as long as the guard lives.
    pub fn enter(&self) -> Entered {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        Entered { previous }
    }
}

thread_local! {
    /// The run of the task on this thread.
    static CURRENT: RefCell<Option<RunContext>> = const { RefCell::new(None) };
    /// The stop flags of a thread that no run started.
    static DETACHED: RunContext = RunContext::default();
}

/// Restores the thread's previous context when dropped.
pub struct Entered {
    previous: Option<RunContext>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// `path` made absolute, with its folder's symbolic links and `..` resolved where the folder
/// exists (the file itself may not exist yet).
fn file_identity(path: &std::path::Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(found) = absolute.canonicalize() {
        return found;
    }
    match (absolute.parent(), absolute.file_name()) {
        (Some(folder), Some(name)) => folder
            .canonicalize()
            .map(|f| f.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

/// [`RunContext::claim_file`] in the run of this thread; a thread no run started checks
/// nothing.
pub fn claim_file(path: &std::path::Path, how: FileUse, user: &str) -> Result<(), String> {
    match current() {
        Some(ctx) => ctx.claim_file(path, how, user),
        None => Ok(()),
    }
}

/// The context of the run whose task runs on this thread, if any.
pub fn current() -> Option<RunContext> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Calls `f` with the context of this thread's run, or with a context of defaults private to
/// this thread when no run started it.
pub fn with<R>(f: impl FnOnce(&RunContext) -> R) -> R {
    CURRENT.with(|c| match &*c.borrow() {
        Some(ctx) => f(ctx),
        None => DETACHED.with(f),
    })
}

/// Reports a failure that must fail the run of this thread (the run goes on, then ends with
/// an error). Outside a run the message goes to stderr.
pub fn report_error(message: String) {
    match current() {
        Some(ctx) => ctx.errors().report(message),
        None => tracing::error!("{message}"),
    }
}

/// Ends this thread's run at once, with its errors, when a checkpoint was given up and a
/// source would otherwise go on for ever (Kafka): draining would fire windows on part of
/// their input. Like a crash, it leaves the checkpoint folder to resume from.
///
/// Only a pipeline binary's run ends the process. Any other run (a library's) records the
/// error and asks its sources to stop without the end of their input; the caller then stops
/// reading, and the run returns its errors.
pub fn abort_run() {
    const MESSAGE: &str = "a checkpoint was given up; stopping now (start again to resume \
                           from the last complete checkpoint)";
    match current() {
        Some(ctx) if ctx.owns_process() => {
            for err in ctx.errors().all() {
                tracing::error!("{err}");
            }
            tracing::error!("{MESSAGE}");
            std::process::exit(1)
        }
        Some(ctx) => {
            ctx.errors().report(MESSAGE.to_string());
            ctx.note_stopped_early();
            ctx.stop_sources();
        }
        None => tracing::error!("{MESSAGE}"),
    }
}

/// Ends the process with `code` when this thread's run owns it; otherwise (a library's run)
/// records `message` as the run's error and stops its sources. Returns only in the second
/// case.
pub fn exit_or_stop(code: i32, message: &str) {
    match current() {
        Some(ctx) if ctx.owns_process() => std::process::exit(code),
        Some(ctx) => {
            ctx.errors().report(message.to_string());
            ctx.note_stopped_early();
            ctx.stop_sources();
        }
        None => tracing::error!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_per_thread_and_nest() {
        let a = RunContext::new(Settings {
            rate_limit: 7,
            ..Settings::default()
        });
        let b = RunContext::new(Settings::default());
        assert!(current().is_none());
        assert_eq!(with(|c| c.rate_limit()), 0);
        {
            let _a = a.enter();
            report_error("in a".into());
            {
                let _b = b.enter();
                report_error("in b".into());
                assert_eq!(with(|c| c.rate_limit()), 0);
            }
            assert_eq!(with(|c| c.rate_limit()), 7);
        }
        assert!(current().is_none());
        assert_eq!(a.errors().all(), ["in a"]);
        assert_eq!(b.errors().all(), ["in b"]);
    }

    #[test]
    fn a_library_run_is_stopped_not_exited() {
        let ctx = RunContext::new(Settings::default());
        let _entered = ctx.enter();
        abort_run();
        // Still here: the process was not ended.
        assert!(ctx.stopped_early());
        assert!(ctx.sources_stop_asked());
        assert_eq!(ctx.errors().all().len(), 1);
    }

    #[test]
    fn the_idle_timeout_is_set_once_per_run() {
        let given = RunContext::new(Settings {
            idle_timeout: Some(Duration::from_millis(5)),
            ..Settings::default()
        });
        given.default_idle_timeout(Some(Duration::from_secs(3)));
        assert_eq!(given.idle_timeout(), Some(Duration::from_millis(5)));
        let defaulted = RunContext::new(Settings::default());
        defaulted.default_idle_timeout(Some(Duration::from_secs(3)));
        defaulted.default_idle_timeout(None);
        assert_eq!(defaulted.idle_timeout(), Some(Duration::from_secs(3)));
    }
}
