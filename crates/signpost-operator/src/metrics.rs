//! The operator's Prometheus metrics (`/metrics`): resources by reason (and SAP's
//! `tp_destination_crs` by `Available`), reconcile durations and errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the reconcile-duration histogram, in seconds.
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    reasons: BTreeMap<String, u64>,
    reconciles: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    seconds: f64,
    config_valid: bool,
    leader: bool,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set_reasons(&self, verdicts: &BTreeMap<(String, String), String>) {
        self.with(|m| {
            m.reasons.clear();
            for reason in verdicts.values() {
                *m.reasons.entry(reason.clone()).or_default() += 1;
            }
        });
    }

    pub fn reconciled(&self, took: Duration) {
        let secs = took.as_secs_f64();
        self.with(|m| {
            m.reconciles += 1;
            m.seconds += secs;
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    m.buckets[i] += 1;
                }
            }
        });
    }

    pub fn reconcile_error(&self) {
        self.with(|m| m.errors += 1);
    }

    pub fn set_config_valid(&self, valid: bool) {
        self.with(|m| m.config_valid = valid);
    }

    pub fn set_leader(&self, leader: bool) {
        self.with(|m| m.leader = leader);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP signpost_operator_destinations Destination resources by the reason of their Available condition.\n# TYPE signpost_operator_destinations gauge\n");
            for (reason, n) in &m.reasons {
                let _ = writeln!(out, "signpost_operator_destinations{{reason=\"{reason}\"}} {n}");
            }
            let ok: u64 = m.reasons.get(crate::checks::SUCCESS).copied().unwrap_or(0);
            let total: u64 = m.reasons.values().sum();
            out.push_str("# HELP tp_destination_crs Destination custom resources by availability (SAP's name).\n# TYPE tp_destination_crs gauge\n");
            let _ = writeln!(out, "tp_destination_crs{{Available=\"True\"}} {ok}");
            let _ = writeln!(out, "tp_destination_crs{{Available=\"False\"}} {}", total - ok);
            out.push_str("# HELP signpost_operator_reconcile_duration_seconds Time one reconcile took.\n# TYPE signpost_operator_reconcile_duration_seconds histogram\n");
            for (bound, n) in BUCKETS.iter().zip(m.buckets) {
                let _ = writeln!(out, "signpost_operator_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "signpost_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}", m.reconciles);
            let _ = writeln!(out, "signpost_operator_reconcile_duration_seconds_sum {}", m.seconds);
            let _ = writeln!(out, "signpost_operator_reconcile_duration_seconds_count {}", m.reconciles);
            out.push_str("# HELP signpost_operator_reconcile_errors_total Reconciles that failed or were postponed.\n# TYPE signpost_operator_reconcile_errors_total counter\n");
            let _ = writeln!(out, "signpost_operator_reconcile_errors_total {}", m.errors);
            out.push_str("# HELP signpost_operator_config_valid 1 when the values and the Secrets they name resolve.\n# TYPE signpost_operator_config_valid gauge\n");
            let _ = writeln!(out, "signpost_operator_config_valid {}", u8::from(m.config_valid));
            out.push_str("# HELP signpost_operator_leader 1 while this replica holds the Lease.\n# TYPE signpost_operator_leader gauge\n");
            let _ = writeln!(out, "signpost_operator_leader {}", u8::from(m.leader));
            out
        })
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
    }
}
