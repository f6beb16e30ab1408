//! Logs, traces and metrics.
//!
//! Logs are JSON lines when standard output is not a terminal (containers, CI), human-readable in
//! a terminal; a line written inside a traced request carries its `trace_id`. Traces go to an
//! OpenTelemetry collector over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, sampled as
//! `OTEL_TRACES_SAMPLER` says (`trace`). Metrics live in a Prometheus registry served on
//! `/metrics`, and the same registry is sent over OTLP when an endpoint is set (`otlp_metrics`).

pub mod otlp_metrics;
pub mod trace;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// This process among the nodes of a deployment, as traces and OTLP metrics name it
/// (`service.instance.id`): a random id, as the semantic conventions suggest, fixed for the
/// process's life.
pub fn instance_id() -> &'static str {
    static ID: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| uuid::Uuid::new_v4().to_string());
    &ID
}

/// Flushes pending spans when dropped at shutdown.
pub struct Guard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("stead: flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber. Must run inside the tokio runtime (the OTLP exporter needs it).
pub fn init(config: &Config) -> anyhow::Result<Guard> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("STEAD_LOG {:?} is not a valid filter: {e}", config.log))?;
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt = if json {
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false);
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(trace::WithTraceId(format))
            .boxed()
    } else {
        // The compact format prints the span fields, `trace_id` among them.
        tracing_subscriber::fmt::layer().compact().boxed()
    };

    let (otel, tracer_provider) = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let var = |name| std::env::var(name).ok();
            let sampler = trace::sampler_from(
                var("OTEL_TRACES_SAMPLER").as_deref(),
                var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            )?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| anyhow::anyhow!("OTLP exporter for {endpoint}: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(sampler)
                .with_resource(
                    opentelemetry_sdk::Resource::builder_empty()
                        .with_service_name("stead")
                        .with_attribute(opentelemetry::KeyValue::new(
                            "service.instance.id",
                            instance_id(),
                        ))
                        .build(),
                )
                .build();
            let tracer = provider.tracer("stead");
            // Database statement spans are made with the OpenTelemetry API directly (see
            // `trace::trace_statements`): they need the global provider.
            opentelemetry::global::set_tracer_provider(provider.clone());
            // The exporter's own stack (tonic, h2, hyper) must not trace itself into a loop.
            let otel_filter = EnvFilter::new("info,h2=off,tonic=off,hyper=off,tower=off");
            (
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(otel_filter),
                ),
                Some(provider),
            )
        }
        _ => (None, None),
    };

    tracing_subscriber::registry()
        .with(trace::trace_ids())
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))?;
    Ok(Guard { tracer_provider })
}

/// The process's metrics. One registry per app instance, so tests never share counters.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub mqtt_connects: prometheus::IntCounter,
    pub mqtt_connect_refused: IntCounterVec,
    /// HTTP connections shut at accept, by reason (over the per-address bound).
    pub http_connections_refused: IntCounterVec,
    pub mqtt_rejected: IntCounterVec,
    pub telemetry_rows: prometheus::IntCounter,
    pub telemetry_batches: prometheus::Histogram,
    pub telemetry_commit: prometheus::Histogram,
    pub mqtt_publish_stored: prometheus::Histogram,
    pub mqtt_sessions: prometheus::IntGauge,
    /// Sampled when `/metrics` is rendered (see `http::health::metrics`), never on the hot path.
    pub telemetry_queue_depth: prometheus::IntGauge,
    pub telemetry_queue_capacity: prometheus::IntGauge,
    pub timeline_queue_depth: prometheus::IntGauge,
    pub dependency_up: prometheus::IntGaugeVec,
    /// Webhook requests made, by what the delivery became (`succeeded`, `pending`: retried
    /// later, `failed`: given up).
    pub webhook_attempts: IntCounterVec,
    /// Events published to the NATS sink and acknowledged by the stream.
    pub nats_published: prometheus::IntCounter,
    /// Telemetry points left out of `device.telemetry` events because the event queue was full.
    pub events_dropped: prometheus::IntCounter,
}

/// Buckets for the hot path's latencies, from half a millisecond to a second.
const HOT_PATH_SECONDS: [f64; 11] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new_custom(Some("stead".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        let mqtt_connects =
            prometheus::IntCounter::new("mqtt_connects_total", "MQTT sessions accepted")?;
        let mqtt_connect_refused = IntCounterVec::new(
            Opts::new(
                "mqtt_connect_refused_total",
                "MQTT connections refused, by reason",
            ),
            &["reason"],
        )?;
        let http_connections_refused = IntCounterVec::new(
            Opts::new(
                "http_connections_refused_total",
                "HTTP connections refused, by reason",
            ),
            &["reason"],
        )?;
        let mqtt_rejected = IntCounterVec::new(
            Opts::new(
                "mqtt_messages_rejected_total",
                "Device messages refused, by reason",
            ),
            &["reason"],
        )?;
        let telemetry_rows =
            prometheus::IntCounter::new("telemetry_rows_total", "Telemetry points committed")?;
        let telemetry_batches = prometheus::Histogram::with_opts(
            HistogramOpts::new("telemetry_batch_rows", "Rows per committed telemetry batch")
                .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]),
        )?;
        let telemetry_commit = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "telemetry_commit_seconds",
                "Time to write and commit one telemetry batch",
            )
            .buckets(HOT_PATH_SECONDS.to_vec()),
        )?;
        let mqtt_publish_stored = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "mqtt_publish_stored_seconds",
                "From a QoS 1 telemetry PUBLISH handed to the device's session to its data committed (then PUBACK)",
            )
            .buckets(HOT_PATH_SECONDS.to_vec()),
        )?;
        let mqtt_sessions =
            prometheus::IntGauge::new("mqtt_sessions", "Device sessions connected to this node")?;
        let telemetry_queue_depth = prometheus::IntGauge::new(
            "telemetry_queue_depth",
            "Telemetry write jobs waiting in the writers' queues (all shards)",
        )?;
        let telemetry_queue_capacity = prometheus::IntGauge::new(
            "telemetry_queue_capacity",
            "Telemetry write jobs the writers' queues hold before producers wait (all shards)",
        )?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook requests made, by what their delivery became",
            ),
            &["outcome"],
        )?;
        let nats_published = prometheus::IntCounter::new(
            "nats_events_published_total",
            "Events the NATS JetStream sink published and the stream acknowledged",
        )?;
        let events_dropped = prometheus::IntCounter::new(
            "events_dropped_total",
            "Telemetry points left out of device.telemetry events (the event queue was full)",
        )?;
        let timeline_queue_depth = prometheus::IntGauge::new(
            "timeline_queue_depth",
            "Device timeline entries waiting to be written (a full queue drops entries)",
        )?;
        let dependency_up = prometheus::IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "1 when the dependency answered a ping as /metrics was rendered, else 0",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(telemetry_queue_depth.clone()))?;
        registry.register(Box::new(telemetry_queue_capacity.clone()))?;
        registry.register(Box::new(timeline_queue_depth.clone()))?;
        registry.register(Box::new(webhook_attempts.clone()))?;
        registry.register(Box::new(nats_published.clone()))?;
        registry.register(Box::new(events_dropped.clone()))?;
        registry.register(Box::new(dependency_up.clone()))?;
        registry.register(Box::new(mqtt_sessions.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(mqtt_connects.clone()))?;
        registry.register(Box::new(mqtt_connect_refused.clone()))?;
        registry.register(Box::new(http_connections_refused.clone()))?;
        registry.register(Box::new(mqtt_rejected.clone()))?;
        registry.register(Box::new(telemetry_rows.clone()))?;
        registry.register(Box::new(telemetry_batches.clone()))?;
        registry.register(Box::new(telemetry_commit.clone()))?;
        registry.register(Box::new(mqtt_publish_stored.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            mqtt_connects,
            mqtt_connect_refused,
            http_connections_refused,
            mqtt_rejected,
            telemetry_rows,
            telemetry_batches,
            telemetry_commit,
            mqtt_publish_stored,
            mqtt_sessions,
            telemetry_queue_depth,
            telemetry_queue_capacity,
            timeline_queue_depth,
            dependency_up,
            webhook_attempts,
            nats_published,
            events_dropped,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}
