//! weir's proc macros, a thin shell over `weir-compiler`. Users reach them through the `weir`
//! crate (`weir::pipeline!`, `#[derive(weir::Record)]`), which also re-exports the runtime that
//! the expansions name as `::weir::runtime`.
//!
//! No user input makes these macros panic: every problem becomes a `compile_error!` on the
//! offending tokens, next to a stub of the module so the rest of the crate still type-checks.

mod pipeline;
mod record;
mod text;

use proc_macro::TokenStream;

/// Compiles a weir pipeline into a module. See the `weir` crate.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline::expand(input.into()).into()
}

/// Makes a struct with named fields usable as a pipeline's record type. See the `weir` crate.
#[proc_macro_derive(Record, attributes(weir))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => record::expand(&input).unwrap_or_else(syn::Error::into_compile_error),
        Err(err) => err.into_compile_error(),
    }
    .into()
}
