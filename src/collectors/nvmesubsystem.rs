//! `nvmesubsystem` collector: node_exporter 1.12's `nvmesubsystem_linux.go` over
//! prometheus/procfs' `sysfs.NVMeSubsystemClass` (off by default, as there).
//!
//! Labels are pushed sorted by name, as client_golang prints them.
//!
//! For every `class/nvme-subsystem/nvme-subsys*` entry (sorted by name, as Go's `os.ReadDir`):
//! - `node_nvmesubsystem_info{subsystem,nqn,model,serial,iopolicy} 1` from `subsysnqn`,
//!   `model`, `serial` and `iopolicy`;
//! - `node_nvmesubsystem_namespace_info{subsystem,device} 1` per `nvme<N>n<M>` entry;
//! - per controller path (`nvme<N>` entry, its `state`, `transport` and `address`):
//!   `node_nvmesubsystem_path_state{subsystem,controller,transport,state}`, 1 for the current
//!   state and 0 for the others of the fixed state set (kernel states outside it are "unknown",
//!   "deleting (no IO)" is "deleting");
//! - `node_nvmesubsystem_paths` and `node_nvmesubsystem_paths_live`.
//!
//! Absent `class/nvme-subsystem`: "no data" (node_exporter's `ErrNoData`: success 0, counted
//! apart from failures). A subsystem or controller missing an attribute fails the collector, as
//! in procfs.

use std::path::Path;

use super::{sorted_names, CollectError, Collector, Options, Paths};
use crate::collectors::nvme::sys_read_file;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(NvmeSubsystem)
}

/// The metric-level states, sorted (node_exporter's `nvmeMetricStates`).
const STATES: [&str; 7] = [
    "connecting",
    "dead",
    "deleting",
    "live",
    "new",
    "resetting",
    "unknown",
];

/// node_exporter's `normalizeControllerState`.
fn normalize_state(raw: &str) -> &'static str {
    match raw {
        "live" => "live",
        "connecting" => "connecting",
        "resetting" => "resetting",
        "dead" => "dead",
        "deleting" | "deleting (no IO)" => "deleting",
        "new" => "new",
        _ => "unknown",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub name: String,
    pub state: String,
    pub transport: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    pub name: String,
    pub nqn: String,
    pub model: String,
    pub serial: String,
    pub iopolicy: String,
    pub controllers: Vec<Controller>,
    pub namespaces: Vec<String>,
}

/// `nvme<digits>` (procfs' `^nvme\d+$`).
fn is_controller(name: &str) -> bool {
    name.strip_prefix("nvme")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `nvme<digits>n<digits>` (procfs' `^nvme\d+n\d+$`).
fn is_namespace(name: &str) -> bool {
    name.strip_prefix("nvme")
        .and_then(|rest| rest.split_once('n'))
        .is_some_and(|(c, n)| {
            !c.is_empty()
                && !n.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

fn attr(path: &Path) -> Result<String, CollectError> {
    sys_read_file(path).map_err(|e| CollectError::io(path, e))
}

/// Reads every subsystem of `class/nvme-subsystem`.
fn read_class(dir: &Path) -> Result<Vec<Subsystem>, CollectError> {
    let mut out = Vec::new();
    for name in sorted_names(dir)? {
        if !name.starts_with("nvme-subsys") {
            continue;
        }
        let base = dir.join(&name);
        let mut subsys = Subsystem {
            nqn: attr(&base.join("subsysnqn"))?,
            model: attr(&base.join("model"))?,
            serial: attr(&base.join("serial"))?,
            iopolicy: attr(&base.join("iopolicy"))?,
            name,
            controllers: Vec::new(),
            namespaces: Vec::new(),
        };
        for entry in sorted_names(&base)? {
            if is_controller(&entry) {
                let c = base.join(&entry);
                let state = attr(&c.join("state"))?;
                let transport = attr(&c.join("transport"))?;
                // procfs reads `address` too and fails without it; node_exporter does not
                // export it.
                attr(&c.join("address"))?;
                subsys.controllers.push(Controller {
                    name: entry.clone(),
                    state,
                    transport,
                });
            }
            if is_namespace(&entry) && !subsys.namespaces.contains(&entry) {
                subsys.namespaces.push(entry);
            }
        }
        out.push(subsys);
    }
    Ok(out)
}

/// The families for a set of subsystems, in node_exporter's order of emission.
pub fn families(subsystems: &[Subsystem]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "node_nvmesubsystem_info",
        "Non-numeric information about an NVMe subsystem.",
    );
    let mut ns_info = MetricFamily::gauge(
        "node_nvmesubsystem_namespace_info",
        "Maps an NVMe namespace block device to its subsystem.",
    );
    let mut paths = MetricFamily::gauge(
        "node_nvmesubsystem_paths",
        "Number of controller paths for an NVMe subsystem.",
    );
    let mut paths_live = MetricFamily::gauge(
        "node_nvmesubsystem_paths_live",
        "Number of controller paths in live state for an NVMe subsystem.",
    );
    let mut path_state = MetricFamily::gauge(
        "node_nvmesubsystem_path_state",
        "Current NVMe controller path state (1 for the current state, 0 for all others).",
    );
    for s in subsystems {
        info.push(
            &[
                ("iopolicy", &s.iopolicy),
                ("model", &s.model),
                ("nqn", &s.nqn),
                ("serial", &s.serial),
                ("subsystem", &s.name),
            ],
            1.0,
        );
        for ns in &s.namespaces {
            ns_info.push(&[("device", ns), ("subsystem", &s.name)], 1.0);
        }
        let mut live = 0u32;
        for c in &s.controllers {
            let state = normalize_state(&c.state);
            if state == "live" {
                live += 1;
            }
            for m in STATES {
                path_state.push(
                    &[
                        ("controller", &c.name),
                        ("state", m),
                        ("subsystem", &s.name),
                        ("transport", &c.transport),
                    ],
                    if m == state { 1.0 } else { 0.0 },
                );
            }
        }
        paths.push(&[("subsystem", &s.name)], s.controllers.len() as f64);
        paths_live.push(&[("subsystem", &s.name)], f64::from(live));
    }
    vec![info, ns_info, path_state, paths, paths_live]
}

struct NvmeSubsystem;

impl Collector for NvmeSubsystem {
    fn name(&self) -> &'static str {
        "nvmesubsystem"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let subsystems = read_class(&paths.sys("class/nvme-subsystem"))
            .map_err(CollectError::absent_is_no_data)?;
        Ok(families(&subsystems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, render, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter_112() {
        let fams = NvmeSubsystem
            .collect(&sysfs("storage2", "nvmesubsystem/sys"))
            .expect("collects");
        assert_golden(render(fams), "storage2", "nvmesubsystem/expected.txt");
    }

    #[test]
    fn names_follow_procfs_patterns() {
        assert!(is_controller("nvme0"));
        assert!(is_controller("nvme12"));
        assert!(!is_controller("nvme"));
        assert!(!is_controller("nvme0n1"));
        assert!(is_namespace("nvme0n1"));
        assert!(is_namespace("nvme3n12"));
        assert!(!is_namespace("nvme0n"));
        assert!(!is_namespace("nvmen1"));
        assert!(!is_namespace("nvme0c0n1"));
    }

    #[test]
    fn states_normalise_as_node_exporter() {
        assert_eq!(normalize_state("deleting (no IO)"), "deleting");
        assert_eq!(normalize_state("frozen"), "unknown");
        assert_eq!(normalize_state("live"), "live");
        let mut sorted = STATES;
        sorted.sort_unstable();
        assert_eq!(sorted, STATES);
    }

    #[test]
    fn absent_class_is_no_data() {
        let err = NvmeSubsystem
            .collect(&sysfs("storage2", "no-such-dir"))
            .expect_err("absent class");
        assert!(matches!(err, CollectError::NoData { .. }), "{err:?}");
    }

    #[test]
    fn missing_controller_attribute_fails() {
        let dir = std::env::temp_dir().join(format!("nvmesubsys-test-{}", std::process::id()));
        let s = dir.join("class/nvme-subsystem/nvme-subsys7");
        std::fs::create_dir_all(s.join("nvme9")).expect("mkdir");
        for (f, v) in [
            ("subsysnqn", "nqn.x\n"),
            ("model", "M\n"),
            ("serial", "S\n"),
            ("iopolicy", "numa\n"),
        ] {
            std::fs::write(s.join(f), v).expect("write");
        }
        std::fs::write(s.join("nvme9/state"), "deleting (no IO)\n").expect("write");
        std::fs::write(s.join("nvme9/transport"), "tcp\n").expect("write");
        assert!(NvmeSubsystem.collect(&sysfs_at(dir.clone())).is_err());
        std::fs::write(s.join("nvme9/address"), "traddr=10.0.0.1\n").expect("write");
        let fams = NvmeSubsystem
            .collect(&sysfs_at(dir.clone()))
            .expect("collects");
        let deleting = fams
            .iter()
            .find(|f| f.name == "node_nvmesubsystem_path_state")
            .and_then(|f| {
                f.samples.iter().find(|s| {
                    s.labels
                        .iter()
                        .any(|(k, v)| *k == "state" && v == "deleting")
                })
            })
            .map(|s| s.value);
        assert_eq!(deleting, Some(1.0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
