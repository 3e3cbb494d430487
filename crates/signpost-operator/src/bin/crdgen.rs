//! Prints the `Destination` CRD as YAML: `cargo run -p signpost-operator --bin crdgen > deploy/crds/destinations.yaml`.
#![allow(clippy::print_stdout)]

fn main() {
    print!("{}", signpost_operator::crd::crd_yaml());
}
