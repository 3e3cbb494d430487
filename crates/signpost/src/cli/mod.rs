//! The CLI verbs: `login`, `instance`, `key` (the service broker, platform target), `signing-key`
//! (token signing keys, platform target), `audit` (the audit log, platform target),
//! `subscription` (subscribers of an instance, platform target), `dest`,
//! `fragment`, `cert`, `export`, `import` (the destination API, tenant target), `completion`, and the hidden `docs`. They talk to a Signpost
//! (or SAP) service over HTTP only, through `signpost-client`. Exit codes: 0 success, 1 an error
//! (the server's message), 2 usage (clap's own, and unreadable or malformed input files,
//! reported as `ConfigError`).

mod audit;
mod broker;
mod docs;
mod labels;
mod output;
mod signing_key;
mod subscription;
mod target;
mod tenant;
mod transfer;

/// The reader of SAP cockpit's properties export, as `import` uses it; public so that the fuzz
/// target `properties_import` (crates/signpost-fuzz) feeds it outside input.
pub use transfer::parse_properties;

use std::path::Path;

use clap::Subcommand;
use serde_json::Value;

/// A usage error: exit code 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(crate::config::ConfigError(message.into()))
}

/// The CLI's subcommands (flattened into the binary's `Command`).
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Store a platform target (broker URL and credentials) or a tenant target (a service key).
    Login(target::LoginArgs),
    /// Forget the stored targets.
    #[command(after_help = "Example:\n  signpost logout --tenant")]
    Logout(target::LogoutArgs),
    /// Show the stored targets.
    #[command(after_help = "Example:\n  signpost target")]
    Target(output::OutputArgs),
    /// Service instances (service broker, platform target).
    Instance(broker::InstanceArgs),
    /// Service keys (bindings) of instances (service broker, platform target).
    Key(broker::KeyArgs),
    /// Token signing keys of the token service: list and rotate (platform target).
    SigningKey(signing_key::SigningKeyArgs),
    /// The audit log: writes and issued tokens, newest first (platform target).
    Audit(audit::AuditArgs),
    /// Subscriber subaccounts of a provider's instance (SaaS multitenancy, platform target).
    Subscription(subscription::SubscriptionArgs),
    /// Destinations on subaccount or instance level (tenant target).
    Dest(tenant::DestArgs),
    /// Destination fragments on subaccount or instance level (tenant target).
    Fragment(tenant::FragmentArgs),
    /// Certificates and keystores on subaccount or instance level (tenant target).
    Cert(tenant::CertArgs),
    /// Export all destinations, fragments and certificates of a level to one file.
    Export(transfer::ExportArgs),
    /// Import destinations, fragments and certificates from a file.
    Import(transfer::ImportArgs),
    /// Print a shell completion script.
    Completion(docs::CompletionArgs),
    /// Generated documentation.
    #[command(hide = true, subcommand)]
    Docs(docs::DocsVerb),
}

pub async fn run(cmd: CliCommand) -> anyhow::Result<()> {
    match cmd {
        CliCommand::Login(args) => target::login(args).await,
        CliCommand::Logout(args) => target::logout(&args),
        CliCommand::Target(out) => target::show(&out),
        CliCommand::Instance(args) => broker::instance(args).await,
        CliCommand::Key(args) => broker::key(args).await,
        CliCommand::SigningKey(args) => signing_key::signing_key(args).await,
        CliCommand::Audit(args) => audit::audit(args).await,
        CliCommand::Subscription(args) => subscription::subscription(args).await,
        CliCommand::Dest(args) => tenant::dest(args).await,
        CliCommand::Fragment(args) => tenant::fragment(args).await,
        CliCommand::Cert(args) => tenant::cert(args).await,
        CliCommand::Export(args) => transfer::export(args).await,
        CliCommand::Import(args) => transfer::import(args).await,
        CliCommand::Completion(args) => {
            docs::completion(&args);
            Ok(())
        }
        CliCommand::Docs(verb) => {
            docs::docs(&verb);
            Ok(())
        }
    }
}

/// A JSON or YAML file as a value; a usage error naming the file when it is neither.
pub fn read_structured(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    parse_structured(&text).map_err(|e| usage(format!("{}: {e}", path.display())))
}

fn parse_structured(text: &str) -> Result<Value, String> {
    let json_error = match serde_json::from_str::<Value>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let looks_like_json = text.trim_start().starts_with(['{', '[']);
    match serde_norway::from_str::<Value>(text) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) if !looks_like_json => Ok(v),
        _ if looks_like_json => Err(format!("not valid JSON: {json_error}")),
        Ok(_) => Err("neither JSON nor YAML with an object or a list".into()),
        Err(e) => Err(format!("neither JSON nor YAML: {e}")),
    }
}

/// An entity file: JSON, YAML, or SAP cockpit's properties export of one entity.
pub fn read_entities(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    match parse_structured(&text) {
        Ok(v) => Ok(v),
        Err(e) if text.trim_start().starts_with(['{', '[']) => {
            Err(usage(format!("{}: {e}", path.display())))
        }
        Err(structured) => parse_properties(&text).map_err(|props| {
            usage(format!(
                "{}: not JSON, YAML or a properties file ({structured}; as properties: {props})",
                path.display()
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_files() {
        assert_eq!(
            parse_structured("{\"a\": 1}").ok(),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            parse_structured("a: x\nb: [1]\n").ok(),
            Some(serde_json::json!({"a": "x", "b": [1]}))
        );
        assert!(parse_structured("{\"a\": ").is_err_and(|e| e.contains("not valid JSON")));
        assert!(parse_structured("Name=x\nType=HTTP\n").is_err());
    }
}
