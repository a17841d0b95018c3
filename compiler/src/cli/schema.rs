//! `weir schema infer FILE`: a `schema` declaration guessed from the first lines of a JSON-lines
//! or CSV file, to paste into a pipeline and correct by hand.
//!
//! Each field gets the narrowest type every sampled value fits: `bool`, `i64`, `f64` (integers
//! and decimals mixed), `timestamp` (text in a form a source reads by default, such as
//! `2023-11-14 22:13:20` or `2023-11-14T22:13:20Z`), else `string`. A field that is null,
//! missing from a JSON line or an empty CSV cell in any sampled line is optional (`i64?`).
//! Nested JSON objects and arrays are not supported yet: such a field is left out with a
//! comment (a source skips members its schema does not name). Field names the language
//! cannot take (`user-id`, a reserved word) are left out the same way. JSON lines are parsed
//! with serde_json, CSV with the `csv` crate; the emitted text is checked with weir's parser.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What the sampled values of one field allow.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// Null, missing, or an empty CSV cell at least once.
    nullable: bool,
    bools: usize,
    integers: usize,
    decimals: usize,
    /// Strings that look like timestamps, and the other strings.
    timestamps: usize,
    strings: usize,
    /// A nested object or array at least once.
    nested: bool,
}

impl Seen {
    fn text(&mut self, s: &str) {
        if looks_like_timestamp(s) {
            self.timestamps += 1;
        } else {
            self.strings += 1;
        }
    }

    /// The field's type, or why it has none.
    fn ty(&self) -> std::result::Result<&'static str, &'static str> {
        if self.nested {
            return Err("a nested object or array (nested JSON is not supported yet)");
        }
        let kinds = [
            self.bools,
            self.integers + self.decimals,
            self.timestamps + self.strings,
        ]
        .iter()
        .filter(|n| **n > 0)
        .count();
        Ok(match kinds {
            0 => "string",
            1 if self.bools > 0 => "bool",
            1 if self.decimals > 0 => "f64",
            1 if self.integers > 0 => "i64",
            1 if self.strings == 0 => "timestamp",
            // Values of different kinds: text holds them all.
            _ => "string",
        })
    }
}

/// `yyyy-MM-dd`, optionally with a time (`T` or a space), a fraction and `Z` or an offset: the
/// text forms a source reads by default (field ranges are checked when the pipeline reads).
fn looks_like_timestamp(s: &str) -> bool {
    static FORM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^\d{4}-\d{2}-\d{2}([ Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?)?$",
        )
        .expect("a valid regular expression")
    });
    FORM.is_match(s)
}

/// The fields in the order they first appear.
#[derive(Default)]
struct Fields {
    order: Vec<String>,
    seen: BTreeMap<String, Seen>,
}

impl Fields {
    fn get(&mut self, name: &str) -> &mut Seen {
        if !self.seen.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.seen.entry(name.to_string()).or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InferFormat {
    Json,
    Csv,
}

/// The schema of `path`'s first `lines` lines, as weir text (`schema Name { ... }`).
pub fn infer(
    path: &Path,
    format: Option<InferFormat>,
    delimiter: u8,
    lines: usize,
) -> Result<String> {
    let format = match format {
        Some(f) => f,
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("csv" | "tsv") => InferFormat::Csv,
            Some("json" | "jsonl" | "ndjson") => InferFormat::Json,
            _ => bail!(
                "cannot tell the format of {} from its name: say --format json or --format csv",
                path.display()
            ),
        },
    };
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = std::io::BufReader::new(file);
    let (fields, sampled) = match format {
        InferFormat::Json => json_fields(reader, lines, path)?,
        InferFormat::Csv => csv_fields(reader, delimiter, lines, path)?,
    };
    if fields.order.is_empty() {
        bail!(
            "{} has no fields in its first {lines} lines",
            path.display()
        );
    }
    Ok(render(&schema_name(path), &fields, sampled, path))
}

/// A JSON object's members in the order they are written.
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn json_fields(reader: impl BufRead, limit: usize, path: &Path) -> Result<(Fields, usize)> {
    let mut fields = Fields::default();
    let mut sampled = 0;
    for (i, line) in reader.lines().enumerate() {
        if sampled == limit {
            break;
        }
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Members(members) = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: not a JSON object on one line",
                path.display(),
                i + 1
            )
        })?;
        // A field missing from this line is optional.
        for name in &fields.order {
            if !members.iter().any(|(n, _)| n == name) {
                fields.seen.get_mut(name).expect("a known field").nullable = true;
            }
        }
        let first = sampled == 0;
        for (name, value) in &members {
            let known = fields.seen.contains_key(name);
            let seen = fields.get(name);
            // Missing from the lines before this one.
            seen.nullable |= !first && !known;
            match value {
                Value::Null => seen.nullable = true,
                Value::Bool(_) => seen.bools += 1,
                Value::Number(n) if n.is_i64() => seen.integers += 1,
                Value::Number(_) => seen.decimals += 1,
                Value::String(s) => seen.text(s),
                Value::Array(_) | Value::Object(_) => seen.nested = true,
            }
        }
        sampled += 1;
    }
    Ok((fields, sampled))
}

fn csv_fields(
    reader: impl std::io::Read,
    delimiter: u8,
    limit: usize,
    path: &Path,
) -> Result<(Fields, usize)> {
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .with_context(|| format!("cannot read the header of {}", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut fields = Fields::default();
    for name in &header {
        fields.get(name);
    }
    let mut sampled = 0;
    let mut record = csv::StringRecord::new();
    while sampled < limit
        && csv
            .read_record(&mut record)
            .with_context(|| format!("cannot read {}", path.display()))?
    {
        for (i, name) in header.iter().enumerate() {
            let seen = fields.seen.get_mut(name).expect("a header field");
            match record.get(i) {
                // An empty cell is null, as a source reads it (a quoted one would be "", but
                // the csv crate does not tell them apart: optional either way).
                None | Some("") => seen.nullable = true,
                Some("true" | "false") => seen.bools += 1,
                Some(s) if s.parse::<i64>().is_ok() => seen.integers += 1,
                Some(s) if s.parse::<f64>().is_ok_and(f64::is_finite) => seen.decimals += 1,
                Some(s) => seen.text(s),
            }
        }
        sampled += 1;
    }
    Ok((fields, sampled))
}

/// `clicks-2024.jsonl` -> `Clicks2024`: the file stem in upper camel case.
fn schema_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut name = String::new();
    for word in stem.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "Row");
    }
    name
}

/// Whether the language takes `name` as a field name: the parser says.
fn valid_field(name: &str) -> bool {
    let text = format!("schema S {{ {name}: i64 }}\n");
    let (module, diagnostics) = weir_dsl::parse(weir_dsl::FileId(0), &text);
    module.is_some() && diagnostics.is_empty()
}

fn render(name: &str, fields: &Fields, sampled: usize, path: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// inferred from {sampled} line(s) of {}: check the types before use",
        path.display()
    );
    let _ = writeln!(out, "schema {name} {{");
    for field in &fields.order {
        let seen = &fields.seen[field];
        match seen.ty() {
            Err(why) => {
                let _ = writeln!(out, "    // left out: `{field}` is {why}");
            }
            Ok(_) if !valid_field(field) => {
                let _ = writeln!(
                    out,
                    "    // left out: `{field}` cannot be a field name in weir"
                );
            }
            Ok(ty) => {
                let optional = if seen.nullable { "?" } else { "" };
                let _ = writeln!(out, "    {field}: {ty}{optional},");
            }
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_recognized_by_form() {
        for yes in [
            "2023-11-14",
            "2023-11-14 22:13:20",
            "2023-11-14T22:13:20.123Z",
            "2023-11-14 22:13:20+02:00",
        ] {
            assert!(looks_like_timestamp(yes), "{yes}");
        }
        for no in [
            "2023-11-14 22:13",
            "14/11/2023",
            "1700000000000",
            "2023-11-14x",
        ] {
            assert!(!looks_like_timestamp(no), "{no}");
        }
    }

    #[test]
    fn schema_names_come_from_the_file() {
        assert_eq!(schema_name(Path::new("a/clicks-2024.jsonl")), "Clicks2024");
        assert_eq!(schema_name(Path::new("2024.csv")), "Row2024");
        assert!(valid_field("user_id"));
        assert!(!valid_field("user-id"));
        assert!(!valid_field("end"));
    }
}
