//! Broker verbs on the platform target: `instance create|update|delete|list` and
//! `key create|delete|list`. The broker has no list endpoints (OSB 2.17 does not require them),
//! so `list` shows the local record of what this CLI created on this machine.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use signpost_client::ProvisionContext;

use super::output::{self, OutputArgs};
use super::target::{self, InstanceRecord, Record};
use super::{read_structured, usage};

/// The subaccount of `instance create` without `--subaccount`.
pub const DEFAULT_SUBACCOUNT: &str = "default";

#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(subcommand)]
    pub verb: InstanceVerb,
}

#[derive(Debug, Subcommand)]
pub enum InstanceVerb {
    /// Provision a service instance, optionally with a configuration JSON (`init_data`).
    #[command(after_help = "Examples:
  signpost instance create my-app
  signpost instance create my-app -c config.json --subaccount team-a")]
    Create {
        /// The instance's name (its id in the broker).
        name: String,
        /// SAP's configuration JSON (`{"init_data": {...}}`), JSON or YAML.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The subaccount that owns the instance.
        #[arg(long, value_name = "ID", default_value = DEFAULT_SUBACCOUNT)]
        subaccount: String,
    },
    /// Update a service instance with a configuration JSON.
    #[command(after_help = "Example:
  signpost instance update my-app -c config.json")]
    Update {
        /// The instance's name.
        name: String,
        /// SAP's configuration JSON, JSON or YAML.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Deprovision a service instance with its keys and instance-level entities.
    #[command(after_help = "Example:
  signpost instance delete my-app")]
    Delete {
        /// The instance's name.
        name: String,
    },
    /// The instances created through this CLI on this machine (the broker has no list).
    #[command(after_help = "Example:
  signpost instance list -o json")]
    List,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(subcommand)]
    pub verb: KeyVerb,
}

#[derive(Debug, Subcommand)]
pub enum KeyVerb {
    /// Create a service key (a binding) and print it as JSON.
    #[command(after_help = "Examples:
  signpost key create my-app my-key > my-key.json
  signpost login --service-key my-key.json")]
    Create {
        /// The instance's name.
        instance: String,
        /// The key's name (the binding id).
        key: String,
        /// Bind parameters (e.g. `{"xsuaa": {"credential-type": "x509"}}`), JSON or YAML.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Delete a service key; its tokens stop working at once.
    #[command(after_help = "Example:
  signpost key delete my-app my-key")]
    Delete {
        /// The instance's name.
        instance: String,
        /// The key's name.
        key: String,
    },
    /// The keys created through this CLI on this machine, optionally of one instance.
    #[command(after_help = "Example:
  signpost key list my-app")]
    List {
        /// Only the keys of this instance.
        instance: Option<String>,
    },
}

fn parameters(path: Option<&Path>) -> anyhow::Result<Option<Value>> {
    path.map(|p| {
        let value = read_structured(p)?;
        if !value.is_object() {
            return Err(usage(format!("{}: must be a JSON object", p.display())));
        }
        Ok(value)
    })
    .transpose()
}

pub async fn instance(args: InstanceArgs) -> anyhow::Result<()> {
    let out = &args.out;
    if let InstanceVerb::List = args.verb {
        let (_, platform) = target::broker()?;
        let mut record = Record::load()?;
        let instances = record.instances(&platform.url).clone();
        let value: Value = instances
            .iter()
            .map(|(name, r)| json!({"name": name, "subaccount": r.subaccount, "keys": r.keys}))
            .collect();
        return output::render(out, &value, || {
            let rows: Vec<Vec<String>> = instances
                .iter()
                .map(|(name, r)| vec![name.clone(), r.subaccount.clone(), r.keys.join(", ")])
                .collect();
            output::table(&["NAME", "SUBACCOUNT", "KEYS"], &rows)
        });
    }
    let (client, platform) = target::broker()?;
    match args.verb {
        InstanceVerb::Create {
            name,
            config,
            subaccount,
        } => {
            let params = parameters(config.as_deref())?;
            let context = ProvisionContext {
                subaccount_id: Some(subaccount.clone()),
                subdomain: None,
            };
            let created = client.provision(&name, &context, params.as_ref()).await?;
            let mut record = Record::load()?;
            record
                .instances(&platform.url)
                .entry(name.clone())
                .or_insert_with(|| InstanceRecord {
                    subaccount: subaccount.clone(),
                    keys: Vec::new(),
                });
            record.save()?;
            output::info(&if created {
                format!("instance '{name}' created in subaccount '{subaccount}'")
            } else {
                format!("instance '{name}' already exists with this configuration")
            });
        }
        InstanceVerb::Update { name, config } => {
            let params = parameters(Some(&config))?;
            client.update(&name, params.as_ref()).await?;
            output::info(&format!("instance '{name}' updated"));
        }
        InstanceVerb::Delete { name } => {
            let result = client.deprovision(&name).await;
            let mut record = Record::load()?;
            if record.instances(&platform.url).remove(&name).is_some() {
                record.save()?;
            }
            result?;
            output::info(&format!("instance '{name}' deleted"));
        }
        InstanceVerb::List => unreachable!("handled above"),
    }
    Ok(())
}

pub async fn key(args: KeyArgs) -> anyhow::Result<()> {
    let out = &args.out;
    let (client, platform) = target::broker()?;
    match args.verb {
        KeyVerb::Create {
            instance,
            key,
            config,
        } => {
            let params = parameters(config.as_deref())?;
            let credentials = client.bind(&instance, &key, params.as_ref()).await?;
            let mut record = Record::load()?;
            let entry = record
                .instances(&platform.url)
                .entry(instance.clone())
                .or_insert_with(|| InstanceRecord {
                    subaccount: credentials["tenantid"].as_str().unwrap_or("-").to_owned(),
                    keys: Vec::new(),
                });
            if !entry.keys.contains(&key) {
                entry.keys.push(key.clone());
            }
            record.save()?;
            // The key is what a person asked for: printed whole (JSON by default).
            match out.output {
                output::Format::Table => output::line(&serde_json::to_string_pretty(&credentials)?),
                _ => output::render(out, &credentials, String::new)?,
            }
        }
        KeyVerb::Delete { instance, key } => {
            let result = client.unbind(&instance, &key).await;
            let mut record = Record::load()?;
            if let Some(r) = record.instances(&platform.url).get_mut(&instance) {
                r.keys.retain(|k| k != &key);
                record.save()?;
            }
            result?;
            output::info(&format!("key '{key}' of instance '{instance}' deleted"));
        }
        KeyVerb::List { instance } => {
            let mut record = Record::load()?;
            let instances = record.instances(&platform.url);
            if let Some(i) = &instance {
                if !instances.contains_key(i) {
                    anyhow::bail!(
                        "instance '{i}' was not created through this CLI on this machine: see `signpost instance list`"
                    );
                }
            }
            let rows: Vec<(String, String)> = instances
                .iter()
                .filter(|(name, _)| instance.as_ref().is_none_or(|i| i == *name))
                .flat_map(|(name, r)| r.keys.iter().map(|k| (name.clone(), k.clone())))
                .collect();
            let value: Value = rows
                .iter()
                .map(|(i, k)| json!({"instance": i, "key": k}))
                .collect();
            output::render(out, &value, || {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(i, k)| vec![i.clone(), k.clone()])
                    .collect();
                output::table(&["INSTANCE", "KEY"], &rows)
            })?;
        }
    }
    Ok(())
}
