//! Avro records (feature `avro`): a Kafka message's body, plain or in the Confluent wire
//! format (a zero byte, the schema id as 4 big-endian bytes, then the body), or a record of
//! an object container file. The `apache-avro` crate decodes a body into its `Value`, whose
//! fields the generated decoder moves into the record (strings without copying); the
//! generated encoder builds a `Value` the crate writes. The schema is the one the compiler
//! checked against the pipeline's, embedded in the binary as JSON and parsed once at start.

use std::sync::Arc;

pub use apache_avro;
pub use apache_avro::types::Value;
use apache_avro::Schema;

use super::time::TimeRange;
use super::DecodeError;

/// An Avro schema parsed when the binary starts, with how messages carry its records.
#[derive(Clone, Debug)]
pub struct Avro {
    schema: Arc<Schema>,
    /// The Confluent schema id every message carries; `None`: plain Avro bodies.
    confluent_id: Option<u32>,
}

impl Avro {
    /// Parses the schema the compiler embedded; `what` names the source or sink in errors.
    pub fn new(what: &str, json: &str, confluent_id: Option<u32>) -> Result<Avro, String> {
        let schema =
            Schema::parse_str(json).map_err(|e| format!("{what}: the Avro schema: {e}"))?;
        Ok(Avro {
            schema: Arc::new(schema),
            confluent_id,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The record a message holds: its Confluent header checked (when the format has one),
    /// its body decoded with the schema to the last byte.
    pub fn read(&self, payload: &[u8]) -> Result<Value, DecodeError> {
        let mut body = match self.confluent_id {
            None => payload,
            Some(id) => confluent_body(payload, id)?,
        };
        let value = apache_avro::from_avro_datum(&self.schema, &mut body, None)
            .map_err(|e| DecodeError::new(format!("not an Avro record of the schema: {e}")))?;
        if !body.is_empty() {
            return Err(DecodeError::new(format!(
                "{} bytes after the Avro record",
                body.len()
            )));
        }
        Ok(value)
    }

    /// What a Kafka source calls per message: the body read, then moved into a new record by
    /// the generated `decode`.
    pub fn messages<T: Default>(
        &self,
        mut decode: impl FnMut(&mut Value, &mut T) -> Result<(), DecodeError>,
    ) -> impl FnMut(&[u8]) -> Result<T, DecodeError> {
        let avro = self.clone();
        move |payload| {
            let mut value = avro.read(payload)?;
            let mut record = T::default();
            decode(&mut value, &mut record)?;
            Ok(record)
        }
    }

    /// Appends the message of `value` (a record the generated encoder built) to `out`: the
    /// Confluent header if any, then the body.
    pub fn write(&self, value: Value, out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(id) = self.confluent_id {
            out.push(0);
            out.extend_from_slice(&id.to_be_bytes());
        }
        let body = apache_avro::to_avro_datum(&self.schema, value)
            .map_err(|e| format!("cannot write an Avro record: {e}"))?;
        out.extend_from_slice(&body);
        Ok(())
    }
}

/// The body of a message in the Confluent wire format with schema `id`.
fn confluent_body(payload: &[u8], id: u32) -> Result<&[u8], DecodeError> {
    match payload {
        [0, a, b, c, d, body @ ..] => {
            let found = u32::from_be_bytes([*a, *b, *c, *d]);
            if found == id {
                Ok(body)
            } else {
                Err(DecodeError::new(format!(
                    "Confluent schema id {found}, not {id} (the schema this source reads)"
                )))
            }
        }
        [magic, ..] if *magic != 0 => Err(DecodeError::new(format!(
            "magic byte {magic}, not 0: not in the Confluent wire format"
        ))),
        _ => Err(DecodeError::new(format!(
            "{} bytes, shorter than the Confluent header (5)",
            payload.len()
        ))),
    }
}

/// The fields of a decoded record, in the schema's order (`n` of them).
pub fn fields(value: &mut Value, n: usize) -> Result<&mut [(String, Value)], DecodeError> {
    match value {
        Value::Record(fields) if fields.len() == n => Ok(fields),
        _ => Err(DecodeError::new("not a record of the schema's fields")),
    }
}

/// The value of a field that may be null: `None` for null.
pub fn non_null(value: &mut Value) -> Option<&mut Value> {
    match value {
        Value::Null => None,
        Value::Union(_, inner) if matches!(**inner, Value::Null) => None,
        Value::Union(_, inner) => Some(inner),
        other => Some(other),
    }
}

/// The value of a field that is never null in the pipeline.
pub fn required(value: &mut Value) -> Result<&mut Value, DecodeError> {
    non_null(value).ok_or_else(|| DecodeError::new("null in a field that is not optional"))
}

fn unexpected(want: &str, found: &Value) -> DecodeError {
    DecodeError::new(format!("expected {want}, found {found:?}"))
}

pub fn read_i64(value: &mut Value) -> Result<i64, DecodeError> {
    match value {
        Value::Long(v) => Ok(*v),
        Value::Int(v) => Ok(i64::from(*v)),
        other => Err(unexpected("a long", other)),
    }
}

/// A finite double (or float): NaN and the infinities are errors, as they are in a CSV cell
/// or a JSON number, since a float in a record is finite (sinks write no other, and `max` of a
/// NaN would depend on the order of the rows).
pub fn read_f64(value: &mut Value) -> Result<f64, DecodeError> {
    let v = match value {
        Value::Double(v) => *v,
        Value::Float(v) => f64::from(*v),
        other => return Err(unexpected("a double", other)),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::new(format!("{v} is not a finite number")))
    }
}

pub fn read_bool(value: &mut Value) -> Result<bool, DecodeError> {
    match value {
        Value::Boolean(v) => Ok(*v),
        other => Err(unexpected("a boolean", other)),
    }
}

/// Moves a string (or an enum's symbol) into `into`.
pub fn read_string(value: &mut Value, into: &mut String) -> Result<(), DecodeError> {
    match value {
        Value::String(s) | Value::Enum(_, s) => {
            std::mem::swap(into, s);
            Ok(())
        }
        other => Err(unexpected("a string", other)),
    }
}

/// A timestamp in milliseconds (`timestamp-micros` rounded down), within the years 0000 to
/// 9999.
pub fn read_timestamp(value: &mut Value) -> Result<i64, DecodeError> {
    let ms = match value {
        Value::TimestampMillis(v) => *v,
        Value::TimestampMicros(v) => v.div_euclid(1000),
        other => return Err(unexpected("a timestamp", other)),
    };
    if TimeRange::TIMESTAMPS.contains(ms) {
        Ok(ms)
    } else {
        Err(DecodeError::new(format!(
            "timestamp {ms} ms is outside the years 0000 to 9999"
        )))
    }
}

/// A field's value in a union `["null", T]` (the branch positions the compiler read).
pub fn union(index: u32, value: Value) -> Value {
    Value::Union(index, Box::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"]}]}"#;

    #[test]
    fn confluent_messages_round_trip_and_wrong_headers_are_errors() {
        let avro = Avro::new("t", SCHEMA, Some(7)).unwrap();
        let mut out = Vec::new();
        let value = Value::Record(vec![
            ("id".into(), Value::Long(42)),
            ("name".into(), union(1, Value::String("x".into()))),
        ]);
        avro.write(value, &mut out).unwrap();
        assert_eq!(&out[..5], &[0, 0, 0, 0, 7]);
        let mut back = avro.read(&out).unwrap();
        let f = fields(&mut back, 2).unwrap();
        assert_eq!(read_i64(&mut f[0].1), Ok(42));
        let mut s = String::new();
        read_string(non_null(&mut f[1].1).unwrap(), &mut s).unwrap();
        assert_eq!(s, "x");

        let mut other_id = out.clone();
        other_id[4] = 8;
        assert!(avro
            .read(&other_id)
            .unwrap_err()
            .message
            .contains("schema id 8"));
        let mut magic = out.clone();
        magic[0] = 1;
        assert!(avro
            .read(&magic)
            .unwrap_err()
            .message
            .contains("magic byte 1"));
        assert!(avro.read(&out[..3]).is_err());
        let mut trailing = out.clone();
        trailing.push(0);
        assert!(avro
            .read(&trailing)
            .unwrap_err()
            .message
            .contains("after the Avro record"));
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics_or_huge_allocations() {
        let avro = Avro::new("t", SCHEMA, None).unwrap();
        // id 1, then the union's branch 1 (a string) whose length claims about 2^62 bytes.
        let huge = [
            0x02, 0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(avro.read(&huge).is_err());
        // A union branch that does not exist, a varint that never ends, nothing at all.
        assert!(avro.read(&[0x02, 0x08]).is_err());
        assert!(avro.read(&[0xff; 12]).is_err());
        assert!(avro.read(&[]).is_err());
    }
}
