//! The `$` query options of lists (API.md §1.1): `$filter`, `$select`, `$includeMetadata` and
//! the paging options, with the rule that their modes do not mix.

use signpost_core::ListMode;
use signpost_model::EntityKind;
use signpost_model::NameFilter;

use crate::ApiError;

/// Decodes a query string (`+` is a space, as in forms). A malformed one is a 400.
pub fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    match raw {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| ApiError::bad_request("The query string could not be decoded")),
    }
}

/// A boolean query value: `true` or `false` (any case).
pub fn flag(pairs: &[(String, String)], key: &str) -> Result<bool, ApiError> {
    match pairs.iter().rev().find(|(k, _)| k == key) {
        None => Ok(false),
        Some((_, v)) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some((_, v)) => Err(ApiError::bad_request(format!(
            "{key} must be true or false, not '{v}'"
        ))),
    }
}

const DEFAULT_KEYS: &[&str] = &["$filter", "$includeMetadata"];
const SELECT_KEYS: &[&str] = &["$select"];
const PAGE_KEYS: &[&str] = &["$page", "$pageSize", "$pageCount", "$entityCount"];

/// The list mode of a list request.
pub fn list_mode(kind: EntityKind, pairs: &[(String, String)]) -> Result<ListMode, ApiError> {
    let dollar: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k.starts_with('$')).collect();
    if kind == EntityKind::Fragment {
        if let Some((k, _)) = dollar.first() {
            return Err(ApiError::bad_request(format!(
                "Fragment lists take no query options; got {k}"
            )));
        }
        return Ok(ListMode::Default {
            filter: NameFilter::All,
            include_metadata: false,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in &dollar {
        if !DEFAULT_KEYS.contains(&k.as_str())
            && !SELECT_KEYS.contains(&k.as_str())
            && !PAGE_KEYS.contains(&k.as_str())
        {
            return Err(ApiError::bad_request(format!("Unknown query option {k}")));
        }
        if !seen.insert(k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "The query option {k} is given twice"
            )));
        }
    }
    let get = |key: &str| {
        dollar
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let uses = |keys: &[&str]| keys.iter().any(|k| get(k).is_some());
    let modes = [uses(DEFAULT_KEYS), uses(SELECT_KEYS), uses(PAGE_KEYS)];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err(ApiError::bad_request(
            "The list modes do not mix: use $filter/$includeMetadata, or $select, or $page with $pageSize/$pageCount/$entityCount",
        ));
    }
    if modes[1] {
        return match get("$select") {
            Some("Name") => Ok(ListMode::NamesOnly),
            Some(v) => Err(ApiError::bad_request(format!(
                "$select supports only 'Name', not '{v}'"
            ))),
            None => unreachable_mode(),
        };
    }
    if modes[2] {
        let page = get("$page").ok_or_else(|| {
            ApiError::bad_request(
                "$pageSize, $pageCount and $entityCount are allowed only together with $page",
            )
        })?;
        let page: u64 = page.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
            ApiError::bad_request(format!("$page must be a whole number from 1, not '{page}'"))
        })?;
        let page_size = match get("$pageSize") {
            None => 10,
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "$pageSize must be a whole number from 1 to 1000, not '{s}'"
                    ))
                })?,
        };
        return Ok(ListMode::Page {
            page,
            page_size,
            page_count: flag(pairs, "$pageCount")?,
            entity_count: flag(pairs, "$entityCount")?,
        });
    }
    let include_metadata = match get("$includeMetadata") {
        None => false,
        Some(_) if kind == EntityKind::Certificate => {
            return Err(ApiError::bad_request(
                "$includeMetadata is available for destinations only",
            ))
        }
        Some(v) => {
            let ok = !v.is_empty()
                && v.split(';')
                    .all(|p| p == "modification_time" || p == "etag");
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "$includeMetadata takes modification_time;etag, not '{v}'"
                )));
            }
            true
        }
    };
    let filter = match get("$filter") {
        None => NameFilter::All,
        Some(f) => parse_filter(f, kind)?,
    };
    Ok(ListMode::Default {
        filter,
        include_metadata,
    })
}

fn unreachable_mode() -> Result<ListMode, ApiError> {
    Err(ApiError::bad_request("$select needs a value"))
}

/// Parses a `$filter` expression.
pub fn parse_filter(text: &str, kind: EntityKind) -> Result<NameFilter, ApiError> {
    let t = text.trim();
    let bad = |why: &str| ApiError::bad_request(format!("Invalid $filter '{text}': {why}"));
    if let Some(rest) = strip_keyword(t, "Name") {
        let rest = strip_keyword(rest, "in").ok_or_else(|| bad("expected Name in ('a', 'b')"))?;
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.trim_end().strip_suffix(')'))
            .ok_or_else(|| bad("the list must be in parentheses"))?;
        let mut names = Vec::new();
        let mut rest = inner.trim();
        while !rest.is_empty() {
            let (lit, after) =
                literal(rest).ok_or_else(|| bad("names must be in single quotes"))?;
            let decoded = percent_encoding::percent_decode_str(&lit)
                .decode_utf8()
                .map_err(|_| bad("a name is not valid percent-encoded UTF-8"))?;
            names.push(decoded.into_owned());
            rest = after.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                if rest.is_empty() {
                    return Err(bad("a name is missing after ','"));
                }
            } else if !rest.is_empty() {
                return Err(bad("names must be separated by ','"));
            }
        }
        if names.is_empty() {
            return Err(bad("the list is empty"));
        }
        return Ok(NameFilter::In(names));
    }
    if kind == EntityKind::Certificate {
        return Err(bad("certificates support only Name in (...)"));
    }
    for (func, make) in [
        (
            "startswith",
            NameFilter::StartsWith as fn(String) -> NameFilter,
        ),
        ("endswith", NameFilter::EndsWith as fn(String) -> NameFilter),
    ] {
        if let Some(args) = call_args(t, func) {
            let rest = strip_keyword(args, "Name")
                .ok_or_else(|| bad("the first argument must be Name"))?;
            let rest = rest
                .trim_start()
                .strip_prefix(',')
                .ok_or_else(|| bad("expected ', ' after Name"))?;
            let (lit, after) = literal(rest.trim_start())
                .ok_or_else(|| bad("the value must be in single quotes"))?;
            if !after.trim().is_empty() {
                return Err(bad("unexpected text after the value"));
            }
            return Ok(make(lit));
        }
    }
    if let Some(args) = call_args(t, "modifiedwithin") {
        let (n, after) = literal(args.trim_start())
            .ok_or_else(|| bad("expected modifiedwithin('<n>', 'minutes')"))?;
        let after = after
            .trim_start()
            .strip_prefix(',')
            .ok_or_else(|| bad("expected ', ' after the number"))?;
        let (unit, after) =
            literal(after.trim_start()).ok_or_else(|| bad("the unit must be in single quotes"))?;
        if unit != "minutes" || !after.trim().is_empty() {
            return Err(bad("the only unit is 'minutes'"));
        }
        let minutes: u32 = n
            .parse()
            .ok()
            .filter(|m| (1..=1440).contains(m))
            .ok_or_else(|| bad("the number of minutes must be from 1 to 1440"))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        return Ok(NameFilter::ModifiedWithin { minutes, now_ms });
    }
    Err(bad("supported are Name in (...), startswith(Name, '...'), endswith(Name, '...') and modifiedwithin('n', 'minutes')"))
}

/// `word` at the start of `s` followed by a space, `(` or the end; returns the rest.
fn strip_keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let rest = s.trim_start().strip_prefix(word)?;
    match rest.chars().next() {
        None | Some(' ') | Some('(') | Some(',') => Some(rest),
        _ => None,
    }
}

/// `func(...)` → the text inside the parentheses.
fn call_args<'a>(s: &'a str, func: &str) -> Option<&'a str> {
    s.strip_prefix(func)?
        .trim_start()
        .strip_prefix('(')?
        .trim_end()
        .strip_suffix(')')
}

/// A single-quoted literal with `''` for a quote; returns its value and the text after it.
fn literal(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('\'')?.char_indices().peekable();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some((out, &body[i + 1..]));
        }
        out.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        pairs(Some(s)).unwrap()
    }

    #[test]
    fn filters() {
        assert_eq!(
            parse_filter("Name in ('a', 'b%20c','it''s')", EntityKind::Destination).unwrap(),
            NameFilter::In(vec!["a".into(), "b c".into(), "it's".into()])
        );
        assert_eq!(
            parse_filter("startswith(Name, 'our-team''s')", EntityKind::Destination).unwrap(),
            NameFilter::StartsWith("our-team's".into())
        );
        assert_eq!(
            parse_filter("endswith(Name,'x')", EntityKind::Destination).unwrap(),
            NameFilter::EndsWith("x".into())
        );
        assert!(matches!(
            parse_filter("modifiedwithin('5', 'minutes')", EntityKind::Destination).unwrap(),
            NameFilter::ModifiedWithin { minutes: 5, .. }
        ));
        for bad in [
            "Name eq 'a'",
            "Name in ()",
            "Name in ('a',)",
            "Name in ('a' 'b')",
            "startswith(Type, 'a')",
            "modifiedwithin('0', 'minutes')",
            "modifiedwithin('5', 'hours')",
            "nonsense",
            "Name in ('a",
        ] {
            assert!(parse_filter(bad, EntityKind::Destination).is_err(), "{bad}");
        }
        assert!(parse_filter("startswith(Name, 'a')", EntityKind::Certificate).is_err());
    }

    #[test]
    fn modes() {
        let d = EntityKind::Destination;
        assert_eq!(
            list_mode(d, &q("$select=Name")).unwrap(),
            ListMode::NamesOnly
        );
        assert!(list_mode(d, &q("$select=URL")).is_err());
        assert_eq!(
            list_mode(d, &q("$page=2&$pageSize=5&$pageCount=true")).unwrap(),
            ListMode::Page {
                page: 2,
                page_size: 5,
                page_count: true,
                entity_count: false
            }
        );
        assert!(list_mode(d, &q("$pageSize=5")).is_err());
        assert!(list_mode(d, &q("$page=0")).is_err());
        assert!(list_mode(d, &q("$page=1&$pageSize=1001")).is_err());
        assert!(list_mode(d, &q("$filter=Name in ('a')&$page=1")).is_err());
        assert!(list_mode(d, &q("$select=Name&$page=1")).is_err());
        assert!(list_mode(d, &q("$top=1")).is_err());
        assert!(list_mode(EntityKind::Fragment, &q("$select=Name")).is_err());
        assert!(list_mode(EntityKind::Certificate, &q("$includeMetadata=etag")).is_err());
        assert!(matches!(
            list_mode(d, &q("$includeMetadata=modification_time;etag")).unwrap(),
            ListMode::Default {
                include_metadata: true,
                ..
            }
        ));
        // `$` sent as %24 decodes to the same key.
        assert_eq!(
            list_mode(d, &q("%24select=Name")).unwrap(),
            ListMode::NamesOnly
        );
    }
}

/// Property tests: whatever text arrives, the parser answers (a filter or a 400, never a panic),
/// and every list of names, however odd, survives being written the way SAP's clients write it.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A name as a client puts it into `Name in (...)`: percent-encoded, in single quotes.
    fn quoted(name: &str) -> String {
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        format!("'{encoded}'")
    }

    /// `text` is a filter or a 400 for every entity kind.
    fn parsed_or_refused(text: &str) -> Result<(), TestCaseError> {
        for kind in [EntityKind::Destination, EntityKind::Certificate] {
            if let Err(e) = parse_filter(text, kind) {
                prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused(text in any::<String>()) {
            parsed_or_refused(&text)?;
        }

        #[test]
        fn near_misses_of_the_grammar_are_parsed_or_refused(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("Name".to_owned()), Just(" in ".to_owned()), Just("(".to_owned()),
                    Just(")".to_owned()), Just(",".to_owned()), Just("'".to_owned()),
                    Just("''".to_owned()), Just("startswith".to_owned()),
                    Just("endswith".to_owned()), Just("modifiedwithin".to_owned()),
                    Just("'minutes'".to_owned()), Just("%".to_owned()), Just("%2".to_owned()),
                    "[a-z0-9 ]{0,3}",
                ],
                0..12,
            )
        ) {
            parsed_or_refused(&parts.concat())?;
        }

        #[test]
        fn names_written_as_clients_write_them_come_back(
            names in proptest::collection::vec(any::<String>(), 1..6),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { ", " } else { "," };
            let text = format!(
                "Name in ({})",
                names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(sep)
            );
            for kind in [EntityKind::Destination, EntityKind::Certificate] {
                prop_assert_eq!(parse_filter(&text, kind).unwrap(), NameFilter::In(names.clone()));
            }
        }

        #[test]
        fn prefixes_and_suffixes_keep_their_quotes(value in any::<String>()) {
            let literal = format!("'{}'", value.replace('\'', "''"));
            prop_assert_eq!(
                parse_filter(&format!("startswith(Name, {literal})"), EntityKind::Destination)
                    .unwrap(),
                NameFilter::StartsWith(value.clone())
            );
            prop_assert_eq!(
                parse_filter(&format!("endswith(Name,{literal})"), EntityKind::Destination)
                    .unwrap(),
                NameFilter::EndsWith(value)
            );
        }
    }
}
