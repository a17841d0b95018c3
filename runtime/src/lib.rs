//! weir's runtime: the generic machinery every generated pipeline links to.
//!
//! Generated code is small (record types, fused per-record functions, wiring); everything
//! generic lives here and is compiled once per machine, which keeps pipeline rebuilds fast.
//!
//! ```text
//!  source task (per split)                      keyed task (per instance)        sink task
//! ┌────────────────────────────────────┐      ┌───────────────────────────┐    ┌──────────┐
//! │ generator/file → FilterMap → Exch. │ ═══▶ │ run_input → WindowAgg → … │ ══▶│ Writer   │
//! └────────────────────────────────────┘      └───────────────────────────┘    └──────────┘
//!     chain = nested Collector types              ═══ bounded channel of batches + watermarks
//! ```

pub mod args;
pub mod channel;
pub mod checkpoint;
pub mod checksum;
pub mod collector;
pub mod context;
pub mod dead_letter;
pub mod embed;
pub mod formats;
pub mod functions;
pub mod hash;
#[cfg(feature = "http")]
pub mod http;
pub mod inline;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod keyed;
pub mod log;
pub mod metrics;
pub mod nexmark;
pub mod ops;
pub mod overflow;
pub mod plan;
pub mod progress;
pub mod run;
pub mod scale_out;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod stop;
pub mod tick;
#[cfg(feature = "tz")]
pub mod zone;

/// The allocator of the binaries `weir build` makes (see the `mimalloc` feature in Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With a memory budget (`--state disk`), tells the allocator to keep the resident set small
/// (call first thing in `main`, once the options are read): return the memory it frees to the
/// system at once, commit arenas as they are used, and no transparent huge pages (one 2 MiB
/// page stays resident while any of its 4 KiB is used). Nexmark q9 on the disk backend peaked
/// at 313 MiB with mimalloc's defaults at 2 M events (258 MiB with glibc's malloc), and at
/// 265 MiB with these at 5 M events, at the same speed (docs/performance.md). In memory the defaults stay: returning pages at once costs allocations.
pub(crate) fn tune_allocator(budgeted: bool) {
    #[cfg(feature = "mimalloc")]
    if budgeted {
        // Options of mimalloc 3's `mimalloc.h` (the bindings name only version 2's).
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
        // SAFETY: sets global options of mimalloc, any value valid for each, and a flag of
        // the process (no pointers).
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
            libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
            // The arena mimalloc reserved before `main` may already be marked for huge pages.
            libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0);
        }
    }
    #[cfg(not(feature = "mimalloc"))]
    let _ = budgeted;
}

/// What generated code imports.
pub mod prelude {
    pub use crate::channel::{channels, run_input, Exchange, Message};
    pub use crate::checkpoint::{Snapshot, StateSlot};
    pub use crate::checksum::RowHasher;
    pub use crate::collector::{Collector, Discard, Tee};
    pub use crate::formats::DecodeError;
    pub use crate::inline::{Inline, Route};
    pub use crate::metrics::OpMetrics;
    pub use crate::ops::{
        Change, Either, Filter, FilterMap, FinalAggregateOp, FinalTopNOp, GroupAggregateOp,
        JoinSpec, Map, RankSpec, RetractTopNOp, TopNOp, Unnest, UpsertKey, WindowAggregate,
        WindowAggregateOp, Windows,
    };
    pub use crate::run::Runtime;
    pub use crate::sources::EventTime;
}
