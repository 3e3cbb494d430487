//! Targets: the platform target (broker URL and HTTP Basic credentials) and the tenant target (a
//! service key), kept in `$XDG_CONFIG_HOME/signpost/` (default `~/.config/signpost`) in files of
//! mode 0600; and the local record of instances and keys created through this CLI.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use signpost_client::{BrokerClient, ServiceKey, TenantClient};

use super::output::{self, OutputArgs};
use super::usage;

const PLATFORM_FILE: &str = "platform.json";
const TENANT_FILE: &str = "tenant.json";
const RECORD_FILE: &str = "instances.json";

/// The configuration directory: `$XDG_CONFIG_HOME/signpost`, else `$HOME/.config/signpost`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("signpost"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set: set one of them"))?;
    Ok(PathBuf::from(home).join(".config").join("signpost"))
}

/// Writes `contents` to `path` with mode 0600 (replacing it atomically), creating the directory
/// with mode 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The stored platform target.
#[derive(Clone, Serialize, Deserialize)]
pub struct Platform {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The broker client of the stored platform target.
pub fn broker() -> anyhow::Result<(BrokerClient, Platform)> {
    let path = config_dir()?.join(PLATFORM_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("not logged in to a platform: run `signpost login URL --broker-user USER` first")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let platform: Platform = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is damaged: run `signpost login URL --broker-user USER` again",
            path.display()
        )
    })?;
    let client = BrokerClient::new(&platform.url, &platform.user, &platform.password)?;
    Ok((client, platform))
}

/// Reads a service key file (the key, or an object with it under `credentials`).
pub fn read_service_key(path: &Path) -> anyhow::Result<ServiceKey> {
    let text = fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the service key {}: {e}",
            path.display()
        ))
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "the service key {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    ServiceKey::from_json(&value).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The tenant client of `--service-key FILE`, else of the stored tenant target.
pub async fn tenant(service_key: Option<&Path>) -> anyhow::Result<TenantClient> {
    let key = match service_key {
        Some(p) => read_service_key(p)?,
        None => {
            let path = config_dir()?.join(TENANT_FILE);
            if !path.exists() {
                bail!(
                    "not logged in to a tenant: run `signpost login --service-key FILE` or pass --service-key FILE"
                );
            }
            read_service_key(&path)?
        }
    };
    TenantClient::login(&key).await.map_err(|e| {
        let hint = match e {
            signpost_client::Error::TokenService { .. } => {
                ": log in with a valid service key (`signpost login --service-key FILE`)"
            }
            _ => "",
        };
        anyhow!("{e}{hint}")
    })
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  signpost login http://127.0.0.1:8080 --broker-user broker        # asks for the password
  SIGNPOST_BROKER_PASSWORD=... signpost login http://127.0.0.1:8080 --broker-user broker
  signpost login --service-key signpost-data/default-service-key.json")]
pub struct LoginArgs {
    /// The server's base URL for the platform target (broker verbs `instance`, `key`).
    #[arg(value_name = "URL", required_unless_present = "service_key")]
    pub url: Option<String>,
    /// The broker's HTTP Basic user.
    #[arg(long, value_name = "USER", requires = "url")]
    pub broker_user: Option<String>,
    /// The broker's password (else SIGNPOST_BROKER_PASSWORD, else asked for without echo).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SIGNPOST_BROKER_PASSWORD",
        hide_env_values = true
    )]
    pub broker_password: Option<SecretString>,
    /// Store this service key as the tenant target (tenant verbs `dest`, `fragment`, `cert`,
    /// `export`, `import`).
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    pub service_key: Option<PathBuf>,
}

/// `signpost login`: checks the credentials against the server, then stores the target.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let dir = config_dir()?;
    if let Some(path) = &args.service_key {
        let key = read_service_key(path)?;
        TenantClient::login(&key)
            .await
            .context("the service key was refused")?;
        let text = serde_json::to_string_pretty(&key.raw)?;
        write_private(&dir.join(TENANT_FILE), text.as_bytes())?;
        output::info(&format!(
            "tenant target stored: {} (client {})",
            key.uri, key.clientid
        ));
        return Ok(());
    }
    let url = args
        .url
        .ok_or_else(|| usage("give a URL or --service-key FILE"))?;
    let user = args
        .broker_user
        .ok_or_else(|| usage("--broker-user USER is required with a URL"))?;
    let password = match args.broker_password {
        Some(p) => p.expose_secret().to_owned(),
        None => rpassword::prompt_password(format!("Broker password for {user}: ")).map_err(
            |e| {
                usage(format!(
                    "no broker password: pass --broker-password, set SIGNPOST_BROKER_PASSWORD or run in a terminal ({e})"
                ))
            },
        )?,
    };
    let url = url.trim_end_matches('/').to_owned();
    let client = BrokerClient::new(&url, &user, &password).map_err(|e| usage(e.to_string()))?;
    client
        .catalog_ids()
        .await
        .context("the broker refused the login")?;
    let platform = Platform {
        url: url.clone(),
        user,
        password,
    };
    write_private(
        &dir.join(PLATFORM_FILE),
        serde_json::to_string_pretty(&platform)?.as_bytes(),
    )?;
    output::info(&format!("platform target stored: {url}"));
    Ok(())
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Forget only the platform target.
    #[arg(long, conflicts_with = "tenant")]
    pub platform: bool,
    /// Forget only the tenant target.
    #[arg(long)]
    pub tenant: bool,
}

/// `signpost logout`: removes the stored targets (the local record of instances stays).
pub fn logout(args: &LogoutArgs) -> anyhow::Result<()> {
    let dir = config_dir()?;
    let both = !args.platform && !args.tenant;
    for (wanted, file) in [
        (args.platform || both, PLATFORM_FILE),
        (args.tenant || both, TENANT_FILE),
    ] {
        if wanted {
            match fs::remove_file(dir.join(file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(format!("cannot remove {file}")),
            }
        }
    }
    output::info("logged out");
    Ok(())
}

/// `signpost target`: the stored targets.
pub fn show(out: &OutputArgs) -> anyhow::Result<()> {
    let dir = config_dir()?;
    let platform = fs::read_to_string(dir.join(PLATFORM_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Platform>(&t).ok());
    let tenant = fs::read_to_string(dir.join(TENANT_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let value = serde_json::json!({
        "platform": platform.as_ref().map(|p| serde_json::json!({"url": p.url, "user": p.user})),
        "tenant": tenant.as_ref().map(|k| serde_json::json!({"url": k["uri"], "clientid": k["clientid"]})),
    });
    output::render(out, &value, || {
        let cell = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let rows = vec![
            vec![
                "platform".to_owned(),
                cell(&value["platform"]["url"]),
                cell(&value["platform"]["user"]),
            ],
            vec![
                "tenant".to_owned(),
                cell(&value["tenant"]["url"]),
                cell(&value["tenant"]["clientid"]),
            ],
        ];
        output::table(&["TARGET", "URL", "USER / CLIENT"], &rows)
    })
}

/// What this CLI created on one platform: instances with their subaccount and keys.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// Per platform URL, per instance name.
    #[serde(default)]
    pub platforms: BTreeMap<String, BTreeMap<String, InstanceRecord>>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub subaccount: String,
    #[serde(default)]
    pub keys: Vec<String>,
}

impl Record {
    pub fn load() -> anyhow::Result<Self> {
        let path = config_dir()?.join(RECORD_FILE);
        match fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).with_context(|| {
                format!(
                    "{} is damaged: remove it (it only records what this CLI created)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self) -> anyhow::Result<()> {
        write_private(
            &config_dir()?.join(RECORD_FILE),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    pub fn instances(&mut self, platform: &str) -> &mut BTreeMap<String, InstanceRecord> {
        self.platforms.entry(platform.to_owned()).or_default()
    }
}
