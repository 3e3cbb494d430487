//! Shell completions and `docs/CLI.md`, both generated from the clap definitions.

use clap::{Args, Command, CommandFactory as _, Subcommand, ValueEnum};

use super::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  signpost completion bash > /etc/bash_completion.d/signpost
  signpost completion zsh > \"${fpath[1]}/_signpost\"
  signpost completion fish > ~/.config/fish/completions/signpost.fish")]
pub struct CompletionArgs {
    pub shell: Shell,
}

#[derive(Debug, Subcommand)]
pub enum DocsVerb {
    /// docs/CLI.md: every command's help in Markdown (`signpost docs cli > docs/CLI.md`).
    Cli,
}

pub fn completion(args: &CompletionArgs) {
    let mut cmd = crate::Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "signpost", &mut std::io::stdout());
}

pub fn docs(verb: &DocsVerb) {
    match verb {
        DocsVerb::Cli => output::line(markdown().trim_end()),
    }
}

/// Every visible command's long help, depth first, with environment values hidden so that the
/// page does not depend on the environment it was made in.
pub fn markdown() -> String {
    let mut cmd = hide_env_values(crate::Cli::command().term_width(100));
    cmd.build();
    let mut text = String::from(
        "# The `signpost` command line\n\n\
         Generated from the clap definitions by `signpost docs cli > docs/CLI.md`; \
         `crates/signpost/tests/cli_docs.rs` fails when this page is out of date.\n\n\
         Platform verbs (`instance`, `key`, `signing-key`, `audit`) use the platform target stored by \
         `signpost login URL --broker-user USER`; tenant verbs (`dest`, `fragment`, `cert`, \
         `export`, `import`) use the tenant target stored by `signpost login --service-key FILE`, \
         or `--service-key FILE` on any call. Targets live in `$XDG_CONFIG_HOME/signpost/` \
         (default `~/.config/signpost`), files of mode 0600.\n\n\
         Exit codes: 0 success, 1 an error (the server's message is printed), 2 a usage error \
         (bad arguments or an unreadable or malformed input file).\n\n\
         The broker has no list endpoints, so `instance list` and `key list` show what this CLI \
         created on this machine (`instances.json` beside the targets).\n",
    );
    section(&cmd, "signpost", &mut text);
    text
}

fn hide_env_values(cmd: Command) -> Command {
    cmd.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

fn section(cmd: &Command, path: &str, text: &mut String) {
    let mut c = cmd.clone().bin_name(path);
    let help: Vec<String> = c
        .render_long_help()
        .to_string()
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect();
    let help = help.join("\n");
    let level = path.split(' ').count().min(4) + 1;
    text.push_str(&format!(
        "\n{} `{path}`\n\n```text\n{}\n```\n",
        "#".repeat(level),
        help.trim_end()
    ));
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        section(sub, &format!("{path} {}", sub.get_name()), text);
    }
}
