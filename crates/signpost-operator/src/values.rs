//! The operator's configuration file: the same Helm values tree as the proxy's (PROXY.md §4).
//! The operator reads the Secrets it references from the Kubernetes API and resolves them with
//! the proxy's own parser, so that both read the tree alike; the resolved service keys become
//! the proxy's `--credentials-dir` files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use signpost_client::DestinationClient;
use signpost_proxy::config::{self, ConfigError, CredentialSource, ProxyConfig};
use signpost_proxy::secrets::FetchedSecrets;

const INSTANCES: &str = "/config/integration/destinationService/instances";

/// The values file, parsed but not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    tree: Value,
    /// Where it came from, for error paths.
    pub file: String,
}

/// A Secret the values reference.
pub type SecretRef = (String, String);

impl Values {
    /// Parses the YAML text of a values file.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let tree: Value = serde_norway::from_str(text).map_err(|e| ConfigError {
            path: file.to_owned(),
            message: format!("not valid YAML: {e}"),
        })?;
        let tree = match tree {
            Value::Null => Value::Object(Map::new()),
            Value::Object(_) => tree,
            _ => {
                return Err(ConfigError {
                    path: file.to_owned(),
                    message: "must be a YAML mapping (Helm values)".into(),
                })
            }
        };
        Ok(Self {
            tree,
            file: file.to_owned(),
        })
    }

    /// `config.manager.executionIntervalMinutes` (default 3, at least 1).
    pub fn execution_interval(&self) -> Duration {
        let minutes = self
            .tree
            .pointer("/config/manager/executionIntervalMinutes")
            .and_then(Value::as_u64)
            .unwrap_or(3)
            .clamp(1, 24 * 60);
        Duration::from_secs(minutes * 60)
    }

    /// Every Secret the values name (service keys, private keys, additional CAs), with
    /// `namespace` as the default of `secretNamespace`.
    pub fn secret_refs(&self, namespace: &str) -> BTreeSet<SecretRef> {
        let mut refs = BTreeSet::new();
        let mut add = |obj: Option<&Value>| {
            let Some(obj) = obj else { return };
            let text = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            if let Some(name) = text("secretName") {
                let ns = text("secretNamespace").unwrap_or(namespace);
                refs.insert((ns.to_owned(), name.to_owned()));
            }
        };
        for instance in self.instances() {
            let creds = instance.get("serviceCredentials");
            add(creds);
            add(creds.and_then(|c| c.get("privateKey")));
        }
        add(self.tree.get("additionalCAs"));
        refs
    }

    /// The instances with no `serviceCredentials` at all: those the bootstrap fills.
    pub fn instances_without_credentials(&self) -> Vec<String> {
        self.instances()
            .iter()
            .filter(|i| i.get("serviceCredentials").is_none_or(Value::is_null))
            .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    fn instances(&self) -> &[Value] {
        self.tree
            .pointer(INSTANCES)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Resolves the values with `secrets` (fetched from the API) and the service keys the
    /// bootstrap made (`bootstrapped`, by instance name), through the proxy's parser. The
    /// values' own `destinations:` are left out: the operator's routes come from resources.
    pub fn resolve(
        &self,
        secrets: FetchedSecrets,
        namespace: &str,
        bootstrapped: &BTreeMap<String, Value>,
    ) -> Result<ProxyConfig, ConfigError> {
        let mut tree = self.tree.clone();
        if let Some(obj) = tree.as_object_mut() {
            obj.remove("destinations");
        }
        if let Some(list) = tree.pointer_mut(INSTANCES).and_then(Value::as_array_mut) {
            for instance in list.iter_mut() {
                let Some(name) = instance.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let Some(key) = bootstrapped.get(name) else {
                    continue;
                };
                let data = base64::engine::general_purpose::STANDARD.encode(key.to_string());
                instance["serviceCredentials"] = serde_json::json!({ "secretData": data });
            }
        }
        let yaml = serde_norway::to_string(&tree).map_err(|e| ConfigError {
            path: self.file.clone(),
            message: e.to_string(),
        })?;
        config::parse(
            &yaml,
            &self.file,
            None,
            &CredentialSource::Fetched {
                secrets,
                namespace: namespace.to_owned(),
            },
        )
    }
}

/// The resolved configuration: the proxy's view of the values, a client per instance, and the
/// files of the credentials Secret (`<instance>.json`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: ProxyConfig,
    pub clients: HashMap<String, DestinationClient>,
    pub credential_files: BTreeMap<String, String>,
}

impl Resolved {
    pub fn new(config: ProxyConfig, previous: Option<&Resolved>) -> Result<Self, ConfigError> {
        let clients = signpost_proxy::state::instance_clients(
            &config,
            previous.map(|p| (&p.config, &p.clients)),
        )?;
        let mut credential_files: BTreeMap<String, String> = config
            .instances
            .iter()
            .map(|i| (format!("{}.json", i.name), i.service_key.0.to_string()))
            .collect();
        if let Some(pem) = &config.additional_cas {
            credential_files.insert(config::ADDITIONAL_CAS_FILE.to_owned(), pem.clone());
        }
        Ok(Self {
            config,
            clients,
            credential_files,
        })
    }

    /// The instance a resource uses: its `destinationServiceInstanceName`, else the default,
    /// else the only one.
    pub fn instance_for(&self, named: Option<&str>) -> Result<&str, String> {
        let names = || {
            self.config
                .instances
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let chosen = self.config.instance_for(named.filter(|n| !n.is_empty()));
        let configured =
            chosen.and_then(|name| self.config.instances.iter().find(|i| i.name == name));
        match (chosen, configured) {
            (_, Some(instance)) => Ok(instance.name.as_str()),
            (Some(name), None) => Err(format!(
                "Destination service instance '{name}' is not configured (configured: {})",
                names()
            )),
            (None, None) => Err(format!(
                "destinationServiceInstanceName is required: there are several Destination service instances ({}) and no defaultInstanceName",
                names()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signpost_proxy::secrets::SecretData;

    const VALUES: &str = r#"
config:
  manager: { executionIntervalMinutes: 5 }
  integration:
    destinationService:
      defaultInstanceName: one
      instances:
        - name: one
          serviceCredentials: { secretName: key-one, secretKey: key }
        - name: two
          serviceCredentials:
            secretName: key-two
            secretNamespace: other
            privateKey: { secretName: pk, secretInternalKey: pk.pem }
        - name: boot
additionalCAs: { secretName: cas, secretKey: ca.pem }
destinations:
  - name: ignored
    spec: { destinationRef: { name: x } }
"#;

    fn key() -> Value {
        serde_json::json!({"clientid": "c", "clientsecret": "s", "url": "https://uaa.example", "uri": "https://dest.example"})
    }

    #[test]
    fn refs_interval_and_bootstrap_candidates() {
        let v = Values::parse(VALUES, "values.yaml").unwrap();
        assert_eq!(v.execution_interval(), Duration::from_secs(300));
        let refs: Vec<_> = v.secret_refs("ops").into_iter().collect();
        assert_eq!(
            refs,
            vec![
                ("ops".into(), "cas".into()),
                ("ops".into(), "key-one".into()),
                ("ops".into(), "pk".into()),
                ("other".into(), "key-two".into()),
            ]
        );
        assert_eq!(v.instances_without_credentials(), vec!["boot".to_owned()]);
        assert_eq!(
            Values::parse("{}", "v").unwrap().execution_interval(),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn resolves_with_fetched_secrets_and_says_which_is_missing() {
        let v = Values::parse(VALUES, "values.yaml").unwrap();
        let ca = rcgen_free_ca();
        let secrets = |with_pk: bool| {
            let mut list = vec![
                SecretData::new(
                    "ops",
                    "key-one",
                    [("key".into(), key().to_string().into_bytes())],
                ),
                SecretData::new(
                    "other",
                    "key-two",
                    [
                        ("clientid".into(), b"c2".to_vec()),
                        (
                            "certificate".into(),
                            b"-----BEGIN CERTIFICATE-----".to_vec(),
                        ),
                        ("url".into(), b"https://uaa.example".to_vec()),
                        ("certurl".into(), b"https://cert.uaa.example".to_vec()),
                        ("credential-type".into(), b"x509".to_vec()),
                        ("uri".into(), b"https://dest.example".to_vec()),
                    ],
                ),
                SecretData::new("ops", "cas", [("ca.pem".into(), ca.clone().into_bytes())]),
            ];
            if with_pk {
                list.push(SecretData::new(
                    "ops",
                    "pk",
                    [(
                        "pk.pem".into(),
                        b"-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n".to_vec(),
                    )],
                ));
            }
            FetchedSecrets::new(list)
        };
        let boot = BTreeMap::from([("boot".to_owned(), key())]);
        let err = v.resolve(secrets(false), "ops", &boot).unwrap_err();
        assert!(
            err.to_string()
                .contains("secret 'pk' in namespace 'ops' not found"),
            "{err}"
        );
        let cfg = v.resolve(secrets(true), "ops", &boot).unwrap();
        assert!(cfg.routes.is_empty(), "the values' own routes are left out");
        let names: Vec<_> = cfg.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "boot"]);
        assert!(cfg.instances[1].service_key.0["key"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY"));
        assert_eq!(cfg.instances[2].service_key.0["clientid"], "c");
    }

    fn rcgen_free_ca() -> String {
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()
    }
}
