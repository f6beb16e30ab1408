//! OTLP metrics: the Prometheus registry, sent to an OpenTelemetry collector over OTLP/gRPC
//! every `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! The registry stays the one set of instruments: `/metrics` serves it unchanged, and this
//! bridge gathers the same registry on a timer and translates each family (counters to
//! monotonic cumulative sums, gauges to gauges, histograms to explicit-bucket histograms), so
//! a metric added to the registry is exported without a second declaration, under the very name
//! and labels `/metrics` shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};

use super::Metrics;

/// Where and how often to send, from the OpenTelemetry environment variables.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: String,
    pub interval: Duration,
}

/// The specification's default export interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

impl Settings {
    /// `None` when no OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) or `OTEL_METRICS_EXPORTER` is `none`.
    pub fn from_env() -> anyhow::Result<Option<Settings>> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        if var("OTEL_METRICS_EXPORTER").is_some_and(|v| v == "none") {
            return Ok(None);
        }
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        let interval = match var("OTEL_METRIC_EXPORT_INTERVAL") {
            None => DEFAULT_INTERVAL,
            Some(ms) => ms
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "OTEL_METRIC_EXPORT_INTERVAL {ms:?} is not a positive number of milliseconds"
                    )
                })?,
        };
        Ok(Some(Settings { endpoint, interval }))
    }
}

/// Starts sending `metrics` on the current runtime. The connection is made lazily and remade
/// by tonic when the collector restarts; a failed export is logged and the next one tries
/// again (the values are cumulative, so nothing is lost but resolution).
pub fn start(metrics: &Metrics, settings: Settings) -> anyhow::Result<()> {
    let channel = tonic::transport::Channel::from_shared(settings.endpoint.clone())
        .map_err(|e| {
            anyhow::anyhow!(
                "the OTLP endpoint {:?} is not a valid URL: {e}",
                settings.endpoint
            )
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let mut client = MetricsServiceClient::new(channel);
    let registry = metrics.registry.clone();
    let started = unix_nanos(SystemTime::now());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: skip it, so the first export has something to say.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let request = translate(&registry.gather(), started, unix_nanos(SystemTime::now()));
            if let Err(e) = client.export(request).await {
                tracing::warn!(error = %e.message(), code = ?e.code(), "exporting metrics over OTLP failed");
            }
        }
    });
    Ok(())
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One export request holding every family of the registry, as of `now`.
pub fn translate(families: &[MetricFamily], start: u64, now: u64) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter_map(|family| translate_family(family, start, now))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", "stead"),
                    attribute("service.instance.id", super::instance_id()),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "stead".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn labels(m: &prometheus::proto::Metric) -> Vec<KeyValue> {
    m.get_label()
        .iter()
        .map(|l| attribute(l.name(), l.value()))
        .collect()
}

fn translate_family(family: &MetricFamily, start: u64, now: u64) -> Option<Metric> {
    let number = |m: &prometheus::proto::Metric, value: f64| NumberDataPoint {
        attributes: labels(m),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    let data = match family.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_counter().get_value()))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_gauge().get_value()))
                .collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| histogram_point(m, start, now))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        // The registry holds no summaries or untyped metrics.
        _ => return None,
    };
    Some(Metric {
        name: family.name().to_owned(),
        description: family.help().to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

/// Prometheus counts cumulatively per upper bound (the `+Inf` bucket implicit in the total);
/// OTLP counts per bucket, with one more bucket than bounds for what lies above the last.
fn histogram_point(m: &prometheus::proto::Metric, start: u64, now: u64) -> HistogramDataPoint {
    let h = m.get_histogram();
    let buckets: Vec<_> = h
        .get_bucket()
        .iter()
        .filter(|b| b.upper_bound().is_finite())
        .collect();
    let mut bucket_counts = Vec::with_capacity(buckets.len() + 1);
    let mut below = 0;
    for b in &buckets {
        let cumulative = b.cumulative_count();
        bucket_counts.push(cumulative.saturating_sub(below));
        below = cumulative;
    }
    bucket_counts.push(h.get_sample_count().saturating_sub(below));
    HistogramDataPoint {
        attributes: labels(m),
        start_time_unix_nano: start,
        time_unix_nano: now,
        count: h.get_sample_count(),
        sum: Some(h.get_sample_sum()),
        bucket_counts,
        explicit_bounds: buckets.iter().map(|b| b.upper_bound()).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_translates_name_for_name() {
        let metrics = Metrics::new().unwrap();
        metrics
            .http_requests
            .with_label_values(&["GET", "/healthz", "200"])
            .inc_by(3);
        metrics.mqtt_sessions.set(2);
        metrics.telemetry_commit.observe(0.003);
        metrics.telemetry_commit.observe(7.0);
        let request = translate(&metrics.registry.gather(), 1, 2);
        let exported = &request.resource_metrics[0].scope_metrics[0].metrics;
        let find = |name: &str| {
            exported
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name} not exported"))
        };
        let Some(metric::Data::Sum(sum)) = &find("stead_http_requests_total").data else {
            panic!("a counter is a sum");
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(3.0))
        );
        let keys: Vec<_> = sum.data_points[0]
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(keys, ["method", "route", "status"]);
        assert!(matches!(
            find("stead_mqtt_sessions").data,
            Some(metric::Data::Gauge(_))
        ));
        let Some(metric::Data::Histogram(h)) = &find("stead_telemetry_commit_seconds").data else {
            panic!("a histogram");
        };
        let point = &h.data_points[0];
        assert_eq!(point.count, 2);
        assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), 2);
        assert_eq!(
            point.bucket_counts.last(),
            Some(&1),
            "7 s is above every bound"
        );
    }
}
