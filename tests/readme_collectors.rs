//! The README's "Metrics" section lists every collector, with its default, exactly as
//! `monitoring-agent --help` does: one `| `NAME` | on/off | ... |` row per
//! `--collector.NAME` flag, nothing more and nothing less.

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn readme_lists_every_collector_of_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_monitoring-agent"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    // `--collector.NAME` on its own line, then `Enable the NAME collector (default: enabled).`
    // (or both on one line, as clap puts them in the short help).
    let mut from_help = BTreeMap::new();
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("--collector.") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let text = format!("{t} {}", lines.get(i + 1).copied().unwrap_or(""));
        // Not an option of the collector (`--collector.NAME.OPTION`, `--collector.NAME-...`).
        let after = &rest[name.len()..];
        if (after.is_empty() || after.starts_with(char::is_whitespace))
            && text.contains(&format!("Enable the {name} collector (default: "))
        {
            let on = text.contains("(default: enabled)");
            from_help.insert(name, if on { "on" } else { "off" }.to_string());
        }
    }
    assert!(
        from_help.len() > 50,
        "read {} collectors from --help:\n{help}",
        from_help.len()
    );

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("a \"## Metrics\" section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    let mut from_readme = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[1].starts_with('`') && cells[1].ends_with('`') {
            from_readme.insert(cells[1].trim_matches('`').to_string(), cells[2].to_string());
        }
    }
    assert_eq!(
        from_readme, from_help,
        "README.md \"Metrics\" (left) and --help (right) disagree on the collectors or their \
         defaults"
    );
}
