//! The committed CRD is the one the types generate.

#[test]
fn committed_crd_is_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/destinations.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("deploy/crds/destinations.yaml");
    let generated = signpost_operator::crd::crd_yaml();
    assert!(
        committed == generated,
        "deploy/crds/destinations.yaml is stale: run `cargo run -p signpost-operator --bin crdgen > deploy/crds/destinations.yaml`"
    );
}

#[test]
fn crd_has_sap_names_columns_and_status() {
    let crd = signpost_operator::crd::crd();
    assert_eq!(
        crd["metadata"]["name"],
        "destinations.destination.connectivity.api.sap"
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "dst");
    assert_eq!(crd["spec"]["names"]["listKind"], "DestinationList");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "Age",
        "DestinationRef",
        "FragmentRef",
        "DestinationServiceInstanceName",
        "ServicePort",
        "AccessControlScope",
        "ChainRef",
        "Status",
    ] {
        assert!(columns.contains(&name), "{name} in {columns:?}");
    }
    let schema = &version["schema"]["openAPIV3Schema"]["properties"];
    let condition = &schema["status"]["properties"]["conditions"]["items"]["properties"];
    assert!(condition.get("lastUpdateTime").is_some());
    assert!(condition.get("lastTransitionTime").is_none());
    assert_eq!(
        schema["spec"]["properties"]["service"]["properties"]["port"]["maximum"],
        65535
    );
    let text = serde_json::to_string(&crd).unwrap();
    assert!(!text.contains("nullable"), "{text}");
}
