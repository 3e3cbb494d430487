//! Tenant verbs on the tenant target (or `--service-key FILE`): `dest`, `fragment`, `cert`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use signpost_client::{
    BulkItem, FindRequest, FragmentRef, GenerateRequest, Kind, Level, ValidityUnit,
};

use super::labels::{self, LabelVerb};
use super::output::{self, OutputArgs};
use super::{read_entities, target, usage};

/// `--level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    Subaccount,
    Instance,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Subaccount => Level::Subaccount,
            LevelArg::Instance => Level::Instance,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TenantArgs {
    /// Use this service key instead of the stored tenant target.
    #[arg(long, value_name = "FILE", global = true)]
    pub service_key: Option<PathBuf>,
    /// The level of the entities.
    #[arg(long, value_enum, default_value_t = LevelArg::Subaccount, global = true)]
    pub level: LevelArg,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DestArgs {
    #[command(flatten)]
    pub common: TenantArgs,
    #[command(subcommand)]
    pub verb: DestVerb,
}

#[derive(Debug, Subcommand)]
pub enum DestVerb {
    /// List the destinations of a level.
    #[command(after_help = "Examples:
  signpost dest list
  signpost dest list --level instance -o json")]
    List,
    /// Show one destination (`-o json`: exactly the API's JSON).
    #[command(after_help = "Example:
  signpost dest get my-backend --show-secrets")]
    Get {
        /// The entity's name.
        name: String,
    },
    /// Create destinations from a file: one object or an array, JSON, YAML or SAP's cockpit
    /// properties export.
    #[command(after_help = "Examples:
  signpost dest create -f my-backend.json
  signpost dest create -f exported-from-cockpit --level instance")]
    Create {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace destinations from a file (they must exist).
    #[command(after_help = "Example:
  signpost dest update -f my-backend.yaml")]
    Update {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a destination.
    #[command(after_help = "Example:
  signpost dest delete my-backend")]
    Delete {
        /// The entity's name.
        name: String,
    },
    /// Find a destination as an application does: instance level first, then subaccount,
    /// fragments merged, tokens retrieved (`-o json`: exactly the API's JSON).
    #[command(after_help = "Examples:
  signpost dest find my-backend
  signpost dest find my-backend --fragment eu10 --user-token \"$JWT\" -o json")]
    Find {
        /// The destination's name.
        name: String,
        /// A fragment to merge (`X-fragment-name`); repeat for several, in order.
        #[arg(long, value_name = "NAME")]
        fragment: Vec<String>,
        /// The user's token for user flows (`X-user-token`).
        #[arg(long, value_name = "JWT")]
        user_token: Option<SecretString>,
    },
    /// Check connection: resolve the destination of the level as a find does (tokens
    /// included), then call its URL with the credentials, step by step (token, DNS, TCP, TLS,
    /// HTTP). Exits with 1 when a step fails.
    #[command(after_help = "Examples:
  signpost dest check my-backend
  signpost dest check my-backend --level instance -o json")]
    Check {
        /// The destination's name.
        name: String,
    },
    /// A destination's labels: get, set (replace all), add or remove.
    #[command(subcommand)]
    Label(LabelVerb),
}

#[derive(Debug, Args)]
pub struct FragmentArgs {
    #[command(flatten)]
    pub common: TenantArgs,
    #[command(subcommand)]
    pub verb: FragmentVerb,
}

#[derive(Debug, Subcommand)]
pub enum FragmentVerb {
    /// List the fragments of a level.
    #[command(after_help = "Example:
  signpost fragment list")]
    List,
    /// Show one fragment.
    #[command(after_help = "Example:
  signpost fragment get eu10 -o yaml")]
    Get {
        /// The entity's name.
        name: String,
    },
    /// Create fragments from a file (one object or an array; JSON, YAML or properties).
    #[command(after_help = "Example:
  signpost fragment create -f eu10.json")]
    Create {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace fragments from a file (they must exist).
    #[command(after_help = "Example:
  signpost fragment update -f eu10.json")]
    Update {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a fragment.
    #[command(after_help = "Example:
  signpost fragment delete eu10")]
    Delete {
        /// The entity's name.
        name: String,
    },
    /// A fragment's labels: get, set (replace all), add or remove.
    #[command(subcommand)]
    Label(LabelVerb),
}

#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(flatten)]
    pub common: TenantArgs,
    #[command(subcommand)]
    pub verb: CertVerb,
}

/// `--type` of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertType {
    Pem,
    P12,
    Jks,
}

#[derive(Debug, Subcommand)]
pub enum CertVerb {
    /// Upload a certificate or keystore (PEM, DER, PKCS#12, JKS; the format is detected).
    #[command(after_help = "Examples:
  signpost cert upload client.p12 --password changeit
  signpost cert upload ca.pem --name backend-ca.pem --level instance")]
    Upload {
        /// The certificate or keystore file.
        file: PathBuf,
        /// The certificate's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// The keystore's password.
        #[arg(long)]
        password: Option<SecretString>,
    },
    /// Generate a client certificate with Signpost's CA.
    #[command(after_help = "Examples:
  signpost cert generate client.pem --cn my-app --validity 30d --auto-renew
  signpost cert generate client.p12 --cn my-app --validity 1y --type p12 --password changeit")]
    Generate {
        /// The certificate's name.
        name: String,
        /// The subject's common name.
        #[arg(long, value_name = "CN")]
        cn: String,
        /// Validity: days (`30d`), months (`6mo`) or years (`1y`); 1 day to 1 year.
        #[arg(long, value_name = "DURATION", default_value = "30d")]
        validity: String,
        /// The file type.
        #[arg(long = "type", value_enum, default_value_t = CertType::Pem)]
        file_type: CertType,
        /// Renew automatically from two thirds of the validity on.
        #[arg(long)]
        auto_renew: bool,
        /// The keystore's password (needed for p12 and jks).
        #[arg(long)]
        password: Option<SecretString>,
    },
    /// List the certificates of a level with their expiry.
    #[command(after_help = "Examples:
  signpost cert list
  signpost cert list --expiring-within 30d")]
    List {
        /// Only certificates that end within this many days (`30d` or `30`).
        #[arg(long, value_name = "DAYS")]
        expiring_within: Option<String>,
    },
    /// The details view of a certificate (`-o json`: exactly the API's JSON).
    #[command(after_help = "Example:
  signpost cert show client.pem")]
    Show {
        /// The certificate's name.
        name: String,
    },
    /// Delete a certificate (refused while a destination names it).
    #[command(after_help = "Example:
  signpost cert delete client.pem")]
    Delete {
        /// The entity's name.
        name: String,
    },
    /// A certificate's labels: get, set (replace all), add or remove.
    #[command(subcommand)]
    Label(LabelVerb),
}

/// Reports the items of a bulk write; an error when any failed.
fn report_bulk(verb: &str, noun: &str, items: &[BulkItem]) -> anyhow::Result<()> {
    let failed: Vec<&BulkItem> = items
        .iter()
        .filter(|i| !(200..300).contains(&i.status))
        .collect();
    let ok = items.len() - failed.len();
    output::info(&format!("{ok} {noun}(s) {verb}"));
    if failed.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failed
        .iter()
        .map(|i| {
            format!(
                "  {}: {} (HTTP {})",
                i.name,
                i.cause.as_deref().unwrap_or("failed"),
                i.status
            )
        })
        .collect();
    anyhow::bail!("{} {noun}(s) failed:\n{}", failed.len(), lines.join("\n"))
}

fn entity_name(v: &Value) -> String {
    v.get("Name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

async fn write_file(
    client: &signpost_client::TenantClient,
    level: Level,
    kind: Kind,
    file: &Path,
    update: bool,
) -> anyhow::Result<()> {
    let body = read_entities(file)?;
    let result = if update {
        client.update(level, kind, &body).await?
    } else {
        client.create(level, kind, &body).await?
    };
    let verb = if update { "updated" } else { "created" };
    match result {
        Some(items) => report_bulk(verb, kind.noun(), &items),
        None => {
            output::info(&format!(
                "{} '{}' {verb} on {level} level",
                kind.noun(),
                entity_name(&body)
            ));
            Ok(())
        }
    }
}

async fn crud(
    common: &TenantArgs,
    kind: Kind,
    verb: Crud<'_>,
    columns: &[(&str, &str)],
) -> anyhow::Result<()> {
    let client = target::tenant(common.service_key.as_deref()).await?;
    let level: Level = common.level.into();
    let out = &common.out;
    match verb {
        Crud::List => {
            let items = client.list(level, kind).await?;
            let value = Value::Array(items);
            output::render(out, &value, || {
                let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
                let rows: Vec<Vec<String>> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| {
                        columns
                            .iter()
                            .map(|(_, key)| {
                                output::shown(
                                    key,
                                    item.get(*key).unwrap_or(&Value::Null),
                                    out.show_secrets,
                                )
                            })
                            .collect()
                    })
                    .collect();
                output::table(&headers, &rows)
            })
        }
        Crud::Get(name) => {
            let value = client.get(level, kind, name).await?;
            output::render(out, &value, || output::properties(&value, out.show_secrets))
        }
        Crud::Create(file) => write_file(&client, level, kind, file, false).await,
        Crud::Update(file) => write_file(&client, level, kind, file, true).await,
        Crud::Delete(name) => {
            client.delete(level, kind, name).await?;
            output::info(&format!("{} '{name}' deleted", kind.noun()));
            Ok(())
        }
    }
}

enum Crud<'a> {
    List,
    Get(&'a str),
    Create(&'a Path),
    Update(&'a Path),
    Delete(&'a str),
}

pub async fn dest(args: DestArgs) -> anyhow::Result<()> {
    const COLUMNS: &[(&str, &str)] = &[
        ("NAME", "Name"),
        ("TYPE", "Type"),
        ("URL", "URL"),
        ("AUTHENTICATION", "Authentication"),
        ("PROXY", "ProxyType"),
    ];
    let verb = match &args.verb {
        DestVerb::List => Crud::List,
        DestVerb::Get { name } => Crud::Get(name),
        DestVerb::Create { file } => Crud::Create(file),
        DestVerb::Update { file } => Crud::Update(file),
        DestVerb::Delete { name } => Crud::Delete(name),
        DestVerb::Label(verb) => return labels::run(&args.common, Kind::Destination, verb).await,
        DestVerb::Check { name } => {
            let client = target::tenant(args.common.service_key.as_deref()).await?;
            let level: Level = args.common.level.into();
            let report = client.check_destination(level, name).await?;
            output::render(&args.common.out, &report, || check_table(&report))?;
            if report["ok"] != Value::Bool(true) {
                anyhow::bail!("the check of '{name}' failed");
            }
            return Ok(());
        }
        DestVerb::Find {
            name,
            fragment,
            user_token,
        } => {
            let client = target::tenant(args.common.service_key.as_deref()).await?;
            let request = FindRequest {
                fragments: fragment.iter().map(FragmentRef::new).collect(),
                user_token: user_token.as_ref().map(|t| t.expose_secret().to_owned()),
                ..FindRequest::new(name.as_str())
            };
            let value = serde_json::to_value(client.find(&request).await?.response)?;
            let out = &args.common.out;
            return output::render(out, &value, || find_table(&value, out.show_secrets));
        }
    };
    crud(&args.common, Kind::Destination, verb, COLUMNS).await
}

/// The check's report as a checklist: one row per step.
fn check_table(report: &Value) -> String {
    let rows: Vec<Vec<String>> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let detail = match s["step"].as_str() {
                Some("dns") => s["addresses"]
                    .as_array()
                    .map(|a| a.iter().map(output::cell).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                Some("tcp") => output::cell(&s["address"]),
                Some("tls") => format!(
                    "{} {}",
                    output::cell(&s["protocol"]),
                    output::cell(&s["certificate"]["subject"])
                )
                .trim()
                .to_owned(),
                Some("http") => format!(
                    "{} {}",
                    output::cell(&s["method"]),
                    output::cell(&s["status"])
                )
                .trim()
                .to_owned(),
                Some("token") => output::cell(&s["authentication"]),
                _ => String::new(),
            };
            vec![
                if s["ok"] == Value::Bool(true) {
                    "ok"
                } else {
                    "FAILED"
                }
                .to_owned(),
                output::cell(&s["step"]),
                format!("{} ms", output::cell(&s["ms"])),
                s["error"].as_str().map_or(detail, str::to_owned),
            ]
        })
        .collect();
    format!(
        "Check of {} ({} level) at {}\n\n{}",
        output::cell(&report["name"]),
        output::cell(&report["level"]),
        output::cell(&report["target"]),
        output::table(&["", "STEP", "TIME", "DETAIL"], &rows)
    )
}

fn find_table(value: &Value, show_secrets: bool) -> String {
    let mut text = String::new();
    let owner = &value["owner"];
    let level = if owner["InstanceId"].is_string() {
        format!("instance {}", output::cell(&owner["InstanceId"]))
    } else {
        format!("subaccount {}", output::cell(&owner["SubaccountId"]))
    };
    text.push_str(&format!("Found on {level} level\n\n"));
    text.push_str(&output::properties(
        &value["destinationConfiguration"],
        show_secrets,
    ));
    if let Some(tokens) = value["authTokens"].as_array().filter(|t| !t.is_empty()) {
        let rows: Vec<Vec<String>> = tokens
            .iter()
            .map(|t| {
                vec![
                    output::cell(&t["type"]),
                    output::shown("value", &t["value"], show_secrets),
                    output::cell(&t["expires_in"]),
                    t["error"].as_str().unwrap_or("").to_owned(),
                ]
            })
            .collect();
        text.push('\n');
        text.push_str(&output::table(
            &["TOKEN TYPE", "VALUE", "EXPIRES IN", "ERROR"],
            &rows,
        ));
    }
    if let Some(certs) = value["certificates"].as_array().filter(|c| !c.is_empty()) {
        let rows: Vec<Vec<String>> = certs
            .iter()
            .map(|c| vec![output::cell(&c["Name"]), output::cell(&c["Type"])])
            .collect();
        text.push('\n');
        text.push_str(&output::table(&["CERTIFICATE", "TYPE"], &rows));
    }
    text
}

pub async fn fragment(args: FragmentArgs) -> anyhow::Result<()> {
    const COLUMNS: &[(&str, &str)] = &[("NAME", "FragmentName")];
    let verb = match &args.verb {
        FragmentVerb::List => Crud::List,
        FragmentVerb::Get { name } => Crud::Get(name),
        FragmentVerb::Create { file } => Crud::Create(file),
        FragmentVerb::Update { file } => Crud::Update(file),
        FragmentVerb::Delete { name } => Crud::Delete(name),
        FragmentVerb::Label(verb) => return labels::run(&args.common, Kind::Fragment, verb).await,
    };
    crud(&args.common, Kind::Fragment, verb, COLUMNS).await
}

/// `30d`, `30days`, `6mo`, `6months`, `1y`, `1year(s)`; a bare number is days.
pub fn parse_validity(text: &str) -> anyhow::Result<(u32, ValidityUnit)> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u32 = num
        .parse()
        .map_err(|_| usage(format!("'{text}' is not a duration such as 30d, 6mo or 1y")))?;
    let unit = match unit {
        "" | "d" | "day" | "days" => ValidityUnit::Days,
        "mo" | "month" | "months" => ValidityUnit::Months,
        "y" | "year" | "years" => ValidityUnit::Years,
        _ => {
            return Err(usage(format!(
                "'{text}' is not a duration such as 30d, 6mo or 1y"
            )))
        }
    };
    Ok((n, unit))
}

pub async fn cert(args: CertArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let level: Level = common.level.into();
    let out = &common.out;
    match args.verb {
        CertVerb::Upload {
            file,
            name,
            password,
        } => {
            let content = std::fs::read(&file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| usage("give the certificate's name with --name"))?,
            };
            let client = target::tenant(common.service_key.as_deref()).await?;
            client
                .upload_certificate(
                    level,
                    &name,
                    None,
                    &content,
                    password.as_ref().map(|p| p.expose_secret()),
                )
                .await?;
            output::info(&format!("certificate '{name}' uploaded on {level} level"));
        }
        CertVerb::Generate {
            name,
            cn,
            validity,
            file_type,
            auto_renew,
            password,
        } => {
            let validity = parse_validity(&validity)?;
            let request = GenerateRequest {
                name: name.clone(),
                file_type: match file_type {
                    CertType::Pem => "PEM",
                    CertType::P12 => "PKCS12",
                    CertType::Jks => "JKS",
                }
                .into(),
                common_name: cn,
                validity,
                automatic_renew: auto_renew,
                password: password.map(|p| p.expose_secret().to_owned()),
            };
            let client = target::tenant(common.service_key.as_deref()).await?;
            client.generate_certificate(level, &request).await?;
            output::info(&format!("certificate '{name}' generated on {level} level"));
        }
        CertVerb::List { expiring_within } => {
            let within = expiring_within
                .as_deref()
                .map(|w| match parse_validity(w)? {
                    (n, ValidityUnit::Days) => Ok(n),
                    _ => Err(usage(format!(
                        "--expiring-within takes days, e.g. 30d, not '{w}'"
                    ))),
                })
                .transpose()?;
            let client = target::tenant(common.service_key.as_deref()).await?;
            let items = client.list_certificate_details(level, within).await?;
            let value = Value::Array(items);
            output::render(out, &value, || {
                let rows: Vec<Vec<String>> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let leaf = &c["entries"][0]["chain"][0];
                        vec![
                            output::cell(&c["name"]),
                            output::cell(&c["format"]),
                            output::cell(&c["origin"]),
                            output::cell(&leaf["subject"]),
                            output::cell(&leaf["notAfter"]),
                            output::cell(&leaf["daysLeft"]),
                            output::cell(&c["automaticRenewal"]),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "NAME",
                        "FORMAT",
                        "ORIGIN",
                        "SUBJECT",
                        "NOT AFTER",
                        "DAYS LEFT",
                        "AUTO RENEW",
                    ],
                    &rows,
                )
            })?;
        }
        CertVerb::Show { name } => {
            let client = target::tenant(common.service_key.as_deref()).await?;
            let value = client.certificate_details(level, &name).await?;
            output::render(out, &value, || cert_table(&value))?;
        }
        CertVerb::Label(verb) => labels::run(common, Kind::Certificate, &verb).await?,
        CertVerb::Delete { name } => {
            let client = target::tenant(common.service_key.as_deref()).await?;
            client
                .delete(level, Kind::Certificate, &name)
                .await
                .with_context(|| format!("cannot delete certificate '{name}'"))?;
            output::info(&format!("certificate '{name}' deleted"));
        }
    }
    Ok(())
}

fn cert_table(value: &Value) -> String {
    let mut text = String::new();
    let top: Vec<Vec<String>> = [
        "name",
        "format",
        "origin",
        "automaticRenewal",
        "locked",
        "lastRenewal",
    ]
    .iter()
    .map(|k| vec![(*k).to_owned(), output::cell(&value[*k])])
    .collect();
    text.push_str(&output::table(&["FIELD", "VALUE"], &top));
    for entry in value["entries"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\nentry {} ({})\n",
            output::cell(&entry["alias"]),
            output::cell(&entry["kind"])
        ));
        let rows: Vec<Vec<String>> = entry["chain"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                vec![
                    output::cell(&c["subject"]),
                    output::cell(&c["issuer"]),
                    output::cell(&c["notAfter"]),
                    output::cell(&c["daysLeft"]),
                    output::cell(&c["sha256Fingerprint"]),
                ]
            })
            .collect();
        text.push_str(&output::table(
            &["SUBJECT", "ISSUER", "NOT AFTER", "DAYS LEFT", "SHA-256"],
            &rows,
        ));
    }
    text
}
