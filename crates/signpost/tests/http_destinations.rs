//! The destination configuration API v1 (API.md §1) through the real router over HTTP, with the
//! bad inputs of the issue: each gets its JSON error and changes nothing stored.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, Tenant, TestApp, TestOptions};

fn dest(name: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": format!("https://{name}.example"), "Authentication": "NoAuthentication", "ProxyType": "Internet"})
}

async fn tenant(app: &TestApp) -> Tenant {
    app.tenant("sub-1", "inst-1", json!({})).await
}

/// Everything stored on both levels, to prove a bad request changed nothing.
async fn snapshot(t: &Tenant) -> Value {
    let mut all = serde_json::Map::new();
    for c in [
        "subaccountDestinations",
        "instanceDestinations",
        "subaccountDestinationFragments",
        "instanceDestinationFragments",
        "subaccountCertificates",
        "instanceCertificates",
    ] {
        let (status, body) = status_json(t.get(&format!("/v1/{c}")).await).await;
        assert_eq!(status, 200);
        all.insert(c.into(), body);
    }
    Value::Object(all)
}

#[tokio::test]
async fn crud_of_destinations_on_both_levels() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    for level in ["subaccount", "instance"] {
        let coll = format!("/v1/{level}Destinations");
        let res = t.post(&coll, dest("one")).await;
        assert_eq!(res.status(), 201);
        assert_eq!(res.text().await.unwrap(), "");
        let (status, body) = status_json(t.get(&format!("{coll}/one")).await).await;
        assert_eq!(status, 200);
        assert_eq!(body, dest("one"));
        let mut changed = dest("one");
        changed["URL"] = json!("https://changed.example");
        let (status, body) = status_json(t.put(&coll, changed.clone()).await).await;
        assert_eq!((status, body), (200, json!({"Count": 1})));
        let (_, body) = status_json(t.get(&format!("{coll}/one")).await).await;
        assert_eq!(body, changed, "PUT replaces the whole destination");
        let (status, body) = status_json(t.delete(&format!("{coll}/one")).await).await;
        assert_eq!((status, body), (200, json!({"Count": 1})));
        let (status, body) = status_json(t.get(&format!("{coll}/one")).await).await;
        assert_eq!(status, 404);
        assert!(body["ErrorMessage"].as_str().unwrap().contains("'one'"));
    }
}

#[tokio::test]
async fn arrays_answer_per_item() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    let (status, body) = status_json(
        t.post("/v1/subaccountDestinations", json!([dest("a"), dest("b")]))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert!(body
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == 201 && i["etag"].is_string()));
    let (status, body) = status_json(
        t.post(
            "/v1/subaccountDestinations",
            json!([dest("c"), dest("a"), {"Name": "d"}]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 207);
    assert_eq!(body[0]["status"], 201);
    assert_eq!(body[1]["status"], 409);
    assert!(body[1]["cause"]
        .as_str()
        .unwrap()
        .contains("'a' already exists"));
    assert_eq!(body[2]["status"], 400);
    // A name twice in one array: the first is created, the second is the conflict.
    let (status, body) = status_json(
        t.post(
            "/v1/subaccountDestinations",
            json!([dest("e"), dest("f"), dest("e")]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 207);
    let statuses: Vec<&Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["status"])
        .collect();
    assert_eq!(statuses, [201, 201, 409]);
    assert!(body[2]["cause"]
        .as_str()
        .unwrap()
        .contains("'e' already exists"));
    let (status, body) = status_json(
        t.put(
            "/v1/subaccountDestinations",
            json!([dest("a"), dest("zzz")]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 207);
    assert_eq!(body[0]["status"], 200);
    assert_eq!(body[1]["status"], 404);
    let (status, _) = status_json(
        t.put("/v1/subaccountDestinations", json!([dest("a"), dest("b")]))
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn list_modes_filters_and_paging() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    let names = ["alpha", "alpine", "beta", "gamma-x", "delta-x", "it-s"];
    let body: Vec<Value> = names.iter().map(|n| dest(n)).collect();
    assert_eq!(
        t.post("/v1/subaccountDestinations", json!(body))
            .await
            .status(),
        201
    );
    let names_of = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let list = |q: &str| {
        let t = t.clone();
        let q = q.to_owned();
        async move { status_json(t.get(&format!("/v1/subaccountDestinations{q}")).await).await }
    };
    let (s, v) = list("").await;
    assert_eq!(s, 200);
    assert_eq!(
        names_of(&v),
        ["alpha", "alpine", "beta", "delta-x", "gamma-x", "it-s"]
    );
    let (_, v) = list("?$filter=startswith(Name,'alp')").await;
    assert_eq!(names_of(&v), ["alpha", "alpine"]);
    let (_, v) = list("?$filter=endswith(Name, '-x')").await;
    assert_eq!(names_of(&v), ["delta-x", "gamma-x"]);
    let (_, v) = list("?$filter=Name%20in%20('beta','nope','it%252Ds')").await;
    assert_eq!(names_of(&v), ["beta", "it-s"]);
    let (_, v) = list("?$filter=modifiedwithin('5','minutes')").await;
    assert_eq!(v.as_array().unwrap().len(), 6);
    let (_, v) = list("?$select=Name").await;
    assert_eq!(v[0], json!({"Name": "alpha"}));
    let (_, v) = list("?$includeMetadata=modification_time;etag").await;
    assert!(v[0]["$metadata"]["etag"].is_string());
    assert!(v[0]["$metadata"]["modification_time"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // `$` sent percent-encoded.
    let (_, v) = list("?%24select=Name").await;
    assert_eq!(v[0], json!({"Name": "alpha"}));

    // Paging: headers and Link.
    let res = t
        .get("/v1/subaccountDestinations?$page=2&$pageSize=2&$pageCount=true&$entityCount=true")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["page-count"], "3");
    assert_eq!(res.headers()["entity-count"], "6");
    assert_eq!(
        res.headers()["link"],
        "</subaccountDestinations?$page=1&$pageSize=2>; rel='previous', </subaccountDestinations?$page=3&$pageSize=2>; rel='next'"
    );
    let (_, v) = status_json(res).await;
    assert_eq!(names_of(&v), ["beta", "delta-x"]);
    let res = t.get("/v1/subaccountDestinations?$page=1").await;
    assert!(res.headers().get("page-count").is_none());
    let (_, v) = status_json(res).await;
    assert_eq!(v.as_array().unwrap().len(), 6);
    let (s, _) = list("?$page=9&$pageSize=2").await;
    assert_eq!(s, 400);
    // Found by schemathesis: a page number whose offset overflowed panicked the handler.
    for q in [
        "?$page=9223372036854775808",
        "?$page=18446744073709551615&$pageSize=1000",
    ] {
        let (s, v) = list(q).await;
        assert_eq!(s, 400, "{q}: {v}");
    }

    // Bad list requests: invalid $filter, mixed modes, unknown options.
    for q in [
        "?$filter=Name eq 'a'",
        "?$filter=startswith(Name,'a'",
        "?$filter=Name in ('a')&$page=1",
        "?$select=Name&$page=1",
        "?$select=URL",
        "?$pageSize=5",
        "?$page=0",
        "?$page=1&$pageSize=5000",
        "?$orderby=Name",
        "?$filter=modifiedwithin('2000','minutes')",
    ] {
        let (s, v) = list(q).await;
        assert_eq!(s, 400, "{q}");
        assert!(v["ErrorMessage"].is_string(), "{q}");
    }
}

#[tokio::test]
async fn bulk_delete_reports_each_name() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    assert_eq!(
        t.post(
            "/v1/instanceDestinations",
            json!([dest("a"), dest("b"), dest("c")])
        )
        .await
        .status(),
        201
    );
    let (s, v) = status_json(
        t.delete("/v1/instanceDestinations?$filter=Name in ('a','zz','c')")
            .await,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"Count": 2, "Summary": [
            {"name": "a", "status": "DELETED"},
            {"name": "zz", "status": "NOT_FOUND", "reason": "Could not find configuration"},
            {"name": "c", "status": "DELETED"}
        ]})
    );
    let (s, _) = status_json(t.delete("/v1/instanceDestinations").await).await;
    assert_eq!(s, 400);
    let (s, _) = status_json(
        t.delete("/v1/instanceDestinations?$filter=startswith(Name,'b')")
            .await,
    )
    .await;
    assert_eq!(s, 400);
    let (_, v) = status_json(t.get("/v1/instanceDestinations?$select=Name").await).await;
    assert_eq!(v, json!([{"Name": "b"}]));
}

#[tokio::test]
async fn etags_and_conditional_requests() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    assert_eq!(
        t.post("/v1/subaccountDestinations", dest("e"))
            .await
            .status(),
        201
    );
    let res = t.get("/v1/subaccountDestinations/e").await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag.len(), 64);
    let res = t
        .req(Method::GET, "/v1/subaccountDestinations/e")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert_eq!(res.text().await.unwrap(), "");
    let res = t
        .req(Method::GET, "/v1/subaccountDestinations/e")
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = t
        .req(Method::GET, "/v1/subaccountDestinations/e")
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = t
        .req(Method::GET, "/v1/subaccountDestinations/e")
        .header("If-Match", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(res.headers()["etag"], etag.as_str());
    // A change gives a new ETag; the same content again gives the same.
    let mut changed = dest("e");
    changed["Description"] = json!("changed");
    assert_eq!(
        t.put("/v1/subaccountDestinations", changed).await.status(),
        200
    );
    let etag2 = t.get("/v1/subaccountDestinations/e").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(etag, etag2);
    assert_eq!(
        t.put("/v1/subaccountDestinations", dest("e"))
            .await
            .status(),
        200
    );
    let etag3 = t.get("/v1/subaccountDestinations/e").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(etag, etag3);
}

#[tokio::test]
async fn fragments_and_certificates() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    let frag = json!({"FragmentName": "f1", "URL": "https://frag.example", "User": "u"});
    let res = t
        .post("/v1/instanceDestinationFragments", frag.clone())
        .await;
    assert_eq!(res.status(), 201);
    let (s, v) = status_json(
        t.post("/v1/instanceDestinationFragments", frag.clone())
            .await,
    )
    .await;
    assert_eq!(s, 409);
    assert!(v["ErrorMessage"]
        .as_str()
        .unwrap()
        .contains("fragment 'f1'"));
    let (s, v) = status_json(t.get("/v1/instanceDestinationFragments/f1").await).await;
    assert_eq!((s, v), (200, frag.clone()));
    let (s, v) = status_json(t.get("/v1/instanceDestinationFragments").await).await;
    assert_eq!((s, v), (200, json!([frag])));
    let (s, _) = status_json(
        t.put(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "f1", "URL": "https://x"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = status_json(t.get("/v1/instanceDestinationFragments?$select=Name").await).await;
    assert_eq!(s, 400, "fragment lists take only $filter");
    assert_eq!(
        t.delete("/v1/instanceDestinationFragments/f1")
            .await
            .status(),
        200
    );

    let cert = json!({"Name": "my cert (1).pem", "Type": "PEM", "Content": signpost_test_utils::pki::cert_content("mine")});
    assert_eq!(
        t.post("/v1/subaccountCertificates", cert.clone())
            .await
            .status(),
        201
    );
    let (s, v) = status_json(
        t.get("/v1/subaccountCertificates/my%20cert%20(1).pem")
            .await,
    )
    .await;
    assert_eq!((s, v), (200, cert.clone()));
    let (s, v) = status_json(
        t.get("/v1/subaccountCertificates?$filter=Name in ('my%2520cert%2520(1).pem')")
            .await,
    )
    .await;
    assert_eq!((s, v), (200, json!([cert])));
    let (s, _) = status_json(
        t.get("/v1/subaccountCertificates?$filter=startswith(Name,'my')")
            .await,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = status_json(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "bad.pem", "Content": "not base64!"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn bad_inputs_get_json_errors_and_change_nothing() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    assert_eq!(
        t.post("/v1/subaccountDestinations", dest("keep"))
            .await
            .status(),
        201
    );
    assert_eq!(
        t.post(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "fk", "URL": "u"})
        )
        .await
        .status(),
        201
    );
    let kept = signpost_test_utils::pki::cert_content("kept");
    assert_eq!(
        t.post(
            "/v1/instanceCertificates",
            json!({"Name": "k.pem", "Content": kept})
        )
        .await
        .status(),
        201
    );
    let before = snapshot(&t).await;

    let raw = |method: Method, path: &str, body: &str| {
        t.req(method, path)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let long = "x".repeat(201);
    let cases: Vec<(Method, &str, String, u16, &str)> = vec![
        (
            Method::POST,
            "/v1/subaccountDestinations",
            "{\"Name\": ".into(),
            400,
            "not valid JSON",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            "".into(),
            400,
            "empty",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            "\"text\"".into(),
            400,
            "JSON object or an array",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            "42".into(),
            400,
            "JSON object or an array",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            "[]".into(),
            400,
            "empty array",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"n","Type":"HTTP","Port":8080}"#.into(),
            400,
            "Property 'Port' must be a string",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"n","Type":"HTTP","Flag":true}"#.into(),
            400,
            "Property 'Flag' must be a string",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Type":"HTTP"}"#.into(),
            400,
            "Name is required",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"n"}"#.into(),
            400,
            "Type is required",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"n","Type":"FTP"}"#.into(),
            400,
            "Type must be one of",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"bad name","Type":"HTTP"}"#.into(),
            400,
            "alphanumeric",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            format!(r#"{{"Name":"{long}","Type":"HTTP"}}"#),
            400,
            "longer than 200",
        ),
        (
            Method::POST,
            "/v1/subaccountDestinations",
            r#"{"Name":"keep","Type":"HTTP"}"#.into(),
            409,
            "already exists",
        ),
        (
            Method::PUT,
            "/v1/subaccountDestinations",
            r#"{"Name":"missing","Type":"HTTP"}"#.into(),
            404,
            "does not exist",
        ),
        (
            Method::PUT,
            "/v1/subaccountDestinations",
            r#"{"Name":"keep","Type":"HTTP","X":1}"#.into(),
            400,
            "must be a string",
        ),
        (
            Method::POST,
            "/v1/instanceDestinationFragments",
            r#"{"FragmentName":"f","Name":"x"}"#.into(),
            400,
            "Name is not allowed in a fragment",
        ),
        (
            Method::POST,
            "/v1/instanceDestinationFragments",
            r#"{"FragmentName":"f","Type":"HTTP"}"#.into(),
            400,
            "Type is not allowed in a fragment",
        ),
        (
            Method::POST,
            "/v1/instanceDestinationFragments",
            r#"{"URL":"u"}"#.into(),
            400,
            "FragmentName is required",
        ),
        (
            Method::POST,
            "/v1/instanceCertificates",
            r#"{"Name":"c.pem","Content":"!!notbase64!!"}"#.into(),
            400,
            "not valid base64",
        ),
        (
            Method::POST,
            "/v1/instanceCertificates",
            r#"{"Name":"c.pem"}"#.into(),
            400,
            "Content' is required",
        ),
        (
            Method::POST,
            "/v1/instanceCertificates",
            r#"{"Name":"c.pem","Content":"aGVsbG8gd29ybGQ="}"#.into(),
            400,
            "not a certificate",
        ),
        (
            Method::POST,
            "/v1/instanceCertificates",
            r#"{"Name":"a/b.pem","Content":"aGk="}"#.into(),
            400,
            "must not contain",
        ),
        (
            Method::POST,
            "/v1/instanceCertificates",
            format!(r#"{{"Name":"k.pem","Content":"{kept}"}}"#),
            409,
            "already exists",
        ),
        (
            Method::GET,
            "/v1/subaccountDestinations/unknown",
            "".into(),
            404,
            "does not exist",
        ),
        (
            Method::DELETE,
            "/v1/subaccountDestinations/unknown",
            "".into(),
            404,
            "does not exist",
        ),
        (
            Method::GET,
            "/v1/otherThings",
            "".into(),
            404,
            "No such endpoint",
        ),
        (
            Method::PATCH,
            "/v1/subaccountDestinations",
            "{}".into(),
            405,
            "not allowed",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let (s, v) = status_json(raw(method.clone(), path, &body).await.unwrap()).await;
        assert_eq!(s, status, "{method} {path} {body}");
        let msg = v["ErrorMessage"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no ErrorMessage in {v}"));
        assert!(
            msg.contains(text),
            "{method} {path}: '{msg}' should contain '{text}'"
        );
    }
    // A body over 4 MiB is a JSON 413.
    let big = format!(
        r#"{{"Name":"big","Type":"HTTP","Description":"{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let (s, v) = status_json(
        raw(Method::POST, "/v1/subaccountDestinations", &big)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
    assert!(v["ErrorMessage"].as_str().unwrap().contains("larger than"));
    // A URI over 4,000 characters is a JSON 414.
    let (s, v) = status_json(
        t.get(&format!("/v1/subaccountDestinations/{}", "y".repeat(4100)))
            .await,
    )
    .await;
    assert_eq!(s, 414);
    assert!(v["ErrorMessage"].is_string());

    assert_eq!(
        snapshot(&t).await,
        before,
        "a bad request changed what is stored"
    );
}

#[tokio::test]
async fn entity_limit_per_level_and_owner() {
    let app = TestApp::start_with(TestOptions {
        max_entities: 3,
        ..Default::default()
    })
    .await;
    let t = tenant(&app).await;
    let (s, _) = status_json(
        t.post(
            "/v1/instanceDestinations",
            json!([dest("a"), dest("b"), dest("c")]),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = status_json(t.post("/v1/instanceDestinations", dest("d")).await).await;
    assert_eq!(s, 409);
    assert!(v["ErrorMessage"].as_str().unwrap().contains("limit of 3"));
    // Other kinds and the other level have their own budget.
    assert_eq!(
        t.post("/v1/subaccountDestinations", dest("d"))
            .await
            .status(),
        201
    );
    assert_eq!(
        t.post(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "f"})
        )
        .await
        .status(),
        201
    );
    let (_, v) = status_json(t.get("/v1/instanceDestinations?$select=Name").await).await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    // An array that passes the limit: the items that fit are created, the rest refused.
    let (s, v) = status_json(
        t.post(
            "/v1/subaccountDestinations",
            json!([dest("e"), dest("f"), dest("g")]),
        )
        .await,
    )
    .await;
    assert_eq!(s, 207);
    let statuses: Vec<&Value> = v.as_array().unwrap().iter().map(|i| &i["status"]).collect();
    assert_eq!(statuses, [201, 201, 409]);
    assert!(v[2]["cause"].as_str().unwrap().contains("limit of 3"));
    let (_, v) = status_json(t.get("/v1/subaccountDestinations?$select=Name").await).await;
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d", "e", "f"]);
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    let url = app.url("/destination-configuration/v1/subaccountDestinations");
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer not-a-jwt"),
        Some("Basic dTpw"),
        Some("Bearer eyJhbGciOiJub25lIn0.eyJ6aWQiOiJzdWItMSJ9."),
    ] {
        let mut req = app.client.get(&url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let (s, v) = status_json(req.send().await.unwrap()).await;
        assert_eq!(s, 401, "{auth:?}");
        assert!(v["ErrorMessage"].is_string());
    }
    // A token with a flipped signature byte.
    let mut forged = t.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let res = app
        .client
        .get(&url)
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// PUT and DELETE with `If-Match`: an editor that read an entity changes or deletes it only while
/// nobody else changed it meanwhile; otherwise a 412 with the current ETag, and nothing changes.
#[tokio::test]
async fn if_match_guards_put_and_delete() {
    let app = TestApp::start().await;
    let t = tenant(&app).await;
    assert_eq!(
        t.post("/v1/instanceDestinations", dest("m")).await.status(),
        201
    );
    let etag_of = |res: &reqwest::Response| res.headers()["etag"].to_str().unwrap().to_owned();
    let read = etag_of(&t.get("/v1/instanceDestinations/m").await);
    let put = |tag: &str, description: &str| {
        let mut body = dest("m");
        body["Description"] = json!(description);
        t.req(Method::PUT, "/v1/instanceDestinations")
            .header("If-Match", tag)
            .json(&body)
            .send()
    };
    // Another client changes it: the editor's write with the old ETag is refused.
    let res = put(&read, "first editor").await.unwrap();
    assert_eq!(res.status(), 200);
    let current = etag_of(&t.get("/v1/instanceDestinations/m").await);
    assert_ne!(current, read);
    let res = put(&read, "second editor").await.unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(res.headers()["etag"], current.as_str());
    let (_, body) = status_json(res).await;
    assert!(
        body["ErrorMessage"].as_str().unwrap().contains("If-Match"),
        "{body}"
    );
    let (_, v) = status_json(t.get("/v1/instanceDestinations/m").await).await;
    assert_eq!(v["Description"], "first editor", "nothing changed");
    // Quoted, in a list, and `*` match.
    let res = put(&format!("\"nope\", \"{current}\""), "quoted")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(put("*", "any").await.unwrap().status(), 200);
    // An array body with If-Match is a 400; a missing entity a 404.
    let res = t
        .req(Method::PUT, "/v1/instanceDestinations")
        .header("If-Match", "*x")
        .json(&json!([dest("m")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = t
        .req(Method::DELETE, "/v1/instanceDestinations/ghost")
        .header("If-Match", &current)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // DELETE: a stale ETag keeps the entity; the current one deletes it.
    let res = t
        .req(Method::DELETE, "/v1/instanceDestinations/m")
        .header("If-Match", &read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(t.get("/v1/instanceDestinations/m").await.status(), 200);
    let now = etag_of(&t.get("/v1/instanceDestinations/m").await);
    let res = t
        .req(Method::DELETE, "/v1/instanceDestinations/m")
        .header("If-Match", &now)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(t.get("/v1/instanceDestinations/m").await.status(), 404);
}
