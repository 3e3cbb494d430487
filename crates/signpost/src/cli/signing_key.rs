//! `signing-key list|rotate` on the platform target: the token service's signing keys through
//! Signpost's admin endpoints (`/signpost/v1/signing-keys`), with the broker credentials.

use clap::{Args, Subcommand};
use signpost_client::SigningKey;

use super::output::{self, OutputArgs};
use super::target;

#[derive(Debug, Args)]
pub struct SigningKeyArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(subcommand)]
    pub verb: SigningKeyVerb,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyVerb {
    /// The signing keys, oldest first, with their state.
    ///
    /// `active` signs; `retired` still verifies (and is in the JWKS) until EXPIRES, when the last
    /// token it can have signed expires; `expired` does neither and is deleted at the next
    /// rotation.
    #[command(after_help = "Example:
  signpost signing-key list -o json")]
    List,
    /// Make a fresh key sign from now on.
    ///
    /// The previous key retires: it stays in the JWKS and verifies for one token lifetime, so
    /// that tokens it signed keep working. Keys past that are deleted.
    #[command(after_help = "Example:
  signpost signing-key rotate")]
    Rotate,
}

fn table(keys: &[SigningKey]) -> String {
    let dash = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.kid.clone(),
                k.state.clone(),
                k.created_at.clone(),
                dash(&k.retired_at),
                dash(&k.expires_at),
            ]
        })
        .collect();
    output::table(&["KID", "STATE", "CREATED", "RETIRED", "EXPIRES"], &rows)
}

pub async fn signing_key(args: SigningKeyArgs) -> anyhow::Result<()> {
    let (client, _) = target::broker()?;
    match args.verb {
        SigningKeyVerb::List => {
            let keys = client.signing_keys().await?;
            output::render(&args.out, &serde_json::to_value(&keys)?, || table(&keys))
        }
        SigningKeyVerb::Rotate => {
            let rotation = client.rotate_signing_key().await?;
            output::info(&format!(
                "signing key '{}' signs from now on; the previous one verifies until its tokens expire",
                rotation.kid
            ));
            output::render(&args.out, &serde_json::to_value(&rotation)?, || {
                table(&rotation.keys)
            })
        }
    }
}
