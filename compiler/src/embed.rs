//! Pipelines embedded in a Rust crate: what `weir::pipeline!` and the build.rs API
//! ([`crate::build`]) share. Both read a [`Header`] (Rust-side declarations: the module's name,
//! Rust record types bound to schemas, Rust functions) and the pipeline text, and produce the
//! same module ([`compile_module`]):
//!
//! ```text
//! pub mod NAME {
//!     ...  the pipeline as written (files, stdout, generators); `pub fn run(args)`
//!     pub mod memory {
//!         ...  file/stdin sources read `Inputs`, sinks fill `Outputs`;
//!              `pub fn run(args, inputs) -> Result<Outputs, Error>`
//!     }
//! }
//! ```
//!
//! The code inside is what [`codegen`](crate::codegen) generates for the CLI, in a library
//! form (see [`crate::codegen::embed`]) and naming the runtime `::weir::runtime` (through the
//! `weir` facade) where a binary's crate names it `::weir_runtime`.
//!
//! Why the header lives on the Rust side: the pipeline compiler runs inside the proc macro,
//! before rustc has seen the user's structs, so it cannot read a `#[derive(weir::Record)]`
//! type's fields. The pipeline keeps declaring its schemas in weir (the same file works with
//! the CLI), the header binds a schema to a Rust type (`use crate::model::Transaction;` binds
//! `schema Transaction`), and the generated code asserts at compile time that the Rust type
//! has every field of the schema with the matching type (one clear message per field).

use std::collections::BTreeMap;

use proc_macro2::{Span as RustSpan, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::codegen::context::{runtime_path, FACADE_RUNTIME};
use crate::codegen::embed::Form;
use crate::sema::types::Type;
use crate::sema::udf::{with_udfs, Udf};
use crate::{Diagnostic, FileId, Options, SourceMap};

/// Rust-side declarations in front of an embedded pipeline, separated by `;` (or `,`):
///
/// ```text
/// mod fraud;                          // the generated module's name
/// file = "pipelines/fraud.weir";      // the pipeline's file (macro only; else inline text)
/// use crate::model::Transaction;      // binds `schema Transaction` to a Rust type
/// use crate::model::Tx as Transaction;
/// fn risk(amount: f64, country: string) -> f64 = crate::udf::risk;   // a scalar Rust function
/// aggregate fn spread(amount: f64) -> f64 = crate::udf::Spread;      // a weir::Accumulator
/// ```
#[derive(Clone, Default)]
pub struct Header {
    pub module: Option<Ident>,
    pub file: Option<LitStr>,
    /// Schema name → (the Rust type's path, the `use` item's span).
    pub records: Vec<(String, String, RustSpan)>,
    /// Rust functions the pipeline calls.
    pub functions: Vec<Udf>,
}

impl Header {
    /// Parses the header items at the start of `input`; returns the header and the tokens
    /// after it (the pipeline text, for inline pipelines).
    pub fn parse_prefix(input: TokenStream) -> syn::Result<(Header, TokenStream)> {
        syn::parse::Parser::parse2(
            |stream: ParseStream<'_>| {
                let header = Header::parse(stream)?;
                let rest: TokenStream = stream.parse()?;
                Ok((header, rest))
            },
            input,
        )
    }

    /// Parses a header given as text (the build.rs API).
    pub fn parse_str(text: &str) -> syn::Result<Header> {
        let tokens: TokenStream = text.parse().map_err(|e: proc_macro2::LexError| {
            syn::Error::new(RustSpan::call_site(), format!("invalid header: {e}"))
        })?;
        let (header, rest) = Header::parse_prefix(tokens)?;
        if let Some(t) = rest.into_iter().next() {
            return Err(syn::Error::new(
                t.span(),
                "expected `mod NAME;`, `use PATH;` or `file = \"...\";` in the header",
            ));
        }
        Ok(header)
    }
}

impl Parse for Header {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut header = Header::default();
        loop {
            if input.peek(Token![mod]) {
                let kw: Token![mod] = input.parse()?;
                let name: Ident = input.parse()?;
                if header.module.is_some() {
                    return Err(syn::Error::new(kw.span, "the module is named twice"));
                }
                header.module = Some(name);
            } else if input.peek(Token![use]) {
                let kw: Token![use] = input.parse()?;
                let tree: syn::UseTree = input.parse()?;
                let (schema, path) = use_binding(&tree, String::new())?;
                header.records.push((schema, path, kw.span));
            } else if input.peek(Token![fn])
                || (input.peek(Ident)
                    && input.peek2(Token![fn])
                    && input.fork().parse::<Ident>()? == "aggregate")
            {
                let udf = parse_function(input)?;
                if header.functions.iter().any(|f| f.name == udf.name) {
                    return Err(syn::Error::new(
                        RustSpan::call_site(),
                        format!("the function `{}` is declared twice", udf.name),
                    ));
                }
                header.functions.push(udf);
            } else if input.peek(Ident)
                && input.peek2(Token![=])
                && input.fork().parse::<Ident>()? == "file"
            {
                input.parse::<Ident>()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                if header.file.is_some() {
                    return Err(syn::Error::new(lit.span(), "the file is given twice"));
                }
                header.file = Some(lit);
            } else {
                return Ok(header);
            }
            if input.is_empty() {
                return Ok(header);
            }
            // `;` between items; `,` too, for `pipeline!(file = "...", mod name)`, which
            // rustfmt leaves alone (it rewrites `;` inside parentheses).
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else {
                input.parse::<Token![;]>()?;
            }
        }
    }
}

/// `[aggregate] fn name(param: type, ...) -> type = path` (without the `;`).
fn parse_function(input: ParseStream<'_>) -> syn::Result<Udf> {
    let aggregate = if input.peek(Ident) {
        input.parse::<Ident>()?;
        true
    } else {
        false
    };
    input.parse::<Token![fn]>()?;
    let name: Ident = input.parse()?;
    let content;
    syn::parenthesized!(content in input);
    let mut params = Vec::new();
    while !content.is_empty() {
        let pname: Ident = content.parse()?;
        content.parse::<Token![:]>()?;
        params.push((pname.to_string(), weir_type(&content)?));
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    input.parse::<Token![->]>()?;
    let result = weir_type(input)?;
    input.parse::<Token![=]>()?;
    let path: syn::Path = input.parse()?;
    if aggregate && params.len() != 1 {
        return Err(syn::Error::new(
            name.span(),
            "an aggregate function takes exactly one argument",
        ));
    }
    Ok(Udf {
        name: name.to_string(),
        params,
        result,
        path: quote!(#path).to_string().replace(' ', ""),
        aggregate,
    })
}

/// A weir type name: `i64`, `f64`, `bool`, `string` or `timestamp`.
fn weir_type(input: ParseStream<'_>) -> syn::Result<Type> {
    let name: Ident = input.parse()?;
    match Type::from_name(&name.to_string()) {
        Some(t) if t != Type::Duration => Ok(t),
        _ => Err(syn::Error::new(
            name.span(),
            format!("`{name}` is not a weir type: use i64, f64, bool, string or timestamp"),
        )),
    }
}

/// `crate::a::B` → (`B`, `crate::a::B`); `crate::a::B as C` → (`C`, `crate::a::B`).
fn use_binding(tree: &syn::UseTree, prefix: String) -> syn::Result<(String, String)> {
    match tree {
        syn::UseTree::Path(p) => use_binding(&p.tree, format!("{prefix}{}::", p.ident)),
        syn::UseTree::Name(n) => Ok((n.ident.to_string(), format!("{prefix}{}", n.ident))),
        syn::UseTree::Rename(r) => Ok((r.rename.to_string(), format!("{prefix}{}", r.ident))),
        other => Err(syn::Error::new_spanned(
            other,
            "bind one record type per `use`, e.g. `use crate::model::Transaction;`",
        )),
    }
}

/// An error of an embedded pipeline: weir diagnostics on the pipeline text, or a problem with
/// the header.
#[derive(Debug)]
pub enum EmbedError {
    Pipeline(Vec<Diagnostic>),
    Header(syn::Error),
}

/// A compiled embedded pipeline.
pub struct Module {
    /// `pub mod NAME { ... }`.
    pub tokens: TokenStream,
    /// Warnings (compilation succeeded): build.rs shows them as cargo warnings; a proc macro
    /// has no stable way to.
    pub warnings: Vec<Diagnostic>,
}

/// Compiles the pipeline in `file` into the module described in the module docs. The
/// module's name is the header's, else `default_name` (which must be an identifier).
pub fn compile_module(
    sources: &SourceMap,
    file: FileId,
    header: &Header,
    default_name: &str,
) -> Result<Module, EmbedError> {
    let compiled = with_udfs(&header.functions, || {
        crate::compile(sources, file, &Options::default())
    })
    .map_err(EmbedError::Pipeline)?;
    let records = source_records(sources, file, header)?;
    // The runtime through the facade, `::weir::runtime`: the user's crate depends on `weir`.
    let rt = runtime_path(FACADE_RUNTIME);
    let library = crate::codegen::generate_tokens(
        &compiled.physical,
        &compiled.info,
        Form::Library,
        rt.clone(),
    );
    let memory = crate::codegen::generate_tokens(
        &compiled.physical,
        &compiled.info,
        Form::Memory { records: &records },
        rt,
    );
    let name = match &header.module {
        Some(name) => name.clone(),
        None => syn::parse_str::<Ident>(default_name).map_err(|_| {
            EmbedError::Header(syn::Error::new(
                RustSpan::call_site(),
                format!("`{default_name}` cannot name a module: give one with `mod NAME`"),
            ))
        })?,
    };
    // A hash of the code, the same whichever way in (macro or build.rs) generated it.
    let hash = {
        use sha2::{Digest, Sha256};
        // Of the formatted text: token spacing differs inside and outside a proc macro.
        let text = crate::codegen::format_file(quote!(#library mod memory { #memory }));
        let digest = Sha256::digest(text.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let module = quote! {
        #[allow(missing_docs)]
        pub mod #name {
            #library
            /// A hash of this module's generated code (tests compare the ways in with it).
            #[doc(hidden)]
            pub const GENERATED_CODE_HASH: &str = #hash;
            /// The pipeline with sources and sinks in memory, for tests and for feeding it from
            /// Rust code.
            pub mod memory {
                #memory
            }
        }
    };
    Ok(Module {
        tokens: module,
        warnings: compiled.warnings,
    })
}

/// Source name → Rust type, for sources whose schema the header binds to a Rust type.
fn source_records(
    sources: &SourceMap,
    file: FileId,
    header: &Header,
) -> Result<BTreeMap<String, String>, EmbedError> {
    let (module, _) = weir_dsl::parse(file, &sources.get(file).text);
    let items = module.map(|m| m.items).unwrap_or_default();
    let mut out = BTreeMap::new();
    for (schema, path, span) in &header.records {
        let declared = items.iter().any(|item| {
            matches!(&item.kind, weir_dsl::ast::ItemKind::Schema(s) if s.name.name == *schema)
        });
        if !declared {
            return Err(EmbedError::Header(syn::Error::new(
                *span,
                format!("the pipeline declares no `schema {schema}` for this type to bind to"),
            )));
        }
        for item in &items {
            if let weir_dsl::ast::ItemKind::Source(s) = &item.kind {
                if s.schema.as_ref().is_some_and(|n| n.name == *schema) {
                    out.insert(s.name.name.clone(), path.clone());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_pipeline() {
        let input = quote! {
            mod fraud;
            use crate::model::Transaction;
            use crate::model::Tx as Other;
            schema Transaction { card: string }
        };
        let (header, rest) = Header::parse_prefix(input).unwrap();
        assert_eq!(header.module.unwrap(), "fraud");
        let records: Vec<_> = header
            .records
            .iter()
            .map(|(s, p, _)| (s.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            records,
            [
                ("Transaction", "crate::model::Transaction"),
                ("Other", "crate::model::Tx")
            ]
        );
        assert_eq!(
            rest.to_string(),
            quote!(schema Transaction { card: string }).to_string()
        );
    }

    #[test]
    fn file_header_and_errors() {
        let header = Header::parse_str("file = \"p/x.weir\"").unwrap();
        assert_eq!(header.file.unwrap().value(), "p/x.weir");
        assert!(Header::parse_str("mod a; mod b;").is_err());
        assert!(Header::parse_str("use crate::{A, B};").is_err());
        assert!(Header::parse_str("schema X {}").is_err());
        let h = Header::parse_str(
            "fn risk(a: f64, c: string) -> f64 = crate::udf::risk; aggregate fn s(a: i64) -> i64 = crate::S;",
        )
        .unwrap();
        assert_eq!(h.functions[0].signature(), "risk(a: f64, c: string) -> f64");
        assert_eq!(h.functions[0].path, "crate::udf::risk");
        assert!(h.functions[1].aggregate && !h.functions[0].aggregate);
        assert!(Header::parse_str("fn f(a: int) -> f64 = f;").is_err());
        assert!(Header::parse_str("aggregate fn f(a: i64, b: i64) -> f64 = f;").is_err());
    }
}
