//! A configuration that cannot work stops `signpost-operator` at once with exit code 2 and the
//! reason, before it connects anywhere.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost-operator"))
        .args(args)
        .env_remove("SIGNPOST_BROKER_USER")
        .env_remove("SIGNPOST_BROKER_PASSWORD")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let (code, err) = run(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.yaml"), "{err}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "config: [unclosed\n").unwrap();
    let (code, err) = run(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not valid YAML"), "{err}");

    let good = dir.path().join("values.yaml");
    std::fs::write(&good, "config: {}\n").unwrap();
    let config = good.to_str().unwrap();
    let (code, err) = run(&["--config", config, "--proxy-selector", "no-equals"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--proxy-selector"), "{err}");
    let (code, err) = run(
        &["--config", config, "--bootstrap-url", "http://server:8080"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SIGNPOST_BROKER_USER"), "{err}");
    // Without a cluster to reach: a runtime error, exit code 1.
    let (code, err) = run(&["--config", config], &[]);
    assert_eq!(code, 1, "{err}");
}
