//! Spans that explain a request end to end, and the trace id in its log lines.
//!
//! Owns what the rest of the code needs to take part in a trace without knowing OpenTelemetry:
//! the W3C trace context carried into and out of the process (an incoming `traceparent`, the
//! commands that cross nodes over Redis), the client spans of database statements (made from
//! sea-orm's per-statement callback, named with the semantic conventions and never holding a
//! value) and of Redis calls, the sampler chosen by `OTEL_TRACES_SAMPLER`, and the JSON log
//! formatter that puts the trace id of the enclosing request into every line.

use std::collections::HashMap;
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Sampler;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

/// A W3C trace context (`traceparent`, `tracestate`) as it travels inside a message.
pub type TraceCarrier = HashMap<String, String>;

/// The trace context of the current span, to send along with work another node carries on;
/// empty when there is no trace (nothing is added to the message then).
pub fn current_carrier() -> TraceCarrier {
    let mut carrier = TraceCarrier::new();
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    }
    carrier
}

/// Makes `span` a child of the span a W3C trace context names (an HTTP request's `traceparent`
/// header, or the context a message carried), then records its trace id for the log lines
/// under it. Without a context, `span` starts a trace of its own.
pub fn adopt_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer, when there is no trace to join.
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Records the span's trace id in its `trace_id` field (declared `Empty` by the span), so that
/// every log line under it carries the id. Nothing without the OpenTelemetry layer.
pub fn record_trace_id(span: &tracing::Span) {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// A client span for one Redis command, under the current span; none outside a span, so that
/// background loops (the activity flusher, the watched-set refresh) do not start a trace per
/// call.
pub fn redis_span(command: &'static str) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "redis",
        otel.name = command,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = command,
    )
}

/// Makes a client span of every SQL statement run through `db` inside a sampled trace (a
/// statement outside any trace, such as a sweeper's, makes none).
pub fn trace_statements(db: &mut sea_orm::DatabaseConnection) {
    let system = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        sea_orm::DatabaseBackend::MySql => "mysql",
        _ => "other_sql",
    };
    db.set_metric_callback(move |info| statement_span(system, info));
}

/// sea-orm calls this after the statement ran, inside the caller's task: the current span is
/// the caller's, and the statement's start is its end less the time it took.
fn statement_span(system: &'static str, info: &sea_orm::metric::Info<'_>) {
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_sampled() {
        return;
    }
    let end = SystemTime::now();
    let start = end.checked_sub(info.elapsed).unwrap_or(end);
    let (operation, collection) = describe_sql(&info.statement.sql);
    let name = match collection {
        Some(table) => format!("{operation} {table}"),
        None => operation.clone(),
    };
    let mut attributes = vec![
        KeyValue::new("db.system.name", system),
        KeyValue::new("db.operation.name", operation),
    ];
    if let Some(table) = collection {
        attributes.push(KeyValue::new("db.collection.name", table.to_owned()));
    }
    let tracer = opentelemetry::global::tracer("stead");
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    if info.failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(end);
}

/// The statement's kind (its first keyword, upper case) and the table it works on: after
/// `FROM` (SELECT, DELETE), `INTO` (INSERT) or `UPDATE`, outside parentheses. Only keywords and
/// identifiers are read, never a literal.
pub fn describe_sql(sql: &str) -> (String, Option<&str>) {
    let words = words_outside_parens(sql);
    let operation = match words.first() {
        Some(w) if w.len() <= 16 && w.bytes().all(|b| b.is_ascii_alphabetic()) => {
            w.to_ascii_uppercase()
        }
        _ => "EXECUTE".to_owned(),
    };
    let after = match operation.as_str() {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return (operation, None),
    };
    let table = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(after))
        .and_then(|i| words.get(i + 1))
        .map(|w| w.trim_matches(|c| c == '"' || c == '`'))
        .filter(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        });
    (operation, table)
}

/// The statement's words at nesting depth 0: what is inside parentheses is skipped (a
/// sub-select's `FROM` is not the statement's), and so is every string literal.
fn words_outside_parens(sql: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut depth, mut in_literal, mut start) = (0usize, false, None::<usize>);
    for (i, b) in sql.bytes().enumerate() {
        let word_byte = depth == 0
            && !in_literal
            && (b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'"' | b'`'));
        if word_byte {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            words.push(&sql[s..i]);
        }
        match b {
            b'\'' => in_literal = !in_literal,
            b'(' if !in_literal => depth += 1,
            b')' if !in_literal => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(&sql[s..]);
    }
    words
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name (the OpenTelemetry
/// specification's values), refused with a clear message when misspelt instead of the SDK's
/// silent fallback. Default: `parentbased_always_on`.
pub fn sampler_from(name: Option<&str>, arg: Option<&str>) -> anyhow::Result<Sampler> {
    let ratio = || -> anyhow::Result<f64> {
        match arg {
            None | Some("") => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    anyhow::anyhow!("OTEL_TRACES_SAMPLER_ARG {a:?} is not a ratio between 0 and 1")
                }),
        }
    };
    Ok(match name.map(str::trim).unwrap_or("") {
        "" | "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        other => anyhow::bail!(
            "OTEL_TRACES_SAMPLER {other:?} is not one of always_on, always_off, traceidratio, \
             parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
        ),
    })
}

/// The trace id a span recorded in its `trace_id` field (see `record_trace_id`).
struct TraceId(String);

/// Keeps each span's recorded `trace_id` where the log formatter finds it.
struct TraceIds;

/// The layer that keeps trace ids, for the spans that declare a `trace_id` only: a layer
/// without a filter would have every span of every dependency, at every level, created for it.
pub fn trace_ids<S>() -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    TraceIds.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span() && meta.fields().field("trace_id").is_some()
    }))
}

struct TraceIdVisitor(Option<String>);

impl Visit for TraceIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut visitor = TraceIdVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(trace_id), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(TraceId(trace_id));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let mut visitor = TraceIdVisitor(None);
        values.record(&mut visitor);
        if let (Some(trace_id), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(TraceId(trace_id));
        }
    }
}

/// The JSON event formatter, with the trace id of the event's innermost traced span as the
/// line's first field, `trace_id`.
pub struct WithTraceId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let trace_id = ctx.event_scope().and_then(|mut scope| {
            scope.find_map(|span| span.extensions().get::<TraceId>().map(|t| t.0.clone()))
        });
        let Some(trace_id) = trace_id else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON formatter writes one object per line, never an empty one (it always has a
        // timestamp and a level): the id goes in as the object's first field.
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_described_by_kind_and_table_only() {
        let cases = [
            (
                r#"SELECT "devices"."id", "devices"."name" FROM "devices" WHERE "devices"."tenant_id" = $1 LIMIT $2"#,
                ("SELECT", Some("devices")),
            ),
            (
                r#"SELECT (SELECT count(*) FROM "other") AS n FROM "rpc_commands" WHERE x = 'FROM secret'"#,
                ("SELECT", Some("rpc_commands")),
            ),
            (
                "INSERT INTO telemetry (tenant_id, device_id, ts, data) SELECT t, d FROM UNNEST($1::uuid[])",
                ("INSERT", Some("telemetry")),
            ),
            (
                r#"UPDATE "rpc_commands" SET "status" = $1 WHERE "id" = $2"#,
                ("UPDATE", Some("rpc_commands")),
            ),
            (
                r#"delete from "sessions" where "id" = ?"#,
                ("DELETE", Some("sessions")),
            ),
            ("BEGIN", ("BEGIN", None)),
            ("PRAGMA journal_mode = WAL", ("PRAGMA", None)),
            ("", ("EXECUTE", None)),
        ];
        for (sql, (op, table)) in cases {
            let (operation, collection) = describe_sql(sql);
            assert_eq!((operation.as_str(), collection), (op, table), "{sql}");
        }
    }

    /// A log destination the test reads back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_inside_a_traced_span_carry_its_trace_id() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let out = Captured::default();
        let writer = out.clone();
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false);
        let subscriber = tracing_subscriber::registry().with(trace_ids()).with(
            tracing_subscriber::fmt::layer()
                .json()
                .event_format(WithTraceId(format))
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
            span.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            span.in_scope(|| {
                tracing::info_span!("inner").in_scope(|| tracing::info!(n = 1, "inside"));
            });
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "outside");
        assert!(lines[0].get("trace_id").is_none(), "{text}");
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["n"], 1);
        assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn samplers_follow_the_specification_names() {
        assert!(matches!(
            sampler_from(None, None).unwrap(),
            Sampler::ParentBased(_)
        ));
        assert!(matches!(
            sampler_from(Some("traceidratio"), Some("0.25")).unwrap(),
            Sampler::TraceIdRatioBased(r) if r == 0.25
        ));
        assert!(sampler_from(Some("parentbased_traceidratio"), Some("1.5")).is_err());
        assert!(sampler_from(Some("sometimes"), None).is_err());
    }
}
