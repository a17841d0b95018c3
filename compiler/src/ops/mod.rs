//! The operator table: one file per operator, each with its [`OperatorSpec`] row (ports, state,
//! blocking) and its emitter, which fills the slots code generation stitches together.

mod aggregate;
pub mod filter;
pub mod final_aggregate;
pub mod final_top_n;
pub mod fused;
pub mod group_aggregate;
pub mod join;
pub mod retract_aggregate;
pub mod retract_top_n;
pub mod select;
pub mod sink;
pub mod source;
pub mod top_n;
pub mod window_aggregate;

use proc_macro2::{Ident, TokenStream};

/// What an operator is, independent of any instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorSpec {
    pub name: &'static str,
    pub n_inputs: usize,
    /// Has outputs (a sink has none).
    pub has_output: bool,
    /// Keeps state across records (never fused; cuts chains of stateless steps).
    pub stateful: bool,
    /// Holds records back until a watermark (its output lags its input).
    pub blocking: bool,
    pub doc: &'static str,
}

/// Every operator, in one place (docs and tests iterate over it).
pub const OPERATORS: &[OperatorSpec] = &[
    source::SPEC,
    filter::SPEC,
    select::SPEC,
    fused::SPEC,
    window_aggregate::SPEC,
    group_aggregate::SPEC,
    final_aggregate::SPEC,
    retract_aggregate::SPEC,
    join::SPEC,
    top_n::SPEC,
    final_top_n::SPEC,
    retract_top_n::SPEC,
    sink::SPEC,
];

/// The slots an operator's emitter fills.
pub struct Emitted {
    /// Module-level items: functions, structs, trait impls.
    pub items: Vec<TokenStream>,
    /// Statements run once in `build()` before tasks start (open files, read options).
    pub setup: Vec<TokenStream>,
    /// Values cloned into each task instance that runs this operator.
    pub captures: Vec<Ident>,
    /// Values moved into the single instance that runs this operator (files to write).
    pub moves: Vec<Ident>,
    pub role: Role,
}

/// How the operator takes part in its task's chain.
pub enum Role {
    /// Starts a task: turns `(chain, instance index)` into the statements that drive it and
    /// return the task's `Result`.
    Source(Box<dyn Fn(TokenStream, TokenStream) -> TokenStream>),
    /// A chain element that forwards to `next`: turns `next` into the element's constructor.
    Stage(Box<dyn Fn(TokenStream) -> TokenStream>),
    /// A chain element with a second output (a window's late records): `(next, late)`.
    StageWithLate(Box<dyn Fn(TokenStream, TokenStream) -> TokenStream>),
    /// The end of a chain.
    Leaf(TokenStream),
}
