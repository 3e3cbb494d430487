//! Labels of destinations, fragments and certificates (issue 18 §1) through the real router over
//! HTTP: `GET|PUT|PATCH .../{name}/labels` on both levels, lists filtered by
//! `$filter=Label['key'] HAS (...)`, labels kept by body updates and gone with their entity, and
//! the bad inputs: each a JSON 400 or 404 that changes nothing stored.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, Tenant, TestApp};

fn dest(name: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": format!("https://{name}.example"), "Authentication": "NoAuthentication", "ProxyType": "Internet"})
}

/// One entity of each kind on a level: (collection, name, body).
fn entities(level: &str) -> Vec<(String, &'static str, Value)> {
    vec![
        (format!("/v1/{level}Destinations"), "d1", dest("d1")),
        (
            format!("/v1/{level}DestinationFragments"),
            "f1",
            json!({"FragmentName": "f1", "URL": "https://fragment.example"}),
        ),
        (
            format!("/v1/{level}Certificates"),
            "c1.pem",
            json!({"Name": "c1.pem", "Type": "PEM", "Content": signpost_test_utils::pki::cert_content("labels")}),
        ),
    ]
}

async fn send(t: &Tenant, method: Method, path: &str, body: Value) -> (u16, Value) {
    status_json(t.req(method, path).json(&body).send().await.unwrap()).await
}

async fn labels_of(t: &Tenant, entity: &str) -> Value {
    let (s, v) = status_json(t.get(&format!("{entity}/labels")).await).await;
    assert_eq!(s, 200, "{entity}: {v}");
    v
}

#[tokio::test]
async fn labels_on_every_kind_and_level() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-l", "inst-l", json!({})).await;
    for level in ["subaccount", "instance"] {
        for (coll, name, body) in entities(level) {
            assert_eq!(t.post(&coll, body.clone()).await.status(), 201, "{coll}");
            let entity = format!("{coll}/{name}");
            assert_eq!(labels_of(&t, &entity).await, json!([]), "none at first");

            let set = json!([{"key": "env", "values": ["prod", "eu"]}, {"key": "team", "values": ["payments"]}]);
            let (s, v) = send(&t, Method::PUT, &format!("{entity}/labels"), set.clone()).await;
            assert_eq!((s, &v), (200, &set), "{entity}");
            assert_eq!(labels_of(&t, &entity).await, set);

            // ADD unions values into keys and appends new keys.
            let (s, v) = send(
                &t,
                Method::PATCH,
                &format!("{entity}/labels"),
                json!({"action": "ADD", "labels": [{"key": "env", "values": ["eu", "us"]}, {"key": "tier", "values": ["gold"]}]}),
            )
            .await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(
                v,
                json!([{"key": "env", "values": ["prod", "eu", "us"]}, {"key": "team", "values": ["payments"]}, {"key": "tier", "values": ["gold"]}])
            );
            // DELETE takes values out; a key left empty, or named without values, goes.
            let (s, v) = send(
                &t,
                Method::PATCH,
                &format!("{entity}/labels"),
                json!({"action": "DELETE", "labels": [{"key": "env", "values": ["prod", "us"]}, {"key": "team", "values": []}, {"key": "tier", "values": ["gold"]}]}),
            )
            .await;
            assert_eq!((s, v), (200, json!([{"key": "env", "values": ["eu"]}])));

            // A body update keeps the labels; they are not part of the body.
            let (s, _) = status_json(t.put(&coll, body.clone()).await).await;
            assert_eq!(s, 200, "{coll}");
            let (_, got) = status_json(t.get(&entity).await).await;
            assert!(
                got.get("labels").is_none() && got.get("Labels").is_none(),
                "{got}"
            );
            assert_eq!(
                labels_of(&t, &entity).await,
                json!([{"key": "env", "values": ["eu"]}])
            );
        }
    }
    // The two levels keep their own labels.
    let (_, v) = send(
        &t,
        Method::PUT,
        "/v1/instanceDestinations/d1/labels",
        json!([{"key": "only", "values": ["instance"]}]),
    )
    .await;
    assert_eq!(v, json!([{"key": "only", "values": ["instance"]}]));
    assert_eq!(
        labels_of(&t, "/v1/subaccountDestinations/d1").await,
        json!([{"key": "env", "values": ["eu"]}])
    );
    // Another tenant sees none of it.
    let other = app.tenant("sub-other", "inst-other", json!({})).await;
    let (s, v) = status_json(other.get("/v1/subaccountDestinations/d1/labels").await).await;
    assert_eq!(s, 404, "{v}");

    // Deleted with the entity: made again, it has none.
    assert_eq!(
        t.delete("/v1/subaccountDestinations/d1").await.status(),
        200
    );
    let (s, v) = status_json(t.get("/v1/subaccountDestinations/d1/labels").await).await;
    assert_eq!(s, 404, "{v}");
    assert!(v["ErrorMessage"].as_str().unwrap().contains("'d1'"), "{v}");
    assert_eq!(
        t.post("/v1/subaccountDestinations", dest("d1"))
            .await
            .status(),
        201
    );
    assert_eq!(
        labels_of(&t, "/v1/subaccountDestinations/d1").await,
        json!([])
    );
}

#[tokio::test]
async fn lists_filter_by_label() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-f", "inst-f", json!({})).await;
    let coll = "/v1/subaccountDestinations";
    for (name, labels) in [
        (
            "a",
            json!([{"key": "env", "values": ["prod"]}, {"key": "team", "values": ["x y"]}]),
        ),
        ("b", json!([{"key": "env", "values": ["dev"]}])),
        ("c", json!([{"key": "env", "values": ["prod", "dev"]}])),
        ("d", json!([])),
    ] {
        assert_eq!(t.post(coll, dest(name)).await.status(), 201);
        let (s, _) = send(&t, Method::PUT, &format!("{coll}/{name}/labels"), labels).await;
        assert_eq!(s, 200);
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (filter, want) in [
        ("Label['env'] HAS ('prod')", vec!["a", "c"]),
        ("Label['env'] HAS ('prod', 'dev')", vec!["a", "b", "c"]),
        // As the Python SDK sends it: values percent-encoded, clauses joined by AND.
        (
            "Label['env'] HAS ('prod') AND Label['team'] HAS ('x%20y')",
            vec!["a"],
        ),
        ("Label['env'] HAS ('none')", vec![]),
        ("Label['missing'] HAS ('prod')", vec![]),
        (
            "Name in ('a', 'b') and Label['env'] HAS ('prod')",
            vec!["a"],
        ),
        (
            "startswith(Name, 'c') AND Label['env'] HAS ('dev')",
            vec!["c"],
        ),
    ] {
        let res = t
            .req(Method::GET, coll)
            .query(&[("$filter", filter)])
            .send()
            .await
            .unwrap();
        let (s, v) = status_json(res).await;
        assert_eq!(s, 200, "{filter}: {v}");
        assert_eq!(names(&v), want, "{filter}");
    }
    // Fragments and certificates filter too.
    let frag = json!({"FragmentName": "f-prod", "URL": "https://f"});
    assert_eq!(
        t.post("/v1/subaccountDestinationFragments", frag)
            .await
            .status(),
        201
    );
    assert_eq!(
        t.post(
            "/v1/subaccountDestinationFragments",
            json!({"FragmentName": "f-none", "URL": "https://f"})
        )
        .await
        .status(),
        201
    );
    send(
        &t,
        Method::PUT,
        "/v1/subaccountDestinationFragments/f-prod/labels",
        json!([{"key": "env", "values": ["prod"]}]),
    )
    .await;
    let res = t
        .req(Method::GET, "/v1/subaccountDestinationFragments")
        .query(&[("$filter", "Label['env'] HAS ('prod')")])
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(res).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["FragmentName"], "f-prod");

    // Bad filters are 400s that say why.
    for bad in [
        "Label['env'] HAS ()",
        "Label['env'] HAS ('a') AND",
        "Label['bad key'] HAS ('a')",
        "Label['env'] EQ ('a')",
        "Label['env'] HAS ('a') or Label['team'] HAS ('b')",
    ] {
        let res = t
            .req(Method::GET, coll)
            .query(&[("$filter", bad)])
            .send()
            .await
            .unwrap();
        let (s, v) = status_json(res).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(
            v["ErrorMessage"].as_str().unwrap().contains("$filter"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn bad_labels_are_refused_and_change_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-b", "inst-b", json!({})).await;
    let coll = "/v1/subaccountDestinations";
    assert_eq!(t.post(coll, dest("keep")).await.status(), 201);
    let kept = json!([{"key": "env", "values": ["prod"]}]);
    let (s, _) = send(
        &t,
        Method::PUT,
        "/v1/subaccountDestinations/keep/labels",
        kept.clone(),
    )
    .await;
    assert_eq!(s, 200);
    let path = "/v1/subaccountDestinations/keep/labels";

    let eleven: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
    let fifty_one: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("k{i}"), "values": ["v"]}))
        .collect();
    for (method, body, why) in [
        (Method::PUT, json!({"key": "env"}), "not an array"),
        (
            Method::PUT,
            json!([{"key": "", "values": ["a"]}]),
            "empty key",
        ),
        (
            Method::PUT,
            json!([{"key": "bad key", "values": ["a"]}]),
            "space in key",
        ),
        (
            Method::PUT,
            json!([{"key": "k".repeat(65), "values": ["a"]}]),
            "key too long",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["v".repeat(256)]}]),
            "value too long",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["a\nb"]}]),
            "control character",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["  "]}]),
            "blank value",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": eleven}]),
            "11 values",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["a", "a"]}]),
            "duplicate value",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["a"]}, {"key": "env", "values": ["b"]}]),
            "duplicate key",
        ),
        (Method::PUT, Value::Array(fifty_one), "51 keys"),
        (
            Method::PUT,
            json!([{"key": "env", "values": ["a"], "extra": 1}]),
            "unknown field",
        ),
        (
            Method::PUT,
            json!([{"key": "env", "values": [1]}]),
            "a number as value",
        ),
        (
            Method::PATCH,
            json!({"action": "REPLACE", "labels": [{"key": "env", "values": ["a"]}]}),
            "unknown action",
        ),
        (
            Method::PATCH,
            json!({"action": "ADD", "labels": []}),
            "nothing to patch",
        ),
        (
            Method::PATCH,
            json!({"labels": [{"key": "env", "values": ["a"]}]}),
            "no action",
        ),
        (
            Method::PATCH,
            json!({"action": "ADD", "labels": [{"key": "env", "values": eleven}]}),
            "ADD past 10 values",
        ),
    ] {
        let (s, v) = send(&t, method.clone(), path, body).await;
        assert_eq!(s, 400, "{why}: {v}");
        assert!(
            v["ErrorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "{why}: {v}"
        );
        assert_eq!(
            labels_of(&t, "/v1/subaccountDestinations/keep").await,
            kept,
            "{why} changed the labels"
        );
    }
    // Ten values of which some are there: an ADD that ends with more than 10 is refused whole.
    let nine: Vec<String> = (0..9).map(|i| format!("n{i}")).collect();
    let (s, _) = send(
        &t,
        Method::PATCH,
        path,
        json!({"action": "ADD", "labels": [{"key": "env", "values": nine}]}),
    )
    .await;
    assert_eq!(s, 200, "prod + 9 = 10 values");
    let (s, v) = send(
        &t,
        Method::PATCH,
        path,
        json!({"action": "ADD", "labels": [{"key": "env", "values": ["one-more"]}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        labels_of(&t, "/v1/subaccountDestinations/keep").await[0]["values"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // Not JSON at all.
    let res = t
        .req(Method::PUT, path)
        .body("not json")
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(res).await;
    assert_eq!(s, 400, "{v}");
    // A missing entity, an unknown collection.
    for (method, p) in [
        (Method::GET, "/v1/subaccountDestinations/missing/labels"),
        (Method::PUT, "/v1/subaccountDestinations/missing/labels"),
        (Method::PATCH, "/v1/instanceCertificates/missing.pem/labels"),
        (Method::GET, "/v1/nowhere/x/labels"),
    ] {
        let body = if method == Method::PATCH {
            json!({"action": "ADD", "labels": [{"key": "env", "values": ["a"]}]})
        } else {
            json!([])
        };
        let (s, v) = send(&t, method, p, body).await;
        assert_eq!(s, 404, "{p}: {v}");
        assert!(v["ErrorMessage"].is_string(), "{v}");
    }
    // Without a token: 401.
    let res = reqwest::Client::new()
        .get(app.url("/destination-configuration/v1/subaccountDestinations/keep/labels"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The entity itself is untouched by all of this.
    let (s, v) = status_json(t.get("/v1/subaccountDestinations/keep").await).await;
    assert_eq!((s, v), (200, dest("keep")));
}
