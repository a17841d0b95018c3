//! Every code of the compiler's diagnostics, in one table: what each means, in the words a
//! user sees. The parser's codes (`E00xx`) live in `weir_dsl`'s parser module, by the same rule.
//!
//! A diagnostic's code is stable: tests, docs and users' scripts refer to it. A new kind of
//! error gets a new row here and a case in `tests/cases/errors/` (`// expect: E....`); the
//! diagnostics tests check that every code written in the compiler's source is in this table,
//! that every row has a case (or names the test that covers it), and that `docs/errors.md`
//! lists them all.

/// One diagnostic code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// `E0325`.
    pub code: &'static str,
    /// What it means, as the message says it (with examples in backticks).
    pub meaning: &'static str,
    /// For a code that no `.weir` file alone can give (an error in a Rust file beside the
    /// pipeline): the test that covers it. `None`: a case in `tests/cases/errors/` does.
    pub tested_by: Option<&'static str>,
}

const fn case(code: &'static str, meaning: &'static str) -> Code {
    Code {
        code,
        meaning,
        tested_by: None,
    }
}

/// Every code, errors ascending, then warnings (`W....`). By hundreds: `E01xx` names and declarations, `E02xx` expressions,
/// `E03xx` sources, sinks and their arguments, `E04xx` steps (windows, aggregates, joins,
/// ranking), `E05xx` the pipeline as a whole, `E06xx` Rust functions called from a pipeline.
pub const CODES: &[Code] = &[
    case("E0101", "a name is defined twice (`bids` is defined twice)"),
    case("E0102", "a schema declares a field twice"),
    case("E0103", "a field type records cannot hold (`duration`)"),
    case("E0104", "unknown schema"),
    case("E0105", "a schema given to a source whose schema is fixed (`nexmark`)"),
    case("E0106", "a source that needs a schema has none"),
    case("E0107", "unknown stream"),
    case("E0108", "a name weir cannot use for a field (`a__b`)"),
    case("E0201", "unknown field"),
    case("E0202", "an operator applied to the wrong type (`not` needs a bool)"),
    case("E0203", "a `when` condition that is not a bool"),
    case("E0204", "a cast between types that do not convert (`bool` to `timestamp`)"),
    case("E0205", "mismatched types (a `case` or `coalesce` mixing them)"),
    case("E0206", "`null` whose type cannot be told"),
    case("E0207", "a comparison or arithmetic between incompatible types"),
    case("E0208", "an aggregate function outside `aggregate`"),
    case("E0209", "a function called with the wrong number of arguments"),
    case("E0210", "unknown function"),
    case("E0211", "a function argument of the wrong type"),
    case("E0212", "an argument that must be a literal is not (`extract`'s unit, a pattern)"),
    case("E0213", "a literal argument that is not valid (`count_char` of two characters, a bad regex or date pattern)"),
    case("E0214", "a constant expression that overflows `i64`"),
    case("E0216", "`distinct` on an aggregate that cannot take it"),
    case("E0217", "`filter (where ...)` on something that is not an aggregate"),
    case("E0218", "a field access (`x.name`) on a value that is not a nested record"),
    case("E0219", "an index (`x[1]`) or an array function on a value that is not an array"),
    case("E0221", "a nested record or array where only a scalar goes (a comparison, a `case` result, a key, a cast)"),
    case("E0222", "`unnest` of a value that is not an array"),
    case("E0301", "a connector has no such parameter"),
    case("E0302", "too many arguments to a connector"),
    case("E0303", "a parameter given twice"),
    case("E0304", "a parameter that must be a literal value is not"),
    case("E0305", "a parameter of the wrong type (`header` must be true or false)"),
    case("E0306", "a parameter out of its range (`rate`)"),
    case("E0307", "a required parameter is missing (`kafka` needs `topic`)"),
    case("E0308", "unknown format, or a format where it cannot go (`parquet` on a source, `avro` on stdin, stdout or keyed rows, `confluent_id` on a file)"),
    case("E0309", "unknown nexmark stream"),
    case("E0310", "unknown source connector"),
    case("E0311", "a format given to a source or sink that has none (nexmark, checksum, postgres)"),
    case("E0312", "an event time that is not a non-null timestamp"),
    case("E0313", "a watermark delay that is not a duration"),
    case("E0314", "unknown sink connector"),
    case("E0315", "a Kafka property not of the form `key=value`"),
    case("E0316", "unknown Kafka start position"),
    case("E0317", "a Kafka sink keyed by a field the stream does not have"),
    case("E0318", "a Kafka sink of an updating stream keyed by another field than its upsert key"),
    case("E0319", "a CSV header with a Kafka topic (a message holds one row)"),
    case("E0320", "an invalid Kafka topic name"),
    case("E0321", "unknown delivery guarantee"),
    case("E0322", "more than one exactly-once sink (Kafka or PostgreSQL)"),
    case("E0323", "a watermark or duration beyond the bounds weir allows"),
    case("E0324", "an `event_time_range` that is not two dates, or without event time"),
    case("E0325", "a `timestamps:` form the source or sink does not take (a name or a date pattern)"),
    case("E0326", "an `upsert_key` of a Kafka source that is not fields of the schema that are never null (or a source with event time)"),
    case("E0327", "a PostgreSQL table name weir does not write to (letters, digits and `_`, optionally `schema.table`)"),
    case("E0328", "an Avro schema that does not fit the pipeline's: a field missing, of another type, or null where the pipeline's is not"),
    case("E0329", "an Avro schema that cannot be read: a `.avsc` file missing, not valid Avro, or not a record"),
    case("E0330", "two outputs with one path: two sinks, a sink and a source's input, or a sink and a dead-letter file"),
    case("E0401", "a step where it cannot be (`window` without `aggregate` after it)"),
    case("E0402", "a filter condition that is not a bool"),
    case("E0403", "an output field named twice"),
    case("E0404", "a duration as a field of a record"),
    case("E0405", "keys given twice (`key_by` and `aggregate by`)"),
    case("E0407", "an event-time option (a join's `ttl`) on a stream without event time"),
    case("E0408", "a step that needs an `aggregate` after it"),
    case("E0409", "a key of a type that cannot be a key (`f64`)"),
    case("E0411", "unknown window"),
    case("E0412", "`*` in an aggregate"),
    case("E0413", "an aggregate item that is not one aggregate call"),
    case("E0414", "a function that is not an aggregate where one is needed"),
    case("E0415", "an aggregate of a type it cannot take (`sum` of strings)"),
    case("E0417", "a window that is not well formed (a hop's size not a multiple of its slide)"),
    case("E0418", "unknown window `time:` (event or processing)"),
    case("E0420", "a lookup join whose table is not a file or postgres source, or a postgres source read as a stream"),
    case("E0421", "join keys that can be null or are `f64`"),
    case("E0422", "a join without an equality between the two streams"),
    case("E0423", "an interval join's `within` that is not two ordered durations"),
    case("E0424", "an option of another kind of join"),
    case("E0425", "an interval or window join without its bounds or window"),
    case("E0427", "a join alias already taken by an earlier join"),
    case("E0428", "a source read again every so often (`refresh:`) used as a stream; it is a lookup join's table"),
    case("E0430", "an updating stream where only an append stream can go (a join)"),
    case("E0431", "a `select` that drops a key of an updating stream"),
    case("E0432", "a `top` count out of range"),
    case("E0433", "a file sink's `partition_by`, `parts`, `roll_size` or `roll_interval` that cannot be: a missing field, an updating stream, both at once, rolling without Parquet"),
    case("E0434", "an aggregate over an updating stream that cannot take rows back (`first_value`, min/max of `f64`)"),
    case("E0445", "an option `top`, `dedup` or `aggregate` does not take"),
    case("E0446", "a `dedup`, `top` or `aggregate` `ttl` in event time on a stream without event time"),
    case("E0447", "a `ttl` whose `time:` is neither `event` nor `processing`"),
    case("E0448", "a `ttl` on a step whose state is already bounded (a windowed aggregate)"),
    case("E0449", "a nested field where the format or connector cannot hold it (CSV, Avro, Parquet, PostgreSQL, a Kafka key)"),
    case("E0501", "a file with no `sink`: nothing to run"),
    Code {
        code: "E9999",
        meaning: "an internal error: the optimized graph failed its validation (a bug in weir; please report it with the pipeline)",
        tested_by: Some("none: no pipeline should give it; the validator's own tests are in compiler/src/ir/validate.rs"),
    },
    Code {
        code: "W0001",
        meaning: "a warning: a stream that is defined but never used",
        tested_by: Some("compiler/tests/diagnostics.rs: unused_streams_are_warned_about"),
    },
    Code {
        code: "E0601",
        meaning: "a Rust function file beside the pipeline does not compile (rustc's error, at the user's file and line)",
        tested_by: Some("tests/tests/rust_functions.rs: a_type_error_in_a_rust_function_points_at_its_line"),
    },
    Code {
        code: "E0602",
        meaning: "a Rust function does not fit the way the pipeline calls it",
        tested_by: Some("tests/tests/rust_functions.rs: a_function_that_does_not_fit_its_call_points_at_both"),
    },
    Code {
        code: "E0603",
        meaning: "a Rust function file that cannot be read or parsed",
        tested_by: Some("tests/tests/rust_functions.rs: syntax_errors_and_unsupported_types_point_at_the_rust_file"),
    },
];

/// The row of `code`, if it is one of the compiler's.
pub fn lookup(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == code)
}
