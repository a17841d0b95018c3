//! Parser tests through the public API: the AST of the language tour, precedence, literals,
//! one test per error kind (code, message and span), several errors in one file, deep nesting
//! and random inputs.

use weir_dsl::ast::*;
use weir_dsl::{parse, Diagnostic, FileId};

/// The language tour from the design brief.
const EXAMPLE: &str = r#"// comments run to end of line
schema Row { user: string, amount: f64, ts: timestamp, note: string? }

source bids = nexmark(stream: "bid", events: 1_000_000, rate: 10_000, generators: 2, seed: 7)
    event_time date_time watermark 4s
source rows: Row = file(path: "data/rows.csv") format csv(header: true, delimiter: ",")
    event_time ts watermark 500ms
source lines: Row = stdin() format json

let q1 = bids
    |> filter price > 10_000 and (channel = "Google" or not contains(url, "x"))
    |> select { auction, bidder, price_eur: price * 0.908, day: date_format(date_time, "yyyy-MM-dd"), date_time }

let per_window = bids
    |> key_by auction
    |> window tumble(10s)
    |> aggregate { bids: count(), top: max(price), avg_price: avg(price) }

let max_price = bids |> window tumble(10s) |> aggregate by auction { n: count(*) }

sink q1 -> stdout() format json
sink per_window -> file(path: "out.csv") format csv
sink bids |> filter price % 2 = 0 |> select { * } -> checksum()
"#;

// ---------------------------------------------------------------------------------------------
// Helpers

fn parse_ok(text: &str) -> Module {
    let (module, diagnostics) = parse(FileId(0), text);
    assert!(
        diagnostics.is_empty(),
        "unexpected diagnostics for {text:?}: {diagnostics:#?}"
    );
    module.expect("a module when there are no errors")
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    parse(FileId(0), text).1
}

/// The only diagnostic of `text`.
fn single_error(text: &str) -> Diagnostic {
    let mut diagnostics = diagnostics(text);
    assert_eq!(
        diagnostics.len(),
        1,
        "expected exactly one diagnostic for {text:?}: {diagnostics:#?}"
    );
    diagnostics.remove(0)
}

/// The text a diagnostic's primary span underlines.
fn underlined<'t>(text: &'t str, diagnostic: &Diagnostic) -> &'t str {
    &text[diagnostic.primary.span.range()]
}

/// Checks code, message and underlined text of the only error of `text`.
fn check_error(text: &str, code: &str, message: &str, underline: &str) -> Diagnostic {
    let diagnostic = single_error(text);
    assert_eq!(diagnostic.code, code, "{diagnostic:#?}");
    assert_eq!(diagnostic.message, message, "{diagnostic:#?}");
    assert_eq!(underlined(text, &diagnostic), underline, "{diagnostic:#?}");
    diagnostic
}

fn item(module: &Module, index: usize) -> &ItemKind {
    &module.items[index].kind
}

/// The expression of `filter <expr>`.
fn filter_expr(expr: &str) -> Expr {
    let text = format!("let x = a |> filter {expr}");
    let module = parse_ok(&text);
    match item(&module, 0) {
        ItemKind::Let(LetDecl { pipe, .. }) => match &pipe.steps[0].kind {
            StepKind::Filter(expr) => expr.clone(),
            other => panic!("not a filter: {other:?}"),
        },
        other => panic!("not a let: {other:?}"),
    }
}

/// Prints an expression fully parenthesized, to check the tree's shape.
fn show(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Lit(Literal::Int(n)) => n.to_string(),
        ExprKind::Lit(Literal::Float(x)) => format!("{x:?}"),
        ExprKind::Lit(Literal::Str(s)) => format!("{s:?}"),
        ExprKind::Lit(Literal::Bool(b)) => b.to_string(),
        ExprKind::Lit(Literal::Null) => "null".into(),
        ExprKind::Lit(Literal::Duration(ms)) => format!("{ms}ms"),
        ExprKind::Member(e, name) => format!("{}.{}", show(e), name.name),
        ExprKind::Index(e, at) => format!("{}[{}]", show(e), show(at)),
        ExprKind::Field(name) => name.name.clone(),
        ExprKind::Unary(UnaryOp::Neg, e) => format!("(-{})", show(e)),
        ExprKind::Unary(UnaryOp::Not, e) => format!("(not {})", show(e)),
        ExprKind::Binary(op, l, r) => format!("({} {} {})", show(l), op.symbol(), show(r)),
        ExprKind::Call(name, args) => {
            format!(
                "{}({})",
                name.name,
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Case {
            branches,
            otherwise,
        } => {
            let mut out = "case".to_owned();
            for (cond, value) in branches {
                out += &format!(" when {} then {}", show(cond), show(value));
            }
            if let Some(e) = otherwise {
                out += &format!(" else {}", show(e));
            }
            out + " end"
        }
        ExprKind::Distinct(e) => format!("distinct {}", show(e)),
        ExprKind::InList {
            expr,
            list,
            negated,
        } => format!(
            "({} {}in ({}))",
            show(expr),
            if *negated { "not " } else { "" },
            list.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Between {
            expr,
            low,
            high,
            negated,
        } => format!(
            "({} {}between {} and {})",
            show(expr),
            if *negated { "not " } else { "" },
            show(low),
            show(high)
        ),
        ExprKind::AggFilter { call, condition } => {
            format!("{} filter (where {})", show(call), show(condition))
        }
        ExprKind::Cast(e, ty) => {
            format!(
                "({} as {}{})",
                show(e),
                ty.type_name(),
                if ty.optional { "?" } else { "" }
            )
        }
        ExprKind::IsNull { expr, negated } => {
            format!(
                "({} is {}null)",
                show(expr),
                if *negated { "not " } else { "" }
            )
        }
    }
}

fn lit(expr: &str) -> Literal {
    match filter_expr(expr).kind {
        ExprKind::Lit(lit) => lit,
        other => panic!("not a literal: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The language tour

#[test]
fn example_parses_into_the_expected_items() {
    let module = parse_ok(EXAMPLE);
    assert_eq!(module.items.len(), 10);
    let snippet = |span: weir_dsl::Span| &EXAMPLE[span.range()];

    // schema Row { ..., note: string? }
    let ItemKind::Schema(schema) = item(&module, 0) else {
        panic!("not a schema")
    };
    assert_eq!(schema.name.name, "Row");
    let fields: Vec<(&str, &str, bool)> = schema
        .fields
        .iter()
        .map(|f| (&*f.name.name, f.ty.type_name(), f.ty.optional))
        .collect();
    assert_eq!(
        fields,
        [
            ("user", "string", false),
            ("amount", "f64", false),
            ("ts", "timestamp", false),
            ("note", "string", true)
        ]
    );
    assert_eq!(
        snippet(module.items[0].span),
        EXAMPLE.lines().nth(1).unwrap()
    );
    assert_eq!(snippet(schema.fields[3].span), "note: string?");
    assert_eq!(snippet(schema.fields[3].ty.span), "string?");

    // source bids = nexmark(...) event_time date_time watermark 4s
    let ItemKind::Source(bids) = item(&module, 1) else {
        panic!("not a source")
    };
    assert_eq!(bids.name.name, "bids");
    assert_eq!(bids.schema, None);
    assert_eq!(bids.connector.name.name, "nexmark");
    let args: Vec<(&str, String)> = bids
        .connector
        .args
        .iter()
        .map(|a| (a.name.as_ref().map_or("", |n| &*n.name), show(&a.value)))
        .collect();
    assert_eq!(
        args,
        [
            ("stream", "\"bid\"".to_owned()),
            ("events", "1000000".to_owned()),
            ("rate", "10000".to_owned()),
            ("generators", "2".to_owned()),
            ("seed", "7".to_owned())
        ]
    );
    assert_eq!(snippet(bids.connector.args[1].span), "events: 1_000_000");
    assert!(bids.format.is_none());
    let event_time = bids.event_time.as_ref().unwrap();
    assert_eq!(event_time.field.name, "date_time");
    assert_eq!(
        event_time.watermark.kind,
        ExprKind::Lit(Literal::Duration(4_000))
    );
    assert_eq!(
        snippet(event_time.span),
        "event_time date_time watermark 4s"
    );
    assert!(snippet(module.items[1].span).starts_with("source bids"));
    assert!(snippet(module.items[1].span).ends_with("watermark 4s"));

    // source rows: Row = file(...) format csv(...) event_time ts watermark 500ms
    let ItemKind::Source(rows) = item(&module, 2) else {
        panic!("not a source")
    };
    assert_eq!(rows.schema.as_ref().unwrap().name, "Row");
    let format = rows.format.as_ref().unwrap();
    assert_eq!(format.name.name, "csv");
    assert_eq!(snippet(format.span), r#"csv(header: true, delimiter: ",")"#);
    assert_eq!(
        format.args[0].value.kind,
        ExprKind::Lit(Literal::Bool(true))
    );
    assert_eq!(
        format.args[1].value.kind,
        ExprKind::Lit(Literal::Str(",".into()))
    );
    assert_eq!(
        rows.event_time.as_ref().unwrap().watermark.kind,
        ExprKind::Lit(Literal::Duration(500))
    );

    // source lines: Row = stdin() format json
    let ItemKind::Source(lines) = item(&module, 3) else {
        panic!("not a source")
    };
    assert_eq!(
        (&*lines.connector.name.name, lines.connector.args.len()),
        ("stdin", 0)
    );
    assert_eq!(snippet(lines.connector.span), "stdin()");
    assert_eq!(lines.format.as_ref().unwrap().name.name, "json");
    assert_eq!(snippet(lines.format.as_ref().unwrap().span), "json");
    assert!(lines.event_time.is_none());

    // let q1 = bids |> filter ... |> select { ... }
    let ItemKind::Let(q1) = item(&module, 4) else {
        panic!("not a let")
    };
    assert_eq!(q1.name.name, "q1");
    assert_eq!(q1.pipe.input.name, "bids");
    assert_eq!(q1.pipe.steps.len(), 2);
    assert!(snippet(q1.pipe.span).starts_with("bids\n    |> filter"));
    assert!(snippet(q1.pipe.span).ends_with("date_time }"));
    let StepKind::Filter(filter) = &q1.pipe.steps[0].kind else {
        panic!("not a filter")
    };
    assert_eq!(
        show(filter),
        r#"((price > 10000) and ((channel = "Google") or (not contains(url, "x"))))"#
    );
    assert!(snippet(q1.pipe.steps[0].span).starts_with("filter price"));
    assert!(snippet(q1.pipe.steps[0].span).ends_with(r#""x"))"#));
    // The span of `price` covers exactly "price"; binary spans run from left to right operand.
    let ExprKind::Binary(BinaryOp::And, gt, or) = &filter.kind else {
        panic!("not an and")
    };
    let ExprKind::Binary(BinaryOp::Gt, price, _) = &gt.kind else {
        panic!("not a >")
    };
    assert_eq!(snippet(price.span), "price");
    assert_eq!(
        price.kind,
        ExprKind::Field(Ident {
            name: "price".into(),
            span: price.span
        })
    );
    assert_eq!(snippet(gt.span), "price > 10_000");
    assert_eq!(
        snippet(or.span),
        r#"(channel = "Google" or not contains(url, "x"))"#
    );
    assert_eq!(
        snippet(filter.span),
        &snippet(q1.pipe.steps[0].span)["filter ".len()..]
    );

    let StepKind::Select(items) = &q1.pipe.steps[1].kind else {
        panic!("not a select")
    };
    let names: Vec<&str> = items
        .iter()
        .map(|i| match &i.kind {
            SelectItemKind::Named { name, .. } => &*name.name,
            SelectItemKind::Star => "*",
        })
        .collect();
    assert_eq!(
        names,
        ["auction", "bidder", "price_eur", "day", "date_time"]
    );
    let SelectItemKind::Named { name, expr } = &items[0].kind else {
        panic!("not named")
    };
    assert_eq!(expr.kind, ExprKind::Field(name.clone()));
    assert_eq!(expr.span, name.span);
    let SelectItemKind::Named { expr, .. } = &items[2].kind else {
        panic!("not named")
    };
    assert_eq!(show(expr), "(price * 0.908)");
    assert_eq!(snippet(items[2].span), "price_eur: price * 0.908");
    assert_eq!(snippet(expr.span), "price * 0.908");

    // let per_window = bids |> key_by auction |> window tumble(10s) |> aggregate { ... }
    let ItemKind::Let(per_window) = item(&module, 5) else {
        panic!("not a let")
    };
    let steps = &per_window.pipe.steps;
    assert!(
        matches!(&steps[0].kind, StepKind::KeyBy(keys) if keys.len() == 1 && keys[0].name == "auction")
    );
    let StepKind::Window(window) = &steps[1].kind else {
        panic!("not a window")
    };
    assert_eq!(window.name.name, "tumble");
    assert_eq!(window.args[0].name, None);
    assert_eq!(
        window.args[0].value.kind,
        ExprKind::Lit(Literal::Duration(10_000))
    );
    assert_eq!(snippet(steps[1].span), "window tumble(10s)");
    let StepKind::Aggregate { by, items, .. } = &steps[2].kind else {
        panic!("not an aggregate")
    };
    assert!(by.is_empty());
    let shown: Vec<String> = items
        .iter()
        .map(|i| match &i.kind {
            SelectItemKind::Named { name, expr } => format!("{}: {}", name.name, show(expr)),
            SelectItemKind::Star => "*".into(),
        })
        .collect();
    assert_eq!(
        shown,
        ["bids: count()", "top: max(price)", "avg_price: avg(price)"]
    );

    // let max_price = ... |> aggregate by auction { n: count(*) }
    let ItemKind::Let(max_price) = item(&module, 6) else {
        panic!("not a let")
    };
    let StepKind::Aggregate { by, items, .. } = &max_price.pipe.steps[1].kind else {
        panic!("not an aggregate")
    };
    assert_eq!(by.iter().map(|i| &*i.name).collect::<Vec<_>>(), ["auction"]);
    let SelectItemKind::Named { expr, .. } = &items[0].kind else {
        panic!("not named")
    };
    assert!(
        matches!(&expr.kind, ExprKind::Call(name, args) if name.name == "count" && args.is_empty())
    );
    assert_eq!(snippet(expr.span), "count(*)");

    // sinks
    let ItemKind::Sink(sink) = item(&module, 7) else {
        panic!("not a sink")
    };
    assert_eq!((&*sink.pipe.input.name, sink.pipe.steps.len()), ("q1", 0));
    assert_eq!(sink.connector.name.name, "stdout");
    assert_eq!(sink.format.as_ref().unwrap().name.name, "json");
    assert_eq!(
        snippet(module.items[7].span),
        "sink q1 -> stdout() format json"
    );
    let ItemKind::Sink(sink) = item(&module, 8) else {
        panic!("not a sink")
    };
    assert_eq!(sink.connector.args[0].name.as_ref().unwrap().name, "path");
    assert_eq!(sink.format.as_ref().unwrap().name.name, "csv");
    let ItemKind::Sink(sink) = item(&module, 9) else {
        panic!("not a sink")
    };
    let StepKind::Filter(filter) = &sink.pipe.steps[0].kind else {
        panic!("not a filter")
    };
    assert_eq!(show(filter), "((price % 2) = 0)");
    let StepKind::Select(items) = &sink.pipe.steps[1].kind else {
        panic!("not a select")
    };
    assert_eq!(items[0].kind, SelectItemKind::Star);
    assert_eq!(snippet(items[0].span), "*");
    assert_eq!(sink.connector.name.name, "checksum");
    assert_eq!(
        snippet(sink.pipe.span),
        "bids |> filter price % 2 = 0 |> select { * }"
    );
}

#[test]
fn empty_and_comment_only_files_give_an_empty_module() {
    assert_eq!(parse_ok("").items.len(), 0);
    assert_eq!(parse_ok("// nothing here\n\n   // at all\n").items.len(), 0);
    assert_eq!(parse_ok("\u{feff}let a = b").items.len(), 1);
}

#[test]
fn spans_carry_the_file_id() {
    let (module, _) = parse(FileId(3), "let a = b |> filter x");
    let module = module.unwrap();
    assert_eq!(module.items[0].span.file, FileId(3));
}

#[test]
fn layout_is_free_within_an_item() {
    let module = parse_ok(
        "let a =\n  b |>\n  filter x\n    > 1 |> select\n{ x,\n y: 1, }\nsink a -> out format json",
    );
    assert_eq!(module.items.len(), 2);
    let module = parse_ok("schema S { a: i64, } let x = a sink x -> s");
    assert_eq!(module.items.len(), 3);
}

#[test]
fn an_aggregate_takes_options_after_its_block_and_the_next_item_stays_apart() {
    let module = parse_ok(
        "let t = o |> aggregate by k { n: count() } ttl(1h, time: processing)\nsink t -> stdout()",
    );
    assert_eq!(module.items.len(), 2);
    let ItemKind::Let(t) = item(&module, 0) else {
        panic!("not a let")
    };
    let StepKind::Aggregate { options, .. } = &t.pipe.steps[0].kind else {
        panic!("not an aggregate")
    };
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].name.name, "ttl");
    assert_eq!(options[0].args.len(), 2);
    assert_eq!(
        options[0].args[1].name.as_ref().map(|n| n.name.as_str()),
        Some("time")
    );
    // Without options, none.
    let module = parse_ok("let t = o |> aggregate by k { n: count() }\nsink t -> stdout()");
    let ItemKind::Let(t) = item(&module, 0) else {
        panic!("not a let")
    };
    assert!(
        matches!(&t.pipe.steps[0].kind, StepKind::Aggregate { options, .. } if options.is_empty())
    );
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[test]
fn in_between_like_and_concat_bind_as_in_sql() {
    assert_eq!(show(&filter_expr("a || b || c")), "((a || b) || c)");
    assert_eq!(show(&filter_expr("a || b + 1 = c")), "((a || (b + 1)) = c)");
    assert_eq!(
        show(&filter_expr("a + 1 not in (2, b * 3) and c")),
        "(((a + 1) not in (2, (b * 3))) and c)"
    );
    assert_eq!(
        show(&filter_expr("x between 1 + y and 3 * 2 or z")),
        "((x between (1 + y) and (3 * 2)) or z)"
    );
    assert_eq!(
        show(&filter_expr("not s NOT LIKE 'a%' ESCAPE '!'")),
        "(not (not like(s, \"a%\", \"!\")))"
    );
    assert_eq!(show(&filter_expr("inventory in (1)")), "(inventory in (1))");
    // One comparison per chain: `in` counts as one.
    let error = single_error("let x = a |> filter a = b in (1)");
    assert!(error.message.contains("cannot be chained"), "{error:?}");
}

#[test]
fn arithmetic_is_left_associative_with_usual_precedence() {
    assert_eq!(show(&filter_expr("a - b - c")), "((a - b) - c)");
    assert_eq!(show(&filter_expr("a / b % c * d")), "(((a / b) % c) * d)");
    assert_eq!(show(&filter_expr("a + b * c - d")), "((a + (b * c)) - d)");
    assert_eq!(show(&filter_expr("(a + b) * c")), "((a + b) * c)");
    assert_eq!(show(&filter_expr("-a * b")), "((-a) * b)");
    assert_eq!(show(&filter_expr("a - -b")), "(a - (-b))");
    assert_eq!(show(&filter_expr("a * b > c + d")), "((a * b) > (c + d))");
}

#[test]
fn boolean_operators_bind_looser_than_comparisons() {
    assert_eq!(show(&filter_expr("not a = b")), "(not (a = b))");
    assert_eq!(show(&filter_expr("a or b and c")), "(a or (b and c))");
    assert_eq!(show(&filter_expr("a and b or c")), "((a and b) or c)");
    assert_eq!(show(&filter_expr("a or b or c")), "((a or b) or c)");
    assert_eq!(show(&filter_expr("not a and b")), "((not a) and b)");
    assert_eq!(show(&filter_expr("not not a")), "(not (not a))");
    assert_eq!(
        show(&filter_expr("a = b and c <> d or e != f")),
        "(((a = b) and (c != d)) or (e != f))"
    );
}

#[test]
fn comparison_spellings() {
    assert_eq!(show(&filter_expr("a == b")), "(a = b)");
    assert_eq!(show(&filter_expr("a <> b")), "(a != b)");
    assert_eq!(show(&filter_expr("a <= b")), "(a <= b)");
    assert_eq!(show(&filter_expr("a >= b")), "(a >= b)");
    assert_eq!(show(&filter_expr("a < b")), "(a < b)");
}

#[test]
fn is_null_and_casts() {
    assert_eq!(show(&filter_expr("a + b is null")), "((a + b) is null)");
    assert_eq!(
        show(&filter_expr("a IS NOT NULL and b")),
        "((a is not null) and b)"
    );
    assert_eq!(show(&filter_expr("-x as f64")), "(-(x as f64))");
    assert_eq!(show(&filter_expr("a + b as f64")), "(a + (b as f64))");
    assert_eq!(
        show(&filter_expr("x as i64 as string?")),
        "((x as i64) as string?)"
    );
    assert_eq!(show(&filter_expr("cast(a + b as f64)")), "((a + b) as f64)");
    assert_eq!(show(&filter_expr("CAST(x AS i64) + 1")), "((x as i64) + 1)");
    assert_eq!(
        show(&filter_expr("cast(cast(x as i64) as f64)")),
        "((x as i64) as f64)"
    );
    assert_eq!(
        show(&filter_expr("cast(x as i64 as f64)")),
        "((x as i64) as f64)"
    );
    let expr = filter_expr("cast(a as f64)");
    assert!(matches!(&expr.kind, ExprKind::Cast(_, ty) if ty.type_name() == "f64"));
}

#[test]
fn case_if_and_calls() {
    assert_eq!(
        show(&filter_expr(
            "CASE WHEN a THEN 1 when b then 2 Else 3 END = 1"
        )),
        "(case when a then 1 when b then 2 else 3 end = 1)"
    );
    assert_eq!(
        show(&filter_expr("case when a then 1 end")),
        "case when a then 1 end"
    );
    assert_eq!(
        show(&filter_expr("if(a > 1, 'x', 'y')")),
        r#"case when (a > 1) then "x" else "y" end"#
    );
    assert_eq!(show(&filter_expr("f(a, g(b), )")), "f(a, g(b))");
    assert_eq!(
        show(&filter_expr("count(*) > count()")),
        "(count() > count())"
    );
    assert_eq!(
        show(&filter_expr("TRUE and False or NULL")),
        "((true and false) or null)"
    );
}

#[test]
fn distinct_is_the_keyword_when_an_expression_follows_it_in_a_call() {
    assert_eq!(
        show(&filter_expr("count(distinct x) > 1")),
        "(count(distinct x) > 1)"
    );
    assert_eq!(
        show(&filter_expr("count(DISTINCT (x)) > 1")),
        "(count(distinct x) > 1)"
    );
    assert_eq!(
        show(&filter_expr("count(distinct(x)) > 1")),
        "(count(distinct x) > 1)"
    );
    assert_eq!(show(&filter_expr("f(distinct - 1)")), "f(distinct (-1))");
    // Otherwise it is a name.
    assert_eq!(show(&filter_expr("f(distinct)")), "f(distinct)");
    assert_eq!(show(&filter_expr("f(distinct, x)")), "f(distinct, x)");
    assert_eq!(show(&filter_expr("f(distinct + 1)")), "f((distinct + 1))");
    assert_eq!(show(&filter_expr("distinct(a, b)")), "distinct(a, b)");
    // Once the keyword, always: the expression after it is not parsed a second time as a call
    // of `distinct` (which made nested unclosed `distinct(` take time exponential in the depth;
    // `compiler/tests/fuzz.rs` times it).
    check_error(
        "let x = a |> filter f(distinct(a, b))",
        "E0001",
        "expected `)` to close `(`, found `,`",
        ",",
    );
}

#[test]
fn expression_spans() {
    let text = "let x = a |> filter -(a + b) * c is not null";
    let module = parse_ok(text);
    let ItemKind::Let(decl) = item(&module, 0) else {
        panic!("not a let")
    };
    let StepKind::Filter(expr) = &decl.pipe.steps[0].kind else {
        panic!("not a filter")
    };
    assert_eq!(&text[expr.span.range()], "-(a + b) * c is not null");
    let ExprKind::IsNull {
        expr: product,
        negated: true,
    } = &expr.kind
    else {
        panic!("not is null")
    };
    assert_eq!(&text[product.span.range()], "-(a + b) * c");
    let ExprKind::Binary(BinaryOp::Mul, neg, _) = &product.kind else {
        panic!("not *")
    };
    assert_eq!(&text[neg.span.range()], "-(a + b)");
    let ExprKind::Unary(UnaryOp::Neg, sum) = &neg.kind else {
        panic!("not -")
    };
    assert_eq!(&text[sum.span.range()], "(a + b)");
}

#[test]
fn keywords_are_reserved_only_as_whole_words() {
    assert_eq!(
        show(&filter_expr("android = order and casting")),
        "((android = order) and casting)"
    );
    assert_eq!(show(&filter_expr("is_null = ends")), "(is_null = ends)");
    // Step and item keywords are not reserved in expressions.
    assert_eq!(show(&filter_expr("window = select")), "(window = select)");
}

// ---------------------------------------------------------------------------------------------
// Literals

#[test]
fn literals() {
    assert_eq!(lit("10_000"), Literal::Int(10_000));
    assert_eq!(lit("0"), Literal::Int(0));
    assert_eq!(lit("9223372036854775807"), Literal::Int(i64::MAX));
    assert_eq!(lit("-9223372036854775808"), Literal::Int(i64::MIN));
    assert_eq!(lit("0.908"), Literal::Float(0.908));
    assert_eq!(lit("1e6"), Literal::Float(1e6));
    assert_eq!(lit("2.5e-3"), Literal::Float(2.5e-3));
    assert_eq!(lit("1_000.5"), Literal::Float(1000.5));
    assert_eq!(lit("250ms"), Literal::Duration(250));
    assert_eq!(lit("10s"), Literal::Duration(10_000));
    assert_eq!(lit("1m"), Literal::Duration(60_000));
    assert_eq!(lit("2h"), Literal::Duration(7_200_000));
    assert_eq!(lit("1d"), Literal::Duration(86_400_000));
    assert_eq!(lit("true"), Literal::Bool(true));
    assert_eq!(lit("null"), Literal::Null);
    assert_eq!(
        lit(r#""a\"b\\c\n\t\r\u{41}\u{1F600}""#),
        Literal::Str("a\"b\\c\n\t\rA\u{1F600}".into())
    );
    assert_eq!(lit("'it''s'"), Literal::Str("it's".into()));
    assert_eq!(lit(r"'a\nb'"), Literal::Str(r"a\nb".into()));
    assert_eq!(lit(r#""""#), Literal::Str(String::new()));
    assert_eq!(
        lit(r#""über // not a comment""#),
        Literal::Str("über // not a comment".into())
    );
}

#[test]
fn a_duration_has_no_space_before_its_unit() {
    let d = check_error(
        "let x = a |> filter d > 10 s",
        "E0018",
        "`10 s` is not a duration",
        "10 s",
    );
    assert_eq!(d.primary.message, "write `10s`");
    let d = check_error(
        "let x = a |> window tumble(5  minutes)",
        "E0018",
        "`5  minutes` is not a duration",
        "5  minutes",
    );
    assert_eq!(d.primary.message, "write `5m`");
    // A unit written out without a space is an unknown unit, with the one to write instead.
    let d = check_error(
        "let x = a |> window tumble(10sec)",
        "E0005",
        "unknown duration unit `sec` in `10sec`",
        "sec",
    );
    assert_eq!(d.hints[0], "write `10s`");
    // Not after a name or a fraction: `x1 s` and `1.5 s` are other mistakes.
    assert_ne!(single_error("let x = a |> filter x1 s").code, "E0018");
}

#[test]
fn a_join_without_on_says_so() {
    for text in [
        "let x = a |> join b as c",
        "let x = a |> join b ttl(1h)",
        "let x = a |> left interval_join b as c within(0s, 1s)",
    ] {
        let d = single_error(text);
        assert_eq!(d.code, "E0019", "{text}: {d:#?}");
        assert_eq!(d.message, "missing `on` in a join");
        assert!(d.hints[0].contains("on id = p.order_id"), "{d:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: one test per kind, checking code, message and the underlined text

#[test]
fn e0001_expected_token_after_a_field() {
    check_error(
        "let x = a |> select { a b }",
        "E0001",
        "expected `,` or `}` after a field, found `b`",
        "b",
    );
    check_error(
        "schema S { a: i64 b: i64 }",
        "E0001",
        "expected `,` or `}` after a field, found `b`",
        "b",
    );
    let d = check_error(
        "let x = a |> select { price * 2 }",
        "E0001",
        "expected `,` or `}` after a field, found `*`",
        "*",
    );
    assert_eq!(
        d.hints,
        ["to compute a field, give it a name: `name: expression`"]
    );
}

#[test]
fn e0001_expected_equals_after_the_source_name() {
    check_error(
        "source bids nexmark()",
        "E0001",
        "expected `=` after the source name, found `nexmark`",
        "nexmark",
    );
    check_error(
        "let q1 bids",
        "E0001",
        "expected `=` after the name, found `bids`",
        "bids",
    );
    check_error(
        "source x: = f()",
        "E0001",
        "expected a schema name after `:`, found `=`",
        "=",
    );
}

#[test]
fn e0001_other_expectations() {
    check_error(
        "sink x stdout()",
        "E0001",
        "expected `|>` or `->`, found `stdout`",
        "stdout",
    );
    check_error(
        "let x = a |> filter a is 5",
        "E0001",
        "expected `not` or `null` after `is`, found `5`",
        "5",
    );
    check_error(
        "let x = a |> filter if(a, b)",
        "E0001",
        "expected `,` in `if(condition, then, else)`, found `)`",
        ")",
    );
    check_error(
        "let x = a |> window",
        "E0001",
        "expected a window such as `tumble(10s)` after `window`, found end of input",
        "",
    );
    check_error(
        "let x = a |> key_by",
        "E0001",
        "expected a field name, found end of input",
        "",
    );
    let d = check_error(
        "source x = file() fromat json",
        "E0001",
        "expected `format`, `event_time` or a new item, found `fromat`",
        "fromat",
    );
    assert_eq!(d.hints, ["did you mean `format`?"]);
    let d = check_error(
        "source x = file(path \"a\")",
        "E0001",
        "expected `,` or `)` after an argument, found string `\"a\"`",
        "\"a\"",
    );
    assert_eq!(d.hints, ["named arguments are written `name: value`"]);
}

#[test]
fn e0001_at_the_end_points_after_the_last_token_and_names_the_unclosed_delimiter() {
    let text = "let x = a |> select { a, b // trailing comment\n\nsink x -> stdout";
    let diagnostics = diagnostics(text);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, "E0001");
    assert_eq!(d.message, "expected `,` or `}` after a field, found `sink`");
    // An empty span right after `b`.
    let after_b = text.find(" //").unwrap();
    assert_eq!(d.primary.span.range(), after_b..after_b);
    assert_eq!(d.secondary.len(), 1);
    assert_eq!(&text[d.secondary[0].span.range()], "{");
    assert_eq!(d.secondary[0].message, "unclosed `{`");

    let text = "let x = a |> filter case when a then b";
    let d = check_error(
        text,
        "E0001",
        "expected `when`, `else` or `end`, found end of input",
        "",
    );
    assert_eq!(d.primary.span.start as usize, text.len());
    assert_eq!(d.secondary[0].message, "unclosed `case`");
}

#[test]
fn e0002_expected_an_expression() {
    check_error(
        "let x = a |> filter (a + )",
        "E0002",
        "expected an expression, found `)`",
        ")",
    );
    check_error(
        "let x = a |> filter )",
        "E0002",
        "expected an expression, found `)`",
        ")",
    );
    check_error(
        "let x = a |> select { b: }",
        "E0002",
        "expected an expression, found `}`",
        "}",
    );
    let d = check_error(
        "let x = a |> filter a = not b",
        "E0002",
        "expected an expression, found keyword `not`",
        "not",
    );
    assert_eq!(
        d.hints,
        ["`not` applies to a whole comparison; add parentheses: `a = (not b)`"]
    );
    let d = check_error(
        "let x = a |> filter end > 1",
        "E0002",
        "expected an expression, found keyword `end`",
        "end",
    );
    assert_eq!(
        d.hints,
        ["`end` is a reserved keyword and cannot be used as a field name"]
    );
}

#[test]
fn e0003_unterminated_string() {
    let d = check_error(
        "let x = a |> filter s = \"abc\n",
        "E0003",
        "unterminated string literal",
        "\"abc",
    );
    assert_eq!(d.primary.message, "missing closing `\"`");
    check_error(
        "let x = a |> filter s = 'it''s\r\n",
        "E0003",
        "unterminated string literal",
        "'it''s",
    );
    check_error(
        "let x = a |> filter s = \"ends in a backslash\\",
        "E0003",
        "unterminated string literal",
        "\"ends in a backslash\\",
    );
}

#[test]
fn e0004_invalid_escape() {
    let text = r#"let x = a |> filter s = "a\qb\u{41}\u{zz}\u{D800}""#;
    let diagnostics = diagnostics(text);
    let found: Vec<(&str, &str, &str)> = diagnostics
        .iter()
        .map(|d| (d.code, &*d.message, underlined(text, d)))
        .collect();
    assert_eq!(
        found,
        [
            ("E0004", r"unknown escape sequence `\q`", r"\q"),
            ("E0004", r"invalid unicode escape `\u{zz}`", r"\u{zz}"),
            ("E0004", r"invalid unicode escape `\u{D800}`", r"\u{D800}"),
        ]
    );
}

#[test]
fn e0005_unknown_duration_unit() {
    let d = check_error(
        "let x = a |> window tumble(10x)",
        "E0005",
        "unknown duration unit `x` in `10x`",
        "x",
    );
    assert_eq!(
        d.hints,
        ["duration units are ms, s, m, h and d, as in `250ms` or `10s`"]
    );
    check_error(
        "let x = a |> filter d > 5sec",
        "E0005",
        "unknown duration unit `sec` in `5sec`",
        "sec",
    );
    check_error(
        "let x = a |> filter d > 1e",
        "E0005",
        "unknown duration unit `e` in `1e`",
        "e",
    );
}

#[test]
fn e0006_fractional_duration() {
    check_error(
        "let x = a |> filter d > 1.5s",
        "E0006",
        "duration `1.5s` is not a whole number",
        "1.5s",
    );
}

#[test]
fn e0007_literal_out_of_range() {
    check_error(
        "let x = a |> filter d > 9223372036854775808",
        "E0007",
        "integer literal out of range",
        "9223372036854775808",
    );
    check_error(
        "let x = a |> filter d > 99_999_999_999_999_999_999",
        "E0007",
        "integer literal out of range",
        "99_999_999_999_999_999_999",
    );
    check_error(
        "let x = a |> filter d > 1e999",
        "E0007",
        "float literal out of range",
        "1e999",
    );
    check_error(
        "let x = a |> filter d > 9999999999999999d",
        "E0007",
        "duration literal out of range",
        "9999999999999999d",
    );
    // `-9223372036854775808` fits, but not once it is cast first.
    check_error(
        "let x = a |> filter d > -9223372036854775808 as f64",
        "E0007",
        "integer literal out of range",
        "9223372036854775808",
    );
}

#[test]
fn e0008_chained_comparisons() {
    let text = "let x = a |> filter a < b < c";
    let d = check_error(
        text,
        "E0008",
        "`a < b < c`: comparisons cannot be chained",
        "<",
    );
    assert_eq!(d.primary.span.start as usize, text.rfind('<').unwrap());
    assert_eq!(d.secondary[0].span.start as usize, text.find('<').unwrap());
    check_error(
        "let x = a |> filter a = b is null",
        "E0008",
        "`a = b is null`: comparisons cannot be chained",
        "is null",
    );
    check_error(
        "let x = a |> filter a is null = b",
        "E0008",
        "`a is null = b`: comparisons cannot be chained",
        "=",
    );
    // Parentheses make it explicit and fine.
    assert_eq!(show(&filter_expr("(a < b) = c")), "((a < b) = c)");
}

#[test]
fn e0009_reserved_keyword_as_a_name() {
    let d = check_error(
        "let x = a |> select { end: 1 }",
        "E0009",
        "`end` is a reserved keyword",
        "end",
    );
    assert_eq!(d.primary.message, "cannot be used as a name");
    check_error(
        "let case = a",
        "E0009",
        "`case` is a reserved keyword",
        "case",
    );
    check_error(
        "schema S { x: i64, WHEN: i64 }",
        "E0009",
        "`WHEN` is a reserved keyword",
        "WHEN",
    );
    check_error(
        "let x = a |> key_by b, null",
        "E0009",
        "`null` is a reserved keyword",
        "null",
    );
    check_error(
        "source as = f()",
        "E0009",
        "`as` is a reserved keyword",
        "as",
    );
}

#[test]
fn e0010_unknown_step() {
    let d = check_error(
        "let x = a |> fliter price > 1",
        "E0010",
        "unknown step `fliter`",
        "fliter",
    );
    assert_eq!(
        d.hints,
        ["did you mean `filter`? steps are: filter, select, key_by, window, aggregate, join, interval_join, window_join, lookup_join, left, dedup, top"]
    );
    let d = check_error(
        "let x = a |> explode y",
        "E0010",
        "unknown step `explode`",
        "explode",
    );
    assert_eq!(
        d.hints,
        ["steps are: filter, select, key_by, window, aggregate, join, interval_join, window_join, lookup_join, left, dedup, top"]
    );
}

#[test]
fn e0011_missing_pipe_between_steps() {
    check_error(
        "let x = a filter price > 1",
        "E0011",
        "missing `|>` before `filter`",
        "filter",
    );
    check_error(
        "let x = a |> filter price > 1 select { price }",
        "E0011",
        "missing `|>` before `select`",
        "select",
    );
    check_error(
        "sink a |> key_by b window tumble(1s) -> out",
        "E0011",
        "missing `|>` before `window`",
        "window",
    );
}

#[test]
fn e0012_unknown_item() {
    let d = check_error(
        "lett x = a",
        "E0012",
        "expected an item, found `lett`",
        "lett",
    );
    assert_eq!(
        d.hints,
        ["did you mean `let`? items are: schema, source, let, sink"]
    );
    check_error(
        "// header\n)",
        "E0001",
        "expected an item (`schema`, `source`, `let` or `sink`), found `)`",
        ")",
    );
}

#[test]
fn e0013_nesting_too_deep() {
    let text = format!(
        "let x = a |> filter {}a{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let d = check_error(&text, "E0013", "`(` nested too deeply", "(");
    assert_eq!(
        d.primary.span.start as usize,
        "let x = a |> filter ".len() + 128
    );
    // Unbalanced, too: rejected without recursing.
    let text = format!("let x = a |> filter {}", "(".repeat(10_000));
    check_error(&text, "E0013", "`(` nested too deeply", "(");
    let text = format!(
        "let x = a |> filter {}1{}",
        "case when a then ".repeat(200),
        " end".repeat(200)
    );
    check_error(&text, "E0013", "`case` nested too deeply", "case");
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let n = 128;
    let parens = format!(
        "let x = a |> filter {}a{} > 1",
        "(".repeat(n),
        ")".repeat(n)
    );
    assert_eq!(parse_ok(&parens).items.len(), 1);
    let calls = format!("let x = a |> filter {}a{}", "f(".repeat(n), ")".repeat(n));
    assert_eq!(parse_ok(&calls).items.len(), 1);
    let cases = format!(
        "let x = a |> filter {}1{}",
        "case when a then ".repeat(n),
        " end".repeat(n)
    );
    assert_eq!(parse_ok(&cases).items.len(), 1);
    let casts = format!(
        "let x = a |> filter {}a{}",
        "cast(".repeat(n),
        " as i64)".repeat(n)
    );
    assert_eq!(parse_ok(&casts).items.len(), 1);
}

#[test]
fn e0014_long_operator_chains_are_rejected_without_overflowing() {
    let text = format!("let x = a |> filter {}a", "a + ".repeat(10_000));
    let d = check_error(&text, "E0014", "expression is too deeply nested", "+");
    assert_eq!(d.primary.message, "more than 256 levels of operators");
    for chain in [
        "not ".repeat(10_000) + "a",
        "- ".repeat(10_000) + "a",
        "a".to_owned() + &" as i64".repeat(10_000),
    ] {
        let text = format!("let x = a |> filter {chain}");
        assert_eq!(single_error(&text).code, "E0014");
    }
    // Flat repetition elsewhere is fine.
    let steps = format!("let x = a {}", "|> filter b ".repeat(2_000));
    assert_eq!(parse_ok(&steps).items.len(), 1);
    let select = format!("let x = a |> select {{ {} }}", "b, ".repeat(2_000));
    assert_eq!(parse_ok(&select).items.len(), 1);
    // A long chain below the limit is fine.
    let text = format!("let x = a |> filter {}a", "a + ".repeat(200));
    assert_eq!(parse_ok(&text).items.len(), 1);
}

#[test]
fn e0015_cast_without_a_type() {
    let d = check_error(
        "let x = a |> filter cast(x) > 1",
        "E0015",
        "missing target type in `cast`",
        ")",
    );
    assert_eq!(d.primary.message, "expected `as` and a type before `)`");
    check_error(
        "let x = a |> filter cast((x as i64)) > 1",
        "E0015",
        "missing target type in `cast`",
        ")",
    );
}

// ---------------------------------------------------------------------------------------------
// Recovery

#[test]
fn all_errors_of_a_file_are_reported_and_good_items_kept() {
    let text = "\
schema S { a: i64 b: i64 }
source ok = stdin() format json
let q = ok |> fliter a > 1
let good = ok |> filter a > 10_000
sink q -> stdout() format jsn(
sink good -> stdout
let r = ok |> filter a < b < c and d > 99999999999999999999 and e = \"x\\q\"
let s = ok |> select { x: \"unterminated }
";
    let (module, diagnostics) = parse(FileId(0), text);
    let found: Vec<(&str, &str)> = diagnostics
        .iter()
        .map(|d| (d.code, underlined(text, d)))
        .collect();
    assert_eq!(
        found,
        [
            ("E0001", "b"),
            ("E0010", "fliter"),
            ("E0002", ""),
            ("E0008", "<"),
            ("E0007", "99999999999999999999"),
            ("E0004", "\\q"),
            ("E0003", "\"unterminated }"),
        ],
        "{diagnostics:#?}"
    );
    let names: Vec<String> = module
        .unwrap()
        .items
        .iter()
        .map(|item| match &item.kind {
            ItemKind::Source(s) => s.name.name.clone(),
            ItemKind::Let(l) => l.name.name.clone(),
            ItemKind::Sink(s) => format!("sink {}", s.pipe.input.name),
            ItemKind::Schema(s) => s.name.name.clone(),
        })
        .collect();
    assert_eq!(names, ["ok", "good", "sink good"]);
}

#[test]
fn items_before_an_error_in_the_same_chunk_are_kept() {
    // Indented items share a chunk; the ones before the broken one survive.
    let text = "let a = b\n  let c = d\n  let e = f |> fliter x";
    let (module, diagnostics) = parse(FileId(0), text);
    assert_eq!(diagnostics.len(), 1);
    let names: Vec<String> = module
        .unwrap()
        .items
        .iter()
        .filter_map(|item| match &item.kind {
            ItemKind::Let(l) => Some(l.name.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["a", "c"]);
}

#[test]
fn no_module_when_nothing_parsed() {
    let (module, diagnostics) = parse(FileId(0), "let = a");
    assert!(module.is_none());
    assert_eq!(diagnostics[0].code, "E0001");
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// A tiny deterministic PRNG (xorshift64*), so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Parses `text` and checks what must hold for any input.
fn check_invariants(text: &str) {
    let (module, diagnostics) = parse(FileId(0), text);
    let mut sorted = diagnostics.clone();
    weir_dsl::diagnostic::sort(&mut sorted);
    assert_eq!(sorted, diagnostics, "diagnostics not sorted for {text:?}");
    if diagnostics.iter().all(|d| !d.is_error()) {
        assert!(module.is_some(), "no module and no error for {text:?}");
    }
    for d in &diagnostics {
        for span in std::iter::once(d.primary.span).chain(d.secondary.iter().map(|l| l.span)) {
            assert!(
                text.get(span.range()).is_some(),
                "bad span {span:?} in {d:#?} for {text:?}"
            );
        }
        assert!(d.code.starts_with("E00") && d.code.len() == 5, "{d:#?}");
        let first = d.message.chars().next().unwrap();
        assert!(
            !first.is_uppercase() && !d.message.ends_with('.'),
            "message style: {d:#?}"
        );
    }
}

#[test]
fn random_token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        "schema",
        "source",
        "let",
        "sink",
        "filter",
        "select",
        "key_by",
        "window",
        "aggregate",
        "by",
        "format",
        "event_time",
        "watermark",
        "and",
        "OR",
        "not",
        "case",
        "when",
        "then",
        "else",
        "end",
        "is",
        "null",
        "true",
        "as",
        "cast",
        "if",
        "x",
        "price",
        "f",
        "10",
        "10s",
        "1.5",
        "1e",
        "2x",
        "\"s\"",
        "'q''",
        "\"\\u{",
        "\"\\",
        "(",
        ")",
        "{",
        "}",
        ",",
        ":",
        "?",
        "|>",
        "->",
        "=",
        "==",
        "<>",
        "!=",
        "<",
        "<=",
        ">",
        "+",
        "-",
        "*",
        "/",
        "%",
        "//",
        "\n",
        " ",
        "\t",
        "é",
        "\u{feff}",
        "\r\n",
        "\"",
        "'",
        "_",
        "9223372036854775808",
        "#",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3_000 {
        let len = rng.below(40);
        let mut text = String::new();
        for _ in 0..len {
            text.push_str(rng.pick(TOKENS));
            if rng.below(3) == 0 {
                text.push(' ');
            }
        }
        check_invariants(&text);
    }
}

#[test]
fn random_characters_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..3_000 {
        let len = rng.below(60);
        let text: String = (0..len)
            .map(|_| match rng.below(10) {
                0 => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('x'),
                _ => char::from(32 + rng.below(95) as u8),
            })
            .collect();
        check_invariants(&text);
    }
}

#[test]
fn random_mutations_of_the_example_never_panic() {
    let mut rng = Rng(7);
    let insertions = [
        "(", ")", "{", "}", "\"", "'", "|>", ",", " ", "\n", "x", "not ", "é", "1", "s", "//",
    ];
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    for round in 0..3_000 {
        // Mostly a few consecutive lines (one or two items: fast in debug builds), sometimes
        // the whole example.
        let base = if round % 30 == 0 {
            EXAMPLE.to_owned()
        } else {
            let start = rng.below(lines.len());
            let end = (start + 1 + rng.below(6)).min(lines.len());
            lines[start..end].join("\n")
        };
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len() + 1);
            match rng.below(4) {
                0 if at < text.len() => {
                    text.remove(at);
                }
                1 => {
                    for (k, c) in rng.pick(&insertions).chars().enumerate() {
                        text.insert(at + k, c);
                    }
                }
                2 if at + 1 < text.len() => text.swap(at, at + 1),
                _ if at < text.len() => {
                    let end = (at + rng.below(20)).min(text.len());
                    text.drain(at..end);
                }
                _ => {}
            }
        }
        check_invariants(&text.into_iter().collect::<String>());
    }
}

#[test]
fn nested_types_paths_indexes_and_unnest_parse() {
    let src = "schema O { p: { u: { id: i64 }, n: string? }?, tags: [string?], items: [{ sku: string }] }\n\
               sink o |> filter p.u.id > 1 and tags[1] = 'a' |> unnest items as item |> select { s: items[2].sku } -> stdout()\n";
    let (module, diagnostics) = weir_dsl::parse(weir_dsl::FileId(0), src);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let module = module.expect("parsed");
    let ItemKind::Schema(schema) = &module.items[0].kind else {
        panic!("a schema")
    };
    let TypeKind::Record(fields) = &schema.fields[0].ty.kind else {
        panic!("a nested record")
    };
    assert!(schema.fields[0].ty.optional);
    assert_eq!(fields[0].ty.type_name(), "record");
    let TypeKind::Array(element) = &schema.fields[1].ty.kind else {
        panic!("an array")
    };
    assert!(element.optional && element.type_name() == "string");
    let ItemKind::Sink(sink) = &module.items[1].kind else {
        panic!("a sink")
    };
    let StepKind::Filter(e) = &sink.pipe.steps[0].kind else {
        panic!("a filter")
    };
    assert_eq!(show(e), "((p.u.id > 1) and (tags[1] = \"a\"))");
    let StepKind::Unnest { array, alias } = &sink.pipe.steps[1].kind else {
        panic!("an unnest")
    };
    assert_eq!(
        (show(array).as_str(), alias.name.as_str()),
        ("items", "item")
    );
    let StepKind::Select(items) = &sink.pipe.steps[2].kind else {
        panic!("a select")
    };
    let SelectItemKind::Named { expr, .. } = &items[0].kind else {
        panic!("a named item")
    };
    assert_eq!(show(expr), "items[2].sku");
}
