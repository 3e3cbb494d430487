//! Which route a request is for, and what to look up for it. A route is a `Destination`
//! resource's spec (PROXY.md §2.1) under its name and namespace; requests find it by their
//! `Host` (`<name>`, `<name>.<namespace>`, `<name>.<namespace>.svc[.cluster.local]`, with or
//! without a port). A static route names its destination; a dynamic one (`destinationRef.name:
//! "*"`) takes it from the request's headers (PROXY.md §3.2).

use std::collections::HashMap;

use http::HeaderMap;
use signpost_client::{FragmentRef, LookupLevel};

use crate::config::{ProxyConfig, Route};
use crate::error::ProxyError;

/// Request headers that steer the proxy (PROXY.md §3.2) and are removed before the call goes
/// out (`x-chain-var-*` too). `Authorization` and the location id are handled by the forwarder.
pub const CONTROL_HEADERS: &[&str] = &[
    "x-destination-name",
    "x-fragment-name",
    "x-fragment-optional",
    "x-destination-level",
    "x-fragment-level",
    "x-chain-name",
    "x-tenant-subdomain",
    "x-tenant-id",
    "x-token-service-tenant",
    "x-subject-token-type",
    "x-actor-token",
    "x-actor-token-type",
    "x-client-assertion",
    "x-client-assertion-type",
    "x-client-assertion-destination-name",
    "x-redirect-uri",
    "x-code-verifier",
    "sap-connectivity-region-configuration-id",
];

/// Headers of PROXY.md §3.2 besides [`CONTROL_HEADERS`] that may be sent only once too.
pub const OTHER_SINGLE_HEADERS: &[&str] = &["authorization", "sap-connectivity-scc-location_id"];

/// Longest destination or fragment name a header may carry.
const MAX_NAME: usize = 200;

/// One route, ready to serve.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub route: Route,
    /// `<name>.<namespace>`: the route's label in logs and metrics.
    pub id: String,
    /// The Destination service instance it uses (empty when it has none to use).
    pub instance: String,
    /// Why it has no instance to use ([`ProxyConfig::instance_problem`]): its requests get a
    /// 502 with this message.
    pub unresolved: Option<String>,
    /// Its answers by status, for `/metrics`.
    pub counters: std::sync::Arc<crate::metrics::RouteCounters>,
}

impl RouteEntry {
    /// The client of the Destination service instance it uses, or why it has none (what a
    /// request through it is told, with a 502).
    pub fn client<'a>(
        &self,
        clients: &'a HashMap<String, signpost_client::DestinationClient>,
    ) -> Result<&'a signpost_client::DestinationClient, String> {
        if let Some(why) = &self.unresolved {
            return Err(why.clone());
        }
        clients.get(&self.instance).ok_or_else(|| {
            format!(
                "The Destination service instance '{}' is not configured",
                self.instance
            )
        })
    }
}

/// Routes by name and namespace.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<RouteEntry>,
    by_key: HashMap<(String, String), usize>,
    by_name: HashMap<String, Vec<usize>>,
    /// The proxy's own namespace: where `<name>` alone is looked up first.
    namespace: String,
}

impl RouteTable {
    pub fn new(config: &ProxyConfig, namespace: &str, metrics: &crate::metrics::Metrics) -> Self {
        let mut table = RouteTable {
            namespace: namespace.to_ascii_lowercase(),
            ..RouteTable::default()
        };
        for route in &config.routes {
            let instance = route.instance_name(config).unwrap_or_default();
            let name = route.name.to_ascii_lowercase();
            let ns = route.namespace.to_ascii_lowercase();
            let i = table.routes.len();
            let id = format!("{name}.{ns}");
            table.routes.push(RouteEntry {
                counters: metrics.route(&id),
                id,
                instance: instance.to_owned(),
                unresolved: config.instance_problem(route),
                route: route.clone(),
            });
            table.by_key.insert((name.clone(), ns), i);
            table.by_name.entry(name).or_default().push(i);
        }
        table
    }

    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// The route a `Host` (or `:authority`) names.
    pub fn lookup(&self, host: &str) -> Option<&RouteEntry> {
        self.position(host).map(|i| &self.routes[i])
    }

    /// Where in [`Self::routes`] the route a `Host` names is.
    pub fn position(&self, host: &str) -> Option<usize> {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .strip_suffix(".svc.cluster.local")
            .or_else(|| host.strip_suffix(".svc"))
            .unwrap_or(&host);
        let mut parts = host.splitn(2, '.');
        let name = parts.next()?;
        match parts.next() {
            Some(ns) => self.by_key.get(&(name.to_owned(), ns.to_owned())).copied(),
            None => {
                if let Some(i) = self.by_key.get(&(name.to_owned(), self.namespace.clone())) {
                    return Some(*i);
                }
                // Resource names are unique across namespaces (SAP's
                // DuplicateDestinationCustomResource), so a bare name is unambiguous when only
                // one namespace has it.
                match self.by_name.get(name).map(Vec::as_slice) {
                    Some([i]) => Some(*i),
                    _ => None,
                }
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// What a request asks the Destination service for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub name: String,
    pub level: Option<LookupLevel>,
    pub fragment: Option<FragmentRef>,
    pub fragment_optional: Option<bool>,
    pub chain_name: Option<String>,
    pub chain_vars: Vec<(String, String)>,
}

/// The one value of header `name`, or a 400 when it is sent twice.
pub fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ProxyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyError::bad_request(format!(
            "The '{}' header should be passed only once",
            canonical(name)
        )));
    }
    first.to_str().map(|s| Some(s.trim())).map_err(|_| {
        ProxyError::bad_request(format!("The '{}' header is not text", canonical(name)))
    })
}

/// `x-destination-name` → `X-Destination-Name`, for messages: as PROXY.md §3.2 spells each
/// header (`SAP-Connectivity-SCC-Location_ID`; a chain variable's name as sent).
fn canonical(name: &str) -> String {
    if name.eq_ignore_ascii_case("sap-connectivity-scc-location_id") {
        return "SAP-Connectivity-SCC-Location_ID".to_owned();
    }
    if let Some(rest) = name.strip_prefix("sap-") {
        return format!("SAP-{}", canonical(rest));
    }
    if let Some(var) = name.strip_prefix("x-chain-var-") {
        return format!("X-Chain-Var-{var}");
    }
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// True when the request carries a header that steers the proxy (PROXY.md §3.2: the control
/// headers, `x-chain-var-*`, `Authorization`, the location id). Most requests carry none; one
/// pass over their few headers then spares them the dozens of lookups by name.
pub fn steered(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| steers(name.as_str()))
}

/// True when the header `name` (in any case) steers the proxy: one of [`CONTROL_HEADERS`],
/// [`OTHER_SINGLE_HEADERS`] or `x-chain-var-*`.
pub fn steers(name: &str) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let starts = |p: &str| {
        name.get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    (starts("x-") || starts("sap-") || is("authorization"))
        && (CONTROL_HEADERS.iter().any(|h| is(h))
            || OTHER_SINGLE_HEADERS.iter().any(|h| is(h))
            || starts("x-chain-var-"))
}

/// Every header of PROXY.md §3.2 at most once.
pub fn check_single_headers(headers: &HeaderMap) -> Result<(), ProxyError> {
    for name in CONTROL_HEADERS.iter().chain(OTHER_SINGLE_HEADERS) {
        single(headers, name)?;
    }
    for name in headers.keys() {
        if name.as_str().starts_with("x-chain-var-") {
            single(headers, name.as_str())?;
        }
    }
    Ok(())
}

fn level_of(value: &str, header: &str) -> Result<LookupLevel, ProxyError> {
    value.parse().map_err(|_| {
        ProxyError::bad_request(format!(
            "The '{header}' header must be one of subaccount, instance, provider_subaccount, provider_instance"
        ))
    })
}

fn check_name(value: &str, header: &str) -> Result<String, ProxyError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(ProxyError::bad_request(format!(
            "The '{header}' header must hold a name of 1 to {MAX_NAME} characters"
        )));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ProxyError::bad_request(format!(
            "The '{header}' header may hold only letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(value.to_owned())
}

/// The lookup of `route` for a request with `headers`.
pub fn lookup_for(route: &Route, headers: &HeaderMap) -> Result<Lookup, ProxyError> {
    if !steered(headers) {
        // As if it had no headers at all (an empty map allocates nothing).
        return lookup_for_steered(route, &HeaderMap::new());
    }
    lookup_for_steered(route, headers)
}

fn lookup_for_steered(route: &Route, headers: &HeaderMap) -> Result<Lookup, ProxyError> {
    check_single_headers(headers)?;
    let spec = &route.spec;
    let dynamic = route.is_dynamic();
    let name_header = single(headers, "x-destination-name")?;
    let fragment_header = single(headers, "x-fragment-name")?;
    let optional_header = single(headers, "x-fragment-optional")?;
    let level_header = single(headers, "x-destination-level")?;
    let fragment_level_header = single(headers, "x-fragment-level")?;
    let mut lookup = if dynamic {
        let name = name_header.ok_or_else(|| {
            ProxyError::bad_request(
                "The 'X-Destination-Name' header is required on a dynamic destination (\"*\")",
            )
        })?;
        let fragment = fragment_header
            .map(|f| check_name(f, "X-Fragment-Name"))
            .transpose()?;
        let fragment_level = fragment_level_header
            .map(|l| level_of(l, "X-Fragment-Level"))
            .transpose()?;
        if fragment.is_none() && (fragment_level.is_some() || optional_header.is_some()) {
            return Err(ProxyError::bad_request(
                "The 'X-Fragment-Level' and 'X-Fragment-Optional' headers need 'X-Fragment-Name'",
            ));
        }
        Lookup {
            name: check_name(name, "X-Destination-Name")?,
            level: level_header
                .map(|l| level_of(l, "X-Destination-Level"))
                .transpose()?,
            fragment: fragment.map(|name| FragmentRef {
                name,
                level: fragment_level,
            }),
            fragment_optional: optional_header
                .map(|v| match v.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(ProxyError::bad_request(
                        "The 'X-Fragment-Optional' header must be true or false",
                    )),
                })
                .transpose()?,
            chain_name: None,
            chain_vars: Vec::new(),
        }
    } else {
        for (value, header) in [
            (name_header, "X-Destination-Name"),
            (fragment_header, "X-Fragment-Name"),
            (optional_header, "X-Fragment-Optional"),
            (level_header, "X-Destination-Level"),
            (fragment_level_header, "X-Fragment-Level"),
        ] {
            if value.is_some() {
                return Err(ProxyError::bad_request(format!(
                    "The '{header}' header is allowed only on a dynamic destination (\"*\"); '{}' names its destination itself",
                    route.name
                )));
            }
        }
        Lookup {
            name: spec.destination_ref.name.clone(),
            level: spec.destination_ref.level,
            fragment: spec.fragment_ref.as_ref().map(|f| FragmentRef {
                name: f.name.clone(),
                level: f.level,
            }),
            fragment_optional: spec
                .fragment_ref
                .as_ref()
                .and_then(|f| f.optional.then_some(true)),
            chain_name: None,
            chain_vars: Vec::new(),
        }
    };
    // Chains: the request's headers override the resource's chainRef.
    if let Some(chain) = &spec.chain_ref {
        lookup.chain_name = Some(chain.name.clone());
        lookup.chain_vars = chain
            .variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
    }
    if let Some(name) = single(headers, "x-chain-name")? {
        lookup.chain_name = Some(name.to_owned());
    }
    for (k, v) in headers {
        if let Some(var) = k.as_str().strip_prefix("x-chain-var-") {
            let value = v.to_str().map_err(|_| {
                ProxyError::bad_request(format!("The '{}' header is not text", k.as_str()))
            })?;
            lookup
                .chain_vars
                .retain(|(n, _)| !n.eq_ignore_ascii_case(var));
            lookup.chain_vars.push((var.to_owned(), value.to_owned()));
        }
    }
    Ok(lookup)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:8080"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn header_names_in_messages() {
        assert_eq!(canonical("x-destination-name"), "X-Destination-Name");
        assert_eq!(canonical("authorization"), "Authorization");
        assert_eq!(
            canonical("sap-connectivity-scc-location_id"),
            "SAP-Connectivity-SCC-Location_ID"
        );
        assert_eq!(
            canonical("sap-connectivity-region-configuration-id"),
            "SAP-Connectivity-Region-Configuration-Id"
        );
        assert_eq!(
            canonical("x-chain-var-subject_id"),
            "X-Chain-Var-subject_id"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let mut once = HeaderMap::new();
        once.append("x-chain-var-subject", "a".parse().unwrap());
        once.append("x-chain-var-other", "a".parse().unwrap());
        assert!(check_single_headers(&once).is_ok());
        for (name, shown) in [
            ("x-destination-name", "X-Destination-Name"),
            ("x-chain-var-subject", "X-Chain-Var-subject"),
        ] {
            let mut h = once.clone();
            h.append(name, "a".parse().unwrap());
            h.append(name, "b".parse().unwrap());
            let e = check_single_headers(&h).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(
                e.message,
                format!("The '{shown}' header should be passed only once")
            );
        }
    }
}
