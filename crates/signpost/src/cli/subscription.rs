//! `subscription create|delete|list` on the platform target: subscriber subaccounts of a
//! provider's service instance (SaaS multitenancy, docs/MULTITENANCY.md), through Signpost's
//! admin endpoints (`/signpost/v1/subscriptions`) with the broker credentials.

use clap::{Args, Subcommand};
use signpost_client::Subscription;

use super::output::{self, OutputArgs};
use super::target;

#[derive(Debug, Args)]
pub struct SubscriptionArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(subcommand)]
    pub verb: SubscriptionVerb,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionVerb {
    /// Subscribe a subaccount to a provider's instance (the subaccount is made when new).
    ///
    /// The subscriber then gets tenant tokens of the instance's service keys (`x-zid: <its id>`,
    /// or the token URL `<scheme>://<subdomain>.<uaadomain>/oauth/token`), and its own
    /// subscription level. Run again to change the subdomain.
    #[command(after_help = "Example:
  signpost subscription create my-saas-app customer-a --subdomain customer-a")]
    Create {
        /// The provider's service instance.
        instance: String,
        /// The subscriber subaccount's id.
        subaccount: String,
        /// The subscriber's subdomain (a DNS label).
        #[arg(long, value_name = "LABEL")]
        subdomain: String,
    },
    /// End a subscription; its subscription-level destinations, fragments and certificates
    /// are deleted with it and the subscriber's tokens stop working.
    #[command(after_help = "Example:
  signpost subscription delete my-saas-app customer-a")]
    Delete {
        /// The provider's service instance.
        instance: String,
        /// The subscriber subaccount's id.
        subaccount: String,
    },
    /// The subscriptions of a provider's instance.
    #[command(after_help = "Example:
  signpost subscription list my-saas-app -o json")]
    List {
        /// The provider's service instance.
        instance: String,
    },
}

fn table(subscriptions: &[Subscription]) -> String {
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|s| {
            vec![
                s.subaccount_id.clone(),
                s.subdomain.clone(),
                s.created_at.clone(),
            ]
        })
        .collect();
    output::table(&["SUBACCOUNT", "SUBDOMAIN", "SUBSCRIBED"], &rows)
}

pub async fn subscription(args: SubscriptionArgs) -> anyhow::Result<()> {
    let (client, _) = target::broker()?;
    match args.verb {
        SubscriptionVerb::Create {
            instance,
            subaccount,
            subdomain,
        } => {
            let s = client.subscribe(&instance, &subaccount, &subdomain).await?;
            output::info(&format!(
                "subaccount '{}' (subdomain '{}') is subscribed to instance '{}'",
                s.subaccount_id, s.subdomain, s.instance_id
            ));
            output::render(&args.out, &serde_json::to_value(&s)?, || {
                table(std::slice::from_ref(&s))
            })
        }
        SubscriptionVerb::Delete {
            instance,
            subaccount,
        } => {
            client.unsubscribe(&instance, &subaccount).await?;
            output::info(&format!(
                "subaccount '{subaccount}' is no longer subscribed to instance '{instance}'"
            ));
            Ok(())
        }
        SubscriptionVerb::List { instance } => {
            let list = client.subscriptions(&instance).await?;
            output::render(&args.out, &serde_json::to_value(&list)?, || table(&list))
        }
    }
}
