//! `uname` collector: `node_uname_info`, labelled with the `uname(2)` fields, as node_exporter
//! 1.5's `uname.go`/`uname_linux.go`. Like node_exporter it uses the system call (so `domainname`
//! is the NIS domain name of the agent's UTS namespace), not files under `--path.procfs`.

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

/// The `uname(2)` fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnameInfo {
    pub sysname: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub nodename: String,
    pub domainname: String,
}

/// `node_uname_info` (value 1), labels in name order as node_exporter's output.
pub fn family(u: &UnameInfo) -> MetricFamily {
    MetricFamily::gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
    )
    .with(
        &[
            ("domainname", &u.domainname),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
            ("release", &u.release),
            ("sysname", &u.sysname),
            ("version", &u.version),
        ],
        1.0,
    )
}

/// Calls `uname(2)`. Non-UTF-8 bytes (hostnames can hold any) are replaced, since label values
/// must be UTF-8.
pub fn uname() -> Result<UnameInfo, CollectError> {
    let u = nix::sys::utsname::uname().map_err(|e| CollectError::Other(format!("uname: {e}")))?;
    let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
    Ok(UnameInfo {
        sysname: s(u.sysname()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
        nodename: s(u.nodename()),
        domainname: s(u.domainname()),
    })
}

pub struct Uname;

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(vec![family(&uname()?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        // `uname -a` of the debian12-vm-6.18 fixture host.
        let u = UnameInfo {
            sysname: "Linux".into(),
            release: "6.18.44-fc-v782".into(),
            version: "#1 SMP PREEMPT_DYNAMIC @0".into(),
            machine: "x86_64".into(),
            nodename: "vm".into(),
            domainname: "(none)".into(),
        };
        let fam = family(&u);
        assert_eq!(fam.name, "node_uname_info");
        assert_eq!(
            fam.help,
            "Labeled system information as provided by the uname system call."
        );
        assert_eq!(fam.kind, crate::exposition::MetricType::Gauge);
        let labels: Vec<_> = fam.samples[0]
            .labels
            .iter()
            .map(|(k, v)| (&**k, v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("domainname", "(none)"),
                ("machine", "x86_64"),
                ("nodename", "vm"),
                ("release", "6.18.44-fc-v782"),
                ("sysname", "Linux"),
                ("version", "#1 SMP PREEMPT_DYNAMIC @0"),
            ]
        );
        assert_eq!(fam.samples[0].value, 1.0);
    }

    #[test]
    fn live() {
        let fams = Uname.collect(&Paths::default()).expect("uname");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name, "node_uname_info");
        let l = &fams[0].samples[0].labels;
        assert_eq!(l[4].0, "sysname");
        assert_eq!(l[4].1, "Linux");
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert_eq!(l[3].1, release.trim());
    }
}
