//! Compiles the seccomp policy of the target architecture (`policy/seccomp/<arch>.json`) to BPF
//! with seccompiler and writes each filter as raw `sock_filter` bytes into `OUT_DIR`, where
//! `src/sandbox/seccomp.rs` embeds them with `include_bytes!`. The same policy is compiled for
//! debug and release builds: there is no "empty filter" fallback.
//!
//! The `main` filter is compiled once per combination of the policy fragments in
//! `policy/fragments/*.json` (each adds rules for the collectors that need an extra system
//! interface): the base rules plus the rules of every fragment in the combination, merged into
//! one filter (filters stack and the strictest verdict wins, so a fragment cannot be a filter
//! of its own). Every combination is compiled for every architecture, so a broken fragment
//! breaks the build. `OUT_DIR/policy_fragments.rs` lists the fragments and the compiled
//! variants, indexed by the bit mask of the fragments they contain (fragment `i` in name order
//! is bit `i`).

use std::collections::{BTreeMap, HashMap};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Filters the policy file must define; `src/sandbox/seccomp.rs` embeds one file per name.
const FILTERS: &[&str] = &["main", "clone3", "signals"];
/// Architectures with a policy; each must compile.
const ARCHES: &[&str] = &["x86_64", "aarch64"];
/// Every combination is compiled: beyond this many fragments, compile at start-up instead.
const MAX_FRAGMENTS: usize = 6;

/// One `policy/fragments/<name>.json`.
struct Fragment {
    name: String,
    comment: String,
    collectors: Vec<String>,
    /// Rules per architecture, in seccompiler's JSON rule format.
    seccomp: BTreeMap<String, Vec<Value>>,
}

fn load_fragments(dir: &Path) -> Vec<Fragment> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot list policy fragments in {}: {e}", dir.display()),
    };
    for e in entries {
        let path = e
            .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
            .path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_else(|| panic!("fragment file name {} is not UTF-8", path.display()))
            .to_string();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-'),
            "fragment {} must be named [a-z_-]+.json",
            path.display()
        );
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read fragment {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("fragment {} is not JSON: {e}", path.display()));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("fragment {} must be an object", path.display()));
        for key in obj.keys() {
            assert!(
                ["comment", "collectors", "seccomp"].contains(&key.as_str()),
                "fragment {} has an unknown key {key:?}",
                path.display()
            );
        }
        let comment = obj
            .get("comment")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| panic!("fragment {} needs a \"comment\"", path.display()))
            .to_string();
        let collectors: Vec<String> = obj
            .get("collectors")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("fragment {} needs \"collectors\"", path.display()))
            .iter()
            .map(|c| {
                c.as_str()
                    .unwrap_or_else(|| panic!("fragment {}: collectors are names", path.display()))
                    .to_string()
            })
            .collect();
        assert!(
            !collectors.is_empty(),
            "fragment {} names no collector",
            path.display()
        );
        let seccomp_obj = obj
            .get("seccomp")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("fragment {} needs \"seccomp\"", path.display()));
        let mut seccomp = BTreeMap::new();
        for arch in ARCHES {
            let rules = seccomp_obj
                .get(*arch)
                .and_then(Value::as_array)
                .unwrap_or_else(|| {
                    panic!(
                        "fragment {} lacks rules for {arch} (an empty list if none)",
                        path.display()
                    )
                });
            for r in rules {
                assert!(
                    r.get("comment")
                        .and_then(Value::as_str)
                        .is_some_and(|c| !c.trim().is_empty()),
                    "fragment {}: every rule carries a comment naming who needs it: {r}",
                    path.display()
                );
            }
            seccomp.insert((*arch).to_string(), rules.clone());
        }
        out.push(Fragment {
            name,
            comment,
            collectors,
            seccomp,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn syscall_of(rule: &Value) -> String {
    rule.get("syscall")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("rule without a syscall name: {rule}"))
        .to_string()
}

/// Whether a rule has argument conditions (`args`, not empty).
fn has_args(rule: &Value) -> bool {
    rule.get("args")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The base policy with the rules of the fragments in `mask` appended to `main`.
fn merged(base: &Value, fragments: &[Fragment], mask: usize, arch: &str) -> Value {
    let mut policy = base.clone();
    let filter = policy
        .get_mut("main")
        .and_then(|m| m.get_mut("filter"))
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("policy for {arch}: main.filter must be a list"));
    // For each system call already in the filter: whether every entry for it has conditions.
    let mut seen: HashMap<String, bool> = HashMap::new();
    for r in filter.iter() {
        let conditional = has_args(r);
        let e = seen.entry(syscall_of(r)).or_insert(true);
        *e = *e && conditional;
    }
    for (i, f) in fragments.iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        let rules = f.seccomp.get(arch).cloned().unwrap_or_default();
        // Per system call of this fragment: whether every entry for it has conditions.
        let mut own: HashMap<String, bool> = HashMap::new();
        for r in &rules {
            let e = own.entry(syscall_of(r)).or_insert(true);
            *e = *e && has_args(r);
        }
        for (sc, conditional) in own {
            // A system call in two places would mix its rules (policy/README.md, rule 3): a
            // fragment adds only calls the base and the other fragments do not have, or, when
            // every entry for the call in every place has argument conditions, further
            // alternatives that seccompiler OR-s with the others (`socket` with another domain
            // and protocol: the `dbus` and `netlink-*` fragments).
            match seen.get_mut(&sc) {
                Some(prev) => assert!(
                    *prev && conditional,
                    "fragment {} adds {sc} for {arch}, which the base policy or another \
                     fragment already has, and not every entry for it has argument conditions",
                    f.name
                ),
                None => {
                    seen.insert(sc, conditional);
                }
            }
        }
        filter.extend(rules);
    }
    policy
}

fn compile(policy: &Value, arch: &str, what: &str) -> HashMap<String, seccompiler::BpfProgram> {
    let target_arch = seccompiler::TargetArch::try_from(arch).unwrap_or_else(|e| {
        panic!(
            "no seccomp policy for target architecture {arch}: {e}; \
             add policy/seccomp/{arch}.json (see policy/README.md)"
        )
    });
    let bytes = serde_json::to_vec(policy).expect("a JSON value serialises");
    let compiled = seccompiler::compile_from_json(bytes.as_slice(), target_arch)
        .unwrap_or_else(|e| panic!("seccomp policy {what} is invalid: {e}"));
    for name in compiled.keys() {
        assert!(
            FILTERS.contains(&name.as_str()),
            "seccomp policy {what} defines an unknown filter {name:?} (expected {FILTERS:?})"
        );
    }
    for name in FILTERS {
        let program = compiled
            .get(*name)
            .unwrap_or_else(|| panic!("seccomp policy {what} lacks the filter {name:?}"));
        assert!(
            !program.is_empty() && program.len() <= 4096,
            "seccomp filter {name:?} of {what} has {} instructions (the kernel accepts 1..=4096)",
            program.len()
        );
    }
    compiled
}

/// `struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }` in the target's byte order
/// (seccompiler supports little-endian targets only).
fn write_program(out: &Path, program: &seccompiler::BpfProgram) {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_le_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_le_bytes());
    }
    fs::write(out, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

fn main() {
    println!("cargo:rerun-if-changed=policy/seccomp");
    println!("cargo:rerun-if-changed=policy/fragments");
    println!("cargo:rerun-if-changed=build.rs");

    let target = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let fragments = load_fragments(&manifest_dir.join("policy").join("fragments"));
    assert!(
        fragments.len() <= MAX_FRAGMENTS,
        "{} policy fragments: build.rs compiles every combination, which is meant for at most \
         {MAX_FRAGMENTS}; compile the policy at start-up instead",
        fragments.len()
    );
    if !ARCHES.contains(&target.as_str()) {
        panic!(
            "no seccomp policy for target architecture {target}; add policy/seccomp/{target}.json \
             and its rules in every policy/fragments/*.json (see policy/README.md)"
        );
    }

    // Every architecture, every combination: a change to one file cannot break a build nobody
    // runs locally.
    for arch in ARCHES {
        let path = manifest_dir
            .join("policy")
            .join("seccomp")
            .join(format!("{arch}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot open seccomp policy {}: {e}", path.display()));
        let base: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seccomp policy {} is invalid: {e}", path.display()));
        for mask in 0..(1usize << fragments.len()) {
            let names: Vec<&str> = fragments
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| f.name.as_str())
                .collect();
            let what = format!("{} with fragments {names:?}", path.display());
            let compiled = compile(&merged(&base, &fragments, mask, arch), arch, &what);
            if arch != &target {
                continue;
            }
            let main = compiled.get("main").expect("checked by compile");
            write_program(&out_dir.join(format!("seccomp_main_{mask}.bpf")), main);
            if mask == 0 {
                for name in ["clone3", "signals"] {
                    let program = compiled.get(name).expect("checked by compile");
                    write_program(&out_dir.join(format!("seccomp_{name}.bpf")), program);
                }
            }
        }
    }

    let mut rs = String::from("// Generated by build.rs from policy/fragments/*.json.\n");
    rs.push_str("/// The policy fragments, in name order (fragment `i` is bit `i` of a mask).\n");
    rs.push_str("pub static FRAGMENTS: &[Fragment] = &[\n");
    for f in &fragments {
        let collectors: Vec<String> = f.collectors.iter().map(|c| rust_str(c)).collect();
        let _ = writeln!(
            rs,
            "    Fragment {{ name: {}, collectors: &[{}], comment: {} }},",
            rust_str(&f.name),
            collectors.join(", "),
            rust_str(&f.comment)
        );
    }
    rs.push_str("];\n");
    rs.push_str(
        "/// The `main` filter for each combination of fragments, indexed by its mask.\n\
         pub static MAIN_VARIANTS: &[&[u8]] = &[\n",
    );
    for mask in 0..(1usize << fragments.len()) {
        let _ = writeln!(
            rs,
            "    include_bytes!(concat!(env!(\"OUT_DIR\"), \"/seccomp_main_{mask}.bpf\")),"
        );
    }
    rs.push_str("];\n");
    let out = out_dir.join("policy_fragments.rs");
    fs::write(&out, rs).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
