//! The rules of a request: common names, passwords, start times and validity arithmetic, signing
//! errors.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn validate_common_name(cn: &str) -> Result<&str, CaError> {
    let cn = cn.trim();
    if cn.is_empty() {
        return Err(CaError::EmptyCommonName);
    }
    let chars = cn.chars().count();
    if chars > MAX_COMMON_NAME_CHARS {
        return Err(CaError::CommonNameTooLong { chars });
    }
    if cn.chars().any(char::is_control) {
        return Err(CaError::CommonNameControlCharacter);
    }
    Ok(cn)
}

pub(super) fn require_password(
    password: Option<&SecretString>,
    format: OutputFormat,
) -> Result<&str, CaError> {
    match password.map(|p| p.expose_secret()) {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(CaError::PasswordRequired { format }),
    }
}

/// `(notBefore, start)`: `start` is `now` in UTC to the whole second (X.509 has no fractions),
/// `notBefore` that less the clock-skew allowance.
pub(super) fn start_times(
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let start = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| CaError::TimeOutOfRange)?;
    let not_before = start
        .checked_sub(CLOCK_SKEW_ALLOWANCE)
        .ok_or(CaError::TimeOutOfRange)?;
    Ok((not_before, start))
}

/// Adds calendar months, clamping the day to the end of the target month.
pub(super) fn add_months(t: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let total = i64::from(t.year())
        .checked_mul(12)?
        .checked_add(i64::from(u8::from(t.month())) - 1)?
        .checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A DNS-name-shaped CN (at least two labels, or `localhost`; a leading `*.` is allowed).
pub(super) fn looks_like_host_name(cn: &str) -> bool {
    let name = cn.strip_prefix("*.").unwrap_or(cn);
    if name.len() > 253 || (!name.contains('.') && !name.eq_ignore_ascii_case("localhost")) {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // An all-numeric last label is not a host name (e.g. "1.2.3" or a mistyped address).
    let tld_ok = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && tld_ok
}

pub(super) fn signing_error(e: rcgen::Error) -> CaError {
    CaError::Signing {
        reason: e.to_string(),
    }
}
