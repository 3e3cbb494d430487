//! Open Service Broker API 2.17 bodies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalog {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Service {
    pub id: String,
    pub name: String,
    pub description: String,
    pub bindable: bool,
    pub plan_updateable: bool,
    pub instances_retrievable: bool,
    pub bindings_retrievable: bool,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub description: String,
    pub free: bool,
    pub bindable: bool,
}

/// `PUT /v2/service_instances/{id}`.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvisionRequest {
    pub service_id: String,
    pub plan_id: String,
    #[serde(default)]
    pub organization_guid: Option<String>,
    #[serde(default)]
    pub space_guid: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `PATCH /v2/service_instances/{id}`.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRequest {
    pub service_id: String,
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `PUT /v2/service_instances/{id}/service_bindings/{binding_id}`.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindRequest {
    pub service_id: String,
    pub plan_id: String,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// The OSB error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OsbError {
    pub error: String,
    pub description: String,
}

/// A service key in SAP's format (API.md §5), the bind response's `credentials`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceKey {
    pub clientid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clientsecret: Option<String>,
    #[serde(rename = "credential-type")]
    pub credential_type: String,
    pub url: String,
    pub uri: String,
    pub uaadomain: String,
    pub identityzone: String,
    pub tenantid: String,
    pub xsappname: String,
    pub instanceid: String,
    pub verificationkey: String,
    /// X.509 bindings: the client certificate chain (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// X.509 bindings made by Signpost: the client's private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// X.509 bindings: the token service's mTLS base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certurl: Option<String>,
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKey")
            .field("clientid", &self.clientid)
            .field(
                "clientsecret",
                &self.clientsecret.as_ref().map(|_| "<redacted>"),
            )
            .field("url", &self.url)
            .field("uri", &self.uri)
            .field("tenantid", &self.tenantid)
            .field("instanceid", &self.instanceid)
            .finish_non_exhaustive()
    }
}

/// `Debug` of the broker's requests: `parameters` (the configuration JSON with its destinations'
/// passwords and keystores) and `context` with their secrets redacted.
macro_rules! redacted_request_debug {
    ($ty:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .field("parameters", &self.parameters.as_ref().map(signpost_model::RedactedJson))
                    .finish_non_exhaustive()
            }
        }
    };
}

redacted_request_debug!(ProvisionRequest {
    service_id,
    plan_id,
    organization_guid,
    space_guid
});
redacted_request_debug!(UpdateRequest {
    service_id,
    plan_id
});
redacted_request_debug!(BindRequest {
    service_id,
    plan_id
});
