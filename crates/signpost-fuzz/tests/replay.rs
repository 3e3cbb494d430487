//! Every committed input of every fuzz target, replayed: the corpus (`fuzz/corpus/<target>/`)
//! and the crash reproducers (`fuzz/regressions/<target>/`). A target without a corpus fails, so
//! that this cannot pass on nothing. One test per target, so that they run in parallel.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir` (none when it does not exist), dotfiles left out, in name order.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn replay(name: &str) {
    let (_, target) = signpost_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let corpus = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is empty: seed it (fuzz/seed.sh) and commit the corpus"
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(name));
    let started = Instant::now();
    for file in corpus.iter().chain(&regressions) {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // A panic names the input that caused it.
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "{name}: {} panics", file.display());
    }
    eprintln!(
        "{name}: {} corpus inputs and {} reproducers in {:?}",
        corpus.len(),
        regressions.len(),
        started.elapsed()
    );
}

#[test]
fn every_target_has_a_replay_test() {
    let here = include_str!("replay.rs");
    for (name, _) in signpost_fuzz::TARGETS {
        assert!(
            here.contains(&format!("fn {name}()")),
            "no test replays {name}"
        );
    }
}

#[test]
fn certs_parse() {
    replay("certs_parse");
}

#[test]
fn jks() {
    replay("jks");
}

#[test]
fn entity_body() {
    replay("entity_body");
}

#[test]
fn instance_config() {
    replay("instance_config");
}

#[test]
fn list_options() {
    replay("list_options");
}

#[test]
fn properties_import() {
    replay("properties_import");
}

#[test]
fn proxy_headers() {
    replay("proxy_headers");
}

#[test]
fn proxy_config() {
    replay("proxy_config");
}

#[test]
fn proxy_answer() {
    replay("proxy_answer");
}

#[test]
fn bearer_jwt() {
    replay("bearer_jwt");
}
