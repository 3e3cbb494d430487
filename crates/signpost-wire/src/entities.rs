use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use signpost_model::{
    Certificate, Destination, Fragment, Properties, RedactedJson, ValidationError,
};

/// The one error body of the destination configuration API: `{"ErrorMessage": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    #[serde(rename = "ErrorMessage")]
    pub error_message: String,
}

/// `{"Count": n}`: the answer to PUT of one object and DELETE by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Count {
    #[serde(rename = "Count")]
    pub count: u64,
}

/// `{"Name": "..."}`: list items with `$select=Name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NameOnly {
    #[serde(rename = "Name")]
    pub name: String,
}

/// One item of a bulk create or update answer (201/200/207).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkItem {
    pub name: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The answer of a bulk DELETE with `$filter`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkDeleteResponse {
    #[serde(rename = "Count")]
    pub count: u64,
    #[serde(rename = "Summary")]
    pub summary: Vec<BulkDeleteItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkDeleteItem {
    pub name: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a body item is not a valid entity. `name` is the item's name when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EntityError {
    pub name: Option<String>,
    pub reason: String,
}

impl EntityError {
    fn new(name: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            name: name.map(str::to_owned),
            reason: reason.into(),
        }
    }

    fn from_validation(name: Option<&str>, e: ValidationError) -> Self {
        Self::new(name, e.to_string())
    }
}

/// Whether a create/update body was one object or an array. `Debug` redacts secrets.
#[derive(Clone, PartialEq)]
pub enum BodyShape {
    One(Value),
    Many(Vec<Value>),
}

impl std::fmt::Debug for BodyShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyShape::One(v) => f.debug_tuple("One").field(&RedactedJson(v)).finish(),
            BodyShape::Many(items) => f
                .debug_tuple("Many")
                .field(&items.iter().map(RedactedJson).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// Parses a create/update body: one JSON object or a non-empty array of objects.
pub fn split_body(bytes: &[u8]) -> Result<BodyShape, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("The request body is empty; expected a JSON object or array".into());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    match value {
        Value::Object(_) => Ok(BodyShape::One(value)),
        Value::Array(items) => {
            if items.is_empty() {
                return Err("The request body is an empty array".into());
            }
            Ok(BodyShape::Many(items))
        }
        _ => Err("The request body must be a JSON object or an array of objects".into()),
    }
}

fn name_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Reads a flat object of string properties; any other value type is an error naming the key.
fn string_properties(obj: &Map<String, Value>, name_key: &str) -> Result<Properties, EntityError> {
    let name = name_of(obj, name_key);
    let mut props = Properties::default();
    for (k, v) in obj {
        match v {
            Value::String(s) => props.insert(k.clone(), s.clone()),
            _ => {
                return Err(EntityError::new(
                    name,
                    format!("Property '{k}' must be a string"),
                ))
            }
        }
    }
    Ok(props)
}

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, EntityError> {
    value
        .as_object()
        .ok_or_else(|| EntityError::new(None, format!("Each {what} must be a JSON object")))
}

pub fn destination_from_json(value: &Value) -> Result<Destination, EntityError> {
    let obj = as_object(value, "destination")?;
    let name = name_of(obj, "Name");
    let props = string_properties(obj, "Name")?;
    Destination::new(props).map_err(|e| EntityError::from_validation(name, e))
}

pub fn fragment_from_json(value: &Value) -> Result<Fragment, EntityError> {
    let obj = as_object(value, "fragment")?;
    let name = name_of(obj, "FragmentName");
    let props = string_properties(obj, "FragmentName")?;
    Fragment::new(props).map_err(|e| EntityError::from_validation(name, e))
}

/// `{"Name", "Type"?, "Content"}`; `Type` may be null.
pub fn certificate_from_json(value: &Value) -> Result<Certificate, EntityError> {
    let obj = as_object(value, "certificate")?;
    let name = name_of(obj, "Name");
    let get = |key: &str, required: bool| -> Result<Option<String>, EntityError> {
        match obj.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(EntityError::new(
                name,
                format!("Property '{key}' is required"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(EntityError::new(
                name,
                format!("Property '{key}' must be a string"),
            )),
        }
    };
    let n = get("Name", true)?.unwrap_or_default();
    let ty = get("Type", false)?;
    let content = get("Content", true)?.unwrap_or_default();
    for key in obj.keys() {
        if !matches!(key.as_str(), "Name" | "Type" | "Content" | "Password") {
            return Err(EntityError::new(
                name,
                format!("Property '{key}' is not a certificate property (Name, Type, Content, Password)"),
            ));
        }
    }
    let password = get("Password", false)?;
    let mut cert =
        Certificate::new(n, ty, content).map_err(|e| EntityError::from_validation(name, e))?;
    cert.password = password;
    Ok(cert)
}

pub fn properties_to_json(props: &Properties) -> Map<String, Value> {
    props
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

pub fn certificate_to_json(cert: &Certificate) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Name".into(), Value::String(cert.name.clone()));
    m.insert(
        "Type".into(),
        cert.ty.clone().map(Value::String).unwrap_or(Value::Null),
    );
    m.insert("Content".into(), Value::String(cert.content.clone()));
    if let Some(p) = &cert.password {
        m.insert("Password".into(), Value::String(p.clone()));
    }
    m
}

/// Keys of a stored certificate body that are never returned: the keystore password and
/// Signpost's own bookkeeping (`$signpost`: origin, renewal settings).
pub const CERTIFICATE_PRIVATE_KEYS: &[&str] = &["Password", "$signpost"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_shapes() {
        assert!(matches!(split_body(b"{}"), Ok(BodyShape::One(_))));
        assert!(matches!(split_body(b"[{}]"), Ok(BodyShape::Many(v)) if v.len() == 1));
        assert!(split_body(b"[]").is_err());
        assert!(split_body(b"\"x\"").is_err());
        assert!(split_body(b"{")
            .unwrap_err()
            .starts_with("The request body is not valid JSON"));
        assert!(split_body(b"  ").is_err());
    }

    #[test]
    fn non_string_property_is_named() {
        let e =
            destination_from_json(&json!({"Name": "a", "Type": "HTTP", "Port": 8080})).unwrap_err();
        assert_eq!(e.reason, "Property 'Port' must be a string");
        assert_eq!(e.name.as_deref(), Some("a"));
    }

    #[test]
    fn certificate_password_is_kept_apart() {
        let c =
            certificate_from_json(&json!({"Name": "k.p12", "Content": "aGk=", "Password": "pw"}))
                .unwrap();
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(certificate_to_json(&c)["Password"], "pw");
        assert!(
            certificate_from_json(&json!({"Name": "k.p12", "Content": "aGk=", "Password": 1}))
                .is_err()
        );
    }

    #[test]
    fn certificate_shape() {
        let c = certificate_from_json(&json!({"Name": "a.pem", "Type": null, "Content": "aGk="}))
            .unwrap();
        assert_eq!(c.ty, None);
        assert!(certificate_from_json(&json!({"Name": "a.pem", "Content": "***"})).is_err());
        assert!(certificate_from_json(&json!({"Name": "a.pem"})).is_err());
        assert_eq!(
            Value::Object(certificate_to_json(&c)),
            json!({"Name": "a.pem", "Type": null, "Content": "aGk="})
        );
    }
}
