//! weir's language front end: the pest grammar, the AST (every node with an owned span), the
//! parser, and the diagnostic type shared by every stage of the compiler.
//!
//! Entry point: [`parse`] returns the module it could build together with every error it found,
//! so one run reports all the mistakes of a file; [`parse_file`] does the same for a file of a
//! [`SourceMap`], which may have been read from bytes that are not UTF-8.

pub mod ast;
pub mod diagnostic;
mod parser;
pub mod span;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use parser::{declared_names, parse, parse_file, DeclaredNames};
pub use span::{FileId, NotUtf8, SourceFile, SourceMap, Span};
