//! The proxy's configuration: one YAML file whose tree is SAP's Helm values for the Transparent
//! Proxy (PROXY.md §4), so users bring their `values.yaml` unchanged, plus a top-level
//! `destinations:` list (the routes, each the spec of a `Destination` resource, PROXY.md §2.1).
//! A second file (`--routes`) may add routes.
//!
//! What is read:
//!
//! ```yaml
//! config:
//!   tenantMode: dedicated | shared
//!   http: { retry: { maxRetries: 0, statusCodes: [] } }
//!   integration:
//!     destinationService:
//!       defaultInstanceName: <name>
//!       connectionTimeoutSeconds: 5      # 1..60
//!       readTimeoutSeconds: 10           # 1..60
//!       cacheSeconds: 120                # Signpost's own, 0..86400
//!       instances:
//!         - name: <name>
//!           serviceCredentials: { secretName, secretKey, secretNamespace, secretData,
//!                                 privateKey: { secretName, secretInternalKey, secretNamespace } }
//!     connectivityProxy:
//!       serviceName: connectivity-proxy.<ns>   # or host
//!       http: { port: 20003 }                  # or httpPort
//!       tcp: { port: 20004 }                   # or tcpPort
//!       connectionTimeoutSeconds: 1
//! additionalCAs: { secretName, secretKey, secretNamespace }   # or { pem: <PEM text> }
//! destinations:
//!   - name: <route name>        # or a whole Destination resource (apiVersion, kind, metadata, spec)
//!     namespace: default
//!     spec: { destinationRef: { name: <destination> }, ... }
//! ```
//!
//! Everything else (deployment, security, logging, metrics, …) is accepted and ignored. Helm's
//! conventions hold for optional strings: an empty string or `null` means "not set".
//!
//! Errors name the place in the tree (`config.integration.destinationService.instances[1].serviceCredentials: …`)
//! and never carry a secret's value.

use std::fmt;
use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::secrets::{is_dns_label, FetchedSecrets, SecretError, SecretReader, SecretsDir};

const DS: &str = "config.integration.destinationService";
/// The file of `--credentials-dir` that holds the PEM of `additionalCAs.secretName` (the
/// operator writes it beside the `<instance>.json` service keys).
pub const ADDITIONAL_CAS_FILE: &str = "additionalCAs.pem";
const CP: &str = "config.integration.connectivityProxy";

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// The Destination service instances (`config.integration.destinationService.instances`).
    pub instances: Vec<Instance>,
    /// `config.integration.destinationService.defaultInstanceName`.
    pub default_instance: Option<String>,
    /// `…destinationService.connectionTimeoutSeconds` (default 5 s).
    pub connection_timeout: Duration,
    /// `…destinationService.readTimeoutSeconds` (default 10 s).
    pub read_timeout: Duration,
    /// `…destinationService.cacheSeconds` (Signpost's own key; default 120 s).
    pub cache_ttl: Duration,
    /// `config.http.retry`.
    pub retry: Retry,
    /// `config.integration.connectivityProxy`, when it names a host.
    pub connectivity_proxy: Option<ConnectivityProxy>,
    /// `config.tenantMode`.
    pub tenant_mode: TenantMode,
    /// PEM text of extra trusted CA certificates (`additionalCAs`).
    pub additional_cas: Option<String>,
    /// The config file's `destinations:`, then the routes file's.
    pub routes: Vec<Route>,
}

/// One Destination service instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The local name, referred to by `spec.destinationServiceInstanceName`.
    pub name: String,
    /// The service key, with the private key merged in as `"key"` when `privateKey` is configured.
    pub service_key: ServiceKeyJson,
}

/// A service key's JSON. `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct ServiceKeyJson(pub Value);

impl fmt::Debug for ServiceKeyJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceKeyJson(<redacted>)")
    }
}

/// `config.http.retry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retry {
    pub max_retries: u32,
    pub status_codes: Vec<u16>,
}

/// `config.integration.connectivityProxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityProxy {
    pub host: String,
    pub http_port: u16,
    pub tcp_port: u16,
    pub connection_timeout: Duration,
}

/// `config.tenantMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TenantMode {
    #[default]
    Dedicated,
    Shared,
}

impl TenantMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantMode::Dedicated => "dedicated",
            TenantMode::Shared => "shared",
        }
    }
}

/// One route: a `Destination` resource's name, namespace and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub namespace: String,
    pub spec: DestinationSpec,
}

impl Route {
    /// `destinationRef.name` is `"*"`: the destination comes from each request's headers.
    pub fn is_dynamic(&self) -> bool {
        self.spec.destination_ref.name == "*"
    }

    /// The Destination service instance this route uses: the spec's
    /// `destinationServiceInstanceName`, else `defaultInstanceName`, else the only instance.
    pub fn instance_name<'a>(&'a self, cfg: &'a ProxyConfig) -> Option<&'a str> {
        cfg.instance_for(self.spec.destination_service_instance_name.as_deref())
    }
}

/// The spec of a `Destination` resource (PROXY.md §2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationSpec {
    pub destination_ref: DestinationRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_service_instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment_ref: Option<FragmentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_ref: Option<ChainRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControl>,
    /// In SAP's CRD schema but undocumented; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRef {
    /// The destination's name; `"*"` makes a dynamic route.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRef {
    pub name: String,
    #[serde(default)]
    pub variables: Vec<ChainVariable>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainVariable {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// `accessControl.scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    ClusterWide,
    Namespaced,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ClusterWide => "clusterWide",
            Scope::Namespaced => "namespaced",
        }
    }
}

/// The level at which a destination or fragment is looked up: the client's lookup level.
pub use signpost_client::LookupLevel as Level;

/// Where the service keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Mounted secrets, `<dir>/<namespace>/<secret name>/<key>`; `namespace` is the default for
    /// `secretNamespace` (the proxy's own namespace).
    SecretsDir { dir: PathBuf, namespace: String },
    /// Ready-made service keys, `<dir>/<instance name>.json`.
    CredentialsDir(PathBuf),
    /// Secrets read from the Kubernetes API (the operator's); `namespace` as for `SecretsDir`.
    Fetched {
        secrets: FetchedSecrets,
        namespace: String,
    },
    /// Only `secretData` in the values.
    None,
}

/// A configuration error: where (a JSON-path-like location, or a file name) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl CredentialSource {
    /// The secrets of this source and the default namespace of `secretNamespace`, for the sources
    /// that name secrets.
    fn secrets(&self) -> Option<(Box<dyn SecretReader + '_>, &str)> {
        match self {
            CredentialSource::SecretsDir { dir, namespace } => {
                Some((Box::new(SecretsDir::new(dir)), namespace))
            }
            CredentialSource::Fetched { secrets, namespace } => {
                Some((Box::new(secrets.clone()), namespace))
            }
            CredentialSource::CredentialsDir(_) | CredentialSource::None => None,
        }
    }
}

/// Reads and validates the configuration file and the optional routes file, reading service keys
/// through `source`.
pub fn load(
    config_file: &Path,
    routes_file: Option<&Path>,
    source: &CredentialSource,
) -> Result<ProxyConfig> {
    let config_name = config_file.display().to_string();
    let config_text = read_text(config_file, &config_name)?;
    let routes = match routes_file {
        Some(path) => {
            let name = path.display().to_string();
            let text = read_text(path, &name)?;
            Some((name, text))
        }
        None => None,
    };
    parse(
        &config_text,
        &config_name,
        routes.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        source,
    )
}

/// [`load`] from text: `config_name` and the routes file's name (first of the pair) are used in
/// error paths; the routes pair is `(name, yaml)`.
pub fn parse(
    config_yaml: &str,
    config_name: &str,
    routes_file: Option<(&str, &str)>,
    source: &CredentialSource,
) -> Result<ProxyConfig> {
    let root = match yaml_documents(config_yaml, config_name)?.as_slice() {
        [] => Value::Null,
        [one] => one.clone(),
        more => {
            return Err(ConfigError::new(
                config_name,
                format!("must hold one YAML document, found {}", more.len()),
            ))
        }
    };
    let empty = Map::new();
    let root = match &root {
        Value::Null => &empty,
        Value::Object(map) => map,
        other => {
            return Err(ConfigError::new(
                config_name,
                format!(
                    "must be a YAML mapping (Helm values), found {}",
                    kind(other)
                ),
            ))
        }
    };

    let config = opt_map(root, "", "config")?.unwrap_or(&empty);
    let integration = opt_map(config, "config", "integration")?.unwrap_or(&empty);
    let ds = opt_map(integration, "config.integration", "destinationService")?.unwrap_or(&empty);

    let connection_timeout = opt_int(ds, DS, "connectionTimeoutSeconds", 1..=60)?.unwrap_or(5);
    let read_timeout = opt_int(ds, DS, "readTimeoutSeconds", 1..=60)?.unwrap_or(10);
    let cache_seconds = opt_int(ds, DS, "cacheSeconds", 0..=86_400)?.unwrap_or(120);
    let default_instance = opt_str(ds, DS, "defaultInstanceName")?.map(str::to_owned);

    let instances_path = join(DS, "instances");
    let list = opt_list(ds, DS, "instances")?.ok_or_else(|| {
        ConfigError::new(
            &instances_path,
            "is required: list at least one Destination service instance",
        )
    })?;
    if list.is_empty() {
        return Err(ConfigError::new(
            &instances_path,
            "must list at least one Destination service instance",
        ));
    }
    let mut instances: Vec<Instance> = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let path = format!("{instances_path}[{i}]");
        let instance = parse_instance(value, &path, source)?;
        if let Some(first) = instances.iter().position(|x| x.name == instance.name) {
            return Err(ConfigError::new(
                join(&path, "name"),
                format!(
                    "duplicate instance name '{}' (also {instances_path}[{first}])",
                    instance.name
                ),
            ));
        }
        instances.push(instance);
    }
    if let Some(default) = &default_instance {
        if !instances.iter().any(|x| &x.name == default) {
            return Err(ConfigError::new(
                join(DS, "defaultInstanceName"),
                format!(
                    "no instance named '{default}' in {instances_path} ({})",
                    instance_names(&instances)
                ),
            ));
        }
    }

    let retry = parse_retry(config)?;
    let connectivity_proxy = match opt_map(integration, "config.integration", "connectivityProxy")?
    {
        Some(cp) => parse_connectivity_proxy(cp)?,
        None => None,
    };
    let tenant_mode = match opt_str(config, "config", "tenantMode")? {
        None | Some("dedicated") => TenantMode::Dedicated,
        Some("shared") => TenantMode::Shared,
        Some(other) => {
            return Err(ConfigError::new(
                "config.tenantMode",
                format!("must be 'dedicated' or 'shared', found '{other}'"),
            ))
        }
    };
    let additional_cas = parse_additional_cas(root, source)?;

    // Routes: (error path, entry) pairs from both files, then validated together.
    let mut routes: Vec<(String, Route)> = Vec::new();
    if let Some(list) = opt_list(root, "", "destinations")? {
        for (i, value) in list.iter().enumerate() {
            let path = format!("destinations[{i}]");
            routes.push((path.clone(), parse_route(value, &path)?));
        }
    }
    if let Some((routes_name, routes_yaml)) = routes_file {
        parse_routes_file(routes_yaml, routes_name, &mut routes)?;
    }
    for (n, (path, route)) in routes.iter().enumerate() {
        if let Some((first, _)) = routes[..n]
            .iter()
            .find(|(_, r)| r.name == route.name && r.namespace == route.namespace)
        {
            return Err(ConfigError::new(
                path.clone(),
                format!(
                    "duplicate route '{}' in namespace '{}' (also {first})",
                    route.name, route.namespace
                ),
            ));
        }
    }
    // A route whose instance is unknown (or not to be chosen) is kept: its requests are
    // answered 502 (PROXY.md §3.5), the other routes are served ([`ProxyConfig::route_problems`]).

    Ok(ProxyConfig {
        instances,
        default_instance,
        connection_timeout: Duration::from_secs(connection_timeout),
        read_timeout: Duration::from_secs(read_timeout),
        cache_ttl: Duration::from_secs(cache_seconds),
        retry,
        connectivity_proxy,
        tenant_mode,
        additional_cas,
        routes: routes.into_iter().map(|(_, r)| r).collect(),
    })
}

impl ProxyConfig {
    /// The Destination service instance a `Destination` spec uses: its
    /// `destinationServiceInstanceName` (`named`), else `defaultInstanceName`, else the only
    /// instance; `None` when none of these applies. A named instance is not checked here.
    pub fn instance_for<'a>(&'a self, named: Option<&'a str>) -> Option<&'a str> {
        named
            .or(self.default_instance.as_deref())
            .or(match self.instances.as_slice() {
                [only] => Some(only.name.as_str()),
                _ => None,
            })
    }

    /// Why `route` has no Destination service instance to use, if it has none: its
    /// `destinationServiceInstanceName` names none of the instances, or it names none and
    /// neither `defaultInstanceName` nor a single instance decides. Such a route is served all
    /// the same: its requests are answered 502 with this message (PROXY.md §3.5).
    pub fn instance_problem(&self, route: &Route) -> Option<String> {
        match route.spec.destination_service_instance_name.as_deref() {
            Some(name) if !self.instances.iter().any(|i| i.name == name) => Some(format!(
                "The Destination service instance '{name}' (spec.destinationServiceInstanceName) is not configured in {DS}.instances ({})",
                instance_names(&self.instances)
            )),
            None if self.instance_for(None).is_none() => Some(format!(
                "spec.destinationServiceInstanceName is required: there are {} Destination service instances and no {DS}.defaultInstanceName",
                self.instances.len()
            )),
            _ => None,
        }
    }

    /// [`Self::instance_problem`] of every route that has one, each naming its route: what the
    /// proxy logs when it loads the configuration.
    pub fn route_problems(&self) -> Vec<String> {
        self.routes
            .iter()
            .filter_map(|r| {
                self.instance_problem(r).map(|why| {
                    format!(
                        "route '{}' in namespace '{}': {why}; its requests are answered 502",
                        r.name, r.namespace
                    )
                })
            })
            .collect()
    }

    /// SHA-256 over a canonical serialisation of everything, secrets included: equal fingerprints
    /// mean equal configurations. Compare it; never print it next to anything.
    pub fn fingerprint(&self) -> [u8; 32] {
        let value = serde_json::json!({
            "instances": self.instances.iter().map(|i| serde_json::json!({
                "name": i.name,
                "service_key": i.service_key.0,
            })).collect::<Vec<_>>(),
            "default_instance": self.default_instance,
            "connection_timeout_ns": self.connection_timeout.as_nanos().to_string(),
            "read_timeout_ns": self.read_timeout.as_nanos().to_string(),
            "cache_ttl_ns": self.cache_ttl.as_nanos().to_string(),
            "retry": { "max_retries": self.retry.max_retries, "status_codes": self.retry.status_codes },
            "connectivity_proxy": self.connectivity_proxy.as_ref().map(|c| serde_json::json!({
                "host": c.host,
                "http_port": c.http_port,
                "tcp_port": c.tcp_port,
                "connection_timeout_ns": c.connection_timeout.as_nanos().to_string(),
            })),
            "tenant_mode": self.tenant_mode.as_str(),
            "additional_cas": self.additional_cas,
            "routes": self.routes.iter().map(|r| serde_json::json!({
                "name": r.name,
                "namespace": r.namespace,
                "spec": serde_json::to_value(&r.spec).unwrap_or(Value::Null),
            })).collect::<Vec<_>>(),
        });
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        Sha256::digest(canonical.as_bytes()).into()
    }
}

/// JSON with object keys sorted, recursively.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Instances and their service keys

/// `serviceCredentials`, type-checked.
#[derive(Default)]
struct ServiceCredentials<'v> {
    secret_data: Option<&'v str>,
    secret_name: Option<&'v str>,
    secret_key: Option<&'v str>,
    secret_namespace: Option<&'v str>,
    private_key: Option<PrivateKeyRef<'v>>,
}

struct PrivateKeyRef<'v> {
    secret_name: &'v str,
    internal_key: &'v str,
    namespace: Option<&'v str>,
}

fn parse_instance(value: &Value, path: &str, source: &CredentialSource) -> Result<Instance> {
    let obj = as_map(value, path)?;
    let name = req_str(obj, path, "name")?;
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ConfigError::new(
            join(path, "name"),
            format!("'{name}' is not a valid instance name (letters, digits, '.', '_' and '-', not starting with '.')"),
        ));
    }
    let creds_path = join(path, "serviceCredentials");
    let creds = match opt_map(obj, path, "serviceCredentials")? {
        Some(map) => parse_service_credentials(map, &creds_path)?,
        None => ServiceCredentials::default(),
    };
    let has_block = obj.get("serviceCredentials").is_some_and(|v| !v.is_null());
    let service_key = resolve_service_key(name, &creds, has_block, &creds_path, source)?;
    Ok(Instance {
        name: name.to_owned(),
        service_key: ServiceKeyJson(Value::Object(service_key)),
    })
}

fn parse_service_credentials<'v>(
    obj: &'v Map<String, Value>,
    path: &str,
) -> Result<ServiceCredentials<'v>> {
    let private_key = match opt_map(obj, path, "privateKey")? {
        Some(pk) => {
            let pk_path = join(path, "privateKey");
            let secret_name = opt_str(pk, &pk_path, "secretName")?;
            let internal_key = opt_str(pk, &pk_path, "secretInternalKey")?.unwrap_or("key");
            let namespace = opt_str(pk, &pk_path, "secretNamespace")?;
            secret_name.map(|secret_name| PrivateKeyRef {
                secret_name,
                internal_key,
                namespace,
            })
        }
        None => None,
    };
    Ok(ServiceCredentials {
        secret_data: opt_str(obj, path, "secretData")?,
        secret_name: opt_str(obj, path, "secretName")?,
        secret_key: opt_str(obj, path, "secretKey")?,
        secret_namespace: opt_str(obj, path, "secretNamespace")?,
        private_key,
    })
}

fn resolve_service_key(
    instance: &str,
    creds: &ServiceCredentials<'_>,
    has_block: bool,
    path: &str,
    source: &CredentialSource,
) -> Result<Map<String, Value>> {
    let secret_err = |e: SecretError| ConfigError::new(path, e.to_string());
    let (mut key, origin, ready_made) = if let Some(data) = creds.secret_data {
        (
            decode_secret_data(data, &join(path, "secretData"))?,
            "secretData".to_owned(),
            false,
        )
    } else {
        match source {
            CredentialSource::CredentialsDir(dir) => {
                let file = dir.join(format!("{instance}.json"));
                (
                    read_credentials_file(&file, path)?,
                    format!("credentials file {}", file.display()),
                    true,
                )
            }
            CredentialSource::SecretsDir { .. } | CredentialSource::Fetched { .. } => {
                if !has_block {
                    return Err(ConfigError::new(
                        path,
                        "is required (secretName, or secretData)",
                    ));
                }
                let name = creds.secret_name.ok_or_else(|| {
                    ConfigError::new(
                        path,
                        "needs secretName (with secretKey for a single-key secret), or secretData",
                    )
                })?;
                let Some((secrets, namespace)) = source.secrets() else {
                    return Err(ConfigError::new(path, "needs --secrets-dir"));
                };
                let ns = creds.secret_namespace.unwrap_or(namespace);
                let origin = format!("secret '{name}' in namespace '{ns}'");
                let key = match creds.secret_key {
                    Some(k) => secrets.read_json_key(ns, name, k),
                    None => secrets.read_credentials(ns, name),
                }
                .map_err(secret_err)?;
                (key, origin, false)
            }
            CredentialSource::None => {
                return Err(ConfigError::new(
                    path,
                    "needs --secrets-dir or --credentials-dir, or secretData",
                ))
            }
        }
    };

    // A ready-made service key (credentials dir) already holds its private key.
    if let (Some(pk), false) = (&creds.private_key, ready_made) {
        let pk_path = join(path, "privateKey");
        let Some((secrets, namespace)) = source.secrets() else {
            return Err(ConfigError::new(pk_path, "needs --secrets-dir"));
        };
        let ns = pk.namespace.unwrap_or(namespace);
        let pem = secrets
            .read_key(ns, pk.secret_name, pk.internal_key)
            .map_err(|e| ConfigError::new(&pk_path, e.to_string()))?;
        if !(pem.contains("-----BEGIN") && pem.contains("PRIVATE KEY-----")) {
            return Err(ConfigError::new(
                pk_path,
                format!(
                    "key '{}' of secret '{}' in namespace '{ns}' holds no PEM private key",
                    pk.internal_key, pk.secret_name
                ),
            ));
        }
        key.insert("key".to_owned(), Value::String(pem));
    }

    check_service_key(
        &key,
        path,
        &origin,
        creds.secret_key.is_none() && !ready_made,
    )?;
    Ok(key)
}

fn decode_secret_data(data: &str, path: &str) -> Result<Map<String, Value>> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(&compact)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(&compact))
        .map_err(|_| {
            ConfigError::new(
                path,
                "is not valid base64 (it holds the base64-encoded service key JSON)",
            )
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::new(path, "decodes to something that is not UTF-8 text"))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::new(
            path,
            format!(
                "decodes to {}, not a service key JSON object",
                crate::secrets::json_type(&other)
            ),
        )),
        Err(e) => Err(ConfigError::new(
            path,
            format!(
                "decodes to invalid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

fn read_credentials_file(file: &Path, path: &str) -> Result<Map<String, Value>> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::new(
                path,
                format!("credentials file {} not found", file.display()),
            ))
        }
        Err(e) => {
            return Err(ConfigError::new(
                path,
                format!("cannot read credentials file {}: {e}", file.display()),
            ))
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::new(
            path,
            format!(
                "credentials file {} holds {}, not a service key JSON object",
                file.display(),
                crate::secrets::json_type(&other)
            ),
        )),
        Err(e) => Err(ConfigError::new(
            path,
            format!(
                "credentials file {} is not valid JSON (line {}, column {})",
                file.display(),
                e.line(),
                e.column()
            ),
        )),
    }
}

/// A service key must have `clientid`, `uri`, and `url` or `certurl`; an x509 one its `key`.
fn check_service_key(
    key: &Map<String, Value>,
    path: &str,
    origin: &str,
    multi_key: bool,
) -> Result<()> {
    let has = |field: &str| {
        key.get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let missing = if !has("clientid") {
        Some("'clientid'")
    } else if !has("uri") {
        Some("'uri' (the Destination service's URL)")
    } else if !has("url") && !has("certurl") {
        Some("'url' or 'certurl' (the token service's URL)")
    } else {
        None
    };
    if let Some(missing) = missing {
        let hint = if multi_key && key.len() == 1 && key.values().all(Value::is_object) {
            " (for a single-key secret, set secretKey)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            path,
            format!("service key from {origin} has no {missing}{hint}"),
        ));
    }
    if key.get("credential-type").and_then(Value::as_str) == Some("x509") && !has("key") {
        return Err(ConfigError::new(
            path,
            format!(
                "x509 service key from {origin} has no 'key' (set serviceCredentials.privateKey)"
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The rest of config

fn parse_retry(config: &Map<String, Value>) -> Result<Retry> {
    let empty = Map::new();
    let http = opt_map(config, "config", "http")?.unwrap_or(&empty);
    let Some(retry) = opt_map(http, "config.http", "retry")? else {
        return Ok(Retry::default());
    };
    let path = "config.http.retry";
    let max_retries = opt_int(retry, path, "maxRetries", 0..=10)?.unwrap_or(0) as u32;
    let mut status_codes = Vec::new();
    if let Some(list) = opt_list(retry, path, "statusCodes")? {
        for (i, value) in list.iter().enumerate() {
            let at = format!("{path}.statusCodes[{i}]");
            status_codes.push(int_value(value, &at, 100..=599)? as u16);
        }
    }
    Ok(Retry {
        max_retries,
        status_codes,
    })
}

fn parse_connectivity_proxy(cp: &Map<String, Value>) -> Result<Option<ConnectivityProxy>> {
    let host = opt_str(cp, CP, "host")?;
    let service_name = opt_str(cp, CP, "serviceName")?;
    let host = match (host, service_name) {
        (Some(h), Some(s)) if h != s => {
            return Err(ConfigError::new(
                join(CP, "host"),
                "conflicts with serviceName: set one of them",
            ))
        }
        (h, s) => h.or(s),
    };
    if let Some(host) = host {
        if host.contains("://")
            || host.contains('/')
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            let key = if cp.get("host").is_some_and(|v| !v.is_null()) {
                "host"
            } else {
                "serviceName"
            };
            return Err(ConfigError::new(
                join(CP, key),
                "must be a host name such as connectivity-proxy.<namespace>, not a URL",
            ));
        }
    }
    let http_port = port(cp, "http", "httpPort")?.unwrap_or(20003);
    let tcp_port = port(cp, "tcp", "tcpPort")?.unwrap_or(20004);
    let timeout = opt_int(cp, CP, "connectionTimeoutSeconds", 1..=60)?.unwrap_or(1);
    Ok(host.map(|host| ConnectivityProxy {
        host: host.to_owned(),
        http_port,
        tcp_port,
        connection_timeout: Duration::from_secs(timeout),
    }))
}

/// `<nested>.port` (SAP's) or `<flat>` (Signpost's): both may be given only if equal.
fn port(cp: &Map<String, Value>, nested: &str, flat: &str) -> Result<Option<u16>> {
    let nested_port = match opt_map(cp, CP, nested)? {
        Some(map) => opt_int(map, &join(CP, nested), "port", 1..=65_535)?,
        None => None,
    };
    let flat_port = opt_int(cp, CP, flat, 1..=65_535)?;
    match (nested_port, flat_port) {
        (Some(a), Some(b)) if a != b => Err(ConfigError::new(
            join(CP, flat),
            format!("conflicts with {nested}.port: set one of them"),
        )),
        (a, b) => Ok(a.or(b).map(|p| p as u16)),
    }
}

fn parse_additional_cas(
    root: &Map<String, Value>,
    source: &CredentialSource,
) -> Result<Option<String>> {
    let Some(cas) = opt_map(root, "", "additionalCAs")? else {
        return Ok(None);
    };
    let path = "additionalCAs";
    let pem = opt_str(cas, path, "pem")?;
    let secret_name = opt_str(cas, path, "secretName")?;
    let secret_key = opt_str(cas, path, "secretKey")?;
    let secret_namespace = opt_str(cas, path, "secretNamespace")?;
    let check = |pem: &str, at: &str, what: &str| {
        if pem.contains("-----BEGIN CERTIFICATE-----") {
            Ok(())
        } else {
            Err(ConfigError::new(
                at,
                format!("{what} holds no PEM certificate"),
            ))
        }
    };
    match (pem, secret_name) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            path,
            "set either pem or secretName, not both",
        )),
        (Some(pem), None) => {
            check(pem, &join(path, "pem"), "it")?;
            Ok(Some(pem.to_owned()))
        }
        (None, Some(name)) => {
            let key = secret_key.ok_or_else(|| {
                ConfigError::new(join(path, "secretKey"), "is required with secretName")
            })?;
            if let CredentialSource::CredentialsDir(dir) = source {
                // The operator resolves the secret and writes its PEM beside the service keys.
                let file = dir.join(ADDITIONAL_CAS_FILE);
                let pem = fs::read_to_string(&file).map_err(|e| {
                    ConfigError::new(
                        path,
                        format!(
                            "with --credentials-dir the CAs are read from {} (the operator writes it): {e}",
                            file.display()
                        ),
                    )
                })?;
                check(&pem, path, &format!("{}", file.display()))?;
                return Ok(Some(pem));
            }
            let Some((secrets, namespace)) = source.secrets() else {
                return Err(ConfigError::new(
                    path,
                    "needs --secrets-dir or --credentials-dir (or additionalCAs.pem)",
                ));
            };
            let ns = secret_namespace.unwrap_or(namespace);
            let pem = secrets
                .read_key(ns, name, key)
                .map_err(|e| ConfigError::new(path, e.to_string()))?;
            check(
                &pem,
                path,
                &format!("key '{key}' of secret '{name}' in namespace '{ns}'"),
            )?;
            Ok(Some(pem))
        }
        (None, None) => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

const ROUTE_FIELDS: [&str; 7] = [
    "name",
    "namespace",
    "spec",
    "apiVersion",
    "kind",
    "metadata",
    "status",
];
const API_VERSION: &str = "destination.connectivity.api.sap/v1";

/// One route: `{name, namespace, spec}`, or a whole `Destination` resource
/// (`{apiVersion, kind, metadata: {name, namespace}, spec, status}`).
fn parse_route(value: &Value, path: &str) -> Result<Route> {
    let obj = as_map(value, path)?;
    if let Some(key) = obj.keys().find(|k| !ROUTE_FIELDS.contains(&k.as_str())) {
        return Err(ConfigError::new(
            join(path, key),
            "unknown field: a route has name, namespace and spec (or is a Destination resource: apiVersion, kind, metadata, spec)",
        ));
    }
    if let Some(api_version) = opt_str(obj, path, "apiVersion")? {
        if api_version != API_VERSION {
            return Err(ConfigError::new(
                join(path, "apiVersion"),
                format!("must be {API_VERSION}, found '{api_version}'"),
            ));
        }
    }
    if let Some(kind) = opt_str(obj, path, "kind")? {
        if kind != "Destination" {
            return Err(ConfigError::new(
                join(path, "kind"),
                format!("must be Destination, found '{kind}'"),
            ));
        }
    }
    let (meta, meta_path) = match opt_map(obj, path, "metadata")? {
        Some(meta) => {
            for key in ["name", "namespace"] {
                if obj.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(ConfigError::new(
                        join(path, key),
                        format!("set metadata.{key} or {key}, not both"),
                    ));
                }
            }
            (meta, join(path, "metadata"))
        }
        None => (obj, path.to_owned()),
    };
    let name = req_str(meta, &meta_path, "name")?;
    if !is_dns_label(name) {
        return Err(ConfigError::new(
            join(&meta_path, "name"),
            format!("'{name}' is not a valid route name (lowercase letters, digits and '-', at most 63, as a Kubernetes Service name)"),
        ));
    }
    let namespace = opt_str(meta, &meta_path, "namespace")?.unwrap_or("default");
    if !is_dns_label(namespace) {
        return Err(ConfigError::new(
            join(&meta_path, "namespace"),
            format!("'{namespace}' is not a valid namespace name"),
        ));
    }
    let spec_path = join(path, "spec");
    let spec_value = obj
        .get("spec")
        .filter(|v| !v.is_null())
        .ok_or_else(|| ConfigError::new(&spec_path, "is required"))?;
    let spec: DestinationSpec = serde_path_to_error::deserialize(spec_value).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." {
            spec_path.clone()
        } else {
            join(&spec_path, &inner)
        };
        ConfigError::new(at, e.into_inner().to_string())
    })?;
    check_spec(&spec, &spec_path)?;
    Ok(Route {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        spec,
    })
}

fn check_spec(spec: &DestinationSpec, path: &str) -> Result<()> {
    let empty = |at: String| Err(ConfigError::new(at, "must not be empty"));
    if spec.destination_ref.name.is_empty() {
        return empty(join(path, "destinationRef.name"));
    }
    if spec.destination_service_instance_name.as_deref() == Some("") {
        return empty(join(path, "destinationServiceInstanceName"));
    }
    if let Some(fragment) = &spec.fragment_ref {
        if spec.destination_ref.name == "*" {
            return Err(ConfigError::new(
                join(path, "fragmentRef"),
                "not allowed on a dynamic route (\"*\")",
            ));
        }
        if fragment.name.is_empty() {
            return empty(join(path, "fragmentRef.name"));
        }
    }
    if let Some(chain) = &spec.chain_ref {
        if chain.name.is_empty() {
            return empty(join(path, "chainRef.name"));
        }
        for (i, var) in chain.variables.iter().enumerate() {
            let at = format!("{path}.chainRef.variables[{i}]");
            if var.name.is_empty() {
                return empty(join(&at, "name"));
            }
            if !var.name.bytes().all(is_token_byte) {
                return Err(ConfigError::new(
                    join(&at, "name"),
                    "must be usable in a header name (X-Chain-Var-<name>): letters, digits and !#$%&'*+-.^_`|~",
                ));
            }
            if chain.variables[..i]
                .iter()
                .any(|v| v.name.eq_ignore_ascii_case(&var.name))
            {
                return Err(ConfigError::new(
                    join(&at, "name"),
                    format!("duplicate chain variable '{}'", var.name),
                ));
            }
            if var.value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ConfigError::new(
                    join(&at, "value"),
                    "must be usable as a header value: no control characters",
                ));
            }
        }
    }
    if let Some(ServiceSpec { port: Some(0) }) = spec.service {
        return Err(ConfigError::new(
            join(path, "service.port"),
            "must be between 1 and 65535",
        ));
    }
    if let Some(actions) = &spec.actions {
        if !actions.is_array() {
            return Err(ConfigError::new(
                join(path, "actions"),
                format!("must be a list, found {}", kind(actions)),
            ));
        }
    }
    Ok(())
}

/// The routes file: one or more YAML documents, each a `Destination` resource, a `List` /
/// `DestinationList` of them (`items`), a mapping with `destinations:`, or a list of routes.
/// Error paths start with the file's name.
fn parse_routes_file(yaml: &str, file: &str, routes: &mut Vec<(String, Route)>) -> Result<()> {
    let docs = yaml_documents(yaml, file)?;
    let many = docs.len() > 1;
    let prefixed = |inner: &str| {
        if inner.is_empty() {
            file.to_owned()
        } else {
            format!("{file}: {inner}")
        }
    };
    let in_file = |e: ConfigError| ConfigError::new(prefixed(&e.path), e.message);
    for (k, doc) in docs.iter().enumerate() {
        let base = if many {
            format!("document[{k}]")
        } else {
            String::new()
        };
        let mut push = |value: &Value, inner: String| -> Result<()> {
            let route = parse_route(value, &inner).map_err(in_file)?;
            routes.push((prefixed(&inner), route));
            Ok(())
        };
        match doc {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    push(item, format!("{base}[{i}]"))?;
                }
            }
            Value::Object(obj) => {
                let kind = opt_str(obj, &base, "kind").map_err(in_file)?;
                let list_key = match kind {
                    Some("List" | "DestinationList") => Some("items"),
                    None if obj.contains_key("destinations") && !obj.contains_key("spec") => Some("destinations"),
                    _ => None,
                };
                match list_key {
                    Some(key) => {
                        let list = opt_list(obj, &base, key).map_err(in_file)?;
                        for (i, item) in list.into_iter().flatten().enumerate() {
                            push(item, format!("{}[{i}]", join(&base, key)))?;
                        }
                    }
                    None => push(doc, format!("document[{k}]"))?,
                }
            }
            other => {
                return Err(ConfigError::new(
                    prefixed(&base),
                    format!(
                        "expected a Destination resource, a List of them, or a mapping with 'destinations', found {}",
                        kind(other)
                    ),
                ))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// YAML and typed access with paths

fn read_text(path: &Path, name: &str) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| ConfigError::new(name, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| ConfigError::new(name, "is not UTF-8 text"))
}

/// Every document of a YAML stream as JSON values (merge keys applied, tags dropped).
fn yaml_documents(text: &str, file: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let mut value = serde_norway::Value::deserialize(doc).map_err(|e| yaml_error(file, &e))?;
        value.apply_merge().map_err(|e| yaml_error(file, &e))?;
        docs.push(yaml_to_json(value).map_err(|message| ConfigError::new(file, message))?);
    }
    // An empty stream reads as no documents or one null one; either way: nothing.
    if docs.iter().all(Value::is_null) {
        docs.clear();
    }
    Ok(docs)
}

fn yaml_error(file: &str, e: &serde_norway::Error) -> ConfigError {
    let path = match e.location() {
        Some(loc) => format!("{file}:{}:{}", loc.line(), loc.column()),
        None => file.to_owned(),
    };
    ConfigError::new(
        path,
        format!("not valid YAML: {}", strip_locations(&e.to_string())),
    )
}

/// Drops libyaml's " at line N column M" (the location is in the path already).
fn strip_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let after_line = &after[digits..];
        match after_line.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                let n = col.bytes().take_while(u8::is_ascii_digit).count();
                rest = &col[n..];
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn yaml_to_json(value: serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => return Err("mapping keys must be scalars".to_owned()),
                };
                out.insert(key, yaml_to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The YAML words for a value's type, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn wrong_type(path: String, expected: &str, found: &Value) -> ConfigError {
    ConfigError::new(path, format!("must be {expected}, found {}", kind(found)))
}

/// A present, non-null value.
fn present<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn as_map<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path.to_owned(), "a mapping", value))
}

fn opt_map<'v>(
    obj: &'v Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<&'v Map<String, Value>>> {
    present(obj, key)
        .map(|v| as_map(v, &join(parent, key)))
        .transpose()
}

fn opt_list<'v>(
    obj: &'v Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<&'v Vec<Value>>> {
    present(obj, key)
        .map(|v| {
            v.as_array()
                .ok_or_else(|| wrong_type(join(parent, key), "a list", v))
        })
        .transpose()
}

/// An optional string; empty means unset (Helm's convention).
fn opt_str<'v>(obj: &'v Map<String, Value>, parent: &str, key: &str) -> Result<Option<&'v str>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(join(parent, key), "a string", other)),
    }
}

fn req_str<'v>(obj: &'v Map<String, Value>, parent: &str, key: &str) -> Result<&'v str> {
    match present(obj, key) {
        None => Err(ConfigError::new(join(parent, key), "is required")),
        Some(Value::String(s)) if s.is_empty() => {
            Err(ConfigError::new(join(parent, key), "must not be empty"))
        }
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_type(join(parent, key), "a string", other)),
    }
}

fn opt_int(
    obj: &Map<String, Value>,
    parent: &str,
    key: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<u64>> {
    present(obj, key)
        .map(|v| int_value(v, &join(parent, key), range))
        .transpose()
}

fn int_value(value: &Value, path: &str, range: RangeInclusive<u64>) -> Result<u64> {
    let out_of_range = || {
        ConfigError::new(
            path,
            format!("must be between {} and {}", range.start(), range.end()),
        )
    };
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if range.contains(&u) => Ok(u),
            (Some(_), _) | (None, Some(_)) => Err(out_of_range()),
            (None, None) => Err(ConfigError::new(path, "must be a whole number")),
        },
        other => Err(wrong_type(path.to_owned(), "a whole number", other)),
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn instance_names(instances: &[Instance]) -> String {
    let names: Vec<String> = instances.iter().map(|i| format!("'{}'", i.name)).collect();
    format!("instances: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    const SECRET: &str = "s3cr3t-VALUE-never-shown";

    fn key_json() -> Value {
        json!({
            "clientid": "sb-clone",
            "clientsecret": SECRET,
            "uri": "https://destination-configuration.example",
            "url": "https://sub.authentication.example",
        })
    }

    fn b64(v: &Value) -> String {
        STANDARD.encode(v.to_string())
    }

    /// Values with one secretData instance, plus `extra` appended at the top level.
    fn values(extra: &str) -> String {
        format!(
            "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials:\n            secretData: {}\n{extra}",
            b64(&key_json())
        )
    }

    fn ok(yaml: &str) -> ProxyConfig {
        match parse(yaml, "values.yaml", None, &CredentialSource::None) {
            Ok(cfg) => cfg,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(yaml: &str) -> String {
        err_with(yaml, &CredentialSource::None)
    }

    fn err_with(yaml: &str, source: &CredentialSource) -> String {
        match parse(yaml, "values.yaml", None, source) {
            Ok(_) => panic!("expected an error"),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains(SECRET), "secret in error: {text}");
                text
            }
        }
    }

    #[test]
    fn defaults() {
        let cfg = ok(&values(""));
        assert_eq!(cfg.instances.len(), 1);
        assert_eq!(cfg.instances[0].name, "dest");
        assert_eq!(cfg.instances[0].service_key.0, key_json());
        assert_eq!(cfg.default_instance, None);
        assert_eq!(cfg.connection_timeout, Duration::from_secs(5));
        assert_eq!(cfg.read_timeout, Duration::from_secs(10));
        assert_eq!(cfg.cache_ttl, Duration::from_secs(120));
        assert_eq!(cfg.retry, Retry::default());
        assert_eq!(cfg.connectivity_proxy, None);
        assert_eq!(cfg.tenant_mode, TenantMode::Dedicated);
        assert_eq!(cfg.additional_cas, None);
        assert!(cfg.routes.is_empty());
    }

    #[test]
    fn full_sap_values_tree_is_accepted() {
        let yaml = format!(
            r#"
config:
  tenantMode: shared
  managedNamespacesMode: labelSelector
  manager: {{ executionIntervalMinutes: 3 }}
  logging: {{ level: info }}
  metrics: {{ prometheus: {{ enabled: false }} }}
  http: {{ retry: {{ maxRetries: 2, statusCodes: [502, 503] }} }}
  helm: {{ skipExistingResourceValidation: false }}
  security:
    accessControl: {{ destinations: {{ defaultScope: namespaced }} }}
    communication:
      internal:
        encryptionEnabled: true
        certManager:
          issuerRef: {{ kind: ClusterIssuer, name: ca, namespace: cert }}
          certificate: {{ privateKey: {{algorithm: ECDSA, encoding: PKCS8, size: 256}}, duration: 720h, renewBefore: 240h }}
  integration:
    destinationService:
      defaultInstanceName: dest-service-instance
      connectionTimeoutSeconds: 7
      readTimeoutSeconds: 30
      cacheSeconds: 0
      instances:
        - name: dest-service-instance
          serviceCredentials:
            secretData: {data}
          associateWith: {{ connectivityProxy: {{ locallyConfiguredRegionId: eu10 }} }}
        - name: second
          serviceCredentials:
            secretName: ""
            secretKey: ""
            secretData: {data}
    connectivityProxy:
      serviceName: connectivity-proxy.conn
      connectionTimeoutSeconds: 2
      http: {{ port: 20003 }}
      tcp:  {{ port: 20005 }}
    serviceMesh: {{ istio: {{ istio-injection: enabled }} }}
    ztis: {{ socketPath: /run/spire/agent-sockets/spire-agent.sock }}
additionalCAs: {{ pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" }}
compliance: {{ fipsModeEnabled: false }}
deployment:
  image: {{ registry: docker.io, repository: sapse, tag: 1.9.9, pullPolicy: IfNotPresent, pullSecret: "" }}
  replicas: {{ http: 1, tcp: 1 }}
  resources: {{ http: {{request: {{cpu: 0.2, memory: 256M}}, limits: {{cpu: 0.4, memory: 512M}}}},
               tcp:  {{request: {{cpu: 0.05, memory: 32M}}, limits: {{cpu: 0.1, memory: 64M}}}} }}
  autoscaling:
    http:
      horizontal: {{enabled: false, maxReplicaCount: 2, metrics: {{cpuAverageUtilization: 80, memoryAverageUtilization: 80}}}}
      vertical: {{enabled: false, updateMode: "Off", minAllowed: {{}}, maxAllowed: {{}}}}
  priority: {{ value: 0 }}
destinations:
  - name: s4
    namespace: apps
    spec:
      destinationRef: {{ name: S4_BASIC, level: provider_subaccount }}
      fragmentRef: {{ name: frag, level: instance, optional: true }}
      chainRef:
        name: com.sap.iasGeneratedOAuth2SamlBearerAssertion
        variables: [{{ name: subject, value: "x y" }}]
      service: {{ port: 8080 }}
      accessControl: {{ scope: clusterWide }}
      destinationServiceInstanceName: second
  - name: gateway
    spec:
      destinationRef: {{ name: "*" }}
"#,
            data = b64(&key_json())
        );
        let cfg = ok(&yaml);
        assert_eq!(cfg.tenant_mode, TenantMode::Shared);
        assert_eq!(
            cfg.default_instance.as_deref(),
            Some("dest-service-instance")
        );
        assert_eq!(cfg.connection_timeout, Duration::from_secs(7));
        assert_eq!(cfg.read_timeout, Duration::from_secs(30));
        assert_eq!(cfg.cache_ttl, Duration::ZERO);
        assert_eq!(
            cfg.retry,
            Retry {
                max_retries: 2,
                status_codes: vec![502, 503]
            }
        );
        assert_eq!(
            cfg.connectivity_proxy,
            Some(ConnectivityProxy {
                host: "connectivity-proxy.conn".into(),
                http_port: 20003,
                tcp_port: 20005,
                connection_timeout: Duration::from_secs(2),
            })
        );
        assert!(cfg
            .additional_cas
            .as_deref()
            .is_some_and(|p| p.contains("MIIB")));
        assert_eq!(cfg.routes.len(), 2);
        let s4 = &cfg.routes[0];
        assert_eq!((s4.name.as_str(), s4.namespace.as_str()), ("s4", "apps"));
        assert!(!s4.is_dynamic());
        assert_eq!(s4.instance_name(&cfg), Some("second"));
        assert_eq!(
            s4.spec.destination_ref.level,
            Some(Level::ProviderSubaccount)
        );
        assert_eq!(
            s4.spec.fragment_ref,
            Some(FragmentRef {
                name: "frag".into(),
                level: Some(Level::Instance),
                optional: true
            })
        );
        let chain = s4.spec.chain_ref.as_ref().expect("chain");
        assert_eq!(chain.variables[0].value, "x y");
        assert_eq!(s4.spec.service, Some(ServiceSpec { port: Some(8080) }));
        assert_eq!(
            s4.spec.access_control.as_ref().and_then(|a| a.scope),
            Some(Scope::ClusterWide)
        );
        let gateway = &cfg.routes[1];
        assert_eq!(gateway.namespace, "default");
        assert!(gateway.is_dynamic());
        assert_eq!(gateway.instance_name(&cfg), Some("dest-service-instance"));
        assert!(cfg
            .routes
            .iter()
            .any(|r| r.namespace == "apps" && r.name == "s4"));
        assert!(cfg.instances.iter().any(|i| i.name == "second"));
    }

    #[test]
    fn level_names() {
        for level in [
            Level::Subaccount,
            Level::Instance,
            Level::ProviderSubaccount,
            Level::ProviderInstance,
        ] {
            assert_eq!(level.as_str().parse::<Level>().ok(), Some(level));
            assert_eq!(
                serde_json::to_value(level).expect("ser"),
                json!(level.as_str())
            );
        }
        assert!("Subaccount".parse::<Level>().is_err());
    }

    #[test]
    fn sole_instance_is_the_default() {
        let cfg = ok(&values(
            "destinations:\n  - name: a\n    spec: { destinationRef: { name: A } }\n",
        ));
        assert_eq!(cfg.routes[0].instance_name(&cfg), Some("dest"));
    }

    fn two_instances(extra_ds: &str, tail: &str) -> String {
        let data = b64(&key_json());
        format!(
            "config:\n  integration:\n    destinationService:\n{extra_ds}      instances:\n        - name: one\n          serviceCredentials: {{ secretData: {data} }}\n        - name: two\n          serviceCredentials: {{ secretData: {data} }}\n{tail}"
        )
    }

    #[test]
    fn instance_resolution_problems() {
        let route = "destinations:\n  - name: a\n    spec: { destinationRef: { name: A } }\n";
        // Loaded all the same: the route's requests get a 502 saying why.
        let cfg = ok(&two_instances("", route));
        assert_eq!(cfg.routes[0].instance_name(&cfg), None);
        assert_eq!(
            cfg.instance_problem(&cfg.routes[0]).as_deref(),
            Some("spec.destinationServiceInstanceName is required: there are 2 Destination service instances and no config.integration.destinationService.defaultInstanceName")
        );
        assert_eq!(
            cfg.route_problems(),
            ["route 'a' in namespace 'default': spec.destinationServiceInstanceName is required: there are 2 Destination service instances and no config.integration.destinationService.defaultInstanceName; its requests are answered 502"]
        );
        let cfg = ok(&two_instances("      defaultInstanceName: two\n", route));
        assert_eq!(cfg.routes[0].instance_name(&cfg), Some("two"));
        assert_eq!(cfg.instance_problem(&cfg.routes[0]), None);
        assert!(cfg.route_problems().is_empty());
        assert_eq!(
            err(&two_instances("      defaultInstanceName: three\n", "")),
            "config.integration.destinationService.defaultInstanceName: no instance named 'three' in config.integration.destinationService.instances (instances: 'one', 'two')"
        );
        let route = "destinations:\n  - name: a\n    spec: { destinationRef: { name: A }, destinationServiceInstanceName: nope }\n";
        let cfg = ok(&two_instances("      defaultInstanceName: two\n", route));
        assert_eq!(
            cfg.instance_problem(&cfg.routes[0]).as_deref(),
            Some("The Destination service instance 'nope' (spec.destinationServiceInstanceName) is not configured in config.integration.destinationService.instances (instances: 'one', 'two')")
        );
    }

    #[test]
    fn duplicates() {
        let data = b64(&key_json());
        let yaml = format!(
            "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n          serviceCredentials: {{ secretData: {data} }}\n        - name: one\n          serviceCredentials: {{ secretData: {data} }}\n"
        );
        assert_eq!(
            err(&yaml),
            "config.integration.destinationService.instances[1].name: duplicate instance name 'one' (also config.integration.destinationService.instances[0])"
        );
        let routes = "destinations:\n  - name: a\n    spec: { destinationRef: { name: A } }\n  - name: a\n    namespace: other\n    spec: { destinationRef: { name: B } }\n  - name: a\n    namespace: default\n    spec: { destinationRef: { name: C } }\n";
        assert_eq!(
            err(&values(routes)),
            "destinations[2]: duplicate route 'a' in namespace 'default' (also destinations[0])"
        );
    }

    #[test]
    fn spec_errors_have_exact_paths() {
        let cases: &[(&str, &str)] = &[
            (
                "  - name: a\n    spec: { destinationRef: { name: '' } }\n",
                "destinations[0].spec.destinationRef.name: must not be empty",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A } }\n  - name: b\n    spec: { destinationRef: { name: B } }\n  - name: c\n    spec: { destinationRef: { name: '*' }, fragmentRef: { name: F } }\n",
                "destinations[2].spec.fragmentRef: not allowed on a dynamic route (\"*\")",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, bogus: 1 }\n",
                "destinations[0].spec.bogus: unknown field `bogus`, expected one of `destinationRef`, `destinationServiceInstanceName`, `fragmentRef`, `chainRef`, `service`, `accessControl`, `actions`",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A, lvl: x } }\n",
                "destinations[0].spec.destinationRef.lvl: unknown field `lvl`, expected `name` or `level`",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A, level: tenant } }\n",
                "destinations[0].spec.destinationRef.level: unknown variant `tenant`, expected one of `subaccount`, `instance`, `provider_subaccount`, `provider_instance`",
            ),
            (
                "  - name: a\n    spec: { fragmentRef: { name: F } }\n",
                "destinations[0].spec: missing field `destinationRef`",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, service: { port: 70000 } }\n",
                "destinations[0].spec.service.port: invalid value: integer `70000`, expected u16",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, service: { port: 0 } }\n",
                "destinations[0].spec.service.port: must be between 1 and 65535",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, accessControl: { scope: global } }\n",
                "destinations[0].spec.accessControl.scope: unknown variant `global`, expected `clusterWide` or `namespaced`",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, chainRef: { name: C, variables: [{ name: 'a b', value: v }] } }\n",
                "destinations[0].spec.chainRef.variables[0].name: must be usable in a header name (X-Chain-Var-<name>): letters, digits and !#$%&'*+-.^_`|~",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, actions: {} }\n",
                "destinations[0].spec.actions: must be a list, found a mapping",
            ),
            (
                "  - name: a\n    spec: { destinationRef: { name: A }, destinationServiceInstanceName: '' }\n",
                "destinations[0].spec.destinationServiceInstanceName: must not be empty",
            ),
            (
                "  - name: A_b\n    spec: { destinationRef: { name: A } }\n",
                "destinations[0].name: 'A_b' is not a valid route name (lowercase letters, digits and '-', at most 63, as a Kubernetes Service name)",
            ),
            (
                "  - namespace: x\n    spec: { destinationRef: { name: A } }\n",
                "destinations[0].name: is required",
            ),
            ("  - name: a\n", "destinations[0].spec: is required"),
            (
                "  - name: a\n    sepc: {}\n",
                "destinations[0].sepc: unknown field: a route has name, namespace and spec (or is a Destination resource: apiVersion, kind, metadata, spec)",
            ),
            ("  - just-a-string\n", "destinations[0]: must be a mapping, found a string"),
        ];
        for (routes, expected) in cases {
            assert_eq!(
                &err(&values(&format!("destinations:\n{routes}"))),
                expected,
                "{routes}"
            );
        }
        assert_eq!(
            err(&values("destinations: {}\n")),
            "destinations: must be a list, found a mapping"
        );
    }

    #[test]
    fn destination_resources_in_the_values() {
        let cfg = ok(&values(
            "destinations:\n  - apiVersion: destination.connectivity.api.sap/v1\n    kind: Destination\n    metadata: { name: s4, namespace: apps, labels: { a: b } }\n    spec: { destinationRef: { name: S4 } }\n    status: { conditions: [] }\n",
        ));
        assert_eq!(cfg.routes[0].name, "s4");
        assert_eq!(cfg.routes[0].namespace, "apps");
        assert_eq!(
            err(&values(
                "destinations:\n  - kind: Service\n    metadata: { name: s4 }\n    spec: {}\n"
            )),
            "destinations[0].kind: must be Destination, found 'Service'"
        );
        assert_eq!(
            err(&values(
                "destinations:\n  - metadata: {}\n    spec: { destinationRef: { name: A } }\n"
            )),
            "destinations[0].metadata.name: is required"
        );
    }

    #[test]
    fn number_errors() {
        let ds = |line: &str| {
            format!(
                "config:\n  integration:\n    destinationService:\n      {line}\n      instances:\n        - name: dest\n          serviceCredentials: {{ secretData: {} }}\n",
                b64(&key_json())
            )
        };
        assert_eq!(
            err(&ds("readTimeoutSeconds: 0")),
            "config.integration.destinationService.readTimeoutSeconds: must be between 1 and 60"
        );
        assert_eq!(
            err(&ds("readTimeoutSeconds: 61")),
            "config.integration.destinationService.readTimeoutSeconds: must be between 1 and 60"
        );
        assert_eq!(
            err(&ds("connectionTimeoutSeconds: -1")),
            "config.integration.destinationService.connectionTimeoutSeconds: must be between 1 and 60"
        );
        assert_eq!(
            err(&ds("connectionTimeoutSeconds: '5'")),
            "config.integration.destinationService.connectionTimeoutSeconds: must be a whole number, found a string"
        );
        assert_eq!(
            err(&ds("connectionTimeoutSeconds: 2.5")),
            "config.integration.destinationService.connectionTimeoutSeconds: must be a whole number"
        );
        assert_eq!(
            err(&ds("cacheSeconds: 86401")),
            "config.integration.destinationService.cacheSeconds: must be between 0 and 86400"
        );
        assert_eq!(
            err(&ds("defaultInstanceName: [a]")),
            "config.integration.destinationService.defaultInstanceName: must be a string, found a list"
        );
    }

    #[test]
    fn retry_and_tenant_mode_errors() {
        let with_config = |extra: &str| {
            format!(
                "config:\n{extra}  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials: {{ secretData: {} }}\n",
                b64(&key_json())
            )
        };
        assert_eq!(
            err(&with_config("  http: { retry: { maxRetries: 11 } }\n")),
            "config.http.retry.maxRetries: must be between 0 and 10"
        );
        assert_eq!(
            err(&with_config(
                "  http: { retry: { statusCodes: [503, 99] } }\n"
            )),
            "config.http.retry.statusCodes[1]: must be between 100 and 599"
        );
        assert_eq!(
            err(&with_config("  http: { retry: { statusCodes: 503 } }\n")),
            "config.http.retry.statusCodes: must be a list, found a number"
        );
        assert_eq!(
            err(&with_config("  tenantMode: multi\n")),
            "config.tenantMode: must be 'dedicated' or 'shared', found 'multi'"
        );
        assert_eq!(
            err(&with_config("  integration: []\n").replacen("  integration:\n", "  x:\n", 1)),
            "config.integration: must be a mapping, found a list"
        );
    }

    #[test]
    fn connectivity_proxy_forms() {
        let data = b64(&key_json());
        let with_cp = |cp: &str| {
            format!(
                "config:\n  integration:\n    connectivityProxy: {cp}\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials: {{ secretData: {data} }}\n"
            )
        };
        let cfg = ok(&with_cp(
            "{ host: cp.local, httpPort: 1080, tcpPort: 1081 }",
        ));
        assert_eq!(
            cfg.connectivity_proxy,
            Some(ConnectivityProxy {
                host: "cp.local".into(),
                http_port: 1080,
                tcp_port: 1081,
                connection_timeout: Duration::from_secs(1),
            })
        );
        let cfg = ok(&with_cp("{ serviceName: connectivity-proxy.x }"));
        let cp = cfg.connectivity_proxy.expect("cp");
        assert_eq!((cp.http_port, cp.tcp_port), (20003, 20004));
        // SAP's values with an empty serviceName: no connectivity proxy.
        assert_eq!(
            ok(&with_cp("{ serviceName: '', http: { port: 20003 } }")).connectivity_proxy,
            None
        );
        assert_eq!(
            err(&with_cp("{ host: a, serviceName: b }")),
            "config.integration.connectivityProxy.host: conflicts with serviceName: set one of them"
        );
        assert_eq!(
            err(&with_cp("{ host: a, http: { port: 1 }, httpPort: 2 }")),
            "config.integration.connectivityProxy.httpPort: conflicts with http.port: set one of them"
        );
        assert_eq!(
            err(&with_cp("{ host: a, tcp: { port: 0 } }")),
            "config.integration.connectivityProxy.tcp.port: must be between 1 and 65535"
        );
        assert_eq!(
            err(&with_cp("{ serviceName: 'http://cp:20003' }")),
            "config.integration.connectivityProxy.serviceName: must be a host name such as connectivity-proxy.<namespace>, not a URL"
        );
        assert_eq!(
            err(&with_cp("{ host: a, connectionTimeoutSeconds: 0 }")),
            "config.integration.connectivityProxy.connectionTimeoutSeconds: must be between 1 and 60"
        );
    }

    #[test]
    fn instance_errors() {
        assert_eq!(
            err("config: { integration: { destinationService: {} } }"),
            "config.integration.destinationService.instances: is required: list at least one Destination service instance"
        );
        assert_eq!(
            err(""),
            "config.integration.destinationService.instances: is required: list at least one Destination service instance"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [] } } }"),
            "config.integration.destinationService.instances: must list at least one Destination service instance"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [ { serviceCredentials: {} } ] } } }"),
            "config.integration.destinationService.instances[0].name: is required"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [ { name: ../x } ] } } }"),
            "config.integration.destinationService.instances[0].name: '../x' is not a valid instance name (letters, digits, '.', '_' and '-', not starting with '.')"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [ { name: a, serviceCredentials: { secretName: s, secretKey: k } } ] } } }"),
            "config.integration.destinationService.instances[0].serviceCredentials: needs --secrets-dir or --credentials-dir, or secretData"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [ { name: a, serviceCredentials: { secretName: 5 } } ] } } }"),
            "config.integration.destinationService.instances[0].serviceCredentials.secretName: must be a string, found a number"
        );
        assert_eq!(
            err("config: { integration: { destinationService: { instances: [ { name: a, serviceCredentials: { secretData: 'not base64!' } } ] } } }"),
            "config.integration.destinationService.instances[0].serviceCredentials.secretData: is not valid base64 (it holds the base64-encoded service key JSON)"
        );
        let not_json = STANDARD.encode(format!("{{\"clientsecret\": {SECRET}}}"));
        assert_eq!(
            err(&format!("config: {{ integration: {{ destinationService: {{ instances: [ {{ name: a, serviceCredentials: {{ secretData: {not_json} }} }} ] }} }} }}")),
            "config.integration.destinationService.instances[0].serviceCredentials.secretData: decodes to invalid JSON (line 1, column 18)"
        );
        let mut incomplete = key_json();
        incomplete.as_object_mut().expect("object").remove("uri");
        assert_eq!(
            err(&format!("config: {{ integration: {{ destinationService: {{ instances: [ {{ name: a, serviceCredentials: {{ secretData: {} }} }} ] }} }} }}", b64(&incomplete))),
            "config.integration.destinationService.instances[0].serviceCredentials: service key from secretData has no 'uri' (the Destination service's URL)"
        );
        let mut x509 = key_json();
        x509.as_object_mut()
            .expect("object")
            .insert("credential-type".into(), json!("x509"));
        assert_eq!(
            err(&format!("config: {{ integration: {{ destinationService: {{ instances: [ {{ name: a, serviceCredentials: {{ secretData: {} }} }} ] }} }} }}", b64(&x509))),
            "config.integration.destinationService.instances[0].serviceCredentials: x509 service key from secretData has no 'key' (set serviceCredentials.privateKey)"
        );
        assert_eq!(
            err(&format!("config: {{ integration: {{ destinationService: {{ instances: [ {{ name: a, serviceCredentials: {{ secretData: {}, privateKey: {{ secretName: pk }} }} }} ] }} }} }}", b64(&key_json()))),
            "config.integration.destinationService.instances[0].serviceCredentials.privateKey: needs --secrets-dir"
        );
    }

    #[test]
    fn secret_data_tolerates_line_breaks_and_missing_padding() {
        let data = b64(&key_json());
        let wrapped: String = data
            .as_bytes()
            .chunks(20)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let yaml = format!(
            "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials:\n            secretData: |\n{}\n",
            wrapped
                .lines()
                .map(|l| format!("              {}", l.trim_end_matches('=')))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(ok(&yaml).instances[0].service_key.0, key_json());
    }

    #[test]
    fn not_yaml_names_file_line_and_column() {
        let e = parse(
            "config:\n  a: [1, 2\n  b: 3\n",
            "values.yaml",
            None,
            &CredentialSource::None,
        )
        .expect_err("not yaml");
        assert!(e.path.starts_with("values.yaml:"), "{e}");
        let parts: Vec<&str> = e.path.split(':').collect();
        assert_eq!(parts.len(), 3, "{e}");
        assert!(
            parts[1].parse::<usize>().is_ok() && parts[2].parse::<usize>().is_ok(),
            "{e}"
        );
        assert!(e.message.starts_with("not valid YAML: "), "{e}");
        assert!(!e.message.contains(" at line "), "{e}");

        let e =
            parse("- a\n- b\n", "values.yaml", None, &CredentialSource::None).expect_err("list");
        assert_eq!(
            e.to_string(),
            "values.yaml: must be a YAML mapping (Helm values), found a list"
        );
        let e = parse(
            "a: 1\n---\nb: 2\n",
            "values.yaml",
            None,
            &CredentialSource::None,
        )
        .expect_err("two");
        assert_eq!(
            e.to_string(),
            "values.yaml: must hold one YAML document, found 2"
        );
    }

    #[test]
    fn yaml_anchors_and_merge_keys() {
        let data = b64(&key_json());
        let yaml = format!(
            "creds: &creds {{ secretData: {data} }}\nbase: &base {{ connectionTimeoutSeconds: 9 }}\nconfig:\n  integration:\n    destinationService:\n      <<: *base\n      instances:\n        - name: dest\n          serviceCredentials: *creds\n"
        );
        let cfg = ok(&yaml);
        assert_eq!(cfg.connection_timeout, Duration::from_secs(9));
    }

    #[test]
    fn strip_locations_keeps_the_rest() {
        assert_eq!(
            strip_locations("did not find expected ',' or ']' at line 3 column 3, while parsing a flow sequence at line 2 column 6"),
            "did not find expected ',' or ']', while parsing a flow sequence"
        );
        assert_eq!(strip_locations("at line x"), "at line x");
    }

    #[test]
    fn additional_cas_errors() {
        assert_eq!(
            err(&values("additionalCAs: { pem: 'nope' }\n")),
            "additionalCAs.pem: it holds no PEM certificate"
        );
        assert_eq!(
            err(&values("additionalCAs: { secretName: cas }\n")),
            "additionalCAs.secretKey: is required with secretName"
        );
        assert_eq!(
            err(&values(
                "additionalCAs: { secretName: cas, secretKey: ca.crt }\n"
            )),
            "additionalCAs: needs --secrets-dir or --credentials-dir (or additionalCAs.pem)"
        );
        // With --credentials-dir the PEM is the operator's file beside the service keys.
        let dir = tempfile::tempdir().unwrap();
        let with_cas = values("additionalCAs: { secretName: cas, secretKey: ca.crt }\n");
        let source = CredentialSource::CredentialsDir(dir.path().to_path_buf());
        let missing = err_with(&with_cas, &source);
        assert!(missing.contains(ADDITIONAL_CAS_FILE), "{missing}");
        let pem = "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n";
        fs::write(dir.path().join(ADDITIONAL_CAS_FILE), pem).unwrap();
        let cfg = parse(&with_cas, "values.yaml", None, &source).unwrap();
        assert_eq!(cfg.additional_cas.as_deref(), Some(pem));
        assert_eq!(
            ok(&values(
                "additionalCAs: { secretName: '', secretKey: '' }\n"
            ))
            .additional_cas,
            None
        );
    }

    #[test]
    fn routes_file_forms_and_paths() {
        let base =
            values("destinations:\n  - name: a\n    spec: { destinationRef: { name: A } }\n");
        let run = |routes: &str| {
            parse(
                &base,
                "values.yaml",
                Some(("routes.yaml", routes)),
                &CredentialSource::None,
            )
        };
        let cfg = run("destinations:\n  - name: b\n    spec: { destinationRef: { name: B } }\n")
            .expect("mapping");
        assert_eq!(
            cfg.routes
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );

        let crs = "apiVersion: destination.connectivity.api.sap/v1\nkind: Destination\nmetadata: { name: b, namespace: x }\nspec: { destinationRef: { name: B } }\n---\napiVersion: destination.connectivity.api.sap/v1\nkind: Destination\nmetadata: { name: c }\nspec: { destinationRef: { name: '*' } }\n---\n";
        let cfg = run(crs).expect("resources");
        assert_eq!(cfg.routes.len(), 3);
        assert_eq!(cfg.routes[1].namespace, "x");
        assert!(cfg.routes[2].is_dynamic());

        let list = "apiVersion: v1\nkind: List\nitems:\n  - kind: Destination\n    metadata: { name: b }\n    spec: { destinationRef: { name: B } }\n";
        assert_eq!(run(list).expect("list").routes.len(), 2);
        let seq = "- name: b\n  spec: { destinationRef: { name: B } }\n";
        assert_eq!(run(seq).expect("seq").routes.len(), 2);
        assert_eq!(run("").expect("empty").routes.len(), 1);

        let e = run("destinations:\n  - name: b\n    spec: { destinationRef: { name: '' } }\n")
            .expect_err("empty");
        assert_eq!(
            e.to_string(),
            "routes.yaml: destinations[0].spec.destinationRef.name: must not be empty"
        );
        let e = run("kind: Destination\nmetadata: { name: b }\nspec: { destinationRef: { name: '*' }, fragmentRef: { name: F } }\n").expect_err("frag");
        assert_eq!(
            e.to_string(),
            "routes.yaml: document[0].spec.fragmentRef: not allowed on a dynamic route (\"*\")"
        );
        let e = run("kind: Destination\nmetadata: { name: b }\nspec: { destinationRef: { name: B } }\n---\nkind: Destination\nmetadata: { name: a }\nspec: { destinationRef: { name: B } }\n").expect_err("dup");
        assert_eq!(e.to_string(), "routes.yaml: document[1]: duplicate route 'a' in namespace 'default' (also destinations[0])");
        let e = run("42\n").expect_err("scalar");
        assert_eq!(e.to_string(), "routes.yaml: expected a Destination resource, a List of them, or a mapping with 'destinations', found a number");
        let e = run("a: [\n").expect_err("yaml");
        assert!(e.path.starts_with("routes.yaml:"), "{e}");
    }

    #[test]
    fn fingerprint_tracks_secrets_and_ignores_key_order() {
        let a = ok(&values(""));
        assert_eq!(a.fingerprint(), ok(&values("")).fingerprint());
        let mut reordered = a.clone();
        let obj = reordered.instances[0]
            .service_key
            .0
            .as_object_mut()
            .expect("object");
        let entries: Vec<(String, Value)> = std::mem::take(obj).into_iter().rev().collect();
        obj.extend(entries);
        assert_eq!(a.fingerprint(), reordered.fingerprint());
        let mut changed = a.clone();
        changed.instances[0].service_key.0["clientsecret"] = json!("other");
        assert_ne!(a.fingerprint(), changed.fingerprint());
        let mut route = a.clone();
        route.read_timeout = Duration::from_secs(11);
        assert_ne!(a.fingerprint(), route.fingerprint());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let cfg = ok(&values(""));
        let debug = format!("{cfg:?}");
        assert!(debug.contains("ServiceKeyJson(<redacted>)"), "{debug}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("sb-clone"), "{debug}");
    }

    #[cfg(unix)]
    #[test]
    fn secrets_dir_errors_name_the_instance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = CredentialSource::SecretsDir {
            dir: dir.path().to_path_buf(),
            namespace: "default".into(),
        };
        crate::secrets::write_mounted_secret(
            dir.path(),
            "default",
            "good",
            &[("key", &key_json().to_string())],
        );
        let yaml = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n          serviceCredentials: { secretName: good, secretKey: key }\n        - name: two\n          serviceCredentials: { secretName: x }\n";
        assert_eq!(
            err_with(yaml, &source),
            format!(
                "config.integration.destinationService.instances[1].serviceCredentials: secret 'x' in namespace 'default' not found (looked in {})",
                dir.path().join("default/x").display()
            )
        );
        let yaml = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n          serviceCredentials: { secretKey: key }\n";
        assert_eq!(
            err_with(yaml, &source),
            "config.integration.destinationService.instances[0].serviceCredentials: needs secretName (with secretKey for a single-key secret), or secretData"
        );
        let yaml = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n";
        assert_eq!(
            err_with(yaml, &source),
            "config.integration.destinationService.instances[0].serviceCredentials: is required (secretName, or secretData)"
        );
        // A single-key secret read as multi-key: the hint says what is missing.
        let yaml = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n          serviceCredentials: { secretName: good }\n";
        assert_eq!(
            err_with(yaml, &source),
            "config.integration.destinationService.instances[0].serviceCredentials: service key from secret 'good' in namespace 'default' has no 'clientid' (for a single-key secret, set secretKey)"
        );
        let yaml = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: one\n          serviceCredentials: { secretName: good, secretKey: key, privateKey: { secretName: good } }\n";
        assert_eq!(
            err_with(yaml, &source),
            "config.integration.destinationService.instances[0].serviceCredentials.privateKey: key 'key' of secret 'good' in namespace 'default' holds no PEM private key"
        );
    }
}
