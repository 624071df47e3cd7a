//! Process-wide metrics in Prometheus' registry (prometheus-client), recorded by the engines and
//! the HTTP layer and encoded by `GET /metrics` when it is enabled. Every label set is bounded:
//! routes are the router's templates (never raw paths), models and workflows are the project's
//! names, statuses are HTTP codes or run states.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    /// `prompt` or `completion`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    queue_depth: Family<ModelLabels, Gauge>,
    rejected: Family<ModelLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    decode_rate: Family<ModelLabels, FloatGauge>,
    generation_seconds: Family<ModelLabels, Histogram>,
    load_seconds: Family<ModelLabels, FloatGauge>,
    runs_ended: Family<RunLabels, Counter>,
    runs_active: Gauge,
    storage_bytes: Gauge,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s: tool and storage routes are fast, model routes take seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn generation_histogram() -> Histogram {
    // 50 ms … ~100 s.
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("edgestra");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            queue_depth: Family::default(),
            rejected: Family::default(),
            tokens: Family::default(),
            decode_rate: Family::default(),
            generation_seconds: Family::new_with_constructor(generation_histogram),
            load_seconds: Family::default(),
            runs_ended: Family::default(),
            runs_active: Gauge::default(),
            storage_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to its last byte for streams), by route template",
            m.latency.clone(),
        );
        registry.register(
            "model_queue_depth",
            "Requests waiting for or running on a model",
            m.queue_depth.clone(),
        );
        registry.register(
            "model_rejected",
            "Requests refused because a model's queue was full (answered 429)",
            m.rejected.clone(),
        );
        registry.register(
            "model_tokens",
            "Tokens a model read (prompt) and wrote (completion)",
            m.tokens.clone(),
        );
        registry.register(
            "model_tokens_per_second",
            "Completion tokens per second of the model's last generation (prompt included in its time)",
            m.decode_rate.clone(),
        );
        registry.register(
            "model_generation_seconds",
            "Time of a generation from its request to its end, queueing included",
            m.generation_seconds.clone(),
        );
        registry.register(
            "model_load_seconds",
            "Time the model's last load took",
            m.load_seconds.clone(),
        );
        registry.register(
            "workflow_runs_ended",
            "Workflow runs that stopped, by the status they stopped in (success, failed, suspended, canceled, waiting)",
            m.runs_ended.clone(),
        );
        registry.register(
            "workflow_runs_active",
            "Workflow runs executing now",
            m.runs_active.clone(),
        );
        registry.register(
            "storage_file_bytes",
            "Size of the data file",
            m.storage_bytes.clone(),
        );
        Metrics { registry, ..m }
    })
}

/// An HTTP request answered. `route` is the router's template (`api/agents/{agentId}`).
pub fn request_answered(method: &str, route: &str, status: u16, took: Duration) {
    let m = metrics();
    m.requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels {
            method: method.to_string(),
            route: route.to_string(),
        })
        .observe(took.as_secs_f64());
}

fn model(name: &str) -> ModelLabels {
    ModelLabels {
        model: name.to_string(),
    }
}

/// Counts a request as waiting for or running on `model` until the guard is dropped.
pub struct InFlight(String);

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().queue_depth.get_or_create(&model(&self.0)).dec();
    }
}

/// A request for `model` starts waiting.
pub fn model_request(name: &str) -> InFlight {
    metrics().queue_depth.get_or_create(&model(name)).inc();
    InFlight(name.to_string())
}

/// A request for `model` was refused: its queue was full.
pub fn model_rejected(name: &str) {
    metrics().rejected.get_or_create(&model(name)).inc();
}

/// A generation of `model` ended after `took`.
pub fn model_generated(name: &str, prompt_tokens: u32, completion_tokens: u32, took: Duration) {
    let m = metrics();
    let tokens = |kind| TokenLabels {
        model: name.to_string(),
        kind,
    };
    m.tokens
        .get_or_create(&tokens("prompt"))
        .inc_by(prompt_tokens as u64);
    m.tokens
        .get_or_create(&tokens("completion"))
        .inc_by(completion_tokens as u64);
    m.generation_seconds
        .get_or_create(&model(name))
        .observe(took.as_secs_f64());
    if completion_tokens > 0 && !took.is_zero() {
        m.decode_rate
            .get_or_create(&model(name))
            .set(completion_tokens as f64 / took.as_secs_f64());
    }
}

/// `model` was loaded in `took`.
pub fn model_loaded(name: &str, took: Duration) {
    metrics()
        .load_seconds
        .get_or_create(&model(name))
        .set(took.as_secs_f64());
}

/// A workflow run started (or resumed) executing.
pub fn run_started() {
    metrics().runs_active.inc();
}

/// A workflow run stopped executing, in `status`.
pub fn run_ended(status: &str) {
    let m = metrics();
    m.runs_active.dec();
    m.runs_ended
        .get_or_create(&RunLabels {
            status: status.to_string(),
        })
        .inc();
}

/// The metrics in the OpenMetrics text format (which Prometheus reads), with the data file's
/// size read now.
pub fn encode(storage_bytes: u64) -> String {
    let m = metrics();
    m.storage_bytes.set(storage_bytes as i64);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_encoded_with_bounded_labels() {
        request_answered("GET", "api/agents/{agentId}", 200, Duration::from_millis(3));
        {
            let _waiting = model_request("unit-test-model");
            model_rejected("unit-test-model");
            model_generated("unit-test-model", 10, 4, Duration::from_millis(500));
            model_loaded("unit-test-model", Duration::from_millis(120));
            let text = encode(4096);
            assert!(text.contains("edgestra_model_queue_depth{model=\"unit-test-model\"} 1"));
        }
        run_started();
        run_ended("success");
        let text = encode(4096);
        for line in [
            "edgestra_http_requests_total{method=\"GET\",route=\"api/agents/{agentId}\",status=\"200\"}",
            "edgestra_http_request_duration_seconds_bucket{le=\"0.004\",method=\"GET\",route=\"api/agents/{agentId}\"}",
            "edgestra_model_queue_depth{model=\"unit-test-model\"} 0",
            "edgestra_model_rejected_total{model=\"unit-test-model\"} 1",
            "edgestra_model_tokens_total{model=\"unit-test-model\",kind=\"completion\"} 4",
            "edgestra_model_tokens_per_second{model=\"unit-test-model\"} 8.0",
            "edgestra_model_load_seconds{model=\"unit-test-model\"} 0.12",
            "edgestra_workflow_runs_ended_total{status=\"success\"}",
            "edgestra_storage_file_bytes 4096",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
