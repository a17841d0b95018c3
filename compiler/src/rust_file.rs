//! The CLI's Rust file of functions (`weir run p.weir --rust udfs.rs`): the functions read
//! from its signatures ([`functions`]), the file as a module of the generated crate
//! ([`module_text`], [`DECLARATION`]), and rustc's errors about it as weir diagnostics at the
//! user's file and line ([`rustc_errors`]).
//!
//! The file goes into the crate as `src/udfs.rs`, unchanged up to its last line (a small
//! `mod weir` follows it), so rustc's lines and columns there are the user's. Mapping rustc's
//! errors back:
//!
//! - an error in `src/udfs.rs` is shown at the user's file, with rustc's message, labels and
//!   notes;
//! - an error in `src/main.rs` that names a function of the file comes from a function that
//!   does not fit the way the pipeline calls it (the generated code asserts each function's
//!   type, `const _: fn(&str) -> String = crate::udfs::f;`): it is shown at the pipeline's call,
//!   with the function's definition beside it;
//! - anything else is a bug in weir, and the caller says so.

use std::fmt;
use std::ops::Range;

use proc_macro2::Span as RustSpan;
use quote::quote;
use syn::spanned::Spanned;
use syn::Ident;

use crate::sema::types::Type;
use crate::sema::udf::Udf;
use crate::{Diagnostic, FileId, Span};

/// The module's file name in the generated crate's `src/`.
pub const MODULE_FILE: &str = "udfs.rs";

/// What the generated `main.rs` appends to declare the module.
pub const DECLARATION: &str =
    "\n// The Rust functions of `--rust FILE`, in src/udfs.rs.\n#[allow(dead_code)]\nmod udfs;\n";

/// How a syntax error's message starts.
const SYNTAX: &str = "not valid Rust";

/// A problem found in the Rust file before rustc sees it: not valid Rust, or a public function
/// whose types weir cannot pass. `at` is a byte range of the file, when known.
#[derive(Clone, Debug, PartialEq)]
pub struct RustFileError {
    pub message: String,
    pub at: Option<Range<usize>>,
}

impl fmt::Display for RustFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl RustFileError {
    fn new(message: String, span: RustSpan, text: &str) -> RustFileError {
        RustFileError {
            message,
            at: byte_range(text, span),
        }
    }

    /// The error as a diagnostic on `file` (the Rust file in a source map); `None` when its
    /// place is unknown.
    pub fn diagnostic(&self, file: FileId) -> Option<Diagnostic> {
        let at = self.at.clone()?;
        let d = Diagnostic::error("E0603", Span::new(file, at.start, at.end), &self.message);
        Some(if self.message.starts_with(SYNTAX) {
            d
        } else {
            d.with_hint(
                "a `pub fn` takes and returns i64, f64, bool, &str or String; an aggregate is a \
                 type implementing `weir::Accumulator`",
            )
        })
    }
}

/// The functions of a Rust file, read from their Rust signatures: each `pub fn` whose
/// parameters and result are `i64`, `f64`, `bool`, `&str` or `String` is a scalar function;
/// each `impl Accumulator for T` (or `weir::Accumulator`) with `type Input`/`type Output` of
/// those types is an aggregate named after `T` in snake_case. They are called as
/// `crate::udfs::...`: the file becomes `mod udfs` of the generated crate.
pub fn functions(text: &str) -> Result<Vec<Udf>, RustFileError> {
    let file = syn::parse_file(text)
        .map_err(|e| RustFileError::new(format!("{SYNTAX}: {e}"), e.span(), text))?;
    let mut out = Vec::new();
    for item in &file.items {
        match item {
            syn::Item::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => {
                let mut params = Vec::new();
                for input in &f.sig.inputs {
                    let syn::FnArg::Typed(pt) = input else {
                        return Err(RustFileError::new(
                            format!("`{}`: not a free function", f.sig.ident),
                            input.span(),
                            text,
                        ));
                    };
                    let name = match &*pt.pat {
                        syn::Pat::Ident(p) => p.ident.to_string(),
                        _ => format!("arg{}", params.len()),
                    };
                    let ty = rust_to_weir(&pt.ty)
                        .ok_or_else(|| unsupported(&f.sig.ident, &pt.ty, text))?;
                    params.push((name, ty));
                }
                let result = match &f.sig.output {
                    syn::ReturnType::Type(_, ty) => {
                        rust_to_weir(ty).ok_or_else(|| unsupported(&f.sig.ident, ty, text))?
                    }
                    syn::ReturnType::Default => {
                        return Err(RustFileError::new(
                            format!("`{}` returns nothing", f.sig.ident),
                            f.sig.span(),
                            text,
                        ))
                    }
                };
                let name = f.sig.ident.to_string();
                out.push(Udf {
                    path: format!("crate::udfs::{name}"),
                    name,
                    params,
                    result,
                    aggregate: false,
                });
            }
            syn::Item::Impl(imp) => {
                let is_acc = imp.trait_.as_ref().is_some_and(|(_, path, _)| {
                    path.segments
                        .last()
                        .is_some_and(|s| s.ident == "Accumulator")
                });
                let syn::Type::Path(self_ty) = &*imp.self_ty else {
                    continue;
                };
                let Some(ty_name) = self_ty.path.segments.last().map(|s| s.ident.to_string())
                else {
                    continue;
                };
                if !is_acc {
                    continue;
                }
                let assoc = |name: &str| {
                    imp.items.iter().find_map(|i| match i {
                        syn::ImplItem::Type(t) if t.ident == name => Some(&t.ty),
                        _ => None,
                    })
                };
                let weir_of = |name: &str| {
                    let ty = assoc(name).ok_or_else(|| {
                        RustFileError::new(
                            format!("`{ty_name}` has no `type {name}`"),
                            imp.self_ty.span(),
                            text,
                        )
                    })?;
                    rust_to_weir(ty).ok_or_else(|| {
                        RustFileError::new(
                            format!(
                                "`{ty_name}`: `type {name} = {}` is not i64, f64, bool or String",
                                quote!(#ty).to_string().replace(' ', "")
                            ),
                            ty.span(),
                            text,
                        )
                    })
                };
                let (input, result) = (weir_of("Input")?, weir_of("Output")?);
                out.push(Udf {
                    name: snake_case(&ty_name),
                    params: vec![("value".to_string(), input)],
                    result,
                    path: format!("crate::udfs::{ty_name}"),
                    aggregate: true,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The generated crate's `src/udfs.rs` for the Rust file `text`: the file, then a `mod weir`
/// in which `weir::Accumulator` names the runtime's trait (so the same file compiles in a crate
/// that depends on `weir`). Nothing goes before the file's text: rustc's lines and columns in
/// the module are the file's.
pub fn module_text(text: &str) -> String {
    format!(
        "{text}\n#[allow(unused_imports)]\nmod weir {{\n    pub use {rt}::embed::*;\n    pub use {rt}::state_struct;\n}}\n",
        rt = crate::codegen::context::CRATE_RUNTIME
    )
}

fn unsupported(name: &Ident, ty: &syn::Type, text: &str) -> RustFileError {
    RustFileError::new(
        format!(
            "`{name}`: `{}` has no weir type (use i64, f64, bool, &str or String)",
            quote!(#ty).to_string().replace(' ', "")
        ),
        ty.span(),
        text,
    )
}

/// The weir type of a Rust parameter or result type.
fn rust_to_weir(ty: &syn::Type) -> Option<Type> {
    match ty {
        syn::Type::Reference(r) => match &*r.elem {
            syn::Type::Path(p) if p.path.is_ident("str") => Some(Type::String),
            _ => None,
        },
        syn::Type::Path(p) => {
            let last = p.path.segments.last()?.ident.to_string();
            match last.as_str() {
                "i64" => Some(Type::I64),
                "f64" => Some(Type::F64),
                "bool" => Some(Type::Bool),
                "String" => Some(Type::String),
                _ => None,
            }
        }
        _ => None,
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The byte offset of 1-based `line` and 0-based character `column` in `text` (clamped to
/// the line, and to the text).
fn offset(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let body = l.trim_end_matches('\n');
            let within = body
                .char_indices()
                .nth(column)
                .map_or(body.len(), |(at, _)| at);
            return start + within;
        }
        start += l.len();
    }
    text.len()
}

/// The byte range of a span of text parsed by syn outside a proc macro (proc-macro2's
/// `span-locations` gives line and column); `None` for a span with no place.
fn byte_range(text: &str, span: RustSpan) -> Option<Range<usize>> {
    let (start, end) = (span.start(), span.end());
    if start.line == 0 {
        return None;
    }
    let from = offset(text, start.line, start.column);
    let to = offset(text, end.line, end.column).max(from);
    Some(from..to)
}

#[cfg(feature = "driver")]
pub use report::{rustc_errors, RustcErrors};

#[cfg(feature = "driver")]
mod report {
    use super::*;
    use crate::driver::{RustcDiagnostic, RustcSpan};
    use crate::SourceMap;

    /// rustc's errors from building a crate with the Rust file, as weir diagnostics.
    #[derive(Debug, Default)]
    pub struct RustcErrors {
        /// The errors caused by the Rust file: in it, or a function that does not fit its call.
        pub diagnostics: Vec<Diagnostic>,
        /// How many other errors there were (in the generated code: a bug in weir, unless they
        /// follow from the file's own errors).
        pub others: usize,
    }

    /// Maps rustc's `errors` (from [`crate::driver::DriverError::Compile`]) onto the Rust file
    /// `file` of `sources` (its text as the user wrote it) and onto the pipeline's `calls` of
    /// its functions `udfs` (from [`crate::sema::udf::with_udfs_calls`]).
    pub fn rustc_errors(
        sources: &SourceMap,
        file: FileId,
        udfs: &[Udf],
        calls: &[(String, Span)],
        errors: &[RustcDiagnostic],
    ) -> RustcErrors {
        let text = &sources.get(file).text;
        let mut out = RustcErrors::default();
        let mut reported_udfs: Vec<&str> = Vec::new();
        for error in errors {
            if error.spans.is_empty() && error.message.starts_with("aborting due to") {
                continue;
            }
            let primary = error.primary().or(error.spans.first());
            if let Some(span) = primary.filter(|s| in_module(s)) {
                out.diagnostics.push(in_file(file, text, error, span));
                continue;
            }
            match named_udf(error, udfs) {
                Some(udf) => {
                    // One report a function: rustc often repeats the mismatch at each use.
                    if !reported_udfs.contains(&udf.name.as_str()) {
                        reported_udfs.push(&udf.name);
                        match mismatch(file, text, udf, calls, error) {
                            Some(d) => out.diagnostics.push(d),
                            None => out.others += 1,
                        }
                    }
                }
                None => out.others += 1,
            }
        }
        out
    }

    fn in_module(span: &RustcSpan) -> bool {
        let name = span.file_name.replace('\\', "/");
        name == format!("src/{MODULE_FILE}") || name.ends_with(&format!("/src/{MODULE_FILE}"))
    }

    /// The byte range of a rustc span (1-based line and character column) in `text`.
    fn range(text: &str, span: &RustcSpan) -> Range<usize> {
        let start = offset(text, span.line_start, span.column_start.saturating_sub(1));
        let end = offset(text, span.line_end, span.column_end.saturating_sub(1)).max(start);
        start..end
    }

    /// A note or help of rustc's as a hint (a help is one already).
    fn child_hint(child: &RustcDiagnostic) -> String {
        match child.level.as_str() {
            "help" => child.message.clone(),
            level => format!("{level}: {}", child.message),
        }
    }

    /// rustc's code as a last hint (weir's codes are its own; E0308 means something else).
    fn rustc_code_hint(error: &RustcDiagnostic) -> Option<String> {
        error
            .code
            .as_ref()
            .map(|c| format!("rustc's error {c}: `rustc --explain {c}`"))
    }

    /// An error in the Rust file, at the user's file and line.
    fn in_file(
        file: FileId,
        text: &str,
        error: &RustcDiagnostic,
        primary: &RustcSpan,
    ) -> Diagnostic {
        let at = range(text, primary);
        let mut d = Diagnostic::error("E0601", Span::new(file, at.start, at.end), &error.message)
            .with_label(primary.label.clone().unwrap_or_default());
        for s in error.spans.iter().filter(|s| !s.is_primary && in_module(s)) {
            let at = range(text, s);
            d = d.with_secondary(
                Span::new(file, at.start, at.end),
                s.label.clone().unwrap_or_default(),
            );
        }
        for child in &error.children {
            let mut hint = child_hint(child);
            let suggestions: Vec<&str> = child
                .spans
                .iter()
                .filter(|s| in_module(s))
                .filter_map(|s| s.suggested_replacement.as_deref())
                .map(str::trim)
                .collect();
            if let [one] = suggestions.as_slice() {
                if !one.is_empty() && !one.contains('\n') {
                    hint.push_str(&format!(": `{one}`"));
                }
            }
            d = d.with_hint(hint);
        }
        if let Some(h) = rustc_code_hint(error) {
            d = d.with_hint(h);
        }
        d
    }

    /// The function of the file an error in the generated code names (`udfs::NAME` in the
    /// offending line, rustc's message or its notes), if any.
    fn named_udf<'a>(error: &RustcDiagnostic, udfs: &'a [Udf]) -> Option<&'a Udf> {
        let mut texts: Vec<&str> = vec![&error.message];
        for s in &error.spans {
            texts.extend(s.text.iter().map(String::as_str));
            texts.extend(s.label.as_deref());
        }
        for child in &error.children {
            texts.push(&child.message);
        }
        udfs.iter().find(|udf| {
            let item = udf.path.rsplit("::").next().unwrap_or_default();
            let needle = format!("udfs::{item}");
            texts.iter().any(|t| {
                t.match_indices(&needle).any(|(at, _)| {
                    !t[at + needle.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
    }

    /// Where the file defines the item `name` (a function or a type): its name's range.
    pub(super) fn definition(text: &str, name: &str) -> Option<Range<usize>> {
        let file = syn::parse_file(text).ok()?;
        file.items.iter().find_map(|item| {
            let ident = match item {
                syn::Item::Fn(f) => &f.sig.ident,
                syn::Item::Struct(s) => &s.ident,
                syn::Item::Enum(e) => &e.ident,
                syn::Item::Type(t) => &t.ident,
                _ => return None,
            };
            (ident == name)
                .then(|| byte_range(text, ident.span()))
                .flatten()
        })
    }

    /// How the pipeline calls `udf`, as the Rust type the generated code asserts.
    fn expected_type(udf: &Udf) -> String {
        let rust = |t: Type, param: bool| match t {
            Type::String if param => "&str".to_string(),
            Type::String => "String".to_string(),
            Type::Timestamp => "i64".to_string(),
            t => t.to_string(),
        };
        let params: Vec<String> = udf.params.iter().map(|(_, t)| rust(*t, true)).collect();
        format!("fn({}) -> {}", params.join(", "), rust(udf.result, false))
    }

    /// A function of the file that does not fit the way the pipeline calls it: at the first
    /// call, with the definition beside it.
    fn mismatch(
        file: FileId,
        text: &str,
        udf: &Udf,
        calls: &[(String, Span)],
        error: &RustcDiagnostic,
    ) -> Option<Diagnostic> {
        let item = udf.path.rsplit("::").next().unwrap_or_default();
        let defined = definition(text, item).map(|r| Span::new(file, r.start, r.end));
        let call = calls.iter().find(|(n, _)| *n == udf.name).map(|(_, s)| *s);
        let kind = if udf.aggregate {
            "aggregate"
        } else {
            "function"
        };
        let message = format!(
            "the Rust {kind} `{item}` does not fit the way the pipeline calls it: {}",
            error.message
        );
        let mut d = match (call, defined) {
            (Some(call), defined) => {
                let label = if udf.aggregate {
                    format!("aggregates `{}`", udf.signature())
                } else {
                    format!("calls `{item}` as `{}`", expected_type(udf))
                };
                let d = Diagnostic::error("E0602", call, message).with_label(label);
                match defined {
                    Some(at) => d.with_secondary(at, format!("`{item}` is defined here")),
                    None => d,
                }
            }
            (None, Some(at)) => Diagnostic::error("E0602", at, message),
            (None, None) => return None,
        };
        if let Some(label) = error.primary().and_then(|s| s.label.as_deref()) {
            d = d.with_hint(format!("rustc: {label}"));
        }
        for child in &error.children {
            d = d.with_hint(child_hint(child));
        }
        d = d.with_hint(if udf.aggregate {
            "an aggregate is a `Clone + Default` type implementing `weir::Accumulator` with \
             `Input` and `Output` of i64, f64, bool or String, and `weir::state_struct!` for \
             its state"
                .to_string()
        } else {
            format!(
                "weir calls a plain `pub fn` (not generic, async or unsafe) with strings as \
                 `&str` and takes a `String` back: here `{}`",
                expected_type(udf)
            )
        });
        if let Some(h) = rustc_code_hint(error) {
            d = d.with_hint(h);
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_from_a_rust_file() {
        let text = r#"
            //! Functions.
            use weir::Accumulator;
            pub fn risk(amount: f64, country: &str) -> f64 { amount }
            fn private(x: i64) -> i64 { x }
            #[derive(Clone, Debug, Default)]
            pub struct AmountSpread(f64);
            impl Accumulator for AmountSpread {
                type Input = f64;
                type Output = f64;
                fn add(&mut self, v: f64) {}
                fn merge(&mut self, later: Self) {}
                fn result(&self) -> f64 { 0.0 }
            }
        "#;
        let udfs = functions(text).unwrap();
        assert_eq!(udfs.len(), 2);
        assert_eq!(
            udfs[0].signature(),
            "risk(amount: f64, country: string) -> f64"
        );
        assert_eq!(udfs[0].path, "crate::udfs::risk");
        assert_eq!(udfs[1].name, "amount_spread");
        assert!(udfs[1].aggregate);
        assert!(module_text(text).starts_with(text));
    }

    #[test]
    fn errors_know_their_place() {
        let text = "pub fn ok(x: i64) -> i64 { x }\npub fn f(x: u8) -> i64 { 0 }\n";
        let e = functions(text).unwrap_err();
        assert_eq!(e.at.map(|r| &text[r]), Some("u8"));
        let text = "pub fn f(x: i64) -> i64 {\n    let y = 1\n    x + y\n}\n";
        let e = functions(text).unwrap_err();
        assert!(e.message.starts_with("not valid Rust"), "{e}");
        let at = e.at.clone().expect("a syntax error has a place");
        assert_eq!(&text[at.start..at.start + 1], "x", "{e}: {at:?}");
        assert_eq!(offset("ab\ncd", 2, 1), 4);
        assert_eq!(offset("ab\ncd", 9, 1), 5);
    }

    #[cfg(feature = "driver")]
    #[test]
    fn rustc_errors_in_the_file_or_about_its_functions_are_the_users() {
        use crate::driver::{RustcDiagnostic, RustcSpan};
        use crate::SourceMap;
        let mut sources = SourceMap::new();
        let pipeline = sources.add("p.weir", "let x = s |> select { y: shout(name) }");
        let rust = "pub fn shout(name: &str) -> &str {\n    name\n}\n";
        let file = sources.add("udfs.rs", rust);
        let udfs = functions(rust).unwrap();
        let call = Span::new(pipeline, 25, 36);
        let calls = vec![("shout".to_string(), call)];
        let span = |file_name: &str, line: usize, from: usize, to: usize, text: &str| RustcSpan {
            file_name: file_name.to_string(),
            line_start: line,
            line_end: line,
            column_start: from,
            column_end: to,
            is_primary: true,
            label: Some("here".to_string()),
            text: vec![text.to_string()],
            suggested_replacement: None,
        };
        let error = |message: &str, s: RustcSpan| RustcDiagnostic {
            level: "error".to_string(),
            message: message.to_string(),
            code: Some("E0308".to_string()),
            spans: vec![s],
            ..Default::default()
        };
        let fits = "const _: fn(&str) -> String = crate::udfs::shout;";
        let errors = [
            error("in the file", span("src/udfs.rs", 2, 5, 9, "    name")),
            error("mismatched types", span("src/main.rs", 40, 1, 9, fits)),
            error(
                "mismatched types",
                span("src/main.rs", 90, 1, 9, "crate::udfs::shout(&*v)"),
            ),
            error("generated", span("src/main.rs", 7, 1, 9, "let x = 1;")),
            RustcDiagnostic {
                level: "error".to_string(),
                message: "aborting due to 3 previous errors".to_string(),
                ..Default::default()
            },
        ];
        let out = rustc_errors(&sources, file, &udfs, &calls, &errors);
        assert_eq!(out.others, 1);
        assert_eq!(out.diagnostics.len(), 2, "{:?}", out.diagnostics);
        let (in_file, mismatch) = (&out.diagnostics[0], &out.diagnostics[1]);
        assert_eq!(in_file.code, "E0601");
        assert_eq!(sources.snippet(in_file.primary.span), "name");
        assert_eq!(mismatch.code, "E0602");
        assert_eq!(mismatch.primary.span, call);
        assert_eq!(sources.snippet(mismatch.secondary[0].span), "shout");
        assert!(mismatch.primary.message.contains("fn(&str) -> String"));
        let text = "pub fn é() {}\npub struct Spread;\n";
        assert_eq!(
            report::definition(text, "Spread").map(|r| &text[r]),
            Some("Spread")
        );
        // Only the generated code: a bug in weir.
        let out = rustc_errors(&sources, file, &udfs, &calls, &errors[3..]);
        assert!(out.diagnostics.is_empty());
        assert_eq!(out.others, 1);
    }
}
