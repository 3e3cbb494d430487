//! Kubernetes secrets as the kubelet mounts them: one directory per secret,
//! `<root>/<namespace>/<secret name>/`, one file per key.
//!
//! A mounted secret directory looks like this (the kubelet's atomic writer):
//!
//! ```text
//! ..2026_11_29_10_00_00.123/clientid     the real files, in a timestamped directory
//! ..data -> ..2026_11_29_10_00_00.123    swapped atomically on every update
//! clientid -> ..data/clientid            one symlink per key
//! ```
//!
//! Names starting with `..` are the writer's own and never keys; other hidden names are skipped too,
//! except `.metadata`, the key in which the SAP BTP service operator describes the other keys
//! (PROXY.md §5).
//!
//! Service keys come in two shapes:
//! - **single-key**: one key holds the whole service-key JSON ([`SecretsDir::read_json_key`]);
//! - **multi-key**: one key per credential field, as the SAP BTP service operator writes them
//!   ([`SecretsDir::read_credentials`], [`rebuild_credentials`]).
//!
//! No error here ever carries a secret's value: only secret names, key names and paths.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The key in which the SAP BTP service operator describes the secret's other keys.
pub const METADATA_KEY: &str = ".metadata";

/// Keys the SAP BTP service operator adds about the service instance; never credentials.
pub const INSTANCE_INFO_KEYS: [&str; 6] = [
    "instance_name",
    "instance_guid",
    "plan",
    "label",
    "type",
    "tags",
];

/// Why a secret could not be read. Carries names and paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("'{value}' is not a valid Kubernetes {what}")]
    InvalidName { what: &'static str, value: String },
    #[error("secret '{name}' in namespace '{namespace}' not found (looked in {})", path.display())]
    NotFound {
        namespace: String,
        name: String,
        path: PathBuf,
    },
    #[error(
        "secret '{name}' in namespace '{namespace}' has no key '{key}' (looked in {})",
        path.display()
    )]
    KeyNotFound {
        namespace: String,
        name: String,
        key: String,
        path: PathBuf,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("key '{key}' of secret '{name}' in namespace '{namespace}' is not UTF-8 text")]
    NotUtf8 {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "key '{key}' of secret '{name}' in namespace '{namespace}' is not valid JSON (line {line}, column {column})"
    )]
    NotJson {
        namespace: String,
        name: String,
        key: String,
        line: usize,
        column: usize,
    },
    #[error(
        "key '{key}' of secret '{name}' in namespace '{namespace}' must hold a JSON object, found {found}"
    )]
    NotObject {
        namespace: String,
        name: String,
        key: String,
        found: &'static str,
    },
    #[error("key '.metadata' of secret '{name}' in namespace '{namespace}' is invalid: {reason}")]
    BadMetadata {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(
        "secret '{name}' in namespace '{namespace}': '.metadata' lists key '{key}', which the secret does not have"
    )]
    MetadataKeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("secret '{name}' in namespace '{namespace}' has no keys")]
    Empty { namespace: String, name: String },
    #[error("secret '{name}' in namespace '{namespace}' not found")]
    Missing { namespace: String, name: String },
    #[error("secret '{name}' in namespace '{namespace}' has no key '{key}'")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
}

/// All keys of one secret. `Debug` shows the key names only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretData {
    namespace: String,
    name: String,
    keys: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretData {
    /// A secret built in memory (tests, or secrets that came from elsewhere).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        keys: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            keys: keys.into_iter().collect(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key names, sorted.
    pub fn key_names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The raw bytes of one key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.keys.get(key).map(Vec::as_slice)
    }

    /// One key as UTF-8 text; `Ok(None)` when the secret has no such key.
    pub fn text(&self, key: &str) -> Result<Option<&str>, SecretError> {
        match self.keys.get(key) {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| SecretError::NotUtf8 {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    key: key.to_owned(),
                }),
        }
    }

    fn json(&self, key: &str, text: &str) -> Result<Value, SecretError> {
        serde_json::from_str(text).map_err(|e| SecretError::NotJson {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            key: key.to_owned(),
            line: e.line(),
            column: e.column(),
        })
    }
}

/// A directory of mounted secrets: `<root>/<namespace>/<secret name>/<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsDir {
    root: PathBuf,
}

impl SecretsDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one secret, after checking that both names are valid Kubernetes names
    /// (so that no name can reach outside the root).
    pub fn secret_dir(&self, namespace: &str, name: &str) -> Result<PathBuf, SecretError> {
        check_namespace(namespace)?;
        check_secret_name(name)?;
        Ok(self.root.join(namespace).join(name))
    }

    /// One key of a secret, as text.
    fn read_key_file(&self, namespace: &str, name: &str, key: &str) -> Result<String, SecretError> {
        check_key(key)?;
        let dir = self.existing_secret_dir(namespace, name)?;
        let path = dir.join(key);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SecretError::KeyNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: key.to_owned(),
                    path,
                })
            }
            Err(source) => return Err(SecretError::Io { path, source }),
        };
        String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Every key of a secret: the regular files (or symlinks to regular files) at the top of its
    /// directory, without the kubelet's `..` entries and hidden names other than `.metadata`.
    fn read_all_files(&self, namespace: &str, name: &str) -> Result<SecretData, SecretError> {
        let dir = self.existing_secret_dir(namespace, name)?;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SecretError::Io { path, source }
        };
        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not a key name Kubernetes allows
            };
            if file_name.starts_with("..")
                || (file_name.starts_with('.') && file_name != METADATA_KEY)
            {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_err(&path))?;
            let is_file = if file_type.is_symlink() {
                // Follow it; a dangling link is an error (a half-written secret), a link to a
                // directory is not a key.
                fs::metadata(&path).map_err(io_err(&path))?.is_file()
            } else {
                file_type.is_file()
            };
            if !is_file {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            keys.insert(file_name, bytes);
        }
        Ok(SecretData::new(namespace, name, keys))
    }

    fn existing_secret_dir(&self, namespace: &str, name: &str) -> Result<PathBuf, SecretError> {
        let dir = self.secret_dir(namespace, name)?;
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(dir),
            Ok(_) => Err(SecretError::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                path: dir,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SecretError::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                path: dir,
            }),
            Err(source) => Err(SecretError::Io { path: dir, source }),
        }
    }
}

/// Where the proxy's configuration reads secrets: the files of mounted secrets
/// ([`SecretsDir`]), or secrets the operator fetched from the Kubernetes API
/// ([`FetchedSecrets`]).
pub trait SecretReader {
    /// One key of a secret, as text.
    fn read_key(&self, namespace: &str, name: &str, key: &str) -> Result<String, SecretError>;

    /// Every key of a secret.
    fn read_all(&self, namespace: &str, name: &str) -> Result<SecretData, SecretError>;

    /// One key of a secret holding a JSON object: a single-key service-key secret.
    fn read_json_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Map<String, Value>, SecretError> {
        let text = self.read_key(namespace, name, key)?;
        let data = SecretData::new(namespace, name, []);
        match data.json(key, &text)? {
            Value::Object(map) => Ok(map),
            other => Err(SecretError::NotObject {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
                found: json_type(&other),
            }),
        }
    }

    /// A multi-key service-key secret, rebuilt into the service-key JSON object
    /// (see [`rebuild_credentials`]).
    fn read_credentials(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Map<String, Value>, SecretError> {
        rebuild_credentials(&self.read_all(namespace, name)?)
    }
}

impl SecretReader for SecretsDir {
    fn read_key(&self, namespace: &str, name: &str, key: &str) -> Result<String, SecretError> {
        self.read_key_file(namespace, name, key)
    }

    fn read_all(&self, namespace: &str, name: &str) -> Result<SecretData, SecretError> {
        self.read_all_files(namespace, name)
    }
}

/// Secrets held in memory, by namespace and name: what the operator read from the Kubernetes
/// API. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FetchedSecrets(Arc<BTreeMap<(String, String), SecretData>>);

impl FetchedSecrets {
    pub fn new(secrets: impl IntoIterator<Item = SecretData>) -> Self {
        Self(Arc::new(
            secrets
                .into_iter()
                .map(|s| ((s.namespace.clone(), s.name.clone()), s))
                .collect(),
        ))
    }

    fn get(&self, namespace: &str, name: &str) -> Result<&SecretData, SecretError> {
        self.0
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| SecretError::Missing {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }
}

impl fmt::Debug for FetchedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.values()).finish()
    }
}

impl SecretReader for FetchedSecrets {
    fn read_key(&self, namespace: &str, name: &str, key: &str) -> Result<String, SecretError> {
        let secret = self.get(namespace, name)?;
        secret
            .text(key)?
            .map(str::to_owned)
            .ok_or_else(|| SecretError::MissingKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
            })
    }

    fn read_all(&self, namespace: &str, name: &str) -> Result<SecretData, SecretError> {
        self.get(namespace, name).cloned()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    credential_properties: Vec<MetadataProperty>,
    // metaDataProperties name instance information only: never part of the service key.
}

#[derive(Debug, Deserialize)]
struct MetadataProperty {
    name: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    container: bool,
}

/// Rebuilds a service-key JSON object from a multi-key secret.
///
/// With a `.metadata` key (the SAP BTP service operator's), only its `credentialProperties` are
/// taken: format `text` → string, `json` → parsed JSON, `unknown` → JSON when it parses, else string;
/// `container: true` → the value is a whole JSON object whose fields are merged in (what the
/// operator writes for bindings with `secretKey`). The instance keys (`metaDataProperties`) are
/// left out.
///
/// Without `.metadata`, every key is taken as a string, except values that parse as a JSON object
/// or array (such as `uaa`), and except the instance keys in [`INSTANCE_INFO_KEYS`].
pub fn rebuild_credentials(secret: &SecretData) -> Result<Map<String, Value>, SecretError> {
    if secret.keys.is_empty() {
        return Err(SecretError::Empty {
            namespace: secret.namespace.clone(),
            name: secret.name.clone(),
        });
    }
    match secret.text(METADATA_KEY)? {
        Some(metadata) => rebuild_with_metadata(secret, metadata),
        None => rebuild_without_metadata(secret),
    }
}

fn rebuild_with_metadata(
    secret: &SecretData,
    metadata: &str,
) -> Result<Map<String, Value>, SecretError> {
    let bad = |reason: String| SecretError::BadMetadata {
        namespace: secret.namespace.clone(),
        name: secret.name.clone(),
        reason,
    };
    let metadata: Metadata = serde_json::from_str(metadata).map_err(|e| bad(e.to_string()))?;
    let mut out = Map::new();
    for property in &metadata.credential_properties {
        let key = property.name.as_str();
        if key.is_empty() || key == METADATA_KEY {
            return Err(bad(format!("credential property named '{key}'")));
        }
        let text = secret
            .text(key)?
            .ok_or_else(|| SecretError::MetadataKeyMissing {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
                key: key.to_owned(),
            })?;
        let format = property.format.as_deref().unwrap_or("text");
        let value = match format {
            "text" if !property.container => Value::String(text.to_owned()),
            "json" => secret.json(key, text)?,
            "text" | "unknown" => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(_) if !property.container => Value::String(text.to_owned()),
                Err(_) => secret.json(key, text)?,
            },
            other => {
                return Err(bad(format!(
                    "credential property '{key}' has unknown format '{other}'"
                )))
            }
        };
        if property.container {
            match value {
                Value::Object(fields) => out.extend(fields),
                other => {
                    return Err(SecretError::NotObject {
                        namespace: secret.namespace.clone(),
                        name: secret.name.clone(),
                        key: key.to_owned(),
                        found: json_type(&other),
                    })
                }
            }
        } else {
            out.insert(key.to_owned(), value);
        }
    }
    Ok(out)
}

fn rebuild_without_metadata(secret: &SecretData) -> Result<Map<String, Value>, SecretError> {
    let mut out = Map::new();
    for key in secret.keys.keys() {
        if INSTANCE_INFO_KEYS.contains(&key.as_str()) {
            continue;
        }
        let Some(text) = secret.text(key)? else {
            continue;
        };
        let value = match serde_json::from_str::<Value>(text) {
            Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
            _ => Value::String(text.to_owned()),
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// "a string", "an object", … for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A DNS-1123 label: 1..63 lowercase letters, digits and `-`, not at either end.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 label: what Kubernetes allows as a namespace name.
pub fn check_namespace(namespace: &str) -> Result<(), SecretError> {
    if is_dns_label(namespace) {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            what: "namespace name",
            value: namespace.to_owned(),
        })
    }
}

/// A DNS-1123 subdomain: what Kubernetes allows as a secret name.
pub fn check_secret_name(name: &str) -> Result<(), SecretError> {
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label) {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            what: "secret name",
            value: name.to_owned(),
        })
    }
}

/// What Kubernetes allows as a secret key: `[-._a-zA-Z0-9]+`, not `.`/`..`, not starting `..`.
pub fn check_key(key: &str) -> Result<(), SecretError> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && !key.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            what: "secret key",
            value: key.to_owned(),
        })
    }
}

/// Test helper: lays a secret out under `root/<namespace>/<name>/` as the kubelet does — the files
/// in a `..<timestamp>` directory, a `..data` symlink to it, and one `key -> ..data/key` symlink
/// per key.
#[cfg(all(test, unix))]
pub(crate) fn write_mounted_secret(
    root: &Path,
    namespace: &str,
    name: &str,
    keys: &[(&str, &str)],
) {
    use std::os::unix::fs::symlink;
    let dir = root.join(namespace).join(name);
    let stamp = "..2026_11_29_10_00_00.123";
    fs::create_dir_all(dir.join(stamp)).expect("create secret dir");
    for (key, value) in keys {
        fs::write(dir.join(stamp).join(key), value).expect("write key");
        symlink(format!("..data/{key}"), dir.join(key)).expect("key symlink");
    }
    symlink(stamp, dir.join("..data")).expect("..data symlink");
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serde_json::json;

    const METADATA: &str = r#"{"metaDataProperties":[{"name":"instance_name","format":"text"},{"name":"instance_guid","format":"text"},{"name":"plan","format":"text"},{"name":"label","format":"text"},{"name":"type","format":"text"},{"name":"tags","format":"json"}],"credentialProperties":[{"name":"clientid","format":"text"},{"name":"clientsecret","format":"text"},{"name":"uri","format":"text"},{"name":"url","format":"text"},{"name":"uaa","format":"json"},{"name":"verify_timeout","format":"json"}]}"#;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn single_key_through_kubelet_symlinks() {
        let dir = tmp();
        write_mounted_secret(
            dir.path(),
            "default",
            "dest-key",
            &[("key", r#"{"clientid":"c","uri":"https://d"}"#)],
        );
        let secrets = SecretsDir::new(dir.path());
        let map = secrets
            .read_json_key("default", "dest-key", "key")
            .expect("read");
        assert_eq!(
            Value::Object(map),
            json!({"clientid":"c","uri":"https://d"})
        );
    }

    #[test]
    fn missing_secret_and_key_name_the_place() {
        let dir = tmp();
        write_mounted_secret(dir.path(), "ns", "s", &[("a", "x")]);
        let secrets = SecretsDir::new(dir.path());
        let err = secrets.read_key("ns", "other", "a").expect_err("error");
        assert_eq!(
            err.to_string(),
            format!(
                "secret 'other' in namespace 'ns' not found (looked in {})",
                dir.path().join("ns/other").display()
            )
        );
        let err = secrets.read_key("ns", "s", "b").expect_err("error");
        assert_eq!(
            err.to_string(),
            format!(
                "secret 's' in namespace 'ns' has no key 'b' (looked in {})",
                dir.path().join("ns/s/b").display()
            )
        );
    }

    #[test]
    fn names_cannot_escape_the_root() {
        let secrets = SecretsDir::new("/nonexistent");
        for (ns, name, key) in [
            ("..", "s", "k"),
            ("ns", "../x", "k"),
            ("ns", "s", "../k"),
            ("ns", "s", "a/b"),
            ("ns", "S", "k"),
            ("ns", "s", ".."),
        ] {
            let err = secrets.read_key(ns, name, key).expect_err("error");
            assert!(
                matches!(err, SecretError::InvalidName { .. }),
                "{ns}/{name}/{key}: {err}"
            );
        }
    }

    #[test]
    fn multi_key_with_metadata() {
        let dir = tmp();
        write_mounted_secret(
            dir.path(),
            "default",
            "dest-binding",
            &[
                (".metadata", METADATA),
                ("clientid", "sb-clone"),
                ("clientsecret", "s3cr3t"),
                ("uri", "https://destination.example"),
                ("url", "https://sub.authentication.example"),
                ("uaa", r#"{"clientid":"sb-clone","url":"https://uaa"}"#),
                ("verify_timeout", "30"),
                ("instance_name", "dest"),
                ("instance_guid", "1234"),
                ("plan", "lite"),
                ("label", "destination"),
                ("type", "destination"),
                ("tags", r#"["destination","conn"]"#),
                ("extra", "not listed"),
            ],
        );
        let secrets = SecretsDir::new(dir.path());
        let map = secrets
            .read_credentials("default", "dest-binding")
            .expect("read");
        assert_eq!(
            Value::Object(map),
            json!({
                "clientid": "sb-clone",
                "clientsecret": "s3cr3t",
                "uri": "https://destination.example",
                "url": "https://sub.authentication.example",
                "uaa": {"clientid":"sb-clone","url":"https://uaa"},
                "verify_timeout": 30,
            })
        );
    }

    #[test]
    fn metadata_text_stays_a_string_even_when_it_looks_like_json() {
        let secret = SecretData::new(
            "ns",
            "s",
            [
                (
                    ".metadata".to_owned(),
                    br#"{"credentialProperties":[{"name":"n","format":"text"},{"name":"u","format":"unknown"}]}"#
                        .to_vec(),
                ),
                ("n".to_owned(), b"123".to_vec()),
                ("u".to_owned(), b"true".to_vec()),
            ],
        );
        let map = rebuild_credentials(&secret).expect("rebuild");
        assert_eq!(Value::Object(map), json!({"n": "123", "u": true}));
    }

    #[test]
    fn metadata_container_merges_the_object() {
        let dir = tmp();
        write_mounted_secret(
            dir.path(),
            "ns",
            "s",
            &[
                (
                    ".metadata",
                    r#"{"metaDataProperties":[{"name":"instance_name","format":"text"}],"credentialProperties":[{"name":"creds","format":"json","container":true}]}"#,
                ),
                ("creds", r#"{"clientid":"c","uri":"u","url":"l"}"#),
                ("instance_name", "i"),
            ],
        );
        let map = SecretsDir::new(dir.path())
            .read_credentials("ns", "s")
            .expect("read");
        assert_eq!(
            Value::Object(map),
            json!({"clientid":"c","uri":"u","url":"l"})
        );
    }

    #[test]
    fn metadata_errors_name_keys_not_values() {
        let make = |metadata: &str, value: &str| {
            SecretData::new(
                "ns",
                "s",
                [
                    (".metadata".to_owned(), metadata.as_bytes().to_vec()),
                    ("k".to_owned(), value.as_bytes().to_vec()),
                ],
            )
        };
        let err = rebuild_credentials(&make(
            r#"{"credentialProperties":[{"name":"k","format":"json"}]}"#,
            "s3cr3t-not-json",
        ))
        .expect_err("error");
        assert_eq!(
            err.to_string(),
            "key 'k' of secret 's' in namespace 'ns' is not valid JSON (line 1, column 1)"
        );
        assert!(!format!("{err:?}").contains("s3cr3t"));

        let err = rebuild_credentials(&make(
            r#"{"credentialProperties":[{"name":"missing","format":"text"}]}"#,
            "v",
        ))
        .expect_err("error");
        assert_eq!(
            err.to_string(),
            "secret 's' in namespace 'ns': '.metadata' lists key 'missing', which the secret does not have"
        );

        let err = rebuild_credentials(&make("{not json", "v")).expect_err("error");
        assert!(
            err.to_string()
                .starts_with("key '.metadata' of secret 's' in namespace 'ns' is invalid: "),
            "{err}"
        );

        let err = rebuild_credentials(&make(
            r#"{"credentialProperties":[{"name":"k","format":"json","container":true}]}"#,
            r#""s3cr3t""#,
        ))
        .expect_err("error");
        assert_eq!(
            err.to_string(),
            "key 'k' of secret 's' in namespace 'ns' must hold a JSON object, found a string"
        );
    }

    #[test]
    fn multi_key_without_metadata() {
        let dir = tmp();
        write_mounted_secret(
            dir.path(),
            "ns",
            "plain",
            &[
                ("clientid", "c"),
                ("clientsecret", "s"),
                ("uri", "https://d"),
                ("url", "https://a"),
                ("uaa", r#"{"url":"https://uaa"}"#),
                ("scopes", r#"["a","b"]"#),
                ("verify_timeout", "30"),
                ("instance_name", "i"),
                ("instance_guid", "g"),
                ("plan", "lite"),
                ("label", "destination"),
                ("type", "destination"),
                ("tags", r#"["x"]"#),
            ],
        );
        let map = SecretsDir::new(dir.path())
            .read_credentials("ns", "plain")
            .expect("read");
        assert_eq!(
            Value::Object(map),
            json!({
                "clientid": "c",
                "clientsecret": "s",
                "scopes": ["a","b"],
                "uaa": {"url":"https://uaa"},
                "uri": "https://d",
                "url": "https://a",
                "verify_timeout": "30",
            })
        );
    }

    #[test]
    fn read_all_skips_kubelet_entries_hidden_files_and_directories() {
        use std::os::unix::fs::symlink;
        let dir = tmp();
        write_mounted_secret(dir.path(), "ns", "s", &[("a", "1"), (".metadata", "{}")]);
        let sdir = dir.path().join("ns/s");
        fs::write(sdir.join(".hidden"), "x").expect("write");
        fs::create_dir(sdir.join("subdir")).expect("mkdir");
        fs::write(sdir.join("subdir/inner"), "x").expect("write");
        symlink("subdir", sdir.join("dirlink")).expect("symlink");
        fs::write(sdir.join("plainfile"), "2").expect("write");
        let data = SecretsDir::new(dir.path())
            .read_all("ns", "s")
            .expect("read");
        assert_eq!(
            data.key_names().collect::<Vec<_>>(),
            [".metadata", "a", "plainfile"]
        );
        assert_eq!(data.get("a"), Some(&b"1"[..]));
        assert_eq!(data.get("plainfile"), Some(&b"2"[..]));
        let debug = format!("{data:?}");
        assert!(
            debug.contains("plainfile") && !debug.contains("\"2\""),
            "{debug}"
        );
    }

    #[test]
    fn dangling_key_symlink_is_an_error() {
        use std::os::unix::fs::symlink;
        let dir = tmp();
        write_mounted_secret(dir.path(), "ns", "s", &[("a", "1")]);
        symlink("..data/gone", dir.path().join("ns/s/b")).expect("symlink");
        let err = SecretsDir::new(dir.path())
            .read_all("ns", "s")
            .expect_err("error");
        assert!(matches!(err, SecretError::Io { .. }), "{err}");
    }

    #[test]
    fn empty_secret_is_an_error() {
        let dir = tmp();
        write_mounted_secret(dir.path(), "ns", "s", &[]);
        let err = SecretsDir::new(dir.path())
            .read_credentials("ns", "s")
            .expect_err("error");
        assert_eq!(err.to_string(), "secret 's' in namespace 'ns' has no keys");
    }

    #[test]
    fn single_key_not_an_object() {
        let dir = tmp();
        write_mounted_secret(
            dir.path(),
            "ns",
            "s",
            &[("k", "[1]"), ("bad", "{\"a\": s3cr3t}")],
        );
        let secrets = SecretsDir::new(dir.path());
        let err = secrets.read_json_key("ns", "s", "k").expect_err("error");
        assert_eq!(
            err.to_string(),
            "key 'k' of secret 's' in namespace 'ns' must hold a JSON object, found an array"
        );
        let err = secrets.read_json_key("ns", "s", "bad").expect_err("error");
        assert_eq!(
            err.to_string(),
            "key 'bad' of secret 's' in namespace 'ns' is not valid JSON (line 1, column 7)"
        );
    }
}
