//! Output: plain tables for people, `-o json` (the API's JSON, compact, as the server sends it)
//! and `-o yaml` for scripts; secrets masked in tables unless `--show-secrets`.

use std::io::Write as _;

use clap::{Args, ValueEnum};
use serde_json::Value;

/// What replaces a secret in a table.
pub const MASK: &str = "********";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The API's JSON.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// Show passwords, secrets and tokens in tables instead of masking them.
    #[arg(long, global = true)]
    pub show_secrets: bool,
}

/// Writes a line to stdout; a closed pipe ends quietly.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").is_err() {
        std::process::exit(0);
    }
}

/// A status message for people (stderr, so that stdout stays machine-readable).
pub fn info(text: &str) {
    eprintln!("{text}");
}

/// `value` as JSON (compact, as the server sends it) or YAML; `table()` for tables.
pub fn render(
    out: &OutputArgs,
    value: &Value,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match out.output {
        Format::Json => line(&serde_json::to_string(value)?),
        Format::Yaml => line(serde_norway::to_string(value)?.trim_end()),
        Format::Table => {
            let text = table();
            if !text.is_empty() {
                line(text.trim_end());
            }
        }
    }
    Ok(())
}

/// Whether a property holds a secret (its name ends in `Password` or `Secret`, any case).
pub fn is_secret(key: &str) -> bool {
    signpost_model::is_secret_property(key)
        || key.eq_ignore_ascii_case("value")
        || key.eq_ignore_ascii_case("key")
}

/// A cell of `value`: strings as they are, others as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value`, masked when `key` is secret and secrets are not shown.
pub fn shown(key: &str, value: &Value, show_secrets: bool) -> String {
    if !show_secrets && is_secret(key) && !value.is_null() {
        MASK.into()
    } else {
        cell(value)
    }
}

/// Aligned columns with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut push = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            text.push_str(c);
            if i < last {
                let pad = widths[i] + 2 - c.chars().count();
                text.push_str(&" ".repeat(pad));
            }
        }
        text.push('\n');
    };
    push(headers.to_vec());
    for row in rows {
        push(row.iter().map(String::as_str).collect());
    }
    text
}

/// A two-column table of an object's properties, secrets masked.
pub fn properties(object: &Value, show_secrets: bool) -> String {
    let rows: Vec<Vec<String>> = object
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| vec![k.clone(), shown(k, v, show_secrets)])
                .collect()
        })
        .unwrap_or_default();
    table(&["PROPERTY", "VALUE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_mask() {
        let t = properties(&json!({"Name": "a", "Password": "p"}), false);
        assert_eq!(t, "PROPERTY  VALUE\nName      a\nPassword  ********\n");
        assert!(properties(&json!({"Password": "p"}), true).contains(" p\n"));
    }
}
