//! `audit` on the platform target: the audit log through Signpost's admin endpoint
//! (`/signpost/v1/audit`), with the broker credentials.

use clap::Args;
use signpost_client::AuditEntry;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::output::{self, OutputArgs};
use super::target;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  signpost audit
  signpost audit --since 24h
  signpost audit --since 2026-01-31T00:00:00Z --limit 1000 -o json")]
pub struct AuditArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Only events from this time on: RFC 3339 (2026-01-31T00:00:00Z) or an age such as 30m,
    /// 24h or 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many events (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `--since` as RFC 3339: a time as it is, an age (`<n>s|m|h|d`) counted back from `now`.
fn since(text: &str, now: OffsetDateTime) -> Result<String, String> {
    if OffsetDateTime::parse(text, &Rfc3339).is_ok() {
        return Ok(text.to_owned());
    }
    let bad = || {
        format!("--since '{text}' is neither an RFC 3339 time (2026-01-31T00:00:00Z) nor an age such as 30m, 24h or 7d")
    };
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    let at = now
        .checked_sub(time::Duration::seconds(secs))
        .ok_or_else(bad)?;
    at.format(&Rfc3339).map_err(|_| bad())
}

fn table(events: &[AuditEntry]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.actor.clone(),
                e.action.clone(),
                dash(&e.entity_kind),
                dash(&e.entity_name),
                dash(&e.subaccount),
                dash(&e.instance),
                format!("{} {}", e.outcome, e.status),
                dash(&e.request_id),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME",
            "ACTOR",
            "ACTION",
            "KIND",
            "NAME",
            "SUBACCOUNT",
            "INSTANCE",
            "OUTCOME",
            "REQUEST",
        ],
        &rows,
    )
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|s| since(s, OffsetDateTime::now_utc()))
        .transpose()
        .map_err(super::usage)?;
    if args.limit == 0 {
        return Err(super::usage("--limit must be at least 1"));
    }
    let (client, _) = target::broker()?;
    let events = client.audit(since.as_deref(), args.limit).await?;
    output::render(&args.out, &serde_json::to_value(&events)?, || {
        table(&events)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = OffsetDateTime::parse("2026-02-01T12:00:00Z", &Rfc3339)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            since("2026-01-31T00:00:00Z", now).as_deref(),
            Ok("2026-01-31T00:00:00Z")
        );
        assert_eq!(since("90m", now).as_deref(), Ok("2026-02-01T10:30:00Z"));
        assert_eq!(since("2d", now).as_deref(), Ok("2026-01-30T12:00:00Z"));
        for bad in ["", "h", "5w", "-1h", "yesterday", "2026-01-31"] {
            assert!(since(bad, now).is_err(), "{bad}");
        }
    }
}
