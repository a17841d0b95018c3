//! weir's value types and record schemas, as the checker and code generator see them.

use std::fmt;

/// A value type. Timestamps are milliseconds since the epoch; durations are milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    I64,
    F64,
    Bool,
    String,
    Timestamp,
    Duration,
    /// The type of a bare `null` literal before context gives it one.
    Null,
}

impl Type {
    /// The type a schema or cast names, if it is one.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "i64" => Type::I64,
            "f64" => Type::F64,
            "bool" => Type::Bool,
            "string" => Type::String,
            "timestamp" => Type::Timestamp,
            "duration" => Type::Duration,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 6] = ["i64", "f64", "bool", "string", "timestamp", "duration"];

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::I64 | Type::F64)
    }

    pub fn name(self) -> &'static str {
        match self {
            Type::I64 => "i64",
            Type::F64 => "f64",
            Type::Bool => "bool",
            Type::String => "string",
            Type::Timestamp => "timestamp",
            Type::Duration => "duration",
            Type::Null => "null",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub nullable: bool,
}

impl Field {
    pub fn new(name: &str, ty: Type) -> Field {
        Field {
            name: name.to_string(),
            ty,
            nullable: false,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}{}",
            self.name,
            self.ty,
            if self.nullable { "?" } else { "" }
        )
    }
}

/// The ordered fields of a record type.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ ")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{field}")?;
        }
        f.write_str(" }")
    }
}

/// The type of a stream: its record schema and which field, if any, carries event time.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StreamType {
    pub schema: Schema,
    /// Index of the event-time field (a `timestamp`), kept through filters and selects that
    /// copy it unchanged.
    pub time_field: Option<usize>,
    /// Set when the stream revises earlier rows (a changelog of upserts by key).
    pub updating: Option<Updating>,
    /// Set when the event-time field is the `window_end` of an event-time window: all rows of
    /// one window arrive before the watermark passes its end, so a key that names the window
    /// is complete then (a `top`, `dedup` or `aggregate by` keyed by it emits final rows).
    pub window: Option<WindowFields>,
}

/// The fields that name a window, besides the event-time field (its end).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowFields {
    /// Index of the window's start, when the start alone names one window (tumble and hop;
    /// not cumulate, whose windows share a start, nor session, whose ends vary per key).
    pub start: Option<usize>,
}

impl StreamType {
    /// When `keys` name a window of this append stream (its end, or a start that names one
    /// window): the event-time field whose value closes each key's group.
    pub fn closing_field(&self, keys: &[String]) -> Option<String> {
        if self.updating.is_some() {
            return None;
        }
        let (time, window) = (self.time_field?, self.window.as_ref()?);
        let name = |i: usize| &self.schema.fields[i].name;
        keys.iter()
            .any(|k| k == name(time) || window.start.is_some_and(|s| k == name(s)))
            .then(|| name(time).clone())
    }
}

/// What makes a stream updating, for its sinks and for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Updating {
    /// The upsert key: a later row with the same key replaces an earlier one.
    pub key: Vec<String>,
    /// The operator that made the stream updating (`aggregate`, `dedup`, `top`).
    pub operator: &'static str,
    pub span: weir_dsl::Span,
}
