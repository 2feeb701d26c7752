//! `bonding` collector: configured and active slaves of each Linux bonding interface, from
//! `/sys/class/net/bonding_masters`, `<master>/bonding/slaves` and each slave's
//! `bonding_slave/mii_status` (under `lower_<slave>`, or `slave_<slave>` on older kernels), as
//! node_exporter 1.5's `bonding_linux.go`: `node_bonding_slaves{master}` and
//! `node_bonding_active{master}`.
//!
//! Without the bonding driver `bonding_masters` is absent: node_exporter returns `ErrNoData`
//! (`success 0`), and so does this collector (an error). Any unreadable file listed there
//! fails the collector too, as in node_exporter.

use std::path::{Path, PathBuf};

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// One master: name, configured slaves, slaves whose MII status is `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bond {
    pub master: String,
    pub slaves: u32,
    pub active: u32,
}

/// A name from a sysfs list, refused when it could leave its directory.
fn safe_name(name: &str, list: &Path) -> Result<(), CollectError> {
    if name.contains('/') || name == "." || name == ".." {
        return Err(CollectError::parse(
            list,
            format!("bad interface name {name:?}"),
        ));
    }
    Ok(())
}

/// Reads every bond under `class` (`<sysfs>/class/net`).
pub fn read_bonds(class: &Path) -> Result<Vec<Bond>, CollectError> {
    let masters_path = class.join("bonding_masters");
    let masters = read_to_string(&masters_path)?;
    let mut out = Vec::new();
    for master in masters.split_ascii_whitespace() {
        safe_name(master, &masters_path)?;
        let dir = class.join(master);
        let slaves_path = dir.join("bonding/slaves");
        let slaves = read_to_string(&slaves_path)?;
        let mut bond = Bond {
            master: master.to_string(),
            slaves: 0,
            active: 0,
        };
        for slave in slaves.split_ascii_whitespace() {
            safe_name(slave, &slaves_path)?;
            let state = read_mii(&dir, slave)?;
            bond.slaves += 1;
            if state.trim() == "up" {
                bond.active += 1;
            }
        }
        out.push(bond);
    }
    Ok(out)
}

fn read_mii(dir: &Path, slave: &str) -> Result<String, CollectError> {
    let lower: PathBuf = dir.join(format!("lower_{slave}/bonding_slave/mii_status"));
    match super::fsio::read_to_string(&lower) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            read_to_string(&dir.join(format!("slave_{slave}/bonding_slave/mii_status")))
        }
        Err(e) => Err(CollectError::io(&lower, e)),
    }
}

pub fn families(bonds: &[Bond]) -> Vec<MetricFamily> {
    let mut slaves = MetricFamily::gauge(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
    );
    let mut active = MetricFamily::gauge(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
    );
    for b in bonds {
        slaves.push(&[("master", &b.master)], b.slaves as f64);
        active.push(&[("master", &b.master)], b.active as f64);
    }
    let mut out = vec![active, slaves];
    for f in &mut out {
        sort_samples(f);
    }
    out
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Bonding)
}

pub struct Bonding;

impl Collector for Bonding {
    fn name(&self) -> &'static str {
        "bonding"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(families(
            &read_bonds(&paths.sys("class/net")).map_err(CollectError::absent_is_no_data)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::lines::{parse, render};
    use crate::collectors::testutil::sysfs;

    #[test]
    fn node_exporter_fixture_as_node_exporter_prints_it() {
        // What node_exporter prints for this part of its sys fixture (dmz: eth0 and eth4 up;
        // int: eth1 down, eth5 up; bond0: no slaves).
        let expected = "# HELP node_bonding_active Number of active slaves per bonding interface.
# TYPE node_bonding_active gauge
node_bonding_active{master=\"bond0\"} 0
node_bonding_active{master=\"dmz\"} 2
node_bonding_active{master=\"int\"} 1
# HELP node_bonding_slaves Number of configured slaves per bonding interface.
# TYPE node_bonding_slaves gauge
node_bonding_slaves{master=\"bond0\"} 0
node_bonding_slaves{master=\"dmz\"} 2
node_bonding_slaves{master=\"int\"} 2
";
        let fams = Bonding
            .collect(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("collects");
        assert_eq!(render(&fams), parse(expected));
    }

    #[test]
    fn no_bonding_driver() {
        // This host (and its fixture) has no bonding_masters.
        assert!(Bonding
            .collect(&sysfs("net", "debian12-vm-6.18/sys"))
            .is_err());
    }

    #[test]
    fn lower_prefix_and_bad_names() {
        let tmp = std::env::temp_dir().join(format!("ma-bonding-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let class = tmp.join("class/net");
        std::fs::create_dir_all(class.join("b0/bonding")).expect("mkdir");
        std::fs::create_dir_all(class.join("b0/lower_e1/bonding_slave")).expect("mkdir");
        std::fs::write(class.join("bonding_masters"), "b0\n").expect("write");
        std::fs::write(class.join("b0/bonding/slaves"), "e1\n").expect("write");
        std::fs::write(class.join("b0/lower_e1/bonding_slave/mii_status"), "up\n").expect("w");
        let bonds = read_bonds(&class).expect("reads");
        assert_eq!(
            bonds,
            [Bond {
                master: "b0".into(),
                slaves: 1,
                active: 1
            }]
        );
        std::fs::write(class.join("bonding_masters"), "../b0\n").expect("write");
        assert!(read_bonds(&class).is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn live() {
        let has = Path::new("/sys/class/net/bonding_masters").exists();
        assert_eq!(Bonding.collect(&Paths::default()).is_ok(), has);
    }
}
