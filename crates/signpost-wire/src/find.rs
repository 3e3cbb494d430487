use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `owner` of a find-destination result: where the destination was found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    #[serde(rename = "SubaccountId")]
    pub subaccount_id: Option<String>,
    #[serde(rename = "InstanceId")]
    pub instance_id: Option<String>,
}

/// `{key, value}` of an auth token: the ready-to-use header.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpHeader {
    pub key: String,
    pub value: String,
}

impl std::fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHeader")
            .field("key", &self.key)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// One entry of `authTokens`. On failure `type` and `value` are empty and `error` says why.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthToken {
    #[serde(rename = "type")]
    pub token_type: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_header: Option<HttpHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuthToken {
    /// A token entry for a failed or unavailable flow.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            token_type: String::new(),
            value: String::new(),
            http_header: None,
            expires_in: None,
            scope: None,
            refresh_token: None,
            issued_token_type: None,
            error: Some(error.into()),
        }
    }

    /// A token with its `Authorization`-style header.
    pub fn with_header(token_type: &str, value: String, header_key: &str) -> Self {
        Self {
            token_type: token_type.into(),
            http_header: Some(HttpHeader {
                key: header_key.into(),
                value: format!("{token_type} {value}"),
            }),
            value,
            expires_in: None,
            scope: None,
            refresh_token: None,
            issued_token_type: None,
            error: None,
        }
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthToken")
            .field("type", &self.token_type)
            .field("value", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("error", &self.error)
            .finish()
    }
}

/// One entry of `certificates` in a find result.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Content")]
    pub content: String,
    #[serde(rename = "Type")]
    pub cert_type: String,
}

impl std::fmt::Debug for CertificateItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateItem")
            .field("name", &self.name)
            .field("type", &self.cert_type)
            .finish_non_exhaustive()
    }
}

// `Debug` is written by hand (below): it redacts the secrets of `destinationConfiguration`, the
// tokens and the certificates.
/// The find-destination result (`DestinationLookUpResult`); v2 leaves `owner` out.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(rename = "destinationConfiguration")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub destination_configuration: Map<String, Value>,
    #[serde(rename = "authTokens", skip_serializing_if = "Option::is_none")]
    pub auth_tokens: Option<Vec<AuthToken>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<CertificateItem>>,
}

impl std::fmt::Debug for FindResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindResponse")
            .field("owner", &self.owner)
            .field(
                "destinationConfiguration",
                &signpost_model::RedactedObject(&self.destination_configuration),
            )
            .field("authTokens", &self.auth_tokens)
            .field("certificates", &self.certificates)
            .finish()
    }
}
