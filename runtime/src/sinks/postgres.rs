//! The PostgreSQL sink (`sink s -> postgres(url: "...", table: "t")`), on the `postgres` crate
//! (the blocking client over tokio-postgres; each instance has its own connection).
//!
//! - **The table** is created if missing, with a column per field (`BIGINT`, `DOUBLE
//!   PRECISION`, `BOOLEAN`, `TEXT`, `TIMESTAMPTZ`; `NOT NULL` unless the field is optional) and,
//!   for an updating stream, its upsert key as the primary key. A table that exists must have
//!   every field as a column of that type, or the run stops at start with the difference.
//! - **An append stream** is written with `COPY ... FROM STDIN (FORMAT binary)`, the fastest
//!   way in, one `COPY` per batch.
//! - **An updating stream** is written change by change, in order: an upsert is an
//!   `INSERT ... ON CONFLICT (key) DO UPDATE`, a delete a `DELETE ... WHERE key`, so the table
//!   is the stream's final table at every commit.
//! - **When:** rows are batched and written in one transaction every [`BATCH`] rows, at every
//!   tick of the flush interval, at every checkpoint barrier (before the sink's part is saved,
//!   so a complete checkpoint never covers a row not yet in the table) and at the end. Delivery
//!   is at least once: after a crash the rows since the last checkpoint are written again (for
//!   an updating stream that rewrites the same final rows). A failed write fails the run with
//!   PostgreSQL's message; nothing more is written.

use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpMetrics, OpStats};
use crate::ops::change::Change;
use crate::run::Errors;

/// Rows (or changes) written per transaction at most.
pub const BATCH: usize = 8192;

/// A column's type, as weir's field types map to PostgreSQL's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    I64,
    F64,
    Bool,
    Text,
    Timestamp,
}

impl ColumnType {
    fn sql(self) -> &'static str {
        match self {
            ColumnType::I64 => "BIGINT",
            ColumnType::F64 => "DOUBLE PRECISION",
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Text => "TEXT",
            ColumnType::Timestamp => "TIMESTAMPTZ",
        }
    }

    /// The name `information_schema.columns.data_type` gives it.
    fn catalog_name(self) -> &'static str {
        match self {
            ColumnType::I64 => "bigint",
            ColumnType::F64 => "double precision",
            ColumnType::Bool => "boolean",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp with time zone",
        }
    }

    fn pg_type(self) -> Type {
        match self {
            ColumnType::I64 => Type::INT8,
            ColumnType::F64 => Type::FLOAT8,
            ColumnType::Bool => Type::BOOL,
            ColumnType::Text => Type::TEXT,
            ColumnType::Timestamp => Type::TIMESTAMPTZ,
        }
    }
}

/// A column of the sink's table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// One value of a row, as the generated code hands it over (timestamps in ms since the epoch).
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    I64(Option<i64>),
    F64(Option<f64>),
    Bool(Option<bool>),
    Text(Option<&'a str>),
    Timestamp(Option<i64>),
}

fn system_time(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match *self {
            Value::I64(v) => v.to_sql(ty, out),
            Value::F64(v) => v.to_sql(ty, out),
            Value::Bool(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Timestamp(v) => v.map(system_time).to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::FLOAT8,
            Type::BOOL,
            Type::TEXT,
            Type::TIMESTAMPTZ,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// Where and what the sink writes (one per sink, shared by its instances).
#[derive(Clone, Debug)]
pub struct PostgresSinkConfig {
    /// The sink's name, for messages.
    pub name: String,
    pub url: String,
    /// The table, as written (`orders` or `shop.orders`).
    pub table: String,
    pub columns: Vec<Column>,
    /// The upsert key (indexes into `columns`) of an updating stream; empty for an append one.
    pub key: Vec<usize>,
}

/// `"a"."b"`: each part of a dotted name quoted.
fn quoted(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

impl PostgresSinkConfig {
    /// Connects and makes sure the table is there with the right columns.
    fn connect(&self) -> Result<Client, String> {
        let name = &self.name;
        let mut client = Client::connect(&self.url, NoTls)
            .map_err(|e| format!("sink `{name}`: postgres: cannot connect: {}", describe(&e)))?;
        let mut columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let not_null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{not_null}", quoted(c.name), c.ty.sql())
            })
            .collect();
        if !self.key.is_empty() {
            let key: Vec<String> = self
                .key
                .iter()
                .map(|&i| quoted(self.columns[i].name))
                .collect();
            columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let table = quoted(&self.table);
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({})",
                columns.join(", ")
            ))
            .map_err(|e| {
                format!(
                    "sink `{name}`: postgres: cannot create table {table}: {}",
                    describe(&e)
                )
            })?;
        // The columns it has (in the search path's schema, or the one named).
        let (schema, bare) = match self.table.rsplit_once('.') {
            Some((schema, bare)) => (Some(schema), bare),
            None => (None, self.table.as_str()),
        };
        let rows = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema())",
                &[&bare, &schema],
            )
            .map_err(|e| format!("sink `{name}`: postgres: {}", describe(&e)))?;
        let have: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut problems = Vec::new();
        for c in &self.columns {
            match have.iter().find(|(n, _)| n == c.name) {
                None => problems.push(format!("no column `{}`", c.name)),
                Some((_, ty)) if ty != c.ty.catalog_name() => problems.push(format!(
                    "column `{}` is {ty}, the stream's field is {}",
                    c.name,
                    c.ty.catalog_name()
                )),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "sink `{name}`: postgres: table {table} does not fit the stream: {}",
                problems.join("; ")
            ));
        }
        Ok(client)
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quoted(c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn copy_statement(&self) -> String {
        format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            quoted(&self.table),
            self.column_list()
        )
    }

    fn upsert_statement(&self) -> String {
        let params: Vec<String> = (1..=self.columns.len()).map(|i| format!("${i}")).collect();
        let key: Vec<String> = self
            .key
            .iter()
            .map(|&i| quoted(self.columns[i].name))
            .collect();
        let updates: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.key.contains(i))
            .map(|(_, c)| format!("{0} = EXCLUDED.{0}", quoted(c.name)))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {action}",
            quoted(&self.table),
            self.column_list(),
            params.join(", "),
            key.join(", ")
        )
    }

    fn delete_statement(&self) -> String {
        let condition: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(n, &i)| format!("{} = ${}", quoted(self.columns[i].name), n + 1))
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            quoted(&self.table),
            condition.join(" AND ")
        )
    }
}

/// PostgreSQL's own message (with its detail) rather than the client's summary.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// How an instance writes: rows of an append stream ([`Append`]) or changes ([`Upserts`]).
pub struct Append;
/// See [`Append`].
pub struct Upserts;

/// One sink instance: its connection and the rows (or changes) not written yet.
pub struct PostgresSink<T, V, M = Append> {
    config: PostgresSinkConfig,
    client: Option<Client>,
    errors: Errors,
    values: V,
    pending: Vec<T>,
    stats: OpStats,
    metrics: OpMetrics,
    slot: StateSlot,
    mode: std::marker::PhantomData<M>,
}

impl<T, V> PostgresSink<T, V, Append> {
    /// `values(row, out)` appends a row's values in column order. A sink that cannot connect
    /// or whose table does not fit fails the run (its rows are dropped).
    pub fn new(config: PostgresSinkConfig, metrics: OpMetrics, errors: Errors, values: V) -> Self {
        Self::open(config, metrics, errors, values)
    }
}

impl<T, V, M> PostgresSink<T, V, M> {
    fn open(config: PostgresSinkConfig, metrics: OpMetrics, errors: Errors, values: V) -> Self {
        let client = match config.connect() {
            Ok(c) => Some(c),
            Err(e) => {
                errors.report(e);
                None
            }
        };
        PostgresSink {
            config,
            client,
            errors,
            values,
            pending: Vec::new(),
            stats: OpStats::default(),
            metrics,
            slot: StateSlot::inert(),
            mode: std::marker::PhantomData,
        }
    }

    /// Takes part in checkpoints: a barrier writes what is pending first. Nothing is restored.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        let _ = slot.take_restored();
        self.slot = slot;
        Ok(self)
    }

    /// Stops writing after an error: the run fails with it.
    fn fail(&mut self, message: String) {
        self.errors
            .report(format!("sink `{}`: postgres: {message}", self.config.name));
        self.client = None;
        self.pending.clear();
    }
}

/// How a batch is written: the append sink copies rows, the upsert sink applies changes (an
/// implementation detail of the sinks, public because their methods name it).
pub trait Batch<T> {
    fn write(&mut self, client: &mut Client, pending: &[T]) -> Result<u64, postgres::Error>;
}

impl<T, V, M> PostgresSink<T, V, M>
where
    Self: Batch<T>,
{
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(mut client) = self.client.take() else {
            self.pending.clear();
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        match self.write(&mut client, &pending) {
            Ok(n) => {
                self.stats.records_out += n;
                self.client = Some(client);
                self.pending = pending;
                self.pending.clear();
            }
            Err(e) => self.fail(describe(&e)),
        }
    }

    fn accept(&mut self, row: T) {
        self.stats.records_in += 1;
        if self.client.is_none() {
            return;
        }
        self.pending.push(row);
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn on_barrier(&mut self, checkpoint: u64) {
        self.flush();
        if self.client.is_none() {
            // A failed sink never saves: the checkpoint cannot complete.
            self.slot.abandon();
            return;
        }
        self.slot.save(checkpoint, &[], Vec::new());
    }

    fn on_finish(&mut self) {
        self.flush();
        self.metrics.report(&self.stats);
    }
}

impl<T, V> Batch<T> for PostgresSink<T, V, Append>
where
    V: for<'a> FnMut(&'a T, &mut Vec<Value<'a>>),
{
    fn write(&mut self, client: &mut Client, rows: &[T]) -> Result<u64, postgres::Error> {
        let types: Vec<Type> = self.config.columns.iter().map(|c| c.ty.pg_type()).collect();
        let mut transaction = client.transaction()?;
        let sink = transaction.copy_in(&self.config.copy_statement())?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let mut values = Vec::with_capacity(types.len());
        for row in rows {
            values.clear();
            (self.values)(row, &mut values);
            writer.write_raw(values.iter())?;
        }
        let n = writer.finish()?;
        transaction.commit()?;
        Ok(n)
    }
}

impl<T: Clone, V> Collector<T> for PostgresSink<T, V, Append>
where
    V: for<'a> FnMut(&'a T, &mut Vec<Value<'a>>),
{
    fn push(&mut self, row: &T) {
        self.accept(row.clone());
    }

    fn watermark(&mut self, _watermark: i64) {}

    fn tick(&mut self) {
        self.flush();
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.on_barrier(checkpoint);
    }

    fn finish(&mut self) {
        self.on_finish();
    }
}

/// The sink of an updating stream: changes applied in order, upserts and deletes by key.
pub struct PostgresUpsertSink<T, V>(PostgresSink<Change<T>, V, Upserts>);

impl<T, V> PostgresUpsertSink<T, V> {
    /// See [`PostgresSink::new`]; `config.key` names the upsert key.
    pub fn new(config: PostgresSinkConfig, metrics: OpMetrics, errors: Errors, values: V) -> Self {
        PostgresUpsertSink(PostgresSink::open(config, metrics, errors, values))
    }

    /// See [`PostgresSink::with_state`].
    pub fn with_state(self, slot: StateSlot) -> Result<Self, String> {
        self.0.with_state(slot).map(PostgresUpsertSink)
    }
}

impl<T, V> Batch<Change<T>> for PostgresSink<Change<T>, V, Upserts>
where
    V: for<'a> FnMut(&'a T, &mut Vec<Value<'a>>),
{
    fn write(
        &mut self,
        client: &mut Client,
        changes: &[Change<T>],
    ) -> Result<u64, postgres::Error> {
        let mut transaction = client.transaction()?;
        let upsert = transaction.prepare(&self.config.upsert_statement())?;
        let delete = transaction.prepare(&self.config.delete_statement())?;
        let mut values = Vec::with_capacity(self.config.columns.len());
        for change in changes {
            values.clear();
            (self.values)(change.row(), &mut values);
            match change {
                Change::Upsert(_) => {
                    let params: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    transaction.execute(&upsert, &params)?;
                }
                Change::Delete(_) => {
                    let params: Vec<&(dyn ToSql + Sync)> = self
                        .config
                        .key
                        .iter()
                        .map(|&i| &values[i] as &(dyn ToSql + Sync))
                        .collect();
                    transaction.execute(&delete, &params)?;
                }
            }
        }
        transaction.commit()?;
        Ok(changes.len() as u64)
    }
}

impl<T: Clone, V> Collector<Change<T>> for PostgresUpsertSink<T, V>
where
    V: for<'a> FnMut(&'a T, &mut Vec<Value<'a>>),
{
    fn push(&mut self, change: &Change<T>) {
        self.0.accept(change.clone());
    }

    fn watermark(&mut self, _watermark: i64) {}

    fn tick(&mut self) {
        self.0.flush();
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.0.on_barrier(checkpoint);
    }

    fn finish(&mut self) {
        self.0.on_finish();
    }
}
