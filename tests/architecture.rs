//! ARCHITECTURE.md stays true: every file or directory it names in backquotes exists.

use std::path::Path;

#[test]
fn every_path_architecture_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut named = 0;
    let mut missing = Vec::new();
    for (i, chunk) in text.split('`').enumerate() {
        // Odd chunks are inside backquotes.
        if i % 2 == 0 {
            continue;
        }
        let looks_like_path = chunk.contains('/')
            && !chunk.contains(' ')
            && ["src/", "tests/", "policy/", "scripts/"]
                .iter()
                .any(|p| chunk.starts_with(p));
        if looks_like_path {
            named += 1;
            if !root.join(chunk.trim_end_matches('/')).exists() {
                missing.push(chunk.to_string());
            }
        }
    }
    assert!(named >= 20, "ARCHITECTURE.md names only {named} paths");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}
