//! The HTTP endpoint of a pipeline binary (`--http ADDR`, feature `http`): Prometheus metrics
//! at `/metrics`, a JSON view of the run at `/api/pipeline`, and `POST /checkpoint` (one
//! now) and `POST /stop` (the graceful stop SIGTERM asks for, exiting 0).
//!
//! It runs beside the data path, never on it: one thread of its own with a current-thread
//! tokio runtime serving HTTP/1 (hyper). A request reads what the data path already keeps:
//! the operators' and sources' live counters ([`crate::metrics`], relaxed loads of cells
//! their owners write) and the checkpoint coordinator's statistics (its lock, which the data
//! path takes only at barriers). Without `--http`, nothing of this starts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::metrics::Metrics;

/// What the endpoint shows: one run's registry (with the plan codegen describes) and the
/// pipeline's name.
#[derive(Clone)]
pub struct View {
    pub metrics: Metrics,
    /// The pipeline's name when the plan does not say (the program's file name).
    pub program: String,
    pub started: Instant,
    /// The run's checkpoint coordinator, when it takes checkpoints.
    pub checkpoints: Option<Arc<crate::checkpoint::Coordinator>>,
}

/// Where each request finds the view it answers from: one run's, or the latest run an
/// embedded [`crate::embed::Watch`] follows.
pub type Current = Arc<dyn Fn() -> View + Send + Sync>;

/// The program's file name, without its extension: the `pipeline` label when the plan does
/// not name the pipeline.
pub fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|arg0| {
            let stem = std::path::Path::new(&arg0).file_stem()?.to_owned();
            stem.into_string().ok()
        })
        .unwrap_or_else(|| "weir".into())
}

/// Starts the endpoint on `addr` and returns the address it listens on (port 0: the one the
/// system picked). Binding happens here, so a taken port fails the run before it starts.
pub fn serve(addr: &str, view: View) -> Result<SocketAddr, String> {
    serve_current(addr, Arc::new(move || view.clone()))
}

/// [`serve`], each request answered from the view `current` gives.
pub fn serve_current(addr: &str, current: Current) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("--http: cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--http: cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--http: cannot listen on {addr}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("--http: cannot start its runtime: {e}"))?;
    std::thread::Builder::new()
        .name("weir-http".into())
        .spawn(move || runtime.block_on(accept(listener, current)))
        .map_err(|e| format!("--http: cannot start its thread: {e}"))?;
    Ok(local)
}

async fn accept(listener: std::net::TcpListener, current: Current) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("--http: the endpoint stopped: {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, most likely: wait a little instead of spinning.
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let current = current.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let view = current();
                let response = respond(&view, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that goes away mid-request is its own business.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(view: &View, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    match (path, method == Method::POST) {
        ("/stop" | "/checkpoint", true) => return control(view, path),
        ("/stop" | "/checkpoint", false) => {
            return reply(StatusCode::METHOD_NOT_ALLOWED, text, "POST only\n".into())
        }
        (_, true) => {
            return reply(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into());
        }
        _ => {}
    }
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into());
    }
    match path {
        "/metrics" => match prometheus_text(view) {
            Ok(text) => reply(StatusCode::OK, prometheus::TEXT_FORMAT, text),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("cannot encode the metrics: {e}\n"),
            ),
        },
        "/api/pipeline" => reply(
            StatusCode::OK,
            "application/json",
            pipeline_json(view).to_string(),
        ),
        "/" | "/index.html" => asset("text/html; charset=utf-8", UI_HTML),
        "/ui.js" => asset("text/javascript; charset=utf-8", UI_JS),
        "/ui.css" => asset("text/css; charset=utf-8", UI_CSS),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /api/pipeline\n".into(),
        ),
    }
}

impl View {
    /// The `pipeline` label of every metric: the pipeline's name.
    fn pipeline(&self) -> &str {
        match self.metrics.plan().and_then(|p| p.pipeline) {
            Some(name) => name,
            None => &self.program,
        }
    }
}

/// `POST /stop` and `POST /checkpoint`: 202 when asked (the client watches `/api/pipeline`
/// or the process), 409 when the run cannot do it.
fn control(view: &View, path: &str) -> Response<Full<Bytes>> {
    let json = "application/json";
    let answer =
        |status: StatusCode, body: serde_json::Value| reply(status, json, body.to_string());
    let coordinator = view.checkpoints.as_ref();
    if path == "/stop" {
        return match crate::stop::request_stop() {
            true => answer(
                StatusCode::ACCEPTED,
                serde_json::json!({
                    "stopping": true,
                    "last_checkpoint": coordinator.is_some(),
                }),
            ),
            false => answer(
                StatusCode::CONFLICT,
                serde_json::json!({"error": "this run cannot be stopped from outside"}),
            ),
        };
    }
    match coordinator {
        None => answer(
            StatusCode::CONFLICT,
            serde_json::json!({"error": "no checkpoints: the run was started without --checkpoint-dir"}),
        ),
        Some(c) => match c.checkpoint_now() {
            true => answer(
                StatusCode::ACCEPTED,
                serde_json::json!({"requested": true, "completed": c.completed()}),
            ),
            false => answer(
                StatusCode::CONFLICT,
                serde_json::json!({
                    "error": "no more checkpoints: the run is stopping or its input has ended",
                    "completed": c.completed(),
                }),
            ),
        },
    }
}

/// The web UI at `/`: a page, its script and its style, compiled into the binary (no
/// network, nothing to build at run time). The script polls `/api/pipeline` every second.
const UI_HTML: &str = include_str!("ui/index.html");
const UI_JS: &str = include_str!("ui/ui.js");
const UI_CSS: &str = include_str!("ui/ui.css");

fn asset(content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    respond_with(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    )
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    respond_with(status, content_type, Bytes::from(body))
}

fn respond_with(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Now, in ms since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Builds the families of one scrape in a registry of its own, from the live values, and
/// encodes them in Prometheus's text format.
pub(crate) fn prometheus_text(view: &View) -> Result<String, prometheus::Error> {
    let registry = Registry::new();
    let pipeline = view.pipeline();
    let opts = |name: &str, help: &str| Opts::new(name, help).const_label("pipeline", pipeline);
    let counters = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
        let family = IntCounterVec::new(opts(name, help), labels)?;
        registry.register(Box::new(family.clone()))?;
        Ok(family)
    };
    let gauges = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
        let family = GaugeVec::new(opts(name, help), labels)?;
        registry.register(Box::new(family.clone()))?;
        Ok(family)
    };
    let counter = |name: &str, help: &str, value: u64| -> prometheus::Result<()> {
        let metric = IntCounter::with_opts(opts(name, help))?;
        metric.inc_by(value);
        registry.register(Box::new(metric))
    };
    let gauge = |name: &str, help: &str, value: f64| -> prometheus::Result<()> {
        let metric = Gauge::with_opts(opts(name, help))?;
        metric.set(value);
        registry.register(Box::new(metric))
    };

    let records_in = counters(
        "weir_operator_records_in_total",
        "Records that reached the operator, over its instances.",
        &["operator", "step"],
    )?;
    let records_out = counters(
        "weir_operator_records_out_total",
        "Records the operator emitted, over its instances.",
        &["operator", "step"],
    )?;
    let late = counters(
        "weir_operator_late_records_total",
        "Records dropped because the watermark had passed their window.",
        &["operator", "step"],
    )?;
    let lag = gauges(
        "weir_operator_event_time_lag_max_seconds",
        "Largest gap seen between the newest record's event time and the operator's watermark.",
        &["operator", "step"],
    )?;
    let blocked = prometheus::CounterVec::new(
        opts(
            "weir_exchange_blocked_seconds_total",
            "Time producers spent blocked on the exchange's full channels (backpressure).",
        ),
        &["operator", "step"],
    )?;
    registry.register(Box::new(blocked.clone()))?;
    let fill = gauges(
        "weir_exchange_queue_fill_ratio",
        "Messages in the channels the exchange sends into, over what they hold (1: full, its \
         producers wait).",
        &["operator", "step"],
    )?;
    let state_keys = gauges(
        "weir_state_keys",
        "Keys (groups, keys in a window, join keys) the stateful operator holds, over its \
         instances.",
        &["operator", "step"],
    )?;
    let state_bytes = gauges(
        "weir_state_bytes",
        "Approximate memory of the stateful operator's state: its tables' slots and the \
         records they hold, not what strings own on the heap.",
        &["operator", "step"],
    )?;
    for (name, stats) in view.metrics.ops() {
        let (id, step) = operator_labels(name);
        let labels = [id, step.as_str()];
        records_in
            .with_label_values(&labels)
            .inc_by(stats.records_in);
        records_out
            .with_label_values(&labels)
            .inc_by(stats.records_out);
        late.with_label_values(&labels).inc_by(stats.late);
        if let Some(keys) = stats.state_keys {
            state_keys.with_label_values(&labels).set(keys as f64);
        }
        if let Some(bytes) = stats.state_bytes {
            state_bytes.with_label_values(&labels).set(bytes as f64);
        }
        if stats.watermark_lag_ms > 0 {
            lag.with_label_values(&labels)
                .set(stats.watermark_lag_ms as f64 / 1e3);
        }
        if name.starts_with("exchange ") {
            blocked
                .with_label_values(&labels)
                .inc_by(stats.blocked_ns as f64 / 1e9);
            if stats.queue_capacity > 0 {
                fill.with_label_values(&labels)
                    .set(stats.queued as f64 / stats.queue_capacity as f64);
            }
        }
    }

    let source_records = counters(
        "weir_source_records_total",
        "Records the source pushed into the pipeline, over its instances.",
        &["source"],
    )?;
    let watermark = gauges(
        "weir_source_watermark_seconds",
        "The source's event-time watermark (the least over its instances), Unix seconds.",
        &["source"],
    )?;
    let watermark_lag = gauges(
        "weir_source_watermark_lag_seconds",
        "How far the source's watermark is behind the wall clock.",
        &["source"],
    )?;
    let now = now_ms();
    for source in view.metrics.sources() {
        source_records
            .with_label_values(&[&source.name])
            .inc_by(source.records);
        if let Some(wm) = source.watermark_ms {
            watermark
                .with_label_values(&[&source.name])
                .set(wm as f64 / 1e3);
            watermark_lag
                .with_label_values(&[&source.name])
                .set(now.saturating_sub(wm) as f64 / 1e3);
        }
    }

    let kafka = view.metrics.kafka_partitions();
    if !kafka.is_empty() {
        let labels = ["source", "topic", "partition"];
        let lag = gauges(
            "weir_kafka_consumer_lag",
            "Messages of the partition not read yet: its high watermark minus the next offset \
             the source reads.",
            &labels,
        )?;
        let consumed = gauges(
            "weir_kafka_consumer_offset",
            "The next offset the source reads in the partition.",
            &labels,
        )?;
        let committed = gauges(
            "weir_kafka_committed_offset",
            "The last offset the source committed to its consumer group for the partition.",
            &labels,
        )?;
        let high = gauges(
            "weir_kafka_high_watermark",
            "The partition's high watermark (the offset of its next message), as the consumer \
             last heard it.",
            &labels,
        )?;
        for p in &kafka {
            let number = p.partition.to_string();
            let labels = [p.source.as_str(), p.topic.as_str(), number.as_str()];
            if let Some(n) = p.lag() {
                lag.with_label_values(&labels).set(n as f64);
            }
            for (family, value) in [
                (&consumed, p.consumed),
                (&committed, p.committed),
                (&high, p.high_watermark),
            ] {
                if let Some(offset) = value {
                    family.with_label_values(&labels).set(offset as f64);
                }
            }
        }
    }

    counter(
        "weir_dead_letters_total",
        "Malformed input records and records rejected by arithmetic faults, sent to the dead \
         letters.",
        view.metrics.dead_letters(),
    )?;
    gauge(
        "weir_run_elapsed_seconds",
        "Time since the run started.",
        view.started.elapsed().as_secs_f64(),
    )?;
    if let Some(c) = &view.checkpoints {
        let stats = c.stats();
        counter(
            "weir_checkpoints_completed_total",
            "Checkpoints completed by this run.",
            stats.completed,
        )?;
        counter(
            "weir_checkpoints_failed_total",
            "Checkpoints given up by this run (a task or a sink failed).",
            stats.failed,
        )?;
        if let Some(last) = stats.history.back() {
            gauge(
                "weir_checkpoint_last_duration_seconds",
                "From the trigger to the manifest of the last complete checkpoint.",
                last.duration.as_secs_f64(),
            )?;
            gauge(
                "weir_checkpoint_last_size_bytes",
                "State bytes of the last complete checkpoint.",
                last.bytes as f64,
            )?;
            gauge(
                "weir_checkpoint_last_age_seconds",
                "Time since the last complete checkpoint.",
                now.saturating_sub(last.completed_ms).max(0) as f64 / 1e3,
            )?;
        }
    }
    if let Some(cpu) = crate::metrics::cpu_seconds() {
        let metric = prometheus::Counter::with_opts(opts(
            "process_cpu_seconds_total",
            "User and system CPU time the process has used.",
        ))?;
        metric.inc_by(cpu);
        registry.register(Box::new(metric))?;
    }
    if let Some(bytes) = crate::metrics::resident_memory_bytes() {
        gauge(
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            bytes as f64,
        )?;
    }

    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The `operator` and `step` labels of the counters registered as `name`: `op4` and the
/// step's text for an operator (`op4 aggregate { ... }`), `op2->op4` and `exchange hash(k)`
/// for the exchange of an edge (`exchange op2->op4 hash(k)`). The ids are `weir explain`'s.
fn operator_labels(name: &str) -> (&str, String) {
    let (exchange, rest) = match name.strip_prefix("exchange ") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let (id, step) = rest.split_once(' ').unwrap_or((rest, ""));
    match exchange {
        true => (id, format!("exchange {step}").trim_end().to_string()),
        false => (id, step.to_string()),
    }
}

/// `/api/pipeline`: the plan (as codegen wrote it) and the live values of every operator,
/// source and checkpoint.
fn pipeline_json(view: &View) -> serde_json::Value {
    use serde_json::json;
    let graph = view.metrics.plan().map(|plan| {
        let operators: Vec<_> = plan
            .operators
            .iter()
            .map(|op| {
                json!({
                    "id": op.id,
                    "kind": op.kind,
                    "label": op.label,
                    "parallelism": op.parallelism,
                    "task": op.task,
                    "stream": op.stream,
                    "properties": op.properties,
                    "counters": op.counters,
                    "source": op.source,
                })
            })
            .collect();
        let edges: Vec<_> = plan
            .edges
            .iter()
            .map(|e| json!({"from": e.from, "to": e.to, "kind": e.kind, "exchange": e.exchange}))
            .collect();
        json!({"operators": operators, "edges": edges})
    });
    let operators: Vec<_> = view
        .metrics
        .ops()
        .into_iter()
        .map(|(name, s)| {
            json!({
                "name": name,
                "instances": s.instances,
                "instances_finished": s.finished,
                "records_in": s.records_in,
                "records_out": s.records_out,
                "late_records": s.late,
                "event_time_lag_max_ms": s.watermark_lag_ms,
                "blocked_ms": s.blocked_ns / 1_000_000,
                "queued_messages": s.queued,
                "queue_capacity": s.queue_capacity,
                "state_keys": s.state_keys,
                "state_bytes": s.state_bytes,
            })
        })
        .collect();
    let now = now_ms();
    let kafka = view.metrics.kafka_partitions();
    let sources: Vec<_> = view
        .metrics
        .sources()
        .into_iter()
        .map(|s| {
            let partitions: Vec<_> = kafka
                .iter()
                .filter(|p| p.source == s.name)
                .map(|p| {
                    json!({
                        "topic": p.topic,
                        "partition": p.partition,
                        "consumed_offset": p.consumed,
                        "committed_offset": p.committed,
                        "high_watermark": p.high_watermark,
                        "lag": p.lag(),
                    })
                })
                .collect();
            let lags = kafka.iter().filter(|p| p.source == s.name);
            let lag = lags.filter_map(|p| p.lag()).reduce(|a, b| a + b);
            json!({
                "name": s.name,
                "instances": s.instances,
                "records": s.records,
                "watermark_ms": s.watermark_ms,
                "watermark_lag_ms": s.watermark_ms.map(|wm| now.saturating_sub(wm)),
                "kafka_lag": lag,
                "kafka_partitions": partitions,
            })
        })
        .collect();
    let checkpoints = view.checkpoints.as_ref().map(|c| {
        let stats = c.stats();
        let history: Vec<_> = stats
            .history
            .iter()
            .map(|h| {
                json!({
                    "id": h.id,
                    "completed_ms": h.completed_ms,
                    "duration_ms": h.duration.as_secs_f64() * 1e3,
                    "bytes": h.bytes,
                })
            })
            .collect();
        json!({
            "dir": c.store().describe(),
            "completed": stats.completed,
            "failed": stats.failed,
            "restored_from": stats.restored_from,
            "history": history,
        })
    });
    let recent_dead_letters: Vec<_> = view
        .metrics
        .recent_dead_letters()
        .into_iter()
        .map(|d| {
            json!({
                "from": d.from,
                "line": d.line,
                "reason": d.reason,
                "record": d.record,
                "at_ms": d.at_ms,
            })
        })
        .collect();
    json!({
        "pipeline": view.pipeline(),
        "elapsed_seconds": view.started.elapsed().as_secs_f64(),
        "now_ms": now,
        "graph": graph,
        "operators": operators,
        "sources": sources,
        "dead_letters": view.metrics.dead_letters(),
        "recent_dead_letters": recent_dead_letters,
        "checkpoints": checkpoints,
        "process": {
            "cpu_seconds": crate::metrics::cpu_seconds(),
            "resident_memory_bytes": crate::metrics::resident_memory_bytes(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::operator_labels;

    #[test]
    fn labels_of_operators_and_exchanges() {
        assert_eq!(
            operator_labels("op4 aggregate { n: count() }"),
            ("op4", "aggregate { n: count() }".to_string())
        );
        assert_eq!(
            operator_labels("exchange op2->op4 hash(auction)"),
            ("op2->op4", "exchange hash(auction)".to_string())
        );
        assert_eq!(operator_labels("op1"), ("op1", String::new()));
    }
}
