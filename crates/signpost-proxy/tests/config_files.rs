// The configuration read from real files: values files as users bring them (SAP's Helm values),
// and secrets laid out in tempdirs exactly as the kubelet mounts them — the files in a
// `..<timestamp>` directory, a `..data` symlink to it, and one `key -> ..data/key` symlink per key.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use signpost_proxy::config::{
    load, ConnectivityProxy, CredentialSource, Level, ProxyConfig, TenantMode,
};

const SECRET: &str = "clientsecret-3f1b-NEVER-PRINTED";
const PRIVATE_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvPRIVATE-NEVER-PRINTED\n-----END PRIVATE KEY-----\n";

fn service_key() -> Value {
    json!({
        "clientid": "sb-clone123!b1|destination-xsappname!b9",
        "clientsecret": SECRET,
        "uri": "https://destination-configuration.cfapps.eu10.hana.ondemand.com",
        "url": "https://sub.authentication.eu10.hana.ondemand.com",
        "identityzone": "sub",
        "tenantid": "0b1c2d3e-0000-4000-8000-000000000001",
        "xsappname": "clone123!b1|destination-xsappname!b9",
        "uaadomain": "authentication.eu10.hana.ondemand.com",
        "credential-type": "binding-secret",
        "verificationkey": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    })
}

/// Writes one secret as the kubelet mounts it under `<root>/<namespace>/<name>/`.
fn mount_secret(root: &Path, namespace: &str, name: &str, keys: &[(&str, &str)]) {
    let dir = root.join(namespace).join(name);
    let stamp = "..2026_11_29_10_00_00.123";
    fs::create_dir_all(dir.join(stamp)).expect("secret dir");
    for (key, value) in keys {
        fs::write(dir.join(stamp).join(key), value).expect("key file");
        symlink(format!("..data/{key}"), dir.join(key)).expect("key symlink");
    }
    symlink(stamp, dir.join("..data")).expect("..data symlink");
}

/// The kubelet's update: a new timestamped directory, then `..data` swapped to it.
fn update_secret(root: &Path, namespace: &str, name: &str, keys: &[(&str, &str)]) {
    let dir = root.join(namespace).join(name);
    let stamp = "..2026_11_29_10_05_00.456";
    fs::create_dir_all(dir.join(stamp)).expect("secret dir");
    for (key, value) in keys {
        fs::write(dir.join(stamp).join(key), value).expect("key file");
    }
    symlink(stamp, dir.join("..data_tmp")).expect("..data_tmp");
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn secrets_root(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    fn secrets(&self) -> CredentialSource {
        CredentialSource::SecretsDir {
            dir: self.secrets_root(),
            namespace: "sap-transp-proxy-system".into(),
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).expect("write file");
        path
    }

    fn load(&self, values: &str, source: &CredentialSource) -> ProxyConfig {
        let path = self.file("values.yaml", values);
        match load(&path, None, source) {
            Ok(cfg) => cfg,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn load_err(&self, values: &str, source: &CredentialSource) -> String {
        let path = self.file("values.yaml", values);
        match load(&path, None, source) {
            Ok(_) => panic!("expected an error"),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains(SECRET), "secret in error: {text}");
                assert!(!text.contains("NEVER-PRINTED"), "secret in error: {text}");
                text
            }
        }
    }
}

/// Seed 001: SAP's "Destination Service Integration" sample, a single-key secret in another
/// namespace.
#[test]
fn sap_sample_single_key_secret() {
    let s = Setup::new();
    mount_secret(
        &s.secrets_root(),
        "dest-ns",
        "dest-svc-key",
        &[("destination-key", &service_key().to_string())],
    );
    let values = r#"
config:
  integration:
    destinationService:
      ## Name of the default destination service instance to be used when 'destinationServiceInstanceName' is not provided in the Destination Custom Resource spec.
      #defaultInstanceName: dest-service-instance
      connectionTimeoutSeconds: 5
      readTimeoutSeconds: 10
      instances:
          - name: dest-service-instance
            serviceCredentials:
              secretKey: destination-key
              secretName: dest-svc-key
              secretNamespace: dest-ns
"#;
    let cfg = s.load(values, &s.secrets());
    assert_eq!(cfg.instances.len(), 1);
    assert_eq!(cfg.instances[0].name, "dest-service-instance");
    assert_eq!(cfg.instances[0].service_key.0, service_key());
    assert_eq!(cfg.connection_timeout, Duration::from_secs(5));
    assert_eq!(cfg.read_timeout, Duration::from_secs(10));
    assert_eq!(cfg.default_instance, None);
}

/// A binding secret as the SAP BTP service operator writes it: one key per credential field, the
/// instance keys, and `.metadata` (PROXY.md §5). No secretNamespace: the proxy's own namespace.
#[test]
fn multi_key_secret_with_metadata() {
    let s = Setup::new();
    let metadata = json!({
        "metaDataProperties": [
            {"name": "instance_name", "format": "text"},
            {"name": "instance_guid", "format": "text"},
            {"name": "plan", "format": "text"},
            {"name": "label", "format": "text"},
            {"name": "type", "format": "text"},
            {"name": "tags", "format": "json"},
        ],
        "credentialProperties": [
            {"name": "clientid", "format": "text"},
            {"name": "clientsecret", "format": "text"},
            {"name": "uri", "format": "text"},
            {"name": "url", "format": "text"},
            {"name": "identityzone", "format": "text"},
            {"name": "tenantid", "format": "text"},
            {"name": "xsappname", "format": "text"},
            {"name": "uaadomain", "format": "text"},
            {"name": "credential-type", "format": "text"},
            {"name": "verificationkey", "format": "text"},
            {"name": "uaa", "format": "json"},
        ],
    })
    .to_string();
    let key = service_key();
    let text = |k: &str| key[k].as_str().expect("string").to_owned();
    let uaa = json!({"clientid": "uaa-client", "url": "https://uaa"}).to_string();
    let fields: Vec<(String, String)> = [
        "clientid",
        "clientsecret",
        "uri",
        "url",
        "identityzone",
        "tenantid",
        "xsappname",
        "uaadomain",
        "credential-type",
        "verificationkey",
    ]
    .iter()
    .map(|k| (k.to_string(), text(k)))
    .chain([
        (".metadata".into(), metadata),
        ("uaa".into(), uaa),
        ("instance_name".into(), "dest".into()),
        ("instance_guid".into(), "5f1e".into()),
        ("plan".into(), "lite".into()),
        ("label".into(), "destination".into()),
        ("type".into(), "destination".into()),
        ("tags".into(), r#"["destination","conn","connsvc"]"#.into()),
    ])
    .collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "dest-binding",
        &fields,
    );
    let cfg = s.load(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials:\n            secretName: dest-binding\n",
        &s.secrets(),
    );
    let mut expected = service_key();
    expected["uaa"] = json!({"clientid": "uaa-client", "url": "https://uaa"});
    assert_eq!(cfg.instances[0].service_key.0, expected);
}

#[test]
fn multi_key_secret_without_metadata() {
    let s = Setup::new();
    mount_secret(
        &s.secrets_root(),
        "apps",
        "hand-made",
        &[
            ("clientid", "c"),
            ("clientsecret", SECRET),
            ("uri", "https://d"),
            ("url", "https://a"),
            ("uaa", r#"{"url":"https://uaa"}"#),
            ("verify_timeout", "30"),
            ("instance_name", "i"),
            ("plan", "lite"),
            ("tags", r#"["x"]"#),
        ],
    );
    let cfg = s.load(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials: { secretName: hand-made, secretNamespace: apps }\n",
        &s.secrets(),
    );
    assert_eq!(
        cfg.instances[0].service_key.0,
        json!({
            "clientid": "c",
            "clientsecret": SECRET,
            "uaa": {"url": "https://uaa"},
            "uri": "https://d",
            "url": "https://a",
            "verify_timeout": "30",
        })
    );
}

#[test]
fn secret_data_needs_no_secrets_dir() {
    let s = Setup::new();
    let values = format!(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n          serviceCredentials:\n            secretData: {}\n",
        STANDARD.encode(service_key().to_string())
    );
    for source in [
        CredentialSource::None,
        s.secrets(),
        CredentialSource::CredentialsDir(s.dir.path().join("nowhere")),
    ] {
        let cfg = s.load(&values, &source);
        assert_eq!(cfg.instances[0].service_key.0, service_key(), "{source:?}");
    }
}

/// SAP's x509 sample: `kubectl create secret generic x509-svc-key-private-key --from-file=pk.pem`.
#[test]
fn private_key_is_merged_into_the_service_key() {
    let s = Setup::new();
    let x509 = json!({
        "clientid": "sb-x509",
        "credential-type": "x509",
        "certificate": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
        "certurl": "https://sub.authentication.cert.eu10.hana.ondemand.com",
        "uri": "https://destination-configuration.cfapps.eu10.hana.ondemand.com",
    });
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "x509-key",
        &[("key.json", &x509.to_string())],
    );
    mount_secret(
        &s.secrets_root(),
        "keys",
        "x509-svc-key-private-key",
        &[("pk.pem", PRIVATE_KEY)],
    );
    let cfg = s.load(
        r#"
config:
  integration:
    destinationService:
      instances:
        - name: x509
          serviceCredentials:
            secretName: x509-key
            secretKey: key.json
            privateKey:
              secretName: x509-svc-key-private-key
              secretInternalKey: pk.pem
              secretNamespace: keys
"#,
        &s.secrets(),
    );
    let mut expected = x509.clone();
    expected["key"] = json!(PRIVATE_KEY);
    assert_eq!(cfg.instances[0].service_key.0, expected);
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("NEVER-PRINTED"), "{debug}");

    // secretInternalKey defaults to "key".
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "pk-default",
        &[("key", PRIVATE_KEY)],
    );
    let cfg = s.load(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: x509\n          serviceCredentials: { secretName: x509-key, secretKey: key.json, privateKey: { secretName: pk-default } }\n",
        &s.secrets(),
    );
    assert_eq!(cfg.instances[0].service_key.0["key"], json!(PRIVATE_KEY));

    // Missing: the error names the privateKey block.
    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: x509\n          serviceCredentials: { secretName: x509-key, secretKey: key.json, privateKey: { secretName: x509-svc-key-private-key, secretInternalKey: other.pem, secretNamespace: keys } }\n",
        &s.secrets(),
    );
    assert_eq!(
        e,
        format!(
            "config.integration.destinationService.instances[0].serviceCredentials.privateKey: secret 'x509-svc-key-private-key' in namespace 'keys' has no key 'other.pem' (looked in {})",
            s.secrets_root()
                .join("keys/x509-svc-key-private-key/other.pem")
                .display()
        )
    );
}

#[test]
fn credentials_dir_holds_ready_made_keys() {
    let s = Setup::new();
    let creds = s.dir.path().join("creds");
    fs::create_dir(&creds).expect("creds dir");
    fs::write(creds.join("dest.json"), service_key().to_string()).expect("dest.json");
    let other = json!({"clientid": "o", "uri": "https://o", "url": "https://ou"});
    let values = format!(
        r#"
config:
  integration:
    destinationService:
      defaultInstanceName: dest
      instances:
        - name: dest
          serviceCredentials:        # ignored with --credentials-dir
            secretName: dest-svc-key
            secretKey: key
            privateKey: {{ secretName: ignored-too }}
        - name: inline
          serviceCredentials:
            secretData: {}           # secretData still wins
"#,
        STANDARD.encode(other.to_string())
    );
    let source = CredentialSource::CredentialsDir(creds.clone());
    let cfg = s.load(&values, &source);
    assert_eq!(cfg.instances[0].service_key.0, service_key());
    assert_eq!(cfg.instances[1].service_key.0, other);

    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: dest\n        - name: missing\n",
        &source,
    );
    assert_eq!(
        e,
        format!(
            "config.integration.destinationService.instances[1].serviceCredentials: credentials file {} not found",
            creds.join("missing.json").display()
        )
    );
    fs::write(
        creds.join("bad.json"),
        format!("{{\"clientsecret\": {SECRET}"),
    )
    .expect("bad");
    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: bad\n",
        &source,
    );
    assert_eq!(
        e,
        format!(
            "config.integration.destinationService.instances[0].serviceCredentials: credentials file {} is not valid JSON (line 1, column 18)",
            creds.join("bad.json").display()
        )
    );
}

/// PROXY.md §4's whole tree, with the chart's deployment and security keys, an additionalCAs
/// secret and a connectivity proxy, plus a routes file of Destination resources.
#[test]
fn full_values_tree_and_routes_file() {
    let s = Setup::new();
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "destination-service-key",
        &[("key", &service_key().to_string())],
    );
    mount_secret(
        &s.secrets_root(),
        "certs",
        "corporate-cas",
        &[(
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\nMIIBcorp\n-----END CERTIFICATE-----\n",
        )],
    );
    let values = r#"
config:
  tenantMode: dedicated
  managedNamespacesMode: all
  manager: { executionIntervalMinutes: 3 }
  logging: { level: info }
  metrics: { prometheus: { enabled: false } }
  http: { retry: { maxRetries: 3, statusCodes: [502, 503, 504] } }
  helm: { skipExistingResourceValidation: false }
  security:
    accessControl: { destinations: { defaultScope: namespaced } }
    communication:
      internal:
        encryptionEnabled: true
        certManager:
          issuerRef: { kind: Issuer, name: tp-issuer }
          certificate: { privateKey: {algorithm: ECDSA, encoding: PKCS8, size: 256}, duration: 720h, renewBefore: 240h }
  integration:
    destinationService:
      defaultInstanceName: dest-service-instance
      connectionTimeoutSeconds: 5
      readTimeoutSeconds: 10
      instances:
        - name: dest-service-instance
          serviceCredentials:
            secretName: destination-service-key
            secretKey: key
          associateWith: { connectivityProxy: { locallyConfiguredRegionId: eu10 } }
    connectivityProxy:
      serviceName: connectivity-proxy.conn-proxy
      connectionTimeoutSeconds: 1
      http: { port: 20003 }
      tcp:  { port: 20004 }
    serviceMesh: { istio: { istio-injection: enabled } }
    ztis: { socketPath: /run/spire/agent-sockets/spire-agent.sock }
additionalCAs: { secretName: corporate-cas, secretKey: ca.crt, secretNamespace: certs }
compliance: { fipsModeEnabled: false }
deployment:
  image: { registry: docker.io, repository: sapse, tag: 1.9.9, pullPolicy: IfNotPresent, pullSecret: regcred }
  replicas: { http: 1, tcp: 1 }
  resources: { http: {request: {cpu: 0.2, memory: 256M}, limits: {cpu: 0.4, memory: 512M}},
               tcp:  {request: {cpu: 0.05, memory: 32M}, limits: {cpu: 0.1, memory: 64M}} }
  autoscaling:
    http:
      horizontal: { enabled: true, maxReplicaCount: 2, metrics: { cpuAverageUtilization: 80, memoryAverageUtilization: 80 } }
      vertical: { enabled: false, updateMode: "Off", minAllowed: { cpu: 0.1 }, maxAllowed: { cpu: 1 } }
    tcp:
      horizontal: { enabled: false }
  priority: { value: 2000000 }
destinations:
  - name: s4-backend
    namespace: apps
    spec:
      destinationRef: { name: S4_BACKEND }
"#;
    let routes = r#"
apiVersion: destination.connectivity.api.sap/v1
kind: Destination
metadata:
  name: destination-gateway
  namespace: apps
spec:
  destinationRef:
    name: "*"
---
apiVersion: destination.connectivity.api.sap/v1
kind: Destination
metadata:
  name: s4-provider
  namespace: apps
spec:
  destinationRef: { name: S4, level: provider_instance }
  fragmentRef: { name: S4_FRAGMENT, optional: true }
  service: { port: 8080 }
"#;
    let values_path = s.file("values.yaml", values);
    let routes_path = s.file("routes.yaml", routes);
    let cfg = match load(&values_path, Some(&routes_path), &s.secrets()) {
        Ok(cfg) => cfg,
        Err(e) => panic!("unexpected error: {e}"),
    };
    assert_eq!(cfg.tenant_mode, TenantMode::Dedicated);
    assert_eq!(cfg.retry.max_retries, 3);
    assert_eq!(cfg.retry.status_codes, [502, 503, 504]);
    assert_eq!(cfg.cache_ttl, Duration::from_secs(120));
    assert_eq!(
        cfg.connectivity_proxy,
        Some(ConnectivityProxy {
            host: "connectivity-proxy.conn-proxy".into(),
            http_port: 20003,
            tcp_port: 20004,
            connection_timeout: Duration::from_secs(1),
        })
    );
    assert!(cfg
        .additional_cas
        .as_deref()
        .is_some_and(|pem| pem.contains("MIIBcorp")));
    let names: Vec<(&str, &str)> = cfg
        .routes
        .iter()
        .map(|r| (r.namespace.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("apps", "s4-backend"),
            ("apps", "destination-gateway"),
            ("apps", "s4-provider")
        ]
    );
    assert!(cfg.routes[1].is_dynamic());
    let provider = &cfg.routes[2];
    assert_eq!(
        provider.spec.destination_ref.level,
        Some(Level::ProviderInstance)
    );
    assert_eq!(provider.instance_name(&cfg), Some("dest-service-instance"));

    // An error in the routes file names the file.
    let routes_path = s.file(
        "bad-routes.yaml",
        "destinations:\n  - name: x\n    spec: { destinationRef: { name: '*' }, fragmentRef: { name: F } }\n",
    );
    let e = load(&values_path, Some(&routes_path), &s.secrets()).expect_err("bad routes");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: destinations[0].spec.fragmentRef: not allowed on a dynamic route (\"*\")",
            routes_path.display()
        )
    );
}

#[test]
fn missing_secret_names_the_instance() {
    let s = Setup::new();
    mount_secret(
        &s.secrets_root(),
        "default",
        "present",
        &[("key", &service_key().to_string())],
    );
    let source = CredentialSource::SecretsDir {
        dir: s.secrets_root(),
        namespace: "default".into(),
    };
    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      defaultInstanceName: a\n      instances:\n        - name: a\n          serviceCredentials: { secretName: present, secretKey: key }\n        - name: b\n          serviceCredentials: { secretName: x }\n",
        &source,
    );
    assert_eq!(
        e,
        format!(
            "config.integration.destinationService.instances[1].serviceCredentials: secret 'x' in namespace 'default' not found (looked in {})",
            s.secrets_root().join("default/x").display()
        )
    );
    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: a\n          serviceCredentials: { secretName: present, secretKey: other }\n",
        &source,
    );
    assert_eq!(
        e,
        format!(
            "config.integration.destinationService.instances[0].serviceCredentials: secret 'present' in namespace 'default' has no key 'other' (looked in {})",
            s.secrets_root().join("default/present/other").display()
        )
    );
}

#[test]
fn secret_values_stay_out_of_errors() {
    let s = Setup::new();
    // Malformed JSON right after the secret: serde_json's message would quote nothing, and ours
    // names the key only.
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "broken",
        &[("key", &format!("{{\"clientsecret\": \"{SECRET}\" oops}}"))],
    );
    let e = s.load_err(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: a\n          serviceCredentials: { secretName: broken, secretKey: key }\n",
        &s.secrets(),
    );
    assert!(e.starts_with("config.integration.destinationService.instances[0].serviceCredentials: key 'key' of secret 'broken' in namespace 'sap-transp-proxy-system' is not valid JSON (line 1, column "), "{e}");

    // A service key without clientid: the message names the field, not the content.
    let mut partial = service_key();
    partial.as_object_mut().expect("object").remove("clientid");
    let values = format!(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: a\n          serviceCredentials: {{ secretData: {} }}\n",
        STANDARD.encode(partial.to_string())
    );
    let e = s.load_err(&values, &CredentialSource::None);
    assert_eq!(
        e,
        "config.integration.destinationService.instances[0].serviceCredentials: service key from secretData has no 'clientid'"
    );
}

#[test]
fn not_yaml_and_missing_files() {
    let s = Setup::new();
    let path = s.file(
        "values.yaml",
        "config:\n  integration: {\n    destinationService: [\n",
    );
    let e = load(&path, None, &CredentialSource::None).expect_err("not yaml");
    let prefix = format!("{}:", path.display());
    assert!(e.path.starts_with(&prefix), "{e}");
    let location: Vec<&str> = e.path[prefix.len()..].split(':').collect();
    assert_eq!(location.len(), 2, "{e}");
    assert!(location.iter().all(|n| n.parse::<u32>().is_ok()), "{e}");
    assert!(e.message.starts_with("not valid YAML: "), "{e}");

    let missing = s.dir.path().join("nope.yaml");
    let e = load(&missing, None, &CredentialSource::None).expect_err("missing");
    assert_eq!(e.path, missing.display().to_string());
    assert!(e.message.starts_with("cannot read: "), "{e}");
}

/// The kubelet swaps `..data` when a secret changes: the next load sees the new key, and the
/// fingerprint tells the two apart.
#[test]
fn fingerprint_follows_secret_rotation() {
    let s = Setup::new();
    mount_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "rotating",
        &[("key", &service_key().to_string())],
    );
    let values = "config:\n  integration:\n    destinationService:\n      instances:\n        - name: a\n          serviceCredentials: { secretName: rotating, secretKey: key }\n";
    let before = s.load(values, &s.secrets());
    assert_eq!(
        before.fingerprint(),
        s.load(values, &s.secrets()).fingerprint()
    );
    let mut rotated = service_key();
    rotated["clientsecret"] = json!("rotated-secret");
    update_secret(
        &s.secrets_root(),
        "sap-transp-proxy-system",
        "rotating",
        &[("key", &rotated.to_string())],
    );
    let after = s.load(values, &s.secrets());
    assert_eq!(after.instances[0].service_key.0, rotated);
    assert_ne!(before.fingerprint(), after.fingerprint());
}
