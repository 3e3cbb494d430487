//! The Helm chart `deploy/helm/signpost`: linted and rendered with the real `helm` for each values
//! file under `ci/`, the rendered manifests checked object by object, and accepted by a real
//! Kubernetes 1.20 API server (server-side dry run, then a real install and upgrade).
//!
//! Needs helm, kubectl and the API server's binaries (see signpost_test_utils::kube); `e2e/test`
//! installs them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};
use signpost_test_utils::kube::{workspace_root, ApiServer, KubeTools, Run};

const RELEASE: &str = "signpost";
const NAMESPACE: &str = "signpost";
const CI: [&str; 5] = [
    "defaults-values.yaml",
    "postgres-values.yaml",
    "sap-external-values.yaml",
    "sap-full-tree-values.yaml",
    "two-instances-values.yaml",
];
/// The registry of ci/sap-full-tree-values.yaml (deployment.image.registry).
const USER_REGISTRY: &str = "registry.example.internal/";

fn chart() -> PathBuf {
    workspace_root().join("deploy/helm/signpost")
}

fn ci(file: &str) -> String {
    chart().join("ci").join(file).display().to_string()
}

/// `helm template signpost <chart> -n signpost` with these values files and `--set`s.
fn template(tools: &KubeTools, files: &[&str], sets: &[&str]) -> Run {
    let chart = chart().display().to_string();
    let mut args = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
    let files: Vec<String> = files.iter().map(|f| ci(f)).collect();
    for f in &files {
        args.extend(["--values", f]);
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    tools.helm(&args)
}

/// The rendered objects.
#[derive(Debug)]
struct Manifests(Vec<Value>);

fn render(files: &[&str], sets: &[&str]) -> Manifests {
    let out = template(&KubeTools::find(), files, sets).expect_ok("helm template");
    Manifests(parse_yaml_docs(&out.stdout))
}

fn parse_yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

impl Manifests {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    #[track_caller]
    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name).unwrap_or_else(|| {
            let names: Vec<String> = self
                .0
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind} {name} among {names:?}")
        })
    }

    /// The values tree the proxy and the operator read.
    fn values_tree(&self) -> Value {
        let cm = self.get("ConfigMap", "signpost-values");
        let text = cm["data"]["values.yaml"].as_str().expect("values.yaml");
        serde_norway::from_str(text).expect("values.yaml is YAML")
    }

    fn pod_spec(&self, deployment: &str) -> &Value {
        &self.get("Deployment", deployment)["spec"]["template"]["spec"]
    }

    fn container(&self, deployment: &str) -> &Value {
        &self.pod_spec(deployment)["containers"][0]
    }
}

/// A container's environment as (name, value or valueFrom).
fn env(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .map(|vars| {
            vars.iter()
                .map(|v| {
                    let value = v.get("value").or(v.get("valueFrom")).cloned();
                    (v["name"].as_str().unwrap().to_owned(), value.unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(container: &Value, name: &str) -> Option<Value> {
    env(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The mount of `path` in a container and its volume in the pod.
fn mount<'a>(pod: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let m = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("no mount at {path}"));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == m["name"])
        .unwrap_or_else(|| panic!("no volume {}", m["name"]));
    (m, volume)
}

fn secret_key_ref(name: &str, key: &str) -> Value {
    json!({ "secretKeyRef": { "name": name, "key": key } })
}

#[test]
fn lint_accepts_the_defaults_and_every_ci_values_file() {
    let tools = KubeTools::find();
    let chart = chart().display().to_string();
    tools
        .helm(&["lint", "--strict", &chart])
        .expect_ok("helm lint");
    for file in CI {
        let path = ci(file);
        let out = tools.helm(&["lint", "--strict", &chart, "--values", &path]);
        assert!(
            out.success(),
            "helm lint with {file}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn defaults_run_the_server_on_sqlite_and_bind_the_proxy_to_it() {
    let m = render(&["defaults-values.yaml"], &[]);

    // The server: one replica on its volume, Recreate, secrets from the chart's Secrets.
    let server = m.get("Deployment", "signpost-server");
    assert_eq!(server["spec"]["replicas"], 1);
    assert_eq!(server["spec"]["strategy"]["type"], "Recreate");
    let pvc = m.get("PersistentVolumeClaim", "signpost-server-data");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let pod = m.pod_spec("signpost-server");
    let (_, data) = mount(pod, "/data");
    assert_eq!(
        data["persistentVolumeClaim"]["claimName"],
        "signpost-server-data"
    );
    let c = m.container("signpost-server");
    assert_eq!(args(c), ["serve"]);
    assert_eq!(env_of(c, "SIGNPOST_LISTEN"), Some(json!("0.0.0.0:8080")));
    assert_eq!(env_of(c, "SIGNPOST_DATA_DIR"), Some(json!("/data")));
    assert_eq!(env_of(c, "SIGNPOST_DATABASE_URL"), None);
    assert_eq!(env_of(c, "SIGNPOST_LOG_FORMAT"), Some(json!("json")));
    assert_eq!(
        env_of(c, "SIGNPOST_PUBLIC_URL"),
        Some(json!(
            "http://signpost-server.signpost.svc.cluster.local:8080"
        ))
    );
    assert_eq!(
        env_of(c, "SIGNPOST_MASTER_KEY"),
        Some(secret_key_ref("signpost-master-key", "master-key"))
    );
    assert_eq!(
        env_of(c, "SIGNPOST_BROKER_PASSWORD"),
        Some(secret_key_ref("signpost-broker", "password"))
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let service = m.get("Service", "signpost-server");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);

    // The generated master key: 64 hex digits, kept on uninstall.
    let key = m.get("Secret", "signpost-master-key");
    assert_eq!(
        key["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let hex = b64(&key["data"]["master-key"]);
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "master key of {} characters",
        hex.len()
    );
    assert!(b64(&m.get("Secret", "signpost-broker")["data"]["password"]).len() >= 32);

    // No instance configured: the proxy and the operator use the server's first-run instance.
    let tree = m.values_tree();
    let ds = &tree["config"]["integration"]["destinationService"];
    assert_eq!(ds["instances"], json!([{ "name": "default" }]));
    assert_eq!(ds["defaultInstanceName"], "default");
    assert_eq!(tree["config"]["manager"]["executionIntervalMinutes"], 3);
    let op = m.container("signpost-operator");
    assert_eq!(
        env_of(op, "SIGNPOST_OPERATOR_BOOTSTRAP_URL"),
        Some(json!(
            "http://signpost-server.signpost.svc.cluster.local:8080"
        ))
    );
    assert_eq!(
        env_of(op, "SIGNPOST_BROKER_USER"),
        Some(secret_key_ref("signpost-broker", "username"))
    );
    assert_eq!(
        env_of(op, "SIGNPOST_OPERATOR_PROXY_SELECTOR"),
        Some(json!(
            "app.kubernetes.io/instance=signpost,app.kubernetes.io/component=proxy"
        ))
    );
    assert_eq!(
        args(op),
        [
            "--config",
            "/etc/signpost/values.yaml",
            "--namespace",
            "$(POD_NAMESPACE)",
            "--metrics-listen",
            "0.0.0.0:9494"
        ]
    );
    assert_eq!(
        m.get("Deployment", "signpost-operator")["spec"]["replicas"],
        1
    );
}

#[test]
fn the_proxy_reads_its_files_and_has_no_token_and_no_rbac() {
    for file in CI {
        let m = render(&[file], &[]);
        let proxy = m.get("Deployment", "signpost-proxy");
        let labels = &proxy["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "signpost", "{file}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{file}");
        assert_eq!(labels["app.kubernetes.io/component"], "proxy", "{file}");
        let pod = m.pod_spec("signpost-proxy");
        assert_eq!(pod["automountServiceAccountToken"], false, "{file}");
        assert_eq!(pod["serviceAccountName"], "signpost-proxy", "{file}");
        let sa = m.get("ServiceAccount", "signpost-proxy");
        assert_eq!(sa["automountServiceAccountToken"], false, "{file}");
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            for binding in m.of_kind(kind) {
                for subject in binding["subjects"].as_array().unwrap() {
                    assert_ne!(subject["name"], "signpost-proxy", "{file}: {binding}");
                }
            }
        }

        let c = m.container("signpost-proxy");
        assert_eq!(
            args(c),
            [
                "--config",
                "/etc/signpost/values.yaml",
                "--routes",
                "/etc/signpost/routes/destinations.yaml",
                "--credentials-dir",
                "/etc/signpost/credentials",
                "--listen",
                "0.0.0.0:8080",
                "--admin-listen",
                "0.0.0.0:9494",
                "--namespace",
                "$(POD_NAMESPACE)",
                "--wait-for-config"
            ],
            "{file}"
        );
        assert_eq!(
            env_of(c, "POD_NAMESPACE"),
            Some(json!({ "fieldRef": { "fieldPath": "metadata.namespace" } }))
        );
        let ports: Vec<(&Value, &Value)> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (&p["name"], &p["containerPort"]))
            .collect();
        assert_eq!(
            ports,
            [
                (&json!("http"), &json!(8080)),
                (&json!("admin"), &json!(9494))
            ]
        );
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");

        let (values, volume) = mount(pod, "/etc/signpost/values.yaml");
        assert_eq!(values["subPath"], "values.yaml");
        assert_eq!(volume["configMap"]["name"], "signpost-values");
        let (_, routes) = mount(pod, "/etc/signpost/routes");
        assert_eq!(
            routes["configMap"],
            json!({ "name": "signpost-proxy-routes", "optional": true })
        );
        let (_, creds) = mount(pod, "/etc/signpost/credentials");
        assert_eq!(
            creds["secret"],
            json!({ "secretName": "signpost-proxy-credentials", "optional": true })
        );
        let (_, tmp) = mount(pod, "/tmp");
        assert_eq!(tmp["emptyDir"], json!({}));

        // A change of the values rolls the pods (the subPath mount is not updated in place).
        let checksum = &proxy["spec"]["template"]["metadata"]["annotations"]["checksum/values"];
        assert_eq!(checksum.as_str().map(str::len), Some(64), "{file}");

        let service = m.get("Service", "signpost-proxy");
        assert_eq!(
            service["spec"]["ports"],
            json!([{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }])
        );
    }
    // The checksum follows the values.
    let a = render(&["defaults-values.yaml"], &[]);
    let b = render(
        &["defaults-values.yaml"],
        &["config.manager.executionIntervalMinutes=5"],
    );
    let sum = |m: &Manifests| {
        m.get("Deployment", "signpost-proxy")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/values"]
            .clone()
    };
    assert_ne!(sum(&a), sum(&b));
}

#[test]
fn the_operator_has_least_privilege() {
    let m = render(&["defaults-values.yaml"], &[]);
    let rules = |o: &Value| -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for r in o["rules"].as_array().unwrap() {
            let mut verbs: Vec<String> = r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            verbs.sort();
            for g in r["apiGroups"].as_array().unwrap() {
                for res in r["resources"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().to_owned(),
                        res.as_str().unwrap().to_owned(),
                        verbs.clone(),
                    ));
                }
            }
        }
        out.sort();
        out
    };
    let v = |verbs: &[&str]| {
        let mut v: Vec<String> = verbs.iter().map(|s| (*s).to_owned()).collect();
        v.sort();
        v
    };
    let g = "destination.connectivity.api.sap";
    let mut want = vec![
        (
            g,
            "destinations",
            v(&["get", "list", "watch", "patch", "update"]),
        ),
        (g, "destinations/status", v(&["get", "patch", "update"])),
        (g, "destinations/finalizers", v(&["update"])),
        (
            "",
            "services",
            v(&[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ]),
        ),
        ("", "secrets", v(&["get", "list", "watch"])),
        ("events.k8s.io", "events", v(&["create", "patch"])),
        ("", "events", v(&["create", "patch"])),
    ];
    want.sort();
    let want: Vec<(String, String, Vec<String>)> = want
        .into_iter()
        .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v))
        .collect();
    let cluster_roles = m.of_kind("ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(rules(cluster_roles[0]), want);

    let role = m.get("Role", "signpost-operator");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    let writes = v(&["get", "list", "watch", "create", "patch", "update"]);
    let mut want = vec![
        ("".to_owned(), "configmaps".to_owned(), writes.clone()),
        ("".to_owned(), "secrets".to_owned(), writes),
        (
            "coordination.k8s.io".to_owned(),
            "leases".to_owned(),
            v(&["get", "create", "update", "patch"]),
        ),
    ];
    want.sort();
    assert_eq!(rules(role), want);

    for (kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let bindings = m.of_kind(kind);
        assert_eq!(bindings.len(), 1, "{kind}");
        assert_eq!(bindings[0]["roleRef"]["kind"], role_kind);
        assert_eq!(
            bindings[0]["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "signpost-operator", "namespace": NAMESPACE }])
        );
    }
    assert_eq!(
        m.pod_spec("signpost-operator")["serviceAccountName"],
        "signpost-operator"
    );
}

#[test]
fn every_pod_runs_as_non_root_with_a_read_only_root() {
    for file in CI {
        let m = render(&[file], &[]);
        let deployments = m.of_kind("Deployment");
        assert!(deployments.len() >= 2, "{file}");
        for d in deployments {
            let name = d["metadata"]["name"].as_str().unwrap();
            let pod = &d["spec"]["template"]["spec"];
            let psc = &pod["securityContext"];
            assert_eq!(psc["runAsNonRoot"], true, "{file} {name}");
            assert_eq!(psc["runAsUser"], 65532, "{file} {name}");
            assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
            for c in pod["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{file} {name}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{file} {name}");
                assert_eq!(sc["runAsNonRoot"], true, "{file} {name}");
                assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{file} {name}");
            }
            let (_, tmp) = mount(pod, "/tmp");
            assert_eq!(tmp["emptyDir"], json!({}), "{file} {name}");
        }
    }
}

#[test]
fn external_postgres_runs_several_servers_without_a_volume() {
    let m = render(&["postgres-values.yaml"], &[]);
    assert!(m.of_kind("PersistentVolumeClaim").is_empty());
    let server = m.get("Deployment", "signpost-server");
    assert_eq!(server["spec"]["replicas"], 3);
    assert_eq!(server["spec"]["strategy"]["type"], "RollingUpdate");
    let (_, data) = mount(m.pod_spec("signpost-server"), "/data");
    assert_eq!(data["emptyDir"], json!({}));
    let c = m.container("signpost-server");
    assert_eq!(
        env_of(c, "SIGNPOST_DATABASE_URL"),
        Some(secret_key_ref("signpost-database", "url"))
    );
    // Every replica shares the one master key of the existing Secret; the chart makes none.
    assert_eq!(
        env_of(c, "SIGNPOST_MASTER_KEY"),
        Some(secret_key_ref("signpost-master-key-backup", "key"))
    );
    assert!(m.find("Secret", "signpost-master-key").is_none());
    assert_eq!(
        env_of(c, "SIGNPOST_PUBLIC_URL"),
        Some(json!("https://destinations.example.com"))
    );
    assert_eq!(m.get("Deployment", "signpost-proxy")["spec"]["replicas"], 2);
    assert_eq!(
        m.get("Deployment", "signpost-operator")["spec"]["replicas"],
        2
    );
    // config.metrics.prometheus.enabled: SAP's metrics Services, port 9494.
    for name in ["signpost-proxy-metrics", "signpost-operator-metrics"] {
        assert_eq!(m.get("Service", name)["spec"]["ports"][0]["port"], 9494);
    }
    // Still bound to the in-cluster server (no instance configured), at its Service's address.
    assert_eq!(
        env_of(
            m.container("signpost-operator"),
            "SIGNPOST_OPERATOR_BOOTSTRAP_URL"
        ),
        Some(json!(
            "http://signpost-server.signpost.svc.cluster.local:8080"
        ))
    );
}

#[test]
fn sap_values_run_the_proxy_against_an_external_destination_service() {
    let m = render(&["sap-external-values.yaml"], &[]);
    for kind in ["Deployment", "Service", "Secret", "PersistentVolumeClaim"] {
        for o in m.of_kind(kind) {
            let name = o["metadata"]["name"].as_str().unwrap();
            assert!(!name.contains("server"), "{kind} {name} without the server");
        }
    }
    assert!(m.find("Secret", "signpost-broker").is_none());
    let op = m.container("signpost-operator");
    assert_eq!(env_of(op, "SIGNPOST_OPERATOR_BOOTSTRAP_URL"), None);
    assert_eq!(env_of(op, "SIGNPOST_BROKER_USER"), None);

    // secretData became Secrets; the values tree names them and holds no secret.
    let inline = m.get("Secret", "inline-destination-key");
    assert_eq!(inline["metadata"]["namespace"], NAMESPACE);
    let key: Value = serde_json::from_str(&b64(&inline["data"]["service-key"])).unwrap();
    assert_eq!(key["clientid"], "sb-clone");
    let x509 = m.get("Secret", "signpost-x509-instance-service-key");
    let key: Value = serde_json::from_str(&b64(&x509["data"]["service-key"])).unwrap();
    assert_eq!(key["credential-type"], "x509");

    let tree = m.values_tree();
    let text = serde_json::to_string(&tree).unwrap();
    assert!(!text.contains("secretData"), "{text}");
    let instances = &tree["config"]["integration"]["destinationService"]["instances"];
    assert_eq!(
        instances,
        &json!([
            { "name": "dest-service-instance", "serviceCredentials": {
                "secretKey": "destination-key", "secretName": "destination-service-key",
                "secretNamespace": "btp-keys" } },
            { "name": "inline-instance", "serviceCredentials": {
                "secretKey": "service-key", "secretName": "inline-destination-key" } },
            { "name": "x509-instance", "serviceCredentials": {
                "secretKey": "service-key", "secretName": "signpost-x509-instance-service-key",
                "privateKey": { "secretName": "x509-svc-key-private-key",
                                "secretInternalKey": "pk.pem", "secretNamespace": "btp-keys" } } }
        ])
    );
    assert_eq!(
        tree["additionalCAs"],
        json!({ "secretName": "corporate-cas", "secretKey": "ca.crt" })
    );
    assert_eq!(
        tree["config"]["integration"]["connectivityProxy"]["serviceName"],
        "connectivity-proxy.kyma-system"
    );
    assert!(tree.get("deployment").is_none() && tree.get("server").is_none());

    // SAP's deployment keys drive the proxy: replicas.http and resources.http (`request`).
    let proxy = m.get("Deployment", "signpost-proxy");
    assert_eq!(proxy["spec"]["replicas"], 2);
    assert_eq!(
        m.container("signpost-proxy")["resources"],
        json!({ "requests": { "cpu": 0.2, "memory": "256M" },
                "limits": { "cpu": 0.4, "memory": "512M" } })
    );
}

#[test]
fn sap_deployment_keys_apply_to_every_image_and_to_the_proxy() {
    let m = render(&["sap-full-tree-values.yaml"], &[]);
    for d in m.of_kind("Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{ "name": "registry-credentials" }])
        );
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        // SAP's repository and tag name SAP's images: not used.
        let image = c["image"].as_str().unwrap();
        assert!(
            image.starts_with("registry.example.internal/signpost/") && image.ends_with(":0.1.0"),
            "{image}"
        );
    }
    assert_eq!(m.get("Deployment", "signpost-proxy")["spec"]["replicas"], 3);
    for name in ["signpost-proxy", "signpost-operator"] {
        assert_eq!(
            env_of(m.container(name), "SIGNPOST_LOG"),
            Some(json!("debug"))
        );
    }
    // Accepted and passed on to the proxy and the operator as they are.
    let tree = m.values_tree();
    assert_eq!(
        tree["config"]["security"]["communication"]["internal"]["certManager"]["issuerRef"]["kind"],
        "ClusterIssuer"
    );
    assert_eq!(
        tree["config"]["integration"]["serviceMesh"]["istio"]["istio-injection"],
        "enabled"
    );
    assert_eq!(tree["config"]["manager"]["executionIntervalMinutes"], 5);
}

#[test]
fn two_instances_keep_their_default_instance() {
    let m = render(&["two-instances-values.yaml"], &[]);
    let tree = m.values_tree();
    let ds = &tree["config"]["integration"]["destinationService"];
    assert_eq!(ds["defaultInstanceName"], "second");
    let names: Vec<&Value> = ds["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["name"])
        .collect();
    assert_eq!(names, [&json!("first"), &json!("second")]);
    // Instances configured: no binding to the in-cluster server, which still runs.
    assert!(m.find("Deployment", "signpost-server").is_some());
    assert_eq!(
        env_of(
            m.container("signpost-operator"),
            "SIGNPOST_OPERATOR_BOOTSTRAP_URL"
        ),
        None
    );
}

#[test]
fn the_proxy_and_the_operator_read_the_rendered_values_tree() {
    for file in CI {
        let m = render(&[file], &[]);
        let tree = m.values_tree();
        let text = m.get("ConfigMap", "signpost-values")["data"]["values.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        // The operator: the values file, and the Secrets it names (read from the API).
        let values = signpost_operator::values::Values::parse(&text, "/etc/signpost/values.yaml")
            .unwrap_or_else(|e| panic!("{file}: the operator refuses the values: {e}"));
        let refs = values.secret_refs(NAMESPACE);
        let instances = tree["config"]["integration"]["destinationService"]["instances"]
            .as_array()
            .unwrap();
        for i in instances {
            if let Some(name) = i["serviceCredentials"]["secretName"].as_str() {
                let ns = i["serviceCredentials"]["secretNamespace"]
                    .as_str()
                    .unwrap_or(NAMESPACE);
                assert!(
                    refs.contains(&(ns.to_owned(), name.to_owned())),
                    "{file}: {refs:?}"
                );
            }
        }

        // The proxy, as the chart runs it: a service key per instance in --credentials-dir (the
        // operator writes them). additionalCAs by secretName is left out here: the proxy does not
        // take CAs from the credentials directory yet (docs/KUBERNETES.md, "Not yet").
        let dir = tempfile::tempdir().unwrap();
        for i in instances {
            let key = json!({
                "clientid": "sb-test", "clientsecret": "s",
                "url": "https://auth.example.com", "uri": "https://destination.example.com"
            });
            let name = i["name"].as_str().unwrap();
            std::fs::write(dir.path().join(format!("{name}.json")), key.to_string()).unwrap();
        }
        let mut proxy_tree = tree.clone();
        proxy_tree.as_object_mut().unwrap().remove("additionalCAs");
        let yaml = serde_norway::to_string(&proxy_tree).unwrap();
        let source =
            signpost_proxy::config::CredentialSource::CredentialsDir(dir.path().to_path_buf());
        let cfg = signpost_proxy::config::parse(&yaml, "/etc/signpost/values.yaml", None, &source)
            .unwrap_or_else(|e| panic!("{file}: the proxy refuses the values: {e}"));
        assert_eq!(cfg.instances.len(), instances.len(), "{file}");
        let default = &tree["config"]["integration"]["destinationService"]["defaultInstanceName"];
        if let Some(name) = default.as_str().filter(|n| !n.is_empty()) {
            assert_eq!(cfg.default_instance.as_deref(), Some(name), "{file}");
        }
    }
}

#[test]
fn the_objects_fit_kubernetes_1_20_and_name_no_registry() {
    for file in CI {
        let m = render(&[file], &[]);
        for o in &m.0 {
            let api = o["apiVersion"].as_str().unwrap();
            let kind = o["kind"].as_str().unwrap();
            assert!(
                !api.starts_with("policy/") && !api.starts_with("autoscaling/"),
                "{file}: {kind} {api}"
            );
            let ns = &o["metadata"]["namespace"];
            let cluster_scoped = matches!(
                kind,
                "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
            );
            assert_eq!(
                ns.is_null(),
                cluster_scoped,
                "{file}: {kind} namespace {ns}"
            );
            if kind == "Service" {
                for port in o["spec"]["ports"].as_array().unwrap() {
                    assert_eq!(port["protocol"], "TCP", "{file}: {o}");
                }
            }
        }
        for d in m.of_kind("Deployment") {
            for c in d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                let image = c["image"].as_str().unwrap();
                let image = image.strip_prefix(USER_REGISTRY).unwrap_or(image);
                let (repo, tag) = image.rsplit_once(':').unwrap();
                let first = repo.split('/').next().unwrap();
                assert!(
                    repo.starts_with("signpost/") && !first.contains('.') && tag == "0.1.0",
                    "{file}: image {image} (no registry host; tag = appVersion)"
                );
            }
        }
    }
    // SAP's horizontal autoscaling is the only autoscaling/ object, and only when enabled.
    let m = render(
        &["defaults-values.yaml"],
        &["deployment.autoscaling.http.horizontal.enabled=true"],
    );
    let hpa = m.get("HorizontalPodAutoscaler", "signpost-proxy");
    assert_eq!(hpa["spec"]["maxReplicas"], 2);
    assert!(m.get("Deployment", "signpost-proxy")["spec"]
        .get("replicas")
        .is_none());
    // A registry only when deployment.image.registry asks for one.
    let m = render(
        &["defaults-values.yaml"],
        &["deployment.image.registry=mirror.internal:5000"],
    );
    assert_eq!(
        m.container("signpost-proxy")["image"],
        "mirror.internal:5000/signpost/signpost-proxy:0.1.0"
    );
}

#[test]
fn wrong_keys_fail_with_their_path() {
    let tools = KubeTools::find();
    for (set, path, key) in [
        ("server.persistance.size=2Gi", "/server", "persistance"),
        ("proxy.service.prot=81", "/proxy/service", "prot"),
        ("deployment.replica.http=2", "/deployment", "replica"),
        ("crds.instal=false", "/crds", "instal"),
    ] {
        let out = template(&tools, &[], &[set]);
        assert!(!out.success(), "{set} was accepted");
        assert!(
            out.stderr.contains(&format!("'{path}'")) && out.stderr.contains(key),
            "{set}: {}",
            out.stderr
        );
    }
    // Deep in SAP's tree.
    let out = template(
        &tools,
        &[],
        &[
            "config.integration.destinationService.instances[0].name=a",
            "config.integration.destinationService.instances[0].serviceCredentials.secretname=s",
        ],
    );
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("'/config/integration/destinationService/instances/0/serviceCredentials'")
            && out.stderr.contains("secretname"),
        "{}",
        out.stderr
    );
    // A wrong type, with its path.
    let out = template(
        &tools,
        &[],
        &["config.manager.executionIntervalMinutes=often"],
    );
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("'/config/manager/executionIntervalMinutes'"),
        "{}",
        out.stderr
    );
}

#[test]
fn values_that_cannot_work_fail_with_a_reason() {
    let tools = KubeTools::find();
    for (sets, message) in [
        (
            vec!["server.enabled=false"],
            "config.integration.destinationService.instances: at least one instance is needed with server.enabled=false",
        ),
        (
            vec!["server.replicas=2"],
            "server.replicas: 2 replicas need an external PostgreSQL (server.database.existingSecret)",
        ),
        (
            vec![
                "config.integration.destinationService.instances[0].name=a",
                "config.integration.destinationService.defaultInstanceName=b",
            ],
            "config.integration.destinationService.defaultInstanceName: 'b' is not one of the instances (a)",
        ),
        (
            vec![
                "config.integration.destinationService.instances[0].name=a",
                "config.integration.destinationService.instances[1].name=a",
            ],
            "config.integration.destinationService.instances: the name 'a' is given twice",
        ),
    ] {
        let out = template(&tools, &[], &sets);
        assert!(!out.success(), "{sets:?} was accepted");
        assert!(out.stderr.contains(message), "{sets:?}: {}", out.stderr);
    }
    // Several replicas are fine on PostgreSQL.
    template(
        &tools,
        &[],
        &["server.replicas=2", "server.database.existingSecret=db"],
    )
    .expect_ok("helm template with PostgreSQL");
}

#[test]
fn the_chart_renders_the_one_crd_of_deploy_crds() {
    // files/destinations.yaml is a symlink to deploy/crds/destinations.yaml: one copy, no drift.
    let link = chart().join("files/destinations.yaml");
    let target = std::fs::read_link(&link).expect("files/destinations.yaml is a symlink");
    assert_eq!(
        link.parent().unwrap().join(target).canonicalize().unwrap(),
        workspace_root().join("deploy/crds/destinations.yaml")
    );
    let committed: Value = serde_norway::from_str(
        &std::fs::read_to_string(workspace_root().join("deploy/crds/destinations.yaml")).unwrap(),
    )
    .unwrap();
    let m = render(&[], &[]);
    let crd = m.get(
        "CustomResourceDefinition",
        "destinations.destination.connectivity.api.sap",
    );
    assert_eq!(crd["spec"], committed["spec"]);
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let m = render(&[], &["crds.install=false"]);
    assert!(m.of_kind("CustomResourceDefinition").is_empty());

    // `helm package` follows the symlink: the packaged chart carries the CRD itself.
    let tools = KubeTools::find();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().display().to_string();
    let chart_dir = chart().display().to_string();
    tools
        .helm(&["package", &chart_dir, "--destination", &out_dir])
        .expect_ok("helm package");
    let tgz = dir.path().join("signpost-0.1.0.tgz").display().to_string();
    let out = tools
        .helm(&["template", RELEASE, &tgz, "--namespace", NAMESPACE])
        .expect_ok("helm template of the package");
    let packaged = Manifests(parse_yaml_docs(&out.stdout));
    let crd = packaged.get(
        "CustomResourceDefinition",
        "destinations.destination.connectivity.api.sap",
    );
    assert_eq!(crd["spec"], committed["spec"]);
}

#[test]
fn a_kubernetes_1_20_api_server_accepts_every_rendering() {
    let tools = KubeTools::find();
    let kube = ApiServer::start();
    let crd = workspace_root().join("deploy/crds/destinations.yaml");
    kube.kubectl(&["apply", "-f", &crd.display().to_string()])
        .expect_ok("kubectl apply the CRD");
    kube.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/destinations.destination.connectivity.api.sap",
    ])
    .expect_ok("CRD established");
    kube.kubectl(&["create", "namespace", NAMESPACE])
        .expect_ok("create namespace");

    let dir = tempfile::tempdir().unwrap();
    for file in CI {
        let rendered = template(&tools, &[file], &[]).expect_ok("helm template");
        let path = dir.path().join(file);
        std::fs::write(&path, &rendered.stdout).unwrap();
        let out = kube.kubectl(&[
            "apply",
            "--dry-run=server",
            "-f",
            &path.display().to_string(),
        ]);
        assert!(
            out.success(),
            "{file}: the API server refused:\n{}\n{}",
            out.stderr,
            out.stdout
        );
        // Every object was sent (kubectl prints one line per object).
        let objects = parse_yaml_docs(&rendered.stdout).len();
        assert_eq!(
            out.stdout.lines().count(),
            objects,
            "{file}: {}",
            out.stdout
        );
    }

    // A Destination resource of SAP's shape against the CRD.
    let dst = dir.path().join("destination.yaml");
    std::fs::write(
        &dst,
        "apiVersion: destination.connectivity.api.sap/v1\nkind: Destination\nmetadata:\n  name: my-api\n  namespace: signpost\nspec:\n  destinationRef:\n    name: my-destination\n  destinationServiceInstanceName: default\n",
    )
    .unwrap();
    kube.kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        &dst.display().to_string(),
    ])
    .expect_ok("a Destination");
}

#[test]
fn an_install_keeps_its_generated_secrets_across_upgrades() {
    let kube = ApiServer::start();
    let chart = chart().display().to_string();
    let install = |verb: &str, sets: &[&str]| {
        let mut args = vec![
            verb,
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--timeout",
            "60s",
        ];
        if verb == "upgrade" {
            args.retain(|a| *a != "--create-namespace");
        }
        for s in sets {
            args.extend(["--set", s]);
        }
        kube.helm(&args).expect_ok(verb)
    };
    let secret = |name: &str, key: &str| -> String {
        let out = kube
            .kubectl(&[
                "get",
                "secret",
                name,
                "--namespace",
                NAMESPACE,
                "--output",
                &format!("jsonpath={{.data.{key}}}"),
            ])
            .expect_ok("kubectl get secret");
        out.stdout
    };
    install("install", &[]);
    let master = secret("signpost-master-key", "master-key");
    let password = secret("signpost-broker", "password");
    assert!(!master.is_empty() && !password.is_empty());

    // The upgrade renders against the cluster: the Secrets stay, and SAP's autoscaling becomes
    // an HPA of the version the 1.20 server serves (autoscaling/v2beta2).
    install(
        "upgrade",
        &[
            "deployment.autoscaling.http.horizontal.enabled=true",
            "config.manager.executionIntervalMinutes=5",
        ],
    );
    assert_eq!(secret("signpost-master-key", "master-key"), master);
    assert_eq!(secret("signpost-broker", "password"), password);
    let hpa = kube
        .kubectl(&[
            "get",
            "horizontalpodautoscalers.v2beta2.autoscaling",
            "signpost-proxy",
            "--namespace",
            NAMESPACE,
            "--output",
            "jsonpath={.spec.maxReplicas}",
        ])
        .expect_ok("the HPA");
    assert_eq!(hpa.stdout, "2");

    // Uninstall keeps the master key, the SQLite volume and the CRD.
    kube.helm(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .expect_ok("uninstall");
    assert_eq!(secret("signpost-master-key", "master-key"), master);
    for (kind, name) in [
        ("persistentvolumeclaim", "signpost-server-data"),
        ("crd", "destinations.destination.connectivity.api.sap"),
    ] {
        kube.kubectl(&["get", kind, name, "--namespace", NAMESPACE])
            .expect_ok("kept on uninstall");
    }
    assert!(!kube
        .kubectl(&["get", "secret", "signpost-broker", "--namespace", NAMESPACE])
        .success());
    // A second install takes the kept master key up again.
    install("install", &[]);
    assert_eq!(secret("signpost-master-key", "master-key"), master);
}

/// The text of a base64 value of a Secret's `data`.
fn b64(value: &Value) -> String {
    signpost_test_utils::kube::secret_text(value.as_str().expect("base64 string"))
}
