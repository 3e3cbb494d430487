//! The audit log (issue 11 §7) through the real router, real HTTP and a real database: every
//! write and every issued token is an event with its actor, place, action, entity, outcome and
//! request id, never a secret or a property value; `GET /signpost/v1/audit` reads it newest
//! first in pages, with the broker credentials; old events are pruned.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_core::{CATALOG_PLAN_ID, CATALOG_SERVICE_ID};
use signpost_test_utils::{
    provision_body, status_json, Tenant, TestApp, BROKER_PASSWORD, BROKER_USER,
};

/// Secrets and property values that no event may contain.
const MARKERS: &[&str] = &[
    "audit-marker-password",
    "audit-marker-user",
    "audit-marker-url",
    "audit-marker-p12-password",
    "audit-marker-header",
];

fn basic_dest(name: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": "https://audit-marker-url.example/x",
           "Authentication": "BasicAuthentication", "User": "audit-marker-user",
           "Password": "audit-marker-password", "URL.headers.X-Marker": "audit-marker-header"})
}

/// Every event, newest first.
async fn log(app: &TestApp) -> Vec<Value> {
    let (status, body) = status_json(
        app.client
            .get(app.url("/signpost/v1/audit?limit=1000"))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    u64,
    Option<String>,
    Option<String>,
);

/// An event as `(actor, action, kind, name, status, subaccount, instance)`.
fn row(e: &Value) -> Row {
    let s = |k: &str| e[k].as_str().map(str::to_owned);
    (
        s("actor").unwrap(),
        s("action").unwrap(),
        s("entityKind").unwrap(),
        s("entityName"),
        e["status"].as_u64().unwrap(),
        s("subaccount"),
        s("instance"),
    )
}

fn r(
    actor: &str,
    action: &str,
    kind: &str,
    name: Option<&str>,
    status: u64,
    sub: Option<&str>,
    inst: Option<&str>,
) -> Row {
    (
        actor.into(),
        action.into(),
        kind.into(),
        name.map(Into::into),
        status,
        sub.map(Into::into),
        inst.map(Into::into),
    )
}

async fn token_request(app: &TestApp, client_id: &str, secret: &str) -> (u16, Value) {
    status_json(
        app.client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    status_json(req.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_and_every_token_is_an_event_without_secrets() {
    let app = TestApp::start().await;
    let config = json!({"init_data": {
        "subaccount": {"destinations": [basic_dest("sub-dest")]},
        "instance": {"destinations": [basic_dest("inst-dest")]},
    }});
    assert_eq!(
        app.provision("i1", "s1", config.clone()).await.status(),
        201
    );
    // The same id with another body: refused, and recorded as a failure.
    assert_eq!(app.provision("i1", "s1", json!({})).await.status(), 409);

    // A caller's request id is kept and answered.
    let res = app
        .broker(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/key1",
        )
        .header("x-request-id", "bind-request-1")
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], "bind-request-1");
    let key = res.json::<Value>().await.unwrap()["credentials"].clone();
    let client_id = key["clientid"].as_str().unwrap().to_owned();
    let secret = key["clientsecret"].as_str().unwrap().to_owned();

    // Tokens: issued, refused for the binding, and a client id that names no binding.
    let (status, token) = token_request(&app, &client_id, &secret).await;
    assert_eq!(status, 200);
    let access = token["access_token"].as_str().unwrap().to_owned();
    let jti = jti_of(&access);
    assert_eq!(token_request(&app, &client_id, "wrong-secret").await.0, 401);
    assert_eq!(token_request(&app, "nobody", "x").await.0, 401);

    let t = Tenant {
        base: app.base.clone(),
        client: app.client.clone(),
        key: key.clone(),
        token: access,
    };
    // Entities: create, conflict, update of a missing one, update, a bulk with a bad item.
    assert_eq!(
        t.post("/v1/subaccountDestinations", basic_dest("t-dest"))
            .await
            .status(),
        201
    );
    assert_eq!(
        t.post("/v1/subaccountDestinations", basic_dest("t-dest"))
            .await
            .status(),
        409
    );
    assert_eq!(
        t.put("/v1/instanceDestinations", basic_dest("missing"))
            .await
            .status(),
        404
    );
    assert_eq!(
        t.put("/v1/subaccountDestinations", basic_dest("t-dest"))
            .await
            .status(),
        200
    );
    let bulk = t
        .post(
            "/v1/instanceDestinations",
            json!([basic_dest("a"), {"Name": "b", "URL": "https://audit-marker-url.example"}]),
        )
        .await;
    assert_eq!(bulk.status(), 207);
    assert_eq!(
        t.post(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "f", "User": "audit-marker-user"})
        )
        .await
        .status(),
        201
    );
    // A certificate generated by the built-in CA, with a password, then renewed by the job.
    let gen = json!({"Name": "gen.p12", "Type": "PKCS12", "Attributes": {"CN": "audit.example",
        "Password": "audit-marker-p12-password", "Validity": {"TimeUnit": "DAYS", "Value": 30},
        "AutomaticRenew": true}});
    let (s, body) = status_json(t.post("/v1/subaccountCertificates", gen).await).await;
    assert_eq!(s, 201, "{body}");
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(21);
    assert_eq!(app.core.renew_due_certificates(later).await.unwrap(), 1);
    // Deletes, one at a time and in bulk.
    assert_eq!(
        t.delete("/v1/subaccountDestinations/t-dest").await.status(),
        200
    );
    assert_eq!(
        t.delete("/v1/subaccountDestinations/t-dest").await.status(),
        404
    );
    let (s, _) = status_json(
        t.delete("/v1/instanceDestinations?$filter=Name%20in%20('a','zz')")
            .await,
    )
    .await;
    assert_eq!(s, 200);
    // SAML trust key pairs.
    for (method, path) in [
        (Method::POST, "/v1/saml2Metadata/certificate"),
        (Method::POST, "/v1/saml2Metadata/certificate/passive"),
        (Method::POST, "/v1/saml2Metadata/rotateCertificate"),
        (Method::DELETE, "/v1/saml2Metadata/certificate/passive"),
    ] {
        let (s, body) = send(t.req(method, path)).await;
        assert_eq!(s, 200, "{path}: {body}");
    }
    // Signing-key rotation, then the binding and the instance go.
    let (s, rotation) = send(
        app.client
            .post(app.url("/signpost/v1/signing-keys/rotate"))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD)),
    )
    .await;
    assert_eq!(s, 201);
    let kid = rotation["kid"].as_str().unwrap();
    let unbind = "/v2/service_instances/i1/service_bindings/key1";
    assert_eq!(
        app.broker(Method::DELETE, unbind)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for expected in [200, 410] {
        let res = app
            .broker(Method::DELETE, "/v2/service_instances/i1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }

    let events = log(&app).await;
    let rows: Vec<Row> = events.iter().rev().map(row).collect();
    let (s1, i1) = (Some("s1"), Some("i1"));
    let c = client_id.as_str();
    let expected = vec![
        r("broker", "provision", "instance", i1, 201, s1, i1),
        r(
            "broker",
            "create",
            "destination",
            Some("sub-dest"),
            201,
            s1,
            None,
        ),
        r(
            "broker",
            "create",
            "destination",
            Some("inst-dest"),
            201,
            s1,
            i1,
        ),
        r("broker", "provision", "instance", i1, 409, s1, i1),
        r("broker", "bind", "binding", Some("key1"), 201, s1, i1),
        r(c, "issue", "token", Some(&jti), 200, s1, i1),
        r(c, "issue", "token", None, 401, s1, i1),
        r(c, "create", "destination", Some("t-dest"), 201, s1, None),
        r(c, "create", "destination", Some("t-dest"), 409, s1, None),
        r(c, "update", "destination", Some("missing"), 404, s1, i1),
        r(c, "update", "destination", Some("t-dest"), 200, s1, None),
        r(c, "create", "destination", Some("a"), 201, s1, i1),
        r(c, "create", "destination", Some("b"), 400, s1, i1),
        r(c, "create", "fragment", Some("f"), 201, s1, i1),
        r(c, "generate", "certificate", Some("gen.p12"), 201, s1, None),
        r(
            "signpost",
            "renew",
            "certificate",
            Some("gen.p12"),
            200,
            s1,
            None,
        ),
        r(c, "delete", "destination", Some("t-dest"), 200, s1, None),
        r(c, "delete", "destination", Some("t-dest"), 404, s1, None),
        r(c, "delete", "destination", Some("a"), 200, s1, i1),
        r(c, "delete", "destination", Some("zz"), 404, s1, i1),
        r(c, "generate", "saml-key", Some("active"), 200, s1, None),
        r(c, "generate", "saml-key", Some("passive"), 200, s1, None),
        r(c, "rotate", "saml-key", None, 200, s1, None),
        r(c, "delete", "saml-key", Some("passive"), 200, s1, None),
        r(
            "broker",
            "rotate",
            "signing-key",
            Some(kid),
            201,
            None,
            None,
        ),
        r("broker", "unbind", "binding", Some("key1"), 200, s1, i1),
        r("broker", "deprovision", "instance", i1, 200, s1, i1),
        r("broker", "deprovision", "instance", i1, 410, None, i1),
    ];
    assert_eq!(rows, expected);

    // Outcome follows the status; every request's event has its request id, the job's none.
    for e in &events {
        let failed = e["status"].as_u64().unwrap() >= 400;
        assert_eq!(
            e["outcome"],
            if failed { "failure" } else { "success" },
            "{e}"
        );
        let job = e["actor"] == "signpost";
        assert_eq!(e["requestId"].is_null(), job, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let bind = events.iter().find(|e| e["action"] == "bind").unwrap();
    assert_eq!(bind["requestId"], "bind-request-1");
    // Ids grow with the log; newest first.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // No secret and no property value anywhere in the log.
    let text = serde_json::to_string(&events).unwrap();
    for marker in MARKERS.iter().chain([&secret.as_str()]) {
        assert!(!text.contains(marker), "{marker} is in the audit log");
    }
    assert!(!text.contains("BEGIN"), "no key or certificate material");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_request_id_is_answered_and_recorded() {
    let app = TestApp::start().await;
    let res = app.provision("i2", "s2", json!({})).await;
    assert_eq!(res.status(), 201);
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!made.is_empty());
    // An unusable one is replaced, not kept.
    let res = app
        .broker(Method::PUT, "/v2/service_instances/i3")
        .header("x-request-id", "not a token")
        .json(&provision_body("s2", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let replaced = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(replaced, "not a token");
    assert_ne!(replaced, made);
    let events = log(&app).await;
    assert_eq!(events[1]["requestId"], made.as_str());
    assert_eq!(events[0]["requestId"], replaced.as_str());
    // Errors answered by the router carry one too.
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_read_in_pages_with_the_broker_credentials() {
    let app = TestApp::start().await;
    for i in 0..5 {
        assert_eq!(
            app.provision(&format!("p{i}"), "ps", json!({}))
                .await
                .status(),
            201
        );
    }
    let all = log(&app).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["entityName"], "p4", "newest first");

    // Pages of two, following the Link header until there is none.
    let mut url = app.url("/signpost/v1/audit?limit=2");
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let res = app
            .client
            .get(&url)
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let link = res
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = res.json().await.unwrap();
        assert!(page.len() <= 2);
        paged.extend(page);
        pages += 1;
        match link {
            None => break,
            Some(l) => {
                assert!(l.ends_with("; rel=\"next\""), "{l}");
                let target = l.split_once('<').unwrap().1.split_once('>').unwrap().0;
                assert!(target.starts_with("/signpost/v1/audit?"), "{target}");
                url = app.url(target);
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all);

    // `since` keeps its bound across pages and is inclusive.
    let third = all[2]["time"].as_str().unwrap();
    let since = |q: &str| {
        let app = &app;
        let q = q.to_owned();
        async move {
            let res = app
                .client
                .get(app.url("/signpost/v1/audit"))
                .query(&[("since", q.as_str()), ("limit", "1")])
                .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
                .send()
                .await
                .unwrap();
            let link = res
                .headers()
                .get("link")
                .map(|v| v.to_str().unwrap().to_owned());
            (link, res.json::<Vec<Value>>().await.unwrap())
        }
    };
    let (link, page) = since(third).await;
    assert_eq!(page[0], all[0]);
    let link = link.unwrap();
    assert!(link.contains("since="), "{link}");
    let (_, future) = since("2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let (_, with_offset) = since("2000-01-01T01:00:00+01:00").await;
    assert_eq!(with_offset.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_callers_get_json_errors() {
    let app = TestApp::start().await;
    let tenant = app.tenant("bs", "bi", json!({})).await;
    let before = log(&app).await;
    for query in [
        "since=yesterday",
        "since=2026-13-01T00:00:00Z",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "cursor=nope",
        "cursor=1.x",
        "page=2",
    ] {
        let res = app
            .client
            .get(app.url(&format!("/signpost/v1/audit?{query}")))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(res).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["ErrorMessage"].is_string(), "{query}: {body}");
    }
    // Without the broker credentials: a 401 asking for Basic, whatever the query.
    for req in [
        app.client.get(app.url("/signpost/v1/audit")),
        app.client
            .get(app.url("/signpost/v1/audit?limit=0"))
            .basic_auth(BROKER_USER, Some("wrong")),
        app.client
            .get(app.url("/signpost/v1/audit"))
            .bearer_auth(&tenant.token),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        let body: Value = res.json().await.unwrap();
        assert!(body["ErrorMessage"].is_string());
    }
    // Reading is no write: the log is as it was.
    assert_eq!(log(&app).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_retention_are_pruned() {
    let app = TestApp::start().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let day = 86_400_000;
    let old = |days: i64, name: &str| signpost_store::AuditEvent {
        id: 0,
        at_ms: now - days * day,
        actor: "broker".into(),
        subaccount_id: None,
        instance_id: None,
        action: "provision".into(),
        entity_kind: Some("instance".into()),
        entity_name: Some(name.into()),
        status: 201,
        request_id: None,
    };
    app.core
        .store_for_tests()
        .record_audit(&[old(120, "very-old"), old(91, "old"), old(89, "kept")])
        .await
        .unwrap();
    assert_eq!(app.provision("fresh", "rs", json!({})).await.status(), 201);
    assert_eq!(log(&app).await.len(), 4);
    assert_eq!(app.core.prune_audit(90).await.unwrap(), 2);
    let names: Vec<Value> = log(&app)
        .await
        .iter()
        .map(|e| e["entityName"].clone())
        .collect();
    assert_eq!(names, [json!("fresh"), json!("kept")]);
    assert_eq!(app.core.prune_audit(90).await.unwrap(), 0);
}
