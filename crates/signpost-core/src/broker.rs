//! The Open Service Broker use cases: catalog, provision and update with the configuration JSON
//! (all or nothing, on both levels), deprovision, bind and unbind.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use signpost_model::{EntityKind, Level, OwnerRef};
use signpost_store::{BindingRecord, InstanceRecord, PutMode, SubaccountRecord, WriteOp};
use signpost_wire::{
    BindRequest, Catalog, ExistingPolicy, InstanceConfig, LevelInit, Plan, ProvisionRequest,
    Service, ServiceKey, UpdateRequest,
};

use crate::audit::Entry;
use crate::body::{certificate_body, properties_body};
use crate::Signpost;

/// The catalog's service id (stable across releases; platforms store it).
pub const CATALOG_SERVICE_ID: &str = "7a3d1c2e-5f4b-4e8a-9c61-0d2b8e4f6a10";
/// The catalog's `lite` plan id.
pub const CATALOG_PLAN_ID: &str = "7a3d1c2e-5f4b-4e8a-9c61-0d2b8e4f6a11";

/// What kind of broker failure: it decides the HTTP status and the OSB `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    Unprocessable,
    /// The database is not available now (503): nothing was changed.
    Unavailable,
    Internal,
}

impl BrokerErrorKind {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            BrokerErrorKind::BadRequest => 400,
            BrokerErrorKind::NotFound => 404,
            BrokerErrorKind::Conflict => 409,
            BrokerErrorKind::Unprocessable => 422,
            BrokerErrorKind::Unavailable => 503,
            BrokerErrorKind::Internal => 500,
        }
    }

    /// The OSB `error` code.
    pub fn code(self) -> &'static str {
        match self {
            BrokerErrorKind::BadRequest => "BadRequest",
            BrokerErrorKind::NotFound => "NotFound",
            BrokerErrorKind::Conflict => "Conflict",
            BrokerErrorKind::Unprocessable => "UnprocessableEntity",
            BrokerErrorKind::Unavailable => "ServiceUnavailable",
            BrokerErrorKind::Internal => "InternalError",
        }
    }
}

/// A broker failure: its kind and a description naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct BrokerError {
    pub kind: BrokerErrorKind,
    pub description: String,
}

impl BrokerError {
    fn new(kind: BrokerErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
        }
    }
    fn bad_request(d: impl Into<String>) -> Self {
        Self::new(BrokerErrorKind::BadRequest, d)
    }
    fn not_found(d: impl Into<String>) -> Self {
        Self::new(BrokerErrorKind::NotFound, d)
    }
    fn conflict(d: impl Into<String>) -> Self {
        Self::new(BrokerErrorKind::Conflict, d)
    }
    fn internal() -> Self {
        Self::new(
            BrokerErrorKind::Internal,
            "the store failed; see the server log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl From<signpost_store::Error> for BrokerError {
    fn from(e: signpost_store::Error) -> Self {
        if e.outage().is_some() {
            let answer = crate::error::outage(&e);
            return BrokerError::new(BrokerErrorKind::Unavailable, answer.to_string());
        }
        tracing::error!(error = %e, "store failure in the broker");
        BrokerError::internal()
    }
}

pub type BrokerResult<T> = Result<T, BrokerError>;

/// Whether a provision made something new or found the identical instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionOutcome {
    Created,
    AlreadyExists,
}

/// A bind's result: whether it is new, and the credentials.
#[derive(Debug, Clone)]
pub struct BindOutcome {
    pub created: bool,
    pub credentials: ServiceKey,
}

const ALL_OR_NOTHING: &str = "Failed to create all provided configurations; nothing of this operation was kept on instance or subaccount level";

impl Signpost {
    pub fn catalog(&self) -> Catalog {
        Catalog {
            services: vec![Service {
                id: CATALOG_SERVICE_ID.into(),
                name: "destination".into(),
                description: "Signpost Destination service: destinations, certificates and ready-to-use tokens".into(),
                bindable: true,
                plan_updateable: false,
                instances_retrievable: false,
                bindings_retrievable: false,
                tags: vec!["destination".into(), "conn".into(), "connsvc".into()],
                metadata: json!({"displayName": "Destination", "providerDisplayName": "Signpost"}),
                plans: vec![Plan {
                    id: CATALOG_PLAN_ID.into(),
                    name: "lite".into(),
                    description: "Destinations, fragments and certificates on subaccount and instance level".into(),
                    free: true,
                    bindable: true,
                }],
            }],
        }
    }

    fn check_ids(service_id: &str, plan_id: Option<&str>) -> BrokerResult<()> {
        if service_id != CATALOG_SERVICE_ID {
            return Err(BrokerError::bad_request(format!(
                "service_id '{service_id}' is not in the catalog"
            )));
        }
        if let Some(p) = plan_id {
            if p != CATALOG_PLAN_ID {
                return Err(BrokerError::bad_request(format!(
                    "plan_id '{p}' is not in the catalog"
                )));
            }
        }
        Ok(())
    }

    /// `PUT /v2/service_instances/{id}`.
    pub async fn provision(
        &self,
        id: &str,
        req: ProvisionRequest,
        raw: &Value,
    ) -> BrokerResult<ProvisionOutcome> {
        let subaccount = req
            .context
            .as_ref()
            .and_then(|c| context_str(c, "subaccount_id"))
            .or(req.organization_guid.clone());
        let mut entry = Entry::broker("provision", "instance").instance(id).name(id);
        if let Some(s) = subaccount {
            entry = entry.subaccount(s);
        }
        let result = self.provision_audited(id, req, raw).await;
        let status = match &result {
            Ok((ProvisionOutcome::Created, _)) => 201,
            Ok((ProvisionOutcome::AlreadyExists, _)) => 200,
            Err(e) => e.status(),
        };
        let mut events = vec![(entry, status)];
        if let Ok((_, entities)) = &result {
            events.extend(entities.iter().cloned());
        }
        self.audit(events).await;
        result.map(|(outcome, _)| outcome)
    }

    /// A provision and the audit events of the entities its configuration JSON wrote.
    async fn provision_audited(
        &self,
        id: &str,
        req: ProvisionRequest,
        raw: &Value,
    ) -> BrokerResult<(ProvisionOutcome, Vec<(Entry, u16)>)> {
        check_id("instance_id", id)?;
        Self::check_ids(&req.service_id, Some(&req.plan_id))?;
        let context = req.context.clone().unwrap_or_default();
        let subaccount_id = context_str(&context, "subaccount_id")
            .or(req.organization_guid.clone())
            .ok_or_else(|| {
                BrokerError::bad_request(
                "context.subaccount_id or organization_guid is required: it names the subaccount",
            )
            })?;
        check_id("context.subaccount_id", &subaccount_id)?;
        let subdomain = context_str(&context, "subdomain").unwrap_or_else(|| subaccount_id.clone());
        let config = InstanceConfig::parse(req.parameters.as_ref())
            .map_err(|e| BrokerError::bad_request(format!("Invalid configuration JSON: {e}")))?;
        validate_config_certificates_off(&config).await?;
        let digest = self.store().digest(&[raw.to_string().as_bytes()]);

        if let Some(existing) = self.store().get_instance(id).await? {
            return same_or_conflict(&existing, &digest).map(|o| (o, Vec::new()));
        }
        let record = InstanceRecord {
            id: id.into(),
            subaccount_id: subaccount_id.clone(),
            service_id: req.service_id,
            plan_id: req.plan_id,
            organization_guid: req.organization_guid,
            space_guid: req.space_guid,
            context: Value::Object(context).to_string(),
            request_digest: digest.clone(),
            created_at: 0,
            updated_at: 0,
            subscriber_access: merge_subscriber_access(None, config.subscriber_access.as_ref()),
        };
        let mut ops = vec![
            WriteOp::EnsureSubaccount(SubaccountRecord {
                id: subaccount_id.clone(),
                subdomain,
            }),
            WriteOp::CreateInstance(record),
        ];
        let labels = config_ops(&config, &subaccount_id, id, &mut ops);
        let written = entity_entries(&ops, &subaccount_id);
        match self.write(ops).await {
            Ok(outcomes) => {
                tracing::info!(instance = id, subaccount = %subaccount_id, "instance provisioned");
                Ok((ProvisionOutcome::Created, entity_events(written, &outcomes)))
            }
            Err(signpost_store::Error::Conflict { index: 1, .. }) => {
                // Another request created the same instance id at the same moment.
                match self.store().get_instance(id).await? {
                    Some(existing) => same_or_conflict(&existing, &digest).map(|o| (o, Vec::new())),
                    None => Err(BrokerError::conflict(format!(
                        "instance '{id}' is being created by another request"
                    ))),
                }
            }
            Err(e) => Err(config_failure(e, &labels)),
        }
    }

    /// `PATCH /v2/service_instances/{id}`: applies a new configuration JSON (and context).
    pub async fn update_instance(
        &self,
        id: &str,
        req: UpdateRequest,
        raw: &Value,
    ) -> BrokerResult<()> {
        let mut entry = Entry::broker("update", "instance").instance(id).name(id);
        if let Ok(Some(i)) = self.store().get_instance(id).await {
            entry = entry.subaccount(i.subaccount_id);
        }
        let result = self.update_audited(id, req, raw).await;
        let mut events = vec![(entry, result.as_ref().map_or_else(|e| e.status(), |_| 200))];
        if let Ok(entities) = &result {
            events.extend(entities.iter().cloned());
        }
        self.audit(events).await;
        result.map(drop)
    }

    async fn update_audited(
        &self,
        id: &str,
        req: UpdateRequest,
        raw: &Value,
    ) -> BrokerResult<Vec<(Entry, u16)>> {
        Self::check_ids(&req.service_id, req.plan_id.as_deref())?;
        let Some(mut record) = self.store().get_instance(id).await? else {
            return Err(BrokerError::not_found(format!(
                "instance '{id}' does not exist"
            )));
        };
        let config = InstanceConfig::parse(req.parameters.as_ref())
            .map_err(|e| BrokerError::bad_request(format!("Invalid configuration JSON: {e}")))?;
        validate_config_certificates_off(&config).await?;
        // A new `context.subdomain` renames the instance's subaccount (its tokens' `zdn` and
        // the host of its tenant token URL), unless another subaccount has that subdomain.
        let mut rename = None;
        if let Some(subdomain) = req
            .context
            .as_ref()
            .and_then(|c| context_str(c, "subdomain"))
        {
            let store = self.store();
            let current = store.get_subaccount(&record.subaccount_id).await?;
            if current.is_some_and(|s| s.subdomain != subdomain) {
                if let Some(other) = store
                    .subaccounts_by_subdomain(&subdomain)
                    .await?
                    .into_iter()
                    .find(|s| s.id != record.subaccount_id)
                {
                    return Err(BrokerError::conflict(format!(
                        "context.subdomain '{subdomain}' belongs to the subaccount '{}'",
                        other.id
                    )));
                }
                rename = Some(WriteOp::SetSubdomain {
                    subaccount_id: record.subaccount_id.clone(),
                    subdomain,
                });
            }
        }
        if let Some(ctx) = req.context {
            let mut merged: Map<String, Value> =
                serde_json::from_str(&record.context).unwrap_or_default();
            merged.extend(ctx);
            record.context = Value::Object(merged).to_string();
        }
        record.request_digest = self
            .store()
            .digest(&[record.request_digest.as_bytes(), raw.to_string().as_bytes()]);
        record.subscriber_access = merge_subscriber_access(
            record.subscriber_access.as_deref(),
            config.subscriber_access.as_ref(),
        );
        let subaccount_id = record.subaccount_id.clone();
        let renamed = rename.is_some();
        let mut ops = vec![WriteOp::UpdateInstance(record)];
        ops.extend(rename);
        let labels = config_ops(&config, &subaccount_id, id, &mut ops);
        let written = entity_entries(&ops, &subaccount_id);
        let outcomes = self
            .write(ops)
            .await
            .map_err(|e| config_failure(e, &labels))?;
        if renamed {
            // Verified tokens remember the old subdomain.
            self.inner.principals.clear();
        }
        tracing::info!(instance = id, "instance updated");
        Ok(entity_events(written, &outcomes))
    }

    /// `DELETE /v2/service_instances/{id}`: false when there was no such instance (410).
    pub async fn deprovision(
        &self,
        id: &str,
        service_id: Option<&str>,
        plan_id: Option<&str>,
    ) -> BrokerResult<bool> {
        let mut entry = Entry::broker("deprovision", "instance")
            .instance(id)
            .name(id);
        if let Ok(Some(i)) = self.store().get_instance(id).await {
            entry = entry.subaccount(i.subaccount_id);
        }
        let result: BrokerResult<bool> = async {
            if let Some(s) = service_id {
                Self::check_ids(s, plan_id)?;
            }
            let outcome = self
                .write(vec![WriteOp::DeleteInstance { id: id.into() }])
                .await?;
            self.inner.principals.clear();
            Ok(matches!(
                outcome.first(),
                Some(signpost_store::WriteOutcome::Deleted)
            ))
        }
        .await;
        let status = match &result {
            Ok(true) => 200,
            Ok(false) => 410,
            Err(e) => e.status(),
        };
        self.audit(vec![(entry, status)]).await;
        if result == Ok(true) {
            tracing::info!(instance = id, "instance deprovisioned");
        }
        result
    }

    /// `PUT /v2/service_instances/{id}/service_bindings/{binding_id}`.
    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        req: BindRequest,
        raw: &Value,
    ) -> BrokerResult<BindOutcome> {
        let result = self.bind_unaudited(instance_id, binding_id, req, raw).await;
        let status = match &result {
            Ok(o) if o.created => 201,
            Ok(_) => 200,
            Err(e) => e.status(),
        };
        let entry = self.binding_entry("bind", instance_id, binding_id).await;
        self.audit(vec![(entry, status)]).await;
        result
    }

    /// The audit entry of a bind or unbind, with the instance's subaccount when it exists.
    async fn binding_entry(
        &self,
        action: &'static str,
        instance_id: &str,
        binding_id: &str,
    ) -> Entry {
        let entry = Entry::broker(action, "binding")
            .instance(instance_id)
            .name(binding_id);
        match self.store().get_instance(instance_id).await {
            Ok(Some(i)) => entry.subaccount(i.subaccount_id),
            _ => entry,
        }
    }

    async fn bind_unaudited(
        &self,
        instance_id: &str,
        binding_id: &str,
        req: BindRequest,
        raw: &Value,
    ) -> BrokerResult<BindOutcome> {
        check_id("binding_id", binding_id)?;
        Self::check_ids(&req.service_id, Some(&req.plan_id))?;
        let (kind, scopes) = match &req.parameters {
            Some(params) => (bind_kind(params)?, bind_scopes(params)?),
            None => (BindKind::Secret, Vec::new()),
        };
        if kind != BindKind::Secret && self.config().cert_url.is_none() {
            return Err(BrokerError::new(BrokerErrorKind::Unprocessable, "X.509 bindings need the HTTPS listener (--tls-listen): it is the certurl where clients present their certificate",
            ));
        }
        let Some(instance) = self.store().get_instance(instance_id).await? else {
            return Err(BrokerError::not_found(format!(
                "instance '{instance_id}' does not exist"
            )));
        };
        let digest = self
            .store()
            .digest(&[instance_id.as_bytes(), raw.to_string().as_bytes()]);
        if let Some(existing) = self.store().get_binding(binding_id).await? {
            if existing.instance_id == instance_id && existing.request_digest == digest {
                let credentials = self.service_key(&instance, &existing).await?;
                return Ok(BindOutcome {
                    created: false,
                    credentials,
                });
            }
            return Err(BrokerError::conflict(format!(
                "binding '{binding_id}' already exists with other attributes"
            )));
        }
        let client_id = format!("sb-{binding_id}!b1|destination-xsappname!b1");
        let record = self
            .binding_record(instance_id, binding_id, client_id, digest, (kind, scopes))
            .await?;
        match self
            .store()
            .write(vec![WriteOp::CreateBinding(record.clone())])
            .await
        {
            Ok(_) => {}
            Err(signpost_store::Error::Conflict { .. }) => {
                return Err(BrokerError::conflict(format!(
                    "binding '{binding_id}' already exists"
                )))
            }
            Err(signpost_store::Error::Database(e)) if e.to_string().contains("FOREIGN KEY") => {
                return Err(BrokerError::not_found(format!(
                    "instance '{instance_id}' does not exist"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            instance = instance_id,
            binding = binding_id,
            "binding created"
        );
        let credentials = self.service_key(&instance, &record).await?;
        Ok(BindOutcome {
            created: true,
            credentials,
        })
    }

    /// `DELETE /v2/service_instances/{id}/service_bindings/{binding_id}`: false when missing (410).
    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> BrokerResult<bool> {
        let result: BrokerResult<bool> = async {
            match self.store().get_binding(binding_id).await? {
                Some(b) if b.instance_id == instance_id => {}
                _ => return Ok(false),
            }
            self.write(vec![WriteOp::DeleteBinding {
                id: binding_id.into(),
            }])
            .await?;
            self.inner.principals.clear();
            tracing::info!(
                instance = instance_id,
                binding = binding_id,
                "binding deleted"
            );
            Ok(true)
        }
        .await;
        let status = match &result {
            Ok(true) => 200,
            Ok(false) => 410,
            Err(e) => e.status(),
        };
        let entry = self.binding_entry("unbind", instance_id, binding_id).await;
        self.audit(vec![(entry, status)]).await;
        result
    }

    /// The stored record of a new binding, with its secret or certificate.
    async fn binding_record(
        &self,
        instance_id: &str,
        binding_id: &str,
        client_id: String,
        digest: String,
        (kind, scopes): (BindKind, Vec<String>),
    ) -> BrokerResult<BindingRecord> {
        let mut record = BindingRecord {
            id: binding_id.into(),
            instance_id: instance_id.into(),
            client_id,
            client_secret: None,
            credential_type: "x509".into(),
            request_digest: digest,
            created_at: 0,
            certificate: None,
            certificate_sha256: None,
            scopes,
        };
        match kind {
            BindKind::Secret => {
                let mut secret = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut secret);
                record.credential_type = "binding-secret".into();
                record.client_secret = Some(SecretString::from(format!(
                    "{}${}",
                    binding_id.chars().take(8).collect::<String>(),
                    base64::Engine::encode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        secret
                    )
                )));
            }
            BindKind::X509Generated(p) => {
                let cn: String = format!("signpost-binding-{binding_id}")
                    .chars()
                    .take(64)
                    .collect();
                // RSA key generation runs on the CPU pool.
                let core = self.clone();
                let cert = signpost_oauth::cpu::run(move || {
                    core.inner.ca.issue_client_certificate(
                        &cn,
                        p.key_length,
                        p.validity(),
                        time::OffsetDateTime::now_utc(),
                    )
                })
                .await
                .map_err(|_| BrokerError::internal())?
                .map_err(|e| BrokerError::bad_request(format!("parameters.xsuaa.x509: {e}")))?;
                record.certificate_sha256 =
                    Some(signpost_certs::sha256_fingerprint(&cert.certificate_der));
                record.certificate = Some(cert.certificate_chain_pem);
                record.client_secret = Some(cert.private_key_pem);
            }
            BindKind::X509Provided(pem) => {
                let leaf = crate::certificates::leaf_der_of_pem(&pem).map_err(|e| {
                    BrokerError::bad_request(format!("parameters.xsuaa.x509.certificate: {e}"))
                })?;
                record.certificate_sha256 = Some(signpost_certs::sha256_fingerprint(&leaf));
                record.certificate = Some(pem);
            }
        }
        Ok(record)
    }

    async fn service_key(
        &self,
        instance: &InstanceRecord,
        binding: &BindingRecord,
    ) -> BrokerResult<ServiceKey> {
        let subdomain = self
            .store()
            .get_subaccount(&instance.subaccount_id)
            .await?
            .map(|s| s.subdomain)
            .unwrap_or_else(|| instance.subaccount_id.clone());
        let cfg = self.config();
        Ok(ServiceKey {
            clientid: binding.client_id.clone(),
            // An X.509 binding's stored secret is its private key: returned as `key`, never as
            // a client secret.
            clientsecret: (binding.credential_type == "binding-secret")
                .then(|| {
                    binding
                        .client_secret
                        .as_ref()
                        .map(|s| s.expose_secret().to_owned())
                })
                .flatten(),
            credential_type: binding.credential_type.clone(),
            url: cfg.public_url.clone(),
            uri: cfg.public_url.clone(),
            uaadomain: cfg.uaadomain.clone(),
            identityzone: subdomain,
            tenantid: instance.subaccount_id.clone(),
            xsappname: "destination-xsappname!b1".into(),
            instanceid: instance.id.clone(),
            verificationkey: self.verification_key(),
            certificate: binding.certificate.clone(),
            key: (binding.credential_type == "x509")
                .then(|| {
                    binding
                        .client_secret
                        .as_ref()
                        .map(|s| s.expose_secret().to_owned())
                })
                .flatten(),
            certurl: (binding.credential_type == "x509")
                .then(|| cfg.cert_url.clone())
                .flatten(),
        })
    }
}

fn context_str(ctx: &Map<String, Value>, key: &str) -> Option<String> {
    ctx.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Ids end up in URLs, client ids and owner ids (`<instance>/<subaccount>`, so never a `/`):
/// printable and bounded.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What [`valid_id`] asks, for messages.
pub(crate) const ID_RULE: &str = "must be 1 to 200 characters of letters, digits, '-', '_' or '.'";

fn check_id(field: &str, id: &str) -> BrokerResult<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(BrokerError::bad_request(format!("{field} {ID_RULE}")))
    }
}

/// What kind of credentials a bind makes (seed 000: a client secret by default, or X.509).
#[derive(Debug, Clone, PartialEq, Eq)]
enum BindKind {
    Secret,
    /// Signpost generates the client certificate from its CA.
    X509Generated(signpost_certs::ca::X509BindingParams),
    /// The client brings its own certificate chain (PEM).
    X509Provided(String),
}

/// Reads XSUAA's X.509 bind parameters:
/// `{"xsuaa": {"credential-type": "x509", "x509": {"key-length", "validity", "validity-type"}}}` or
/// `{"xsuaa": {"credential-type": "x509", "x509": {"certificate": "<PEM chain>"}}}`.
fn bind_kind(params: &Value) -> BrokerResult<BindKind> {
    let Some(obj) = params.as_object() else {
        return Err(BrokerError::bad_request("parameters must be a JSON object"));
    };
    let Some(xsuaa) = obj.get("xsuaa") else {
        return Ok(BindKind::Secret);
    };
    let Some(xsuaa) = xsuaa.as_object() else {
        return Err(BrokerError::bad_request(
            "parameters.xsuaa must be a JSON object",
        ));
    };
    match xsuaa.get("credential-type").and_then(Value::as_str) {
        None | Some("binding-secret") | Some("instance-secret") => return Ok(BindKind::Secret),
        Some("x509") => {}
        Some(other) => {
            return Err(BrokerError::bad_request(format!(
                "parameters.xsuaa.credential-type '{other}' is unknown; use binding-secret or x509"
            )))
        }
    }
    let x509 = xsuaa
        .get("x509")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    if let Some(cert) = x509.get("certificate") {
        let pem = cert
            .as_str()
            .filter(|p| p.contains("-----BEGIN CERTIFICATE-----"))
            .ok_or_else(|| {
                BrokerError::bad_request(
                    "parameters.xsuaa.x509.certificate must be a PEM certificate chain",
                )
            })?;
        return Ok(BindKind::X509Provided(pem.to_owned()));
    }
    let p: signpost_certs::ca::X509BindingParams = serde_json::from_value(x509)
        .map_err(|e| BrokerError::bad_request(format!("parameters.xsuaa.x509: {e}")))?;
    Ok(BindKind::X509Generated(p))
}

/// The bind parameter `scopes` (Signpost's): scopes the binding's tokens carry besides the
/// service's own, e.g. those an instance's `subscriber_access` asks of a subscriber's token.
fn bind_scopes(params: &Value) -> BrokerResult<Vec<String>> {
    let Some(scopes) = params.get("scopes") else {
        return Ok(Vec::new());
    };
    let bad = || {
        BrokerError::bad_request(
            "parameters.scopes must be an array of at most 50 scopes, each 1 to 200 printable characters without spaces",
        )
    };
    let list = scopes
        .as_array()
        .filter(|l| l.len() <= 50)
        .ok_or_else(bad)?;
    let mut out = Vec::with_capacity(list.len());
    for scope in list {
        let s = scope
            .as_str()
            .filter(|s| (1..=200).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(bad)?;
        if !out.iter().any(|o: &String| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// The stored `subscriber_access` after a provision or update gave `given`: a section
/// (`destination`, `certificate`) given replaces its lists that it names (an empty array clears
/// one); sections and lists left out stay as they were. `None` when nothing is granted.
fn merge_subscriber_access(
    stored: Option<&str>,
    given: Option<&Map<String, Value>>,
) -> Option<String> {
    let mut merged: Map<String, Value> = stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    for (section, lists) in given.into_iter().flatten() {
        let entry = merged
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Some(target), Some(lists)) = (entry.as_object_mut(), lists.as_object()) {
            for (list, scopes) in lists {
                target.insert(list.clone(), scopes.clone());
            }
        }
    }
    merged.retain(|_, lists| {
        lists.as_object_mut().is_some_and(|l| {
            l.retain(|_, scopes| scopes.as_array().is_some_and(|a| !a.is_empty()));
            !l.is_empty()
        })
    });
    (!merged.is_empty()).then(|| Value::Object(merged).to_string())
}

/// [`validate_config_certificates`] on the CPU pool (the keystores may need PBKDF2 or scrypt).
async fn validate_config_certificates_off(config: &InstanceConfig) -> BrokerResult<()> {
    if config.subaccount.certificates.is_empty() && config.instance.certificates.is_empty() {
        return Ok(());
    }
    let config = config.clone();
    signpost_oauth::cpu::run(move || validate_config_certificates(&config))
        .await
        .map_err(|_| BrokerError::internal())?
}

/// Certificates of a configuration JSON are validated like uploads (400 naming the entry).
fn validate_config_certificates(config: &InstanceConfig) -> BrokerResult<()> {
    for (level, init) in [
        ("subaccount", &config.subaccount),
        ("instance", &config.instance),
    ] {
        for (i, c) in init.certificates.iter().enumerate() {
            let checked = crate::certificates::decode_content(&c.content).and_then(|bytes| {
                crate::certificates::validate_file(&bytes, c.password.as_deref()).map(|_| ())
            });
            if let Err(reason) = checked {
                return Err(BrokerError::bad_request(format!(
                    "Invalid configuration JSON: init_data.{level}.certificates[{i}] ('{}'): {reason}",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

fn same_or_conflict(existing: &InstanceRecord, digest: &str) -> BrokerResult<ProvisionOutcome> {
    if existing.request_digest == digest {
        Ok(ProvisionOutcome::AlreadyExists)
    } else {
        Err(BrokerError::conflict(format!(
            "instance '{}' already exists with other attributes",
            existing.id
        )))
    }
}

fn mode(policy: ExistingPolicy) -> PutMode {
    match policy {
        ExistingPolicy::Update => PutMode::Upsert,
        ExistingPolicy::Fail => PutMode::Create,
        ExistingPolicy::Ignore => PutMode::CreateIfAbsent,
    }
}

/// Appends the entity writes of a configuration JSON; returns, per op index, a label for errors.
fn config_ops(
    config: &InstanceConfig,
    subaccount_id: &str,
    instance_id: &str,
    ops: &mut Vec<WriteOp>,
) -> Vec<(usize, String)> {
    let mut labels = Vec::new();
    let mut add_level = |level: &LevelInit, owner: OwnerRef, ops: &mut Vec<WriteOp>| {
        let path = format!("init_data.{}", owner.level.as_str());
        for (i, d) in level.destinations.iter().enumerate() {
            labels.push((
                ops.len(),
                format!(
                    "destination '{}' ({path}.destinations[{i}], policy {})",
                    d.name(),
                    level.existing_destinations_policy.as_str()
                ),
            ));
            ops.push(WriteOp::PutEntity {
                owner: owner.clone(),
                kind: EntityKind::Destination,
                name: d.name().into(),
                body: properties_body(d.properties()),
                mode: mode(level.existing_destinations_policy),
            });
        }
        for (i, c) in level.certificates.iter().enumerate() {
            labels.push((
                ops.len(),
                format!(
                    "certificate '{}' ({path}.certificates[{i}], policy {})",
                    c.name,
                    level.existing_certificates_policy.as_str()
                ),
            ));
            ops.push(WriteOp::PutEntity {
                owner: owner.clone(),
                kind: EntityKind::Certificate,
                name: c.name.clone(),
                body: certificate_body(c),
                mode: mode(level.existing_certificates_policy),
            });
        }
    };
    add_level(
        &config.subaccount,
        OwnerRef {
            level: Level::Subaccount,
            id: subaccount_id.into(),
        },
        ops,
    );
    add_level(
        &config.instance,
        OwnerRef {
            level: Level::Instance,
            id: instance_id.into(),
        },
        ops,
    );
    labels
}

fn config_failure(e: signpost_store::Error, labels: &[(usize, String)]) -> BrokerError {
    use signpost_store::Error as S;
    let label = |index: usize| {
        labels
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| "the instance".into())
    };
    match e {
        S::Conflict { index, .. } => BrokerError::conflict(format!(
            "{ALL_OR_NOTHING}: {} already exists. Set \"existing_destinations_policy\" / \"existing_certificates_policy\" to \"update\" or \"ignore\" to handle duplicates",
            label(index)
        )),
        S::NotFound { index, .. } => BrokerError::not_found(format!("{ALL_OR_NOTHING}: {} does not exist", label(index))),
        S::LimitExceeded { .. } => BrokerError::bad_request(format!("{ALL_OR_NOTHING}: {e}")),
        other => other.into(),
    }
}

/// The audit entries of the entity writes in a batch, by index: the broker writes the entities
/// of a configuration JSON.
fn entity_entries(ops: &[WriteOp], subaccount_id: &str) -> Vec<(usize, Entry)> {
    ops.iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::PutEntity {
                owner, kind, name, ..
            } => {
                let entry = Entry::broker("create", kind.as_str())
                    .subaccount(subaccount_id)
                    .name(name.as_str());
                let entry = match owner.level {
                    Level::Subaccount => entry,
                    Level::Instance => entry.instance(owner.id.as_str()),
                };
                Some((i, entry))
            }
            _ => None,
        })
        .collect()
}

/// The events of what the entity writes of a batch did: `create` (201) or `update` (200); one
/// that left an existing entity as it was (policy `ignore`) wrote nothing.
fn entity_events(
    entries: Vec<(usize, Entry)>,
    outcomes: &[signpost_store::WriteOutcome],
) -> Vec<(Entry, u16)> {
    use signpost_store::WriteOutcome as O;
    entries
        .into_iter()
        .filter_map(|(i, entry)| match outcomes.get(i) {
            Some(O::Created { .. }) => Some((entry, 201)),
            Some(O::Updated { .. }) => Some((entry.action("update"), 200)),
            _ => None,
        })
        .collect()
}
