//! The PostgreSQL sink (`sink s -> postgres(url: "...", table: "t")`), on the `postgres` crate
//! (the blocking client over tokio-postgres; each instance has its own connection).
//!
//! - **The table** is created if missing, with a column per field (`BIGINT`, `DOUBLE
//!   PRECISION`, `BOOLEAN`, `TEXT`, `TIMESTAMPTZ`; `NOT NULL` unless the field is optional) and,
//!   for an updating stream, its upsert key as the primary key (`UNIQUE NULLS NOT DISTINCT` when
//!   the key may be null). A table that exists must have a unique index on the key and
//!   every field as a column of that type, or the run stops at start with the difference.
//! - **An append stream** is written with `COPY ... FROM STDIN (FORMAT binary)`, the fastest
//!   way in, one `COPY` per batch.
//! - **An updating stream** is written change by change, in order: an upsert is an
//!   `INSERT ... ON CONFLICT (key) DO UPDATE`, a delete a `DELETE ... WHERE key`, so the table
//!   is the stream's final table at every commit.
//! - **At least once** (the default): rows are batched and written in one transaction every
//!   [`BATCH`] rows, at every tick of the flush interval, at every checkpoint barrier (before
//!   the sink's part is saved, so a complete checkpoint never covers a row not yet in the
//!   table) and at the end. After a crash the rows since the last checkpoint are written again
//!   (for an updating stream that rewrites the same final rows).
//! - **Exactly once** (`delivery: "exactly_once"`, needs `--checkpoint-dir`): all instances of
//!   the sink write through one connection into one open transaction per checkpoint epoch (as
//!   the Kafka sink's instances share one producer, so that an epoch commits as one). At a
//!   barrier an instance writes what it has into it, notes the transaction in the checkpoint
//!   and holds its next rows; once the checkpoint is complete the transaction is committed
//!   together with the checkpoint's id in the table `weir_checkpoints` (one row per sink, keyed
//!   by the checkpoint folder's id and the sink), and the next one begins. A crash before the
//!   commit rolls the transaction back (PostgreSQL does when the connection drops); a crash
//!   after the manifest and before the commit is found by [`verify_commit`] when the run
//!   starts again, which then resumes from the checkpoint before and writes the epoch again.
//!   The last epoch is committed when the run ends, only if every task succeeded.
//!
//! A failed write fails the run with PostgreSQL's message; nothing more is written.

use std::error::Error;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, GenericClient, NoTls};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
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

impl Value<'_> {
    fn is_null(&self) -> bool {
        matches!(
            self,
            Value::I64(None)
                | Value::F64(None)
                | Value::Bool(None)
                | Value::Text(None)
                | Value::Timestamp(None)
        )
    }
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
    /// `delivery: "exactly_once"`: one transaction per checkpoint (see the module docs).
    pub exactly_once: bool,
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
            // A primary key makes its columns NOT NULL, so a key that may be null (the null
            // group of an `aggregate by`) gets a unique constraint under which one null equals
            // another, and so one row per key as for every other value (PostgreSQL 15 and later).
            if self.nullable_key() {
                columns.push(format!("UNIQUE NULLS NOT DISTINCT ({})", key.join(", ")));
            } else {
                columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
            }
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
        if !self.key.is_empty() {
            self.check_key_index(&mut client)?;
        }
        Ok(client)
    }

    /// Whether a column of the upsert key may be null.
    fn nullable_key(&self) -> bool {
        self.key.iter().any(|&i| self.columns[i].nullable)
    }

    /// An upsert needs a unique index on exactly the key's columns (`ON CONFLICT` finds no
    /// other), and one under which nulls are equal when the key may be null: under a plain
    /// unique index every upsert of a null key would add a row, and the table would hold the
    /// key many times with no error. Either way the run stops at start and says what to add.
    fn check_key_index(&self, client: &mut Client) -> Result<(), String> {
        let name = &self.name;
        let table = quoted(&self.table);
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map(|row| row.get(0))
            .map_err(|e| format!("sink `{name}`: postgres: {}", describe(&e)))?;
        // `indnullsnotdistinct` is PostgreSQL 15's; before it nulls were always distinct.
        let nulls_equal = if version >= 150000 {
            "i.indnullsnotdistinct"
        } else {
            "false"
        };
        let rows = client
            .query(
                &format!(
                    "SELECT {nulls_equal}, array_agg(a.attname::text ORDER BY a.attname::text) \
                     FROM pg_index i JOIN pg_attribute a \
                     ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1::text::regclass AND i.indisunique \
                     AND i.indpred IS NULL AND i.indexprs IS NULL \
                     GROUP BY i.indexrelid, {nulls_equal}"
                ),
                &[&table],
            )
            .map_err(|e| format!("sink `{name}`: postgres: {}", describe(&e)))?;
        let mut key: Vec<String> = self
            .key
            .iter()
            .map(|&i| self.columns[i].name.to_string())
            .collect();
        key.sort();
        let listed = self
            .key
            .iter()
            .map(|&i| quoted(self.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ");
        let matching: Vec<bool> = rows
            .iter()
            .filter(|row| row.get::<_, Vec<String>>(1) == key)
            .map(|row| row.get::<_, bool>(0))
            .collect();
        if matching.is_empty() {
            return Err(format!(
                "sink `{name}`: postgres: table {table} has no unique index on the stream's \
                 upsert key ({listed}), which upserts need; add one: ALTER TABLE {table} ADD \
                 {} ({listed})",
                if self.nullable_key() {
                    "UNIQUE NULLS NOT DISTINCT"
                } else {
                    "PRIMARY KEY"
                }
            ));
        }
        if self.nullable_key() && !matching.contains(&true) {
            let nullable: Vec<&str> = self
                .key
                .iter()
                .filter(|&&i| self.columns[i].nullable)
                .map(|&i| self.columns[i].name)
                .collect();
            return Err(format!(
                "sink `{name}`: postgres: the upsert key may be null (`{}`), and the unique \
                 index of table {table} on ({listed}) holds nulls as distinct, so each upsert \
                 of a null key would add a row; make the index UNIQUE NULLS NOT DISTINCT \
                 (PostgreSQL 15 or later), or keep nulls out of the key (`coalesce`)",
                nullable.join("`, `")
            ));
        }
        Ok(())
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

    /// The delete of a key whose columns flagged in `nulls` (one flag per key column) are
    /// null: `k IS NULL` for those (`k = NULL` matches no row), `k = $n` for the others.
    fn delete_statement(&self, nulls: &[bool]) -> String {
        let mut n = 0;
        let condition: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(bit, &i)| {
                let column = quoted(self.columns[i].name);
                if nulls[bit] {
                    format!("{column} IS NULL")
                } else {
                    n += 1;
                    format!("{column} = ${n}")
                }
            })
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

/// The table of commit markers: the last checkpoint each exactly-once sink committed.
const MARKERS: &str = "weir_checkpoints";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The transaction every instance of one exactly-once sink writes into: a connection with a
/// transaction always open, and the last checkpoint committed.
struct Transaction {
    client: Mutex<Client>,
    /// The sink's row in `weir_checkpoints`: `<folder id>/<sink id>`.
    marker: String,
    url: String,
    committed: Mutex<u64>,
}

impl Transaction {
    fn open(config: &PostgresSinkConfig, marker: String) -> Result<Transaction, String> {
        let name = &config.name;
        let mut client = config.connect()?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {MARKERS} (sink TEXT PRIMARY KEY, checkpoint BIGINT NOT NULL); BEGIN"
            ))
            .map_err(|e| format!("sink `{name}`: postgres: {}", describe(&e)))?;
        Ok(Transaction {
            client: Mutex::new(client),
            marker,
            url: config.url.clone(),
            committed: Mutex::new(0),
        })
    }

    /// Commits the open transaction with `checkpoint` as the sink's marker, and begins the
    /// next, unless another instance already has.
    fn commit_through(&self, checkpoint: u64, sink: &str) -> Result<(), String> {
        let mut committed = lock(&self.committed);
        if *committed >= checkpoint {
            return Ok(());
        }
        let mut client = lock(&self.client);
        let marked = client.execute(
            &format!(
                "INSERT INTO {MARKERS} (sink, checkpoint) VALUES ($1, $2) \
                 ON CONFLICT (sink) DO UPDATE SET checkpoint = EXCLUDED.checkpoint"
            ),
            &[&self.marker, &(checkpoint as i64)],
        );
        marked
            .and_then(|_| client.batch_execute("COMMIT; BEGIN"))
            .map_err(|e| {
                format!(
                    "sink `{sink}`: postgres: cannot commit the transaction of checkpoint {checkpoint}: {}",
                    describe(&e)
                )
            })?;
        *committed = checkpoint;
        Ok(())
    }

    /// What a checkpoint notes about the transaction (read by [`verify_commit`]).
    fn note(&self) -> String {
        format!("pg-txn {} {}", self.url, self.marker)
    }
}

/// Verifies a `pg-txn` note (`pg-txn <url> <marker>`): did the sink commit the transaction of
/// `checkpoint`? The marker row says which checkpoint it committed last.
pub fn verify_commit(note: &str, checkpoint: u64) -> Result<crate::checkpoint::Verdict, String> {
    use crate::checkpoint::Verdict;
    let mut parts = note.split(' ').skip(1);
    let (Some(url), Some(marker)) = (parts.next(), parts.next()) else {
        return Err(format!("malformed note `{note}`"));
    };
    let mut client = Client::connect(url, NoTls).map_err(|e| {
        format!(
            "postgres: cannot connect to check a commit: {}",
            describe(&e)
        )
    })?;
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&MARKERS])
        .map_err(|e| format!("postgres: {}", describe(&e)))?
        .get(0);
    if !exists {
        return Ok(Verdict::NoMarker);
    }
    let row = client
        .query_opt(
            &format!("SELECT checkpoint FROM {MARKERS} WHERE sink = $1"),
            &[&marker],
        )
        .map_err(|e| format!("postgres: {}", describe(&e)))?;
    Ok(match row.map(|r| r.get::<_, i64>(0)) {
        Some(c) if c as u64 >= checkpoint => Verdict::Committed,
        Some(_) => Verdict::Behind,
        None => Verdict::NoMarker,
    })
}

/// How an instance writes: rows of an append stream ([`Append`]) or changes ([`Upserts`]).
pub struct Append;
/// See [`Append`].
pub struct Upserts;

/// Where an instance writes.
enum Connection {
    /// At least once: its own connection, a transaction per batch.
    Own(Box<Client>),
    /// Exactly once: the sink's shared transaction.
    Shared(Arc<Transaction>),
}

/// One sink instance: its connection and the rows (or changes) not written yet.
pub struct PostgresSink<T, V, M = Append> {
    config: PostgresSinkConfig,
    connection: Option<Connection>,
    errors: Errors,
    values: V,
    pending: Vec<T>,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    /// Exactly once: the checkpoint whose transaction waits for the checkpoint to complete;
    /// rows that come meanwhile are held (in `held`) for the next transaction.
    awaiting: Option<u64>,
    held: Vec<T>,
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
        // An exactly-once sink joins its shared transaction in `with_state`.
        let connection = if config.exactly_once {
            None
        } else {
            match config.connect() {
                Ok(c) => Some(Connection::Own(Box::new(c))),
                Err(e) => {
                    errors.report(e);
                    None
                }
            }
        };
        PostgresSink {
            config,
            connection,
            errors,
            values,
            pending: Vec::new(),
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            awaiting: None,
            held: Vec::new(),
            mode: std::marker::PhantomData,
        }
    }

    /// Takes part in checkpoints: a barrier writes what is pending first (at least once), or
    /// seals the epoch's transaction (exactly once). Nothing is restored.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        let _ = slot.take_restored();
        if self.config.exactly_once {
            if !slot.is_active() {
                return Err(format!(
                    "sink `{}`: delivery \"exactly_once\" commits a transaction per checkpoint: \
                     run with --checkpoint-dir",
                    self.config.name
                ));
            }
            let marker = crate::scale_out::task_name(format!("{}/{}", slot.folder_id(), slot.id()));
            // Shared by the sink's instances in this run (never across runs of one process).
            let txn = slot.shared(&format!("pg-txn {marker}"), || {
                let txn = Arc::new(Transaction::open(&self.config, marker.clone())?);
                let (last, name) = (txn.clone(), self.config.name.clone());
                slot.on_final_commit(
                    txn.note(),
                    Box::new(move |final_id| last.commit_through(final_id, &name)),
                );
                let (now, name) = (txn.clone(), self.config.name.clone());
                slot.on_complete(Box::new(move |id| now.commit_through(id, &name)));
                Ok(txn)
            })?;
            self.connection = Some(Connection::Shared(txn));
        }
        self.slot = slot;
        Ok(self)
    }

    /// Stops writing after an error: the run fails with it.
    fn fail(&mut self, message: String) {
        self.errors
            .report(format!("sink `{}`: postgres: {message}", self.config.name));
        self.connection = None;
        self.pending.clear();
        self.held.clear();
    }
}

/// How a batch is written: the append sink copies rows, the upsert sink applies changes (an
/// implementation detail of the sinks, public because their methods name it).
pub trait Batch<T> {
    /// Writes `rows` through `client`, inside whatever transaction is open.
    fn write<C: GenericClient>(
        &mut self,
        client: &mut C,
        rows: &[T],
    ) -> Result<u64, postgres::Error>;
}

impl<T, V, M> PostgresSink<T, V, M>
where
    Self: Batch<T>,
{
    /// Writes what is pending: in a transaction of its own (at least once), or into the
    /// epoch's open transaction (exactly once).
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(mut connection) = self.connection.take() else {
            self.pending.clear();
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        let written = match &mut connection {
            Connection::Own(client) => client.transaction().and_then(|mut t| {
                let n = self.write(&mut t, &pending)?;
                t.commit().map(|()| n)
            }),
            Connection::Shared(txn) => {
                let txn = txn.clone();
                let mut client = lock(&txn.client);
                self.write(&mut *client, &pending)
            }
        };
        match written {
            Ok(n) => {
                self.stats.records_out += n;
                self.connection = Some(connection);
                self.pending = pending;
                self.pending.clear();
            }
            Err(e) => self.fail(describe(&e)),
        }
    }

    /// Exactly once: once the sealed epoch's checkpoint is complete, its transaction is
    /// committed (by this instance or another, or the checkpoint thread) and the held rows
    /// go into the next. A checkpoint given up fails the run. With `block`, waits for it.
    fn settle(&mut self, block: bool) {
        let Some(n) = self.awaiting else {
            return;
        };
        let Some(complete) = self.slot.decided(n, block) else {
            return;
        };
        self.awaiting = None;
        if !complete {
            self.fail(format!(
                "checkpoint {n} was given up; the rows after it are not written"
            ));
            return;
        }
        if let Some(Connection::Shared(txn)) = &self.connection {
            if let Err(e) = txn.commit_through(n, &self.config.name) {
                self.errors.report(e);
                self.connection = None;
                self.held.clear();
                return;
            }
        }
        self.pending = std::mem::take(&mut self.held);
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn accept(&mut self, row: T) {
        self.stats.records_in += 1;
        if self.connection.is_none() {
            return;
        }
        if self.awaiting.is_some() {
            self.settle(false);
        }
        if self.awaiting.is_some() {
            self.held.push(row);
            return;
        }
        self.pending.push(row);
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn on_tick(&mut self) {
        if self.awaiting.is_some() {
            self.settle(false);
        }
        if self.awaiting.is_none() {
            self.flush();
        }
    }

    fn on_barrier(&mut self, checkpoint: u64) {
        // One transaction at a time: the previous epoch's must be committed first.
        self.settle(true);
        self.flush();
        let Some(connection) = &self.connection else {
            // A failed sink never saves: the checkpoint cannot complete.
            self.slot.abandon();
            return;
        };
        match connection {
            Connection::Own(_) => self.slot.save(checkpoint, &[], Vec::new()),
            Connection::Shared(txn) => {
                self.slot
                    .save_noted(checkpoint, &[], Vec::new(), vec![txn.note()]);
                self.awaiting = Some(checkpoint);
            }
        }
    }

    fn on_finish(&mut self) {
        // Every barrier has passed by now, so waiting cannot hold up a checkpoint. Exactly
        // once: the last epoch is committed by the coordinator once every task ended well.
        self.settle(true);
        self.flush();
        self.metrics.report(&self.stats);
    }
}

impl<T, V> Batch<T> for PostgresSink<T, V, Append>
where
    V: for<'a> FnMut(&'a T, &mut Vec<Value<'a>>),
{
    fn write<C: GenericClient>(
        &mut self,
        client: &mut C,
        rows: &[T],
    ) -> Result<u64, postgres::Error> {
        let types: Vec<Type> = self.config.columns.iter().map(|c| c.ty.pg_type()).collect();
        let sink = client.copy_in(self.config.copy_statement().as_str())?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let mut values = Vec::with_capacity(types.len());
        for row in rows {
            values.clear();
            (self.values)(row, &mut values);
            writer.write_raw(values.iter())?;
        }
        writer.finish()
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
        self.on_tick();
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
    fn write<C: GenericClient>(
        &mut self,
        client: &mut C,
        changes: &[Change<T>],
    ) -> Result<u64, postgres::Error> {
        let upsert = client.prepare(&self.config.upsert_statement())?;
        // One delete per pattern of null key columns, prepared when first met.
        let mut deletes: Vec<(Vec<bool>, postgres::Statement)> = Vec::new();
        let mut values = Vec::with_capacity(self.config.columns.len());
        for change in changes {
            values.clear();
            (self.values)(change.row(), &mut values);
            match change {
                Change::Upsert(_) => {
                    let params: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    client.execute(&upsert, &params)?;
                }
                Change::Delete(_) => {
                    let key = &self.config.key;
                    let nulls: Vec<bool> = key.iter().map(|&i| values[i].is_null()).collect();
                    let at = match deletes.iter().position(|(m, _)| *m == nulls) {
                        Some(at) => at,
                        None => {
                            let statement = self.config.delete_statement(&nulls);
                            deletes.push((nulls, client.prepare(&statement)?));
                            deletes.len() - 1
                        }
                    };
                    let params: Vec<&(dyn ToSql + Sync)> = key
                        .iter()
                        .filter(|&&i| !values[i].is_null())
                        .map(|&i| &values[i] as &(dyn ToSql + Sync))
                        .collect();
                    client.execute(&deletes[at].1, &params)?;
                }
            }
        }
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
        self.0.on_tick();
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.0.on_barrier(checkpoint);
    }

    fn finish(&mut self) {
        self.0.on_finish();
    }
}
