//! The `Destination` custom resource of SAP's transparent proxy (PROXY.md §2): group
//! `destination.connectivity.api.sap`, version `v1`, short name `dst`, with SAP's spec fields,
//! printer columns and status (conditions with `lastUpdateTime`, not `lastTransitionTime`).
//!
//! The YAML under `deploy/crds/` is generated from these types by the `crdgen` binary; a test
//! fails when the two differ. The schema keeps to what a 1.20 API server accepts (no CEL rules:
//! the one SAP has, `fragmentRef.level` only with `fragmentRef.name`, is checked by the operator).

// kube's `printcolumn(...)` repeats `type_ = ...` once per column, which this lint takes for a
// repeated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use kube::CustomResourceExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of the resource.
pub const GROUP: &str = "destination.connectivity.api.sap";
/// The one condition type, SAP's.
pub const AVAILABLE: &str = "Available";

/// Spec of a `Destination` resource: which destination (of which Destination service instance)
/// `http://<name>.<namespace>` reaches.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "destination.connectivity.api.sap",
    version = "v1",
    kind = "Destination",
    namespaced,
    status = "DestinationStatus",
    shortname = "dst",
    printcolumn(
        name = "DestinationRef",
        type_ = "string",
        description = "The name of the referenced destination from destination service",
        json_path = ".spec.destinationRef.name"
    ),
    printcolumn(
        name = "FragmentRef",
        type_ = "string",
        description = "The name of the referenced fragment from destination service",
        json_path = ".spec.fragmentRef.name"
    ),
    printcolumn(
        name = "DestinationServiceInstanceName",
        type_ = "string",
        description = "The name of the destination service instance that is used",
        json_path = ".spec.destinationServiceInstanceName"
    ),
    printcolumn(
        name = "ServicePort",
        type_ = "string",
        description = "The custom port with which the k8s service will be created",
        json_path = ".spec.service.port"
    ),
    printcolumn(
        name = "AccessControlScope",
        type_ = "string",
        description = "The access control scope for this destination",
        json_path = ".spec.accessControl.scope"
    ),
    printcolumn(
        name = "ChainRef",
        type_ = "string",
        description = "The name of the referenced chain from destination service",
        json_path = ".spec.chainRef.name"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[-1].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// The destination: its name (`*` for a dynamic destination gateway) and level.
    pub destination_ref: DestinationRef,
    /// The local name of one of `config.integration.destinationService.instances`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_service_instance_name: Option<String>,
    /// A fragment merged into the destination (static resources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment_ref: Option<FragmentRef>,
    /// A destination chain, with its variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_ref: Option<ChainRef>,
    /// The port of the Service made for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    /// Who may call the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControl>,
    /// SAP's token actions (in SAP's schema, undocumented): kept and passed on, not acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_list")]
    pub actions: Option<Vec<Value>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct DestinationRef {
    /// The destination's name in the Destination service, or `*`.
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct FragmentRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// A missing fragment is no error: the destination is used alone.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub optional: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct ChainRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<ChainVariable>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct ChainVariable {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct AccessControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    ClusterWide,
    Namespaced,
}

/// The level a destination or fragment is looked up at (the v2 consume API's `name@level`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Subaccount,
    Instance,
    ProviderSubaccount,
    ProviderInstance,
}

/// Status of a `Destination`: SAP's shape.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
pub struct DestinationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<Tenant>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    #[schemars(regex(pattern = r"^(True|False|Unknown)$"))]
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339, when the condition last changed.
    #[serde(default)]
    pub last_update_time: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_subdomain: String,
}

impl Destination {
    /// The `Available` condition, if any.
    pub fn available(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == AVAILABLE)
    }

    /// `*`: a destination gateway, the destination named per request.
    pub fn is_dynamic(&self) -> bool {
        self.spec.destination_ref.name == "*"
    }
}

fn preserved_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// The CRD, in the shape of SAP's: no `nullable` markers (an absent field is how Kubernetes
/// says "not set"), integer bounds, `listKind`.
pub fn crd() -> Value {
    let mut crd = serde_json::to_value(Destination::crd()).expect("a CRD is JSON");
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        names.insert("listKind".into(), Value::String("DestinationList".into()));
    }
    if let Some(schema) = crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema") {
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "description".into(),
                Value::String(
                    "A destination of the Destination service, reachable in the cluster as http://<name>.<namespace> through the transparent proxy".into(),
                ),
            );
        }
        tidy(schema);
    }
    crd
}

/// Removes what schemars adds for `Option` and integer types and SAP's CRD does not have.
fn tidy(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("nullable");
            if map.get("default") == Some(&Value::String(String::new())) {
                map.remove("default");
            }
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("uint"))
            {
                map.remove("format");
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            for bound in ["minimum", "maximum"] {
                if let Some(n) = map.get(bound).and_then(Value::as_f64) {
                    map.insert(bound.into(), Value::from(n as i64));
                }
            }
            for value in map.values_mut() {
                tidy(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The CRD as YAML, what `crdgen` prints and `deploy/crds/destinations.yaml` holds.
pub fn crd_yaml() -> String {
    let yaml = serde_norway::to_string(&crd()).expect("a CRD serializes to YAML");
    format!(
        "# Generated by `cargo run -p signpost-operator --bin crdgen`; do not edit.\n# The `Destination` resource of SAP's transparent proxy (docs/KUBERNETES.md).\n---\n{yaml}"
    )
}
