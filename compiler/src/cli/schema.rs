//! `weir schema infer FILE`: a `schema` declaration guessed from the first lines of a JSON-lines
//! or CSV file, to paste into a pipeline and correct by hand.
//!
//! Each field gets the narrowest type every sampled value fits: `bool`, `i64`, `f64` (integers
//! and decimals mixed), `timestamp` (text in a form a source reads by default, such as
//! `2023-11-14 22:13:20` or `2023-11-14T22:13:20Z`), else `string`. A field that is null,
//! missing from a JSON line or an empty CSV cell in any sampled line is optional (`i64?`).
//! A JSON object is a nested record (`{ id: i64, name: string? }`, its members inferred the
//! same way, in alphabetical order: serde_json's map sorts them), an array an array of its
//! elements' type (`[string]`, `[{ sku: string }]`; `[i64?]` when an element is null; `[string]`
//! when every sampled array is empty). A field whose values mix objects or arrays with other
//! kinds, or an object that is always empty, is left out with a comment (a source skips
//! members its schema does not name). Field names the language cannot take (`user-id`, a
//! reserved word) are left out the same way. JSON lines are parsed
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
    /// The members of the objects seen, when the value was an object.
    object: Option<Box<Fields>>,
    /// The elements of the arrays seen, when the value was an array.
    array: Option<Box<Seen>>,
}

impl Seen {
    fn text(&mut self, s: &str) {
        if looks_like_timestamp(s) {
            self.timestamps += 1;
        } else {
            self.strings += 1;
        }
    }

    /// One JSON value of the field.
    fn observe(&mut self, value: &Value) {
        match value {
            Value::Null => self.nullable = true,
            Value::Bool(_) => self.bools += 1,
            Value::Number(n) if n.is_i64() => self.integers += 1,
            Value::Number(_) => self.decimals += 1,
            Value::String(s) => self.text(s),
            Value::Object(map) => {
                let members: Vec<(String, Value)> =
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.object
                    .get_or_insert_with(Default::default)
                    .observe(&members);
            }
            Value::Array(items) => {
                let element = self.array.get_or_insert_with(Default::default);
                items.iter().for_each(|item| element.observe(item));
            }
        }
    }

    /// The field's type, or why it has none.
    fn ty(&self) -> std::result::Result<String, &'static str> {
        let scalars = [
            self.bools,
            self.integers + self.decimals,
            self.timestamps + self.strings,
        ]
        .iter()
        .filter(|n| **n > 0)
        .count();
        let nested = usize::from(self.object.is_some()) + usize::from(self.array.is_some());
        if nested > 0 && scalars + nested > 1 {
            return Err("objects or arrays in some lines, other values in others");
        }
        if let Some(fields) = &self.object {
            let members: Vec<String> = fields
                .order
                .iter()
                .filter(|name| valid_field(name))
                .filter_map(|name| {
                    let seen = &fields.seen[name];
                    let optional = if seen.nullable { "?" } else { "" };
                    seen.ty().ok().map(|ty| format!("{name}: {ty}{optional}"))
                })
                .collect();
            if members.is_empty() {
                return Err("an object without members weir can declare");
            }
            return Ok(format!("{{ {} }}", members.join(", ")));
        }
        if let Some(element) = &self.array {
            let ty = element.ty()?;
            let optional = if element.nullable { "?" } else { "" };
            return Ok(format!("[{ty}{optional}]"));
        }
        Ok(match scalars {
            0 => "string",
            1 if self.bools > 0 => "bool",
            1 if self.decimals > 0 => "f64",
            1 if self.integers > 0 => "i64",
            1 if self.strings == 0 => "timestamp",
            // Values of different kinds: text holds them all.
            _ => "string",
        }
        .to_string())
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
#[derive(Clone, Debug, Default)]
struct Fields {
    order: Vec<String>,
    seen: BTreeMap<String, Seen>,
    /// Objects observed.
    objects: usize,
}

impl Fields {
    /// One object's members: a field missing from it, or missing from the objects before
    /// it, is optional.
    fn observe(&mut self, members: &[(String, Value)]) {
        for name in &self.order {
            if !members.iter().any(|(n, _)| n == name) {
                self.seen.get_mut(name).expect("a known field").nullable = true;
            }
        }
        let first = self.objects == 0;
        for (name, value) in members {
            let known = self.seen.contains_key(name);
            let seen = self.get(name);
            seen.nullable |= !first && !known;
            seen.observe(value);
        }
        self.objects += 1;
    }

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
        // A field missing from this line, or from the lines before it, is optional.
        fields.observe(&members);
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
    fn nested_objects_and_arrays_are_inferred() {
        let mut fields = Fields::default();
        for line in [
            r#"{"p":{"u":{"id":1},"n":"x"},"tags":["a"],"xs":[1,null],"e":[],"m":{"a":1}}"#,
            r#"{"p":{"u":{"id":2.5}},"tags":[],"xs":[2],"e":[],"m":3}"#,
        ] {
            let Members(members) = serde_json::from_str(line).unwrap();
            fields.observe(&members);
        }
        let ty = |name: &str| fields.seen[name].ty();
        assert_eq!(ty("p").unwrap(), "{ n: string?, u: { id: f64 } }");
        assert_eq!(ty("tags").unwrap(), "[string]");
        assert_eq!(ty("xs").unwrap(), "[i64?]");
        assert_eq!(ty("e").unwrap(), "[string]");
        assert!(ty("m").is_err());
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
