//! The query options of lists (`$filter`, `$select`, `$includeMetadata`, `$page` and its
//! companions) and the `$filter` of a bulk delete, from a raw query string as the handlers get
//! it.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use signpost_api::query::{list_mode, pairs, parse_filter};
use signpost_core::ListMode;
use signpost_model::{EntityKind, NameFilter};

/// The query string (without `?`) of a list or bulk delete: every refusal is a 400, and every
/// accepted mode written back as a query string reads back as the same mode.
pub fn list_options(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let query = match pairs(Some(raw)) {
        Ok(q) => q,
        Err(e) => {
            assert_eq!(e.status, 400);
            return;
        }
    };
    for kind in [
        EntityKind::Destination,
        EntityKind::Fragment,
        EntityKind::Certificate,
    ] {
        match list_mode(kind, &query) {
            Ok(mode) => {
                check_mode(&mode);
                let written = query_of(&mode);
                let back = list_mode(kind, &pairs(Some(&written)).expect("our query decodes"))
                    .unwrap_or_else(|e| panic!("{written:?} refused: {}", e.message));
                assert!(same_mode(&back, &mode), "{mode:?} read back as {back:?}");
            }
            Err(e) => assert_eq!(e.status, 400),
        }
    }
    // The bulk delete: the last `$filter`, as a certificate filter (Name in (...) only).
    if let Some((_, f)) = query.iter().find(|(k, _)| k == "$filter") {
        match parse_filter(f, EntityKind::Certificate) {
            Ok(NameFilter::In(names)) => assert!(!names.is_empty()),
            Ok(other) => panic!("a certificate filter other than Name in: {other:?}"),
            Err(e) => assert_eq!(e.status, 400),
        }
    }
}

fn check_mode(mode: &ListMode) {
    match mode {
        ListMode::Default {
            filter: NameFilter::In(names),
            ..
        } => assert!(!names.is_empty(), "an empty Name in list"),
        ListMode::Default {
            filter: NameFilter::ModifiedWithin { minutes, .. },
            ..
        } => assert!((1..=1440).contains(minutes)),
        ListMode::Default { labels, .. } if !labels.is_empty() => {
            for l in labels {
                assert!(!l.values.is_empty(), "a label clause without values");
                signpost_model::validate_label_key(&l.key).expect("a filtered key is valid");
            }
        }
        ListMode::Page {
            page, page_size, ..
        } => {
            assert!(*page >= 1);
            assert!((1..=1000).contains(page_size));
        }
        _ => {}
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The query string that asks for `mode`.
fn query_of(mode: &ListMode) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    match mode {
        ListMode::Default {
            filter,
            labels,
            include_metadata,
        } => {
            let names = match filter {
                NameFilter::All => None,
                NameFilter::In(names) => Some(format!(
                    "Name in ({})",
                    names
                        .iter()
                        .map(|n| quoted(&enc(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                NameFilter::StartsWith(s) => Some(format!("startswith(Name, {})", quoted(s))),
                NameFilter::EndsWith(s) => Some(format!("endswith(Name, {})", quoted(s))),
                NameFilter::ModifiedWithin { minutes, .. } => {
                    Some(format!("modifiedwithin('{minutes}', 'minutes')"))
                }
            };
            let clauses: Vec<String> = names
                .into_iter()
                .chain(labels.iter().map(|l| {
                    let values: Vec<String> = l.values.iter().map(|v| quoted(&enc(v))).collect();
                    format!(
                        "Label[{}] HAS ({})",
                        quoted(&enc(&l.key)),
                        values.join(", ")
                    )
                }))
                .collect();
            if !clauses.is_empty() {
                q.push(("$filter", clauses.join(" and ")));
            }
            if *include_metadata {
                q.push(("$includeMetadata", "modification_time;etag".into()));
            }
        }
        ListMode::NamesOnly => q.push(("$select", "Name".into())),
        ListMode::Page {
            page,
            page_size,
            page_count,
            entity_count,
        } => {
            q.push(("$page", page.to_string()));
            q.push(("$pageSize", page_size.to_string()));
            q.push(("$pageCount", page_count.to_string()));
            q.push(("$entityCount", entity_count.to_string()));
        }
    }
    q.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Equal modes; `modifiedwithin` counts from the time of parsing, so only its minutes compare.
fn same_mode(a: &ListMode, b: &ListMode) -> bool {
    match (a, b) {
        (
            ListMode::Default {
                filter: NameFilter::ModifiedWithin { minutes: x, .. },
                labels: k,
                include_metadata: i,
            },
            ListMode::Default {
                filter: NameFilter::ModifiedWithin { minutes: y, .. },
                labels: l,
                include_metadata: j,
            },
        ) => x == y && i == j && k == l,
        _ => a == b,
    }
}
