//! weir's value types and record schemas, as the checker and code generator see them.

use std::fmt;

/// A value type. Timestamps are milliseconds since the epoch; durations are milliseconds.
///
/// Nested types (`{ id: i64 }`, `[string]`) are interned: each distinct structure is stored
/// once for the life of the process ([`Type::record`], [`Type::array`]), so `Type` stays
/// `Copy` and compares, hashes and orders by structure.
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
    /// A nested record: `{ id: i64, name: string? }`.
    Record(&'static RecordType),
    /// An array: `[string]`, `[{ sku: string }]`, `[i64?]`.
    Array(&'static ArrayType),
}

/// The fields of a nested record type, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType {
    pub fields: Vec<Field>,
}

impl RecordType {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The element type of an array type, and whether elements may be null.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArrayType {
    pub element: Type,
    pub nullable: bool,
}

/// The interned nested types. They leak by design: a compilation names a handful, and the
/// same structure is stored once however often it is named.
static RECORDS: std::sync::Mutex<std::collections::BTreeSet<&'static RecordType>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());
static ARRAYS: std::sync::Mutex<std::collections::BTreeSet<&'static ArrayType>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn intern<T: Ord + 'static>(
    set: &std::sync::Mutex<std::collections::BTreeSet<&'static T>>,
    value: T,
) -> &'static T {
    let mut set = set.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = set.get(&value) {
        return known;
    }
    let stored: &'static T = Box::leak(Box::new(value));
    set.insert(stored);
    stored
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

    /// The nested record type of these fields.
    pub fn record(fields: Vec<Field>) -> Type {
        Type::Record(intern(&RECORDS, RecordType { fields }))
    }

    /// The array type of `element` (`nullable`: elements may be null).
    pub fn array(element: Type, nullable: bool) -> Type {
        Type::Array(intern(&ARRAYS, ArrayType { element, nullable }))
    }

    /// Whether this is a record or an array type.
    pub fn is_nested(self) -> bool {
        matches!(self, Type::Record(_) | Type::Array(_))
    }

    pub const NAMES: [&'static str; 6] = ["i64", "f64", "bool", "string", "timestamp", "duration"];

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::I64 | Type::F64)
    }

    /// The name of a scalar type; `record` and `array` for nested ones (whose full text is
    /// their `Display`).
    pub fn name(self) -> &'static str {
        match self {
            Type::Record(_) => "record",
            Type::Array(_) => "array",
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
        match self {
            Type::Record(record) => {
                f.write_str("{ ")?;
                for (i, field) in record.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                f.write_str(" }")
            }
            Type::Array(array) => {
                let opt = if array.nullable { "?" } else { "" };
                write!(f, "[{}{opt}]", array.element)
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// One field of a record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
