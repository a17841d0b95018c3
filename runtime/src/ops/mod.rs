//! Generic operators that generated chains are built from. Generated code supplies the
//! per-record logic as plain functions; these types supply counting, state and watermarks.

pub mod change;
pub mod filter;
pub mod final_aggregate;
pub mod final_top_n;
pub mod group_aggregate;
pub mod interval_join;
pub mod join;
pub mod key_ttl;
pub mod lookup_join;
pub mod map;
pub mod regular_join;
pub mod retract_aggregate;
pub mod retract_top_n;
pub mod top_n;
pub mod unnest;
pub mod window_aggregate;
pub mod window_final;
pub mod window_join;

pub use change::{Change, Upserts};
pub use filter::Filter;
pub use final_aggregate::FinalAggregateOp;
pub use final_top_n::FinalTopNOp;
pub use group_aggregate::GroupAggregateOp;
pub use interval_join::IntervalJoin;
pub use join::{route_by_key, Either, JoinSpec};
pub use key_ttl::KeyTtl;
pub use lookup_join::{lookup_table, LookupJoin, LookupSpec, LookupTable, TableFeed};
pub use map::{FilterMap, Map};
pub use regular_join::RegularJoin;
pub use retract_aggregate::{RetractAggregate, RetractAggregateOp};
pub use retract_top_n::{RetractTopNOp, UpsertKey};
pub use top_n::{RankSpec, TopNOp};
pub use unnest::Unnest;
pub use window_aggregate::{WindowAggregate, WindowAggregateOp, Windows};
pub use window_join::WindowJoin;
