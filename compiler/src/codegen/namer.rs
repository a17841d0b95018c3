//! All names in generated code come from here, so they are deterministic and never clash.

use std::collections::BTreeSet;

use proc_macro2::{Ident, Span};

#[derive(Default)]
pub struct Namer {
    taken: BTreeSet<String>,
    counter: usize,
}

impl Namer {
    /// A unique identifier starting with `base` (made a valid Rust identifier).
    pub fn fresh(&mut self, base: &str) -> Ident {
        let mut clean: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
            clean.insert(0, '_');
        }
        let mut name = clean.clone();
        let mut n = 1;
        while self.taken.contains(&name) || is_keyword(&name) {
            n += 1;
            name = format!("{clean}_{n}");
        }
        self.taken.insert(name.clone());
        Ident::new(&name, Span::call_site())
    }

    /// Claims `name` as it is, so [`Namer::fresh`] never returns it.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// A unique block label for null propagation (`'n3`).
    pub fn label(&mut self) -> syn::Lifetime {
        self.counter += 1;
        syn::Lifetime::new(&format!("'n{}", self.counter), Span::call_site())
    }
}

/// `max_price_per_window` -> `MaxPricePerWindow`.
pub fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut cs = s.chars();
            match cs.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "break"
            | "const"
            | "continue"
            | "crate"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "self"
            | "Self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "async"
            | "await"
            | "dyn"
            | "abstract"
            | "become"
            | "box"
            | "do"
            | "final"
            | "macro"
            | "override"
            | "priv"
            | "typeof"
            | "unsized"
            | "virtual"
            | "yield"
            | "try"
            | "gen"
    )
}

/// A field name as a Rust identifier: raw (`r#type`) when it is a keyword.
pub fn field_ident(name: &str) -> Ident {
    // `p.name` (a joined stream's field) is stored as `p__name`.
    if name.contains('.') {
        return Ident::new(&name.replace('.', "__"), Span::call_site());
    }
    if matches!(name, "self" | "Self" | "super" | "crate") {
        Ident::new(&format!("{name}_"), Span::call_site())
    } else if is_keyword(name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}
