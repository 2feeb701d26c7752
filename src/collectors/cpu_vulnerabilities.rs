//! `cpu_vulnerabilities` collector (off by default): the kernel's verdict on each CPU
//! vulnerability, from `/sys/devices/system/cpu/vulnerabilities/*`.
//!
//! Not in node_exporter 1.5: this follows the collector added later (node_exporter 1.7,
//! `collector/cpu_vulnerabilities_linux.go`, with procfs' `CPUVulnerabilities`):
//!
//! - `node_cpu_vulnerabilities_info{codename,mitigation,state} 1` per file: `state` is `not
//!   affected`, `vulnerable`, `mitigation` or `unknown` (from the text's prefix, any case;
//!   text with none of these prefixes is `unknown` with the whole text as `mitigation`);
//!   `mitigation` is the text after the first word, blanks collapsed (`Mitigation: PTI` → `PTI`).
//!
//! No such directory (old kernels, some architectures): nothing, success. A file that cannot be
//! read fails the collector.

use super::hwmon::to_valid_utf8;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// (state, mitigation) for a vulnerability file's text, as procfs' `parseVulnerability`.
pub fn parse_vulnerability(raw: &str) -> (&'static str, String) {
    let text = raw.trim();
    let lower = text.to_lowercase();
    let rest = || {
        text.split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    if lower.starts_with("not affected") {
        ("not affected", String::new())
    } else if lower.starts_with("vulnerable") {
        ("vulnerable", rest())
    } else if lower.starts_with("mitigation") {
        ("mitigation", rest())
    } else if lower.starts_with("unknown") {
        ("unknown", rest())
    } else {
        ("unknown", text.to_string())
    }
}

const HELP: &str = "Details of each CPU vulnerability reported by sysfs. The value of the series \
                    is an int encoded state of the vulnerability. The same state is stored as a \
                    string in the label";

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(CpuVulnerabilities)
}

struct CpuVulnerabilities;

impl Collector for CpuVulnerabilities {
    fn name(&self) -> &'static str {
        "cpu_vulnerabilities"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let dir = paths.sys("devices/system/cpu/vulnerabilities");
        let entries = match crate::collector::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CollectError::io(&dir, e)),
        };
        let mut fam = MetricFamily::gauge("node_cpu_vulnerabilities_info", HELP);
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::io(&dir, e))?;
            let path = entry.path();
            let raw = super::fsio::read(&path).map_err(|e| CollectError::io(&path, e))?;
            let (state, mitigation) = parse_vulnerability(&to_valid_utf8(&raw));
            let codename = entry.file_name().to_string_lossy().into_owned();
            fam.push(
                &[
                    ("codename", &codename),
                    ("mitigation", &mitigation),
                    ("state", state),
                ],
                1.0,
            );
        }
        if fam.samples.is_empty() {
            return Ok(Vec::new());
        }
        sort_samples(&mut fam);
        Ok(vec![fam])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    #[test]
    fn parsing() {
        // Texts of procfs' test fixture and of real kernels.
        assert_eq!(
            parse_vulnerability("Not affected\n"),
            ("not affected", String::new())
        );
        assert_eq!(
            parse_vulnerability("Vulnerable\n"),
            ("vulnerable", String::new())
        );
        assert_eq!(
            parse_vulnerability("Vulnerable: Clear CPU buffers attempted, no microcode\n"),
            (
                "vulnerable",
                "Clear CPU buffers attempted, no microcode".to_string()
            )
        );
        assert_eq!(
            parse_vulnerability(
                "Mitigation: untrained return thunk; SMT enabled with STIBP protection\n"
            ),
            (
                "mitigation",
                "untrained return thunk; SMT enabled with STIBP protection".to_string()
            )
        );
        assert_eq!(
            parse_vulnerability("Unknown: Dependent on hypervisor status\n"),
            ("unknown", "Dependent on hypervisor status".to_string())
        );
        assert_eq!(
            parse_vulnerability("KVM: Mitigation: VMX unsupported\n"),
            ("unknown", "KVM: Mitigation: VMX unsupported".to_string())
        );
    }

    /// This VM's 19 vulnerability files (Linux 6.18 on KVM), captured verbatim.
    #[test]
    fn fixture_debian12_vm() {
        let fams = CpuVulnerabilities.collect(&paths()).expect("collects");
        assert_eq!(fams.len(), 1);
        let s = &fams[0].samples;
        assert_eq!(s.len(), 19);
        let get = |code: &str| {
            s.iter()
                .find(|x| x.labels[0].1 == code)
                .map(|x| (x.labels[1].1.to_string(), x.labels[2].1.to_string()))
                .expect("present")
        };
        assert_eq!(get("meltdown"), (String::new(), "not affected".to_string()));
        assert_eq!(
            get("spectre_v2"),
            (
                "Retpolines; IBPB: conditional; IBRS_FW; STIBP: disabled; RSB filling; \
                 PBRSB-eIBRS: Not affected; BHI: Not affected"
                    .to_string(),
                "mitigation".to_string()
            )
        );
        assert_eq!(
            get("spec_rstack_overflow"),
            ("Safe RET".to_string(), "mitigation".to_string())
        );
        assert!(s.windows(2).all(|w| w[0].labels[0].1 < w[1].labels[0].1));
        let names: Vec<&str> = s[0].labels.iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, vec!["codename", "mitigation", "state"]);
    }

    #[test]
    fn absent_is_empty_success() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(CpuVulnerabilities.collect(&p).expect("ok").is_empty());
    }

    #[test]
    fn live() {
        // Every x86_64 kernel since 4.15 and aarch64 kernel since 5.10 (the architectures of
        // policy/seccomp/) has the directory; without it this check fails instead of passing
        // empty-handed.
        let p = Paths::default();
        let dir = p.sys("devices/system/cpu/vulnerabilities");
        assert!(
            dir.is_dir(),
            "{} is missing: the live check of cpu_vulnerabilities needs a kernel that has it \
             (x86_64 4.15+, aarch64 5.10+); the fixture tests cover the collector itself",
            dir.display()
        );
        let fams = CpuVulnerabilities.collect(&p).expect("collects");
        assert_eq!(fams.len(), 1);
        assert!(!fams[0].samples.is_empty(), "no vulnerability reported");
    }
}
