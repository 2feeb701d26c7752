//! Compiles the seccomp policy of the target architecture (`policy/seccomp/<arch>.json`) to BPF
//! with seccompiler and writes each filter as raw `sock_filter` bytes into `OUT_DIR`, where
//! `src/sandbox/seccomp.rs` embeds them with `include_bytes!`. The same policy is compiled for
//! debug and release builds: there is no "empty filter" fallback.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::PathBuf;

/// Filters the policy file must define; `src/sandbox/seccomp.rs` embeds one file per name.
const FILTERS: &[&str] = &["main", "clone3", "signals"];

fn main() {
    println!("cargo:rerun-if-changed=policy/seccomp");
    println!("cargo:rerun-if-changed=build.rs");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let policy = manifest_dir
        .join("policy")
        .join("seccomp")
        .join(format!("{arch}.json"));
    println!("cargo:rerun-if-changed={}", policy.display());

    let target_arch = match seccompiler::TargetArch::try_from(arch.as_str()) {
        Ok(a) => a,
        Err(e) => panic!(
            "no seccomp policy for target architecture {arch}: {e}; \
             add policy/seccomp/{arch}.json (see policy/README.md)"
        ),
    };
    let json = fs::File::open(&policy)
        .unwrap_or_else(|e| panic!("cannot open seccomp policy {}: {e}", policy.display()));
    let filters: HashMap<String, seccompiler::BpfProgram> =
        seccompiler::compile_from_json(json, target_arch)
            .unwrap_or_else(|e| panic!("seccomp policy {} is invalid: {e}", policy.display()));

    for name in filters.keys() {
        assert!(
            FILTERS.contains(&name.as_str()),
            "seccomp policy {} defines an unknown filter {name:?} (expected {FILTERS:?})",
            policy.display()
        );
    }
    // The other architectures' policies must compile too, so that a change to one file cannot
    // break a build nobody runs locally.
    for other in ["x86_64", "aarch64"] {
        if other == arch {
            continue;
        }
        let path = manifest_dir
            .join("policy")
            .join("seccomp")
            .join(format!("{other}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let file = fs::File::open(&path)
            .unwrap_or_else(|e| panic!("cannot open seccomp policy {}: {e}", path.display()));
        let other_arch = seccompiler::TargetArch::try_from(other).expect("known architecture");
        let compiled = seccompiler::compile_from_json(file, other_arch)
            .unwrap_or_else(|e| panic!("seccomp policy {} is invalid: {e}", path.display()));
        for name in FILTERS {
            assert!(
                compiled.contains_key(*name),
                "seccomp policy {} lacks the filter {name:?}",
                path.display()
            );
        }
    }

    for name in FILTERS {
        let program = filters.get(*name).unwrap_or_else(|| {
            panic!(
                "seccomp policy {} lacks the filter {name:?}",
                policy.display()
            )
        });
        assert!(
            !program.is_empty() && program.len() <= 4096,
            "seccomp filter {name:?} has {} instructions (the kernel accepts 1..=4096)",
            program.len()
        );
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } in the target's byte order
        // (seccompiler supports little-endian targets only).
        let mut bytes = Vec::with_capacity(program.len() * 8);
        for insn in program {
            bytes.extend_from_slice(&insn.code.to_le_bytes());
            bytes.push(insn.jt);
            bytes.push(insn.jf);
            bytes.extend_from_slice(&insn.k.to_le_bytes());
        }
        let out = out_dir.join(format!("seccomp_{name}.bpf"));
        fs::write(&out, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    }
}
