//! Generic operators that generated chains are built from. Generated code supplies the
//! per-record logic as plain functions; these types supply counting, state and watermarks.

pub mod filter;
pub mod interval_join;
pub mod join;
pub mod key_ttl;
pub mod lookup_join;
pub mod map;
pub mod regular_join;
pub mod retract_top;
pub mod updating;
pub mod window;
pub mod window_final;
pub mod window_join;

pub use filter::Filter;
pub use interval_join::IntervalJoin;
pub use join::{route_by_key, Either, JoinSpec};
pub use key_ttl::KeyTtl;
pub use lookup_join::{lookup_table, LookupJoin, LookupSpec, LookupTable};
pub use map::{FilterMap, Map};
pub use regular_join::RegularJoin;
pub use retract_top::{RetractTopNOp, UpsertKey};
pub use updating::{
    Change, GroupAggregateOp, RankSpec, RetractAggregate, RetractAggregateOp, TopNOp, Upserts,
};
pub use window::{WindowAggregate, WindowAggregateOp, Windows};
pub use window_final::{FinalAggregateOp, FinalTopNOp};
pub use window_join::WindowJoin;
