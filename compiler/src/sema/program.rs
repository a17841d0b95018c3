//! The checked program: what `sema` hands to graph construction. Every name is resolved and
//! every expression typed; nothing here can fail to lower.

use weir_dsl::Span;

use super::expr::TExpr;
use super::functions::AggFunc;
use super::nexmark::NexmarkStream;
use super::types::{StreamType, Type};

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    pub sources: Vec<SourceDef>,
    /// Named `let` streams and the anonymous streams of sink pipes, in file order.
    pub streams: Vec<StreamDef>,
    pub sinks: Vec<SinkDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceDef {
    pub name: String,
    pub span: Span,
    pub kind: SourceKind,
    /// The declared record type (for Nexmark, the stream's fixed schema).
    pub ty: StreamType,
    /// Bounded out-of-orderness in ms, when the source declares event time.
    pub watermark_ms: Option<i64>,
    /// The accepted event times `[start, end)` in ms (`event_time_range: "1850-01-01 ..
    /// 2200-01-01"`); `None`: the runtime's default, 1900-01-01 .. 2200-01-01. A record whose
    /// event time is outside is a dead letter.
    pub event_time_range: Option<(i64, i64)>,
    /// Where malformed records go (`dead_letters: "path"`), else the run's default.
    pub dead_letters: Option<String>,
    /// `refresh: 30s` of a file or postgres source: the table of a lookup join, read again
    /// that often (ms). Such a source is a table only, never a stream.
    pub refresh_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    Nexmark {
        stream: NexmarkStream,
        params: NexmarkParams,
    },
    File {
        path: String,
        format: Format,
        /// Readers of the file (`parallelism:`); `None`: the job's `--parallelism`.
        parallelism: Option<u32>,
    },
    Stdin {
        format: Format,
    },
    /// `file(path) format parquet`: a Parquet file, or every `.parquet` file under a folder
    /// (Hive folders give the values of fields the files do not hold).
    Parquet {
        path: String,
        /// Readers (`parallelism:`); `None`: the job's `--parallelism`.
        parallelism: Option<u32>,
    },
    Kafka(KafkaSource),
    /// A PostgreSQL table or query, read when the pipeline starts: the table of a
    /// `lookup_join` (not a stream, yet).
    Postgres {
        /// `postgresql://user:password@host:port/database`.
        url: String,
        /// The query whose rows are read, columns in the schema's order: the one given, or
        /// `SELECT <fields> FROM <table>` for `table:`.
        query: String,
    },
}

/// `kafka(topic: "t", brokers: "host:9092", group: "g", start: "earliest", parallelism: 2,
/// properties: "k=v,k=v")`.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSource {
    pub topic: String,
    pub brokers: String,
    /// Consumer group; default `weir-<source name>`.
    pub group: String,
    /// Where a partition without a committed offset starts: `earliest` (default) or `latest`.
    pub start_latest: bool,
    /// Consumers (source instances); the binary's `--parallelism` overrides.
    pub parallelism: u32,
    /// librdkafka properties, in the order written.
    pub properties: Vec<(String, String)>,
    pub format: Format,
    /// `upsert_key: "a, b"`: the topic is an upsert-Kafka changelog (the latest value per
    /// message key, a tombstone deletes), read as an updating stream with this upsert key.
    pub upsert_key: Vec<String>,
}

/// Generator parameters as written in the pipeline (the binary's options can override some).
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkParams {
    pub events: u64,
    pub rate: u64,
    pub generators: u32,
    pub out_of_order_group: u64,
    pub seed: u64,
}

impl Default for NexmarkParams {
    fn default() -> Self {
        NexmarkParams {
            events: 10_000_000,
            rate: 10_000,
            generators: 1,
            out_of_order_group: 1,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Json {
        timestamps: Timestamps,
    },
    Csv {
        header: bool,
        delimiter: u8,
        timestamps: Timestamps,
    },
    /// `format avro(schema: "x.avsc")`: Avro records (a Kafka message each, or an object
    /// container file), timestamps as `timestamp-millis` (or `-micros`).
    Avro(AvroFormat),
}

/// The Avro schema of a `format avro`, as the checker read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvroFormat {
    /// The schema as JSON, parsed again by the binary when it starts.
    pub schema: String,
    /// The record's fields, in the schema's order (the order values are decoded in).
    pub fields: Vec<AvroField>,
    /// `confluent_id: 7`: Kafka messages in the Confluent wire format (a zero byte, this
    /// schema id as 4 big-endian bytes, then the Avro body).
    pub confluent_id: Option<u32>,
    /// `codec: "deflate"` of a file sink: how its blocks are compressed (`null` or
    /// `deflate`); `None`: not compressed.
    pub codec: Option<String>,
}

/// One field of an Avro record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvroField {
    pub name: String,
    pub kind: AvroKind,
    /// A union `["null", T]`: the positions of `null` and of `T` in it.
    pub union: Option<(u32, u32)>,
}

/// The Avro type of a field (of its non-null branch in a union).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvroKind {
    Int,
    Long,
    Float,
    Double,
    Boolean,
    String,
    Enum,
    TimestampMillis,
    TimestampMicros,
    /// One weir does not map (described for a message).
    Other(String),
}

impl Format {
    /// JSON lines with timestamps as by default.
    pub const JSON: Format = Format::Json {
        timestamps: Timestamps::Default,
    };

    /// How timestamps are read or written (`timestamps:` of the format clause).
    pub fn timestamps(&self) -> &Timestamps {
        match self {
            Format::Json { timestamps } | Format::Csv { timestamps, .. } => timestamps,
            Format::Avro(_) => &Timestamps::Default,
        }
    }
}

/// `timestamps:` of a format: how a source reads timestamp fields, or a sink writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Timestamps {
    /// Sources: a text form or an integer of epoch milliseconds (`"auto"`); sinks:
    /// `yyyy-MM-dd HH:mm:ss.SSS` (`"sql"`).
    #[default]
    Default,
    /// Sources only (`"text"`): text forms only, a number is a dead letter.
    Text,
    /// Sources (`"epoch_s"` … `"epoch_ns"`): numbers in this unit only; sinks: `"epoch_ms"`.
    EpochS,
    EpochMs,
    EpochUs,
    EpochNs,
    /// Sinks only (`"iso8601"`): `yyyy-MM-ddTHH:mm:ss.SSSZ`.
    Iso8601,
    /// Sources and sinks: a date pattern (`"dd/MM/yyyy HH:mm"`), the letters of
    /// `to_timestamp` and `date_format`; checked when the pipeline is.
    Pattern(String),
}

impl Timestamps {
    /// The names a source accepts, and a sink.
    pub const READ: &'static [(&'static str, Timestamps)] = &[
        ("auto", Timestamps::Default),
        ("text", Timestamps::Text),
        ("epoch_s", Timestamps::EpochS),
        ("epoch_ms", Timestamps::EpochMs),
        ("epoch_us", Timestamps::EpochUs),
        ("epoch_ns", Timestamps::EpochNs),
    ];
    pub const WRITE: &'static [(&'static str, Timestamps)] = &[
        ("sql", Timestamps::Default),
        ("iso8601", Timestamps::Iso8601),
        ("epoch_ms", Timestamps::EpochMs),
    ];

    /// The name as written in a pipeline (for explain and state shapes).
    pub fn name(&self, reading: bool) -> &str {
        if let Timestamps::Pattern(pattern) = self {
            return pattern;
        }
        let table = if reading { Self::READ } else { Self::WRITE };
        table
            .iter()
            .find(|(_, t)| t == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Where a stream reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamInput {
    Source(usize),
    Stream(usize),
    /// The late records of step `step` of stream `stream` (a window's side output).
    Late {
        stream: usize,
        step: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StreamDef {
    /// `None` for the inline pipe of a sink.
    pub name: Option<String>,
    pub span: Span,
    pub input: StreamInput,
    pub steps: Vec<TStep>,
    pub ty: StreamType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TStep {
    pub kind: TStepKind,
    pub span: Span,
    /// The stream type after this step.
    pub ty: StreamType,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TStepKind {
    Filter(TExpr),
    Select(Vec<(String, TExpr)>),
    WindowAggregate(WindowAggregate),
    Join(Box<JoinDef>),
    Rank(RankDef),
    Unnest(UnnestDef),
}

/// `unnest items as item`: one row per element of `array` (none for an empty or null one),
/// the input's fields followed by the element, named `alias`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnnestDef {
    pub array: TExpr,
    pub alias: String,
}

/// `dedup` (top 1, output without rank) or `top N` (with a `rank` field), per key.
#[derive(Clone, Debug, PartialEq)]
pub struct RankDef {
    pub keys: Vec<String>,
    pub n: usize,
    /// Order within a key: expressions over the input, `true` for descending.
    pub order: Vec<(TExpr, bool)>,
    /// Rows that compare equal: the newer one ranks first (dedup keep last).
    pub newer_wins_ties: bool,
    /// Adds a `rank` field (top-N); dedup outputs the row as it is.
    pub with_rank: bool,
    /// Over an updating stream: the input's upsert key (revised rows leave and re-enter).
    pub retract_key: Option<Vec<String>>,
    /// When the key names a window ([`StreamType::closing_field`]): the event-time field (the
    /// window's end) at which a partition is final. Its rows are emitted once, then, as an
    /// append stream.
    pub final_at: Option<String>,
    /// State TTL (`ttl(1h)`): a key's state is dropped once its last write is older.
    pub ttl: Option<StateTtl>,
}

/// A state TTL (`ttl(1h)`, `ttl(1h, time: processing)`): a key's state is dropped once the
/// clock passes its last write plus `ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTtl {
    pub ms: i64,
    pub clock: TtlClock,
}

/// What a [`StateTtl`] counts by.
#[derive(Clone, Debug, PartialEq)]
pub enum TtlClock {
    /// Event time: a write at the record's time in this field, expired by the watermark.
    EventTime(String),
    /// Event time over an updating stream, whose rows carry none: a write at the watermark
    /// when the change arrives, expired by the watermark.
    Watermark,
    /// The wall clock when the write happens, expired on the runtime's ticks.
    Processing,
}

impl StateTtl {
    /// The builder call that sets it on a runtime operator: `with_ttl` or
    /// `with_processing_ttl`.
    pub fn builder(&self) -> &'static str {
        match self.clock {
            TtlClock::Processing => "with_processing_ttl",
            _ => "with_ttl",
        }
    }

    /// The event-time field writes are stamped with, if they read one.
    pub fn time_field(&self) -> Option<&str> {
        match &self.clock {
            TtlClock::EventTime(f) => Some(f),
            _ => None,
        }
    }
}

/// A checked join step. Key and condition expressions: `left_keys` over the left record,
/// `right_keys` over the joined record (plain field names), `condition` over both (the joined
/// record's fields named `alias.field`).
#[derive(Clone, Debug, PartialEq)]
pub struct JoinDef {
    pub kind: weir_dsl::ast::JoinKind,
    pub left_outer: bool,
    pub right: StreamInput,
    pub alias: String,
    pub left_keys: Vec<TExpr>,
    pub right_keys: Vec<TExpr>,
    pub condition: Option<TExpr>,
    /// Conditions on one input alone, applied as filters before the join (pushed down): over
    /// the left record, and over the joined record (plain field names).
    pub left_filter: Option<TExpr>,
    pub right_filter: Option<TExpr>,
    /// Interval join: the joined record's time minus this one's, in [lower, upper].
    pub within: Option<(i64, i64)>,
    /// Window join: tumbling window size.
    pub window_ms: Option<i64>,
    /// Regular join: state time-to-live, in event time (a record's time), or with
    /// `ttl_processing` on the wall clock since the record arrived.
    pub ttl_ms: Option<i64>,
    pub ttl_processing: bool,
    pub left_time: Option<String>,
    pub right_time: Option<String>,
    pub left_ty: StreamType,
    pub right_ty: StreamType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WindowAggregate {
    /// Key field names (of the input); empty for a global aggregate.
    pub keys: Vec<String>,
    pub window: Window,
    /// The input's event-time field (empty on processing time).
    pub time_field: String,
    /// Windows on the wall clock at arrival instead of event time.
    pub processing_time: bool,
    /// Allowed lateness in ms (0: none); with it the output is an updating stream.
    pub lateness_ms: i64,
    /// The stream late records go to (`late: name`), if the pipeline names one.
    pub late_output: Option<String>,
    /// The time zone whose wall clock a `tumble` is aligned to (`zone:`): its days start at
    /// local midnight, 23 or 25 hours apart on a summer-time change.
    pub zone: Option<String>,
    /// Aggregating an updating stream: its upsert key (each change retracts the row it
    /// revises). Only without a window.
    pub retract_key: Option<Vec<String>>,
    /// Without a window, when the key names a window upstream ([`StreamType::closing_field`]):
    /// each group's row is emitted once, final, when the watermark passes this event-time
    /// field (the window's end), and the output is an append stream.
    pub final_at: Option<String>,
    pub aggs: Vec<AggItem>,
    /// Without a window: the state TTL of each group (`... } ttl(1h)`).
    pub ttl: Option<StateTtl>,
}

impl WindowAggregate {
    /// The event-time field `first_value`/`last_value` order by: the input's, in event-time
    /// windows and in an unbounded `aggregate by` over a stream with event time; `None` (they
    /// follow arrival order) on processing time or without event time.
    pub fn value_order_time(&self) -> Option<&str> {
        let by_time = !self.processing_time || self.window == Window::Unbounded;
        (by_time && !self.time_field.is_empty()).then_some(self.time_field.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Tumble {
        size_ms: i64,
    },
    Hop {
        size_ms: i64,
        slide_ms: i64,
    },
    Cumulate {
        step_ms: i64,
        size_ms: i64,
    },
    Session {
        gap_ms: i64,
    },
    /// No window: one ever-updating row per key (the output is an updating stream).
    Unbounded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggItem {
    pub name: String,
    pub func: AggFunc,
    /// `None` for `count()`.
    pub arg: Option<TExpr>,
    /// `count(distinct x)`: each distinct value counts once.
    pub distinct: bool,
    /// `filter (where cond)`: only records meeting the condition are aggregated.
    pub filter: Option<TExpr>,
    pub ty: Type,
    pub nullable: bool,
    /// For [`AggFunc::Udf`]: the Rust accumulator type's path.
    pub udf: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SinkDef {
    pub span: Span,
    pub stream: usize,
    pub kind: SinkKind,
    /// The name of the stream it sends, as written (`sink alerts -> ...` sends `alerts`).
    pub name: String,
    /// Its place among the pipeline's sinks, from 0.
    pub index: usize,
    /// A readable name (`sink2 q1 -> stdout`), used in metrics and explain.
    pub label: String,
    /// Set in the preview build of `weir run --limit` (see `crate::preview`).
    pub preview: Option<SinkPreview>,
}

/// A sink of a preview build: it prints to stdout, at most `--limit` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkPreview {
    /// Written before each line when the pipeline has several sinks (`[hot] `).
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    Stdout {
        format: Format,
    },
    /// `partition_by`: fields whose values name sub-folders (`dt=2015-07-15/hm=00:01/`).
    /// `parts`: one file per instance of the sink's input, `path/part-N.EXT`, written by that
    /// instance's task (the sink runs as many instances as its input).
    File {
        path: String,
        format: Format,
        partition_by: Vec<String>,
        parts: bool,
    },
    /// `file(path: "folder", partition_by: "f", roll_size: "64MiB", roll_interval: 10m) format
    /// parquet`: Parquet files, one series per upstream instance (and partition folder), each
    /// rolled at `roll_size` bytes, after `roll_interval` (ms) open, at checkpoints and at
    /// the end.
    Parquet {
        path: String,
        partition_by: Vec<String>,
        roll_size: u64,
        roll_interval: Option<u64>,
    },
    Checksum,
    /// `kafka(topic: "t", brokers: "host:9092", key: field, properties: "k=v")`.
    Kafka {
        topic: String,
        brokers: String,
        /// A field whose value (as text) is each message's key.
        key: Option<String>,
        properties: Vec<(String, String)>,
        format: Format,
        /// `delivery: "exactly_once"`: transactions committed with checkpoints.
        exactly_once: bool,
    },
    /// A PostgreSQL table: rows copied in, or an updating stream's changes applied by key.
    Postgres {
        /// `postgresql://user:password@host:port/database`.
        url: String,
        /// The table, `name` or `schema.name`; created if missing.
        table: String,
        /// `delivery: "exactly_once"`: one transaction per checkpoint, with a commit marker.
        exactly_once: bool,
    },
}
