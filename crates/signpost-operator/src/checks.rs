//! What makes a `Destination` resource unusable, with SAP's condition reasons and texts
//! (PROXY.md §2.2). Pure functions: the controller feeds them the resource and the find answer.

use serde_json::{Map, Value};

use crate::crd::DestinationSpec;

pub const SUCCESS: &str = "ConfigurationSuccessful";
pub const DESTINATION_NOT_FOUND: &str = "ConfigurationError-ReferencedDestination-NotFound";
pub const FRAGMENT_NOT_FOUND: &str = "ConfigurationError-ReferencedFragment-NotFound";
pub const FRAGMENT_SPEC: &str = "ConfigurationError-FragmentSpecification-NotSupported";
pub const DUPLICATE: &str = "ConfigurationError-DuplicateDestinationCustomResource";
pub const NAME_TAKEN: &str = "ConfigurationError-K8sResourceWithNameAlreadyPresent";
/// Signpost's own: `destinationServiceInstanceName` names no configured instance, or the
/// instance's service key cannot be read.
pub const INSTANCE_INVALID: &str = "ConfigurationError-DestinationServiceInstance-Invalid";

/// A verdict on a resource's configuration: its `Available` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn error(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn success(name: &str) -> Self {
        Self::error(
            SUCCESS,
            format!(
                "Technical connectivity is configured. Kubernetes service with name {name} is created."
            ),
        )
    }

    pub fn is_success(&self) -> bool {
        self.reason == SUCCESS
    }
}

/// Checks of the spec alone, before anything is looked up.
pub fn check_spec(spec: &DestinationSpec) -> Option<Verdict> {
    let fragment = spec.fragment_ref.as_ref()?;
    if spec.destination_ref.name == "*" {
        return Some(Verdict::error(
            FRAGMENT_SPEC,
            "Fragment specification is not supported for dynamic destinations: remove fragmentRef; \
             name the fragment per request with the X-Fragment-Name header",
        ));
    }
    match &fragment.name {
        Some(name) if !name.is_empty() => None,
        _ if fragment.level.is_some() => Some(Verdict::error(
            FRAGMENT_SPEC,
            "fragmentRef.level is only allowed together with fragmentRef.name",
        )),
        _ => None,
    }
}

/// The checks of a found destination (merged with its fragment when `with_fragment`).
pub fn check_destination(config: &Map<String, Value>, with_fragment: bool) -> Option<Verdict> {
    let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
    let name = text("Name");
    let prefix = if with_fragment {
        "ConfigurationError-ReferencedDestinationWithFragment"
    } else {
        "ConfigurationError-ReferencedDestination"
    };
    let what = if with_fragment {
        format!("Destination '{name}' merged with its fragment")
    } else {
        format!("Destination '{name}'")
    };
    let kind = text("Type");
    if !matches!(kind, "HTTP" | "TCP") {
        // The TypeNotSupported reason has no WithFragment form in SAP's list.
        return Some(Verdict::error(
            "ConfigurationError-ReferencedDestination-TypeNotSupported",
            format!("{what} has type '{kind}': only HTTP and TCP destinations are supported"),
        ));
    }
    let proxy_type = match text("ProxyType") {
        "" => "Internet",
        other => other,
    };
    if !matches!(proxy_type, "Internet" | "OnPremise") {
        return Some(Verdict::error(
            format!("{prefix}-ProxyTypeNotSupported"),
            format!(
                "{what} has proxy type '{proxy_type}': only Internet and OnPremise are supported"
            ),
        ));
    }
    if kind == "TCP" {
        let address = text("Address");
        let ok = address
            .strip_prefix("tcp://")
            .and_then(|rest| rest.rsplit_once(':'))
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Some(Verdict::error(
                format!("{prefix}-TcpAddressNotSupported"),
                format!("{what} has Address '{address}': expected tcp://<host>:<port>"),
            ));
        }
        return None;
    }
    let url = text("URL");
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, url),
    };
    if url.trim().is_empty()
        || !matches!(scheme.as_deref(), None | Some("http") | Some("https"))
        || rest.is_empty()
    {
        return Some(Verdict::error(
            format!("{prefix}-UrlNotSupported"),
            format!("{what} has URL '{url}': expected an http:// or https:// URL"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(inner) = host_port.strip_prefix('[') {
        inner.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1" | "0:0:0:0:0:0:0:1"
    ) {
        return Some(Verdict::error(
            format!("{prefix}-LoopbackUrlNotSupported"),
            format!("{what} has URL '{url}': loopback addresses are not supported"),
        ));
    }
    for (key, reason) in [
        ("KeyStoreLocation", "KeyStoreInvalid"),
        ("TrustStoreLocation", "TrustStoreInvalid"),
    ] {
        let location = text(key);
        if location.is_empty() {
            continue;
        }
        let extension = location
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if !matches!(
            extension.as_str(),
            "p12" | "pfx" | "pem" | "der" | "cer" | "crt" | "jks"
        ) {
            return Some(Verdict::error(
                format!("{prefix}-{reason}"),
                format!(
                    "{what} has {key} '{location}': supported store types are p12, pfx, pem, der, cer, crt and jks"
                ),
            ));
        }
        if scheme.as_deref() == Some("http") {
            return Some(Verdict::error(
                format!("{prefix}-HttpUrlWithTrustStoreOrKeyStoreNotSupported"),
                format!(
                    "{what} has an http:// URL and a {key}: key and trust stores need https://"
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Option<String> {
        check_destination(v.as_object().unwrap(), false).map(|v| v.reason)
    }

    #[test]
    fn reasons_of_destinations() {
        let ok = json!({"Name": "d", "Type": "HTTP", "URL": "https://example.org/api"});
        assert_eq!(check(ok), None);
        assert_eq!(
            check(json!({"Name": "d", "Type": "HTTP", "URL": "example.org"})),
            None,
            "scheme-less URLs are allowed"
        );
        for (dest, reason) in [
            (
                json!({"Name": "d", "Type": "RFC", "URL": "https://x"}),
                "ConfigurationError-ReferencedDestination-TypeNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "https://x", "ProxyType": "PrivateLink"}),
                "ConfigurationError-ReferencedDestination-ProxyTypeNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": ""}),
                "ConfigurationError-ReferencedDestination-UrlNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "ftp://x"}),
                "ConfigurationError-ReferencedDestination-UrlNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "http://localhost:8080/x"}),
                "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "https://[::1]/"}),
                "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "https://127.0.0.1"}),
                "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "https://x", "KeyStoreLocation": "client.txt"}),
                "ConfigurationError-ReferencedDestination-KeyStoreInvalid",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "https://x", "TrustStoreLocation": "t"}),
                "ConfigurationError-ReferencedDestination-TrustStoreInvalid",
            ),
            (
                json!({"Name": "d", "Type": "HTTP", "URL": "http://x", "KeyStoreLocation": "c.p12"}),
                "ConfigurationError-ReferencedDestination-HttpUrlWithTrustStoreOrKeyStoreNotSupported",
            ),
            (
                json!({"Name": "d", "Type": "TCP", "Address": "x:1"}),
                "ConfigurationError-ReferencedDestination-TcpAddressNotSupported",
            ),
        ] {
            assert_eq!(check(dest.clone()).as_deref(), Some(reason), "{dest}");
        }
        assert_eq!(
            check(json!({"Name": "d", "Type": "TCP", "Address": "tcp://db.example:5432"})),
            None
        );
        let merged = json!({"Name": "d", "Type": "HTTP", "URL": "https://localhost"});
        assert_eq!(
            check_destination(merged.as_object().unwrap(), true)
                .unwrap()
                .reason,
            "ConfigurationError-ReferencedDestinationWithFragment-LoopbackUrlNotSupported"
        );
    }

    #[test]
    fn fragment_specification() {
        let spec = |v: Value| -> DestinationSpec { serde_json::from_value(v).unwrap() };
        let dynamic = spec(json!({"destinationRef": {"name": "*"}, "fragmentRef": {"name": "f"}}));
        assert_eq!(check_spec(&dynamic).unwrap().reason, FRAGMENT_SPEC);
        let level_only =
            spec(json!({"destinationRef": {"name": "d"}, "fragmentRef": {"level": "instance"}}));
        assert_eq!(check_spec(&level_only).unwrap().reason, FRAGMENT_SPEC);
        let fine = spec(
            json!({"destinationRef": {"name": "d"}, "fragmentRef": {"name": "f", "level": "instance"}}),
        );
        assert_eq!(check_spec(&fine), None);
        let dynamic_plain = spec(json!({"destinationRef": {"name": "*"}}));
        assert_eq!(check_spec(&dynamic_plain), None);
    }
}
