//! [`FindRequest`]: a find-destination call (API.md §2) as a typed value, and how it becomes a
//! path, query and `X-*` headers; [`Found`]: the answer with its `ETag`.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use crate::http::join;
use crate::{Error, FindResponse, Result};

/// The level of a v2 (Consume API) lookup: `GET .../v2/destinations/{name}@{level}`; also the
/// `level` of a `Destination` resource's refs (serde: `subaccount`, `provider_instance`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupLevel {
    Subaccount,
    Instance,
    ProviderSubaccount,
    ProviderInstance,
}

impl LookupLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LookupLevel::Subaccount => "subaccount",
            LookupLevel::Instance => "instance",
            LookupLevel::ProviderSubaccount => "provider_subaccount",
            LookupLevel::ProviderInstance => "provider_instance",
        }
    }
}

impl fmt::Display for LookupLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LookupLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "subaccount" => Ok(LookupLevel::Subaccount),
            "instance" => Ok(LookupLevel::Instance),
            "provider_subaccount" => Ok(LookupLevel::ProviderSubaccount),
            "provider_instance" => Ok(LookupLevel::ProviderInstance),
            other => Err(Error::Invalid(format!(
                "'{other}' is not a lookup level (subaccount, instance, provider_subaccount or provider_instance)"
            ))),
        }
    }
}

/// A fragment named in `X-fragment-name`, with its level on v2 (`name@level`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FragmentRef {
    pub name: String,
    pub level: Option<LookupLevel>,
}

impl FragmentRef {
    /// A fragment at the destination's level.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            level: None,
        }
    }
}

impl fmt::Display for FragmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Some(l) => write!(f, "{}@{l}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for FragmentRef {
    type Err = Error;

    /// `name` or `name@level`.
    fn from_str(s: &str) -> Result<Self> {
        match s.rsplit_once('@') {
            Some((name, level)) => Ok(Self {
                name: name.to_owned(),
                level: Some(level.parse()?),
            }),
            None => Ok(Self::new(s)),
        }
    }
}

/// One find-destination call. `Debug` shows no token, assertion, code or chain variable value.
#[derive(Clone, Default)]
pub struct FindRequest {
    /// The destination's name.
    pub name: String,
    /// `None`: v1 `GET {uri}/destination-configuration/v1/destinations/{name}` (instance level,
    /// then subaccount level; when a fragment has a level, v2 at those two levels in turn:
    /// [`FindRequest::levels_in_order`]); `Some(l)`: v2 `GET .../v2/destinations/{name}@{l}`.
    pub level: Option<LookupLevel>,
    /// `X-fragment-name`, in order (comma-separated, `name@level` when a level is given).
    pub fragments: Vec<FragmentRef>,
    /// `X-fragment-optional`.
    pub fragment_optional: Option<bool>,
    /// `X-user-token`.
    pub user_token: Option<String>,
    /// `X-tenant`.
    pub tenant: Option<String>,
    /// `X-refresh-token`.
    pub refresh_token: Option<String>,
    /// `X-code`.
    pub code: Option<String>,
    /// `X-redirect-uri`.
    pub redirect_uri: Option<String>,
    /// `X-code-verifier`.
    pub code_verifier: Option<String>,
    /// `X-subject-token`.
    pub subject_token: Option<String>,
    /// `X-subject-token-type`.
    pub subject_token_type: Option<String>,
    /// `X-actor-token`.
    pub actor_token: Option<String>,
    /// `X-actor-token-type`.
    pub actor_token_type: Option<String>,
    /// `X-samlAssertion`.
    pub saml_assertion: Option<String>,
    /// `X-client-assertion`.
    pub client_assertion: Option<String>,
    /// `X-client-assertion-type`.
    pub client_assertion_type: Option<String>,
    /// `X-client-assertion-destination-name`.
    pub client_assertion_destination_name: Option<String>,
    /// `X-chain-name`.
    pub chain_name: Option<String>,
    /// `X-chain-var-<name>: <value>`, in order.
    pub chain_vars: Vec<(String, String)>,
    /// `$skipCredentials=true`.
    pub skip_credentials: bool,
    /// `$skipTokenRetrieval=true`.
    pub skip_token_retrieval: bool,
}

impl fmt::Debug for FindRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        let vars: Vec<(&str, &str)> = self
            .chain_vars
            .iter()
            .map(|(k, _)| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("FindRequest")
            .field("name", &self.name)
            .field("level", &self.level)
            .field("fragments", &self.fragments)
            .field("fragment_optional", &self.fragment_optional)
            .field("user_token", &secret(&self.user_token))
            .field("tenant", &self.tenant)
            .field("refresh_token", &secret(&self.refresh_token))
            .field("code", &secret(&self.code))
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &secret(&self.code_verifier))
            .field("subject_token", &secret(&self.subject_token))
            .field("subject_token_type", &self.subject_token_type)
            .field("actor_token", &secret(&self.actor_token))
            .field("actor_token_type", &self.actor_token_type)
            .field("saml_assertion", &secret(&self.saml_assertion))
            .field("client_assertion", &secret(&self.client_assertion))
            .field("client_assertion_type", &self.client_assertion_type)
            .field(
                "client_assertion_destination_name",
                &self.client_assertion_destination_name,
            )
            .field("chain_name", &self.chain_name)
            .field("chain_vars", &vars)
            .field("skip_credentials", &self.skip_credentials)
            .field("skip_token_retrieval", &self.skip_token_retrieval)
            .finish()
    }
}

impl FindRequest {
    /// A plain v1 find of `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// `Some([instance, subaccount])` when a fragment has a level but the destination has none:
    /// v1 cannot say a fragment's level, so such a find is made of v2 lookups in v1's order.
    pub fn levels_in_order(&self) -> Option<[LookupLevel; 2]> {
        (self.level.is_none() && self.fragments.iter().any(|f| f.level.is_some()))
            .then_some([LookupLevel::Instance, LookupLevel::Subaccount])
    }

    /// The URL of this find below the service's base URL `base` (the key's `uri`).
    pub fn url(&self, base: &Url) -> Result<Url> {
        if self.name.is_empty() {
            return Err(Error::Invalid("the destination name is empty".into()));
        }
        let mut url = match self.level {
            None => join(
                base,
                &[
                    "destination-configuration",
                    "v1",
                    "destinations",
                    &self.name,
                ],
            ),
            Some(level) => join(
                base,
                &[
                    "destination-configuration",
                    "v2",
                    "destinations",
                    &format!("{}@{level}", self.name),
                ],
            ),
        };
        if self.skip_credentials || self.skip_token_retrieval {
            let mut q = url.query_pairs_mut();
            if self.skip_credentials {
                q.append_pair("$skipCredentials", "true");
            }
            if self.skip_token_retrieval {
                q.append_pair("$skipTokenRetrieval", "true");
            }
        }
        Ok(url)
    }

    /// The `X-*` headers of this find. Secret values are marked sensitive. A value that cannot
    /// be a header is an [`Error::Invalid`] naming the header, never showing the value.
    pub fn headers(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::new();
        let mut add = |name: &str, value: &str, sensitive: bool| -> Result<()> {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Invalid(format!("'{name}' is not a valid header name")))?;
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                Error::Invalid(format!(
                    "the value for {name} holds characters a header cannot carry"
                ))
            })?;
            v.set_sensitive(sensitive);
            map.append(header, v);
            Ok(())
        };
        if !self.fragments.is_empty() {
            let names: Vec<String> = self.fragments.iter().map(ToString::to_string).collect();
            add("X-fragment-name", &names.join(","), false)?;
        }
        if let Some(b) = self.fragment_optional {
            add(
                "X-fragment-optional",
                if b { "true" } else { "false" },
                false,
            )?;
        }
        let fields: [(&str, &Option<String>, bool); 15] = [
            ("X-user-token", &self.user_token, true),
            ("X-tenant", &self.tenant, false),
            ("X-refresh-token", &self.refresh_token, true),
            ("X-code", &self.code, true),
            ("X-redirect-uri", &self.redirect_uri, false),
            ("X-code-verifier", &self.code_verifier, true),
            ("X-subject-token", &self.subject_token, true),
            ("X-subject-token-type", &self.subject_token_type, false),
            ("X-actor-token", &self.actor_token, true),
            ("X-actor-token-type", &self.actor_token_type, false),
            ("X-samlAssertion", &self.saml_assertion, true),
            ("X-client-assertion", &self.client_assertion, true),
            (
                "X-client-assertion-type",
                &self.client_assertion_type,
                false,
            ),
            (
                "X-client-assertion-destination-name",
                &self.client_assertion_destination_name,
                false,
            ),
            ("X-chain-name", &self.chain_name, false),
        ];
        for (name, value, sensitive) in fields {
            if let Some(v) = value {
                add(name, v, sensitive)?;
            }
        }
        for (var, value) in &self.chain_vars {
            add(&format!("X-chain-var-{var}"), value, true)?;
        }
        Ok(map)
    }
}

/// A find answer with its `ETag` and when it was fetched (or last confirmed by a 304).
#[derive(Clone, Debug)]
pub struct Found {
    pub response: FindResponse,
    pub etag: Option<String>,
    pub fetched_at: Instant,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn base() -> Url {
        Url::parse("https://dest.example:8443").unwrap()
    }

    fn header(map: &HeaderMap, name: &str) -> Option<String> {
        let values: Vec<&str> = map
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        (!values.is_empty()).then(|| values.join("|"))
    }

    #[test]
    fn v1_path_without_level() {
        let url = FindRequest::new("backend").url(&base()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://dest.example:8443/destination-configuration/v1/destinations/backend"
        );
        assert!(FindRequest::new("").url(&base()).is_err());
    }

    #[test]
    fn v2_path_with_every_level() {
        for (level, text) in [
            (LookupLevel::Subaccount, "subaccount"),
            (LookupLevel::Instance, "instance"),
            (LookupLevel::ProviderSubaccount, "provider_subaccount"),
            (LookupLevel::ProviderInstance, "provider_instance"),
        ] {
            let request = FindRequest {
                level: Some(level),
                ..FindRequest::new("backend")
            };
            assert_eq!(
                request.url(&base()).unwrap().as_str(),
                format!(
                    "https://dest.example:8443/destination-configuration/v2/destinations/backend@{text}"
                )
            );
            assert_eq!(level.as_str(), text);
            assert_eq!(text.parse::<LookupLevel>().unwrap(), level);
        }
        assert!("provider".parse::<LookupLevel>().is_err());
    }

    #[test]
    fn names_are_one_path_segment() {
        let url = FindRequest::new("a/b c").url(&base()).unwrap();
        assert!(url.path().ends_with("/destinations/a%2Fb%20c"), "{url}");
    }

    #[test]
    fn query_parameters() {
        let both = FindRequest {
            skip_credentials: true,
            skip_token_retrieval: true,
            ..FindRequest::new("d")
        };
        let url = both.url(&base()).unwrap();
        assert_eq!(
            url.query(),
            Some("%24skipCredentials=true&%24skipTokenRetrieval=true")
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("$skipCredentials".to_owned(), "true".to_owned()),
                ("$skipTokenRetrieval".to_owned(), "true".to_owned())
            ]
        );
        let one = FindRequest {
            skip_token_retrieval: true,
            ..FindRequest::new("d")
        };
        assert_eq!(
            one.url(&base()).unwrap().query(),
            Some("%24skipTokenRetrieval=true")
        );
        assert_eq!(FindRequest::new("d").url(&base()).unwrap().query(), None);
    }

    #[test]
    fn fragments_with_and_without_level() {
        let request = FindRequest {
            fragments: vec![
                FragmentRef::new("f1"),
                FragmentRef {
                    name: "f2".into(),
                    level: Some(LookupLevel::Subaccount),
                },
                "f3@provider_instance".parse().unwrap(),
            ],
            fragment_optional: Some(false),
            ..FindRequest::new("d")
        };
        let h = request.headers().unwrap();
        assert_eq!(
            header(&h, "x-fragment-name").as_deref(),
            Some("f1,f2@subaccount,f3@provider_instance")
        );
        assert_eq!(header(&h, "x-fragment-optional").as_deref(), Some("false"));
        assert!("f@nowhere".parse::<FragmentRef>().is_err());
        let plain = FindRequest::new("d").headers().unwrap();
        assert!(plain.is_empty());
    }

    fn everything() -> FindRequest {
        FindRequest {
            name: "d".into(),
            level: Some(LookupLevel::Instance),
            fragments: vec![FragmentRef::new("f")],
            fragment_optional: Some(true),
            user_token: Some("secret-user-token".into()),
            tenant: Some("subscriber".into()),
            refresh_token: Some("secret-refresh".into()),
            code: Some("secret-code".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            code_verifier: Some("secret-verifier".into()),
            subject_token: Some("secret-subject".into()),
            subject_token_type: Some("urn:ietf:params:oauth:token-type:jwt".into()),
            actor_token: Some("secret-actor".into()),
            actor_token_type: Some("urn:ietf:params:oauth:token-type:access_token".into()),
            saml_assertion: Some("secret-saml".into()),
            client_assertion: Some("secret-assertion".into()),
            client_assertion_type: Some(
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            client_assertion_destination_name: Some("assertion-dest".into()),
            chain_name: Some("chain".into()),
            chain_vars: vec![
                ("subject_token".into(), "secret-chain-var".into()),
                ("x".into(), "secret-x".into()),
            ],
            skip_credentials: true,
            skip_token_retrieval: true,
        }
    }

    #[test]
    fn every_header() {
        let h = everything().headers().unwrap();
        let expected = [
            ("X-fragment-name", "f"),
            ("X-fragment-optional", "true"),
            ("X-user-token", "secret-user-token"),
            ("X-tenant", "subscriber"),
            ("X-refresh-token", "secret-refresh"),
            ("X-code", "secret-code"),
            ("X-redirect-uri", "https://app.example/cb"),
            ("X-code-verifier", "secret-verifier"),
            ("X-subject-token", "secret-subject"),
            (
                "X-subject-token-type",
                "urn:ietf:params:oauth:token-type:jwt",
            ),
            ("X-actor-token", "secret-actor"),
            (
                "X-actor-token-type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("X-samlAssertion", "secret-saml"),
            ("X-client-assertion", "secret-assertion"),
            (
                "X-client-assertion-type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("X-client-assertion-destination-name", "assertion-dest"),
            ("X-chain-name", "chain"),
            ("X-chain-var-subject_token", "secret-chain-var"),
            ("X-chain-var-x", "secret-x"),
        ];
        for (name, value) in expected {
            assert_eq!(header(&h, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(h.len(), expected.len());
        // Secrets are marked sensitive (kept out of reqwest's and hyper's debug output).
        for name in ["X-user-token", "X-samlAssertion", "X-chain-var-x", "X-code"] {
            assert!(h.get(name).unwrap().is_sensitive(), "{name}");
        }
        assert!(!h.get("X-tenant").unwrap().is_sensitive());
    }

    #[test]
    fn bad_header_values_are_named_not_shown() {
        let request = FindRequest {
            user_token: Some("line\nbreak-secret".into()),
            ..FindRequest::new("d")
        };
        let e = request.headers().unwrap_err().to_string();
        assert!(e.contains("X-user-token"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let request = FindRequest {
            chain_vars: vec![("bad name".into(), "v".into())],
            ..FindRequest::new("d")
        };
        assert!(request.headers().is_err());
    }

    #[test]
    fn debug_redacts_every_secret() {
        let text = format!("{:?}", everything());
        assert!(!text.contains("secret"), "{text}");
        for shown in [
            "subscriber",
            "https://app.example/cb",
            "assertion-dest",
            "chain",
        ] {
            assert!(text.contains(shown), "{shown} in {text}");
        }
        assert!(
            text.contains("subject_token"),
            "chain variable names are shown"
        );
    }
}
