//! The configuration JSON of instance create and update (seed 000, API.md §4).

use serde_json::{Map, Value};
use signpost_model::{Certificate, Destination};

use crate::entities::{certificate_from_json, destination_from_json};

/// What to do when an entity of the configuration JSON already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingPolicy {
    Update,
    #[default]
    Fail,
    Ignore,
}

impl ExistingPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingPolicy::Update => "update",
            ExistingPolicy::Fail => "fail",
            ExistingPolicy::Ignore => "ignore",
        }
    }
}

/// `init_data.subaccount` or `init_data.instance`.
#[derive(Debug, Clone, Default)]
pub struct LevelInit {
    pub destinations: Vec<Destination>,
    pub certificates: Vec<Certificate>,
    pub existing_destinations_policy: ExistingPolicy,
    pub existing_certificates_policy: ExistingPolicy,
}

impl LevelInit {
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty() && self.certificates.is_empty()
    }
}

/// The whole configuration JSON, validated.
#[derive(Debug, Clone, Default)]
pub struct InstanceConfig {
    pub html5_runtime_enabled: Option<bool>,
    pub subaccount: LevelInit,
    pub instance: LevelInit,
    /// `subscriber_access`, kept as given (validated for shape only).
    pub subscriber_access: Option<Map<String, Value>>,
}

/// A bad configuration JSON: `field` is a path such as `init_data.instance.destinations[2]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

const TOP_KEYS: &[&str] = &["HTML5Runtime_enabled", "init_data", "subscriber_access"];
const LEVEL_KEYS: &[&str] = &[
    "destinations",
    "certificates",
    "existing_destinations_policy",
    "existing_certificates_policy",
];

impl InstanceConfig {
    /// Validates `parameters` of a provision or update request. `None` and `{}` are empty configs.
    pub fn parse(parameters: Option<&Value>) -> Result<Self, ConfigError> {
        let Some(value) = parameters else {
            return Ok(Self::default());
        };
        let obj = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(o) => o,
            _ => return Err(err("parameters", "must be a JSON object")),
        };
        for key in obj.keys() {
            if !TOP_KEYS.contains(&key.as_str()) {
                return Err(err(
                    key.clone(),
                    format!("unknown key; allowed are {}", TOP_KEYS.join(", ")),
                ));
            }
        }
        let html5_runtime_enabled = match obj.get("HTML5Runtime_enabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(err("HTML5Runtime_enabled", "must be a boolean")),
        };
        let mut config = InstanceConfig {
            html5_runtime_enabled,
            ..Default::default()
        };
        match obj.get("init_data") {
            None | Some(Value::Null) => {}
            Some(Value::Object(init)) => {
                for key in init.keys() {
                    if key != "subaccount" && key != "instance" {
                        return Err(err(
                            format!("init_data.{key}"),
                            "unknown key; allowed are subaccount, instance",
                        ));
                    }
                }
                if let Some(v) = init.get("subaccount") {
                    config.subaccount = parse_level("init_data.subaccount", v)?;
                }
                if let Some(v) = init.get("instance") {
                    config.instance = parse_level("init_data.instance", v)?;
                }
            }
            Some(_) => return Err(err("init_data", "must be a JSON object")),
        }
        match obj.get("subscriber_access") {
            None | Some(Value::Null) => {}
            Some(Value::Object(sa)) => {
                for (entity, section) in sa {
                    let path = format!("subscriber_access.{entity}");
                    if entity != "destination" && entity != "certificate" {
                        return Err(err(
                            path,
                            "unknown key; allowed are destination, certificate",
                        ));
                    }
                    let Value::Object(section) = section else {
                        return Err(err(path, "must be a JSON object"));
                    };
                    for (k, scopes) in section {
                        let p = format!("{path}.{k}");
                        if k != "read_scopes" && k != "write_scopes" {
                            return Err(err(
                                p,
                                "unknown key; allowed are read_scopes, write_scopes",
                            ));
                        }
                        let ok = scopes
                            .as_array()
                            .is_some_and(|a| a.iter().all(Value::is_string));
                        if !ok {
                            return Err(err(p, "must be an array of strings"));
                        }
                    }
                }
                config.subscriber_access = Some(sa.clone());
            }
            Some(_) => return Err(err("subscriber_access", "must be a JSON object")),
        }
        Ok(config)
    }

    pub fn is_empty(&self) -> bool {
        self.subaccount.is_empty() && self.instance.is_empty()
    }
}

fn parse_policy(path: &str, v: Option<&Value>) -> Result<ExistingPolicy, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(ExistingPolicy::Fail),
        Some(Value::String(s)) => match s.as_str() {
            "update" => Ok(ExistingPolicy::Update),
            "fail" => Ok(ExistingPolicy::Fail),
            "ignore" => Ok(ExistingPolicy::Ignore),
            other => Err(err(
                path,
                format!("'{other}' is not a policy; use update, fail or ignore"),
            )),
        },
        Some(_) => Err(err(path, "must be one of the strings update, fail, ignore")),
    }
}

fn items<'a>(path: &str, v: Option<&'a Value>) -> Result<&'a [Value], ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(err(path, "must be an array")),
    }
}

fn parse_level(path: &str, v: &Value) -> Result<LevelInit, ConfigError> {
    let Value::Object(obj) = v else {
        return Err(err(path, "must be a JSON object"));
    };
    for key in obj.keys() {
        if !LEVEL_KEYS.contains(&key.as_str()) {
            return Err(err(
                format!("{path}.{key}"),
                format!("unknown key; allowed are {}", LEVEL_KEYS.join(", ")),
            ));
        }
    }
    let mut level = LevelInit {
        existing_destinations_policy: parse_policy(
            &format!("{path}.existing_destinations_policy"),
            obj.get("existing_destinations_policy"),
        )?,
        existing_certificates_policy: parse_policy(
            &format!("{path}.existing_certificates_policy"),
            obj.get("existing_certificates_policy"),
        )?,
        ..Default::default()
    };
    let dpath = format!("{path}.destinations");
    for (i, item) in items(&dpath, obj.get("destinations"))?.iter().enumerate() {
        let d = destination_from_json(item).map_err(|e| entity_err(&dpath, i, e))?;
        if level.destinations.iter().any(|x| x.name() == d.name()) {
            return Err(err(
                format!("{dpath}[{i}]"),
                format!("destination '{}' is listed twice", d.name()),
            ));
        }
        level.destinations.push(d);
    }
    let cpath = format!("{path}.certificates");
    for (i, item) in items(&cpath, obj.get("certificates"))?.iter().enumerate() {
        let c = certificate_from_json(item).map_err(|e| entity_err(&cpath, i, e))?;
        if level.certificates.iter().any(|x| x.name == c.name) {
            return Err(err(
                format!("{cpath}[{i}]"),
                format!("certificate '{}' is listed twice", c.name),
            ));
        }
        level.certificates.push(c);
    }
    Ok(level)
}

fn entity_err(path: &str, i: usize, e: crate::EntityError) -> ConfigError {
    let who = e
        .name
        .as_deref()
        .map(|n| format!(" ('{n}')"))
        .unwrap_or_default();
    err(format!("{path}[{i}]{who}"), e.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_config() {
        let c = InstanceConfig::parse(Some(&json!({
            "HTML5Runtime_enabled": true,
            "init_data": {
                "subaccount": {
                    "existing_destinations_policy": "update",
                    "destinations": [{"Name": "a", "Type": "HTTP"}]
                },
                "instance": {
                    "existing_certificates_policy": "ignore",
                    "certificates": [{"Name": "c.pem", "Content": "aGk="}]
                }
            },
            "subscriber_access": {"destination": {"read_scopes": ["x"]}}
        })))
        .unwrap();
        assert_eq!(
            c.subaccount.existing_destinations_policy,
            ExistingPolicy::Update
        );
        assert_eq!(
            c.subaccount.existing_certificates_policy,
            ExistingPolicy::Fail
        );
        assert_eq!(c.instance.certificates.len(), 1);
        assert_eq!(c.html5_runtime_enabled, Some(true));
    }

    #[test]
    fn errors_name_the_field() {
        let e = InstanceConfig::parse(Some(
            &json!({"init_data": {"instance": {"existing_destinations_policy": "merge"}}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "init_data.instance.existing_destinations_policy");
        let e = InstanceConfig::parse(Some(&json!({"init_data": {"instance": {"destinations": [{"Name": "ok", "Type": "HTTP"}, {"Name": "b"}]}}}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "init_data.instance.destinations[1] ('b'): Type is required"
        );
        let e = InstanceConfig::parse(Some(&json!({"init_data": {"tenant": {}}}))).unwrap_err();
        assert_eq!(e.field, "init_data.tenant");
        let e = InstanceConfig::parse(Some(&json!([1]))).unwrap_err();
        assert_eq!(e.field, "parameters");
        let e = InstanceConfig::parse(Some(&json!({"init_data": {"instance": {"destinations": [{"Name": "a", "Type": "HTTP"}, {"Name": "a", "Type": "HTTP"}]}}}))).unwrap_err();
        assert!(e.reason.contains("listed twice"));
    }
}
