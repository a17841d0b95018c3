//! A PostgreSQL table or query read when the pipeline starts, as the table of a lookup join
//! (`source rates: Rate = postgres(url: "...", table: "rates")`), on the `postgres` crate.
//!
//! Columns are read by position, in the schema's order; each is converted to its field's type
//! by [`Column`]: integers from `SMALLINT`, `INTEGER` or `BIGINT`, floats from `REAL` or
//! `DOUBLE PRECISION`, booleans, text from `TEXT`, `VARCHAR` or `CHAR`, timestamps from
//! `TIMESTAMPTZ` or `TIMESTAMP` (read as UTC). A column of another type stops the start with
//! the difference; a row with a NULL in a field that is not optional is a dead letter (with its
//! row number and the reason), and the others are read.

use std::time::{SystemTime, UNIX_EPOCH};

use postgres::types::Type;
use postgres::{Client, NoTls, Row};

use crate::dead_letter::DeadLetters;

/// Reads a row's columns by position, as the generated `from_row` asks for them.
pub struct Columns<'a> {
    row: &'a Row,
}

impl Columns<'_> {
    fn null(&self, i: usize) -> String {
        format!(
            "column {} (`{}`) is null",
            i + 1,
            self.row.columns()[i].name()
        )
    }

    /// An integer column; `None` for NULL.
    pub fn i64(&self, i: usize) -> Result<Option<i64>, String> {
        let ty = self.row.columns()[i].type_();
        let v: Result<Option<i64>, postgres::Error> = match *ty {
            Type::INT8 => self.row.try_get(i),
            Type::INT4 => self
                .row
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map(i64::from)),
            Type::INT2 => self
                .row
                .try_get::<_, Option<i16>>(i)
                .map(|v| v.map(i64::from)),
            _ => return Err(self.mismatch(i, "an integer")),
        };
        v.map_err(|e| e.to_string())
    }

    /// A floating-point column.
    pub fn f64(&self, i: usize) -> Result<Option<f64>, String> {
        let ty = self.row.columns()[i].type_();
        let v: Result<Option<f64>, postgres::Error> = match *ty {
            Type::FLOAT8 => self.row.try_get(i),
            Type::FLOAT4 => self
                .row
                .try_get::<_, Option<f32>>(i)
                .map(|v| v.map(f64::from)),
            _ => return Err(self.mismatch(i, "a float")),
        };
        v.map_err(|e| e.to_string())
    }

    pub fn bool(&self, i: usize) -> Result<Option<bool>, String> {
        match *self.row.columns()[i].type_() {
            Type::BOOL => self.row.try_get(i).map_err(|e| e.to_string()),
            _ => Err(self.mismatch(i, "a boolean")),
        }
    }

    pub fn text(&self, i: usize) -> Result<Option<String>, String> {
        match *self.row.columns()[i].type_() {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                self.row.try_get(i).map_err(|e| e.to_string())
            }
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// A timestamp column, in ms since the epoch.
    pub fn timestamp(&self, i: usize) -> Result<Option<i64>, String> {
        match *self.row.columns()[i].type_() {
            Type::TIMESTAMPTZ | Type::TIMESTAMP => {
                let v: Option<SystemTime> = self.row.try_get(i).map_err(|e| e.to_string())?;
                Ok(v.map(|t| match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => d.as_millis() as i64,
                    Err(e) => -(e.duration().as_millis() as i64),
                }))
            }
            _ => Err(self.mismatch(i, "a timestamp")),
        }
    }

    /// A field that is not optional: its NULL is an error (the row a dead letter).
    pub fn required<T>(&self, i: usize, v: Result<Option<T>, String>) -> Result<T, String> {
        v?.ok_or_else(|| self.null(i))
    }

    /// (Marks a column whose type cannot be the field's: reported once, at start.)
    fn mismatch(&self, i: usize, wanted: &str) -> String {
        format!(
            "{}column {} (`{}`) is {}, the field wants {wanted}",
            MISMATCH,
            i + 1,
            self.row.columns()[i].name(),
            self.row.columns()[i].type_()
        )
    }
}

/// Starts an error that is about the query's columns, not a row.
const MISMATCH: &str = "\u{1}";

/// Reads every row of `query` (source `name`) with `from_row`: the rows that convert, in the
/// order PostgreSQL returns them; the others are dead letters. A connection or query that
/// fails, or a column of a type the field cannot take, stops the start.
pub fn read_table<T>(
    name: &str,
    url: &str,
    query: &str,
    fields: usize,
    dead_letters: &DeadLetters,
    from_row: impl Fn(&Columns<'_>) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut client = Client::connect(url, NoTls)
        .map_err(|e| format!("table `{name}`: postgres: cannot connect: {}", describe(&e)))?;
    let failed =
        |e: postgres::Error| format!("table `{name}`: postgres: {query}: {}", describe(&e));
    let statement = client.prepare(query).map_err(failed)?;
    let columns = statement.columns().len();
    if columns != fields {
        return Err(format!(
            "table `{name}`: postgres: {query}: {columns} column(s), the schema has {fields} field(s)"
        ));
    }
    let rows = client.query(&statement, &[]).map_err(failed)?;
    let mut out = Vec::with_capacity(rows.len());
    for (n, row) in rows.iter().enumerate() {
        match from_row(&Columns { row }) {
            Ok(record) => out.push(record),
            Err(e) if e.starts_with(MISMATCH) => {
                return Err(format!(
                    "table `{name}`: postgres: {}",
                    &e[MISMATCH.len()..]
                ))
            }
            Err(e) => dead_letters.write(name, n as u64 + 1, &format!("row {}: {e}", n + 1), ""),
        }
    }
    Ok(out)
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}
