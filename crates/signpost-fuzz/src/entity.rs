//! The JSON bodies of the destination configuration API (destinations, fragments, certificates)
//! and the instance configuration JSON of the service broker, as the API and provisioning
//! validate them.

use base64::Engine as _;
use serde_json::{Map, Value};
use signpost_model::{Certificate, Destination, Fragment};
use signpost_wire::{
    certificate_from_json, certificate_to_json, destination_from_json, fragment_from_json,
    properties_to_json, split_body, BodyShape, ExistingPolicy, InstanceConfig, LevelInit,
    ProvisionRequest, UpdateRequest,
};

/// A create or update body (`split_body`), each item read as a destination, a fragment and a
/// certificate: what is accepted writes back as JSON and reads back equal, and a certificate's
/// content goes through the checks of an upload.
pub fn entity_body(data: &[u8]) {
    let items = match split_body(data) {
        Ok(BodyShape::One(v)) => vec![v],
        Ok(BodyShape::Many(items)) => {
            assert!(!items.is_empty(), "split_body accepted an empty array");
            items
        }
        Err(_) => return,
    };
    for item in &items {
        if let Ok(d) = destination_from_json(item) {
            destination_round_trip(&d);
        }
        if let Ok(f) = fragment_from_json(item) {
            fragment_round_trip(&f);
        }
        if let Ok(c) = certificate_from_json(item) {
            certificate_round_trip(&c);
            certificate_content(&c);
        }
    }
}

/// The parameters of a provision or update (`InstanceConfig::parse`), given as the whole OSB
/// request body or as the parameters alone: what is accepted writes back as a configuration JSON
/// that reads back equal, and its certificates go through the checks of an upload.
pub fn instance_config(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut parameters = vec![Some(value.clone())];
    if let Ok(req) = serde_json::from_value::<ProvisionRequest>(value.clone()) {
        parameters.push(req.parameters);
    }
    if let Ok(req) = serde_json::from_value::<UpdateRequest>(value) {
        parameters.push(req.parameters);
    }
    for p in parameters {
        let Ok(config) = InstanceConfig::parse(p.as_ref()) else {
            continue;
        };
        for level in [&config.subaccount, &config.instance] {
            for d in &level.destinations {
                destination_round_trip(d);
            }
            for c in &level.certificates {
                certificate_round_trip(c);
                certificate_content(c);
            }
        }
        let written = config_json(&config);
        let back =
            InstanceConfig::parse(Some(&written)).expect("a written configuration reads back");
        assert_eq!(back.html5_runtime_enabled, config.html5_runtime_enabled);
        assert_eq!(back.subscriber_access, config.subscriber_access);
        for (a, b) in [
            (&back.subaccount, &config.subaccount),
            (&back.instance, &config.instance),
        ] {
            assert_eq!(a.destinations, b.destinations);
            assert!(a.certificates == b.certificates, "certificates differ");
            assert_eq!(
                a.existing_destinations_policy,
                b.existing_destinations_policy
            );
            assert_eq!(
                a.existing_certificates_policy,
                b.existing_certificates_policy
            );
        }
        assert_eq!(back.is_empty(), config.is_empty());
    }
}

fn destination_round_trip(d: &Destination) {
    let json = Value::Object(properties_to_json(d.properties()));
    let back = destination_from_json(&json).expect("a written destination reads back");
    assert_eq!(&back, d);
    let bytes = serde_json::to_vec(&json).expect("JSON serialises");
    assert!(matches!(split_body(&bytes), Ok(BodyShape::One(v)) if v == json));
}

fn fragment_round_trip(f: &Fragment) {
    let json = Value::Object(properties_to_json(f.properties()));
    let back = fragment_from_json(&json).expect("a written fragment reads back");
    assert_eq!(&back, f);
}

fn certificate_round_trip(c: &Certificate) {
    let json = Value::Object(certificate_to_json(c));
    let back = certificate_from_json(&json).expect("a written certificate reads back");
    assert!(&back == c, "certificate {:?} read back as {back:?}", c.name);
    // Secrets never print: a password of some length shows nowhere in Debug.
    if let Some(p) = c.password.as_deref().filter(|p| p.len() >= 12) {
        let shown_elsewhere = c.name.contains(p) || c.ty.as_deref().is_some_and(|t| t.contains(p));
        assert!(
            shown_elsewhere || !format!("{c:?}").contains(p),
            "Debug of a certificate shows its password"
        );
    }
}

/// The checks of an upload (signpost-core's `decode_content` and `validate_file`): base64 with
/// any whitespace, then a certificate file whose chains are complete.
fn certificate_content(c: &Certificate) {
    let compact: String = c.content.chars().filter(|ch| !ch.is_whitespace()).collect();
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact) {
        if let Ok(store) = signpost_certs::parse::parse(&bytes, c.password.as_deref()) {
            let _ = signpost_certs::parse::validate_chain(&store);
        }
    }
}

/// The configuration JSON that describes `config`.
fn config_json(config: &InstanceConfig) -> Value {
    let level = |l: &LevelInit| {
        let mut m = Map::new();
        m.insert(
            "destinations".into(),
            l.destinations
                .iter()
                .map(|d| Value::Object(properties_to_json(d.properties())))
                .collect(),
        );
        m.insert(
            "certificates".into(),
            l.certificates
                .iter()
                .map(|c| Value::Object(certificate_to_json(c)))
                .collect(),
        );
        m.insert(
            "existing_destinations_policy".into(),
            policy(l.existing_destinations_policy),
        );
        m.insert(
            "existing_certificates_policy".into(),
            policy(l.existing_certificates_policy),
        );
        Value::Object(m)
    };
    let mut init = Map::new();
    init.insert("subaccount".into(), level(&config.subaccount));
    init.insert("instance".into(), level(&config.instance));
    let mut top = Map::new();
    top.insert("init_data".into(), Value::Object(init));
    if let Some(b) = config.html5_runtime_enabled {
        top.insert("HTML5Runtime_enabled".into(), Value::Bool(b));
    }
    if let Some(sa) = &config.subscriber_access {
        top.insert("subscriber_access".into(), Value::Object(sa.clone()));
    }
    Value::Object(top)
}

fn policy(p: ExistingPolicy) -> Value {
    Value::String(p.as_str().to_owned())
}
