//! Compiles `pipelines/card_velocity.weir` into `$OUT_DIR/weir/card_velocity.rs`, which
//! `src/lib.rs` includes with `weir::include_pipeline!("card_velocity")`. The header binds the
//! pipeline's `schema Transaction` to the crate's `#[derive(weir::Record)]` struct.

fn main() {
    weir_compiler::build::Pipeline::new("pipelines/card_velocity.weir")
        .header("use crate::model::Transaction;")
        .compile_or_exit();
}
