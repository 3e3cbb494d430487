//! `signpost dest|fragment|cert label get|set|add|remove`: the labels of one entity
//! (`GET|PUT|PATCH .../{name}/labels`), written on the command line as `key=value1,value2`.

use clap::Subcommand;
use serde_json::{json, Value};
use signpost_client::{Kind, Level};

use super::output::{self, OutputArgs};
use super::tenant::TenantArgs;
use super::{target, usage};

#[derive(Debug, Subcommand)]
pub enum LabelVerb {
    /// Show the entity's labels.
    #[command(after_help = "Example:
  signpost dest label get my-backend -o json")]
    Get {
        /// The entity's name.
        name: String,
    },
    /// Replace all of the entity's labels (none given: remove them all).
    #[command(after_help = "Example:
  signpost dest label set my-backend env=prod,eu team=payments")]
    Set {
        /// The entity's name.
        name: String,
        /// Labels as `key=value1,value2` (`key=` for a key without values).
        #[arg(value_name = "KEY=VALUES")]
        labels: Vec<String>,
    },
    /// Add values to keys (a key that is new is created); values already there stay.
    #[command(after_help = "Example:
  signpost dest label add my-backend env=staging")]
    Add {
        /// The entity's name.
        name: String,
        /// Labels as `key=value1,value2`.
        #[arg(value_name = "KEY=VALUES", required = true)]
        labels: Vec<String>,
    },
    /// Remove values from keys (`key=value`), or whole keys (`key`).
    #[command(after_help = "Examples:
  signpost dest label remove my-backend env=staging
  signpost dest label remove my-backend team")]
    Remove {
        /// The entity's name.
        name: String,
        /// `key=value1,value2` removes those values; `key` removes the key.
        #[arg(value_name = "KEY[=VALUES]", required = true)]
        labels: Vec<String>,
    },
}

/// `key=v1,v2` → `{"key", "values"}`; `key` alone (only where `bare_key`) or `key=` has no
/// values. The server checks the characters and lengths.
fn parse_label(text: &str, bare_key: bool) -> anyhow::Result<Value> {
    let (key, values) = match text.split_once('=') {
        Some((k, v)) => (k, v),
        None if bare_key => (text, ""),
        None => {
            return Err(usage(format!(
                "'{text}' is not a label: write key=value1,value2"
            )))
        }
    };
    if key.is_empty() {
        return Err(usage(format!("'{text}' has no key before '='")));
    }
    let values: Vec<&str> = values.split(',').filter(|v| !v.is_empty()).collect();
    Ok(json!({ "key": key, "values": values }))
}

fn parse_all(texts: &[String], bare_key: bool) -> anyhow::Result<Vec<Value>> {
    texts.iter().map(|t| parse_label(t, bare_key)).collect()
}

/// Runs a label verb on an entity of `kind`, printing the labels it has afterwards.
pub async fn run(common: &TenantArgs, kind: Kind, verb: &LabelVerb) -> anyhow::Result<()> {
    let level: Level = common.level.into();
    enum Write {
        Read,
        Set(Value),
        Patch(Value),
    }
    let (name, write) = match verb {
        LabelVerb::Get { name } => (name, Write::Read),
        LabelVerb::Set { name, labels } => {
            (name, Write::Set(Value::Array(parse_all(labels, false)?)))
        }
        LabelVerb::Add { name, labels } => (
            name,
            Write::Patch(json!({"action": "ADD", "labels": parse_all(labels, false)?})),
        ),
        LabelVerb::Remove { name, labels } => (
            name,
            Write::Patch(json!({"action": "DELETE", "labels": parse_all(labels, true)?})),
        ),
    };
    let client = target::tenant(common.service_key.as_deref()).await?;
    let labels = match write {
        Write::Read => client.labels(level, kind, name).await?,
        Write::Set(body) => client.set_labels(level, kind, name, &body).await?,
        Write::Patch(body) => client.patch_labels(level, kind, name, &body).await?,
    };
    let value = Value::Array(labels);
    render(&common.out, &value)
}

fn render(out: &OutputArgs, value: &Value) -> anyhow::Result<()> {
    output::render(out, value, || {
        let rows: Vec<Vec<String>> = value
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let values: Vec<String> = l["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(output::cell)
                    .collect();
                vec![output::cell(&l["key"]), values.join(", ")]
            })
            .collect();
        if rows.is_empty() {
            "no labels".to_owned()
        } else {
            output::table(&["KEY", "VALUES"], &rows)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_the_command_line() {
        assert_eq!(
            parse_label("env=prod,eu", false).unwrap(),
            json!({"key": "env", "values": ["prod", "eu"]})
        );
        assert_eq!(
            parse_label("env=", false).unwrap(),
            json!({"key": "env", "values": []})
        );
        assert_eq!(
            parse_label("team", true).unwrap(),
            json!({"key": "team", "values": []})
        );
        // A value may hold '=' (only the first one separates).
        assert_eq!(
            parse_label("q=a=b", false).unwrap(),
            json!({"key": "q", "values": ["a=b"]})
        );
        assert!(parse_label("team", false).is_err());
        assert!(parse_label("=prod", true).is_err());
    }
}
