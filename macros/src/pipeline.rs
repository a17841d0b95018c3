//! `weir::pipeline!`: reads the header and the pipeline (inline tokens or a file), compiles it
//! with `weir_compiler::embed::compile_module` (the build.rs API generates the same module),
//! and maps weir diagnostics onto the macro input: inline, onto the tokens a diagnostic's byte
//! range covers; from a file, onto the `file = "..."` literal, with `path:line:col` and the
//! underlined source line in the message.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use weir_compiler::embed::{compile_module, EmbedError, Header};
use weir_compiler::{Diagnostic, SourceMap};

use crate::text::Text;

pub fn expand(input: TokenStream) -> TokenStream {
    let (header, rest) = match Header::parse_prefix(input) {
        Ok(parsed) => parsed,
        Err(err) => return failed(err, &format_ident!("pipeline")),
    };
    // The module's name: `mod NAME`, else the file's stem, else `pipeline`.
    let name = match (&header.module, &header.file) {
        (Some(name), _) => name.clone(),
        (None, Some(lit)) => {
            let stem = weir_compiler::build::module_name(std::path::Path::new(&lit.value()));
            syn::parse_str(&stem).unwrap_or_else(|_| format_ident!("pipeline"))
        }
        (None, None) => format_ident!("pipeline"),
    };
    let mut sources = SourceMap::new();
    let (file, origin) = match &header.file {
        Some(lit) => {
            if let Some(t) = rest.into_iter().next() {
                let msg = "a pipeline read from `file = ...` has no inline text; expected `;` or the end of the macro";
                return failed(syn::Error::new(t.span(), msg), &name);
            }
            let path = lit.value();
            let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
            let full = std::path::Path::new(&root).join(&path);
            // Bytes, not text: where they are not UTF-8 is the checker's to report.
            let text = match std::fs::read(&full) {
                Ok(text) => text,
                Err(err) => {
                    // The path as written: the full one depends on the machine.
                    let msg = format!(
                        "cannot read `{path}` (relative to the crate's root): {}",
                        io_reason(&err)
                    );
                    return failed(syn::Error::new(lit.span(), msg), &name);
                }
            };
            let full = full.display().to_string();
            (
                sources.add_bytes(path, text),
                Origin::File(lit.span(), full),
            )
        }
        None => {
            let text = Text::rebuild(rest, position);
            (
                sources.add("pipeline!", text.text.clone()),
                Origin::Inline(text),
            )
        }
    };
    let default_name = name.to_string();
    let module = match compile_module(&sources, file, &header, &default_name) {
        Ok(module) => module.tokens,
        Err(EmbedError::Header(err)) => return failed(err, &name),
        Err(EmbedError::Pipeline(diagnostics)) => {
            let (shown, more) = weir_compiler::diagnostics::shown(&diagnostics);
            let more = (!more.is_empty()).then(|| {
                let span = match &origin {
                    Origin::File(span, _) => *span,
                    Origin::Inline(_) => Span::call_site(),
                };
                syn::Error::new(span, format!("weir: {more}"))
            });
            let err = shown
                .into_iter()
                .filter(|d| d.is_error())
                .map(|d| to_error(d, &sources, &origin))
                .chain(more)
                .reduce(|mut a, b| {
                    a.combine(b);
                    a
                });
            return match err {
                Some(err) => failed(err, &name),
                None => failed(
                    syn::Error::new(Span::call_site(), "weir: compilation failed"),
                    &name,
                ),
            };
        }
    };
    match origin {
        // Cargo rebuilds the crate when the file changes: the expansion includes it.
        Origin::File(span, full) => quote_spanned! {span=>
            #module
            const _: &str = ::core::include_str!(#full);
        },
        Origin::Inline(_) => module,
    }
}

/// An I/O error without the OS's error number (which differs between systems).
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}

/// Where the pipeline text came from.
enum Origin {
    Inline(Text),
    /// The `file = "..."` literal's span, and the file's full path.
    File(Span, String),
}

/// A token's line (1-based) and column (0-based), as rustc reports it.
fn position(span: Span) -> Option<(usize, usize)> {
    let span = span.unwrap();
    let line = span.line();
    (line > 0).then(|| (line, span.column().saturating_sub(1)))
}

/// A weir diagnostic as a `syn::Error` on the macro input.
fn to_error(d: &Diagnostic, sources: &SourceMap, origin: &Origin) -> syn::Error {
    let mut message = format!("{} [weir {}]", d.message, d.code);
    let (start, end) = (d.primary.span.start as usize, d.primary.span.end as usize);
    match origin {
        Origin::Inline(text) => {
            if !d.primary.message.is_empty() {
                message.push_str(&format!("\n  = note: {}", d.primary.message));
            }
            for s in &d.secondary {
                let snippet = sources.snippet(s.span).trim();
                message.push_str(&format!("\n  = note: {} (`{snippet}`)", s.message));
            }
            for hint in &d.hints {
                message.push_str(&format!("\n  = help: {hint}"));
            }
            match text.spans(start, end) {
                Some((first, last)) => {
                    let tokens: TokenStream = [first, last]
                        .into_iter()
                        .map(|s| {
                            let mut p = proc_macro2::Punct::new('.', proc_macro2::Spacing::Alone);
                            p.set_span(s);
                            TokenTree::Punct(p)
                        })
                        .collect();
                    syn::Error::new_spanned(tokens, message)
                }
                None => syn::Error::new(Span::call_site(), message),
            }
        }
        Origin::File(span, _) => {
            // The rendered diagnostic: `file:line:col`, the line underlined, hints.
            let rendered =
                weir_compiler::diagnostics::render(sources, std::slice::from_ref(d), false);
            syn::Error::new(*span, rendered.trim_end())
        }
    }
}

/// `compile_error!`s and a stub of the module, so that uses of the module elsewhere in the
/// crate do not each add an error.
fn failed(err: syn::Error, name: &syn::Ident) -> TokenStream {
    let errors = err.into_compile_error();
    quote! {
        #errors
        #[allow(missing_docs, dead_code, unused)]
        pub mod #name {
            pub fn run(args: ::weir::runtime::run::RunArgs) -> ::std::result::Result<(), ::weir::runtime::embed::Error> {
                ::core::unreachable!()
            }
            pub mod memory {
                #[derive(Default)]
                pub struct Inputs;
                #[derive(Debug, Default)]
                pub struct Outputs;
                pub fn run(args: ::weir::runtime::run::RunArgs, inputs: Inputs) -> ::std::result::Result<Outputs, ::weir::runtime::embed::Error> {
                    ::core::unreachable!()
                }
            }
        }
    }
}
