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
