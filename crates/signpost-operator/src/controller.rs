//! The controller: one reconcile per `Destination` resource (kube-rs runtime: watcher,
//! reflector, finalizer, server-side apply with the field manager `signpost-operator`).
//!
//! For each resource it
//! 1. checks the spec, the name (no other resource of that name, no foreign Service of that name)
//!    and, for static resources, the destination (and fragment, level) through the Destination
//!    service, with `$skipTokenRetrieval` so that no token flow runs;
//! 2. sets the `Available` condition with SAP's reason and text, and records an Event when it
//!    changes;
//! 3. on success makes `http://<name>.<namespace>` reach the proxy: a Service named after the
//!    resource in the operator's namespace selecting the proxy's pods, and, when the resource
//!    lives elsewhere, an `ExternalName` Service of that name in its own namespace pointing at the
//!    first (SAP makes the same two);
//! 4. writes the routes of all successful resources into the ConfigMap `signpost-proxy-routes`
//!    (key `destinations.yaml`) and the instances' service keys into the Secret
//!    `signpost-proxy-credentials` (`<instance>.json`), both in the operator's namespace.
//!
//! It checks again every `executionIntervalMinutes`, at once when the resource, a referenced
//! Secret or the values file changes, and cleans up through its finalizer on delete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::{json, Value};
use signpost_client::{Error as ClientError, FindRequest, FragmentRef, LookupLevel};
use signpost_proxy::config::ConfigError;
use signpost_proxy::secrets::{FetchedSecrets, SecretData};
use tokio::sync::Mutex;

use crate::checks::{self, Verdict};
use crate::crd::{self, Destination, Level};
use crate::metrics::Metrics;
use crate::values::{Resolved, Values};

/// The field manager of every server-side apply, and the `managed-by` label's value.
pub const MANAGER: &str = "signpost-operator";
pub const FINALIZER: &str = "destination.connectivity.api.sap/signpost-operator";
pub const ROUTES_CONFIGMAP: &str = "signpost-proxy-routes";
pub const ROUTES_KEY: &str = "destinations.yaml";
pub const CREDENTIALS_SECRET: &str = "signpost-proxy-credentials";
/// Annotation on the Services the operator makes: `<namespace>/<name>` of their resource.
pub const OWNER_ANNOTATION: &str = "signpost.dev/destination";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const HTTP_PORT: u16 = 80;
const TCP_PORT: u16 = 20004;
/// How soon a check that failed for a passing reason (the Destination service unreachable, an
/// API error) is tried again.
const RETRY: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// How the operator reaches the in-cluster Signpost server to make the first-run key.
#[derive(Clone)]
pub struct Bootstrap {
    pub url: String,
    pub user: String,
    pub password: secrecy::SecretString,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Everything the reconciles share.
pub struct Context {
    pub client: Client,
    /// The operator's namespace: the proxy's, its ConfigMap's and Secret's.
    pub namespace: String,
    /// Labels of the proxy's pods.
    pub proxy_selector: BTreeMap<String, String>,
    pub values_path: PathBuf,
    pub bootstrap: Option<Bootstrap>,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub store: Store<Destination>,
    /// Set once the store holds the first full list of resources.
    listed: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("namespace", &self.namespace)
            .field("values_path", &self.values_path)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The values file's text when last read, and what it parsed to (or why it did not).
    values_text: Option<String>,
    values: Option<Result<Values, ConfigError>>,
    resolved: Option<Result<Arc<Resolved>, ConfigError>>,
    resolved_at: Option<Instant>,
    /// Set when a referenced Secret or the values changed.
    dirty: bool,
    /// Service keys the bootstrap made, by instance.
    bootstrapped: BTreeMap<String, Value>,
    /// The routes of the resources that passed, by (namespace, name).
    routes: BTreeMap<(String, String), Value>,
    /// The verdict of every resource checked, by (namespace, name); for the metrics.
    verdicts: BTreeMap<(String, String), String>,
    written_routes: Option<String>,
    written_credentials: Option<BTreeMap<String, String>>,
}

impl Context {
    pub fn new(
        client: Client,
        namespace: String,
        proxy_selector: BTreeMap<String, String>,
        values_path: PathBuf,
        bootstrap: Option<Bootstrap>,
        recorder: Recorder,
        store: Store<Destination>,
    ) -> Self {
        Self {
            client,
            namespace,
            proxy_selector,
            values_path,
            bootstrap,
            metrics: Metrics::default(),
            recorder,
            store,
            listed: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Marks the store as holding the full list of resources.
    pub fn set_listed(&self) {
        self.listed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Marks the resolved configuration stale (a referenced Secret or the values changed).
    pub async fn invalidate(&self) {
        self.state.lock().await.dirty = true;
    }

    /// The Secrets the current values reference.
    pub async fn secret_refs(&self) -> BTreeSet<(String, String)> {
        match &self.state.lock().await.values {
            Some(Ok(v)) => v.secret_refs(&self.namespace),
            _ => BTreeSet::new(),
        }
    }

    /// Reads the values file again; true when it changed (the configuration is then resolved
    /// again before the next check).
    pub async fn reread_values(&self) -> bool {
        let file = self.values_path.display().to_string();
        let read = tokio::fs::read_to_string(&self.values_path).await;
        let mut state = self.state.lock().await;
        let (text, parsed) = match read {
            Ok(text) => {
                let parsed = Values::parse(&text, &file);
                (Some(text), parsed)
            }
            // Unreadable: the last text is kept, so that a later read of it counts as a change.
            Err(e) => (
                state.values_text.clone(),
                Err(ConfigError {
                    path: file,
                    message: format!("cannot read: {e}"),
                }),
            ),
        };
        let changed = state.values.is_none() || state.values_text != text;
        if changed {
            state.values_text = text;
            state.values = Some(parsed);
            state.dirty = true;
        }
        changed
    }

    /// The resolved configuration, resolved again when stale or older than `max_age`. Secrets
    /// are fetched from the API; the credentials Secret is written when its files change.
    async fn resolved(&self) -> Result<Result<Arc<Resolved>, ConfigError>, Error> {
        let mut state = self.state.lock().await;
        let fresh = state.resolved.is_some()
            && !state.dirty
            && state
                .resolved_at
                .is_some_and(|at| at.elapsed() < self.interval(&state));
        if fresh {
            if let Some(r) = &state.resolved {
                return Ok(r.clone());
            }
        }
        if state.values.is_none() {
            drop(state);
            self.reread_values().await;
            state = self.state.lock().await;
        }
        let values = match state.values.clone() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Ok(Err(e)),
            None => {
                return Ok(Err(ConfigError {
                    path: self.values_path.display().to_string(),
                    message: "not read yet".into(),
                }))
            }
        };
        let mut fetched = Vec::new();
        for (ns, name) in values.secret_refs(&self.namespace) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            if let Some(secret) = api.get_opt(&name).await? {
                fetched.push(secret_data(&ns, &name, secret));
            }
        }
        if let Some(boot) = &self.bootstrap {
            for instance in values.instances_without_credentials() {
                if state.bootstrapped.contains_key(&instance) {
                    continue;
                }
                match bootstrap_key(boot, &instance).await {
                    Ok(key) => {
                        tracing::info!(instance = %instance, server = %boot.url, "bootstrap: bound a service key of the in-cluster server");
                        state.bootstrapped.insert(instance, key);
                    }
                    Err(e) => {
                        tracing::warn!(instance = %instance, "bootstrap: cannot bind a service key: {e}");
                    }
                }
            }
        }
        let previous = match &state.resolved {
            Some(Ok(r)) => Some(r.clone()),
            _ => None,
        };
        let secrets = FetchedSecrets::new(fetched);
        let resolved = values
            .resolve(secrets, &self.namespace, &state.bootstrapped)
            .and_then(|config| Resolved::new(config, previous.as_deref()))
            .map(Arc::new);
        match &resolved {
            Ok(r) => {
                if state.written_credentials.as_ref() != Some(&r.credential_files) {
                    self.write_credentials(&r.credential_files).await?;
                    state.written_credentials = Some(r.credential_files.clone());
                }
            }
            Err(e) => tracing::warn!("configuration: {e}"),
        }
        self.metrics.set_config_valid(resolved.is_ok());
        state.resolved = Some(resolved.clone());
        state.resolved_at = Some(Instant::now());
        state.dirty = false;
        Ok(resolved)
    }

    fn interval(&self, state: &State) -> Duration {
        match &state.values {
            Some(Ok(v)) => v.execution_interval(),
            _ => Duration::from_secs(180),
        }
    }

    /// Resolves the values now (writing the credentials Secret), so that the proxy finds its
    /// service keys before the first resource is checked. A configuration error is logged and
    /// left to the resources' conditions.
    pub async fn prime(&self) -> Result<(), Error> {
        self.resolved().await.map(drop)
    }

    /// `executionIntervalMinutes` of the current values.
    pub async fn execution_interval(&self) -> Duration {
        let state = self.state.lock().await;
        self.interval(&state)
    }

    async fn write_credentials(&self, files: &BTreeMap<String, String>) -> Result<(), Error> {
        let data: BTreeMap<String, ByteString> = files
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
            .collect();
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(CREDENTIALS_SECRET.into()),
                namespace: Some(self.namespace.clone()),
                labels: Some(managed_labels()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            CREDENTIALS_SECRET,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        tracing::info!(
            secret = CREDENTIALS_SECRET,
            instances = files.len(),
            "credentials written"
        );
        Ok(())
    }

    /// Takes the routes of the ConfigMap as it is (written by an earlier run or another
    /// replica), so that a start or a change of leader does not take routes away from the proxy
    /// before each resource is checked again.
    pub async fn seed_routes(&self) -> Result<(), Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(cm) = api.get_opt(ROUTES_CONFIGMAP).await? else {
            return Ok(());
        };
        let text = cm
            .data
            .and_then(|d| d.get(ROUTES_KEY).cloned())
            .unwrap_or_default();
        let tree: Value = serde_norway::from_str(&text).unwrap_or(Value::Null);
        let mut state = self.state.lock().await;
        for route in tree["destinations"].as_array().into_iter().flatten() {
            if let (Some(ns), Some(name)) = (route["namespace"].as_str(), route["name"].as_str()) {
                state
                    .routes
                    .insert((ns.to_owned(), name.to_owned()), route.clone());
            }
        }
        tracing::info!(
            routes = state.routes.len(),
            "routes of the ConfigMap taken over"
        );
        Ok(())
    }

    /// Writes the routes ConfigMap when the routes changed (always on the first call). Once the
    /// resources have been listed, routes of resources that no longer exist are dropped.
    pub async fn write_routes(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if self.listed.load(std::sync::atomic::Ordering::Acquire) {
            let store = &self.store;
            state.routes.retain(|(ns, name), _| {
                store
                    .get(&ObjectRef::<Destination>::new(name).within(ns))
                    .is_some()
            });
        }
        let list: Vec<&Value> = state.routes.values().collect();
        let body = serde_norway::to_string(&json!({ "destinations": list }))
            .unwrap_or_else(|_| "destinations: []\n".into());
        let text = format!(
            "# Written by signpost-operator from the Destination resources that are Available.\n{body}"
        );
        if state.written_routes.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(ROUTES_CONFIGMAP.into()),
                namespace: Some(self.namespace.clone()),
                labels: Some(managed_labels()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(ROUTES_KEY.to_owned(), text.clone())])),
            ..Default::default()
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            ROUTES_CONFIGMAP,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await?;
        tracing::info!(
            configmap = ROUTES_CONFIGMAP,
            routes = state.routes.len(),
            "routes written"
        );
        state.written_routes = Some(text);
        Ok(())
    }

    async fn set_verdict(&self, key: (String, String), route: Option<Value>, reason: String) {
        let mut state = self.state.lock().await;
        match route {
            Some(r) => {
                state.routes.insert(key.clone(), r);
            }
            None => {
                state.routes.remove(&key);
            }
        }
        state.verdicts.insert(key, reason);
        self.metrics.set_reasons(&state.verdicts);
    }

    async fn forget(&self, key: &(String, String)) {
        let mut state = self.state.lock().await;
        state.routes.remove(key);
        state.verdicts.remove(key);
        self.metrics.set_reasons(&state.verdicts);
    }
}

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_owned(), MANAGER.to_owned())])
}

fn secret_data(ns: &str, name: &str, secret: Secret) -> SecretData {
    let mut keys: Vec<(String, Vec<u8>)> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        keys.push((k, v.into_bytes()));
    }
    SecretData::new(ns, name, keys)
}

/// Binds a service key of the in-cluster server's instance `instance` over its broker API: the
/// first-run instance (`default`) unless the values name another.
async fn bootstrap_key(boot: &Bootstrap, instance: &str) -> Result<Value, ClientError> {
    use secrecy::ExposeSecret as _;
    let broker =
        signpost_client::BrokerClient::new(&boot.url, &boot.user, boot.password.expose_secret())?;
    let binding = format!("{MANAGER}-{instance}");
    match broker.bind(instance, &binding, None).await {
        Ok(key) => Ok(key),
        // A binding of that id with other attributes: made again.
        Err(ClientError::Api { status: 409, .. }) => {
            broker.unbind(instance, &binding).await?;
            broker.bind(instance, &binding, None).await
        }
        Err(e) => Err(e),
    }
}

/// The outcome of the checks: a verdict, or a passing failure to try again soon.
enum Checked {
    Verdict(Verdict, Option<(u16, PortKind)>),
    Retry(String),
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    controller: Controller<Destination>,
    triggers: impl futures::Stream<Item = ()> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    controller
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
}

/// The controller of `Destination`s in all namespaces, with its reflector store.
pub fn controller(client: Client) -> Controller<Destination> {
    let api: Api<Destination> = Api::all(client);
    Controller::new(api, watcher::Config::default().any_semantic())
}

fn error_policy(_: Arc<Destination>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!("reconcile failed: {error}");
    ctx.metrics.reconcile_error();
    // Mostly a write that raced another (a stale resourceVersion): soon again.
    Action::requeue(Duration::from_secs(3))
}

pub async fn reconcile(dst: Arc<Destination>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = dst.namespace().unwrap_or_default();
    let api: Api<Destination> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, dst, |event| async {
        match event {
            Finalizer::Apply(d) => apply(&d, &ctx).await,
            Finalizer::Cleanup(d) => cleanup(&d, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics.reconciled(started.elapsed());
    result
}

async fn apply(d: &Destination, ctx: &Context) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let interval = ctx.execution_interval().await;
    let (verdict, port, instance) = match check(d, ctx).await? {
        (Checked::Verdict(v, port), instance) => (v, port, instance),
        (Checked::Retry(why), _) => {
            tracing::warn!(destination = %format!("{ns}/{name}"), "check postponed: {why}");
            publish(ctx, d, EventType::Warning, "CheckPostponed", &why).await;
            ctx.metrics.reconcile_error();
            return Ok(Action::requeue(RETRY));
        }
    };
    let key = (ns.clone(), name.clone());
    let verdict = match port {
        Some((port, kind)) if verdict.is_success() => ensure_services(d, ctx, port, kind)
            .await?
            .unwrap_or(verdict),
        _ => verdict,
    };
    if verdict.is_success() {
        let route = route_of(d, instance.as_deref());
        ctx.set_verdict(key, Some(route), verdict.reason.clone())
            .await;
    } else {
        ctx.set_verdict(key, None, verdict.reason.clone()).await;
        if verdict.reason != checks::NAME_TAKEN && verdict.reason != checks::DUPLICATE {
            delete_services(d, ctx).await?;
        }
    }
    ctx.write_routes().await?;
    set_condition(d, ctx, &verdict).await?;
    Ok(Action::requeue(interval))
}

async fn cleanup(d: &Destination, ctx: &Context) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    delete_services(d, ctx).await?;
    ctx.forget(&(ns.clone(), name.clone())).await;
    ctx.write_routes().await?;
    tracing::info!(destination = %format!("{ns}/{name}"), "deleted: Services and route removed");
    Ok(Action::await_change())
}

/// Whether the Service forwards HTTP (to the proxy's `http` port) or TCP (to the proxy's
/// listener on the same port, `spec.service.port` or 20004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortKind {
    Http,
    Tcp,
}

async fn check(d: &Destination, ctx: &Context) -> Result<(Checked, Option<String>), Error> {
    let spec = &d.spec;
    let name = d.name_any();
    let custom_port = spec.service.as_ref().and_then(|s| s.port);
    if let Some(v) = checks::check_spec(spec) {
        return Ok((Checked::Verdict(v, None), None));
    }
    // Another resource of the same name elsewhere holds the name: both would need the Service
    // of that name in the operator's namespace.
    if let Some(other) = name_holder(d, ctx).await? {
        return Ok((
            Checked::Verdict(
                Verdict::error(
                    checks::DUPLICATE,
                    format!(
                        "A Destination custom resource with name {name} already exists in namespace {other}; names of Destination custom resources must be unique in the cluster"
                    ),
                ),
                None,
            ),
            None,
        ));
    }
    let resolved = match ctx.resolved().await? {
        Ok(r) => r,
        // A resource that works keeps its route and Services while the values or a Secret they
        // name are broken (the proxy keeps the last good service keys too): nothing that works
        // is taken down by a configuration mistake, which is reported in an Event.
        Err(e) if d.available().is_some_and(|c| c.status == "True") => {
            return Ok((
                Checked::Retry(format!(
                    "the Destination service configuration is invalid: {e}"
                )),
                None,
            ))
        }
        Err(e) => {
            return Ok((
                Checked::Verdict(
                    Verdict::error(
                        checks::INSTANCE_INVALID,
                        format!("The Destination service configuration is invalid: {e}"),
                    ),
                    None,
                ),
                None,
            ))
        }
    };
    let instance = match resolved.instance_for(spec.destination_service_instance_name.as_deref()) {
        Ok(i) => i.to_owned(),
        Err(message) => {
            return Ok((
                Checked::Verdict(Verdict::error(checks::INSTANCE_INVALID, message), None),
                None,
            ))
        }
    };
    if d.is_dynamic() {
        let port = custom_port.unwrap_or(HTTP_PORT);
        return Ok((
            Checked::Verdict(Verdict::success(&name), Some((port, PortKind::Http))),
            Some(instance),
        ));
    }
    let Some(client) = resolved.clients.get(&instance) else {
        return Ok((
            Checked::Verdict(
                Verdict::error(
                    checks::INSTANCE_INVALID,
                    format!("Destination service instance '{instance}' has no client"),
                ),
                None,
            ),
            None,
        ));
    };
    let destination = &spec.destination_ref.name;
    let mut request = FindRequest::new(destination.clone());
    request.level = spec.destination_ref.level.map(level);
    request.skip_token_retrieval = true;
    let found = match client.find(&request).await {
        Ok(found) => found,
        Err(ClientError::Api { status: 404, .. }) => {
            return Ok((
                Checked::Verdict(
                    Verdict::error(
                        checks::DESTINATION_NOT_FOUND,
                        format!(
                            "Destination with name {destination} was not found in the Destination service instance {instance}"
                        ),
                    ),
                    None,
                ),
                Some(instance),
            ))
        }
        Err(e) => return Ok((Checked::Retry(e.to_string()), Some(instance))),
    };
    let mut config = found.response.destination_configuration;
    let fragment = spec
        .fragment_ref
        .as_ref()
        .and_then(|f| f.name.clone().filter(|n| !n.is_empty()).map(|n| (n, f)));
    if let Some((fragment_name, fragment)) = &fragment {
        let mut with = request.clone();
        with.fragments = vec![FragmentRef {
            name: fragment_name.clone(),
            level: fragment.level.map(level),
        }];
        with.fragment_optional = Some(fragment.optional);
        match client.find(&with).await {
            Ok(found) => config = found.response.destination_configuration,
            Err(ClientError::Api { status: 404, .. }) if !fragment.optional => {
                return Ok((
                    Checked::Verdict(
                        Verdict::error(
                            checks::FRAGMENT_NOT_FOUND,
                            format!(
                                "Fragment with name {fragment_name} was not found in the Destination service instance {instance}"
                            ),
                        ),
                        None,
                    ),
                    Some(instance),
                ))
            }
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => return Ok((Checked::Retry(e.to_string()), Some(instance))),
        }
    }
    if let Some(v) = checks::check_destination(&config, fragment.is_some()) {
        return Ok((Checked::Verdict(v, None), Some(instance)));
    }
    let tcp = config.get("Type").and_then(Value::as_str) == Some("TCP");
    let service = if tcp {
        (custom_port.unwrap_or(TCP_PORT), PortKind::Tcp)
    } else {
        (custom_port.unwrap_or(HTTP_PORT), PortKind::Http)
    };
    Ok((
        Checked::Verdict(Verdict::success(&name), Some(service)),
        Some(instance),
    ))
}

fn level(l: Level) -> LookupLevel {
    match l {
        Level::Subaccount => LookupLevel::Subaccount,
        Level::Instance => LookupLevel::Instance,
        Level::ProviderSubaccount => LookupLevel::ProviderSubaccount,
        Level::ProviderInstance => LookupLevel::ProviderInstance,
    }
}

/// The namespace of another resource of the same name that holds the name, if any: the one
/// whose Service in the operator's namespace exists, else the oldest (creation time, then
/// namespace name).
async fn name_holder(d: &Destination, ctx: &Context) -> Result<Option<String>, Error> {
    let name = d.name_any();
    let ns = d.namespace().unwrap_or_default();
    let others: Vec<Arc<Destination>> = ctx
        .store
        .state()
        .into_iter()
        .filter(|o| o.name_any() == name && o.namespace().as_deref() != Some(ns.as_str()))
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .collect();
    if others.is_empty() {
        return Ok(None);
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    if let Some(owner) = api.get_opt(&name).await?.as_ref().and_then(owner_of) {
        if owner == owner_key(d) {
            return Ok(None);
        }
        if let Some((owner_ns, _)) = owner.split_once('/') {
            if others
                .iter()
                .any(|o| o.namespace().as_deref() == Some(owner_ns))
            {
                return Ok(Some(owner_ns.to_owned()));
            }
        }
    }
    let key = |o: &Destination| (o.meta().creation_timestamp.clone(), o.namespace());
    Ok(others
        .iter()
        .filter(|o| key(o) < key(d))
        .min_by_key(|o| key(o))
        .and_then(|o| o.namespace()))
}

/// The route the proxy gets for a resource that passed: its spec, with the instance made
/// explicit and optional parts the proxy needs whole (a fragment or chain without a name) left
/// out.
fn route_of(d: &Destination, instance: Option<&str>) -> Value {
    let mut spec = serde_json::to_value(&d.spec).unwrap_or_else(|_| json!({}));
    if let Some(obj) = spec.as_object_mut() {
        if let Some(i) = instance {
            obj.insert("destinationServiceInstanceName".into(), json!(i));
        }
        let nameless = |v: Option<&Value>| {
            v.and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        };
        if nameless(obj.get("fragmentRef")) {
            obj.remove("fragmentRef");
        }
        if nameless(obj.get("chainRef")) {
            obj.remove("chainRef");
        }
    }
    json!({
        "name": d.name_any(),
        "namespace": d.namespace().unwrap_or_default(),
        "spec": spec,
    })
}

fn owner_of(svc: &Service) -> Option<String> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .cloned()
}

fn owner_key(d: &Destination) -> String {
    format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())
}

/// A Service of the resource's name that is not the operator's for this resource, in the
/// resource's namespace or the operator's: the name is taken.
async fn foreign_service(d: &Destination, ctx: &Context) -> Result<Option<Verdict>, Error> {
    let name = d.name_any();
    let ns = d.namespace().unwrap_or_default();
    let mut places = vec![ns.clone()];
    if ns != ctx.namespace {
        places.push(ctx.namespace.clone());
    }
    for place in places {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &place);
        let Some(svc) = api.get_opt(&name).await? else {
            continue;
        };
        match owner_of(&svc) {
            Some(owner) if owner == owner_key(d) => {}
            // The operator's Service of a resource that is gone: taken over.
            Some(owner) if !resource_exists(ctx, &owner) => {}
            _ => {
                return Ok(Some(Verdict::error(
                    checks::NAME_TAKEN,
                    format!(
                        "A Kubernetes resource (Service) with name {name} is already present in namespace {place}; rename the Destination custom resource or the Service"
                    ),
                )))
            }
        }
    }
    Ok(None)
}

fn resource_exists(ctx: &Context, owner: &str) -> bool {
    let Some((ns, name)) = owner.split_once('/') else {
        return false;
    };
    ctx.store
        .get(&ObjectRef::<Destination>::new(name).within(ns))
        .is_some()
}

/// Makes the Services of a resource that passed; a Service of that name that is not the
/// operator's (in either namespace) is never taken over: the answer is then the name-taken
/// verdict. Checked here, right before the writes, not earlier in the checks.
async fn ensure_services(
    d: &Destination,
    ctx: &Context,
    port: u16,
    kind: PortKind,
) -> Result<Option<Verdict>, Error> {
    if let Some(taken) = foreign_service(d, ctx).await? {
        return Ok(Some(taken));
    }
    let name = d.name_any();
    let ns = d.namespace().unwrap_or_default();
    let annotations = BTreeMap::from([(OWNER_ANNOTATION.to_owned(), owner_key(d))]);
    let owner_ref = d.controller_owner_ref(&());
    let (port_name, target) = match kind {
        PortKind::Http => ("http", json!("http")),
        PortKind::Tcp => ("tcp", json!(port)),
    };
    let mut proxy_side = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "labels": managed_labels(),
            "annotations": annotations,
        },
        "spec": {
            "type": "ClusterIP",
            "selector": ctx.proxy_selector,
            "ports": [{"name": port_name, "port": port, "targetPort": target, "protocol": "TCP"}],
        }
    });
    if ns == ctx.namespace {
        if let Some(o) = &owner_ref {
            proxy_side["metadata"]["ownerReferences"] = json!([o]);
        }
    }
    let params = PatchParams::apply(MANAGER).force();
    Api::<Service>::namespaced(ctx.client.clone(), &ctx.namespace)
        .patch(&name, &params, &Patch::Apply(&proxy_side))
        .await?;
    if ns != ctx.namespace {
        let external = format!("{name}.{}.svc.cluster.local", ctx.namespace);
        let mut local = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": managed_labels(),
                "annotations": annotations,
            },
            "spec": {
                "type": "ExternalName",
                "externalName": external,
                "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            }
        });
        if let Some(o) = &owner_ref {
            local["metadata"]["ownerReferences"] = json!([o]);
        }
        Api::<Service>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &params, &Patch::Apply(&local))
            .await?;
    }
    Ok(None)
}

/// Deletes the Services the operator made for this resource (and only those).
async fn delete_services(d: &Destination, ctx: &Context) -> Result<(), Error> {
    let name = d.name_any();
    let ns = d.namespace().unwrap_or_default();
    let mut places = vec![ns.clone()];
    if ns != ctx.namespace {
        places.push(ctx.namespace.clone());
    }
    for place in places {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &place);
        let Some(svc) = api.get_opt(&name).await? else {
            continue;
        };
        if owner_of(&svc).as_deref() == Some(owner_key(d).as_str()) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Sets the `Available` condition when it differs, with an Event.
async fn set_condition(d: &Destination, ctx: &Context, verdict: &Verdict) -> Result<(), Error> {
    let status = if verdict.is_success() {
        "True"
    } else {
        "False"
    };
    if let Some(c) = d.available() {
        if c.status == status && c.reason == verdict.reason && c.message == verdict.message {
            return Ok(());
        }
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let now = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    let condition = crd::Condition {
        type_: crd::AVAILABLE.into(),
        status: status.into(),
        reason: verdict.reason.clone(),
        message: verdict.message.clone(),
        last_update_time: now.to_string(),
    };
    let mut conditions: Vec<crd::Condition> = d
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| c.type_ != crd::AVAILABLE)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.push(condition);
    let api: Api<Destination> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    api.patch_status(
        &d.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await?;
    let kind = if verdict.is_success() {
        EventType::Normal
    } else {
        EventType::Warning
    };
    publish(ctx, d, kind, &verdict.reason, &verdict.message).await;
    tracing::info!(destination = %owner_key(d), reason = %verdict.reason, "{}", verdict.message);
    Ok(())
}

async fn publish(ctx: &Context, d: &Destination, kind: EventType, reason: &str, note: &str) {
    let event = Event {
        type_: kind,
        reason: reason.chars().take(128).collect(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &d.object_ref(&())).await {
        tracing::debug!("event not recorded: {e}");
    }
}

/// Scenario tests against a mocked API server (tower-test, as kube-rs's controller-rs does):
/// each asserts the exact calls a reconcile makes and answers them.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn context() -> (Arc<Context>, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (store, _writer) = kube::runtime::reflector::store::<Destination>();
        let recorder = Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: MANAGER.into(),
                instance: None,
            },
        );
        let ctx = Context::new(
            client,
            "signpost".into(),
            BTreeMap::from([("app".to_owned(), "proxy".to_owned())]),
            PathBuf::from("/nonexistent/values.yaml"),
            None,
            recorder,
            store,
        );
        (Arc::new(ctx), handle)
    }

    fn resource(name: &str, spec: Value, finalizers: &[&str]) -> Destination {
        serde_json::from_value(json!({
            "apiVersion": "destination.connectivity.api.sap/v1",
            "kind": "Destination",
            "metadata": {"name": name, "namespace": "team", "uid": "u-1", "resourceVersion": "1", "finalizers": finalizers},
            "spec": spec,
        }))
        .unwrap()
    }

    async fn body_json(req: Request<Body>) -> Value {
        let bytes = http_body_util::BodyExt::collect(req.into_body())
            .await
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    fn answer(status: u16, body: Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn not_found() -> Response<Body> {
        answer(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        )
    }

    /// The next request, checked for method and path.
    async fn expect(
        handle: &mut Handle,
        method: Method,
        path: &str,
    ) -> (
        Request<Body>,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), method, "{}", req.uri());
        assert_eq!(req.uri().path(), path, "{method} {}", req.uri());
        (req, send)
    }

    #[tokio::test]
    async fn a_new_resource_gets_the_finalizer_first() {
        let (ctx, mut handle) = context();
        let d = resource("gw", json!({"destinationRef": {"name": "*"}}), &[]);
        let echo = serde_json::to_value(&d).unwrap();
        let server = tokio::spawn(async move {
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/apis/destination.connectivity.api.sap/v1/namespaces/team/destinations/gw",
            )
            .await;
            let patch = body_json(req).await;
            assert!(patch.to_string().contains(FINALIZER), "{patch}");
            send.send_response(answer(200, echo));
        });
        reconcile(Arc::new(d), ctx).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_dynamic_resource_with_a_fragment_is_refused_with_sap_reason() {
        let (ctx, mut handle) = context();
        let d = resource(
            "gw",
            json!({"destinationRef": {"name": "*"}, "fragmentRef": {"name": "f"}}),
            &[FINALIZER],
        );
        let echo = serde_json::to_value(&d).unwrap();
        let server = tokio::spawn(async move {
            // No Service is made; any of the operator's would be removed.
            for ns in ["team", "signpost"] {
                let (_, send) = expect(
                    &mut handle,
                    Method::GET,
                    &format!("/api/v1/namespaces/{ns}/services/gw"),
                )
                .await;
                send.send_response(not_found());
            }
            // The routes ConfigMap (empty), by server-side apply with the operator's manager.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/signpost/configmaps/signpost-proxy-routes",
            )
            .await;
            assert!(
                req.uri()
                    .query()
                    .unwrap()
                    .contains("fieldManager=signpost-operator"),
                "{}",
                req.uri()
            );
            let cm = body_json(req).await;
            assert!(
                cm["data"]["destinations.yaml"]
                    .as_str()
                    .unwrap()
                    .contains("destinations: []"),
                "{cm}"
            );
            send.send_response(answer(200, cm));
            // The condition, on the status subresource.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/apis/destination.connectivity.api.sap/v1/namespaces/team/destinations/gw/status",
            )
            .await;
            let status = body_json(req).await;
            let cond = &status["status"]["conditions"][0];
            assert_eq!(cond["type"], "Available");
            assert_eq!(cond["status"], "False");
            assert_eq!(
                cond["reason"],
                "ConfigurationError-FragmentSpecification-NotSupported"
            );
            send.send_response(answer(200, echo));
            // A Warning event.
            let (req, send) = expect(
                &mut handle,
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/team/events",
            )
            .await;
            let event = body_json(req).await;
            assert_eq!(event["type"], "Warning");
            assert_eq!(
                event["reason"],
                "ConfigurationError-FragmentSpecification-NotSupported"
            );
            send.send_response(answer(201, event));
        });
        let action = reconcile(Arc::new(d), ctx).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(180)));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_dynamic_resource_gets_both_services_its_route_and_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let key = json!({"clientid": "c", "clientsecret": "s", "url": "https://uaa.example", "uri": "https://dest.example"});
        let data =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.to_string());
        let values = dir.path().join("values.yaml");
        std::fs::write(
            &values,
            format!("config:\n  integration:\n    destinationService:\n      instances:\n        - name: main\n          serviceCredentials: {{secretData: {data}}}\n"),
        )
        .unwrap();
        let (ctx, mut handle) = context();
        let ctx = Arc::new(Context::new(
            ctx.client.clone(),
            "signpost".into(),
            ctx.proxy_selector.clone(),
            values,
            None,
            Recorder::new(
                ctx.client.clone(),
                kube::runtime::events::Reporter {
                    controller: MANAGER.into(),
                    instance: None,
                },
            ),
            ctx.store.clone(),
        ));
        let d = resource("gw", json!({"destinationRef": {"name": "*"}}), &[FINALIZER]);
        let echo = serde_json::to_value(&d).unwrap();
        let server = tokio::spawn(async move {
            // The service keys go to the credentials Secret first.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/signpost/secrets/signpost-proxy-credentials",
            )
            .await;
            let secret = body_json(req).await;
            let file = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                secret["data"]["main.json"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&file).unwrap()["clientid"],
                "c"
            );
            send.send_response(answer(200, secret));
            // The name is free (checked right before the writes).
            for ns in ["team", "signpost"] {
                let (_, send) = expect(
                    &mut handle,
                    Method::GET,
                    &format!("/api/v1/namespaces/{ns}/services/gw"),
                )
                .await;
                send.send_response(not_found());
            }
            // The proxy side: selects the proxy's pods, port 80 to its http port.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/signpost/services/gw",
            )
            .await;
            let svc = body_json(req).await;
            assert_eq!(svc["spec"]["selector"]["app"], "proxy");
            assert_eq!(svc["spec"]["ports"][0]["port"], 80);
            assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
            assert_eq!(svc["metadata"]["annotations"][OWNER_ANNOTATION], "team/gw");
            send.send_response(answer(200, svc));
            // The resource's side: an ExternalName to the first, owned by the resource.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/team/services/gw",
            )
            .await;
            let svc = body_json(req).await;
            assert_eq!(svc["spec"]["type"], "ExternalName");
            assert_eq!(svc["spec"]["externalName"], "gw.signpost.svc.cluster.local");
            assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], "u-1");
            send.send_response(answer(200, svc));
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/signpost/configmaps/signpost-proxy-routes",
            )
            .await;
            let cm = body_json(req).await;
            let routes: Value =
                serde_norway::from_str(cm["data"]["destinations.yaml"].as_str().unwrap()).unwrap();
            assert_eq!(routes["destinations"][0]["name"], "gw");
            assert_eq!(routes["destinations"][0]["namespace"], "team");
            assert_eq!(
                routes["destinations"][0]["spec"]["destinationServiceInstanceName"],
                "main"
            );
            send.send_response(answer(200, cm));
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/apis/destination.connectivity.api.sap/v1/namespaces/team/destinations/gw/status",
            )
            .await;
            let status = body_json(req).await;
            assert_eq!(
                status["status"]["conditions"][0]["reason"],
                "ConfigurationSuccessful"
            );
            assert_eq!(status["status"]["conditions"][0]["status"], "True");
            send.send_response(answer(200, echo));
            let (req, send) = expect(
                &mut handle,
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/team/events",
            )
            .await;
            let event = body_json(req).await;
            assert_eq!(event["type"], "Normal");
            send.send_response(answer(201, event));
        });
        reconcile(Arc::new(d), ctx).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn deleting_removes_only_the_operators_services_then_the_finalizer() {
        let (ctx, mut handle) = context();
        let mut d = resource(
            "orders",
            json!({"destinationRef": {"name": "orders"}}),
            &[FINALIZER],
        );
        d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let echo = serde_json::to_value(&d).unwrap();
        let server = tokio::spawn(async move {
            // In the resource's namespace a Service of that name that is someone else's: kept.
            let (_, send) = expect(
                &mut handle,
                Method::GET,
                "/api/v1/namespaces/team/services/orders",
            )
            .await;
            send.send_response(answer(200, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orders", "namespace": "team"}})));
            // The operator's own in its namespace: deleted.
            let (_, send) = expect(
                &mut handle,
                Method::GET,
                "/api/v1/namespaces/signpost/services/orders",
            )
            .await;
            send.send_response(answer(200, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orders", "namespace": "signpost", "annotations": {OWNER_ANNOTATION: "team/orders"}}})));
            let (_, send) = expect(
                &mut handle,
                Method::DELETE,
                "/api/v1/namespaces/signpost/services/orders",
            )
            .await;
            send.send_response(answer(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/signpost/configmaps/signpost-proxy-routes",
            )
            .await;
            let cm = body_json(req).await;
            send.send_response(answer(200, cm));
            // Then the finalizer goes.
            let (req, send) = expect(
                &mut handle,
                Method::PATCH,
                "/apis/destination.connectivity.api.sap/v1/namespaces/team/destinations/orders",
            )
            .await;
            let patch = body_json(req).await;
            assert!(patch.to_string().contains("remove"), "{patch}");
            send.send_response(answer(200, echo));
        });
        let action = reconcile(Arc::new(d), ctx).await.unwrap();
        assert_eq!(action, Action::await_change());
        server.await.unwrap();
    }
}
