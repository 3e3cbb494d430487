//! `docs/CLI.md` is generated from the clap definitions and must be current; shell completions.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::Cli;

#[test]
fn docs_cli_md_is_up_to_date() {
    let out = Cli::new().run(&["docs", "cli"]);
    let generated = out.ok();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CLI.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/CLI.md is out of date: regenerate it with `cargo run -q -p signpost -- docs cli > docs/CLI.md`"
    );
    for verb in [
        "signpost instance create",
        "signpost dest find",
        "signpost cert generate",
        "signpost import",
    ] {
        assert!(
            generated.contains(&format!("`{verb}`")),
            "{verb} is missing"
        );
    }
    assert!(
        !generated.contains("`signpost docs`"),
        "hidden commands stay hidden"
    );
}

#[test]
fn completions_for_three_shells() {
    let cli = Cli::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef signpost"),
        ("fish", "complete -c signpost"),
    ] {
        let out = cli.run(&["completion", shell]);
        assert!(
            out.ok().contains(marker),
            "{shell}: {}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        assert!(
            out.stdout.contains("instance"),
            "{shell} completes the verbs"
        );
    }
    cli.run(&["completion", "powershell"])
        .fails(2, "invalid value 'powershell'");
}

#[test]
fn every_verb_has_help_with_examples() {
    let cli = Cli::new();
    for verb in [
        "login",
        "instance create",
        "instance update",
        "instance delete",
        "instance list",
        "key create",
        "key delete",
        "key list",
        "dest list",
        "dest get",
        "dest create",
        "dest update",
        "dest delete",
        "dest find",
        "fragment list",
        "fragment get",
        "fragment create",
        "fragment update",
        "fragment delete",
        "cert upload",
        "cert generate",
        "cert list",
        "cert show",
        "cert delete",
        "export",
        "import",
        "completion",
    ] {
        let mut args: Vec<&str> = verb.split(' ').collect();
        args.push("--help");
        let out = cli.run(&args);
        assert!(
            out.ok().contains("Example"),
            "`signpost {verb} --help` has no example"
        );
    }
}
