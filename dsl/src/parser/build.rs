//! Builds the AST from pest's pairs, and reports what the grammar deliberately lets through:
//! bad literals (unknown duration units, out-of-range numbers, bad escapes), chained
//! comparisons, `cast` without a type and expression trees deeper than [`MAX_EXPR_DEPTH`].
//!
//! Expressions arrive flat (`operand (op operand)*`, see the grammar); precedence is resolved
//! here with an explicit operator stack, so long operator chains use no native stack. The only
//! recursion is through parentheses and `case`, whose depth the pre-scan has already bounded.

use pest::iterators::{Pair, Pairs};

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};

use super::{codes, Rule};

/// The deepest expression tree the parser builds. Deeper trees (`a + a + ...` with thousands of
/// terms) are rejected, so later stages may walk expressions recursively.
pub(super) const MAX_EXPR_DEPTH: u32 = 256;

/// An expression together with the depth of its tree.
type Built = (Expr, u32);

/// Turns the pairs of one chunk into items, collecting diagnostics.
pub(super) struct Builder {
    file: FileId,
    /// Byte offset of the chunk in the file; pest positions are relative to the chunk.
    offset: usize,
    pub diagnostics: Vec<Diagnostic>,
    /// Start positions (absolute) of `as TYPE` suffixes that belong to an enclosing `cast(...)`.
    cast_targets: Vec<usize>,
    /// Whether the current item already reported [`codes::EXPRESSION_TOO_DEEP`].
    too_deep_reported: bool,
}

/// The next child with rule `rule`, skipping punctuation and keywords before it.
fn next_of<'i>(pairs: &mut Pairs<'i, Rule>, rule: Rule) -> Option<Pair<'i, Rule>> {
    pairs.find(|p| p.as_rule() == rule)
}

impl Builder {
    pub fn new(file: FileId, offset: usize) -> Self {
        Builder {
            file,
            offset,
            diagnostics: Vec::new(),
            cast_targets: Vec::new(),
            too_deep_reported: false,
        }
    }

    /// The span of a pair, without trailing whitespace or comments.
    ///
    /// pest includes the whitespace skipped before an optional or repeated part that then
    /// matched nothing (`4s\n` in `watermark 4s\n`), so the end is taken from the last token
    /// instead: every rule of the grammar ends with a named token rule, and tokens are atomic.
    /// `next_back` is O(1), and the right spine of a pair is a few levels deep.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let start = pair.as_span().start();
        let mut last = pair.clone();
        while let Some(child) = last.clone().into_inner().next_back() {
            last = child;
        }
        let end = last.as_span().end().max(start);
        Span::new(self.file, self.offset + start, self.offset + end)
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Builds one item. Returns `None` when the item has errors (they are recorded).
    pub fn item(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let before = self.diagnostics.len();
        self.too_deep_reported = false;
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::schema_decl => self.schema(pair).map(ItemKind::Schema),
            Rule::source_decl => self.source(pair).map(ItemKind::Source),
            Rule::let_decl => self.let_decl(pair).map(ItemKind::Let),
            Rule::sink_decl => self.sink(pair).map(ItemKind::Sink),
            _ => None,
        };
        match kind {
            Some(kind) if self.diagnostics.len() == before => Some(Item { kind, span }),
            Some(_) => None,
            None => {
                if self.diagnostics.len() == before {
                    // The grammar and this builder disagree: a bug, not a user error.
                    self.report(
                        Diagnostic::error(
                            codes::INTERNAL,
                            span,
                            "internal parser error: unexpected parse tree",
                        )
                        .with_hint("this is a bug in weir; please report it with the input"),
                    );
                }
                None
            }
        }
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_owned(),
            span: self.span(pair),
        }
    }

    fn schema(&mut self, pair: Pair<'_, Rule>) -> Option<SchemaDecl> {
        let mut inner = pair.into_inner();
        let name = self.ident(&next_of(&mut inner, Rule::schema_name)?);
        let mut fields = Vec::new();
        for field in inner.filter(|p| p.as_rule() == Rule::field_decl) {
            let span = self.span(&field);
            let mut parts = field.into_inner();
            let name = self.ident(&next_of(&mut parts, Rule::field_name)?);
            let ty = self.type_expr(next_of(&mut parts, Rule::type_expr)?)?;
            fields.push(FieldDecl { name, ty, span });
        }
        Some(SchemaDecl { name, fields })
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExpr> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let first = inner.next()?;
        let kind = match first.as_rule() {
            Rule::record_type => {
                let mut fields = Vec::new();
                for field in first
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::field_decl)
                {
                    let span = self.span(&field);
                    let mut parts = field.into_inner();
                    let name = self.ident(&next_of(&mut parts, Rule::field_name)?);
                    let ty = self.type_expr(next_of(&mut parts, Rule::type_expr)?)?;
                    fields.push(FieldDecl { name, ty, span });
                }
                TypeKind::Record(fields)
            }
            Rule::array_type => {
                let element = next_of(&mut first.into_inner(), Rule::type_expr)?;
                TypeKind::Array(Box::new(self.type_expr(element)?))
            }
            _ => TypeKind::Named(self.ident(&first)),
        };
        let optional = inner.any(|p| p.as_rule() == Rule::type_opt);
        Some(TypeExpr {
            kind,
            optional,
            span,
        })
    }

    fn source(&mut self, pair: Pair<'_, Rule>) -> Option<SourceDecl> {
        let mut name = None;
        let mut schema = None;
        let mut connector = None;
        let mut format = None;
        let mut event_time = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::source_name => name = Some(self.ident(&part)),
                Rule::schema_ref => schema = Some(self.ident(&part)),
                Rule::connector => connector = Some(self.call(part)?),
                Rule::format_clause => format = Some(self.format_clause(part)?),
                Rule::event_time_clause => {
                    let span = self.span(&part);
                    let mut inner = part.into_inner();
                    let field = self.ident(&next_of(&mut inner, Rule::event_field)?);
                    let watermark = self.expr(next_of(&mut inner, Rule::expr)?)?.0;
                    event_time = Some(EventTimeDecl {
                        field,
                        watermark,
                        span,
                    });
                }
                _ => {}
            }
        }
        Some(SourceDecl {
            name: name?,
            schema,
            connector: connector?,
            format,
            event_time,
        })
    }

    fn format_clause(&mut self, pair: Pair<'_, Rule>) -> Option<Call> {
        let call = next_of(&mut pair.into_inner(), Rule::format_call)?;
        self.call(call)
    }

    fn let_decl(&mut self, pair: Pair<'_, Rule>) -> Option<LetDecl> {
        let mut inner = pair.into_inner();
        let name = self.ident(&next_of(&mut inner, Rule::let_name)?);
        let pipe = self.pipe(next_of(&mut inner, Rule::pipe)?)?;
        Some(LetDecl { name, pipe })
    }

    fn sink(&mut self, pair: Pair<'_, Rule>) -> Option<SinkDecl> {
        let mut inner = pair.into_inner();
        let pipe = self.pipe(next_of(&mut inner, Rule::pipe)?)?;
        let connector = self.call(next_of(&mut inner, Rule::connector)?)?;
        let format = match next_of(&mut inner, Rule::format_clause) {
            Some(clause) => Some(self.format_clause(clause)?),
            None => None,
        };
        Some(SinkDecl {
            pipe,
            connector,
            format,
        })
    }

    /// `connector`, `format_call` or `window_call`: a name and optional named or positional args.
    fn call(&mut self, pair: Pair<'_, Rule>) -> Option<Call> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&inner.next()?);
        let mut args = Vec::new();
        for arg in inner.filter(|p| p.as_rule() == Rule::arg) {
            let span = self.span(&arg);
            let mut name = None;
            let mut value = None;
            for part in arg.into_inner() {
                match part.as_rule() {
                    Rule::arg_name => name = Some(self.ident(&part)),
                    Rule::expr => value = Some(self.expr(part)?.0),
                    _ => {}
                }
            }
            args.push(Arg {
                name,
                value: value?,
                span,
            });
        }
        Some(Call { name, args, span })
    }

    /// The options after a step (`ttl(1h)`), written like connectors.
    fn options(&mut self, pairs: Pairs<'_, Rule>) -> Option<Vec<Call>> {
        pairs
            .filter(|p| p.as_rule() == Rule::connector)
            .map(|p| self.call(p))
            .collect()
    }

    fn pipe(&mut self, pair: Pair<'_, Rule>) -> Option<Pipe> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let input = self.ident(&next_of(&mut inner, Rule::stream_name)?);
        let mut steps = Vec::new();
        for step in inner.filter(|p| p.as_rule() != Rule::pipe_op) {
            steps.push(self.step(step)?);
        }
        Some(Pipe { input, steps, span })
    }

    fn step(&mut self, pair: Pair<'_, Rule>) -> Option<Step> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let kind = match rule {
            Rule::filter_step => StepKind::Filter(self.expr(next_of(&mut inner, Rule::expr)?)?.0),
            Rule::select_step => StepKind::Select(self.select_items(inner)?),
            Rule::key_by_step => StepKind::KeyBy(self.key_fields(inner.clone())),
            Rule::window_step => {
                StepKind::Window(self.call(next_of(&mut inner, Rule::window_call)?)?)
            }
            Rule::aggregate_step => {
                let by = self.key_fields(inner.clone());
                let options = self.options(inner.clone())?;
                StepKind::Aggregate {
                    by,
                    items: self.select_items(inner)?,
                    options,
                }
            }
            Rule::dedup_step => {
                let by = self.key_fields(inner.clone());
                let keep_last = inner
                    .clone()
                    .any(|p| p.as_rule() == Rule::keep_kind && p.as_str() == "last");
                let options = self.options(inner)?;
                StepKind::Dedup {
                    by,
                    keep_last,
                    options,
                }
            }
            Rule::top_step => {
                let by = self.key_fields(inner.clone());
                let count = next_of(&mut inner.clone(), Rule::top_count)?;
                let count_span = self.span(&count);
                let n = match count.as_str().parse::<i64>() {
                    Ok(v) => Expr {
                        kind: ExprKind::Lit(Literal::Int(v)),
                        span: count_span,
                    },
                    Err(_) => Expr {
                        kind: ExprKind::Lit(Literal::Int(i64::MAX)),
                        span: count_span,
                    },
                };
                let mut order = Vec::new();
                let options = self.options(inner.clone())?;
                for item in inner.filter(|p| p.as_rule() == Rule::order_item) {
                    let mut parts = item.into_inner();
                    let expr = self.expr(next_of(&mut parts.clone(), Rule::expr)?)?.0;
                    let desc = parts.any(|p| {
                        p.as_rule() == Rule::order_dir && p.as_str().eq_ignore_ascii_case("desc")
                    });
                    order.push((expr, desc));
                }
                StepKind::Top {
                    n,
                    by,
                    order,
                    options,
                }
            }
            Rule::unnest_step => {
                let array = next_of(&mut inner, Rule::name_expr)?;
                let array_span = self.span(&array);
                let array = self.name_expr(array, array_span)?.0;
                let alias = self.ident(&next_of(&mut inner, Rule::unnest_name)?);
                StepKind::Unnest { array, alias }
            }
            Rule::join_step => {
                let mut left_outer = false;
                let mut kind = JoinKind::Regular;
                let mut stream = None;
                let mut alias = None;
                let mut on = None;
                let mut options = Vec::new();
                for part in inner {
                    match part.as_rule() {
                        Rule::kw_left => left_outer = true,
                        Rule::join_kind => {
                            kind = match part.as_str() {
                                "interval_join" => JoinKind::Interval,
                                "window_join" => JoinKind::Window,
                                "lookup_join" => JoinKind::Lookup,
                                _ => JoinKind::Regular,
                            }
                        }
                        Rule::join_stream => stream = Some(self.ident(&part)),
                        Rule::join_alias => alias = Some(self.ident(&part)),
                        Rule::expr => on = Some(self.expr(part)?.0),
                        Rule::connector => options.push(self.call(part)?),
                        _ => {}
                    }
                }
                StepKind::Join(JoinStep {
                    kind,
                    left_outer,
                    stream: stream?,
                    alias,
                    on: on?,
                    options,
                })
            }
            _ => return None,
        };
        Some(Step { kind, span })
    }

    fn key_fields(&self, pairs: Pairs<'_, Rule>) -> Vec<Ident> {
        pairs
            .filter(|p| p.as_rule() == Rule::key_field)
            .map(|p| self.ident(&p))
            .collect()
    }

    fn select_items(&mut self, pairs: Pairs<'_, Rule>) -> Option<Vec<SelectItem>> {
        let mut items = Vec::new();
        for item in pairs.filter(|p| p.as_rule() == Rule::select_item) {
            let span = self.span(&item);
            let mut inner = item.into_inner();
            let first = inner.next()?;
            let kind = if first.as_rule() == Rule::star {
                SelectItemKind::Star
            } else {
                let name = self.ident(&first);
                let expr = match next_of(&mut inner, Rule::expr) {
                    Some(expr) => self.expr(expr)?.0,
                    None => Expr {
                        kind: ExprKind::Field(name.clone()),
                        span: name.span,
                    },
                };
                SelectItemKind::Named { name, expr }
            };
            items.push(SelectItem { kind, span });
        }
        Some(items)
    }

    // -----------------------------------------------------------------------------------------
    // Expressions

    /// Makes a node one level above children of depth `child_depth`, or reports that the tree
    /// is too deep and returns a `null` placeholder (the item is dropped anyway).
    fn node(&mut self, kind: ExprKind, span: Span, child_depth: u32, at: Span) -> Built {
        let depth = child_depth + 1;
        if depth <= MAX_EXPR_DEPTH {
            return (Expr { kind, span }, depth);
        }
        if !self.too_deep_reported {
            self.too_deep_reported = true;
            self.report(
                Diagnostic::error(
                    codes::EXPRESSION_TOO_DEEP,
                    at,
                    "expression is too deeply nested",
                )
                .with_label(format!("more than {MAX_EXPR_DEPTH} levels of operators"))
                .with_hint("split the expression, or move parts of it into separate steps"),
            );
        }
        // Dropping `kind` here drops a tree of at most MAX_EXPR_DEPTH levels.
        (
            Expr {
                kind: ExprKind::Lit(Literal::Null),
                span,
            },
            1,
        )
    }

    fn binary(&mut self, op: BinaryOp, op_span: Span, lhs: Built, rhs: Built) -> Built {
        let span = lhs.0.span.to(rhs.0.span);
        let depth = lhs.1.max(rhs.1);
        self.node(
            ExprKind::Binary(op, Box::new(lhs.0), Box::new(rhs.0)),
            span,
            depth,
            op_span,
        )
    }

    /// `expr = bool_term ((and | or) bool_term)*`: `and` binds tighter than `or`, both left.
    pub fn expr(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let mut operands: Vec<Built> = Vec::new();
        let mut ops: Vec<(BinaryOp, Span)> = Vec::new();
        let prec = |op: BinaryOp| if op == BinaryOp::Or { 1 } else { 2 };
        for part in pair.into_inner() {
            let op = match part.as_rule() {
                Rule::bool_term => {
                    operands.push(self.bool_term(part)?);
                    continue;
                }
                Rule::bool_op if part.as_str().eq_ignore_ascii_case("and") => BinaryOp::And,
                Rule::bool_op => BinaryOp::Or,
                _ => return None,
            };
            while ops.last().is_some_and(|&(top, _)| prec(top) >= prec(op)) {
                self.reduce(&mut operands, &mut ops)?;
            }
            ops.push((op, self.span(&part)));
        }
        self.reduce_all(&mut operands, &mut ops)?;
        operands.pop()
    }

    /// Pushes infix operator `token`, first reducing the operators on the stack that bind at
    /// least as tightly (left associative).
    fn push_infix(
        &mut self,
        token: &str,
        span: Span,
        operands: &mut Vec<Built>,
        ops: &mut Vec<(BinaryOp, Span)>,
    ) -> Option<()> {
        let op = infix(token)?;
        while ops
            .last()
            .is_some_and(|&(top, _)| precedence(top) >= precedence(op))
        {
            self.reduce(operands, ops)?;
        }
        ops.push((op, span));
        Some(())
    }

    /// Reduces every operator left on the stack.
    fn reduce_all(
        &mut self,
        operands: &mut Vec<Built>,
        ops: &mut Vec<(BinaryOp, Span)>,
    ) -> Option<()> {
        while !ops.is_empty() {
            self.reduce(operands, ops)?;
        }
        Some(())
    }

    fn reduce(&mut self, operands: &mut Vec<Built>, ops: &mut Vec<(BinaryOp, Span)>) -> Option<()> {
        let (op, op_span) = ops.pop()?;
        let rhs = operands.pop()?;
        let lhs = operands.pop()?;
        let built = self.binary(op, op_span, lhs, rhs);
        operands.push(built);
        Some(())
    }

    /// `bool_term = not* chain`: `not` applies to the whole comparison after it.
    fn bool_term(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let mut nots = Vec::new();
        let mut chain = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::kw_not => nots.push(self.span(&part)),
                Rule::chain => chain = Some(self.chain(part)?),
                _ => return None,
            }
        }
        let mut built = chain?;
        for not in nots.into_iter().rev() {
            let span = not.to(built.0.span);
            built = self.node(
                ExprKind::Unary(UnaryOp::Not, Box::new(built.0)),
                span,
                built.1,
                not,
            );
        }
        Some(built)
    }

    /// `chain = operand ((op operand) | is null)*`: at most one comparison or `is null`, which
    /// binds loosest; then `+ -`; then `* / %`; all left-associative.
    fn chain(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let chain_span = self.span(&pair);
        let chain_text = pair.as_str();
        let parts: Vec<Pair<'_, Rule>> = pair.into_inner().collect();

        // Comparisons are non-associative: `a < b < c` is an error, not `(a < b) < c`.
        let comparisons: Vec<Span> = parts
            .iter()
            .filter(|p| {
                matches!(p.as_rule(), Rule::is_null | Rule::predicate)
                    || (p.as_rule() == Rule::infix_op
                        && infix(p.as_str()).is_some_and(is_comparison))
            })
            .map(|p| self.span(p))
            .collect();
        if comparisons.len() > 1 {
            self.chained_comparison(&comparisons, chain_text);
            return Some((
                Expr {
                    kind: ExprKind::Lit(Literal::Null),
                    span: chain_span,
                },
                1,
            ));
        }

        let mut operands: Vec<Built> = Vec::new();
        let mut ops: Vec<(BinaryOp, Span)> = Vec::new();
        for part in parts {
            let rule = part.as_rule();
            if rule == Rule::operand {
                operands.push(self.operand(part)?);
                continue;
            }
            let span = self.span(&part);
            if rule == Rule::is_null {
                // Binds loosest: finish everything on the left first.
                self.reduce_all(&mut operands, &mut ops)?;
                let negated = part.into_inner().any(|p| p.as_rule() == Rule::null_not);
                let operand = operands.pop()?;
                let span = operand.0.span.to(span);
                let kind = ExprKind::IsNull {
                    expr: Box::new(operand.0),
                    negated,
                };
                let built = self.node(kind, span, operand.1, span);
                operands.push(built);
                continue;
            }
            if rule == Rule::predicate {
                self.reduce_all(&mut operands, &mut ops)?;
                let operand = operands.pop()?;
                let built = self.predicate(part, operand)?;
                operands.push(built);
                continue;
            }
            self.push_infix(part.as_str(), span, &mut operands, &mut ops)?;
        }
        self.reduce_all(&mut operands, &mut ops)?;
        operands.pop()
    }

    /// `operand [not] in (...) | between lo and hi | like pattern [escape c]`. `like` becomes
    /// a call of the `like` function (so it is typed and generated as one); `not` wraps it.
    fn predicate(&mut self, pair: Pair<'_, Rule>, operand: Built) -> Option<Built> {
        let span = operand.0.span.to(self.span(&pair));
        let mut negated = false;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::pred_not => negated = true,
                Rule::in_list => {
                    let mut list = Vec::new();
                    let mut depth = operand.1;
                    for p in part.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                        let (e, d) = self.expr(p)?;
                        depth = depth.max(d);
                        list.push(e);
                    }
                    let kind = ExprKind::InList {
                        expr: Box::new(operand.0),
                        list,
                        negated,
                    };
                    return Some(self.node(kind, span, depth, span));
                }
                Rule::between_range => {
                    let mut bounds = Vec::new();
                    for p in part.into_inner().filter(|p| p.as_rule() == Rule::bound) {
                        bounds.push(self.bound(p)?);
                    }
                    let high = bounds.pop()?;
                    let low = bounds.pop()?;
                    let depth = operand.1.max(low.1).max(high.1);
                    let kind = ExprKind::Between {
                        expr: Box::new(operand.0),
                        low: Box::new(low.0),
                        high: Box::new(high.0),
                        negated,
                    };
                    return Some(self.node(kind, span, depth, span));
                }
                Rule::like_pattern => {
                    let mut name = None;
                    let mut args = vec![];
                    let mut depth = operand.1;
                    args.push(operand.0);
                    for p in part.into_inner() {
                        match p.as_rule() {
                            Rule::kw_like => name = Some(self.ident(&p)),
                            Rule::operand => {
                                let (e, d) = self.operand(p)?;
                                depth = depth.max(d);
                                args.push(e);
                            }
                            _ => {}
                        }
                    }
                    let mut name = name?;
                    name.name = name.name.to_ascii_lowercase();
                    let call = self.node(ExprKind::Call(name, args), span, depth, span);
                    if !negated {
                        return Some(call);
                    }
                    let kind = ExprKind::Unary(UnaryOp::Not, Box::new(call.0));
                    return Some(self.node(kind, span, call.1, span));
                }
                _ => {}
            }
        }
        None
    }

    /// A bound of `between`: operands joined by arithmetic operators.
    fn bound(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let mut operands: Vec<Built> = Vec::new();
        let mut ops: Vec<(BinaryOp, Span)> = Vec::new();
        for part in pair.into_inner() {
            if part.as_rule() == Rule::operand {
                operands.push(self.operand(part)?);
                continue;
            }
            let span = self.span(&part);
            self.push_infix(part.as_str(), span, &mut operands, &mut ops)?;
        }
        self.reduce_all(&mut operands, &mut ops)?;
        operands.pop()
    }

    fn chained_comparison(&mut self, comparisons: &[Span], chain_text: &str) {
        let shown = one_line(chain_text);
        let message = if shown.chars().count() <= 40 {
            format!("`{shown}`: comparisons cannot be chained")
        } else {
            "comparisons cannot be chained".to_owned()
        };
        self.report(
            Diagnostic::error(codes::CHAINED_COMPARISON, comparisons[1], message)
                .with_label("second comparison")
                .with_secondary(comparisons[0], "first comparison")
                .with_hint(
                    "combine comparisons with `and` (`a < b and b < c`), or add parentheses",
                ),
        );
    }

    /// `operand = -* primary (as TYPE)*`: casts bind tighter than negation.
    fn operand(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let mut negs = Vec::new();
        let mut primary = None;
        let mut casts = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::op_neg => negs.push(self.span(&part)),
                // A cast whose type belongs to an enclosing `cast(... as TYPE)` is skipped.
                Rule::postfix_cast
                    if self
                        .cast_targets
                        .contains(&(self.offset + part.as_span().start())) => {}
                Rule::postfix_cast => casts.push(part),
                _ => primary = Some(part),
            }
        }
        let primary = primary?;
        // `-9223372036854775808` is the one literal that only fits with its sign.
        let mut built =
            if casts.is_empty() && !negs.is_empty() && is_i64_min_magnitude(primary.as_str()) {
                let neg = negs.pop()?;
                let span = neg.to(self.span(&primary));
                (
                    Expr {
                        kind: ExprKind::Lit(Literal::Int(i64::MIN)),
                        span,
                    },
                    1,
                )
            } else {
                self.primary(primary)?
            };
        for cast in casts {
            let cast_span = self.span(&cast);
            let ty = self.type_expr(next_of(&mut cast.into_inner(), Rule::type_expr)?)?;
            let span = built.0.span.to(ty.span);
            built = self.node(
                ExprKind::Cast(Box::new(built.0), ty),
                span,
                built.1,
                cast_span,
            );
        }
        for neg in negs.into_iter().rev() {
            let span = neg.to(built.0.span);
            built = self.node(
                ExprKind::Unary(UnaryOp::Neg, Box::new(built.0)),
                span,
                built.1,
                neg,
            );
        }
        Some(built)
    }

    /// Dispatches on the kind of primary. The nested forms live in their own functions so the
    /// frames on the recursive path (`expr` -> ... -> `primary` -> `expr`) stay small.
    fn primary(&mut self, pair: Pair<'_, Rule>) -> Option<Built> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::paren => self.paren(pair, span),
            Rule::name_expr => self.name_expr(pair, span),
            Rule::if_expr => self.if_expr(pair, span),
            Rule::case_expr => self.case_expr(pair, span),
            Rule::cast_expr => self.cast_expr(pair, span),
            _ => self.atom(pair, span),
        }
    }

    /// A literal or a field name.
    fn atom(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let kind = match pair.as_rule() {
            Rule::number => ExprKind::Lit(self.number(pair.as_str(), span)),
            Rule::string => ExprKind::Lit(Literal::Str(self.string(pair.as_str(), span))),
            Rule::kw_true => ExprKind::Lit(Literal::Bool(true)),
            Rule::kw_false => ExprKind::Lit(Literal::Bool(false)),
            Rule::kw_null => ExprKind::Lit(Literal::Null),
            _ => return None,
        };
        Some((Expr { kind, span }, 1))
    }

    /// `( expr )`: the parentheses belong to the expression's span.
    fn paren(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let (mut expr, depth) = self.expr(next_of(&mut pair.into_inner(), Rule::expr)?)?;
        expr.span = span;
        Some((expr, depth))
    }

    /// The fields and indexes after a name (`.user.id`, `[1].sku`): fields before any index
    /// extend `name` (`payload.user.id`, split by the checker); the expression of the
    /// elements and their fields when there is an index. Out of line: `name_expr` is on the
    /// recursion of nested expressions, so its frame stays small.
    #[inline(never)]
    fn name_path(&mut self, path: &Pair<'_, Rule>, name: &mut Ident) -> Option<Expr> {
        let mut after_index = None;
        let start = self.span(path).start as usize;
        let text = path.as_str();
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            let len = 1 + rest[1..].find(['.', '[']).unwrap_or(rest.len() - 1);
            let part = &rest[..len];
            let part_span = Span::new(self.file, start + at, start + at + len);
            if let Some(member) = part.strip_prefix('.') {
                let member = Ident {
                    name: member.to_string(),
                    span: Span::new(self.file, start + at + 1, start + at + len),
                };
                match after_index.take() {
                    None => {
                        *name = Ident {
                            name: format!("{}.{}", name.name, member.name),
                            span: name.span.to(part_span),
                        }
                    }
                    Some(base) => {
                        after_index = Some(Expr {
                            kind: ExprKind::Member(Box::new(base), member),
                            span: name.span.to(part_span),
                        });
                    }
                }
            } else {
                let digits = part.trim_start_matches('[').trim_end_matches(']');
                let index = Expr {
                    // Past `i64`, past any array's end: null, like any index out of range.
                    kind: ExprKind::Lit(Literal::Int(digits.parse().unwrap_or(i64::MAX))),
                    span: part_span,
                };
                let base = after_index.take().unwrap_or(Expr {
                    kind: ExprKind::Field(name.clone()),
                    span: name.span,
                });
                after_index = Some(Expr {
                    kind: ExprKind::Index(Box::new(base), Box::new(index)),
                    span: name.span.to(part_span),
                });
            }
            at += len;
        }
        after_index
    }

    /// [`Builder::name_path`] in a name expression: `Some` with the expression when the path
    /// indexes an array (an error when a call follows: `tags[1](x)`), `None` when `name`
    /// is all there is to it. Out of line, like `name_path`.
    #[inline(never)]
    fn indexed_path(
        &mut self,
        path: &Pair<'_, Rule>,
        name: &mut Ident,
        called: bool,
    ) -> Option<Option<Built>> {
        let indexed = self.name_path(path, name)?;
        if called {
            self.report(
                Diagnostic::error(
                    codes::UNEXPECTED_TOKEN,
                    indexed.span,
                    "an array element cannot be called",
                )
                .with_hint("call a function by its name: `f(x)`"),
            );
            return Some(None);
        }
        Some(Some((indexed, 1)))
    }

    /// A field (`price`), or a call when parentheses follow: `f(a, b)`, `count()`, `count(*)`
    /// (the `*` leaves no argument).
    fn name_expr(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let mut inner = pair.into_inner();
        let mut name = self.ident(&next_of(&mut inner, Rule::func_name)?);
        // `alias.field`, `payload.user.id`: one name with dots, which the checker splits;
        // `tags[1]`, `items[2].sku`: indexes, and fields of the elements.
        if inner.peek().is_some_and(|p| p.as_rule() == Rule::name_path) {
            let path = inner.next()?;
            let called = inner.peek().is_some();
            if let Some(done) = self.indexed_path(&path, &mut name, called) {
                return done;
            }
        }
        if next_of(&mut inner, Rule::fcall_open).is_none() {
            return Some((
                Expr {
                    kind: ExprKind::Field(name),
                    span,
                },
                1,
            ));
        }
        let mut args = Vec::new();
        let mut depth = 0;
        let mut filter = None;
        let mut call_end = span.end as usize;
        for part in inner {
            match part.as_rule() {
                Rule::expr => {
                    let (arg, d) = self.expr(part)?;
                    depth = depth.max(d);
                    args.push(arg);
                }
                Rule::distinct_arg => {
                    let arg_span = self.span(&part);
                    let expr = next_of(&mut part.into_inner(), Rule::expr)?;
                    let (arg, d) = self.expr(expr)?;
                    depth = depth.max(d + 1);
                    args.push(Expr {
                        kind: ExprKind::Distinct(Box::new(arg)),
                        span: arg_span,
                    });
                }
                Rule::fcall_close => call_end = self.span(&part).end as usize,
                Rule::agg_filter => {
                    let expr = next_of(&mut part.into_inner(), Rule::expr)?;
                    let (cond, d) = self.expr(expr)?;
                    depth = depth.max(d + 1);
                    filter = Some(cond);
                }
                _ => {}
            }
        }
        let call_span = Span::new(span.file, span.start as usize, call_end);
        let call = self.node(ExprKind::Call(name, args), call_span, depth, call_span);
        match filter {
            None => Some((Expr { span, ..call.0 }, call.1)),
            Some(condition) => {
                let kind = ExprKind::AggFilter {
                    call: Box::new(call.0),
                    condition: Box::new(condition),
                };
                Some(self.node(kind, span, call.1.max(depth), span))
            }
        }
    }

    /// `if(c, a, b)` is `case when c then a else b end`.
    fn if_expr(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let mut exprs = pair.into_inner().filter(|p| p.as_rule() == Rule::expr);
        let (cond, c) = self.expr(exprs.next()?)?;
        let (then, t) = self.expr(exprs.next()?)?;
        let (otherwise, o) = self.expr(exprs.next()?)?;
        let kind = ExprKind::Case {
            branches: vec![(cond, then)],
            otherwise: Some(Box::new(otherwise)),
        };
        Some(self.node(kind, span, c.max(t).max(o), span))
    }

    fn case_expr(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut depth = 0;
        for part in pair.into_inner() {
            let mut exprs = part.into_inner().filter(|p| p.as_rule() == Rule::expr);
            let (first, d) = match exprs.next() {
                Some(expr) => self.expr(expr)?,
                None => continue, // `case`, `end`
            };
            depth = depth.max(d);
            match exprs.next() {
                Some(value) => {
                    let (value, v) = self.expr(value)?;
                    depth = depth.max(v);
                    branches.push((first, value));
                }
                None => otherwise = Some(Box::new(first)),
            }
        }
        Some(self.node(
            ExprKind::Case {
                branches,
                otherwise,
            },
            span,
            depth,
            span,
        ))
    }

    /// `cast(x as T)`. The grammar reads the inner `x as T` as an expression ending in a postfix
    /// cast; the final `as T` is taken to apply to the whole inner expression, as in SQL:
    /// `cast(a + b as f64)` casts the sum.
    fn cast_expr(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Built> {
        let mut inner = pair.into_inner();
        let expr = next_of(&mut inner, Rule::expr)?;
        let close = next_of(&mut inner, Rule::cast_close)?;
        let Some(target) = trailing_cast(&expr) else {
            let at = self.span(&close);
            self.report(
                Diagnostic::error(
                    codes::CAST_WITHOUT_TYPE,
                    at,
                    "missing target type in `cast`",
                )
                .with_label("expected `as` and a type before `)`")
                .with_hint("write the type after `as`: `cast(price as f64)`"),
            );
            return Some((
                Expr {
                    kind: ExprKind::Lit(Literal::Null),
                    span,
                },
                1,
            ));
        };
        self.cast_targets
            .push(self.offset + target.as_span().start());
        let ty = self.type_expr(next_of(&mut target.into_inner(), Rule::type_expr)?)?;
        let (value, depth) = self.expr(expr)?;
        Some(self.node(ExprKind::Cast(Box::new(value), ty), span, depth, span))
    }

    // -----------------------------------------------------------------------------------------
    // Literals

    /// A `number` token: integer, float, or duration (integer followed by a unit).
    fn number(&mut self, text: &str, span: Span) -> Literal {
        let bytes = text.as_bytes();
        let digits = |mut i: usize| {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
            i
        };
        let mut end = digits(0);
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1);
            is_float = true;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            if bytes.get(end + 1 + sign).is_some_and(u8::is_ascii_digit) {
                end = digits(end + 1 + sign);
                is_float = true;
            }
        }
        let (number, unit) = text.split_at(end);
        let cleaned: String = number.chars().filter(|&c| c != '_').collect();

        if !unit.is_empty() {
            let unit_span = Span {
                start: span.start + end as u32,
                ..span
            };
            let Some(factor) = duration_unit(unit) else {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_DURATION_UNIT,
                    unit_span,
                    format!("unknown duration unit `{unit}` in `{text}`"),
                )
                .with_label("unknown unit");
                if let Some(short) = unit_spelled_out(unit) {
                    d = d.with_hint(format!("write `{number}{short}`"));
                }
                self.report(
                    d.with_hint("duration units are ms, s, m, h and d, as in `250ms` or `10s`"),
                );
                return Literal::Null;
            };
            if is_float {
                self.report(
                    Diagnostic::error(
                        codes::FRACTIONAL_DURATION,
                        span,
                        format!("duration `{text}` is not a whole number"),
                    )
                    .with_label("fractional duration")
                    .with_hint("write it with a smaller unit, e.g. `1500ms` instead of `1.5s`"),
                );
                return Literal::Null;
            }
            return match cleaned
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(factor))
            {
                Some(ms) => Literal::Duration(ms),
                None => {
                    self.report(
                        Diagnostic::error(
                            codes::LITERAL_OUT_OF_RANGE,
                            span,
                            "duration literal out of range",
                        )
                        .with_label("more than i64::MAX milliseconds"),
                    );
                    Literal::Null
                }
            };
        }
        if is_float {
            return match cleaned.parse::<f64>() {
                Ok(value) if value.is_finite() => Literal::Float(value),
                _ => {
                    self.report(
                        Diagnostic::error(
                            codes::LITERAL_OUT_OF_RANGE,
                            span,
                            "float literal out of range",
                        )
                        .with_label("too large for f64"),
                    );
                    Literal::Null
                }
            };
        }
        match cleaned.parse::<i64>() {
            Ok(value) => Literal::Int(value),
            Err(_) => {
                self.report(
                    Diagnostic::error(
                        codes::LITERAL_OUT_OF_RANGE,
                        span,
                        "integer literal out of range",
                    )
                    .with_label("does not fit in i64")
                    .with_hint(format!(
                        "integers range from {} to {}; write a float (`1e20`) for larger values",
                        i64::MIN,
                        i64::MAX
                    )),
                );
                Literal::Null
            }
        }
    }

    /// The value of a `string` token, with escapes resolved. Bad escapes are reported.
    fn string(&mut self, token: &str, span: Span) -> String {
        let start = span.start as usize;
        let quote = token.chars().next().unwrap_or('"');
        let body = token.get(1..token.len().saturating_sub(1)).unwrap_or("");
        let mut out = String::with_capacity(body.len());
        if quote == '\'' {
            return body.replace("''", "'");
        }
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, escape)) = chars.next() else {
                break;
            };
            let simple = match escape {
                '"' => Some('"'),
                '\\' => Some('\\'),
                '\'' => Some('\''),
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                '0' => Some('\0'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                continue;
            }
            let at = start + 1 + i;
            if escape == 'u' {
                // `\u{...}`: up to six hex digits naming a Unicode scalar value.
                let rest = &body[i + 2..];
                let close = rest.starts_with('{').then(|| rest.find('}')).flatten();
                let end = close.map_or(i + 2, |c| i + 2 + c + 1);
                for _ in body[i + 2..end].chars() {
                    chars.next();
                }
                let hex = close.map(|c| &rest[1..c]);
                let value = hex
                    .filter(|h| (1..=6).contains(&h.len()))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32);
                match value {
                    Some(c) => out.push(c),
                    None => {
                        let escape_span = Span::new(self.file, at, start + 1 + end);
                        let written = &body[i..end];
                        self.report(
                            Diagnostic::error(
                                codes::INVALID_ESCAPE,
                                escape_span,
                                format!("invalid unicode escape `{written}`"),
                            )
                            .with_label("not a Unicode scalar value")
                            .with_hint("write one to six hex digits in braces, as in `\\u{41}`"),
                        );
                    }
                }
                continue;
            }
            let escape_span = Span::new(self.file, at, at + 1 + escape.len_utf8());
            self.report(Diagnostic::error(codes::INVALID_ESCAPE, escape_span, format!("unknown escape sequence `\\{escape}`"))
                .with_label("unknown escape")
                .with_hint("valid escapes are \\\" \\\\ \\' \\n \\t \\r \\0 and \\u{...}; write \\\\ for a backslash"));
        }
        out
    }
}

/// The unit weir writes for a unit spelled another way (`sec`, `minutes`, `hr`, `S`): `s`,
/// `m`, `h`. Also the units themselves, for `10 s` written with a space.
pub(super) fn unit_spelled_out(word: &str) -> Option<&'static str> {
    let unit = match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    };
    Some(unit)
}

/// Milliseconds per unit.
fn duration_unit(unit: &str) -> Option<i64> {
    match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        _ => None,
    }
}

fn is_i64_min_magnitude(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && token.bytes().any(|b| b.is_ascii_digit())
        && token
            .chars()
            .filter(|&c| c != '_')
            .eq("9223372036854775808".chars())
}

/// The last `as TYPE` of an expression when nothing follows it at the top level: the target
/// type of `cast(expr as TYPE)`.
fn trailing_cast<'i>(expr: &Pair<'i, Rule>) -> Option<Pair<'i, Rule>> {
    let term = expr.clone().into_inner().last()?;
    let chain = term
        .into_inner()
        .last()
        .filter(|p| p.as_rule() == Rule::chain)?;
    let operand = chain
        .into_inner()
        .last()
        .filter(|p| p.as_rule() == Rule::operand)?;
    operand
        .into_inner()
        .last()
        .filter(|p| p.as_rule() == Rule::postfix_cast)
}

/// The operator an `infix_op` token stands for.
fn infix(token: &str) -> Option<BinaryOp> {
    Some(match token {
        "=" | "==" => BinaryOp::Eq,
        "!=" | "<>" => BinaryOp::Ne,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        "%" => BinaryOp::Rem,
        "||" => BinaryOp::Concat,
        _ => return None,
    })
}

fn is_comparison(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    )
}

/// Binding strength inside a chain: comparisons < `||` < `+ -` < `* / %` (as PostgreSQL:
/// `'n' || 1 + 2` is `'n' || 3`).
fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 4,
        BinaryOp::Add | BinaryOp::Sub => 3,
        BinaryOp::Concat => 2,
        _ => 1,
    }
}

/// `text` with runs of whitespace collapsed, for quoting in a message.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
