//! Prometheus metrics, rendered at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Execution status (`success`, `failure`, …) or `refused` for calls stopped before a
    /// sandbox (invalid arguments, not active, …).
    pub status: String,
}

/// Labels of an HTTP answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    /// The status code.
    pub code: u16,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Calls by outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Duration of calls through the API (seconds).
    pub call_seconds: Histogram,
    /// Calls running now.
    pub calls_in_flight: Gauge,
    /// Calls turned away by back-pressure.
    pub calls_rejected: Counter,
    /// Errors answered, by status code.
    pub errors: Family<ResponseLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("slovo");
        let calls = Family::<CallLabels, Counter>::default();
        let call_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
        ]);
        let calls_in_flight = Gauge::default();
        let calls_rejected = Counter::default();
        let errors = Family::<ResponseLabels, Counter>::default();
        registry.register("calls", "Tool calls answered, by execution status", calls.clone());
        registry.register(
            "call_duration_seconds",
            "Duration of tool calls",
            call_seconds.clone(),
        );
        registry.register(
            "calls_in_flight",
            "Tool calls running now",
            calls_in_flight.clone(),
        );
        registry.register(
            "calls_rejected",
            "Tool calls turned away by back-pressure",
            calls_rejected.clone(),
        );
        registry.register("http_errors", "Error responses, by status code", errors.clone());
        Metrics {
            registry,
            calls,
            call_seconds,
            calls_in_flight,
            calls_rejected,
            errors,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
