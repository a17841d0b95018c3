//! The operator table: one file per operator, each with its [`OperatorSpec`] row (ports, state,
//! checkpoints) and its emitter, which fills the slots code generation stitches together.

mod aggregate;
pub mod filter;
pub mod final_aggregate;
pub mod final_top_n;
pub mod fused;
pub mod group_aggregate;
pub mod join;
pub mod memory;
pub mod retract_aggregate;
pub mod retract_top_n;
pub mod select;
pub mod sink;
pub mod source;
pub mod top_n;
pub mod unnest;
pub mod window_aggregate;

use proc_macro2::{Ident, TokenStream};

/// What an operator is, independent of any instance: `ir::Op::spec` gives an operator's row,
/// and the compiler decides by it, not by matching on `Op`. Validation checks every
/// operator's inputs and outputs against `n_inputs` and `has_output`; `fuse_stateless` fuses
/// the one-input operators that are not `stateful`; `codegen::state` lists the
/// `checkpointed` ones as checkpoint participants; the name is the operator's kind in `explain`, the run summary and the plan
/// the HTTP endpoint serves. (Whether an operator holds records back until a watermark is a
/// property of its definition, not of its kind, so the table does not say: an interval join
/// waits for the watermark, a regular join does not.) Emitters are not in the table: each takes
/// its own operator's payload from the driver's exhaustive `match` on `Op` (ARCHITECTURE.md,
/// "The operators", says why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorSpec {
    pub name: &'static str,
    pub n_inputs: usize,
    /// Has outputs (a sink has none).
    pub has_output: bool,
    /// Keeps data across records (never fused; cuts chains of stateless steps).
    pub stateful: bool,
    /// Saves something at checkpoints: its state, a source's position, a sink's pending
    /// output (a sink writing to stdout has none: `codegen::state` asks its definition).
    pub checkpointed: bool,
    pub doc: &'static str,
}

/// Every operator, in one place: `ARCHITECTURE.md`'s operator table is checked against it.
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
    join::LOOKUP_SPEC,
    top_n::SPEC,
    final_top_n::SPEC,
    retract_top_n::SPEC,
    unnest::SPEC,
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

#[cfg(test)]
mod tests {
    use super::OPERATORS;

    /// A row of `ARCHITECTURE.md`'s operator table, as it must read.
    fn row(spec: &super::OperatorSpec) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "| `{}` | {} | {} | {} | {} | {} |",
            spec.name,
            spec.n_inputs,
            yes(spec.has_output),
            yes(spec.stateful),
            yes(spec.checkpointed),
            spec.doc
        )
    }

    #[test]
    fn the_architecture_document_lists_the_operator_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md");
        let text = std::fs::read_to_string(path).expect("ARCHITECTURE.md");
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with("The operators"))
            .expect("ARCHITECTURE.md has a section `## The operators`");
        let listed: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
        let expected: Vec<String> = OPERATORS.iter().map(row).collect();
        assert_eq!(
            listed, expected,
            "ARCHITECTURE.md's operator table differs from OPERATORS"
        );
    }

    #[test]
    fn operator_names_are_unique() {
        let mut names: Vec<&str> = OPERATORS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATORS.len());
    }
}
