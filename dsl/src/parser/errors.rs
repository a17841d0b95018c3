//! Turns pest's parse errors into weir diagnostics.
//!
//! When a parse fails, pest reports the rules it tried at the furthest position it reached. The
//! grammar gives every expected token its own rule (`field_sep`, `block_close`, ...), so this
//! module can map each rule to a description ("`,`"), a context ("after a field") and a weight:
//! weak expectations (operators, optional clauses) are only listed when nothing else was
//! expected. A few patterns get their own error kind: an unknown step, a missing `|>`, a
//! reserved keyword used as a name, an unknown item keyword.

use std::ops::Range;

use pest::error::{Error, ErrorVariant, InputLocation};

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::span::{FileId, Span};

use super::lex::{self, Found, FoundKind, Open, ITEM_KEYWORDS, RESERVED, STEP_KEYWORDS};
use super::{codes, Rule};

/// Keywords that are not items, steps or reserved words; found where an item was expected they
/// are misplaced, not misspelled.
const CLAUSE_KEYWORDS: [&str; 4] = ["format", "event_time", "watermark", "by"];

/// What a rule means when pest says it expected it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Anything that starts an expression; all collapse to "an expression".
    Expr,
    /// `schema`, `source`, `let`, `sink`.
    ItemKw,
    /// `filter`, `select`, ...
    StepKw,
    /// A name in a declaration position (`a field name`).
    Name,
    /// Punctuation or a keyword.
    Token,
}

#[derive(Clone, Copy, Debug)]
struct Expect {
    class: Class,
    text: &'static str,
    context: Option<&'static str>,
    /// Listed only when nothing strong was expected at the same place (operators, optional
    /// clauses and continuations that are rarely what the user meant).
    weak: bool,
}

const fn strong(class: Class, text: &'static str, context: Option<&'static str>) -> Expect {
    Expect {
        class,
        text,
        context,
        weak: false,
    }
}

const fn weak(class: Class, text: &'static str) -> Expect {
    Expect {
        class,
        text,
        context: None,
        weak: true,
    }
}

fn expect(rule: Rule) -> Expect {
    use Class::*;
    const AFTER_FIELD: Option<&str> = Some("after a field");
    const AFTER_ARG: Option<&str> = Some("after an argument");
    const IN_IF: Option<&str> = Some("in `if(condition, then, else)`");
    match rule {
        Rule::kw_not
        | Rule::op_neg
        | Rule::number
        | Rule::string
        | Rule::kw_true
        | Rule::kw_false
        | Rule::kw_null
        | Rule::kw_case
        | Rule::kw_cast
        | Rule::kw_if
        | Rule::func_name
        | Rule::paren_open => strong(Expr, "an expression", None),

        Rule::kw_schema => strong(ItemKw, "`schema`", None),
        Rule::kw_source => strong(ItemKw, "`source`", None),
        Rule::kw_let => strong(ItemKw, "`let`", None),
        Rule::kw_sink => strong(ItemKw, "`sink`", None),
        Rule::kw_filter => strong(StepKw, "`filter`", None),
        Rule::kw_select => strong(StepKw, "`select`", None),
        Rule::kw_key_by => strong(StepKw, "`key_by`", None),
        Rule::kw_window => strong(StepKw, "`window`", None),
        Rule::kw_aggregate => strong(StepKw, "`aggregate`", None),

        Rule::schema_name => strong(Name, "a schema name", Some("after `schema`")),
        Rule::field_name | Rule::key_field | Rule::item_name => strong(Name, "a field name", None),
        Rule::type_name => strong(
            Name,
            "a type (`i64`, `f64`, `bool`, `string`, `timestamp`)",
            None,
        ),
        Rule::source_name => strong(Name, "a source name", Some("after `source`")),
        Rule::schema_ref => strong(Name, "a schema name", Some("after `:`")),
        Rule::let_name => strong(Name, "a name", Some("after `let`")),
        Rule::stream_name => strong(Name, "a stream name", None),
        Rule::connector_name => strong(Name, "a connector such as `file(...)`", None),
        Rule::format_name => strong(Name, "a format such as `json`", Some("after `format`")),
        Rule::window_fn => strong(
            Name,
            "a window such as `tumble(10s)`",
            Some("after `window`"),
        ),
        Rule::event_field => strong(Name, "the event-time field", Some("after `event_time`")),
        Rule::arg_name => weak(Name, "an argument name"),

        Rule::schema_open => strong(Token, "`{`", Some("after the schema name")),
        Rule::schema_close | Rule::block_close => strong(Token, "`}`", AFTER_FIELD),
        Rule::field_sep | Rule::item_sep => strong(Token, "`,`", AFTER_FIELD),
        Rule::field_colon => strong(Token, "`:`", Some("after the field name")),
        Rule::source_eq => strong(Token, "`=`", Some("after the source name")),
        Rule::let_eq => strong(Token, "`=`", Some("after the name")),
        Rule::pipe_op => strong(Token, "`|>`", None),
        Rule::sink_arrow => strong(Token, "`->`", None),
        Rule::block_open => strong(Token, "`{`", None),
        Rule::star => strong(Token, "`*`", None),
        Rule::call_close | Rule::fcall_close => strong(Token, "`)`", AFTER_ARG),
        Rule::arg_sep | Rule::fcall_sep => strong(Token, "`,`", AFTER_ARG),
        Rule::paren_close => strong(Token, "`)`", Some("to close `(`")),
        Rule::cast_open => strong(Token, "`(`", Some("after `cast`")),
        Rule::cast_close => strong(Token, "`)`", Some("to close `cast(`")),
        Rule::if_open => strong(Token, "`(`", Some("after `if`")),
        Rule::if_sep => strong(Token, "`,`", IN_IF),
        Rule::if_close => strong(Token, "`)`", IN_IF),
        Rule::kw_by => strong(Token, "`by`", None),
        Rule::kw_format => strong(Token, "`format`", None),
        Rule::kw_event_time => strong(Token, "`event_time`", None),
        Rule::kw_watermark => strong(Token, "`watermark`", Some("after the event-time field")),
        Rule::kw_when => strong(Token, "`when`", None),
        Rule::kw_then => strong(Token, "`then`", Some("after the condition")),
        Rule::kw_else => strong(Token, "`else`", None),
        Rule::kw_end => strong(Token, "`end`", None),
        Rule::null_not => strong(Token, "`not`", Some("after `is`")),
        Rule::null_kw => strong(Token, "`null`", Some("after `is`")),

        Rule::source_colon | Rule::item_colon | Rule::arg_colon => weak(Token, "`:`"),
        Rule::type_opt => weak(Token, "`?`"),
        Rule::record_close => strong(Token, "`}`", Some("to close the nested record type")),
        Rule::array_close => strong(Token, "`]`", Some("after the array's element type")),
        Rule::kw_unnest_as => strong(Token, "`as`", Some("after the array of `unnest`")),
        Rule::unnest_name => strong(Name, "a name for the element", Some("after `as`")),
        Rule::key_sep => weak(Token, "`,`"),
        Rule::star_arg => weak(Token, "`*`"),
        Rule::call_open | Rule::fcall_open => weak(Token, "`(`"),
        Rule::bool_op | Rule::infix_op | Rule::kw_is | Rule::kw_as => weak(Token, "an operator"),
        Rule::EOI => weak(Token, "end of input"),

        // pest reports a rule instead of its tokens when two or more of them failed at the same
        // place: `operand` stands for "a literal, a name, `(`, `-`, ...".
        Rule::expr
        | Rule::bool_term
        | Rule::chain
        | Rule::operand
        | Rule::arg
        | Rule::paren
        | Rule::case_expr
        | Rule::cast_expr
        | Rule::if_expr
        | Rule::name_expr => strong(Expr, "an expression", None),
        Rule::select_item => strong(Name, "a field name or `*`", None),
        Rule::field_decl => strong(Name, "a field name", None),
        Rule::type_expr | Rule::postfix_cast => strong(Name, "a type", None),
        Rule::pipe => strong(Name, "a stream name", None),
        Rule::connector => strong(Name, "a connector such as `file(...)`", None),
        Rule::format_call => strong(Name, "a format such as `json`", Some("after `format`")),
        Rule::window_call => strong(
            Name,
            "a window such as `tumble(10s)`",
            Some("after `window`"),
        ),
        Rule::module
        | Rule::items_prefix
        | Rule::schema_decl
        | Rule::source_decl
        | Rule::let_decl
        | Rule::sink_decl => strong(ItemKw, "an item", None),
        Rule::filter_step
        | Rule::select_step
        | Rule::key_by_step
        | Rule::window_step
        | Rule::aggregate_step
        | Rule::unnest_step => strong(StepKw, "a step", None),
        Rule::format_clause => strong(Token, "`format`", None),
        Rule::event_time_clause => strong(Token, "`event_time`", None),
        Rule::when_clause => strong(Token, "`when`", None),
        Rule::else_clause => strong(Token, "`else`", None),
        Rule::is_null | Rule::predicate | Rule::pred_not | Rule::arith_op => {
            weak(Token, "an operator")
        }
        Rule::kw_in | Rule::kw_between | Rule::kw_like => weak(Token, "an operator"),
        Rule::kw_between_and => strong(Token, "`and`", Some("after the lower bound of `between`")),
        Rule::in_open => strong(Token, "`(`", Some("after `in`")),
        Rule::in_sep | Rule::in_close => strong(Token, "`,` or `)`", Some("in the `in` list")),
        // Silent rules and whitespace are never reported.
        _ => weak(Token, "more input"),
    }
}

/// Where a pest error happened, for building the diagnostic.
pub(super) struct ErrorContext<'a> {
    pub file: FileId,
    /// The whole file.
    pub text: &'a str,
    /// The chunk pest parsed.
    pub chunk: Range<usize>,
    /// Delimiters the pre-scan saw open at the end of the chunk.
    pub unclosed: &'a [Open],
}

/// Converts a pest error on `cx.chunk` into a diagnostic.
pub(super) fn from_pest(error: &Error<Rule>, cx: &ErrorContext<'_>) -> Diagnostic {
    let local = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let pos = (cx.chunk.start + local).min(cx.chunk.end);
    match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => expected(positives, pos, cx),
        ErrorVariant::CustomError { message } => {
            // pest's own limits ("stack limit reached"): only reachable with pathological input.
            let found = lex::found_at(cx.text, pos);
            Diagnostic::error(
                codes::NESTING_TOO_DEEP,
                span(cx.file, found.range),
                "input is nested too deeply",
            )
            .with_label(message.clone())
            .with_hint("split the expression, or move parts of it into separate steps")
        }
    }
}

fn span(file: FileId, range: Range<usize>) -> Span {
    Span::new(file, range.start, range.end)
}

fn expected(positives: &[Rule], pos: usize, cx: &ErrorContext<'_>) -> Diagnostic {
    let all: Vec<Expect> = positives.iter().map(|&r| expect(r)).collect();
    let mut wanted: Vec<Expect> = all.iter().copied().filter(|e| !e.weak).collect();
    if wanted.is_empty() {
        wanted = all.clone();
    }
    // Expressions first, then names, then tokens (`,` before the others), then keywords.
    wanted.sort_by_key(|e| {
        let rank = match e.class {
            Class::Expr => 0,
            Class::Name => 1,
            Class::Token => 2,
            Class::StepKw => 3,
            Class::ItemKw => 4,
        };
        (rank, e.text != "`,`")
    });
    let has = |class: Class| wanted.iter().any(|e| e.class == class);
    let only = |class: Class| !wanted.is_empty() && wanted.iter().all(|e| e.class == class);

    // At the end of the chunk, point just after the last token instead of at the next item.
    let at_end = pos >= cx.chunk.end;
    let found = if at_end && cx.chunk.end < cx.text.len() {
        lex::found_at(cx.text, cx.chunk.end)
    } else {
        lex::found_at(cx.text, pos)
    };
    let primary = if at_end {
        let after = lex::end_of_previous_token(cx.text, cx.chunk.start, pos);
        Span::new(cx.file, after, after)
    } else {
        span(cx.file, found.range.clone())
    };
    let word = found.text(cx.text);
    let is_word = found.kind == Some(FoundKind::Word) && !at_end;

    // `10 sec`, `5 minutes`, `10 s`: a number, a space and a unit.
    if is_word {
        if let (Some(unit), Some(start)) = (
            super::build::unit_spelled_out(word),
            number_before(cx.text, cx.chunk.start, found.range.start),
        ) {
            let end = found.range.end;
            let number = cx.text[start..]
                .split([' ', '\t'])
                .next()
                .unwrap_or_default();
            return Diagnostic::error(
                codes::SPACED_DURATION,
                Span::new(cx.file, start, end),
                format!(
                    "`{}` is not a duration",
                    cx.text.get(start..end).unwrap_or(word)
                ),
            )
            .with_label(format!("write `{number}{unit}`"))
            .with_hint(format!(
                "a duration is a number and a unit without a space: `{number}{unit}` (units: ms, s, m, h, d)"
            ));
        }
    }
    // `join payments as p` with no condition.
    if positives.contains(&Rule::kw_on) {
        return Diagnostic::error(
            codes::JOIN_WITHOUT_ON,
            primary,
            "missing `on` in a join",
        )
        .with_label("expected `on` and the join condition here")
        .with_hint(
            "a join names its condition after the stream: `join payments as p on id = p.order_id`",
        );
    }

    // A step keyword where `|>` was expected: the `|>` is missing.
    if !at_end && STEP_KEYWORDS.contains(&word) && positives.contains(&Rule::pipe_op) {
        return Diagnostic::error(
            codes::MISSING_PIPE,
            primary,
            format!("missing `|>` before `{word}`"),
        )
        .with_label("expected `|>` before this step")
        .with_hint("chain steps with `|>`, as in `bids |> filter price > 10 |> select { price }`");
    }
    if is_word && only(Class::StepKw) {
        let list = STEP_KEYWORDS.join(", ");
        let hint = match did_you_mean(word, STEP_KEYWORDS) {
            Some(step) => format!("did you mean `{step}`? steps are: {list}"),
            None => format!("steps are: {list}"),
        };
        return Diagnostic::error(
            codes::UNKNOWN_STEP,
            primary,
            format!("unknown step `{word}`"),
        )
        .with_label("not a step")
        .with_hint(hint);
    }
    // A misspelled item keyword at the start of a line (`lett q = ...`), after an item that
    // could have ended there.
    let starts_line = found.range.start == 0 || cx.text.as_bytes()[found.range.start - 1] == b'\n';
    let misspelled_item = is_word
        && starts_line
        && has(Class::ItemKw)
        && did_you_mean(word, ITEM_KEYWORDS).is_some()
        && did_you_mean(word, CLAUSE_KEYWORDS).is_none();
    if is_word && (only(Class::ItemKw) || misspelled_item) && !CLAUSE_KEYWORDS.contains(&word) {
        let list = ITEM_KEYWORDS.join(", ");
        let hint = match did_you_mean(word, ITEM_KEYWORDS) {
            Some(item) => format!("did you mean `{item}`? items are: {list}"),
            None => format!("items start with one of: {list}"),
        };
        return Diagnostic::error(
            codes::UNKNOWN_ITEM,
            primary,
            format!("expected an item, found `{word}`"),
        )
        .with_label("not an item keyword")
        .with_hint(hint);
    }
    if found.kind == Some(FoundKind::Reserved) && !at_end && has(Class::Name) && !has(Class::Expr) {
        return Diagnostic::error(
            codes::RESERVED_KEYWORD,
            primary,
            format!("`{word}` is a reserved keyword"),
        )
        .with_label("cannot be used as a name")
        .with_hint(format!(
            "these keywords cannot be names: {}",
            RESERVED.join(", ")
        ));
    }

    let code = if has(Class::Expr) {
        codes::EXPECTED_EXPRESSION
    } else {
        codes::UNEXPECTED_TOKEN
    };
    let description = describe(&wanted, at_end_of_items(pos, cx));
    let found_text = if at_end && cx.chunk.end >= cx.text.len() {
        "end of input".into()
    } else {
        found.description.clone()
    };
    let mut diagnostic = Diagnostic::error(
        code,
        primary,
        format!("expected {description}, found {found_text}"),
    )
    .with_label(format!("expected {description}"));
    if at_end {
        if let Some(open) = cx.unclosed.last() {
            diagnostic =
                diagnostic.with_secondary(open.span, format!("unclosed {}", open.describe()));
        }
    }
    let before = cx.text.get(cx.chunk.start..pos).unwrap_or("");
    if is_word && word == "format" && before.contains("event_time") {
        diagnostic = diagnostic.with_hint("in a source, `format` comes before `event_time`");
    }
    for hint in hints(&wanted, positives, &found, word, is_word) {
        diagnostic = diagnostic.with_hint(hint);
    }
    diagnostic
}

/// Where the whole-number literal starts that ends just before `pos`, separated from it by
/// spaces or tabs only (`10` in `10 sec`); `None` if the token before is not one.
fn number_before(text: &str, floor: usize, pos: usize) -> Option<usize> {
    let before = text.get(floor..pos)?;
    let trimmed = before.trim_end_matches([' ', '\t']);
    if trimmed.len() == before.len() {
        return None;
    }
    let rest = trimmed.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_');
    let number = &trimmed[rest.len()..];
    let starts_token = !rest.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    (number.starts_with(|c: char| c.is_ascii_digit()) && starts_token).then_some(floor + rest.len())
}

/// Whether `pos` is where a new item could start (only whitespace and comments before it in
/// the chunk), so "an item" reads better than "a new item".
fn at_end_of_items(pos: usize, cx: &ErrorContext<'_>) -> bool {
    lex::end_of_previous_token(cx.text, cx.chunk.start, pos) == cx.chunk.start
}

/// "`,` or `}` after a field", "an expression or `)`", "`|>` or a new item".
fn describe(wanted: &[Expect], first_item: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    fn push(parts: &mut Vec<&'static str>, s: &'static str) {
        if !parts.contains(&s) {
            parts.push(s);
        }
    }
    if wanted.iter().any(|e| e.class == Class::Expr) {
        push(&mut parts, "an expression");
    }
    for e in wanted {
        match e.class {
            Class::Expr | Class::ItemKw => {}
            Class::StepKw => push(
                &mut parts,
                "a step (`filter`, `select`, `key_by`, `window` or `aggregate`)",
            ),
            Class::Name | Class::Token => push(&mut parts, e.text),
        }
    }
    if wanted.iter().any(|e| e.class == Class::ItemKw) {
        if parts.is_empty() && first_item {
            push(&mut parts, "an item (`schema`, `source`, `let` or `sink`)");
        } else {
            push(&mut parts, "a new item");
        }
    }
    let mut text = match parts.as_slice() {
        [] => "more input".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    let context = wanted.first().and_then(|e| e.context);
    if context.is_some() && wanted.iter().all(|e| e.context == context) {
        text = format!("{text} {}", context.unwrap_or_default());
    }
    text
}

fn hints(
    wanted: &[Expect],
    positives: &[Rule],
    found: &Found,
    word: &str,
    is_word: bool,
) -> Vec<String> {
    let mut hints = Vec::new();
    // A misspelled keyword: `fromat`, `watermrk`, `whne`.
    if is_word {
        let keywords = wanted
            .iter()
            .filter(|e| e.class == Class::Token)
            .filter_map(|e| {
                let inner = e.text.strip_prefix('`')?.strip_suffix('`')?;
                inner
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
                    .then_some(inner)
            });
        if let Some(keyword) = did_you_mean(&word.to_ascii_lowercase(), keywords) {
            hints.push(format!("did you mean `{keyword}`?"));
        }
    }
    let lower = word.to_ascii_lowercase();
    if found.kind == Some(FoundKind::Reserved) && wanted.iter().any(|e| e.class == Class::Expr) {
        if lower == "not" && !positives.contains(&Rule::kw_not) {
            hints
                .push("`not` applies to a whole comparison; add parentheses: `a = (not b)`".into());
        } else if !matches!(lower.as_str(), "and" | "or" | "not" | "is" | "as") {
            hints.push(format!(
                "`{word}` is a reserved keyword and cannot be used as a field name"
            ));
        }
    }
    // `window tumble 10s`: a connector, format or window takes its arguments in parentheses.
    if positives.contains(&Rule::call_open)
        && matches!(found.kind, Some(FoundKind::Str | FoundKind::Number))
    {
        hints.push("arguments go in parentheses: `tumble(10s)`, `file(path: \"out.csv\")`".into());
    }
    // `select { price * 2 }`: a computed field needs a name.
    if positives.contains(&Rule::item_colon) && found.kind == Some(FoundKind::Punct) {
        hints.push("to compute a field, give it a name: `name: expression`".into());
    }
    if positives.contains(&Rule::arg_colon)
        && matches!(found.kind, Some(FoundKind::Str | FoundKind::Number))
    {
        hints.push("named arguments are written `name: value`".into());
    }
    hints
}
