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

/// The top-level modules of `src/` form no import circle (ARCHITECTURE.md's data path goes one
/// way). A module's dependencies are the `crate::<module>` paths in its code (comments and
/// `#[cfg(test)]` modules excluded).
#[test]
fn no_import_circles_between_top_level_modules() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .expect("component")
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let set = deps.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        set.insert(name);
                    }
                }
            }
        }
    }
    // Depth-first search for a cycle among the modules that exist.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == m) {
            return Some(path[pos..].to_vec());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if deps.contains_key(d) {
                if let Some(c) = visit(d, deps, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    assert!(deps.len() >= 15, "found only {} modules", deps.len());
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        if let Some(cycle) = visit(m, &deps, &mut Vec::new(), &mut done) {
            panic!(
                "import circle between top-level modules: {}",
                cycle.join(" -> ")
            );
        }
    }
}
