//! The `$` query options of lists (API.md §1.1): `$filter`, `$select`, `$includeMetadata` and
//! the paging options, with the rule that their modes do not mix.

use signpost_core::ListMode;
use signpost_model::{validate_label_key, validate_label_value, EntityKind, Label, NameFilter};

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
        // Fragment lists take a `$filter` (names, labels) and nothing else.
        let mut filter = None;
        for (k, v) in &dollar {
            if k != "$filter" {
                return Err(ApiError::bad_request(format!(
                    "Fragment lists take only $filter; got {k}"
                )));
            }
            if filter.replace(v).is_some() {
                return Err(ApiError::bad_request(
                    "The query option $filter is given twice",
                ));
            }
        }
        let (filter, labels) = match filter {
            None => (NameFilter::All, Vec::new()),
            Some(f) => parse_list_filter(f, kind)?,
        };
        return Ok(ListMode::Default {
            filter,
            labels,
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
    let (filter, labels) = match get("$filter") {
        None => (NameFilter::All, Vec::new()),
        Some(f) => parse_list_filter(f, kind)?,
    };
    Ok(ListMode::Default {
        filter,
        labels,
        include_metadata,
    })
}

fn unreachable_mode() -> Result<ListMode, ApiError> {
    Err(ApiError::bad_request("$select needs a value"))
}

/// Parses a whole `$filter`: clauses joined by `and` (any case), each a label clause
/// `Label['key'] HAS ('v1', 'v2')` (the entity has the key with one of the values; keys and
/// values percent-decoded, as the SAP Cloud SDK for Python encodes them) or a name filter of
/// [`parse_filter`], of which there is at most one. Every clause must hold.
pub fn parse_list_filter(
    text: &str,
    kind: EntityKind,
) -> Result<(NameFilter, Vec<Label>), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("Invalid $filter '{text}': {why}"));
    let mut names = None;
    let mut labels: Vec<Label> = Vec::new();
    for clause in split_and(text).ok_or_else(|| bad("a clause is missing around 'and'"))? {
        if let Some(rest) = clause.trim_start().strip_prefix("Label[") {
            let label = label_clause(rest).map_err(|why| bad(&why))?;
            if labels.iter().any(|l| l.key == label.key) {
                return Err(bad(&format!(
                    "the label key '{}' is filtered twice; list its values in one HAS (...)",
                    label.key
                )));
            }
            labels.push(label);
        } else if names.replace(parse_filter(clause, kind)?).is_some() {
            return Err(bad("only one name filter may be given"));
        }
    }
    Ok((names.unwrap_or(NameFilter::All), labels))
}

/// The clauses of `text` between top-level `and`s (outside quotes and parentheses); `None` when
/// one of them is empty.
fn split_and(text: &str) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' | b'[' if !quoted => depth += 1,
            b')' | b']' if !quoted => depth = depth.saturating_sub(1),
            b' ' if !quoted && depth == 0 => {
                let word = bytes.get(i + 1..i + 5);
                if word.is_some_and(|w| w[..3].eq_ignore_ascii_case(b"and") && w[3] == b' ') {
                    clauses.push(&text[start..i]);
                    start = i + 5;
                    i += 4;
                }
            }
            _ => {}
        }
        i += 1;
    }
    clauses.push(&text[start..]);
    clauses
        .iter()
        .all(|c| !c.trim().is_empty())
        .then_some(clauses)
}

/// `'key'] HAS ('v1', 'v2')` after `Label[`.
fn label_clause(rest: &str) -> Result<Label, String> {
    let decode = |lit: &str, what: &str| {
        percent_encoding::percent_decode_str(lit)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| format!("the label {what} is not valid percent-encoded UTF-8"))
    };
    let (key, after) =
        literal(rest.trim_start()).ok_or("the label key must be in single quotes: Label['key']")?;
    let key = decode(&key, "key")?;
    validate_label_key(&key).map_err(|e| e.to_string())?;
    let after = after
        .trim_start()
        .strip_prefix(']')
        .ok_or("expected ']' after the label key")?;
    let after =
        strip_keyword(after, "HAS").ok_or("expected HAS ('value', ...) after Label['key']")?;
    let inner = after
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or("the values must be in parentheses: HAS ('a', 'b')")?;
    let mut values = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (lit, after) = literal(rest).ok_or("label values must be in single quotes")?;
        let value = decode(&lit, "value")?;
        validate_label_value(&key, &value).map_err(|e| e.to_string())?;
        if !values.contains(&value) {
            values.push(value);
        }
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            if rest.is_empty() {
                return Err("a value is missing after ','".into());
            }
        } else if !rest.is_empty() {
            return Err("label values must be separated by ','".into());
        }
    }
    if values.is_empty() {
        return Err("HAS needs at least one value".into());
    }
    Ok(Label { key, values })
}

/// Parses a `$filter` expression on names.
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
    fn label_filters() {
        let d = EntityKind::Destination;
        let label = |key: &str, values: &[&str]| Label {
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        // As the SAP Cloud SDK for Python writes them (keys and values percent-encoded).
        assert_eq!(
            parse_list_filter(
                "Label['env'] HAS ('prod', 'eu%20west') AND Label['team%2Fa'] HAS ('x')",
                d
            )
            .unwrap(),
            (
                NameFilter::All,
                vec![label("env", &["prod", "eu west"]), label("team/a", &["x"])]
            )
        );
        assert_eq!(
            parse_list_filter("Name in ('a and b') and Label['env'] HAS ('it''s')", d).unwrap(),
            (
                NameFilter::In(vec!["a and b".into()]),
                vec![label("env", &["it's"])]
            )
        );
        assert_eq!(
            parse_list_filter("Label['env'] HAS ('p')", EntityKind::Certificate)
                .unwrap()
                .1,
            vec![label("env", &["p"])]
        );
        for bad in [
            "Label['env'] HAS ()",
            "Label['env'] HAS ('a',)",
            "Label['env'] HAS 'a'",
            "Label[env] HAS ('a')",
            "Label['env'] IS ('a')",
            "Label['env'] HAS ('a') AND",
            "AND Label['env'] HAS ('a')",
            "Label['env'] HAS ('a') AND Label['env'] HAS ('b')",
            "Label['bad key'] HAS ('a')",
            "Label['env'] HAS ('%FF')",
            "Name in ('a') and Name in ('b')",
            "Label['env'] HAS ('a') or Label['x'] HAS ('b')",
        ] {
            assert!(parse_list_filter(bad, d).is_err(), "{bad}");
        }
        let long = format!("Label['env'] HAS ('{}')", "v".repeat(300));
        assert!(parse_list_filter(&long, d).is_err());
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
        assert!(matches!(
            list_mode(EntityKind::Fragment, &q("$filter=Label['env'] HAS ('prod')")).unwrap(),
            ListMode::Default { labels, .. } if labels.len() == 1
        ));
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
