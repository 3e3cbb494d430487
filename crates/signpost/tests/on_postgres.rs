//! The HTTP suites again, unchanged, on PostgreSQL: `signpost_test_utils::TestApp` runs on a
//! database of a throwaway PostgreSQL cluster in a test binary whose name starts with
//! `on_postgres` (this one). `secrets.rs` stays SQLite-only: it inspects the database file.
#![allow(clippy::unwrap_used)]

#[path = "certificates.rs"]
mod certificates;
#[path = "hardening.rs"]
mod hardening;
#[path = "http_audit.rs"]
mod http_audit;
#[path = "http_broker.rs"]
mod http_broker;
#[path = "http_destinations.rs"]
mod http_destinations;
#[path = "http_find.rs"]
mod http_find;
#[path = "http_labels.rs"]
mod http_labels;
#[path = "http_limits.rs"]
mod http_limits;
#[path = "http_subscriptions.rs"]
mod http_subscriptions;
#[path = "http_tenancy.rs"]
mod http_tenancy;
#[path = "tenant_isolation.rs"]
mod tenant_isolation;
#[path = "token_flows.rs"]
mod token_flows;

#[tokio::test]
async fn the_suites_here_run_on_postgres() {
    let app = signpost_test_utils::TestApp::start().await;
    assert_eq!(app.engine(), "postgres");
}
