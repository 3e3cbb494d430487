//! Bearer tokens presented to the destination configuration API and find destination: the
//! verification `Signpost::authenticate` applies (the JWT's header, its key id, the RS256
//! signature, the claims, the binding and instance they name), on a real Signpost with an
//! in-memory SQLite store that has one instance, one binding and a token of it.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use serde_json::json;
use signpost_core::{
    CoreConfig, Error, OAuthConfig, Principal, Signpost, CATALOG_PLAN_ID, CATALOG_SERVICE_ID,
};
use signpost_store::{MasterKey, SqliteStore};
use signpost_wire::{BindRequest, ProvisionRequest};

struct Live {
    runtime: tokio::runtime::Runtime,
    signpost: Signpost,
    /// A token of the binding, and who it authenticates as.
    token: String,
    principal: Principal,
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (signpost, token, principal) = runtime.block_on(start());
        Live {
            runtime,
            signpost,
            token,
            principal,
        }
    })
}

async fn start() -> (Signpost, String, Principal) {
    let store = SqliteStore::open(":memory:", &MasterKey::generate(), 1000)
        .await
        .expect("an in-memory store");
    let config = CoreConfig {
        public_url: "http://127.0.0.1:1".into(),
        uaadomain: "127.0.0.1:1".into(),
        token_lifetime_secs: 7 * 24 * 3600,
        oauth: OAuthConfig::default(),
        cert_url: None,
        principal_cache_bytes: signpost_core::DEFAULT_PRINCIPAL_CACHE_BYTES,
    };
    let signpost = Signpost::new(Arc::new(store), config)
        .await
        .expect("a Signpost");
    let body = json!({
        "service_id": CATALOG_SERVICE_ID,
        "plan_id": CATALOG_PLAN_ID,
        "context": {"platform": "cloudfoundry", "subaccount_id": "fuzz-subaccount", "subdomain": "fuzz"},
    });
    let req: ProvisionRequest = serde_json::from_value(body.clone()).expect("a provision body");
    signpost
        .provision("fuzz-instance", req, &body)
        .await
        .expect("provisioned");
    let body = json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID});
    let req: BindRequest = serde_json::from_value(body.clone()).expect("a bind body");
    let key = signpost
        .bind("fuzz-instance", "fuzz-binding", req, &body)
        .await
        .expect("bound")
        .credentials;
    let secret = key.clientsecret.as_deref().expect("a secret binding");
    let token = signpost
        .client_credentials_token(&key.clientid, secret, None, None)
        .await
        .expect("a token")
        .access_token;
    let principal = signpost
        .authenticate(&token)
        .await
        .expect("the binding's own token authenticates");
    (signpost, token, principal)
}

/// The bytes as an `Authorization` header value (its bearer token, as the API extracts it) and
/// as the token itself; and spliced into the binding's real token as its header, claims or
/// signature. Only the real token authenticates, as its binding; everything else is the one
/// 401, never another error.
pub fn bearer_jwt(data: &[u8]) {
    let live = live();
    let mut candidates: Vec<String> = Vec::new();
    if let Some(value) = HeaderValue::from_bytes(data)
        .ok()
        .and_then(|v| v.to_str().ok().map(str::to_owned))
    {
        if let Some((scheme, token)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                candidates.push(token.trim().to_owned());
            }
        }
        candidates.push(value);
    }
    let parts: Vec<&str> = live.token.split('.').collect();
    let spliced = URL_SAFE_NO_PAD.encode(data);
    for i in 0..parts.len() {
        let mut p = parts.clone();
        p[i] = &spliced;
        candidates.push(p.join("."));
    }
    for token in candidates {
        match live.runtime.block_on(live.signpost.authenticate(&token)) {
            Ok(p) => {
                assert_eq!(p, live.principal, "authenticated as someone else");
                assert_eq!(
                    token, live.token,
                    "a token other than the one issued authenticates"
                );
            }
            Err(Error::Unauthorized(_)) => {}
            Err(e) => panic!("not a 401 but {e:?}"),
        }
    }
}
