//! `signpost-operator` end to end against a real Kubernetes API server (1.20 with etcd, from
//! `../shared/tools`), the real Signpost server as the Destination service (real router, real
//! SQLite) and, at the end, the real proxy on the routes and credentials the operator wrote:
//! the whole chain from a `Destination` resource to injected credentials.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use signpost_operator::crd::Destination;
use signpost_test_utils::kube::ApiServer;
use signpost_test_utils::{free_port, TestApp};

const OPS: &str = "signpost";

struct Operator {
    child: Child,
    log: std::path::PathBuf,
    metrics: u16,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the operator binary against `kube_api` with `values` in `dir`, plus `env`.
fn spawn_operator(
    kube_api: &ApiServer,
    dir: &std::path::Path,
    tag: &str,
    env: &[(&str, &str)],
) -> Operator {
    let metrics = free_port();
    let log = dir.join(format!("operator-{tag}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_signpost-operator"))
        .arg("--config")
        .arg(dir.join("values.yaml"))
        .args(["--namespace", OPS])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .env("KUBECONFIG", &kube_api.kubeconfig)
        .env("POD_NAME", format!("operator-{tag}"))
        .env("SIGNPOST_OPERATOR_RELOAD_INTERVAL_MS", "300")
        .env("SIGNPOST_LOG", "info,signpost_operator=debug")
        .envs(env.iter().copied())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    Operator {
        child,
        log,
        metrics,
    }
}

/// A client of the test's API server.
async fn client_of(kube_api: &ApiServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&kube_api.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Makes the namespaces, then applies what the Helm chart renders of the CRD and the
/// operator's RBAC (the chart's own objects, as `helm install` would), and waits for the CRD.
async fn prepare(kube_api: &ApiServer, client: &kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [OPS, "team", "other"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }
    let chart = signpost_test_utils::kube::workspace_root().join("deploy/helm/signpost");
    let rendered = kube_api
        .tools
        .helm(&[
            "template",
            "sp",
            chart.to_str().unwrap(),
            "--namespace",
            OPS,
        ])
        .expect_ok("helm template");
    let wanted = [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let docs: Vec<String> = rendered
        .stdout
        .split("\n---")
        .filter(|doc| {
            let v: Value = serde_norway::from_str(doc).unwrap_or(Value::Null);
            v["kind"].as_str().is_some_and(|k| wanted.contains(&k))
        })
        .map(str::to_owned)
        .collect();
    assert!(
        docs.len() >= 5,
        "CRD and RBAC in the chart: {}",
        rendered.stdout
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), docs.join("\n---\n")).unwrap();
    kube_api
        .kubectl(&["apply", "-n", OPS, "-f", file.path().to_str().unwrap()])
        .expect_ok("kubectl apply of the chart's CRD and RBAC");
    let dst: Api<Destination> = Api::namespaced(client.clone(), "team");
    wait_for(
        "the CRD",
        Duration::from_secs(30),
        async || dst.list(&Default::default()).await.ok(),
        String::new,
    )
    .await;
}

/// An upstream on 127.0.0.2 (loopback, but not one of the literal hosts SAP's check refuses)
/// that answers with the request's `Authorization` header and path.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = json!({
                            "path": req.uri().path(),
                            "authorization": req.headers().get("authorization").and_then(|v| v.to_str().ok()),
                            "x-frag": req.headers().get("x-frag").and_then(|v| v.to_str().ok()),
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(hyper::body::Bytes::from(body.to_string())),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
    log: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; operator log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reason(api: &Api<Destination>, name: &str) -> Option<String> {
    let d = api.get_opt(name).await.unwrap()?;
    d.available().map(|c| c.reason.clone())
}

fn destination(name: &str, spec: Value) -> Destination {
    serde_json::from_value(json!({
        "apiVersion": "destination.connectivity.api.sap/v1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, k8s_openapi::ByteString> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                k8s_openapi::ByteString(v.as_bytes().to_vec()),
            )
        })
        .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_become_services_routes_and_credentials_on_a_real_api_server() {
    let kube_api = ApiServer::start();
    let client = client_of(&kube_api).await;

    // The chart's CRD and RBAC, then the namespaces.
    prepare(&kube_api, &client).await;
    let dst_team: Api<Destination> = Api::namespaced(client.clone(), "team");
    // The CRD is served once established.
    wait_for(
        "the CRD",
        Duration::from_secs(30),
        async || dst_team.list(&Default::default()).await.ok(),
        String::new,
    )
    .await;

    // The Destination service: Signpost with destinations on instance level.
    let up = upstream().await;
    let app = TestApp::start().await;
    let url = format!("http://127.0.0.2:{up}/api");
    let t = app
        .tenant(
            "sub-k8s",
            "inst-k8s",
            json!({"init_data": {"instance": {"destinations": [
                {"Name": "orders", "Type": "HTTP", "URL": url, "ProxyType": "Internet",
                 "Authentication": "BasicAuthentication", "User": "alice", "Password": "wonderland-secret"},
                {"Name": "loop", "Type": "HTTP", "URL": "http://localhost:9/x", "ProxyType": "Internet", "Authentication": "NoAuthentication"},
                {"Name": "rfc", "Type": "RFC", "URL": "https://example.org", "ProxyType": "Internet", "Authentication": "NoAuthentication"},
                {"Name": "db", "Type": "TCP", "Address": "tcp://db.example:5432", "ProxyType": "Internet"},
            ]}}}),
        )
        .await;
    let res = t
        .post(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "frag", "URL.headers.x-frag": "yes"}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    // Service keys: single-key in the operator's namespace, multi-key (the SAP BTP service
    // operator's form) in another, named with secretNamespace.
    let key = t.key.clone();
    let secrets_ops: Api<Secret> = Api::namespaced(client.clone(), OPS);
    secrets_ops
        .create(
            &PostParams::default(),
            &secret("dest-key", &[("key", &key.to_string())]),
        )
        .await
        .unwrap();
    let second = app.bind("inst-k8s", "second-key").await;
    let multi: Vec<(String, String)> = second
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let multi_refs: Vec<(&str, &str)> = multi
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Api::<Secret>::namespaced(client.clone(), "other")
        .create(&PostParams::default(), &secret("multi", &multi_refs))
        .await
        .unwrap();

    // Extra CAs for the Destination service's TLS, from a Secret: the operator hands their PEM
    // to the proxy beside the service keys.
    let ca = signpost_test_utils::pki::self_signed("extra-ca.example", 30);
    secrets_ops
        .create(
            &PostParams::default(),
            &secret("cas", &[("ca.pem", &ca.cert)]),
        )
        .await
        .unwrap();

    // A Service that is not the operator's, in the way of a resource.
    let svc_team: Api<Service> = Api::namespaced(client.clone(), "team");
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "taken", "labels": {"owner": "someone-else"}},
        "spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}
    }))
    .unwrap();
    svc_team
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    // The values: SAP's tree, two instances.
    let dir = tempfile::tempdir().unwrap();
    let values_path = dir.path().join("values.yaml");
    std::fs::write(
        &values_path,
        "config:\n  manager: {executionIntervalMinutes: 1}\n  integration:\n    destinationService:\n      defaultInstanceName: main\n      instances:\n        - name: main\n          serviceCredentials: {secretName: dest-key, secretKey: key}\n        - name: second\n          serviceCredentials: {secretName: multi, secretNamespace: other}\nadditionalCAs: {secretName: cas, secretKey: ca.pem}\n",
    )
    .unwrap();

    let op = spawn_operator(
        &kube_api,
        dir.path(),
        "one",
        &[(
            "SIGNPOST_OPERATOR_PROXY_SELECTOR",
            "app.kubernetes.io/instance=sp,app.kubernetes.io/component=proxy",
        )],
    );
    let op_log = || op.log();

    // The resources of SAP's examples, and the failing kinds.
    let params = PostParams::default();
    let tcp_port = free_port();
    for (name, spec) in [
        ("orders", json!({"destinationRef": {"name": "orders"}})),
        ("gateway", json!({"destinationRef": {"name": "*"}})),
        (
            "with-frag",
            json!({"destinationRef": {"name": "orders"}, "fragmentRef": {"name": "frag"}, "service": {"port": 8080}}),
        ),
        (
            "no-frag",
            json!({"destinationRef": {"name": "orders"}, "fragmentRef": {"name": "nope"}}),
        ),
        (
            "optional-frag",
            json!({"destinationRef": {"name": "orders"}, "fragmentRef": {"name": "nope", "optional": true}}),
        ),
        (
            "missing",
            json!({"destinationRef": {"name": "does-not-exist"}}),
        ),
        ("loop", json!({"destinationRef": {"name": "loop"}})),
        ("rfc", json!({"destinationRef": {"name": "rfc"}})),
        ("taken", json!({"destinationRef": {"name": "orders"}})),
        (
            "dyn-frag",
            json!({"destinationRef": {"name": "*"}, "fragmentRef": {"name": "frag"}}),
        ),
        (
            "bad-instance",
            json!({"destinationRef": {"name": "orders"}, "destinationServiceInstanceName": "nope"}),
        ),
        // A TCP destination: its Service forwards the port to the proxy's listener of that port.
        (
            "db",
            json!({"destinationRef": {"name": "db"}, "service": {"port": tcp_port}}),
        ),
    ] {
        dst_team
            .create(&params, &destination(name, spec))
            .await
            .unwrap();
    }
    let dst_other: Api<Destination> = Api::namespaced(client.clone(), "other");
    dst_other
        .create(&params, &destination("billing", json!({"destinationRef": {"name": "orders", "level": "instance"}, "destinationServiceInstanceName": "second"})))
        .await
        .unwrap();

    let expect = [
        ("orders", "ConfigurationSuccessful"),
        ("db", "ConfigurationSuccessful"),
        ("gateway", "ConfigurationSuccessful"),
        ("with-frag", "ConfigurationSuccessful"),
        ("optional-frag", "ConfigurationSuccessful"),
        ("no-frag", "ConfigurationError-ReferencedFragment-NotFound"),
        (
            "missing",
            "ConfigurationError-ReferencedDestination-NotFound",
        ),
        (
            "loop",
            "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported",
        ),
        (
            "rfc",
            "ConfigurationError-ReferencedDestination-TypeNotSupported",
        ),
        (
            "taken",
            "ConfigurationError-K8sResourceWithNameAlreadyPresent",
        ),
        (
            "dyn-frag",
            "ConfigurationError-FragmentSpecification-NotSupported",
        ),
        (
            "bad-instance",
            "ConfigurationError-DestinationServiceInstance-Invalid",
        ),
    ];
    for (name, want) in expect {
        let got = wait_for(
            &format!("team/{name} to be {want}"),
            Duration::from_secs(60),
            async || reason(&dst_team, name).await.filter(|r| r == want),
            &op_log,
        )
        .await;
        assert_eq!(got, want);
    }
    wait_for(
        "other/billing",
        Duration::from_secs(60),
        async || {
            reason(&dst_other, "billing")
                .await
                .filter(|r| r == "ConfigurationSuccessful")
        },
        &op_log,
    )
    .await;

    // SAP's status shape and message.
    let orders = dst_team.get("orders").await.unwrap();
    let cond = orders.available().unwrap();
    assert_eq!(cond.status, "True");
    assert_eq!(
        cond.message,
        "Technical connectivity is configured. Kubernetes service with name orders is created."
    );
    assert!(
        cond.last_update_time.ends_with('Z'),
        "{}",
        cond.last_update_time
    );
    assert!(orders
        .metadata
        .finalizers
        .unwrap()
        .iter()
        .any(|f| f == signpost_operator::controller::FINALIZER));
    assert_eq!(
        dst_team
            .get("missing")
            .await
            .unwrap()
            .available()
            .unwrap()
            .status,
        "False"
    );

    // The foreign Service is untouched.
    let still = svc_team.get("taken").await.unwrap();
    assert_eq!(still.metadata.labels.unwrap()["owner"], "someone-else");
    assert!(!still
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("signpost.dev/destination"));

    // Services: selector-based in the operator's namespace, ExternalName in the resource's.
    let svc_ops: Api<Service> = Api::namespaced(client.clone(), OPS);
    let proxy_side = svc_ops.get("orders").await.unwrap();
    let spec = proxy_side.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap()["app.kubernetes.io/component"],
        "proxy"
    );
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
    let local = svc_team.get("orders").await.unwrap().spec.unwrap();
    assert_eq!(local.type_.as_deref(), Some("ExternalName"));
    assert_eq!(
        local.external_name.as_deref(),
        Some("orders.signpost.svc.cluster.local")
    );
    assert_eq!(
        svc_ops
            .get("with-frag")
            .await
            .unwrap()
            .spec
            .unwrap()
            .ports
            .unwrap()[0]
            .port,
        8080
    );
    let tcp = svc_ops
        .get("db")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap()[0]
        .clone();
    assert_eq!(tcp.name.as_deref(), Some("tcp"));
    assert_eq!(i32::from(tcp_port), tcp.port);
    assert_eq!(
        tcp.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(tcp_port)))
    );
    assert!(
        svc_ops.get_opt("missing").await.unwrap().is_none(),
        "no Service for a failing resource"
    );
    assert!(svc_team.get_opt("missing").await.unwrap().is_none());

    // A second resource of a taken name, in another namespace: the duplicate.
    dst_other
        .create(
            &params,
            &destination("orders", json!({"destinationRef": {"name": "orders"}})),
        )
        .await
        .unwrap();
    wait_for(
        "other/orders duplicate",
        Duration::from_secs(60),
        async || {
            reason(&dst_other, "orders")
                .await
                .filter(|r| r == "ConfigurationError-DuplicateDestinationCustomResource")
        },
        &op_log,
    )
    .await;

    // The routes ConfigMap lists exactly the resources that passed; the credentials Secret holds
    // one service key per instance.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), OPS);
    let routes_of = async || -> Vec<String> {
        let cm = cms.get_opt("signpost-proxy-routes").await.unwrap();
        let text = cm
            .and_then(|c| c.data)
            .and_then(|d| d.get("destinations.yaml").cloned())
            .unwrap_or_default();
        let v: Value = serde_norway::from_str(&text).unwrap_or(Value::Null);
        let mut names: Vec<String> = v["destinations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        format!(
                            "{}/{}",
                            r["namespace"].as_str().unwrap(),
                            r["name"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let want_routes = vec![
        "other/billing",
        "team/db",
        "team/gateway",
        "team/optional-frag",
        "team/orders",
        "team/with-frag",
    ];
    wait_for(
        "the routes",
        Duration::from_secs(30),
        async || (routes_of().await == want_routes).then_some(()),
        &op_log,
    )
    .await;
    let creds = secrets_ops.get("signpost-proxy-credentials").await.unwrap();
    let data = creds.data.unwrap();
    let main: Value = serde_json::from_slice(&data["main.json"].0).unwrap();
    assert_eq!(main["clientid"], key["clientid"]);
    let second_file: Value = serde_json::from_slice(&data["second.json"].0).unwrap();
    assert_eq!(
        second_file["clientid"], second["clientid"],
        "the multi-key secret, rebuilt"
    );
    assert_eq!(
        String::from_utf8(data["additionalCAs.pem"].0.clone()).unwrap(),
        ca.cert,
        "the additional CAs"
    );

    // The proxy on what the operator wrote, as the kubelet would mount it.
    let routes_text = cms
        .get("signpost-proxy-routes")
        .await
        .unwrap()
        .data
        .unwrap()["destinations.yaml"]
        .clone();
    let proxy_dir = tempfile::tempdir().unwrap();
    let routes_file = proxy_dir.path().join("destinations.yaml");
    std::fs::write(&routes_file, &routes_text).unwrap();
    let creds_dir = proxy_dir.path().join("credentials");
    std::fs::create_dir(&creds_dir).unwrap();
    for (k, v) in &data {
        std::fs::write(creds_dir.join(k), &v.0).unwrap();
    }
    let proxy_port = free_port();
    let admin_port = free_port();
    let options = signpost_proxy::Options {
        config: values_path.clone(),
        routes: Some(routes_file),
        listen: format!("127.0.0.1:{proxy_port}").parse().unwrap(),
        admin_listen: format!("127.0.0.1:{admin_port}").parse().unwrap(),
        credentials: signpost_proxy::config::CredentialSource::CredentialsDir(creds_dir),
        namespace: OPS.into(),
        allow_private_networks: true,
        reload_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(1),
        workers: 1,
        wait_for_config: false,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(signpost_proxy::run(options, async move {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let answer: Value = wait_for(
        "the proxy",
        Duration::from_secs(30),
        async || {
            let res = http
                .get(format!("http://127.0.0.1:{proxy_port}/orders/1"))
                .header("Host", "with-frag.team:8080")
                .send()
                .await
                .ok()?;
            if res.status() != 200 {
                return None;
            }
            res.json().await.ok()
        },
        &op_log,
    )
    .await;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:wonderland-secret");
    assert_eq!(answer["authorization"], format!("Basic {basic}"));
    assert_eq!(answer["path"], "/api/orders/1");
    assert_eq!(answer["x-frag"], "yes", "the fragment's header");
    let res = http
        .get(format!("http://127.0.0.1:{proxy_port}/x"))
        .header("Host", "billing.other")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the second instance's route");
    let _ = stop_tx.send(());
    let _ = proxy.await;

    // Changes are followed: the missing destination appears, the resource is fixed at once.
    let patch = json!({"spec": {"destinationRef": {"name": "orders"}}});
    dst_team
        .patch("missing", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(
        "team/missing fixed",
        Duration::from_secs(60),
        async || {
            reason(&dst_team, "missing")
                .await
                .filter(|r| r == "ConfigurationSuccessful")
        },
        &op_log,
    )
    .await;
    assert!(svc_ops.get_opt("missing").await.unwrap().is_some());

    // A referenced Secret changes: the credentials follow at once.
    let rotated = app.bind("inst-k8s", "rotated-key").await;
    secrets_ops
        .replace("dest-key", &PostParams::default(), &{
            let mut s = secrets_ops.get("dest-key").await.unwrap();
            s.data = secret("x", &[("key", &rotated.to_string())]).data;
            s
        })
        .await
        .unwrap();
    wait_for(
        "rotated credentials",
        Duration::from_secs(30),
        async || {
            let s = secrets_ops.get("signpost-proxy-credentials").await.ok()?;
            let v: Value = serde_json::from_slice(&s.data?.get("main.json")?.0).ok()?;
            (v["clientid"] == rotated["clientid"]).then_some(())
        },
        &op_log,
    )
    .await;

    // Delete: the finalizer removes the Services and the route, then the resource goes.
    dst_team
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "team/orders gone",
        Duration::from_secs(60),
        async || {
            dst_team
                .get_opt("orders")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
        &op_log,
    )
    .await;
    assert!(svc_ops.get_opt("orders").await.unwrap().is_none());
    assert!(svc_team.get_opt("orders").await.unwrap().is_none());
    wait_for(
        "the route gone",
        Duration::from_secs(30),
        async || (!routes_of().await.contains(&"team/orders".to_owned())).then_some(()),
        &op_log,
    )
    .await;

    // Metrics by reason, and SAP's gauge.
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", op.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("signpost_operator_destinations{reason=\"ConfigurationError-FragmentSpecification-NotSupported\"} 1"), "{text}");
    assert!(
        text.contains("tp_destination_crs{Available=\"True\"}"),
        "{text}"
    );
    assert!(text.contains("signpost_operator_leader 1"), "{text}");

    // Events were recorded for the resources.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "team");
    let list = events.list(&Default::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ConfigurationError-ReferencedFragment-NotFound")),
        "{:?}",
        list.items
            .iter()
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    );

    // No secret in the operator's log.
    let log = op.log();
    assert!(!log.contains("wonderland-secret"), "{log}");
    assert!(
        !log.contains(key["clientsecret"].as_str().unwrap()),
        "{log}"
    );
}

/// With `--bootstrap-url`, an instance without `serviceCredentials` gets a service key bound on
/// the in-cluster server; of two replicas only the Lease holder writes, and the other takes over
/// when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_key_and_leader_election_on_a_real_api_server() {
    let kube_api = ApiServer::start();
    let client = client_of(&kube_api).await;
    prepare(&kube_api, &client).await;

    let up = upstream().await;
    let app = TestApp::start().await;
    let res = app
        .provision(
            "default",
            "default",
            json!({"init_data": {"instance": {"destinations": [
                {"Name": "hello", "Type": "HTTP", "URL": format!("http://127.0.0.2:{up}"), "ProxyType": "Internet", "Authentication": "NoAuthentication"}
            ]}}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("values.yaml"),
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: default\n",
    )
    .unwrap();
    let base = app.url("");
    let base = base.trim_end_matches('/');
    let env = [
        ("SIGNPOST_OPERATOR_BOOTSTRAP_URL", base),
        ("SIGNPOST_BROKER_USER", signpost_test_utils::BROKER_USER),
        (
            "SIGNPOST_BROKER_PASSWORD",
            signpost_test_utils::BROKER_PASSWORD,
        ),
        ("SIGNPOST_OPERATOR_LEASE_SECONDS", "6"),
    ];
    let first = spawn_operator(&kube_api, dir.path(), "a", &env);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), OPS);
    let holder = wait_for(
        "a Lease holder",
        Duration::from_secs(30),
        async || {
            leases
                .get_opt("signpost-operator")
                .await
                .ok()??
                .spec?
                .holder_identity
        },
        || first.log(),
    )
    .await;
    assert_eq!(holder, "operator-a");
    let second = spawn_operator(&kube_api, dir.path(), "b", &env);
    let logs = || format!("{}\n---\n{}", first.log(), second.log());

    // The bootstrap key, in the credentials Secret.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPS);
    let key: Value = wait_for(
        "the bootstrap key",
        Duration::from_secs(30),
        async || {
            let s = secrets.get_opt("signpost-proxy-credentials").await.ok()??;
            serde_json::from_slice(&s.data?.get("default.json")?.0).ok()
        },
        logs,
    )
    .await;
    assert!(
        key["clientid"]
            .as_str()
            .unwrap()
            .starts_with("sb-signpost-operator-default"),
        "{key}"
    );
    assert!(!first.log().contains(key["clientsecret"].as_str().unwrap()));

    // A resource on the bootstrapped instance passes; only the leader reconciled it.
    let dst: Api<Destination> = Api::namespaced(client.clone(), "team");
    dst.create(
        &PostParams::default(),
        &destination("hello", json!({"destinationRef": {"name": "hello"}})),
    )
    .await
    .unwrap();
    wait_for(
        "team/hello",
        Duration::from_secs(60),
        async || {
            reason(&dst, "hello")
                .await
                .filter(|r| r == "ConfigurationSuccessful")
        },
        logs,
    )
    .await;
    let metrics = |port: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    assert!(metrics(first.metrics)
        .await
        .unwrap()
        .contains("signpost_operator_leader 1"));
    let follower = metrics(second.metrics).await.unwrap();
    assert!(
        follower.contains("signpost_operator_leader 0"),
        "{follower}"
    );
    assert!(
        !second.log().contains("team/hello"),
        "the follower wrote: {}",
        second.log()
    );

    // The leader stops; the follower takes the Lease and reconciles.
    drop(first);
    let holder = wait_for(
        "the follower to lead",
        Duration::from_secs(30),
        async || {
            leases
                .get_opt("signpost-operator")
                .await
                .ok()??
                .spec?
                .holder_identity
                .filter(|h| h == "operator-b")
        },
        || second.log(),
    )
    .await;
    assert_eq!(holder, "operator-b");
    // The new leader took over the routes as they were, before checking anything again.
    wait_for(
        "the routes taken over",
        Duration::from_secs(10),
        async || {
            second
                .log()
                .contains("routes of the ConfigMap taken over routes=1")
                .then_some(())
        },
        || second.log(),
    )
    .await;
    dst.create(
        &PostParams::default(),
        &destination("later", json!({"destinationRef": {"name": "nope"}})),
    )
    .await
    .unwrap();
    wait_for(
        "team/later",
        Duration::from_secs(60),
        async || {
            reason(&dst, "later")
                .await
                .filter(|r| r == "ConfigurationError-ReferencedDestination-NotFound")
        },
        || second.log(),
    )
    .await;
}
