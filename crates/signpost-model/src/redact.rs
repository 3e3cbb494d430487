//! `Debug` of JSON that may carry secrets (find results, destination properties as JSON,
//! provisioning parameters, request bodies): the same rule as [`crate::Properties`]' `Debug`,
//! at any depth.

use std::fmt;

use serde_json::{Map, Value};

use crate::is_secret_property;

/// What a secret is printed as.
pub const REDACTED: &str = "<redacted>";

/// Whether the value under `key` is left out of `Debug`: a secret property (its name ends in
/// `Password` or `Secret`), or a certificate's `Content` (a keystore or a private key).
fn hidden(key: &str) -> bool {
    is_secret_property(key) || key == "Content"
}

/// A JSON value for `Debug`, secrets redacted at any depth.
#[derive(Clone, Copy)]
pub struct RedactedJson<'a>(pub &'a Value);

/// A JSON object for `Debug`, secrets redacted at any depth.
#[derive(Clone, Copy)]
pub struct RedactedObject<'a>(pub &'a Map<String, Value>);

impl fmt::Debug for RedactedJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Object(map) => RedactedObject(map).fmt(f),
            Value::Array(items) => f
                .debug_list()
                .entries(items.iter().map(RedactedJson))
                .finish(),
            other => other.fmt(f),
        }
    }
}

impl fmt::Debug for RedactedObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.0 {
            if hidden(k) && !v.is_null() {
                map.entry(k, &REDACTED);
            } else {
                map.entry(k, &RedactedJson(v));
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let v = json!({
            "init_data": {"instance": {"destinations": [
                {"Name": "d", "Password": "pw-1", "clientSecret": "cs-2", "User": "bob"}
            ], "certificates": [{"Name": "k.p12", "Content": "a2V5", "Password": "ksp-3"}]}},
            "tokenServicePassword": "tsp-4"
        });
        let shown = format!("{:?}", RedactedJson(&v));
        for secret in ["pw-1", "cs-2", "a2V5", "ksp-3", "tsp-4"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("bob") && shown.contains("k.p12"), "{shown}");
    }
}
