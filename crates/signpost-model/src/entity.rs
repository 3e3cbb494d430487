use std::fmt;

use indexmap::IndexMap;

use crate::names::{validate_certificate_name, validate_entity_name};

/// A clear, secret-free reason why an entity is invalid, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Where an entity lives: on the subaccount or on one service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Subaccount,
    Instance,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Subaccount => "subaccount",
            Level::Instance => "instance",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "subaccount" => Some(Level::Subaccount),
            "instance" => Some(Level::Instance),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three kinds of stored entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    Destination,
    Fragment,
    Certificate,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Destination => "destination",
            EntityKind::Fragment => "fragment",
            EntityKind::Certificate => "certificate",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        match s {
            "destination" => Some(EntityKind::Destination),
            "fragment" => Some(EntityKind::Fragment),
            "certificate" => Some(EntityKind::Certificate),
            _ => None,
        }
    }

    /// The word used in error messages ("destination", "fragment", "certificate").
    pub fn noun(self) -> &'static str {
        self.as_str()
    }
}

/// The owner of an entity: a subaccount id or a service instance id, with the level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerRef {
    pub level: Level,
    pub id: String,
}

impl OwnerRef {
    pub fn subaccount(id: impl Into<String>) -> Self {
        Self {
            level: Level::Subaccount,
            id: id.into(),
        }
    }

    pub fn instance(id: impl Into<String>) -> Self {
        Self {
            level: Level::Instance,
            id: id.into(),
        }
    }

    /// The subscription level of a subscriber subaccount on a provider's instance: instance
    /// level, owned by `<instance id>/<subaccount id>` (ids never hold a `/`).
    pub fn subscription(instance_id: &str, subaccount_id: &str) -> Self {
        Self {
            level: Level::Instance,
            id: format!("{instance_id}/{subaccount_id}"),
        }
    }

    /// The service instance of an instance-level owner (of a subscription level too).
    pub fn instance_id(&self) -> Option<&str> {
        match self.level {
            Level::Instance => Some(self.id.split('/').next().unwrap_or(&self.id)),
            Level::Subaccount => None,
        }
    }

    /// The subscriber subaccount of a subscription-level owner.
    pub fn subscriber(&self) -> Option<&str> {
        match self.level {
            Level::Instance => self.id.split_once('/').map(|(_, s)| s),
            Level::Subaccount => None,
        }
    }
}

/// True for properties whose values are secrets: they are encrypted at rest, left out with
/// `$skipCredentials=true` and masked wherever they are printed.
pub fn is_secret_property(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.ends_with("password") || lower.ends_with("secret")
}

/// A flat, ordered map of string properties: SAP's destination and fragment shape.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(pub IndexMap<String, String>);

impl Properties {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Case-insensitive lookup, for the few keys that SAP treats loosely.
    pub fn get_ignore_case(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The properties without their secrets (`$skipCredentials=true`).
    pub fn without_secrets(&self) -> Properties {
        Properties(
            self.0
                .iter()
                .filter(|(k, _)| !is_secret_property(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.0 {
            if is_secret_property(k) {
                map.entry(k, &"<redacted>");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl FromIterator<(String, String)> for Properties {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Properties(iter.into_iter().collect())
    }
}

/// Destination types SAP knows.
const DESTINATION_TYPES: &[&str] = &["HTTP", "RFC", "MAIL", "LDAP", "TCP"];

/// A destination: `Name`, `Type` and any other string properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    properties: Properties,
}

impl Destination {
    /// Validates `Name` and `Type` and keeps the properties as given.
    pub fn new(properties: Properties) -> Result<Self, ValidationError> {
        let name = properties
            .get("Name")
            .ok_or_else(|| ValidationError::new("Name", "is required"))?;
        validate_entity_name("Name", name)?;
        let ty = properties
            .get("Type")
            .ok_or_else(|| ValidationError::new("Type", "is required"))?;
        if !DESTINATION_TYPES.contains(&ty) {
            return Err(ValidationError::new(
                "Type",
                format!("must be one of {}", DESTINATION_TYPES.join(", ")),
            ));
        }
        if ty == "MAIL" {
            if let Some((k, _)) = properties
                .iter()
                .find(|(k, _)| !is_core_key(k) && !k.starts_with("mail."))
            {
                return Err(ValidationError::new(
                    k.clone(),
                    "is not allowed: additional properties of MAIL destinations must start with 'mail.'",
                ));
            }
        }
        Ok(Self { properties })
    }

    pub fn name(&self) -> &str {
        self.properties.get("Name").unwrap_or_default()
    }

    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    pub fn into_properties(self) -> Properties {
        self.properties
    }
}

fn is_core_key(k: &str) -> bool {
    matches!(
        k,
        "Name"
            | "Type"
            | "Description"
            | "Authentication"
            | "ProxyType"
            | "User"
            | "Password"
            | "CloudConnectorLocationId"
    )
}

/// A destination fragment: `FragmentName` and properties that are merged into a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    properties: Properties,
}

impl Fragment {
    pub fn new(properties: Properties) -> Result<Self, ValidationError> {
        let name = properties
            .get("FragmentName")
            .ok_or_else(|| ValidationError::new("FragmentName", "is required"))?;
        validate_entity_name("FragmentName", name)?;
        for forbidden in ["Name", "Type"] {
            if properties.get(forbidden).is_some() {
                return Err(ValidationError::new(
                    forbidden,
                    "is not allowed in a fragment",
                ));
            }
        }
        Ok(Self { properties })
    }

    pub fn name(&self) -> &str {
        self.properties.get("FragmentName").unwrap_or_default()
    }

    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    pub fn into_properties(self) -> Properties {
        self.properties
    }
}

/// A certificate or keystore file, kept as the base64 text it was given in.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    pub name: String,
    pub ty: Option<String>,
    /// Base64 of the file's bytes. Private keys may be inside: never printed.
    pub content: String,
    /// The keystore password given on upload (`Password`); kept encrypted, never returned.
    pub password: Option<String>,
}

impl Certificate {
    pub fn new(name: String, ty: Option<String>, content: String) -> Result<Self, ValidationError> {
        validate_certificate_name("Name", &name)?;
        if content.is_empty() {
            return Err(ValidationError::new("Content", "must not be empty"));
        }
        if !is_base64(&content) {
            return Err(ValidationError::new("Content", "is not valid base64"));
        }
        Ok(Self {
            name,
            ty,
            content,
            password: None,
        })
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field(
                "content",
                &format_args!("<{} base64 characters>", self.content.len()),
            )
            .finish()
    }
}

/// Standard base64 with padding; whitespace between lines is tolerated (PEM-style wrapping).
fn is_base64(s: &str) -> bool {
    let mut n = 0usize;
    let mut pad = 0usize;
    for b in s.bytes() {
        match b {
            b'\r' | b'\n' | b' ' | b'\t' => continue,
            b'=' => pad += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if pad == 0 => {}
            _ => return false,
        }
        n += 1;
    }
    n > 0 && n.is_multiple_of(4) && pad <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn destination_requires_name_and_type() {
        assert_eq!(
            Destination::new(props(&[("Type", "HTTP")]))
                .unwrap_err()
                .to_string(),
            "Name is required"
        );
        assert_eq!(
            Destination::new(props(&[("Name", "a")]))
                .unwrap_err()
                .to_string(),
            "Type is required"
        );
        assert!(Destination::new(props(&[("Name", "a"), ("Type", "FTP")])).is_err());
        assert!(Destination::new(props(&[("Name", "a"), ("Type", "HTTP")])).is_ok());
    }

    #[test]
    fn mail_destination_properties() {
        assert!(Destination::new(props(&[
            ("Name", "m"),
            ("Type", "MAIL"),
            ("mail.smtp", "x")
        ]))
        .is_ok());
        assert!(Destination::new(props(&[("Name", "m"), ("Type", "MAIL"), ("URL", "x")])).is_err());
    }

    #[test]
    fn fragment_rejects_name_and_type() {
        assert!(Fragment::new(props(&[("FragmentName", "f"), ("URL", "u")])).is_ok());
        assert_eq!(
            Fragment::new(props(&[("FragmentName", "f"), ("Name", "x")]))
                .unwrap_err()
                .to_string(),
            "Name is not allowed in a fragment"
        );
        assert!(Fragment::new(props(&[("FragmentName", "f"), ("Type", "HTTP")])).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let d = Destination::new(props(&[
            ("Name", "a"),
            ("Type", "HTTP"),
            ("Password", "hunter2"),
            ("clientSecret", "s3cr3t"),
            ("tokenServicePassword", "tsp-value"),
        ]))
        .unwrap();
        let shown = format!("{d:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("s3cr3t"));
        assert!(!shown.contains("tsp-value"));
        let c = Certificate::new("c.pem".into(), None, "c2VjcmV0LWtleQ==".into()).unwrap();
        assert!(!format!("{c:?}").contains("c2VjcmV0LWtleQ"));
    }

    #[test]
    fn base64_check() {
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGVs\nbG8="));
        assert!(!is_base64("not base64!"));
        assert!(!is_base64("abc"));
        assert!(!is_base64("ab=c"));
    }
}

/// Which names a list returns (`$filter` of the configuration API's lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameFilter {
    #[default]
    All,
    In(Vec<String>),
    StartsWith(String),
    EndsWith(String),
    /// Modified within the last `minutes` minutes of `now_ms`.
    ModifiedWithin {
        minutes: u32,
        now_ms: i64,
    },
}
