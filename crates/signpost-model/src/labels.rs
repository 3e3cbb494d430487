//! Labels: non-secret key/multi-value pairs on destinations, fragments and certificates
//! (`GET|PUT|PATCH .../{name}/labels`, and `$filter=Label['key'] HAS ('v1', 'v2')` on lists).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Longest label key, in characters.
pub const MAX_LABEL_KEY_LEN: usize = 64;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_LEN: usize = 255;
/// Most values one key holds (SAP's cockpit allows ten).
pub const MAX_LABEL_VALUES: usize = 10;
/// Most keys one entity holds.
pub const MAX_LABEL_KEYS: usize = 50;

/// One label: a key with its values, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// 1 to 64 letters, digits or `-_./:`, starting with a letter or a digit.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$"
        )
    )]
    pub key: String,
    /// At most 10, each 1 to 255 characters without control characters and not only spaces.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = values_schema))]
    pub values: Vec<String>,
}

/// The document's schema of a label's values (what it can say of [`validate_label_value`]).
#[cfg(feature = "openapi")]
fn values_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_LABEL_VALUE_LEN)),
        )
        .max_items(Some(MAX_LABEL_VALUES))
        .unique_items(true)
        .build()
}

/// How a `PATCH .../labels` changes an entity's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum LabelAction {
    /// Adds the values to their keys (a key that is new is created); values already there stay.
    Add,
    /// Removes the values from their keys; a key left without values, or named with no values,
    /// is removed whole.
    Delete,
}

/// The body of `PATCH .../labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LabelPatch {
    pub action: LabelAction,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub labels: Vec<Label>,
}

/// Checks a label key: 1 to 64 letters, digits or `-_./:`, starting with a letter or digit.
pub fn validate_label_key(key: &str) -> Result<(), ValidationError> {
    let bad = |why: String| ValidationError::new(format!("Label key '{key}'"), why);
    let len = key.chars().count();
    if len == 0 {
        return Err(ValidationError::new("Label key", "must not be empty"));
    }
    if len > MAX_LABEL_KEY_LEN {
        return Err(bad(format!(
            "is longer than {MAX_LABEL_KEY_LEN} characters"
        )));
    }
    if !key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(bad("must start with a letter or a digit".into()));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))
    {
        return Err(bad(
            "may contain only letters, digits and the characters - _ . / :".into(),
        ));
    }
    Ok(())
}

/// Checks a label value: 1 to 255 characters, no control characters, not only spaces.
pub fn validate_label_value(key: &str, value: &str) -> Result<(), ValidationError> {
    let bad = |why: String| ValidationError::new(format!("A value of label '{key}'"), why);
    if value.trim().is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if value.chars().count() > MAX_LABEL_VALUE_LEN {
        return Err(bad(format!(
            "is longer than {MAX_LABEL_VALUE_LEN} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("must not contain control characters".into()));
    }
    Ok(())
}

/// Checks a whole set of labels (a `PUT`, or the result of a `PATCH`): every key and value
/// valid, no key twice, no value twice within a key, at most [`MAX_LABEL_VALUES`] values per key
/// and [`MAX_LABEL_KEYS`] keys.
pub fn validate_labels(labels: &[Label]) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABEL_KEYS {
        return Err(ValidationError::new(
            "labels",
            format!(
                "hold at most {MAX_LABEL_KEYS} keys per entity, not {}",
                labels.len()
            ),
        ));
    }
    validate_each(labels)
}

/// Every key and its values valid, no key twice.
fn validate_each(labels: &[Label]) -> Result<(), ValidationError> {
    let mut keys = std::collections::HashSet::new();
    for label in labels {
        validate_label_key(&label.key)?;
        if !keys.insert(label.key.as_str()) {
            return Err(ValidationError::new(
                format!("Label key '{}'", label.key),
                "is given twice",
            ));
        }
        validate_values(label)?;
    }
    Ok(())
}

fn validate_values(label: &Label) -> Result<(), ValidationError> {
    if label.values.len() > MAX_LABEL_VALUES {
        return Err(ValidationError::new(
            format!("Label '{}'", label.key),
            format!(
                "has {} values; a key holds at most {MAX_LABEL_VALUES}",
                label.values.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for v in &label.values {
        validate_label_value(&label.key, v)?;
        if !seen.insert(v.as_str()) {
            return Err(ValidationError::new(
                format!("Label '{}'", label.key),
                format!("has the value '{v}' twice"),
            ));
        }
    }
    Ok(())
}

/// Checks the labels of a `PATCH` (keys and values valid, no key twice); the limits on counts are
/// checked on the result.
pub fn validate_label_patch(labels: &[Label]) -> Result<(), ValidationError> {
    if labels.is_empty() {
        return Err(ValidationError::new(
            "labels",
            "of a patch must not be empty",
        ));
    }
    validate_each(labels)
}

/// The labels after a `PATCH` of `current` (which stays as it is).
pub fn patch_labels(current: &[Label], action: LabelAction, patch: &[Label]) -> Vec<Label> {
    let mut out: Vec<Label> = current.to_vec();
    for p in patch {
        let at = out.iter().position(|l| l.key == p.key);
        match (action, at) {
            (LabelAction::Add, Some(i)) => {
                for v in &p.values {
                    if !out[i].values.contains(v) {
                        out[i].values.push(v.clone());
                    }
                }
            }
            (LabelAction::Add, None) => out.push(p.clone()),
            (LabelAction::Delete, Some(i)) => {
                if p.values.is_empty() {
                    out.remove(i);
                } else {
                    out[i].values.retain(|v| !p.values.contains(v));
                    if out[i].values.is_empty() {
                        out.remove(i);
                    }
                }
            }
            (LabelAction::Delete, None) => {}
        }
    }
    out
}

/// One clause of a label filter: the entity has label `key` with at least one of `values`.
pub type LabelMatch = Label;

/// Whether `labels` satisfy every clause of `filter` (each: the key with any of its values).
pub fn labels_match(labels: &[Label], filter: &[LabelMatch]) -> bool {
    filter.iter().all(|clause| {
        labels
            .iter()
            .any(|l| l.key == clause.key && l.values.iter().any(|v| clause.values.contains(v)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(key: &str, values: &[&str]) -> Label {
        Label {
            key: key.into(),
            values: values.iter().map(|v| (*v).into()).collect(),
        }
    }

    #[test]
    fn keys_and_values_are_checked() {
        assert!(validate_label_key("env").is_ok());
        assert!(validate_label_key("app.kubernetes.io/name").is_ok());
        for bad in ["", "-env", "a b", "ümlaut", &"k".repeat(65)] {
            assert!(validate_label_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_label_value("env", "prod eu").is_ok());
        assert!(validate_label_value("env", "").is_err());
        assert!(validate_label_value("env", "  ").is_err());
        assert!(validate_label_value("env", "a\nb").is_err());
        assert!(validate_label_value("env", &"v".repeat(256)).is_err());
    }

    #[test]
    fn sets_are_checked() {
        assert!(validate_labels(&[label("env", &["prod"]), label("team", &[])]).is_ok());
        let twice = validate_labels(&[label("env", &["a"]), label("env", &["b"])]).unwrap_err();
        assert!(twice.to_string().contains("twice"));
        assert!(validate_labels(&[label("env", &["a", "a"])]).is_err());
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let many = Label {
            key: "env".into(),
            values: eleven,
        };
        assert!(validate_labels(&[many])
            .unwrap_err()
            .to_string()
            .contains("at most 10"));
        let keys: Vec<Label> = (0..51).map(|i| label(&format!("k{i}"), &[])).collect();
        assert!(validate_labels(&keys).is_err());
        assert!(validate_label_patch(&[]).is_err());
    }

    #[test]
    fn patches_add_and_delete_values() {
        let current = vec![label("env", &["dev"]), label("team", &["a", "b"])];
        let added = patch_labels(
            &current,
            LabelAction::Add,
            &[label("env", &["prod", "dev"]), label("tier", &["1"])],
        );
        assert_eq!(
            added,
            vec![
                label("env", &["dev", "prod"]),
                label("team", &["a", "b"]),
                label("tier", &["1"])
            ]
        );
        let removed = patch_labels(
            &added,
            LabelAction::Delete,
            &[
                label("team", &["a"]),
                label("tier", &[]),
                label("none", &["x"]),
            ],
        );
        assert_eq!(
            removed,
            vec![label("env", &["dev", "prod"]), label("team", &["b"])]
        );
        let emptied = patch_labels(&removed, LabelAction::Delete, &[label("team", &["b"])]);
        assert_eq!(emptied, vec![label("env", &["dev", "prod"])]);
    }

    #[test]
    fn filters_need_every_key_with_any_value() {
        let labels = vec![label("env", &["prod", "eu"]), label("team", &["a"])];
        assert!(labels_match(&labels, &[label("env", &["dev", "eu"])]));
        assert!(labels_match(
            &labels,
            &[label("env", &["prod"]), label("team", &["a"])]
        ));
        assert!(!labels_match(
            &labels,
            &[label("env", &["prod"]), label("team", &["b"])]
        ));
        assert!(!labels_match(&labels, &[label("tier", &["1"])]));
        assert!(labels_match(&labels, &[]));
    }

    #[test]
    fn the_wire_shapes_parse() {
        let l: Vec<Label> =
            serde_json::from_str(r#"[{"key":"env","values":["prod","eu"]}]"#).unwrap();
        assert_eq!(l, vec![label("env", &["prod", "eu"])]);
        let a: LabelAction = serde_json::from_str(r#""DELETE""#).unwrap();
        assert_eq!(a, LabelAction::Delete);
        assert!(serde_json::from_str::<Vec<Label>>(r#"[{"key":"a","value":["x"]}]"#).is_err());
    }
}
