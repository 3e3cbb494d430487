//! The operator's Prometheus metrics (`/metrics`): resources by reason (and SAP's
//! `tp_destination_crs` by `Available`), reconcile durations and errors, the configuration's
//! state and leadership. They are prometheus-client's own metric types in one registry, written
//! in the OpenMetrics text format.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the reconcile-duration histogram, in seconds.
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The media type of [`Metrics::render`]'s exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label and its value.
type Label = [(&'static str, String); 1];

#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    destinations: Family<Label, Gauge>,
    crs: Family<Label, Gauge>,
    /// The reasons last counted, so that one gone is removed rather than left at its old count.
    reasons: Mutex<BTreeSet<String>>,
    reconcile: Histogram,
    errors: Counter,
    config_valid: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let inner = Inner {
            registry: Registry::default(),
            destinations: Family::default(),
            crs: Family::default(),
            reasons: Mutex::default(),
            reconcile: Histogram::new(BUCKETS),
            errors: Counter::default(),
            config_valid: Gauge::default(),
            leader: Gauge::default(),
        };
        // SAP's gauge is there from the start, both values at 0.
        for available in ["True", "False"] {
            inner
                .crs
                .get_or_create(&[("Available", available.to_owned())])
                .set(0);
        }
        let mut registry = Registry::default();
        registry.register(
            "signpost_operator_destinations",
            "Destination resources by the reason of their Available condition.",
            inner.destinations.clone(),
        );
        registry.register(
            "tp_destination_crs",
            "Destination custom resources by availability (SAP's name).",
            inner.crs.clone(),
        );
        registry.register(
            "signpost_operator_reconcile_duration_seconds",
            "Time one reconcile took.",
            inner.reconcile.clone(),
        );
        registry.register(
            "signpost_operator_reconcile_errors",
            "Reconciles that failed or were postponed.",
            inner.errors.clone(),
        );
        registry.register(
            "signpost_operator_config_valid",
            "1 when the values and the Secrets they name resolve.",
            inner.config_valid.clone(),
        );
        registry.register(
            "signpost_operator_leader",
            "1 while this replica holds the Lease.",
            inner.leader.clone(),
        );
        Self(Arc::new(Inner { registry, ..inner }))
    }
}

impl Metrics {
    pub fn set_reasons(&self, verdicts: &BTreeMap<(String, String), String>) {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for reason in verdicts.values() {
            *counts.entry(reason).or_default() += 1;
        }
        let mut last = self
            .0
            .reasons
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (reason, n) in &counts {
            self.0
                .destinations
                .get_or_create(&[("reason", (*reason).to_owned())])
                .set(*n);
        }
        for gone in last.iter().filter(|r| !counts.contains_key(r.as_str())) {
            self.0.destinations.remove(&[("reason", gone.clone())]);
        }
        *last = counts.keys().map(|r| (*r).to_owned()).collect();
        let ok = counts.get(crate::checks::SUCCESS).copied().unwrap_or(0);
        let total: i64 = counts.values().sum();
        for (available, n) in [("True", ok), ("False", total - ok)] {
            self.0
                .crs
                .get_or_create(&[("Available", available.to_owned())])
                .set(n);
        }
    }

    pub fn reconciled(&self, took: Duration) {
        self.0.reconcile.observe(took.as_secs_f64());
    }

    pub fn reconcile_error(&self) {
        self.0.errors.inc();
    }

    pub fn set_config_valid(&self, valid: bool) {
        self.0.config_valid.set(i64::from(valid));
    }

    pub fn set_leader(&self, leader: bool) {
        self.0.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` does not fail.
        let _ = text::encode(&mut out, &self.0.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reasons_histogram_and_sap_gauge() {
        let m = Metrics::default();
        m.set_reasons(&BTreeMap::from([
            (("a".into(), "x".into()), crate::checks::SUCCESS.to_owned()),
            (
                ("b".into(), "y".into()),
                crate::checks::DUPLICATE.to_owned(),
            ),
        ]));
        m.reconciled(Duration::from_millis(20));
        m.reconcile_error();
        let text = m.render();
        assert!(
            text.contains("signpost_operator_destinations{reason=\"ConfigurationSuccessful\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tp_destination_crs{Available=\"False\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("signpost_operator_reconcile_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("signpost_operator_reconcile_duration_seconds_bucket{le=\"0.01\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("signpost_operator_reconcile_errors_total 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A reason no resource has any more is gone, not left at its old count.
        m.set_reasons(&BTreeMap::from([(
            ("a".into(), "x".into()),
            crate::checks::SUCCESS.to_owned(),
        )]));
        let text = m.render();
        assert!(!text.contains(crate::checks::DUPLICATE), "{text}");
        assert!(
            text.contains("tp_destination_crs{Available=\"False\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn sap_gauge_is_there_before_the_first_pass() {
        let text = Metrics::default().render();
        assert!(
            text.contains("tp_destination_crs{Available=\"True\"} 0"),
            "{text}"
        );
        assert!(text.contains("signpost_operator_leader 0"), "{text}");
    }
}
