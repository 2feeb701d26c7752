//! The README's flag table and `--help` agree: every flag `--help` lists (but the generated
//! `--collector.<name>` switches) is in the table, and every flag the table names exists.

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_monitoring-agent");

/// `--flag` tokens in a text (letters, digits, `.`, `-`, `_`: `--collector.netclass_rtnl.with-stats`).
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("--") {
        let start = i + pos;
        let prev_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let mut end = start + 2;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || b".-_".contains(&bytes[end]))
        {
            end += 1;
        }
        let flag = text[start..end].trim_end_matches(['.', '-']);
        if prev_ok && flag.len() > 2 && bytes[start + 2].is_ascii_lowercase() {
            out.insert(flag.to_string());
        }
        i = end.max(start + 2);
    }
    out
}

#[test]
fn readme_flag_table_matches_help() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8");
    let generated = |f: &str| {
        (f.starts_with("--collector.") || f.starts_with("--no-collector."))
            && f.matches('.').count() == 1
            && !["--collector.disable-defaults", "--collector.deadline"].contains(&f)
    };
    let from_help: BTreeSet<String> = flags(&help)
        .into_iter()
        .filter(|f| !generated(f) && !["--help", "--version", "--collector"].contains(&f.as_str()))
        .collect();

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## Command line")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a '## Command line' section");
    let table: String = section
        .lines()
        .filter(|l| l.starts_with("| `-"))
        .collect::<Vec<_>>()
        .join("\n");
    let from_readme: BTreeSet<String> = flags(&table)
        .into_iter()
        .filter(|f| f != "--collector.NAME" && f != "--no-collector.NAME")
        .collect();

    let missing: Vec<_> = from_help.difference(&from_readme).collect();
    let unknown: Vec<_> = from_readme.difference(&from_help).collect();
    assert!(
        missing.is_empty(),
        "flags in --help but not in README's table: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "flags in README's table that --help does not list: {unknown:?}"
    );
    assert!(
        from_help.len() >= 25,
        "only {} flags found",
        from_help.len()
    );
}
