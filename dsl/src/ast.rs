//! The abstract syntax tree of a `.weir` file.
//!
//! Every node is `{ kind, span }` or carries a `span` field. Names are resolved later, in the
//! compiler's `sema` stage; the AST only records what was written.
//!
//! ```text
//! module    := item*
//! item      := schema | source | let | sink
//! schema    := "schema" IDENT "{" (IDENT ":" type ("," ...)*)? "}"
//! type      := ("i64" | "f64" | "bool" | "string" | "timestamp" | IDENT) "?"?
//! source    := "source" IDENT (":" IDENT)? "=" call ("format" call)? ("event_time" IDENT "watermark" expr)?
//! let       := "let" IDENT "=" pipe
//! sink      := "sink" pipe "->" call ("format" call)?
//! pipe      := IDENT ("|>" step)*
//! step      := "filter" expr
//!            | "select" "{" select_item ("," select_item)* "}"
//!            | "key_by" IDENT ("," IDENT)*
//!            | "window" call                          // tumble(10s)
//!            | "aggregate" ("by" IDENT ("," IDENT)*)? "{" select_item ("," ...)* "}"
//! select_item := "*" | IDENT | IDENT ":" expr
//! call      := IDENT ( "(" (arg ("," arg)*)? ")" )?   // arg := (IDENT ":")? expr
//! ```

use crate::span::Span;

/// A name as written, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole `.weir` file.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    Schema(SchemaDecl),
    Source(SourceDecl),
    Let(LetDecl),
    Sink(SinkDecl),
}

/// `schema Bid { auction: i64, price: i64, note: string? }`
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

/// A type as written: a name (`i64`, `f64`, `bool`, `string`, `timestamp`, or anything else,
/// rejected by the checker), a nested record or an array, and `?` for optional.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub optional: bool,
    pub span: Span,
}

impl TypeExpr {
    /// The type's name as written; `record` or `array` for a nested type.
    pub fn type_name(&self) -> &str {
        match &self.kind {
            TypeKind::Named(name) => &name.name,
            TypeKind::Record(_) => "record",
            TypeKind::Array(_) => "array",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    /// `i64`, `string`, ...
    Named(Ident),
    /// `{ id: i64, name: string? }`
    Record(Vec<FieldDecl>),
    /// `[string]`, `[{ sku: string }]`
    Array(Box<TypeExpr>),
}

/// `source bids = nexmark(stream: "bid", events: 1000) event_time date_time watermark 4s`
/// `source rows: Row = file(path: "rows.csv") format csv(header: true)`
#[derive(Clone, Debug, PartialEq)]
pub struct SourceDecl {
    pub name: Ident,
    pub schema: Option<Ident>,
    pub connector: Call,
    pub format: Option<Call>,
    pub event_time: Option<EventTimeDecl>,
}

/// `event_time date_time watermark 4s`: the event-time field and the bounded out-of-orderness.
#[derive(Clone, Debug, PartialEq)]
pub struct EventTimeDecl {
    pub field: Ident,
    pub watermark: Expr,
    pub span: Span,
}

/// `let name = pipe`
#[derive(Clone, Debug, PartialEq)]
pub struct LetDecl {
    pub name: Ident,
    pub pipe: Pipe,
}

/// `sink pipe -> stdout() format json`
#[derive(Clone, Debug, PartialEq)]
pub struct SinkDecl {
    pub pipe: Pipe,
    pub connector: Call,
    pub format: Option<Call>,
}

/// A connector or format with named or positional arguments: `file(path: "x", header: true)`,
/// `json`, `tumble(10s)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `None` for a positional argument.
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// `input |> step |> step ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Pipe {
    pub input: Ident,
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// `filter expr`: keeps the records for which `expr` is true (null counts as false).
    Filter(Expr),
    /// `select { a, b: expr, * }`: the output record has exactly these fields, in this order.
    Select(Vec<SelectItem>),
    /// `key_by a, b`: partitions the stream by these fields for the next stateful step.
    KeyBy(Vec<Ident>),
    /// `window tumble(10s)`: assigns records to windows for the next `aggregate`.
    Window(Call),
    /// `aggregate by a, b { n: count(), top: max(price) } OPTION*`. Options (without a
    /// window): `ttl(1h)`.
    Aggregate {
        by: Vec<Ident>,
        items: Vec<SelectItem>,
        options: Vec<Call>,
    },
    /// `[left] join|interval_join|window_join|lookup_join STREAM [as ALIAS] on EXPR OPTION*`.
    /// The joined stream's fields are named `ALIAS.field` (ALIAS defaults to the stream's name).
    Join(JoinStep),
    /// `dedup by a, b keep first|last OPTION*`: one row per key (first or last by event time,
    /// or by arrival when the stream has none). Options: `ttl(1h)`, `ttl(1h, processing)`.
    Dedup {
        by: Vec<Ident>,
        keep_last: bool,
        options: Vec<Call>,
    },
    /// `top N [by a, b] order by expr [asc|desc], ... OPTION*`: the best N rows per key, with
    /// a `rank` field. Options: `ttl(10m)`.
    Top {
        n: Expr,
        by: Vec<Ident>,
        order: Vec<(Expr, bool)>,
        options: Vec<Call>,
    },
    /// `unnest items as item`: one row per element of the array `items` (none when it is
    /// empty or null), the input's fields followed by the element as `item`.
    Unnest { array: Expr, alias: Ident },
}

#[derive(Clone, Debug, PartialEq)]
pub struct JoinStep {
    pub kind: JoinKind,
    pub left_outer: bool,
    pub stream: Ident,
    pub alias: Option<Ident>,
    pub on: Expr,
    /// `within(-5s, 10s)`, `tumble(10s)`, `ttl(1h)`.
    pub options: Vec<Call>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Unbounded equi-join (state kept, or expired by `ttl`).
    Regular,
    /// Time-bounded on both sides: `within(lower, upper)`.
    Interval,
    /// Both sides in the same window: `tumble(size)`.
    Window,
    /// Against a static table read from a file source when the pipeline starts.
    Lookup,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SelectItem {
    pub kind: SelectItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SelectItemKind {
    /// `*`: every field of the input, in order.
    Star,
    /// `name` (a field kept as it is) or `name: expr`. For a bare name, `expr` is a `Field`
    /// expression with the same span as `name`.
    Named { name: Ident, expr: Expr },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Lit(Literal),
    /// A field of the current record; `a.b.c` is one name with dots (a joined stream's
    /// field, or fields of nested records: the checker tells).
    Field(Ident),
    /// `e.name` after an index or a call: a field of a nested record value.
    Member(Box<Expr>, Ident),
    /// `tags[1]`: an array's element, 1-based (null when out of range).
    Index(Box<Expr>, Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A function call: `lower(name)`, `count()`, `regexp_extract(url, "(\\d+)", 1)`.
    Call(Ident, Vec<Expr>),
    /// `case when c1 then v1 when c2 then v2 else v3 end`; `if(c, a, b)` parses to this too.
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// `cast(x as f64)` or `x as f64`.
    Cast(Box<Expr>, TypeExpr),
    /// `x is null` (`negated: false`) or `x is not null` (`negated: true`).
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `x in (a, b, c)` (`negated`: `x not in (...)`): true when `x` equals one of them;
    /// with nulls, SQL's three-valued logic (`x = a or x = b or ...`).
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `x between low and high` (both bounds included), `x not between ...`.
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    /// `distinct x` as the argument of an aggregate: `count(distinct bidder)`.
    Distinct(Box<Expr>),
    /// An aggregate with its own condition: `count(*) filter (where price < 10000)`.
    AggFilter {
        call: Box<Expr>,
        condition: Box<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    /// A duration in milliseconds: `10s`, `250ms`, `1m`, `2h`, `1d`.
    Duration(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `a || b`: string concatenation (null when either is).
    Concat,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Concat => "||",
        }
    }
}
